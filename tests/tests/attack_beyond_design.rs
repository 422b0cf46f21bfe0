//! Issue 7 variants that go beyond the list in the lead's design note (briefs/issue7-design.md)
//! but belong to the classes the issue names. Kept apart so each can be judged on its own: a
//! failure here is a finding to decide on, not necessarily a misread of the design.

mod attack_common;

use attack_common::*;
use pg_repair_tests::{one, playbook, register, Cluster};

fn app_db(c: &Cluster, label: &str) -> String {
    superuser_executor(c);
    let db = c.fresh_db(label);
    grant_validation(c, &db);
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE TABLE public.orders (id int PRIMARY KEY, note text);
             INSERT INTO public.orders VALUES (1, 'a'), (2, 'b'), (3, 'c');
             CREATE TABLE public.orders_log (id int);
             CREATE FUNCTION public.log_order() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN INSERT INTO public.orders_log VALUES (NEW.id); RETURN NEW; END $$;
             CREATE TRIGGER orders_audit AFTER INSERT ON public.orders FOR EACH ROW EXECUTE FUNCTION public.log_order();
             ALTER TABLE public.orders OWNER TO alice;
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO repair_operators;",
        )
        .unwrap();
    db
}

/// Item 2 (session state) / item 4 (privilege-changing): `ALTER DATABASE … SET` and
/// `ALTER ROLE … SET` plant settings in every future session, like ALTER SYSTEM does.
#[test]
fn persistent_per_database_and_per_role_settings_are_refused() {
    let c = Cluster::shared();
    let db = app_db(c, "bd_alter_db_set");
    let mut escaped = Vec::new();
    for (i, stmt) in [
        format!("ALTER DATABASE {db} SET default_transaction_read_only = on"),
        format!("ALTER DATABASE {db} SET search_path = pg_catalog"),
        format!("ALTER ROLE alice IN DATABASE {db} SET statement_timeout = '1ms'"),
        "ALTER ROLE alice SET work_mem = '1MB'".to_string(),
    ]
    .iter()
    .enumerate()
    {
        let id = format!("db_set_{i}");
        let body = format!("DO $do$ BEGIN EXECUTE $x${stmt}$x$; END $do$;");
        let hash = reg(c, &db, &playbook(&id, &body));
        let r = exec_as(&mut c.connect(&db, "admin2"), &id, &hash).expect("execute");
        let mut su = c.connect(&db, "postgres");
        let n: i64 = one(&mut su, "SELECT count(*) FROM pg_db_role_setting");
        if r["status"] != "FAILED" || r["error_code"] != "42501" || n != 0 {
            escaped.push(format!(
                "{stmt}: {} {} ({n} settings planted)",
                r["status"], r["error_code"]
            ));
        }
        su.batch_execute("SET default_transaction_read_only = off; SET statement_timeout = 0")
            .unwrap();
        su.batch_execute(&format!("ALTER DATABASE {db} RESET ALL; ALTER ROLE alice RESET ALL; ALTER ROLE alice IN DATABASE {db} RESET ALL"))
            .unwrap();
    }
    assert!(escaped.is_empty(), "{escaped:#?}");
}

/// Item 4: disabling the application's triggers or rules changes what later writes do.
#[test]
fn disabling_application_triggers_is_refused() {
    let c = Cluster::shared();
    let db = app_db(c, "bd_disable_trigger");
    let mut escaped = Vec::new();
    for (i, stmt) in [
        "ALTER TABLE public.orders DISABLE TRIGGER orders_audit",
        "ALTER TABLE public.orders DISABLE TRIGGER ALL",
        "ALTER TABLE public.orders DISABLE TRIGGER USER",
        // fires only when session_replication_role = replica: disabled for the application
        "ALTER TABLE public.orders ENABLE REPLICA TRIGGER orders_audit",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("disable_{i}");
        let body = format!("DO $do$ BEGIN EXECUTE $x${stmt}$x$; END $do$;");
        let hash = reg(c, &db, &playbook(&id, &body));
        let r = exec_as(&mut c.connect(&db, "alice"), &id, &hash).expect("execute");
        let mut su = c.connect(&db, "postgres");
        let state: String = one(
            &mut su,
            "SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'orders_audit'",
        );
        if r["status"] != "FAILED" || state != "O" {
            escaped.push(format!(
                "{stmt}: {} {} (tgenabled {state})",
                r["status"], r["error_code"]
            ));
        }
        su.batch_execute("ALTER TABLE public.orders ENABLE TRIGGER ALL")
            .unwrap();
    }
    assert!(escaped.is_empty(), "{escaped:#?}");
}

/// Item 2: a playbook must not release the operator's own session advisory locks.
#[test]
fn a_playbook_cannot_release_the_callers_advisory_locks() {
    let c = Cluster::shared();
    let db = app_db(c, "bd_unlock");
    for (i, body) in [
        "SELECT pg_advisory_unlock_all();",
        "SELECT pg_advisory_unlock(99001);",
        "DO $$ BEGIN PERFORM pg_advisory_unlock_all(); END $$;",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("unlock_{i}");
        let hash = reg(c, &db, &playbook(&id, body));
        let mut a = c.connect(&db, "alice");
        a.batch_execute("SELECT pg_advisory_lock(99001)").unwrap();
        let _ = exec_as(&mut a, &id, &hash).expect("execute");
        assert_eq!(
            my_advisory_locks(&mut a),
            1,
            "{body}: the caller's own advisory lock was released by the playbook"
        );
    }
}

/// Item 11: a single, syntactically read-only SELECT that takes a session advisory lock still
/// leaves it behind in the validator's session.
#[test]
fn a_check_cannot_leave_a_session_advisory_lock_behind() {
    let c = Cluster::shared();
    let db = app_db(c, "bd_check_lock");
    register(
        &mut c.connect(&db, "carol"),
        "-- check: sneaky_lock\n-- title: t\n-- severity: important\n-- tags: lockcheck\nSELECT 1 FROM (SELECT pg_advisory_lock(48)) x WHERE false\n",
    );
    let mut a = c.connect(&db, "alice");
    a.batch_execute("SELECT * FROM repair.run_checks(ARRAY['lockcheck'])")
        .unwrap();
    assert_eq!(
        my_advisory_locks(&mut a),
        0,
        "run_checks left an advisory lock"
    );
}

/// Item 4's rationale for RENAME ("makes the application see an empty replacement") applies to
/// every statement that hides rows from the application without deleting them.
#[test]
fn statements_that_hide_rows_from_the_application_are_refused() {
    let c = Cluster::shared();
    let db = app_db(c, "bd_hide_rows");
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE TABLE public.events (id int, at date) PARTITION BY RANGE (at);
             CREATE TABLE public.events_2026 PARTITION OF public.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
             INSERT INTO public.events VALUES (1, '2026-05-01'), (2, '2026-06-01');
             ALTER TABLE public.events OWNER TO alice; ALTER TABLE public.events_2026 OWNER TO alice;
             GRANT SELECT ON public.orders, public.events TO bob;",
        )
        .unwrap();
    let seen = |c: &Cluster| -> (i64, i64, String) {
        let mut b = c.connect(&db, "bob");
        let o: i64 = one(&mut b, "SELECT count(*) FROM public.orders");
        let e: i64 = one(&mut b, "SELECT count(*) FROM public.events");
        let p: String = one(
            &mut c.connect(&db, "postgres"),
            "SELECT relpersistence::text FROM pg_class WHERE oid = 'public.orders'::regclass",
        );
        (o, e, p)
    };
    let before = seen(c);
    assert_eq!(before, (3, 2, "p".to_string()));
    let mut escaped = Vec::new();
    for (i, stmt) in [
        "ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE public.events DETACH PARTITION public.events_2026",
        "ALTER TABLE public.orders SET UNLOGGED",
    ]
    .iter()
    .enumerate()
    {
        for (how, body) in [
            ("static", format!("{stmt};")),
            (
                "dynamic",
                format!("DO $do$ BEGIN EXECUTE $x${stmt}$x$; END $do$;"),
            ),
        ] {
            let id = format!("hide_{i}_{how}");
            let hash = reg(c, &db, &playbook(&id, &body));
            let outcome = match exec_as(&mut c.connect(&db, "alice"), &id, &hash) {
                Ok(r) => format!("{} {}", r["status"], r["error_code"]),
                Err(e) => e
                    .as_db_error()
                    .map(|d| d.code().code().to_string())
                    .unwrap_or_default(),
            };
            let now = seen(c);
            if now != before {
                escaped.push(format!("{how} {stmt}: {outcome}, bob now sees {now:?}"));
                c.connect(&db, "postgres")
                    .batch_execute(
                        "ALTER TABLE public.orders DISABLE ROW LEVEL SECURITY;
                         ALTER TABLE public.orders SET LOGGED;
                         DO $$ BEGIN
                           ALTER TABLE public.events ATTACH PARTITION public.events_2026
                             FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
                         EXCEPTION WHEN OTHERS THEN NULL; END $$;",
                    )
                    .unwrap();
            }
        }
    }
    assert!(escaped.is_empty(), "{escaped:#?}");
}

/// Item 4's runtime-only function bans, reached through another name for the same C function
/// (a superuser executor's playbook creates the alias, then calls it), or after detaching a
/// dblink function from its extension inside the same run.
#[test]
fn banned_functions_under_another_name_are_refused() {
    let c = Cluster::shared();
    let db = app_db(c, "bd_alias");
    let conn = format!("host=127.0.0.1 port={} dbname={db} user=postgres", c.port);
    c.connect(&db, "postgres")
        .batch_execute("CREATE EXTENSION dblink; SELECT lo_create(616161);")
        .unwrap();
    let mut side = c.connect(&db, "admin2");
    let side_pid: i32 = one(&mut side, "SELECT pg_backend_pid()");
    // (a terminated side session is replaced, so a later case may target a dead pid: harmless)
    let cases = [
        (
            "alias_lock",
            "CREATE OR REPLACE FUNCTION public.lk(bigint) RETURNS void LANGUAGE internal STRICT AS 'pg_advisory_lock_int8';\nSELECT public.lk(4242);".to_string(),
        ),
        (
            "alias_unlink",
            "CREATE OR REPLACE FUNCTION public.ul(oid) RETURNS int LANGUAGE internal STRICT AS 'be_lo_unlink';\nSELECT public.ul(616161);".to_string(),
        ),
        (
            "alias_terminate",
            format!("CREATE OR REPLACE FUNCTION public.term(int, bigint DEFAULT 0) RETURNS bool LANGUAGE internal STRICT AS 'pg_terminate_backend';\nSELECT public.term({side_pid});"),
        ),
        (
            "alias_dblink",
            format!("CREATE OR REPLACE FUNCTION public.dx(text, text) RETURNS text LANGUAGE c STRICT AS '$libdir/dblink', 'dblink_exec';\nSELECT public.dx('{conn}', 'INSERT INTO public.orders VALUES (90, ''alias'')');"),
        ),
        (
            "detach_dblink",
            format!("DO $do$ BEGIN EXECUTE 'ALTER EXTENSION dblink DROP FUNCTION dblink_exec(text, text)'; END $do$;\nSELECT dblink_exec('{conn}', 'INSERT INTO public.orders VALUES (91, ''detached'')');"),
        ),
    ];
    let mut escaped = Vec::new();
    for (id, body) in &cases {
        let hash = reg(c, &db, &playbook(id, body));
        let mut k = c.connect(&db, "admin2");
        let r = exec_as(&mut k, id, &hash).expect("execute");
        let locks = my_advisory_locks(&mut k);
        let mut su = c.connect(&db, "postgres");
        let lo: bool = one(
            &mut su,
            "SELECT EXISTS (SELECT FROM pg_largeobject_metadata WHERE oid = 616161)",
        );
        let remote: i64 = one(&mut su, "SELECT count(*) FROM public.orders WHERE id >= 90");
        let alive = side.simple_query("SELECT 1").is_ok();
        if r["status"] != "FAILED" || locks != 0 || !lo || remote != 0 || !alive {
            escaped.push(format!(
                "{id}: {} {} (locks {locks}, lo {lo}, remote rows {remote}, side alive {alive})",
                r["status"], r["error_code"]
            ));
        }
        if !alive {
            side = c.connect(&db, "admin2");
        }
        // each case starts from the same state
        su.batch_execute(
            "DELETE FROM public.orders WHERE id >= 90;
             SELECT lo_create(616161) WHERE NOT EXISTS (SELECT FROM pg_largeobject_metadata WHERE oid = 616161);
             SELECT pg_advisory_unlock_all();",
        )
        .unwrap();
    }
    assert!(escaped.is_empty(), "{escaped:#?}");
}

/// A function judged harmless is replaced under the same oid by an alias of a banned built-in:
/// by another session between two runs of one backend, and by the playbook itself between two
/// calls of one run. The judgement of the old definition must not be reused for the new one.
#[test]
fn a_function_replaced_under_the_same_oid_is_judged_again() {
    let c = Cluster::shared();
    let db = app_db(c, "bd_same_oid");
    let harmless = |name: &str| {
        format!(
            "CREATE OR REPLACE FUNCTION public.{name}(bigint) RETURNS void LANGUAGE plpgsql AS 'BEGIN PERFORM pg_catalog.pg_sleep(0); END'"
        )
    };
    let alias = |name: &str| {
        format!(
            "CREATE OR REPLACE FUNCTION public.{name}(bigint) RETURNS void LANGUAGE internal STRICT AS 'pg_advisory_lock_int8'"
        )
    };
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(&format!(
        "{}; {};",
        harmless("lk_between"),
        harmless("lk_within")
    ))
    .unwrap();
    // One executor session for every run, so a judgement cached in its backend could be reused.
    let mut k = c.connect(&db, "admin2");

    let call = reg(
        c,
        &db,
        &playbook("same_oid_call", "SELECT public.lk_between(4242);"),
    );
    let r = exec_as(&mut k, "same_oid_call", &call).expect("execute");
    assert_eq!(r["status"], "SUCCESS", "{r}");
    su.batch_execute(&format!("{};", alias("lk_between")))
        .unwrap();
    let r = exec_as(&mut k, "same_oid_call", &call).expect("execute");
    assert_eq!(r["status"], "FAILED", "replaced between runs: {r}");
    assert_eq!(my_advisory_locks(&mut k), 0);

    let body = format!(
        "SELECT public.lk_within(1);\n{};\nSELECT public.lk_within(4242);",
        alias("lk_within")
    );
    let within = reg(c, &db, &playbook("same_oid_within", &body));
    let r = exec_as(&mut k, "same_oid_within", &within).expect("execute");
    assert_eq!(r["status"], "FAILED", "replaced inside the run: {r}");
    assert_eq!(my_advisory_locks(&mut k), 0);
}

/// Item 4 (privilege-changing statements): row-level security changes that widen what a role
/// can read are grants by another name.
#[test]
fn rls_changes_that_widen_access_are_refused() {
    let c = Cluster::shared();
    let db = app_db(c, "bd_rls_widen");
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE TABLE public.secrets (id int, owner_name text);
             INSERT INTO public.secrets SELECT g, CASE WHEN g = 1 THEN 'bob' ELSE 'carol' END FROM generate_series(1, 5) g;
             ALTER TABLE public.secrets OWNER TO alice;
             ALTER TABLE public.secrets ENABLE ROW LEVEL SECURITY;
             CREATE POLICY own_rows ON public.secrets FOR SELECT USING (owner_name = current_user);
             ALTER POLICY own_rows ON public.secrets TO PUBLIC;
             GRANT SELECT ON public.secrets TO bob;",
        )
        .unwrap();
    let bob_sees = |c: &Cluster| -> i64 {
        one(
            &mut c.connect(&db, "bob"),
            "SELECT count(*) FROM public.secrets",
        )
    };
    assert_eq!(bob_sees(c), 1);
    let mut escaped = Vec::new();
    for (i, stmt) in [
        "ALTER TABLE public.secrets DISABLE ROW LEVEL SECURITY",
        "ALTER POLICY own_rows ON public.secrets USING (true)",
        "CREATE POLICY everyone ON public.secrets FOR SELECT USING (true)",
    ]
    .iter()
    .enumerate()
    {
        for (how, body) in [
            ("static", format!("{stmt};")),
            (
                "dynamic",
                format!("DO $do$ BEGIN EXECUTE $x${stmt}$x$; END $do$;"),
            ),
        ] {
            let id = format!("rls_{i}_{how}");
            let hash = reg(c, &db, &playbook(&id, &body));
            let outcome = match exec_as(&mut c.connect(&db, "alice"), &id, &hash) {
                Ok(r) => format!("{} {}", r["status"], r["error_code"]),
                Err(e) => e
                    .as_db_error()
                    .map(|d| d.code().code().to_string())
                    .unwrap_or_default(),
            };
            let n = bob_sees(c);
            if n != 1 {
                escaped.push(format!("{how} {stmt}: {outcome}, bob now sees {n} rows"));
                c.connect(&db, "postgres")
                    .batch_execute(
                        "ALTER TABLE public.secrets ENABLE ROW LEVEL SECURITY;
                         ALTER POLICY own_rows ON public.secrets USING (owner_name = current_user);
                         DROP POLICY IF EXISTS everyone ON public.secrets;",
                    )
                    .unwrap();
            }
        }
    }
    assert!(escaped.is_empty(), "{escaped:#?}");
}

/// More of the same classes: disabling rules, detaching inheritance children (hides rows like
/// DETACH PARTITION), and turning functions/views into ones that run with their owner's rights.
#[test]
fn rules_inheritance_and_definer_rights_changes_are_refused() {
    let c = Cluster::shared();
    let db = app_db(c, "bd_more_classes");
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE TABLE public.notes (id int);
             CREATE RULE notes_log AS ON INSERT TO public.notes DO ALSO INSERT INTO public.orders_log VALUES (NEW.id);
             CREATE TABLE public.parent_t (id int);
             CREATE TABLE public.child_t () INHERITS (public.parent_t);
             INSERT INTO public.child_t VALUES (1), (2);
             CREATE FUNCTION public.peek() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM public.orders';
             CREATE VIEW public.orders_v WITH (security_invoker = true) AS SELECT * FROM public.orders;
             ALTER TABLE public.notes OWNER TO alice; ALTER TABLE public.parent_t OWNER TO alice;
             ALTER TABLE public.child_t OWNER TO alice; ALTER FUNCTION public.peek() OWNER TO alice;
             ALTER VIEW public.orders_v OWNER TO alice;
             GRANT SELECT ON public.parent_t, public.orders_v TO bob;
             REVOKE SELECT ON public.orders FROM bob;",
        )
        .unwrap();
    let probe = "SELECT concat_ws(',',
        (SELECT ev_enabled::text FROM pg_rewrite WHERE rulename = 'notes_log'),
        (SELECT count(*) FROM pg_inherits WHERE inhrelid = 'public.child_t'::regclass),
        (SELECT prosecdef::text FROM pg_proc WHERE oid = 'public.peek()'::regprocedure),
        (SELECT array_to_string(reloptions, ';') FROM pg_class WHERE oid = 'public.orders_v'::regclass))";
    let mut su = c.connect(&db, "postgres");
    let before: String = one(&mut su, probe);
    let mut escaped = Vec::new();
    for (i, stmt) in [
        "ALTER TABLE public.notes DISABLE RULE notes_log",
        "ALTER TABLE public.notes ENABLE REPLICA RULE notes_log",
        "ALTER TABLE public.child_t NO INHERIT public.parent_t",
        "ALTER FUNCTION public.peek() SECURITY DEFINER",
        "ALTER VIEW public.orders_v SET (security_invoker = false)",
        "ALTER VIEW public.orders_v RESET (security_invoker)",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("more_{i}");
        let body = format!("DO $do$ BEGIN EXECUTE $x${stmt}$x$; END $do$;");
        let hash = reg(c, &db, &playbook(&id, &body));
        let r = exec_as(&mut c.connect(&db, "alice"), &id, &hash).expect("execute");
        let now: String = one(&mut su, probe);
        if r["status"] != "FAILED" || now != before {
            escaped.push(format!(
                "{stmt}: {} {} ({before} -> {now})",
                r["status"], r["error_code"]
            ));
            su.batch_execute(
                "ALTER TABLE public.notes ENABLE RULE notes_log;
                 DO $$ BEGIN ALTER TABLE public.child_t INHERIT public.parent_t; EXCEPTION WHEN OTHERS THEN NULL; END $$;
                 ALTER FUNCTION public.peek() SECURITY INVOKER;
                 ALTER VIEW public.orders_v SET (security_invoker = true);",
            )
            .unwrap();
        }
    }
    assert!(escaped.is_empty(), "{escaped:#?}");
}
