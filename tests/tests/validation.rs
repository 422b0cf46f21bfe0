//! Validation checks and the GO / HOLD / NO-GO decision, row-count baselines, and the
//! migration gate, against a real server.

use pg_repair_tests::{conf_lock, db_error, one, register, Cluster};
use postgres::Client;

/// A database whose schema passes every built-in check.
fn clean_db(c: &Cluster, label: &str) -> String {
    let db = c.fresh_db(label);
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(
        "GRANT EXECUTE ON FUNCTION repair.run_checks(text[]), repair.decision(uuid) TO repair_operators;
         GRANT EXECUTE ON FUNCTION repair.baseline_capture(text, regclass[]), repair.baseline_verify(text) TO repair_operators;
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA repair TO repair_operators;
         CREATE TABLE public.customers (id bigint PRIMARY KEY);
         CREATE TABLE public.orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES public.customers (id));
         CREATE INDEX orders_customer_id_idx ON public.orders (customer_id);
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO repair_operators;",
    )
    .unwrap();
    db
}

/// Runs the checks as alice; returns (run_id, [(check_id, status, violations)]).
fn run_checks(c: &mut Client, tags: Option<Vec<&str>>) -> (String, Vec<(String, String, i64)>) {
    let tags: Option<Vec<String>> = tags.map(|t| t.into_iter().map(String::from).collect());
    let rows = c
        .query(
            "SELECT run_id::text, check_id, status, violation_count FROM repair.run_checks($1)",
            &[&tags],
        )
        .expect("run_checks");
    let run_id = rows
        .first()
        .map(|r| r.get::<_, String>(0))
        .unwrap_or_default();
    (
        run_id,
        rows.iter()
            .map(|r| (r.get(1), r.get(2), r.get(3)))
            .collect(),
    )
}

fn status_of(results: &[(String, String, i64)], id: &str) -> (String, i64) {
    let r = results
        .iter()
        .find(|r| r.0 == id)
        .unwrap_or_else(|| panic!("{id} not in {results:?}"));
    (r.1.clone(), r.2)
}

fn decision(c: &mut Client, run_id: &str) -> (String, String) {
    let r = c
        .query_one(
            "SELECT decision, score FROM repair.decision($1::text::uuid)",
            &[&run_id],
        )
        .unwrap();
    (r.get(0), r.get(1))
}

#[test]
fn builtin_checks_pass_on_a_clean_schema_and_fail_on_each_violation() {
    let c = Cluster::shared();
    let db = clean_db(c, "builtins");
    let mut a = c.connect(&db, "alice");
    let (run, results) = run_checks(&mut a, None);
    for id in [
        "builtin.fk_type_mismatch",
        "builtin.fk_missing_index",
        "builtin.invalid_index",
        "builtin.table_without_pk",
    ] {
        assert_eq!(status_of(&results, id), ("PASS".into(), 0), "{id}");
    }
    assert_eq!(decision(&mut a, &run), ("GO".into(), "4/4".into()));

    let mut su = c.connect(&db, "postgres");
    // (text -> uuid cannot even be declared as an FK; integer -> bigint can)
    su.batch_execute(
        "CREATE TABLE public.projects (id bigint PRIMARY KEY);
         CREATE TABLE public.tasks (id bigint PRIMARY KEY, project_id integer REFERENCES public.projects (id));
         CREATE TABLE public.no_pk (x int);
         CREATE TABLE public.dups (v int); INSERT INTO public.dups VALUES (1), (1);",
    )
    .unwrap();
    // a failed CREATE INDEX CONCURRENTLY leaves an invalid index behind
    let _ = su.batch_execute("CREATE UNIQUE INDEX CONCURRENTLY dups_v_uidx ON public.dups (v)");
    let (run, results) = run_checks(&mut a, None);
    assert_eq!(status_of(&results, "builtin.fk_type_mismatch").0, "FAIL");
    assert_eq!(status_of(&results, "builtin.fk_missing_index").0, "FAIL"); // tasks.project_id
    assert_eq!(
        status_of(&results, "builtin.invalid_index"),
        ("FAIL".into(), 1)
    );
    assert_eq!(
        status_of(&results, "builtin.table_without_pk"),
        ("FAIL".into(), 2)
    ); // no_pk, dups
    assert_eq!(decision(&mut a, &run).0, "NO-GO");
    // samples show the offending objects
    let sample: serde_json::Value = one(
        &mut su,
        &format!("SELECT sample FROM repair.check_results WHERE run_id = '{run}' AND check_id = 'builtin.invalid_index'"),
    );
    assert!(sample.to_string().contains("dups_v_uidx"), "{sample}");
}

fn check_file(id: &str, severity: &str, tags: &str, query: &str) -> String {
    format!("-- check: {id}\n-- title: {id}\n-- severity: {severity}\n-- tags: {tags}\n{query}\n")
}

#[test]
fn decision_thresholds() {
    let c = Cluster::shared();
    let db = clean_db(c, "thresholds");
    let mut carol = c.connect(&db, "carol");
    // passing check, then 0..3 failing important checks, then one failing critical
    register(
        &mut carol,
        &check_file("always_ok", "important", "t0", "SELECT 1 WHERE false;"),
    );
    let mut a = c.connect(&db, "alice");
    let expect = [
        // built-ins run only when one of their tags is named: t0 scopes to the t0 checks
        ("t0", "GO", "1/1"),
        ("t1", "HOLD", "1/2"),
        ("t2", "HOLD", "1/3"),
        ("t3", "NO-GO", "1/4"),
    ];
    for (i, (tag, want, score)) in expect.iter().enumerate() {
        if i > 0 {
            register(
                &mut carol,
                &check_file(&format!("imp_{i}"), "important", "t0", "SELECT 1 AS bad;"),
            );
        }
        let (run, _) = run_checks(&mut a, Some(vec!["t0"]));
        assert_eq!(
            decision(&mut a, &run),
            (want.to_string(), score.to_string()),
            "{tag}"
        );
    }
    // one critical failure alone is NO-GO
    register(
        &mut carol,
        &check_file("crit", "critical", "t9", "SELECT 1 AS bad;"),
    );
    let (run, results) = run_checks(&mut a, Some(vec!["t9"]));
    assert_eq!(results.len(), 1, "only the t9 check: {results:?}");
    assert_eq!(decision(&mut a, &run), ("NO-GO".into(), "0/1".into()));
    let (run, results) = run_checks(&mut a, Some(vec!["t9", "builtin"]));
    assert_eq!(results.len(), 5, "4 built-ins + the t9 check: {results:?}");
    assert_eq!(decision(&mut a, &run), ("NO-GO".into(), "4/5".into()));
}

#[test]
fn a_check_that_errors_is_a_fail_and_checks_cannot_write() {
    let c = Cluster::shared();
    let db = clean_db(c, "check_errors");
    let mut carol = c.connect(&db, "carol");
    register(
        &mut carol,
        &check_file(
            "broken",
            "important",
            "e",
            "SELECT * FROM public.does_not_exist;",
        ),
    );
    // a check that tries to write through a volatile function is refused (read-only) and FAILs
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE FUNCTION public.sneaky_write() RETURNS int LANGUAGE sql AS $$ INSERT INTO public.customers VALUES (99) RETURNING 1 $$;
             GRANT INSERT ON public.customers TO repair_operators;",
        )
        .unwrap();
    register(
        &mut carol,
        &check_file(
            "writer",
            "important",
            "e",
            "SELECT public.sneaky_write() WHERE false OR true;",
        ),
    );
    // ... also when it first tries to switch the (sub)transaction back to read-write
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE FUNCTION public.unlock_write() RETURNS int LANGUAGE plpgsql AS $$
             BEGIN PERFORM set_config('transaction_read_only', 'off', true);
                   INSERT INTO public.customers VALUES (98); RETURN 1; END $$;",
        )
        .unwrap();
    register(
        &mut carol,
        &check_file(
            "unlocker",
            "important",
            "e",
            "SELECT public.unlock_write() WHERE false OR true;",
        ),
    );
    let mut a = c.connect(&db, "alice");
    // The read-only setting of a check does not outlive it: the caller's transaction can write.
    let mut tx = a.transaction().unwrap();
    let rows = tx
        .query(
            "SELECT check_id, status, error FROM repair.run_checks(ARRAY['e'])",
            &[],
        )
        .unwrap();
    let ro: String = tx
        .query_one("SHOW transaction_read_only", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        ro, "off",
        "run_checks left the caller's transaction read-only"
    );
    tx.batch_execute("CREATE TEMP TABLE after_checks(x int); INSERT INTO after_checks VALUES (1)")
        .expect("the caller's transaction can still write after run_checks");
    tx.commit().unwrap();
    let get = |id: &str| {
        rows.iter()
            .find(|r| r.get::<_, String>(0) == id)
            .map(|r| (r.get::<_, String>(1), r.get::<_, Option<String>>(2)))
            .unwrap()
    };
    let (status, err) = get("broken");
    assert_eq!(status, "FAIL");
    assert!(err.unwrap_or_default().starts_with("42P01"));
    let (status, err) = get("unlocker");
    assert_eq!(status, "FAIL");
    let err = err.unwrap_or_default();
    assert!(
        err.starts_with("25001") || err.starts_with("25006"),
        "a check turned read-only off: {err}"
    );
    let (status, err) = get("writer");
    assert_eq!(status, "FAIL");
    assert!(
        err.unwrap_or_default().starts_with("25006"),
        "read-only transaction"
    );
    assert_eq!(
        one::<i64>(
            &mut a,
            "SELECT count(*) FROM public.customers WHERE id IN (98, 99)"
        ),
        0
    );
}

#[test]
fn check_files_must_be_one_read_only_query() {
    let c = Cluster::shared();
    let db = clean_db(c, "check_lint");
    let mut carol = c.connect(&db, "carol");
    for (id, body) in [
        ("two_queries", "SELECT 1;\nSELECT 2;"),
        ("deleter", "DELETE FROM public.orders;"),
        ("locker", "SELECT * FROM public.orders FOR UPDATE;"),
        ("into", "SELECT * INTO public.copy FROM public.orders;"),
    ] {
        register(&mut carol, &check_file(id, "critical", "lint", body));
        let errors: i32 = one(
            &mut c.connect(&db, "postgres"),
            &format!("SELECT lint_errors FROM repair.playbooks WHERE id = '{id}'"),
        );
        assert!(errors >= 1, "{id}");
    }
    let mut a = c.connect(&db, "alice");
    let n: i64 = one(&mut a, "SELECT count(*) FROM repair.lint($$-- check: ok_one\n-- title: t\n-- severity: critical\nSELECT 1 WHERE false;$$)");
    assert_eq!(n, 0);
}

#[test]
fn parameterised_builtins_from_check_files() {
    let c = Cluster::shared();
    let db = clean_db(c, "param_checks");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(
        "CREATE ROLE app_role_v NOLOGIN;
         CREATE TABLE public.source_configs (id bigint PRIMARY KEY, workspace_id bigint, source_type text, status text);
         CREATE TABLE public.events (id bigint PRIMARY KEY, order_id bigint);
         INSERT INTO public.customers VALUES (1); INSERT INTO public.orders VALUES (1, 1);
         INSERT INTO public.events VALUES (1, 1), (2, 42), (3, 42);
         GRANT SELECT, INSERT, UPDATE ON public.orders TO app_role_v;
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO repair_operators;",
    )
    .unwrap();
    let mut carol = c.connect(&db, "carol");
    register(
        &mut carol,
        &check_file(
            "app_cannot_delete",
            "critical",
            "p",
            "SELECT * FROM repair.check_role_cannot_delete('app_role_v');",
        ),
    );
    register(&mut carol, &check_file("one_active_config", "critical", "p",
        "SELECT * FROM repair.check_partial_unique_index('public.source_configs', ARRAY['workspace_id', 'source_type'], $$status = 'ACTIVE'$$);"));
    register(&mut carol, &check_file("events_orders", "important", "p",
        "SELECT * FROM repair.check_orphans('public.events', 'order_id', 'public.orders', 'id');"));
    let mut a = c.connect(&db, "alice");
    let (_, r) = run_checks(&mut a, Some(vec!["p"]));
    assert_eq!(status_of(&r, "app_cannot_delete"), ("PASS".into(), 0));
    assert_eq!(status_of(&r, "one_active_config").0, "FAIL");
    assert_eq!(status_of(&r, "events_orders"), ("FAIL".into(), 1)); // one orphan value (42), two rows
    su.batch_execute(
        "GRANT DELETE ON public.orders TO app_role_v;
         CREATE UNIQUE INDEX source_configs_one_active ON public.source_configs (workspace_id, source_type) WHERE status = 'ACTIVE';
         INSERT INTO public.orders VALUES (42, 1);",
    )
    .unwrap();
    let (_, r) = run_checks(&mut a, Some(vec!["p"]));
    assert_eq!(status_of(&r, "app_cannot_delete"), ("FAIL".into(), 1));
    assert_eq!(status_of(&r, "one_active_config"), ("PASS".into(), 0));
    assert_eq!(status_of(&r, "events_orders"), ("PASS".into(), 0));
}

#[test]
fn check_runs_are_append_only_and_chained() {
    let c = Cluster::shared();
    let db = clean_db(c, "check_audit");
    let mut a = c.connect(&db, "alice");
    run_checks(&mut a, None);
    run_checks(&mut a, None);
    let mut su = c.connect(&db, "postgres");
    assert_eq!(
        one::<i64>(&mut su, "SELECT count(*) FROM repair.check_runs"),
        2
    );
    assert_eq!(
        one::<i64>(&mut su, "SELECT count(*) FROM repair.check_results"),
        8
    );
    for sql in [
        "UPDATE repair.check_results SET status = 'PASS'",
        "DELETE FROM repair.check_runs",
        "TRUNCATE repair.check_results",
    ] {
        assert_eq!(
            db_error(su.batch_execute(sql)).code().code(),
            "42501",
            "{sql}"
        );
    }
    assert!(one::<bool>(&mut su, "SELECT ok FROM repair.verify_audit()"));
    su.batch_execute("UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'repair.check_results'::regclass").unwrap();
    let mut su = c.connect(&db, "postgres");
    su.batch_execute("UPDATE repair.check_results SET status = 'FAIL', violation_count = 7 WHERE seq = (SELECT max(seq) FROM repair.check_results)").unwrap();
    let (ok, table): (bool, Option<String>) = su
        .query_one("SELECT ok, first_bad_table FROM repair.verify_audit()", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert!(!ok);
    assert_eq!(table.as_deref(), Some("check_results"));
}

#[test]
fn baseline_drift_names_exactly_the_changed_table() {
    let c = Cluster::shared();
    let db = clean_db(c, "baseline");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(
        "INSERT INTO public.customers SELECT g FROM generate_series(1, 100) g;
         INSERT INTO public.orders SELECT g, 1 + g % 100 FROM generate_series(1, 250) g;
         CREATE TABLE public.gone (id int PRIMARY KEY);
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO repair_operators;
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO repair_operators;",
    )
    .unwrap();
    let mut a = c.connect(&db, "alice");
    let captured: Vec<(String, i64)> = a
        .query(
            "SELECT table_name, row_count FROM repair.baseline_capture('before-deploy')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        captured.contains(&("public.orders".into(), 250)),
        "{captured:?}"
    );
    assert!(captured.contains(&("public.customers".into(), 100)));
    assert!(
        !captured.iter().any(|(t, _)| t.starts_with("repair.")),
        "extension tables excluded"
    );
    let drift = |a: &mut Client| -> Vec<(String, String, Option<i64>, Option<i64>)> {
        a.query("SELECT table_name, status, before, after FROM repair.baseline_verify('before-deploy') ORDER BY 1", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    };
    assert!(drift(&mut a).is_empty());
    su.batch_execute("DELETE FROM public.orders WHERE id <= 10")
        .unwrap();
    assert_eq!(
        drift(&mut a),
        vec![(
            "public.orders".into(),
            "changed".into(),
            Some(250),
            Some(240)
        )]
    );
    su.batch_execute("DROP TABLE public.gone; CREATE TABLE public.newcomer (id int PRIMARY KEY); INSERT INTO public.newcomer VALUES (1)").unwrap();
    assert_eq!(
        drift(&mut a),
        vec![
            ("public.gone".into(), "missing".into(), Some(0), None),
            ("public.newcomer".into(), "added".into(), None, Some(1)),
            (
                "public.orders".into(),
                "changed".into(),
                Some(250),
                Some(240)
            ),
        ]
    );
    // a listed capture only tracks its tables
    a.batch_execute("SELECT * FROM repair.baseline_capture('only-customers', ARRAY['public.customers'::regclass])").unwrap();
    su.batch_execute("INSERT INTO public.newcomer VALUES (2)")
        .unwrap();
    let n: i64 = one(
        &mut a,
        "SELECT count(*) FROM repair.baseline_verify('only-customers')",
    );
    assert_eq!(n, 0);
    let e = db_error(a.batch_execute("SELECT * FROM repair.baseline_verify('never-captured')"));
    assert_eq!(e.code().code(), "22023");
}

#[test]
fn migration_gate_across_the_role_matrix() {
    let _lock = conf_lock();
    let c = Cluster::shared();
    let db = clean_db(c, "gate");
    let gate = |c: &Cluster, user: &str, confirm: bool| -> Result<serde_json::Value, String> {
        c.connect(&db, user)
            .query_one("SELECT repair.assert_migrations_allowed($1)", &[&confirm])
            .map(|r| r.get(0))
            .map_err(|e| {
                e.as_db_error()
                    .map(|d| d.code().code().to_string())
                    .unwrap_or_default()
            })
    };
    // (db_role, allow_prod, user, confirm_prod, expected)
    type Case<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        bool,
        Result<(), &'a str>,
    );
    let cases: &[Case] = &[
        (Some("staging"), None, "alice", false, Ok(())),
        (Some("staging"), None, "bob", false, Err("42501")),
        (None, None, "alice", false, Err("RP001")),
        (Some("Staging"), None, "alice", false, Err("RP001")),
        (Some("replica"), None, "alice", true, Err("RP002")),
        (Some("prod"), Some("off"), "alice", true, Err("RP002")),
        (Some("prod"), Some("on"), "alice", false, Err("RP002")),
        (Some("prod"), Some("on"), "alice", true, Ok(())),
    ];
    c.connect(&db, "postgres")
        .batch_execute("GRANT EXECUTE ON FUNCTION repair.assert_migrations_allowed(boolean) TO bob")
        .unwrap();
    for (role, allow, user, confirm, want) in cases {
        c.set_conf(&[
            ("repair.db_role", *role),
            ("repair.allow_prod", Some(allow.unwrap_or("off"))),
        ]);
        let got = gate(c, user, *confirm);
        match want {
            Ok(()) => assert_eq!(
                got.as_ref().map(|v| v["allowed"].clone()),
                Ok(serde_json::json!(true)),
                "{role:?}/{allow:?}/{user}"
            ),
            Err(code) => assert_eq!(
                got.err().as_deref(),
                Some(*code),
                "{role:?}/{allow:?}/{user}"
            ),
        }
    }
    c.set_conf(&[
        ("repair.db_role", Some("staging")),
        ("repair.allow_prod", Some("off")),
    ]);
}

#[test]
fn authority_reports_evidence_and_never_infers() {
    let _lock = conf_lock();
    let c = Cluster::shared();
    let db = clean_db(c, "authority");
    let mut a = c.connect(&db, "alice");
    let v: serde_json::Value = one(&mut a, "SELECT repair.authority()");
    assert_eq!(v["declared_role"], "staging");
    assert_eq!(v["evidence"]["in_recovery"], false);
    assert_eq!(v["evidence"]["listen_addresses"], "127.0.0.1");
    c.set_conf(&[("repair.db_role", Some("replica"))]);
    let v: serde_json::Value = one(&mut c.connect(&db, "alice"), "SELECT repair.authority()");
    assert_eq!(
        v["declared_role"], "replica",
        "declared, not inferred from the evidence"
    );
    assert!(v["warnings"].to_string().contains("not in recovery"), "{v}");
    c.set_conf(&[("repair.db_role", None)]);
    let v: serde_json::Value = one(&mut c.connect(&db, "alice"), "SELECT repair.authority()");
    assert_eq!(v["declared_role"], serde_json::Value::Null);
    assert_eq!(v["role_valid"], false);
    c.set_conf(&[("repair.db_role", Some("staging"))]);
}

#[test]
fn run_checks_with_tags_runs_builtins_only_when_one_of_their_tags_is_named() {
    let c = Cluster::shared();
    let db = clean_db(c, "tag_scope");
    // A table without a primary key anywhere: builtin.table_without_pk would FAIL.
    c.connect(&db, "postgres")
        .batch_execute("CREATE TABLE public.no_pk (x int)")
        .unwrap();
    let mut carol = c.connect(&db, "carol");
    register(
        &mut carol,
        "-- check: release_ok\n-- title: t\n-- severity: critical\n-- tags: release_42\nSELECT 1 WHERE false;\n",
    );
    let mut a = c.connect(&db, "alice");
    let ids = |r: &[(String, String, i64)]| r.iter().map(|x| x.0.clone()).collect::<Vec<_>>();

    let (run, results) = run_checks(&mut a, Some(vec!["release_42"]));
    assert_eq!(ids(&results), vec!["release_ok".to_string()]);
    let decision: String = one(
        &mut a,
        &format!("SELECT decision FROM repair.decision('{run}')"),
    );
    assert_eq!(decision, "GO", "the scoped run is not changed by built-ins");

    let (_, results) = run_checks(&mut a, Some(vec!["schema"]));
    assert_eq!(ids(&results), vec!["builtin.table_without_pk".to_string()]);
    let (_, results) = run_checks(&mut a, Some(vec!["fk"]));
    assert_eq!(
        ids(&results),
        vec![
            "builtin.fk_type_mismatch".to_string(),
            "builtin.fk_missing_index".to_string()
        ]
    );
    let (_, results) = run_checks(&mut a, Some(vec!["builtin"]));
    assert_eq!(results.len(), 4);
    // null and empty both mean every check
    let (_, results) = run_checks(&mut a, None);
    assert_eq!(results.len(), 5);
    let (_, results) = run_checks(&mut a, Some(vec![]));
    assert_eq!(results.len(), 5);
}
