//! Issue 7, items 9, 11, 12: baselines are chained and a re-capture cannot erase drift; check
//! files are exactly one read-only SELECT (parse tree) and a check with lint errors never runs;
//! baselines count as the session user, with RLS, and skip what the caller cannot read.

mod attack_common;

use attack_common::*;
use pg_repair_core::Rule;
use pg_repair_tests::{one, register, Cluster};
use postgres::Client;

fn shop_db(c: &Cluster, label: &str) -> String {
    let db = c.fresh_db(label);
    grant_validation(c, &db);
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE TABLE public.customers (id bigint PRIMARY KEY);
             CREATE TABLE public.orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES public.customers (id));
             CREATE INDEX orders_customer_id_idx ON public.orders (customer_id);
             INSERT INTO public.customers SELECT g FROM generate_series(1, 100) g;
             INSERT INTO public.orders SELECT g, 1 + g % 100 FROM generate_series(1, 250) g;
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO repair_operators;",
        )
        .unwrap();
    db
}

type Drift = Vec<(String, String, Option<i64>, Option<i64>)>;

fn drift(a: &mut Client, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Drift {
    a.query(sql, params)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 9. Baselines: chained, append-only, a re-capture cannot erase drift

#[test]
fn a_recapture_cannot_erase_drift() {
    let c = Cluster::shared();
    let db = shop_db(c, "atk_recapture");
    let mut a = c.connect(&db, "alice");
    let mut su = c.connect(&db, "postgres");
    a.batch_execute("SELECT * FROM repair.baseline_capture('before-deploy')")
        .unwrap();
    su.batch_execute("DELETE FROM public.orders WHERE id <= 10")
        .unwrap();
    // a validator re-captures the label after the damage
    a.batch_execute("SELECT * FROM repair.baseline_capture('before-deploy')")
        .unwrap();
    let ids: Vec<String> = su
        .query(
            "SELECT capture_id::text FROM repair.baseline_captures WHERE label = 'before-deploy' ORDER BY seq",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids.len(), 2, "the re-capture is a new, recorded capture");
    let want = vec![(
        "public.orders".to_string(),
        "changed".to_string(),
        Some(250),
        Some(240),
    )];
    // default: against the FIRST capture of the label
    let q = "SELECT table_name, status, before, after FROM repair.baseline_verify($1) ORDER BY 1";
    assert_eq!(drift(&mut a, q, &[&"before-deploy"]), want);
    // named capture
    let q2 = "SELECT table_name, status, before, after FROM repair.baseline_verify($1, $2::text::uuid) ORDER BY 1";
    assert_eq!(drift(&mut a, q2, &[&"before-deploy", &ids[0]]), want);
    assert!(drift(&mut a, q2, &[&"before-deploy", &ids[1]]).is_empty());
    // a third capture does not move the default either
    a.batch_execute("SELECT * FROM repair.baseline_capture('before-deploy')")
        .unwrap();
    assert_eq!(drift(&mut a, q, &[&"before-deploy"]), want);
}

#[test]
fn baselines_are_chained_and_covered_by_verify_audit_and_audit_head() {
    let c = Cluster::shared();
    let db = shop_db(c, "atk_baseline_chain");
    let mut a = c.connect(&db, "alice");
    let mut su = c.connect(&db, "postgres");
    let h0: String = one(&mut su, "SELECT repair.audit_head()");
    a.batch_execute("SELECT * FROM repair.baseline_capture('L1')")
        .unwrap();
    let h1: String = one(&mut su, "SELECT repair.audit_head()");
    assert_ne!(h0, h1, "a capture does not change audit_head");
    a.batch_execute("SELECT * FROM repair.baseline_capture('L1')")
        .unwrap();
    a.batch_execute("SELECT * FROM repair.baseline_capture('L2')")
        .unwrap();
    let h2: String = one(&mut su, "SELECT repair.audit_head()");
    assert_ne!(h1, h2);
    // per-label chain: the second capture of L1 links to the first
    let linked: bool = one(
        &mut su,
        "SELECT (array_agg(prev_hash ORDER BY seq))[2] = (array_agg(row_hash ORDER BY seq))[1]
           FROM repair.baseline_captures WHERE label = 'L1'",
    );
    assert!(linked, "captures of a label are not chained");
    assert!(verify_ok(&mut su));
    // append-only even for the superuser
    for sql in [
        "UPDATE repair.baseline_counts SET row_count = 0",
        "DELETE FROM repair.baseline_captures WHERE label = 'L2'",
        "TRUNCATE repair.baseline_counts",
    ] {
        let e = clean_error(su.batch_execute(sql));
        assert_eq!(e.code().code(), "42501", "{sql}");
    }
    disable_triggers(c, &db, &["baseline_captures", "baseline_counts"]);
    let mut su = c.connect(&db, "postgres");
    let edits = [
        ("baseline_counts", "UPDATE repair.baseline_counts SET row_count = row_count + 1 WHERE table_name = 'public.orders' AND capture_id = (SELECT capture_id FROM repair.baseline_captures WHERE label = 'L1' ORDER BY seq LIMIT 1)"),
        ("baseline_counts", "DELETE FROM repair.baseline_counts WHERE table_name = 'public.customers' AND capture_id = (SELECT capture_id FROM repair.baseline_captures WHERE label = 'L2')"),
        ("baseline_counts", "INSERT INTO repair.baseline_counts SELECT capture_id, 'public.forged', 1 FROM repair.baseline_captures WHERE label = 'L2'"),
        ("baseline_captures", "UPDATE repair.baseline_captures SET label = 'L9' WHERE label = 'L2'"),
        ("baseline_captures", "UPDATE repair.baseline_captures SET captured_at = captured_at - interval '1 day' WHERE label = 'L2'"),
        ("baseline_captures", "UPDATE repair.baseline_captures SET session_user_name = 'mallory' WHERE label = 'L2'"),
        ("baseline_captures", "DELETE FROM repair.baseline_counts WHERE capture_id = (SELECT capture_id FROM repair.baseline_captures WHERE label = 'L1' ORDER BY seq LIMIT 1);
                               DELETE FROM repair.baseline_captures WHERE seq = (SELECT min(seq) FROM repair.baseline_captures WHERE label = 'L1')"),
    ];
    for (table, sql) in edits {
        su.batch_execute("BEGIN").unwrap();
        su.batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let (ok, problems) = verify_full(&mut su);
        assert!(!ok, "not detected: {sql}");
        assert!(
            problems.as_array().unwrap().iter().any(|p| p["table"]
                .as_str()
                .is_some_and(|t| t.starts_with("baseline_"))),
            "{table}: {problems}"
        );
        su.batch_execute("ROLLBACK").unwrap();
    }
    assert!(verify_ok(&mut su));
}

// ---------------------------------------------------------------------------------------------
// 11. Check files: one read-only SELECT, never spliced, never run with lint errors

fn check_file(id: &str, body: &str) -> String {
    format!("-- check: {id}\n-- title: {id}\n-- severity: critical\n-- tags: inj\n{body}\n")
}

fn advisory_locks_in_db(c: &mut Client) -> i64 {
    one(
        c,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
}

#[test]
fn check_injection_never_runs() {
    let c = Cluster::shared();
    let db = shop_db(c, "atk_check_inj");
    let rejected: &[(&str, &str, Option<&str>)] = &[
        (
            "inj_two",
            "SELECT 1 WHERE false; SELECT pg_advisory_lock(42)",
            Some(Rule::BanNonSelectCheck.id()),
        ),
        (
            "inj_two_nl",
            "SELECT 1 WHERE false;\nSELECT pg_advisory_lock(43);",
            Some(Rule::BanNonSelectCheck.id()),
        ),
        (
            "inj_semis",
            "SELECT 1 WHERE false;;SELECT pg_advisory_lock(44)",
            Some(Rule::BanNonSelectCheck.id()),
        ),
        (
            "inj_paren",
            "SELECT 1 WHERE false) x; SELECT pg_advisory_lock(45); SELECT * FROM (SELECT 1",
            None,
        ),
        (
            "inj_comment",
            "SELECT 1 WHERE false --\n) x; SELECT pg_advisory_lock(46); SELECT * FROM (SELECT 1",
            None,
        ),
        ("inj_syntax", "SELEC id FROM public.orders", None),
        ("inj_unterminated", "SELECT 1 /* never closed", None),
        (
            "inj_dml_cte",
            "WITH d AS (DELETE FROM public.orders RETURNING 1) SELECT * FROM d",
            None,
        ),
        (
            "inj_insert",
            "INSERT INTO public.customers VALUES (999) RETURNING 1",
            None,
        ),
        (
            "inj_lock_then_select",
            "SELECT pg_advisory_lock(47); SELECT 1 WHERE false",
            Some(Rule::BanNonSelectCheck.id()),
        ),
    ];
    let mut carol = c.connect(&db, "carol");
    let mut su = c.connect(&db, "postgres");
    for (id, body, _) in rejected {
        register(&mut carol, &check_file(id, body));
        let errors: i32 = one(
            &mut su,
            &format!("SELECT lint_errors FROM repair.playbooks WHERE id = '{id}'"),
        );
        assert!(errors >= 1, "{id}: registered without a lint error");
    }
    // lint-clean controls, and a valid SELECT ending in a comment (it returns a row: FAIL)
    register(&mut carol, &check_file("ok_plain", "SELECT 1 WHERE false;"));
    register(
        &mut carol,
        &check_file(
            "ok_with",
            "WITH x AS (SELECT 1 AS a) SELECT a FROM x WHERE a > 1",
        ),
    );
    register(&mut carol, &check_file("comment_tail", "SELECT 1 --"));
    let mut a = c.connect(&db, "alice");
    let rows = a
        .query(
            "SELECT check_id, status, error FROM repair.run_checks(ARRAY['inj'])",
            &[],
        )
        .expect("run_checks");
    let get = |id: &str| -> (String, Option<String>) {
        rows.iter()
            .find(|r| r.get::<_, String>(0) == id)
            .map(|r| (r.get(1), r.get(2)))
            .unwrap_or_else(|| panic!("{id} missing from run_checks"))
    };
    for (id, _, _) in rejected {
        let (status, error) = get(id);
        assert_eq!(status, "FAIL", "{id}");
        let error = error.unwrap_or_default();
        assert!(error.starts_with("LINT_REJECTED"), "{id}: {error}");
        assert_no_backtrace(id, &error);
    }
    assert_eq!(get("ok_plain").0, "PASS");
    assert_eq!(get("ok_with").0, "PASS");
    assert_eq!(get("comment_tail").0, "FAIL");
    assert_eq!(
        my_advisory_locks(&mut a),
        0,
        "a check left an advisory lock"
    );
    assert_eq!(advisory_locks_in_db(&mut su), 0);
    assert_eq!(
        one::<i64>(&mut su, "SELECT count(*) FROM public.orders"),
        250
    );
    assert_eq!(
        one::<i64>(
            &mut su,
            "SELECT count(*) FROM public.customers WHERE id = 999"
        ),
        0
    );
    // the rule that rejects them (checked last: the security assertions above come first)
    for (id, body, rule) in rejected {
        let Some(rule) = rule else { continue };
        let src = check_file(id, body);
        let rules: Vec<(String, String)> = carol
            .query("SELECT rule, severity FROM repair.lint($1)", &[&src])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert!(
            rules.iter().any(|(r, s)| r == rule && s == "error"),
            "{id}: {rules:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 12. Baselines as the session user

#[test]
fn baselines_count_only_what_the_caller_can_read() {
    let c = Cluster::shared();
    let db = c.fresh_db("atk_baseline_rls");
    grant_validation(c, &db);
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE TABLE public.visible (id int); INSERT INTO public.visible SELECT generate_series(1, 5);
             GRANT SELECT ON public.visible TO alice;
             CREATE TABLE public.secret (id int); INSERT INTO public.secret SELECT generate_series(1, 7);
             CREATE SCHEMA hidden; CREATE TABLE hidden.t (id int); INSERT INTO hidden.t SELECT generate_series(1, 4);
             GRANT SELECT ON hidden.t TO alice;  -- but no USAGE on hidden
             CREATE TABLE public.rls_t (id int, owner_name text);
             INSERT INTO public.rls_t SELECT g, CASE WHEN g <= 3 THEN 'alice' ELSE 'bob' END FROM generate_series(1, 10) g;
             ALTER TABLE public.rls_t ENABLE ROW LEVEL SECURITY;
             CREATE POLICY own_rows ON public.rls_t FOR SELECT USING (owner_name = current_user);
             GRANT SELECT ON public.rls_t TO alice;",
        )
        .unwrap();
    let mut a = c.connect(&db, "alice");
    let captured: Vec<(String, i64)> = a
        .query(
            "SELECT table_name, row_count FROM repair.baseline_capture('mine') ORDER BY 1",
            &[],
        )
        .expect("capture")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        captured.contains(&("public.visible".into(), 5)),
        "{captured:?}"
    );
    assert!(
        captured.contains(&("public.rls_t".into(), 3)),
        "RLS rows leaked into the count: {captured:?}"
    );
    assert!(
        !captured
            .iter()
            .any(|(t, _)| t == "public.secret" || t == "hidden.t"),
        "unreadable tables were counted: {captured:?}"
    );
    // verify does not leak them either (as 'added' with a count)
    let rows: Vec<(String, Option<i64>)> = a
        .query(
            "SELECT table_name, after FROM repair.baseline_verify('mine')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        !rows
            .iter()
            .any(|(t, _)| t == "public.secret" || t == "hidden.t"),
        "{rows:?}"
    );
    // naming them explicitly is refused
    for (t, sql) in [
        ("public.secret", "SELECT oid FROM pg_class WHERE relname = 'secret' AND relnamespace = 'public'::regnamespace"),
        ("hidden.t", "SELECT oid FROM pg_class WHERE relname = 't' AND relnamespace = 'hidden'::regnamespace"),
    ] {
        let oid: postgres::types::Oid = one(&mut a, sql);
        let e = clean_error(a.query(
            "SELECT * FROM repair.baseline_capture('named', ARRAY[$1::oid::regclass])",
            &[&oid],
        ));
        assert_eq!(e.code().code(), "42501", "{t}: {}", e.message());
    }
    let mut su = c.connect(&db, "postgres");
    let n: i64 = one(
        &mut su,
        "SELECT count(*) FROM repair.baseline_captures WHERE label = 'named'",
    );
    assert_eq!(n, 0);
    let secret: i64 = one(&mut su, "SELECT count(*) FROM repair.baseline_counts WHERE table_name IN ('public.secret', 'hidden.t')");
    assert_eq!(secret, 0, "counts of unreadable tables were stored");
}

/// Items 8 + 11: clearing the stored lint of a rejected check does not let it run.
#[test]
fn clearing_a_checks_lint_does_not_let_it_run() {
    let c = Cluster::shared();
    let db = shop_db(c, "atk_check_lint_clear");
    register(
        &mut c.connect(&db, "carol"),
        &check_file(
            "inj_cleared",
            "SELECT 1 WHERE false; SELECT pg_advisory_lock(49)",
        ),
    );
    disable_triggers(c, &db, &["playbook_versions"]);
    c.connect(&db, "postgres")
        .batch_execute("UPDATE repair.playbook_versions SET lint = '[]'::jsonb WHERE playbook_id = 'inj_cleared'")
        .unwrap();
    let mut a = c.connect(&db, "alice");
    let rows = a
        .query(
            "SELECT check_id, status, coalesce(error, '') FROM repair.run_checks(ARRAY['inj'])",
            &[],
        )
        .expect("run_checks");
    let (status, error): (String, String) = rows
        .iter()
        .find(|r| r.get::<_, String>(0) == "inj_cleared")
        .map(|r| (r.get(1), r.get(2)))
        .expect("inj_cleared in the results");
    assert_eq!(status, "FAIL", "{error}");
    assert_eq!(my_advisory_locks(&mut a), 0, "the injected statement ran");
    assert_no_backtrace("error", &error);
}
