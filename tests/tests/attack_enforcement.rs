//! Issue 7, items 1–4: enforcement must cover everything a run causes, until it ends.
//! Deferred triggers, cursors, prepared statements, session settings, advisory locks, swallowed
//! timeouts and refusals, client cancels, and the statements the rules used to miss — each
//! reached statically (lint error + RP007) and dynamically (DO/EXECUTE/function → FAILED 42501).
//! Every test checks real state after the run (rows, tables, grants, files, pg_locks, SHOW).

mod attack_common;

use attack_common::*;
use pg_repair_core::Rule;
use pg_repair_tests::{one, playbook, Cluster};
use postgres::{Client, NoTls};
use serde_json::Value;
use std::time::{Duration, Instant};

/// auth.victim (3 rows), auth.doomed, auth.bomb with a DEFERRABLE INITIALLY DEFERRED constraint
/// trigger, auth.bomb2 with a DEFERRABLE INITIALLY IMMEDIATE one, auth.wipe(); all owned by alice.
fn bomb_db(c: &Cluster, label: &str) -> String {
    let db = c.fresh_db(label);
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE SCHEMA auth AUTHORIZATION alice;
             SET ROLE alice;
             CREATE TABLE auth.victim (id int PRIMARY KEY, note text);
             INSERT INTO auth.victim VALUES (1, 'a'), (2, 'b'), (3, 'c');
             CREATE TABLE auth.doomed (id int);
             CREATE FUNCTION auth.detonate() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                 IF NEW.id = 1 THEN DELETE FROM auth.victim;
                 ELSIF NEW.id = 2 THEN DROP TABLE auth.doomed;
                 ELSIF NEW.id = 3 THEN UPDATE auth.victim SET note = 'x';
                 ELSE TRUNCATE auth.victim;
                 END IF;
                 RETURN NULL;
               END $$;
             CREATE TABLE auth.bomb (id int);
             CREATE CONSTRAINT TRIGGER bomb_fuse AFTER INSERT ON auth.bomb
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION auth.detonate();
             CREATE TABLE auth.bomb2 (id int);
             CREATE CONSTRAINT TRIGGER bomb2_fuse AFTER INSERT ON auth.bomb2
               DEFERRABLE INITIALLY IMMEDIATE FOR EACH ROW EXECUTE FUNCTION auth.detonate();
             CREATE FUNCTION auth.wipe() RETURNS int LANGUAGE plpgsql AS $$
               BEGIN DELETE FROM auth.victim; DROP TABLE IF EXISTS auth.doomed; RETURN 1; END $$;
             RESET ROLE;",
        )
        .unwrap();
    db
}

/// auth.victim still has its three rows unchanged, auth.doomed exists, no bomb row was kept.
fn assert_intact(c: &Cluster, db: &str, ctx: &str) {
    let mut su = c.connect(db, "postgres");
    let notes: Option<String> = one(
        &mut su,
        "SELECT string_agg(id || note, ',' ORDER BY id) FROM auth.victim",
    );
    assert_eq!(notes.as_deref(), Some("1a,2b,3c"), "{ctx}: victim rows");
    assert!(
        one::<bool>(&mut su, "SELECT to_regclass('auth.doomed') IS NOT NULL"),
        "{ctx}: auth.doomed was dropped"
    );
    let bombs: i64 = one(
        &mut su,
        "SELECT (SELECT count(*) FROM auth.bomb) + (SELECT count(*) FROM auth.bomb2)",
    );
    assert_eq!(bombs, 0, "{ctx}: the bomb row was kept");
}

fn run_alice(c: &Cluster, db: &str, id: &str, body: &str) -> Value {
    let hash = reg(c, db, &playbook(id, body));
    exec_as(&mut c.connect(db, "alice"), id, &hash).expect("execute returns normally")
}

fn lint_rules(c: &Cluster, db: &str, source: &str) -> Vec<(String, String)> {
    c.connect(db, "carol")
        .query("SELECT rule, severity FROM repair.lint($1)", &[&source])
        .expect("lint")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn assert_lint_error(c: &Cluster, db: &str, body: &str, rule: &str) {
    let findings = lint_rules(c, db, &playbook("lint_probe", body));
    // `rule` may list alternatives: "ban-set|ban-non-transactional"
    assert!(
        findings
            .iter()
            .any(|(r, s)| rule.split('|').any(|want| r == want) && s == "error"),
        "{body}: expected lint error {rule}, got {findings:?}"
    );
}

/// Registers and executes a statically visible banned statement: execute must refuse with RP007.
fn assert_refused_rp007(c: &Cluster, db: &str, user: &str, id: &str, body: &str) {
    let hash = reg(c, db, &playbook(id, body));
    let e = clean_error(exec_as(&mut c.connect(db, user), id, &hash));
    assert_eq!(e.code().code(), "RP007", "{id}: {}", e.message());
}

// ---------------------------------------------------------------------------------------------
// 1. Deferred work

#[test]
fn deferred_constraint_trigger_fires_inside_the_enforced_run() {
    let c = Cluster::shared();
    let db = bomb_db(c, "atk_deferred");
    // 1 = DELETE, 2 = DROP TABLE, 3 = UPDATE, 4 = TRUNCATE — all queued by a lint-clean INSERT.
    for id in 1..=4 {
        let pb = format!("deferred_bomb_{id}");
        let body = format!("INSERT INTO auth.bomb VALUES ({id});");
        assert!(
            !lint_rules(c, &db, &playbook(&pb, &body))
                .iter()
                .any(|(_, s)| s == "error"),
            "the attack playbook is lint-clean"
        );
        let r = run_alice(c, &db, &pb, &body);
        assert_failed(&r, "42501", &pb);
        assert!(
            r["error_message"]
                .as_str()
                .unwrap_or_default()
                .contains("RUNTIME_BLOCKED"),
            "{pb}: {r}"
        );
        assert_intact(c, &db, &pb);
    }
}

#[test]
fn deferred_trigger_inside_the_callers_transaction_is_still_enforced() {
    let c = Cluster::shared();
    let db = bomb_db(c, "atk_deferred_txn");
    let hash = reg(
        c,
        &db,
        &playbook("deferred_txn", "INSERT INTO auth.bomb VALUES (1);"),
    );
    let mut a = c.connect(&db, "alice");
    a.batch_execute("BEGIN").unwrap();
    let r = exec_as(&mut a, "deferred_txn", &hash).expect("execute returns normally");
    assert_failed(&r, "42501", "deferred_txn");
    // Consequence of the fix (design item 1): execute leaves the caller's transaction in
    // SET CONSTRAINTS ALL IMMEDIATE mode; the COMMIT below must not fire anything queued by the run.
    a.batch_execute("COMMIT").expect("commit");
    assert_intact(c, &db, "deferred_txn");
    // the FAILED run was committed with the caller's transaction
    let n: i64 = one(
        &mut c.connect(&db, "postgres"),
        "SELECT count(*) FROM repair.runs WHERE playbook_id = 'deferred_txn' AND status = 'FAILED'",
    );
    assert_eq!(n, 1);
}

#[test]
fn set_constraints_deferred_in_the_playbook_does_not_escape() {
    let c = Cluster::shared();
    let db = bomb_db(c, "atk_setcons");
    let body = "SET CONSTRAINTS ALL DEFERRED;\nINSERT INTO auth.bomb2 VALUES (2);";
    let hash = reg(c, &db, &playbook("setcons", body));
    match exec_as(&mut c.connect(&db, "alice"), "setcons", &hash) {
        // refused up front (lint) or failed inside the run: both fine, as long as nothing escaped
        Ok(r) => assert_failed(&r, "42501", "setcons"),
        Err(e) => {
            let e = e.as_db_error().expect("server error").clone();
            assert_no_backtrace("message", e.message());
            assert_eq!(e.code().code(), "RP007", "{}", e.message());
        }
    }
    assert_intact(c, &db, "setcons");
}

#[test]
fn cursors_are_a_lint_error_and_refused_at_runtime() {
    let c = Cluster::shared();
    let db = bomb_db(c, "atk_cursor");
    for body in [
        "DECLARE c CURSOR WITH HOLD FOR SELECT auth.wipe();",
        "DECLARE c CURSOR FOR SELECT auth.wipe();",
        "DECLARE c BINARY NO SCROLL CURSOR WITH HOLD FOR SELECT auth.wipe();",
    ] {
        assert_lint_error(c, &db, body, Rule::BanCursor.id());
    }
    assert_refused_rp007(
        c,
        &db,
        "alice",
        "static_hold",
        "DECLARE c CURSOR WITH HOLD FOR SELECT auth.wipe();",
    );
    assert_intact(c, &db, "static_hold");

    // reached dynamically: the hold cursor would be materialised at COMMIT, outside the run
    for (id, body) in [
        (
            "dyn_hold",
            "DO $$ BEGIN EXECUTE 'DECLARE c CURSOR WITH HOLD FOR SELECT auth.wipe()'; END $$;",
        ),
        (
            "dyn_hold_fmt",
            "DO $$ BEGIN EXECUTE format('DECLARE %I CURSOR WITH HOLD FOR SELECT %s', 'held', 'auth.wipe()'); END $$;",
        ),
    ] {
        let mut a = c.connect(&db, "alice");
        let hash = reg(c, &db, &playbook(id, body));
        let r = exec_as(&mut a, id, &hash).expect("execute returns normally");
        assert_failed(&r, "42501", id);
        let left: Option<String> = one(
            &mut a,
            "SELECT string_agg(name || ' (hold ' || is_holdable || '): ' || statement, '; ') FROM pg_cursors WHERE name <> ''",
        );
        assert_eq!(left, None, "{id}: a cursor survived the run: {r}");
        drop(a);
        assert_intact(c, &db, id);
    }

    // without HOLD, inside the caller's transaction: the caller must not be able to FETCH it later
    let hash = reg(
        c,
        &db,
        &playbook(
            "dyn_plain",
            "DO $$ BEGIN EXECUTE 'DECLARE c2 CURSOR FOR SELECT auth.wipe()'; END $$;",
        ),
    );
    let mut a = c.connect(&db, "alice");
    a.batch_execute("BEGIN").unwrap();
    let r = exec_as(&mut a, "dyn_plain", &hash).expect("execute returns normally");
    assert_failed(&r, "42501", "dyn_plain");
    assert_eq!(
        one::<i64>(&mut a, "SELECT count(*) FROM pg_cursors WHERE name <> ''"),
        0
    );
    a.batch_execute("COMMIT").unwrap();
    assert_intact(c, &db, "dyn_plain");
}

#[test]
fn a_refcursor_opened_by_the_run_cannot_be_fetched_after_it() {
    // Variant beyond the DECLARE statement: PL/pgSQL OPEN creates a portal without DECLARE. If it
    // survives the run, the caller's FETCH would run auth.wipe() outside enforcement.
    let c = Cluster::shared();
    let db = bomb_db(c, "atk_refcursor");
    let body =
        "DO $$ DECLARE leak refcursor := 'leak'; BEGIN OPEN leak FOR SELECT auth.wipe(); END $$;";
    let hash = reg(c, &db, &playbook("refcursor", body));
    let mut a = c.connect(&db, "alice");
    a.batch_execute("BEGIN").unwrap();
    let _ = exec_as(&mut a, "refcursor", &hash).expect("execute returns normally");
    match a.batch_execute("FETCH ALL FROM leak") {
        Ok(()) => a.batch_execute("COMMIT").unwrap(),
        Err(_) => a.batch_execute("ROLLBACK").unwrap(),
    }
    assert_intact(c, &db, "refcursor");
}

#[test]
fn prepare_is_a_lint_error_and_refused_at_runtime() {
    let c = Cluster::shared();
    let db = bomb_db(c, "atk_prepare");
    assert_lint_error(
        c,
        &db,
        "PREPARE p_evil AS DELETE FROM auth.victim;",
        Rule::BanSessionState.id(),
    );
    assert_lint_error(
        c,
        &db,
        "PREPARE p_sel AS SELECT 1;",
        Rule::BanSessionState.id(),
    );
    assert_refused_rp007(
        c,
        &db,
        "alice",
        "static_prepare",
        "PREPARE p_sel AS SELECT 1;",
    );
    for (id, body) in [
        (
            "dyn_prepare_delete",
            "DO $$ BEGIN EXECUTE 'PREPARE p_evil AS DELETE FROM auth.victim'; END $$;",
        ),
        (
            "dyn_prepare_select",
            "DO $$ BEGIN EXECUTE 'PREPARE p_sel AS SELECT auth.wipe()'; END $$;",
        ),
    ] {
        let hash = reg(c, &db, &playbook(id, body));
        let mut a = c.connect(&db, "alice");
        let r = exec_as(&mut a, id, &hash).expect("execute returns normally");
        assert_failed(&r, "42501", id);
        let left: Option<String> = one(
            &mut a,
            "SELECT string_agg(name || ': ' || statement, '; ') FROM pg_prepared_statements WHERE from_sql",
        );
        assert_eq!(
            left, None,
            "{id}: a prepared statement outlived the run: {r}"
        );
        assert_intact(c, &db, id);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Session state

const PROBES: &[&str] = &[
    "search_path",
    "statement_timeout",
    "default_transaction_read_only",
    "work_mem",
    "lock_timeout",
    "DateStyle",
    "myapp.x",
];

fn settings(a: &mut Client) -> Vec<(String, Option<String>)> {
    PROBES
        .iter()
        .map(|n| {
            let v: Option<String> = a
                .query_one("SELECT current_setting($1, true)", &[n])
                .unwrap()
                .get(0);
            (n.to_string(), v)
        })
        .collect()
}

fn unset_custom(a: &mut Client, name: &str) -> bool {
    let v: Option<String> = a
        .query_one("SELECT current_setting($1, true)", &[&name])
        .unwrap()
        .get(0);
    v.is_none_or(|s| s.is_empty())
}

#[test]
fn every_setting_a_playbook_changes_is_reverted_success_and_failed() {
    let c = Cluster::shared();
    let db = c.fresh_db("atk_session");
    let set_all_select = "SELECT set_config('search_path', 'pg_catalog, pg_temp', false);\n\
         SELECT set_config('statement_timeout', '0', false);\n\
         SELECT set_config('default_transaction_read_only', 'on', false);\n\
         SELECT set_config('work_mem', '77MB', false);\n\
         SELECT set_config('lock_timeout', '1ms', false);\n\
         SELECT set_config('DateStyle', 'German', false);\n\
         SELECT set_config('myapp.x', 'leaked', false);\n\
         SELECT set_config('myapp.y', 'leaked', false);";
    let set_all_do = "DO $$ BEGIN\n\
           PERFORM set_config('search_path', 'pg_catalog, pg_temp', false);\n\
           PERFORM set_config('statement_timeout', '0', false);\n\
           PERFORM set_config('default_transaction_read_only', 'on', false);\n\
           PERFORM set_config('work_mem', '77MB', false);\n\
           PERFORM set_config('lock_timeout', '1ms', false);\n\
           PERFORM set_config('DateStyle', 'German', false);\n\
           PERFORM set_config('myapp.x', 'leaked', false);\n\
           PERFORM set_config('myapp.y', 'leaked', false);\n\
         END $$;";
    let cases = [
        ("gucs_select_ok", set_all_select.to_string(), "SUCCESS"),
        ("gucs_do_ok", set_all_do.to_string(), "SUCCESS"),
        (
            "gucs_select_failed",
            format!("{set_all_select}\nSELECT 1 / 0;"),
            "FAILED",
        ),
        (
            "gucs_do_failed",
            format!("{set_all_do}\nDO $$ BEGIN EXECUTE 'DROP TABLE IF EXISTS public.nothing_here'; END $$;"),
            "FAILED",
        ),
    ];
    for (id, body, want) in cases {
        let hash = reg(c, &db, &playbook(id, &body));
        let mut a = c.connect(&db, "alice");
        a.batch_execute(
            "SET statement_timeout = '123s'; SET work_mem = '5MB'; SET lock_timeout = '7s';
             SET DateStyle = 'ISO, YMD'; SET myapp.x = 'mine'",
        )
        .unwrap();
        let before = settings(&mut a);
        let r = exec_as(&mut a, id, &hash).expect("execute returns normally");
        assert_eq!(r["status"], want, "{id}: {r}");
        assert_no_backtrace(id, r["error_message"].as_str().unwrap_or_default());
        let after = settings(&mut a);
        assert_eq!(
            after, before,
            "{id}: session settings leaked out of the run"
        );
        assert!(
            unset_custom(&mut a, "myapp.y"),
            "{id}: myapp.y leaked out of the run"
        );
        // and the session really behaves as before: writable, default timeout
        a.batch_execute(
            "CREATE TEMP TABLE still_writable (id int); INSERT INTO still_writable VALUES (1)",
        )
        .unwrap_or_else(|e| panic!("{id}: session left read-only: {e}"));
    }
}

#[test]
fn session_advisory_locks_are_refused_and_none_is_left_held() {
    let c = Cluster::shared();
    let db = c.fresh_db("atk_advisory");
    // control: the probe sees a session advisory lock when there is one
    let mut probe = c.connect(&db, "alice");
    probe.batch_execute("SELECT pg_advisory_lock(1)").unwrap();
    assert_eq!(my_advisory_locks(&mut probe), 1);
    drop(probe);
    let cases = [
        ("adv_lock", "SELECT pg_advisory_lock(4242);"),
        ("adv_try", "SELECT pg_try_advisory_lock(4243);"),
        ("adv_shared", "SELECT pg_advisory_lock_shared(4244);"),
        (
            "adv_try_shared",
            "SELECT pg_try_advisory_lock_shared(4245);",
        ),
        ("adv_pair", "SELECT pg_advisory_lock(42, 46);"),
        ("adv_try_pair", "SELECT pg_try_advisory_lock(42, 47);"),
        (
            "adv_do",
            "DO $$ BEGIN PERFORM pg_advisory_lock(4248); END $$;",
        ),
        (
            "adv_dyn",
            "DO $$ BEGIN EXECUTE 'SELECT pg_advisory_lock_shared(4249)'; END $$;",
        ),
    ];
    for (id, body) in cases {
        let hash = reg(c, &db, &playbook(id, body));
        let mut a = c.connect(&db, "alice");
        let r = exec_as(&mut a, id, &hash).expect("execute returns normally");
        assert_failed(&r, "42501", id);
        assert_eq!(
            my_advisory_locks(&mut a),
            0,
            "{id}: advisory lock left held"
        );
        // nobody else is blocked either
        let mut b = c.connect(&db, "bob");
        let key: i64 = body
            .chars()
            .filter(|ch| ch.is_ascii_digit() || *ch == ',')
            .collect::<String>()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        if !body.contains(", ") {
            assert!(
                one::<bool>(&mut b, &format!("SELECT pg_try_advisory_lock({key})")),
                "{id}: bob cannot take {key}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Timeouts, swallowed refusals, client cancels

fn absent(c: &Cluster, db: &str, tables: &[&str]) {
    let mut su = c.connect(db, "postgres");
    for t in tables {
        assert!(
            one::<bool>(&mut su, &format!("SELECT to_regclass('{t}') IS NULL")),
            "{t} survived a FAILED run"
        );
    }
}

#[test]
fn a_swallowed_statement_timeout_still_fails_the_run_promptly() {
    let c = Cluster::shared();
    let db = c.fresh_db("atk_timeout");
    for (id, handler) in [
        ("swallow_canceled", "query_canceled"),
        ("swallow_others", "OTHERS"),
    ] {
        let body = format!(
            "CREATE TABLE IF NOT EXISTS public.{id}_before (id int);\n\
             DO $$ BEGIN\n\
               CREATE TABLE IF NOT EXISTS public.{id}_inside (id int);\n\
               FOR i IN 1..6 LOOP\n\
                 BEGIN PERFORM pg_sleep(1); EXCEPTION WHEN {handler} THEN RAISE NOTICE 'swallowed'; END;\n\
               END LOOP;\n\
             END $$;\n\
             CREATE TABLE IF NOT EXISTS public.{id}_after (id int);"
        );
        let hash = reg(
            c,
            &db,
            &playbook_with(id, &["statement-timeout: 1s"], &body),
        );
        let mut a = c.connect(&db, "alice");
        let t0 = Instant::now();
        let r = exec_as(&mut a, id, &hash).expect("execute returns normally");
        let took = t0.elapsed();
        assert_failed(&r, "57014", id);
        assert!(
            took < Duration::from_millis(3500),
            "{id}: ran {took:?} past a 1s statement timeout"
        );
        absent(
            c,
            &db,
            &[
                &format!("public.{id}_before"),
                &format!("public.{id}_inside"),
                &format!("public.{id}_after"),
            ],
        );
    }
}

#[test]
fn a_timeout_that_fires_in_deferred_work_still_fails_the_run() {
    let c = Cluster::shared();
    let db = c.fresh_db("atk_timeout_deferred");
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE TABLE public.slow (id int);
             CREATE FUNCTION public.stall() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                 FOR i IN 1..6 LOOP
                   BEGIN PERFORM pg_sleep(1); EXCEPTION WHEN query_canceled THEN NULL; END;
                 END LOOP;
                 RETURN NULL;
               END $$;
             CREATE CONSTRAINT TRIGGER slow_fuse AFTER INSERT ON public.slow
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.stall();
             GRANT INSERT ON public.slow TO alice;",
        )
        .unwrap();
    let id = "timeout_deferred";
    let body = "CREATE TABLE IF NOT EXISTS public.timeout_deferred_marker (id int);\nINSERT INTO public.slow VALUES (1);";
    let hash = reg(c, &db, &playbook_with(id, &["statement-timeout: 1s"], body));
    let mut a = c.connect(&db, "alice");
    let t0 = Instant::now();
    let r = exec_as(&mut a, id, &hash).expect("execute returns normally");
    let took = t0.elapsed();
    assert_failed(&r, "57014", id);
    assert!(took < Duration::from_millis(3500), "{id}: ran {took:?}");
    absent(c, &db, &["public.timeout_deferred_marker"]);
    let n: i64 = one(
        &mut c.connect(&db, "postgres"),
        "SELECT count(*) FROM public.slow",
    );
    assert_eq!(n, 0);
}

#[test]
fn a_caught_runtime_refusal_still_fails_the_run() {
    let c = Cluster::shared();
    let db = bomb_db(c, "atk_caught");
    let cases = [
        (
            "caught_priv_drop",
            "DO $$ BEGIN\n  BEGIN EXECUTE 'DROP TABLE auth.doomed'; EXCEPTION WHEN insufficient_privilege THEN NULL; END;\n  CREATE TABLE IF NOT EXISTS public.caught_priv_drop_marker (id int);\nEND $$;",
        ),
        (
            "caught_others_delete",
            "DO $$ BEGIN\n  BEGIN DELETE FROM auth.victim; EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'ignored %', SQLERRM; END;\n  CREATE TABLE IF NOT EXISTS public.caught_others_delete_marker (id int);\nEND $$;",
        ),
        (
            "caught_loop_truncate",
            "DO $$ BEGIN\n  FOR i IN 1..3 LOOP\n    BEGIN EXECUTE 'TRUNCATE auth.victim'; EXCEPTION WHEN OTHERS THEN NULL; END;\n  END LOOP;\n  CREATE TABLE IF NOT EXISTS public.caught_loop_truncate_marker (id int);\nEND $$;",
        ),
        (
            "caught_sqlstate",
            "DO $$ BEGIN\n  BEGIN UPDATE auth.victim SET note = 'z'; EXCEPTION WHEN SQLSTATE '42501' THEN NULL; END;\n  CREATE TABLE IF NOT EXISTS public.caught_sqlstate_marker (id int);\nEND $$;",
        ),
    ];
    for (id, body) in cases {
        let r = run_alice(c, &db, id, body);
        assert_failed(&r, "42501", id);
        assert_intact(c, &db, id);
        absent(c, &db, &[&format!("public.{id}_marker")]);
    }
}

/// Waits until alice's backend is inside pg_sleep; returns its pid.
fn sleeping_pid(c: &Cluster, db: &str) -> i32 {
    let mut su = c.connect(db, "postgres");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pid: Option<i32> = su
            .query_one(
                "SELECT max(pid) FROM pg_stat_activity WHERE usename = 'alice' AND datname = current_database()
                   AND state = 'active' AND wait_event = 'PgSleep'",
                &[],
            )
            .unwrap()
            .get(0);
        if let Some(p) = pid {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "the playbook never started sleeping"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_cancelled_run(
    c: &Cluster,
    db: &str,
    id: &str,
    r: Result<Value, postgres::Error>,
    took: Duration,
) {
    let r =
        r.unwrap_or_else(|e| panic!("{id}: execute must return normally after a cancel: {e:?}"));
    assert_failed(&r, "57014", id);
    assert!(
        r["error_message"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("cancelled"),
        "{id}: {r}"
    );
    assert!(took < Duration::from_secs(15), "{id}: took {took:?}");
    let mut su = c.connect(db, "postgres");
    let n: i64 = su
        .query_one(
            "SELECT count(*) FROM repair.runs WHERE playbook_id = $1 AND status = 'FAILED' AND error_code = '57014'",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "{id}: the FAILED run is not in repair.runs");
    absent(c, db, &[&format!("public.{id}_marker")]);
    assert!(verify_ok(&mut su));
}

#[test]
fn a_client_cancel_is_a_failed_audited_run() {
    let c = Cluster::shared();
    let db = c.fresh_db("atk_cancel");
    // pg_cancel_backend from another session
    let id = "cancel_backend";
    let body =
        format!("CREATE TABLE IF NOT EXISTS public.{id}_marker (id int);\nSELECT pg_sleep(30);");
    let hash = reg(c, &db, &playbook(id, &body));
    let conninfo = c.conninfo(&db, "alice");
    let h2 = hash.clone();
    let t0 = Instant::now();
    let worker = std::thread::spawn(move || {
        let mut a = Client::connect(&conninfo, NoTls).unwrap();
        exec_as(&mut a, "cancel_backend", &h2)
    });
    let pid = sleeping_pid(c, &db);
    assert!(one::<bool>(
        &mut c.connect(&db, "postgres"),
        &format!("SELECT pg_cancel_backend({pid})")
    ));
    let r = worker.join().unwrap();
    assert_cancelled_run(c, &db, id, r, t0.elapsed());

    // The client library's own cancel request, and two back-to-back pg_cancel_backend calls.
    // A cancel request arrives as two SIGINTs (the postmaster signals the backend, then its
    // process group, back to back). When the backend wakes between the two, the second lands
    // while the playbook unwinds or while the FAILED run is written: the run is still recorded.
    // Repeated, through the client's cancel request and through two back-to-back
    // pg_cancel_backend calls, to hit the window.
    for i in 0..12 {
        let id = format!("cancel_twice_{i}");
        let body = format!(
            "CREATE TABLE IF NOT EXISTS public.{id}_marker (id int);\nSELECT pg_sleep(30);"
        );
        let hash = reg(c, &db, &playbook(&id, &body));
        let mut a = c.connect(&db, "alice");
        let token = a.cancel_token();
        let t0 = Instant::now();
        let cdb = db.clone();
        let canceller = std::thread::spawn(move || {
            let c = Cluster::shared();
            let pid = sleeping_pid(c, &cdb);
            if i % 2 == 0 {
                token.cancel_query(NoTls).unwrap();
            } else {
                c.connect(&cdb, "postgres")
                    .batch_execute(&format!(
                        "SELECT pg_cancel_backend({pid}), pg_cancel_backend({pid})"
                    ))
                    .unwrap();
            }
        });
        let r = exec_as(&mut a, &id, &hash);
        canceller.join().unwrap();
        assert_cancelled_run(c, &db, &id, r, t0.elapsed());
        assert_eq!(one::<i32>(&mut a, "SELECT 1"), 1, "{id}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Statements the rules used to miss

/// A database where every attack of item 4 has something to damage.
fn target_db(c: &Cluster, label: &str) -> String {
    static ROLE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ROLE.get_or_init(|| {
        c.connect("postgres", "postgres")
            .batch_execute("CREATE ROLE atk_owner NOLOGIN; GRANT atk_owner TO alice;")
            .unwrap();
    });
    superuser_executor(c);
    let db = c.fresh_db(label);
    let dir = c.dir.display().to_string();
    c.connect(&db, "postgres")
        .batch_execute(&format!(
            "CREATE SCHEMA auth AUTHORIZATION alice;
             CREATE TABLE public.victim (id int PRIMARY KEY, note text);
             INSERT INTO public.victim VALUES (1, 'a'), (2, 'b'), (3, 'c');
             CREATE VIEW public.victim_view AS SELECT * FROM public.victim;
             CREATE SEQUENCE public.victim_seq;
             ALTER TABLE public.victim OWNER TO alice; ALTER VIEW public.victim_view OWNER TO alice;
             ALTER SEQUENCE public.victim_seq OWNER TO alice;
             GRANT SELECT ON public.victim TO dave;
             CREATE FUNCTION auth.wipe() RETURNS int LANGUAGE sql AS 'SELECT 1';
             ALTER FUNCTION auth.wipe() OWNER TO alice;
             SELECT lo_create(424242); ALTER LARGE OBJECT 424242 OWNER TO alice;
             COPY (SELECT 9, 'from-file') TO '{dir}/{db}_in.csv';
             GRANT CREATE ON DATABASE {db} TO alice;"
        ))
        .unwrap();
    db
}

const FINGERPRINT: &str = "SELECT concat_ws(' | ',
    has_table_privilege('bob', to_regclass('public.victim'), 'SELECT'),
    has_table_privilege('dave', to_regclass('public.victim'), 'SELECT'),
    has_schema_privilege('bob', 'auth', 'USAGE'),
    has_function_privilege('bob', to_regprocedure('auth.wipe()'), 'EXECUTE'),
    (SELECT count(*) FROM pg_default_acl),
    (SELECT relowner::regrole::text FROM pg_class WHERE oid = to_regclass('public.victim')),
    (SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' ORDER BY attnum)
       FROM pg_attribute WHERE attrelid = to_regclass('public.victim') AND attnum > 0 AND NOT attisdropped),
    (SELECT string_agg(id || '=' || note, ',' ORDER BY id) FROM public.victim),
    (SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class
       WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'i', 'v', 'S', 'f')),
    (SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace WHERE nspname !~ '^pg_'),
    (SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = to_regclass('public.victim')),
    (SELECT count(*) FROM pg_rewrite WHERE rulename <> '_RETURN'),
    (SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension),
    (SELECT string_agg(oid::text, ',' ORDER BY oid) FROM pg_largeobject_metadata))";

fn fingerprint(c: &Cluster, db: &str) -> String {
    one(&mut c.connect(db, "postgres"), FINGERPRINT)
}

/// Wraps a statement into a DO block that EXECUTEs it.
fn dynamic(stmt: &str) -> String {
    format!("DO $do$ BEGIN EXECUTE $x${stmt}$x$; END $do$;")
}

fn assert_runtime_blocked(c: &Cluster, db: &str, user: &str, id: &str, body: &str) {
    let before = fingerprint(c, db);
    let hash = reg(c, db, &playbook(id, body));
    let mut k = c.connect(db, user);
    k.batch_execute("SET work_mem = '5MB'; CREATE TEMP TABLE mine (id int)")
        .unwrap();
    let r = exec_as(&mut k, id, &hash).expect("execute returns normally");
    assert_failed(&r, "42501", id);
    let msg = r["error_message"].as_str().unwrap_or_default();
    assert!(msg.contains("RUNTIME_BLOCKED"), "{id}: {msg}");
    assert_eq!(
        fingerprint(c, db),
        before,
        "{id}: the attack changed the database"
    );
    assert!(
        one::<bool>(&mut k, "SELECT to_regclass('pg_temp.mine') IS NOT NULL"),
        "{id}: the caller's temp table was discarded"
    );
    assert_eq!(one::<String>(&mut k, "SHOW work_mem"), "5MB", "{id}");
}

#[test]
fn privilege_type_and_rename_statements_are_lint_errors_and_refused() {
    let c = Cluster::shared();
    let db = target_db(c, "atk_stmt_static");
    let cases: &[(&str, &str)] = &[
        (Rule::BanGrant.id(), "GRANT SELECT ON public.victim TO bob;"),
        (
            Rule::BanGrant.id(),
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO bob;",
        ),
        (
            Rule::BanGrant.id(),
            "REVOKE SELECT ON public.victim FROM dave;",
        ),
        (Rule::BanGrant.id(), "GRANT USAGE ON SCHEMA auth TO bob;"),
        (
            Rule::BanGrant.id(),
            "REVOKE EXECUTE ON FUNCTION auth.wipe() FROM PUBLIC;",
        ),
        (
            Rule::BanGrant.id(),
            "ALTER DEFAULT PRIVILEGES IN SCHEMA auth GRANT SELECT ON TABLES TO bob;",
        ),
        (
            Rule::BanGrant.id(),
            "ALTER TABLE public.victim OWNER TO atk_owner;",
        ),
        (Rule::BanGrant.id(), "ALTER SCHEMA auth OWNER TO atk_owner;"),
        (
            Rule::BanGrant.id(),
            "ALTER FUNCTION auth.wipe() OWNER TO atk_owner;",
        ),
        (
            Rule::BanAlterType.id(),
            "ALTER TABLE public.victim ALTER COLUMN note TYPE int USING length(note);",
        ),
        (
            Rule::BanAlterType.id(),
            "ALTER TABLE public.victim ALTER note SET DATA TYPE varchar(1);",
        ),
        (
            Rule::BanRename.id(),
            "ALTER TABLE public.victim RENAME TO victim_old;",
        ),
        (
            Rule::BanRename.id(),
            "ALTER TABLE IF EXISTS public.victim RENAME TO victim_old;",
        ),
        (
            Rule::BanRename.id(),
            "ALTER TABLE public.victim RENAME COLUMN note TO note_old;",
        ),
        (
            Rule::BanRename.id(),
            "ALTER TABLE public.victim RENAME CONSTRAINT victim_pkey TO vp;",
        ),
        (
            Rule::BanRename.id(),
            "ALTER INDEX public.victim_pkey RENAME TO vp2;",
        ),
        (
            Rule::BanRename.id(),
            "ALTER VIEW public.victim_view RENAME TO vv;",
        ),
        (
            Rule::BanRename.id(),
            "ALTER SEQUENCE public.victim_seq RENAME TO vs;",
        ),
        (
            Rule::BanRename.id(),
            "ALTER SCHEMA auth RENAME TO auth_old;",
        ),
        (
            Rule::BanRule.id(),
            "CREATE RULE victim_rule AS ON INSERT TO public.victim DO INSTEAD NOTHING;",
        ),
        (Rule::BanSet.id(), "RESET ALL;"),
        ("ban-set|ban-non-transactional", "DISCARD ALL;"),
        (Rule::BanSet.id(), "DISCARD TEMP;"),
        (Rule::BanSet.id(), "DISCARD PLANS;"),
        (
            Rule::BanCopyProgram.id(),
            "COPY public.victim TO PROGRAM 'cat > /dev/null';",
        ),
        (
            Rule::BanCopyProgram.id(),
            "COPY public.victim TO '/tmp/pg_repair_copy_out.csv';",
        ),
        (
            Rule::BanCopyProgram.id(),
            "COPY public.victim FROM '/tmp/pg_repair_copy_in.csv';",
        ),
        (
            Rule::BanExtension.id(),
            "CREATE EXTENSION IF NOT EXISTS dblink;",
        ),
        (
            Rule::BanExtension.id(),
            "CREATE EXTENSION IF NOT EXISTS postgres_fdw;",
        ),
        (
            Rule::BanExtension.id(),
            "CREATE EXTENSION IF NOT EXISTS file_fdw;",
        ),
        (
            Rule::BanExtension.id(),
            "CREATE EXTENSION IF NOT EXISTS adminpack;",
        ),
        (
            Rule::BanExtension.id(),
            "CREATE EXTENSION IF NOT EXISTS plpython3u;",
        ),
        (
            Rule::BanExtension.id(),
            "CREATE EXTENSION IF NOT EXISTS plperlu;",
        ),
        (
            Rule::BanExtension.id(),
            "CREATE EXTENSION IF NOT EXISTS pltclu;",
        ),
    ];
    let before = fingerprint(c, &db);
    for (i, (rule, body)) in cases.iter().enumerate() {
        assert_lint_error(c, &db, body, rule);
        // statically visible: registration keeps it, execute refuses it (superuser executor too)
        assert_refused_rp007(c, &db, "admin2", &format!("static_{i}"), body);
    }
    assert_eq!(fingerprint(c, &db), before);
}

#[test]
fn privilege_type_and_rename_statements_reached_dynamically_fail_42501() {
    let c = Cluster::shared();
    let db = target_db(c, "atk_stmt_dyn");
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE FUNCTION public.grant_it() RETURNS void LANGUAGE plpgsql AS
               $$ BEGIN GRANT SELECT ON public.victim TO bob; END $$;
             CREATE FUNCTION public.rename_it() RETURNS void LANGUAGE plpgsql AS
               $$ BEGIN ALTER TABLE public.victim RENAME TO victim_gone; END $$;",
        )
        .unwrap();
    let dir = c.dir.display().to_string();
    let stmts = [
        "GRANT SELECT ON public.victim TO bob".to_string(),
        "REVOKE SELECT ON public.victim FROM dave".into(),
        "GRANT USAGE ON SCHEMA auth TO bob".into(),
        "REVOKE EXECUTE ON FUNCTION auth.wipe() FROM PUBLIC".into(),
        "ALTER DEFAULT PRIVILEGES IN SCHEMA auth GRANT SELECT ON TABLES TO bob".into(),
        "ALTER TABLE public.victim OWNER TO atk_owner".into(),
        "ALTER TABLE public.victim ALTER COLUMN note TYPE int USING length(note)".into(),
        "ALTER TABLE public.victim RENAME TO victim_old".into(),
        "ALTER TABLE public.victim RENAME COLUMN note TO note_old".into(),
        "ALTER TABLE public.victim RENAME CONSTRAINT victim_pkey TO vp".into(),
        "ALTER INDEX public.victim_pkey RENAME TO vp2".into(),
        "ALTER VIEW public.victim_view RENAME TO vv".into(),
        "ALTER SEQUENCE public.victim_seq RENAME TO vs".into(),
        "ALTER SCHEMA auth RENAME TO auth_old".into(),
        "CREATE RULE victim_rule AS ON INSERT TO public.victim DO INSTEAD NOTHING".into(),
        "RESET ALL".into(),
        "DISCARD TEMP".into(),
        "DISCARD PLANS".into(),
        "DISCARD SEQUENCES".into(),
        format!("COPY public.victim TO PROGRAM 'cat > {dir}/{db}_prog.csv'"),
        format!("COPY public.victim TO '{dir}/{db}_out.csv'"),
        format!("COPY public.victim FROM '{dir}/{db}_in.csv'"),
        "CREATE EXTENSION IF NOT EXISTS dblink".into(),
        "CREATE EXTENSION IF NOT EXISTS postgres_fdw".into(),
        "CREATE EXTENSION IF NOT EXISTS file_fdw".into(),
        "CREATE EXTENSION IF NOT EXISTS adminpack".into(),
    ];
    for (i, stmt) in stmts.iter().enumerate() {
        // admin2 is a superuser executor: no missing privilege can be what stops the attack
        assert_runtime_blocked(c, &db, "admin2", &format!("dyn_{i}"), &dynamic(stmt));
    }
    // through functions the playbook merely calls
    assert_runtime_blocked(c, &db, "admin2", "fn_grant", "SELECT public.grant_it();");
    assert_runtime_blocked(c, &db, "admin2", "fn_rename", "SELECT public.rename_it();");
    // and as the operator who owns the objects
    assert_runtime_blocked(
        c,
        &db,
        "alice",
        "alice_grant",
        &dynamic("GRANT SELECT ON public.victim TO bob"),
    );
    assert_runtime_blocked(
        c,
        &db,
        "alice",
        "alice_rename",
        &dynamic("ALTER TABLE public.victim RENAME TO victim_old"),
    );
    assert_runtime_blocked(
        c,
        &db,
        "alice",
        "alice_alter_type",
        &dynamic("ALTER TABLE public.victim ALTER COLUMN note TYPE int USING length(note)"),
    );
    for f in ["prog", "out"] {
        let p = c.dir.join(format!("{db}_{f}.csv"));
        assert!(!p.exists(), "{} was written", p.display());
    }
}

#[test]
fn dangerous_functions_are_refused_at_runtime() {
    let c = Cluster::shared();
    let db = target_db(c, "atk_functions");
    let dir = c.dir.display().to_string();
    let mut side = c.connect(&db, "admin2");
    let side_pid: i32 = one(&mut side, "SELECT pg_backend_pid()");
    let bodies = [
        "SELECT lo_unlink(424242);".to_string(),
        format!("SELECT lo_import('{dir}/{db}_in.csv');"),
        format!("SELECT lo_export(424242, '{dir}/{db}_lo_out');"),
        format!("SELECT pg_terminate_backend({side_pid});"),
        format!("SELECT pg_cancel_backend({side_pid});"),
        "SELECT pg_reload_conf();".into(),
        "DO $$ BEGIN PERFORM lo_unlink(424242); END $$;".into(),
        format!("DO $$ BEGIN PERFORM pg_terminate_backend({side_pid}); END $$;"),
    ];
    for (i, body) in bodies.iter().enumerate() {
        assert_runtime_blocked(c, &db, "admin2", &format!("fn_{i}"), body);
    }
    // alice may unlink her own large object — but not from a playbook
    assert_runtime_blocked(
        c,
        &db,
        "alice",
        "alice_lo_unlink",
        "SELECT lo_unlink(424242);",
    );
    assert!(
        !c.dir.join(format!("{db}_lo_out")).exists(),
        "lo_export wrote a file"
    );
    assert_eq!(
        one::<i32>(&mut side, "SELECT 1"),
        1,
        "the other session was terminated"
    );
}

#[test]
fn dblink_and_postgres_fdw_cannot_escape_the_transaction() {
    let c = Cluster::shared();
    let db = target_db(c, "atk_remote");
    let conn = format!("host=127.0.0.1 port={} dbname={db} user=postgres", c.port);
    c.connect(&db, "postgres")
        .batch_execute(&format!(
            "CREATE EXTENSION dblink; CREATE EXTENSION postgres_fdw;
             CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw
               OPTIONS (host '127.0.0.1', port '{}', dbname '{db}');
             CREATE USER MAPPING FOR admin2 SERVER loopback OPTIONS (user 'postgres');
             CREATE USER MAPPING FOR postgres SERVER loopback OPTIONS (user 'postgres');
             CREATE FOREIGN TABLE public.victim_remote (id int, note text)
               SERVER loopback OPTIONS (schema_name 'public', table_name 'victim');
             CREATE VIEW public.remote_view AS SELECT * FROM public.victim_remote;
             CREATE TABLE public.inbox (id int);
             CREATE FUNCTION public.forward() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN INSERT INTO public.victim_remote VALUES (NEW.id, 'via trigger'); RETURN NEW; END $$;
             CREATE TRIGGER inbox_forward AFTER INSERT ON public.inbox FOR EACH ROW EXECUTE FUNCTION public.forward();",
            c.port
        ))
        .unwrap();
    let bodies = [
        format!("SELECT dblink_exec('{conn}', 'INSERT INTO public.victim VALUES (77, ''remote'')');"),
        format!("SELECT dblink_connect('atk', '{conn}');"),
        format!("SELECT * FROM dblink('{conn}', 'SELECT 1') AS t(x int);"),
        format!("DO $$ BEGIN PERFORM dblink_exec('{conn}', 'INSERT INTO public.victim VALUES (78, ''remote'')'); END $$;"),
        "INSERT INTO public.victim_remote VALUES (79, 'fdw');".into(),
        "SELECT count(*) FROM public.victim_remote;".into(),
        "DO $$ BEGIN INSERT INTO public.victim_remote VALUES (80, 'fdw'); END $$;".into(),
        "SELECT count(*) FROM public.remote_view;".into(),
        "INSERT INTO public.inbox VALUES (81);".into(),
    ];
    for (i, body) in bodies.iter().enumerate() {
        assert_runtime_blocked(c, &db, "admin2", &format!("remote_{i}"), body);
    }
    let n: i64 = one(
        &mut c.connect(&db, "postgres"),
        "SELECT count(*) FROM public.victim WHERE id > 3",
    );
    assert_eq!(n, 0, "a second session wrote behind the run's back");
}

#[test]
fn create_extension_hstore_is_allowed() {
    let c = Cluster::shared();
    let db = target_db(c, "atk_hstore");
    let body = "CREATE EXTENSION IF NOT EXISTS hstore;";
    let findings = lint_rules(c, &db, &playbook("hstore", body));
    assert!(!findings.iter().any(|(_, s)| s == "error"), "{findings:?}");
    let r = run_alice(c, &db, "hstore", body);
    assert_eq!(r["status"], "SUCCESS", "{r}");
    assert!(one::<bool>(
        &mut c.connect(&db, "postgres"),
        "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'hstore')"
    ));
}

#[test]
fn waivers_lift_grant_type_and_rename_but_never_copy_program_or_extensions() {
    let c = Cluster::shared();
    let db = target_db(c, "atk_waivers");
    let mut su = c.connect(&db, "postgres");
    // victim.note is used by victim_view; ALTER TYPE needs a column no view depends on
    su.batch_execute(
        "CREATE TABLE public.retype (id int, note text); ALTER TABLE public.retype OWNER TO alice;",
    )
    .unwrap();
    let waive = |rule: &str| format!("waive: {rule} until 2099-12-31 because issue 7 waiver test");
    // lifted statically and dynamically
    let lifted = [
        ("w_grant", Rule::BanGrant.id(), "GRANT SELECT ON public.victim TO bob;", "SELECT has_table_privilege('bob', 'public.victim', 'SELECT')"),
        ("w_grant_dyn", Rule::BanGrant.id(), "DO $$ BEGIN EXECUTE 'GRANT USAGE ON SCHEMA auth TO bob'; END $$;", "SELECT has_schema_privilege('bob', 'auth', 'USAGE')"),
        ("w_type", Rule::BanAlterType.id(), "ALTER TABLE public.retype ALTER COLUMN note TYPE varchar(5);", "SELECT format_type(atttypid, atttypmod) = 'character varying(5)' FROM pg_attribute WHERE attrelid = 'public.retype'::regclass AND attname = 'note'"),
        ("w_rename", Rule::BanRename.id(), "ALTER SEQUENCE public.victim_seq RENAME TO victim_seq2;", "SELECT to_regclass('public.victim_seq2') IS NOT NULL"),
        ("w_rename_dyn", Rule::BanRename.id(), "DO $$ BEGIN EXECUTE 'ALTER VIEW public.victim_view RENAME TO victim_view2'; END $$;", "SELECT to_regclass('public.victim_view2') IS NOT NULL"),
    ];
    for (id, rule, body, probe) in lifted {
        let hash = reg(c, &db, &playbook_with(id, &[&waive(rule)], body));
        let r = exec_as(&mut c.connect(&db, "alice"), id, &hash).expect("execute");
        assert_eq!(r["status"], "SUCCESS", "{id}: {r}");
        assert!(
            one::<bool>(&mut su, probe),
            "{id}: the waived statement did not run"
        );
    }
    // never lifted at runtime
    let dir = c.dir.display().to_string();
    let before = fingerprint(c, &db);
    let never = [
        (
            "w_copy",
            Rule::BanCopyProgram.id(),
            dynamic(&format!(
                "COPY public.victim TO PROGRAM 'cat > {dir}/{db}_w.csv'"
            )),
        ),
        (
            "w_ext",
            Rule::BanExtension.id(),
            dynamic("CREATE EXTENSION IF NOT EXISTS dblink"),
        ),
        (
            "w_drop",
            Rule::BanDrop.id(),
            dynamic("DROP TABLE public.victim CASCADE"),
        ),
        (
            "w_truncate",
            Rule::BanTruncate.id(),
            dynamic("TRUNCATE public.victim CASCADE"),
        ),
        (
            "w_alter_system",
            Rule::BanAlterSystem.id(),
            dynamic("ALTER SYSTEM SET work_mem = '77MB'"),
        ),
        (
            "w_role",
            Rule::BanRoleChange.id(),
            dynamic("SET ROLE alice"),
        ),
    ];
    for (id, rule, body) in never {
        let hash = reg(c, &db, &playbook_with(id, &[&waive(rule)], &body));
        let r = exec_as(&mut c.connect(&db, "admin2"), id, &hash).expect("execute");
        assert_failed(&r, "42501", id);
        assert_eq!(fingerprint(c, &db), before, "{id}");
    }
    assert!(!c.dir.join(format!("{db}_w.csv")).exists());
}

// ---------------------------------------------------------------------------------------------
// Variants: function calls the plan does not show, local settings, more GRANT forms, SET SCHEMA

#[test]
fn local_settings_do_not_leak_into_the_callers_transaction() {
    let c = Cluster::shared();
    let db = c.fresh_db("atk_local_gucs");
    let body = "SELECT set_config('work_mem', '77MB', true);\n\
                SELECT set_config('search_path', 'pg_catalog', true);\n\
                SELECT set_config('myapp.x', 'leaked', true);\n\
                DO $$ BEGIN PERFORM set_config('lock_timeout', '1ms', true); END $$;";
    let hash = reg(c, &db, &playbook("local_gucs", body));
    let mut a = c.connect(&db, "alice");
    a.batch_execute("BEGIN; SET LOCAL work_mem = '5MB'; SET LOCAL myapp.x = 'mine'; SET LOCAL lock_timeout = '7s'")
        .unwrap();
    let before = settings(&mut a);
    let r = exec_as(&mut a, "local_gucs", &hash).expect("execute");
    assert_eq!(r["status"], "SUCCESS", "{r}");
    assert_eq!(
        settings(&mut a),
        before,
        "a local setting leaked into the caller's transaction"
    );
    a.batch_execute("COMMIT").unwrap();
}

#[test]
fn forbidden_functions_reached_through_defaults_checks_domains_and_views_are_refused() {
    let c = Cluster::shared();
    let db = c.fresh_db("atk_hidden_calls");
    c.connect(&db, "postgres")
        .batch_execute(
            "SELECT lo_create(515151); ALTER LARGE OBJECT 515151 OWNER TO alice;
             CREATE TABLE public.by_default (id int, taken bool DEFAULT pg_try_advisory_lock(7001));
             CREATE TABLE public.by_check (id int CHECK (id < 0 OR pg_try_advisory_lock(7002)));
             CREATE TABLE public.by_check_lo (id int CHECK (id < 0 OR lo_unlink(515151) = 1));
             CREATE DOMAIN public.locking_int AS int CHECK (VALUE < 0 OR pg_try_advisory_lock(7003));
             CREATE VIEW public.locking_view AS SELECT pg_try_advisory_lock(7004) AS taken;
             CREATE FUNCTION public.inlined() RETURNS bool LANGUAGE sql AS 'SELECT pg_try_advisory_lock(7005)';
             ALTER TABLE public.by_default OWNER TO alice; ALTER TABLE public.by_check OWNER TO alice;
             ALTER TABLE public.by_check_lo OWNER TO alice; ALTER VIEW public.locking_view OWNER TO alice;",
        )
        .unwrap();
    let cases = [
        (
            "via_default",
            "INSERT INTO public.by_default (id) VALUES (1);",
        ),
        ("via_check", "INSERT INTO public.by_check VALUES (1);"),
        ("via_check_lo", "INSERT INTO public.by_check_lo VALUES (1);"),
        ("via_domain", "SELECT 5::public.locking_int;"),
        ("via_view", "SELECT * FROM public.locking_view;"),
        ("via_sql_function", "SELECT public.inlined();"),
    ];
    for (id, body) in cases {
        let hash = reg(c, &db, &playbook(id, body));
        let mut a = c.connect(&db, "alice");
        let r = exec_as(&mut a, id, &hash).expect("execute returns normally");
        assert_eq!(
            my_advisory_locks(&mut a),
            0,
            "{id}: advisory lock left held: {r}"
        );
        assert_failed(&r, "42501", id);
        let lo: bool = one(
            &mut c.connect(&db, "postgres"),
            "SELECT EXISTS (SELECT FROM pg_largeobject_metadata WHERE oid = 515151)",
        );
        assert!(lo, "{id}: the large object was unlinked");
    }
}

#[test]
fn more_grant_forms_are_refused() {
    let c = Cluster::shared();
    let db = target_db(c, "atk_more_grants");
    let stmts = [
        "GRANT SELECT (note) ON public.victim TO bob".to_string(),
        "GRANT USAGE ON SEQUENCE public.victim_seq TO bob".to_string(),
        "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO bob".to_string(),
        format!("GRANT CREATE ON DATABASE {db} TO bob"),
        "GRANT SELECT ON LARGE OBJECT 424242 TO bob".to_string(),
        "ALTER LARGE OBJECT 424242 OWNER TO atk_owner".to_string(),
        "ALTER VIEW public.victim_view OWNER TO atk_owner".to_string(),
        "ALTER SEQUENCE public.victim_seq OWNER TO atk_owner".to_string(),
        "ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO bob".to_string(),
    ];
    let probe = format!(
        "SELECT concat_ws(',', has_column_privilege('bob', 'public.victim', 'note', 'SELECT'),
                has_sequence_privilege('bob', 'public.victim_seq', 'USAGE'),
                has_database_privilege('bob', '{db}', 'CREATE'),
                (SELECT lomacl::text FROM pg_largeobject_metadata WHERE oid = 424242),
                (SELECT lomowner::regrole::text FROM pg_largeobject_metadata WHERE oid = 424242),
                (SELECT relowner::regrole::text FROM pg_class WHERE oid = 'public.victim_view'::regclass),
                (SELECT relowner::regrole::text FROM pg_class WHERE oid = 'public.victim_seq'::regclass),
                (SELECT count(*) FROM pg_default_acl))"
    );
    let mut su = c.connect(&db, "postgres");
    let before: String = one(&mut su, &probe);
    for (i, stmt) in stmts.iter().enumerate() {
        assert_runtime_blocked(c, &db, "admin2", &format!("grant_{i}"), &dynamic(stmt));
        assert_lint_error(c, &db, &format!("{stmt};"), Rule::BanGrant.id());
        let now: String = one(&mut su, &probe);
        assert_eq!(now, before, "{stmt}");
    }
}

/// Beyond the design's list: moving a table to another schema makes the application see it
/// missing (or an empty replacement) exactly as RENAME does.
#[test]
fn set_schema_is_refused_like_rename() {
    let c = Cluster::shared();
    let db = target_db(c, "atk_set_schema");
    for (i, stmt) in [
        "ALTER TABLE public.victim SET SCHEMA auth",
        "ALTER VIEW public.victim_view SET SCHEMA auth",
        "ALTER SEQUENCE public.victim_seq SET SCHEMA auth",
        "ALTER FUNCTION auth.wipe() SET SCHEMA public",
    ]
    .iter()
    .enumerate()
    {
        assert_runtime_blocked(c, &db, "admin2", &format!("set_schema_{i}"), &dynamic(stmt));
    }
}
