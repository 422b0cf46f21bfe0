//! Runtime enforcement: destructive SQL that only arrives dynamically (DO/EXECUTE, functions,
//! triggers, prepared statements) is refused while a playbook runs; the target and its rows
//! survive, the run is FAILED and audited. Outside execute nothing is blocked.

use pg_repair_core::Rule;
use pg_repair_tests::{execute, one, playbook, register, Cluster};
use serde_json::Value;

/// A database with public.victim (3 rows, owned by alice) and an audit-trail table.
fn victim_db(c: &Cluster, label: &str) -> String {
    let db = c.fresh_db(label);
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE TABLE public.victim (id int PRIMARY KEY, note text);
             INSERT INTO public.victim VALUES (1, 'a'), (2, 'b'), (3, 'c');
             ALTER TABLE public.victim OWNER TO alice;
             CREATE TABLE public.victim_child (id int PRIMARY KEY, victim_id int REFERENCES public.victim (id));
             ALTER TABLE public.victim_child OWNER TO alice;",
        )
        .unwrap();
    db
}

fn run(c: &Cluster, db: &str, id: &str, body: &str) -> Value {
    let hash = register(&mut c.connect(db, "carol"), &playbook(id, body)).1;
    execute(&mut c.connect(db, "alice"), id, &hash, "runtime test")
        .expect("execute returns normally")
}

/// The error rules lint finds in a playbook made of one statement.
fn lint_errors(c: &Cluster, db: &str, stmt: &str) -> Vec<String> {
    c.connect(db, "carol")
        .query(
            "SELECT rule FROM repair.lint($1) WHERE severity = 'error'",
            &[&playbook("lint_probe", &format!("{stmt};"))],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn assert_blocked(c: &Cluster, db: &str, id: &str, body: &str, what: &str) {
    let r = run(c, db, id, body);
    assert_eq!(r["status"], "FAILED", "{id}: {r}");
    assert_eq!(r["error_code"], "42501", "{id}: {r}");
    let msg = r["error_message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("RUNTIME_BLOCKED") && msg.contains(what),
        "{id}: {msg}"
    );
    let mut a = c.connect(db, "alice");
    assert!(
        one::<bool>(&mut a, "SELECT to_regclass('public.victim') IS NOT NULL"),
        "{id}: table dropped"
    );
    assert_eq!(
        one::<i64>(&mut a, "SELECT count(*) FROM public.victim"),
        3,
        "{id}: rows lost"
    );
    let notes: String = one(
        &mut a,
        "SELECT string_agg(note, ',' ORDER BY id) FROM public.victim",
    );
    assert_eq!(notes, "a,b,c", "{id}: rows changed");
}

#[test]
fn drop_truncate_delete_update_through_do_and_execute_are_refused() {
    let c = Cluster::shared();
    let db = victim_db(c, "rt_do");
    let cases = [
        ("do_drop", "DO $$ BEGIN EXECUTE 'DROP TABLE public.victim CASCADE'; END $$;", "DROP TABLE"),
        ("do_truncate", "DO $$ BEGIN EXECUTE 'TRUNCATE public.victim CASCADE'; END $$;", "TRUNCATE TABLE"),
        ("do_delete", "DO $$ BEGIN DELETE FROM public.victim; END $$;", "DELETE"),
        ("do_update", "DO $$ BEGIN EXECUTE format('UPDATE %I.%I SET note = %L', 'public', 'victim', 'x'); END $$;", "UPDATE"),
        ("do_cte", "DO $$ DECLARE n int; BEGIN WITH d AS (DELETE FROM public.victim RETURNING 1) SELECT count(*) INTO n FROM d; END $$;", "DELETE"),
        ("do_upsert", "DO $$ BEGIN INSERT INTO public.victim VALUES (1, 'z') ON CONFLICT (id) DO UPDATE SET note = 'z'; END $$;", "ON CONFLICT DO UPDATE"),
        ("do_alter_drop", "DO $$ BEGIN EXECUTE 'ALTER TABLE public.victim DROP COLUMN note'; END $$;", "ALTER TABLE"),
    ];
    for (id, body, what) in cases {
        assert_blocked(c, &db, id, body, what);
    }
}

#[test]
fn destructive_sql_in_functions_and_triggers_is_refused() {
    let c = Cluster::shared();
    let db = victim_db(c, "rt_fn");
    // A function created earlier (not by the playbook) that deletes.
    c.connect(&db, "alice")
        .batch_execute(
            "CREATE FUNCTION public.tidy() RETURNS void LANGUAGE sql AS $$ DELETE FROM public.victim $$;
             CREATE TABLE public.inbox (id int);
             CREATE FUNCTION public.on_inbox() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN UPDATE public.victim SET note = 'touched'; RETURN NEW; END $$;
             CREATE TRIGGER inbox_touch AFTER INSERT ON public.inbox FOR EACH ROW EXECUTE FUNCTION public.on_inbox();
             CREATE FUNCTION public.nuke() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DROP TABLE public.victim CASCADE; END $$;",
        )
        .unwrap();
    assert_blocked(c, &db, "fn_delete", "SELECT public.tidy();", "DELETE");
    assert_blocked(c, &db, "fn_drop", "SELECT public.nuke();", "DROP TABLE");
    // The INSERT itself is allowed; the UPDATE its trigger fires is not.
    assert_blocked(
        c,
        &db,
        "trigger_update",
        "INSERT INTO public.inbox VALUES (1);",
        "UPDATE",
    );
    assert_eq!(
        one::<i64>(
            &mut c.connect(&db, "alice"),
            "SELECT count(*) FROM public.inbox"
        ),
        0
    );
    // Dynamic SQL with parameters, in a function the playbook itself creates.
    assert_blocked(
        c,
        &db,
        "execute_using",
        "CREATE OR REPLACE FUNCTION public.via_prepare() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN EXECUTE 'DELETE FROM public.victim WHERE id = $1' USING 1; END $f$;\nSELECT public.via_prepare();",
        "DELETE",
    );
    // The function created by that failed run was rolled back with it.
    assert!(one::<bool>(
        &mut c.connect(&db, "alice"),
        "SELECT to_regprocedure('public.via_prepare()') IS NULL"
    ));
}

#[test]
fn failed_runtime_runs_are_audited_and_the_chain_verifies() {
    let c = Cluster::shared();
    let db = victim_db(c, "rt_audit");
    assert_blocked(
        c,
        &db,
        "audited_drop",
        "DO $$ BEGIN EXECUTE 'DROP TABLE public.victim'; END $$;",
        "DROP TABLE",
    );
    let mut su = c.connect(&db, "postgres");
    let (status, code): (String, String) = su
        .query_one(
            "SELECT status, error_code FROM repair.runs WHERE playbook_id = 'audited_drop'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((status.as_str(), code.as_str()), ("FAILED", "42501"));
    assert!(one::<bool>(&mut su, "SELECT ok FROM repair.verify_audit()"));
}

#[test]
fn allowed_work_is_not_blocked() {
    let c = Cluster::shared();
    let db = victim_db(c, "rt_allowed");
    // Inserts into a table with a foreign key (the RI check locks rows FOR KEY SHARE),
    // indexes, comments, functions, ANALYZE, sequences: all fine while the playbook runs.
    let body = "CREATE INDEX IF NOT EXISTS victim_note_idx ON public.victim (note);\n\
                INSERT INTO public.victim_child VALUES (10, 1) ON CONFLICT DO NOTHING;\n\
                COMMENT ON TABLE public.victim IS 'restored';\n\
                CREATE SEQUENCE IF NOT EXISTS public.victim_seq;\n\
                SELECT nextval('public.victim_seq');\n\
                ANALYZE public.victim;\n\
                SELECT * FROM public.victim FOR UPDATE;";
    let r = run(c, &db, "allowed", body);
    assert_eq!(r["status"], "SUCCESS", "{r}");
    assert_eq!(
        one::<i64>(
            &mut c.connect(&db, "alice"),
            "SELECT count(*) FROM public.victim_child"
        ),
        1
    );
}

#[test]
fn hooks_do_nothing_outside_execute() {
    let c = Cluster::shared();
    let db = victim_db(c, "rt_outside");
    let mut a = c.connect(&db, "alice");
    a.batch_execute(
        "UPDATE public.victim SET note = 'x' WHERE id = 1;
         DELETE FROM public.victim WHERE id = 3;
         DO $$ BEGIN EXECUTE 'TRUNCATE public.victim_child'; END $$;
         CREATE TABLE public.scratch (id int); DROP TABLE public.scratch;",
    )
    .expect("ordinary SQL outside a playbook is untouched");
    assert_eq!(one::<i64>(&mut a, "SELECT count(*) FROM public.victim"), 2);
    // and after a blocked run, the same session is back to normal
    let r = run(
        c,
        &db,
        "then_normal",
        "DO $$ BEGIN DELETE FROM public.victim; END $$;",
    );
    assert_eq!(r["status"], "FAILED");
    a.batch_execute("DELETE FROM public.victim WHERE id = 2")
        .expect("not blocked after the run");
}

#[test]
fn session_replication_role_and_role_changes_are_refused() {
    let c = Cluster::shared();
    let db = victim_db(c, "rt_roles");
    let r = run(
        c,
        &db,
        "set_role_dyn",
        "DO $$ BEGIN EXECUTE 'SET ROLE postgres'; END $$;",
    );
    assert_eq!(r["status"], "FAILED", "{r}");
    let r = run(
        c,
        &db,
        "alter_system_dyn",
        "DO $$ BEGIN EXECUTE 'ALTER SYSTEM SET work_mem = ''64MB'''; END $$;",
    );
    assert_eq!(r["status"], "FAILED", "{r}");
    let r = run(
        c,
        &db,
        "create_role_dyn",
        "DO $$ BEGIN EXECUTE 'CREATE ROLE sneaky SUPERUSER'; END $$;",
    );
    assert_eq!(r["status"], "FAILED", "{r}");
    let mut su = c.connect(&db, "postgres");
    assert_eq!(
        one::<i64>(
            &mut su,
            "SELECT count(*) FROM pg_roles WHERE rolname = 'sneaky'"
        ),
        0
    );
    // set_config() from a function is not a utility statement: the run's end check catches it.
    // Only a superuser may change it, so run this one as a superuser executor.
    let hash = register(
        &mut c.connect(&db, "carol"),
        &playbook(
            "srr_fn",
            "SELECT set_config('session_replication_role', 'replica', true);",
        ),
    )
    .1;
    su.batch_execute("GRANT repair_operators TO admin2")
        .unwrap();
    let mut admin = c.connect(&db, "admin2");
    let r = execute(&mut admin, "srr_fn", &hash, "r").unwrap();
    assert_eq!(
        (r["status"].as_str(), r["error_code"].as_str()),
        (Some("FAILED"), Some("RP002")),
        "{r}"
    );
    assert_eq!(
        one::<String>(&mut admin, "SHOW session_replication_role"),
        "origin"
    );
}

#[test]
fn privilege_changes_and_session_state_reached_dynamically_are_refused() {
    let c = Cluster::shared();
    let db = victim_db(c, "rt_priv");
    c.connect(&db, "postgres")
        .batch_execute(
            "ALTER TABLE public.victim ENABLE ROW LEVEL SECURITY;
             GRANT pg_read_server_files TO alice;
             GRANT EXECUTE ON FUNCTION pg_read_file(text) TO alice;",
        )
        .unwrap();
    let cases = [
        ("do_policy", "DO $$ BEGIN EXECUTE 'CREATE POLICY everyone ON public.victim USING (true)'; END $$;", "CREATE POLICY"),
        ("do_definer", "DO $$ BEGIN EXECUTE 'CREATE OR REPLACE FUNCTION public.esc() RETURNS int LANGUAGE sql SECURITY DEFINER AS ''SELECT 1'''; END $$;", "CREATE FUNCTION"),
        ("do_grant", "DO $$ BEGIN EXECUTE 'GRANT ALL ON public.victim TO PUBLIC'; END $$;", "GRANT"),
        ("do_rename", "DO $$ BEGIN EXECUTE 'ALTER TABLE public.victim RENAME TO victim_old'; END $$;", "ALTER TABLE"),
        ("do_type", "DO $$ BEGIN EXECUTE 'ALTER TABLE public.victim ALTER COLUMN note TYPE int USING 0'; END $$;", "ALTER TABLE"),
        ("do_listen", "DO $$ BEGIN EXECUTE 'LISTEN repair_leak'; END $$;", "LISTEN"),
        ("do_read_file", "DO $$ BEGIN PERFORM pg_read_file('/etc/passwd'); END $$;", "pg_read_file"),
    ];
    for (id, body, what) in cases {
        assert_blocked(c, &db, id, body, what);
    }
    let mut a = c.connect(&db, "alice");
    assert!(
        one::<bool>(&mut a, "SELECT to_regprocedure('public.esc()') IS NULL"),
        "the definer function was rolled back"
    );
    assert_eq!(
        one::<i64>(
            &mut a,
            "SELECT count(*) FROM pg_policies WHERE tablename = 'victim'"
        ),
        0
    );
}

/// A waiver for updates does not lift a MERGE that deletes: each MERGE action is judged, so
/// `WHEN MATCHED THEN DELETE` (and, on PostgreSQL 17+, `WHEN NOT MATCHED BY SOURCE THEN DELETE`)
/// arriving through dynamic SQL still needs the delete waiver. The update-only MERGE runs.
#[test]
fn an_update_waiver_does_not_lift_a_merge_that_deletes() {
    let c = Cluster::shared();
    let db = victim_db(c, "rt_merge");
    let with_update_waiver = |id: &str, body: &str| {
        format!(
            "-- repair: {id}\n-- title: merge {id}\n-- environments: staging, prod\n\
             -- waive: ban-update until 2099-12-31 because merge waiver test\n{body}\n"
        )
    };
    let mut cases = vec![(
        "merge_matched_delete",
        "DO $$ BEGIN EXECUTE 'MERGE INTO public.victim v USING (SELECT 1 AS id) s ON v.id = s.id \
         WHEN MATCHED THEN DELETE'; END $$;",
    )];
    if pg_repair_tests::PG_BIN.major() >= 17 {
        cases.push((
            "merge_by_source_delete",
            "DO $$ BEGIN EXECUTE 'MERGE INTO public.victim v USING (SELECT 1 AS id) s ON v.id = s.id \
             WHEN MATCHED THEN UPDATE SET note = v.note WHEN NOT MATCHED BY SOURCE THEN DELETE'; END $$;",
        ));
    }
    for (id, body) in cases {
        let hash = register(&mut c.connect(&db, "carol"), &with_update_waiver(id, body)).1;
        let r = execute(&mut c.connect(&db, "alice"), id, &hash, "merge test").expect("execute");
        assert_eq!(r["status"], "FAILED", "{id}: {r}");
        assert_eq!(r["error_code"], "42501", "{id}: {r}");
        let msg = r["error_message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("RUNTIME_BLOCKED") && msg.contains(Rule::BanDelete.id()),
            "{id}: {msg}"
        );
        let mut a = c.connect(&db, "alice");
        assert_eq!(
            one::<i64>(&mut a, "SELECT count(*) FROM public.victim"),
            3,
            "{id}: rows deleted"
        );
    }
    // the waiver still lifts a MERGE that only updates
    let id = "merge_update_only";
    let hash = register(
        &mut c.connect(&db, "carol"),
        &with_update_waiver(
            id,
            "DO $$ BEGIN EXECUTE 'MERGE INTO public.victim v USING (SELECT 1 AS id) s ON v.id = s.id \
             WHEN MATCHED THEN UPDATE SET note = ''m'''; END $$;",
        ),
    )
    .1;
    let r = execute(&mut c.connect(&db, "alice"), id, &hash, "merge test").expect("execute");
    assert_eq!(r["status"], "SUCCESS", "{r}");
    let notes: String = one(
        &mut c.connect(&db, "alice"),
        "SELECT string_agg(note, ',' ORDER BY id) FROM public.victim",
    );
    assert_eq!(notes, "m,b,c");
}

/// Deferred work through an event trigger: a superuser executor's playbook that creates one
/// through dynamic SQL (lint sees only a DO block) is refused at runtime, so nothing is left to
/// run later in other sessions: on every DDL, or at every login on PostgreSQL 17+.
#[test]
fn a_playbook_cannot_leave_an_event_trigger_behind() {
    // A cluster of its own: the superuser becomes an executor here.
    let c = Cluster::start(&[], true);
    c.set_conf(&[("repair.executors", Some("repair_operators, postgres"))]);
    let db = c.fresh_db("rt_evt");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(
        "CREATE FUNCTION public.evt() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'fired'; END $$;",
    )
    .unwrap();
    let event = if pg_repair_tests::PG_BIN.major() >= 17 {
        "login"
    } else {
        "ddl_command_start"
    };
    let dynamic = format!(
        "DO $$ BEGIN EXECUTE 'CREATE EVENT TRIGGER evil ON {event} EXECUTE FUNCTION public.evt()'; END $$;"
    );
    let hash = register(&mut c.connect(&db, "carol"), &playbook("evt_dyn", &dynamic)).1;
    let r = execute(&mut su, "evt_dyn", &hash, "event trigger test").expect("execute");
    assert_eq!(r["status"], "FAILED", "{r}");
    assert_eq!(r["error_code"], "42501", "{r}");
    let msg = r["error_message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("RUNTIME_BLOCKED") && msg.contains(Rule::BanEventTrigger.id()),
        "{msg}"
    );
    // written plainly, lint refuses it before anything runs
    let plain = format!("CREATE EVENT TRIGGER evil ON {event} EXECUTE FUNCTION public.evt();");
    let (_, hash, _) = register(&mut c.connect(&db, "carol"), &playbook("evt_plain", &plain));
    let lint: i32 = one(
        &mut su,
        "SELECT lint_errors FROM repair.playbooks WHERE id = 'evt_plain'",
    );
    assert!(lint >= 1, "CREATE EVENT TRIGGER is a lint error");
    assert!(execute(&mut su, "evt_plain", &hash, "event trigger test").is_err());
    assert_eq!(
        one::<i64>(
            &mut su,
            "SELECT count(*) FROM pg_event_trigger WHERE evtname = 'evil'"
        ),
        0,
        "an event trigger was left behind"
    );
}

/// PostgreSQL 18: `ALTER CONSTRAINT … NOT ENFORCED` keeps a foreign key in the catalog but stops
/// it checking anything, which removes a guarantee as DROP CONSTRAINT does: a lint error and,
/// through dynamic SQL, refused at runtime; the key stays enforced. (Before 18 the syntax does
/// not exist, so the test only runs on 18 and later.)
#[test]
fn a_foreign_key_cannot_be_switched_to_not_enforced() {
    if pg_repair_tests::PG_BIN.major() < 18 {
        return;
    }
    let c = Cluster::shared();
    let db = victim_db(c, "rt_not_enforced");
    let fk: String = one(
        &mut c.connect(&db, "postgres"),
        "SELECT conname::text FROM pg_constraint WHERE conrelid = 'public.victim_child'::regclass AND contype = 'f'",
    );
    let stmt = format!("ALTER TABLE public.victim_child ALTER CONSTRAINT {fk} NOT ENFORCED");
    let lint = lint_errors(c, &db, &stmt);
    assert!(
        lint.iter().any(|r| r == Rule::BanAlterTableDrop.id()),
        "{lint:?}"
    );
    let r = run(
        c,
        &db,
        "ne_dynamic",
        &format!("DO $$ BEGIN EXECUTE '{stmt}'; END $$;"),
    );
    assert_eq!(r["status"], "FAILED", "{r}");
    assert_eq!(r["error_code"], "42501", "{r}");
    assert!(
        r["error_message"]
            .as_str()
            .unwrap_or_default()
            .contains("RUNTIME_BLOCKED: ALTER TABLE (ban-alter-table-drop)"),
        "{r}"
    );
    let enforced: bool = one(
        &mut c.connect(&db, "postgres"),
        &format!("SELECT conenforced FROM pg_constraint WHERE conname = '{fk}'"),
    );
    assert!(enforced, "the foreign key was switched off");
}

/// PostgreSQL 17: `ALTER COLUMN … SET EXPRESSION` recomputes every row of a stored generated
/// column, a rewrite like ALTER COLUMN … TYPE: `ban-alter-type` in lint and, without a waiver,
/// at runtime. (The syntax is new in 17, so the test runs on 17 and later.)
#[test]
fn a_generated_column_cannot_be_recomputed_without_a_waiver() {
    if pg_repair_tests::PG_BIN.major() < 17 {
        return;
    }
    let c = Cluster::shared();
    let db = victim_db(c, "rt_set_expr");
    c.connect(&db, "postgres")
        .batch_execute(
            "ALTER TABLE public.victim ADD COLUMN doubled int GENERATED ALWAYS AS (id * 2) STORED",
        )
        .unwrap();
    let stmt = "ALTER TABLE public.victim ALTER COLUMN doubled SET EXPRESSION AS (id * 3)";
    let lint = lint_errors(c, &db, stmt);
    assert!(
        lint.iter().any(|r| r == Rule::BanAlterType.id()),
        "{lint:?}"
    );
    let r = run(
        c,
        &db,
        "se_dynamic",
        &format!("DO $$ BEGIN EXECUTE '{stmt}'; END $$;"),
    );
    assert_eq!(r["status"], "FAILED", "{r}");
    assert_eq!(r["error_code"], "42501", "{r}");
    let total: i64 = one(
        &mut c.connect(&db, "postgres"),
        "SELECT sum(doubled) FROM public.victim",
    );
    assert_eq!(total, 12, "the generated column was recomputed");
}

/// The hooks' refusals keep their exact SQLSTATE, message and detail (they are raised through
/// errors::Kind): PROTECTED for what event triggers cannot see, RUNTIME_BLOCKED inside a run.
#[test]
fn hook_refusals_keep_their_sqlstate_and_wording() {
    let c = Cluster::shared();
    let db = victim_db(c, "rt_wording");
    let e = pg_repair_tests::db_error(
        c.connect(&db, "postgres")
            .batch_execute("DROP SCHEMA repair CASCADE"),
    );
    assert_eq!(e.code().code(), "42501", "{}", e.message());
    assert_eq!(e.message(), "PROTECTED: DROP SCHEMA repair is refused");
    assert_eq!(
        e.detail(),
        Some(
            "It would silence or detach pg_repair's audit protection. To remove the extension, \
             use DROP EXTENSION pg_repair (it drops its data)."
        )
    );

    for (id, body, message) in [
        (
            "wording_truncate",
            "DO $$ BEGIN EXECUTE 'TRUNCATE public.victim'; END $$;",
            "statement 1: RUNTIME_BLOCKED: TRUNCATE TABLE (ban-truncate) is refused while a \
             playbook runs (rolled back)",
        ),
        (
            "wording_delete",
            "DO $$ BEGIN EXECUTE 'DELETE FROM public.victim'; END $$;",
            "statement 1: RUNTIME_BLOCKED: DELETE (ban-delete) is refused while a playbook runs \
             (rolled back)",
        ),
    ] {
        let hash = register(&mut c.connect(&db, "carol"), &playbook(id, body)).1;
        let r = execute(&mut c.connect(&db, "alice"), id, &hash, "wording").expect("execute");
        assert_eq!(r["status"], "FAILED", "{id}: {r}");
        assert_eq!(r["error_code"], "42501", "{id}: {r}");
        assert_eq!(r["error_message"], message, "{id}: {r}");
    }
}
