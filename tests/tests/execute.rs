//! repair.execute against a real server: success and the audit row, atomic rollback of a failing
//! run, timeouts, requires-before/after, identity, search_path safety, nesting, concurrency.

use pg_repair_tests::{db_error, execute, one, playbook, register, Cluster};
use serde_json::Value;
use std::time::{Duration, Instant};

fn reg(c: &Cluster, db: &str, src: &str) -> String {
    register(&mut c.connect(db, "carol"), src).1
}

#[test]
fn success_records_a_complete_audit_row() {
    let c = Cluster::shared();
    let db = c.fresh_db("ok");
    let src = "-- repair: make_tables\n-- title: Make two tables\n-- requires-after: public.t_one, public.t_two\n\
               CREATE TABLE IF NOT EXISTS public.t_one (id int);\nCREATE TABLE IF NOT EXISTS public.t_two (id int);\n";
    let hash = reg(c, &db, src);
    let mut a = c.connect(&db, "alice");
    let r = execute(&mut a, "make_tables", &hash, "TICKET-7 recreate tables").unwrap();
    assert_eq!(r["status"], "SUCCESS");
    assert_eq!(
        (
            r["statements_total"].as_i64(),
            r["statements_executed"].as_i64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(r["executed_as"], "alice");
    let mut su = c.connect(&db, "postgres");
    let row = su
        .query_one(
            "SELECT playbook_id, version, expected_hash, actual_hash, session_user_name, current_user_name,
                    declared_role, reason, status, statements_executed, run_id::text, finished_at >= started_at,
                    prev_hash IS NULL, length(row_hash)
               FROM repair.runs",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "make_tables");
    assert_eq!(row.get::<_, i32>(1), 1);
    assert_eq!(row.get::<_, String>(2), hash);
    assert_eq!(row.get::<_, String>(3), hash);
    assert_eq!(row.get::<_, String>(4), "alice");
    assert_eq!(row.get::<_, String>(5), "alice");
    assert_eq!(row.get::<_, String>(6), "staging");
    assert_eq!(row.get::<_, String>(7), "TICKET-7 recreate tables");
    assert_eq!(row.get::<_, String>(8), "SUCCESS");
    assert_eq!(row.get::<_, i32>(9), 2);
    assert_eq!(row.get::<_, String>(10), r["run_id"].as_str().unwrap());
    assert!(row.get::<_, bool>(11));
    assert!(
        row.get::<_, bool>(12),
        "first run of a chain has no prev_hash"
    );
    assert_eq!(row.get::<_, i32>(13), 64);
    // idempotent: a second run succeeds and links to the first
    let r2 = execute(&mut a, "make_tables", &hash, "again").unwrap();
    assert_eq!(r2["status"], "SUCCESS");
    let linked: bool = one(
        &mut su,
        "SELECT b.prev_hash = a.row_hash FROM repair.runs a, repair.runs b WHERE a.seq < b.seq",
    );
    assert!(linked);
    let ok: bool = one(&mut su, "SELECT ok FROM repair.verify_audit()");
    assert!(ok);
}

#[test]
fn failing_second_statement_leaves_no_trace_of_the_first() {
    let c = Cluster::shared();
    let db = c.fresh_db("rollback");
    let body = "CREATE TABLE IF NOT EXISTS public.half_done (id int);\nINSERT INTO public.does_not_exist VALUES (1);";
    let hash = reg(c, &db, &playbook("half", body));
    let mut a = c.connect(&db, "alice");
    let mut tx = a.transaction().unwrap();
    let r: Value = tx
        .query_one("SELECT repair.execute('half', $1, 'r')", &[&hash])
        .unwrap()
        .get(0);
    assert_eq!(r["status"], "FAILED");
    assert_eq!(r["error_code"], "42P01");
    assert_eq!(
        (
            r["statements_executed"].as_i64(),
            r["statements_total"].as_i64()
        ),
        (Some(1), Some(2))
    );
    let msg = r["error_message"].as_str().unwrap();
    assert!(
        msg.starts_with("statement 2: ") && msg.contains("does_not_exist"),
        "{msg}"
    );
    // the caller's transaction is healthy and the table from statement 1 is gone
    let gone: bool = tx
        .query_one("SELECT to_regclass('public.half_done') IS NULL", &[])
        .unwrap()
        .get(0);
    assert!(gone);
    tx.commit().unwrap();
    // the FAILED audit row committed with the caller
    let mut su = c.connect(&db, "postgres");
    let (status, code): (String, String) = su
        .query_one("SELECT status, error_code FROM repair.runs", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((status.as_str(), code.as_str()), ("FAILED", "42P01"));
}

#[test]
fn error_message_is_bounded_to_1000_characters() {
    let c = Cluster::shared();
    let db = c.fresh_db("bounded");
    let body = format!(
        "DO $$ BEGIN RAISE EXCEPTION '{}'; END $$;",
        "z".repeat(3000)
    );
    let hash = reg(c, &db, &playbook("loud", &body));
    let r = execute(&mut c.connect(&db, "alice"), "loud", &hash, "r").unwrap();
    assert_eq!(r["status"], "FAILED");
    assert_eq!(r["error_code"], "P0001");
    assert_eq!(r["error_message"].as_str().unwrap().chars().count(), 1000);
}

#[test]
fn custom_sqlstate_raised_by_a_playbook_is_recorded_exactly() {
    let c = Cluster::shared();
    let db = c.fresh_db("customcode");
    let body = "DO $$ BEGIN RAISE EXCEPTION 'nope' USING ERRCODE = 'AB123'; END $$;";
    let hash = reg(c, &db, &playbook("custom", body));
    let r = execute(&mut c.connect(&db, "alice"), "custom", &hash, "r").unwrap();
    assert_eq!(
        (r["status"].as_str(), r["error_code"].as_str()),
        (Some("FAILED"), Some("AB123"))
    );
}

#[test]
fn statement_timeout_fails_the_run_with_57014() {
    let c = Cluster::shared();
    let db = c.fresh_db("stmt_timeout");
    let src = "-- repair: slow\n-- title: slow\n-- statement-timeout: 300ms\n\
               CREATE TABLE IF NOT EXISTS public.before_sleep (id int);\nSELECT pg_sleep(5);\n";
    let hash = reg(c, &db, src);
    let mut a = c.connect(&db, "alice");
    let t = Instant::now();
    let r = execute(&mut a, "slow", &hash, "r").unwrap();
    let took = t.elapsed();
    assert_eq!(
        (r["status"].as_str(), r["error_code"].as_str()),
        (Some("FAILED"), Some("57014"))
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(r["error_message"]
        .as_str()
        .unwrap()
        .contains("statement timeout after 300 ms"));
    let gone: bool = one(&mut a, "SELECT to_regclass('public.before_sleep') IS NULL");
    assert!(gone, "rolled back");
    // the timer is disarmed: a longer statement in the same session completes
    a.batch_execute("SELECT pg_sleep(0.6)")
        .expect("no stale cancel");
}

#[test]
fn lock_timeout_fails_the_run_with_55p03() {
    let c = Cluster::shared();
    let db = c.fresh_db("lock_timeout");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute("CREATE TABLE public.busy (id int); ALTER TABLE public.busy OWNER TO alice")
        .unwrap();
    let src = "-- repair: locky\n-- title: locky\n-- lock-timeout: 200ms\n\
               CREATE INDEX IF NOT EXISTS busy_id_idx ON public.busy (id);\n";
    let hash = reg(c, &db, src);
    let mut holder = c.connect(&db, "postgres");
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE public.busy IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let mut a = c.connect(&db, "alice");
    let t = Instant::now();
    let r = execute(&mut a, "locky", &hash, "r").unwrap();
    assert_eq!(
        (r["status"].as_str(), r["error_code"].as_str()),
        (Some("FAILED"), Some("55P03"))
    );
    assert!(t.elapsed() < Duration::from_secs(3));
    tx.rollback().unwrap();
    // the lock timeout was local to the run
    let lt: String = one(&mut a, "SHOW lock_timeout");
    assert_eq!(lt, "0");
    assert_eq!(
        execute(&mut a, "locky", &hash, "r").unwrap()["status"],
        "SUCCESS"
    );
}

#[test]
fn user_cancel_is_a_failed_run_on_record() {
    let c = Cluster::shared();
    let db = c.fresh_db("cancel");
    let hash = reg(c, &db, &playbook("sleepy", "SELECT pg_sleep(10);"));
    let mut a = c.connect(&db, "alice");
    let pid: i32 = one(&mut a, "SELECT pg_backend_pid()");
    let token = a.cancel_token();
    let mut watcher = c.connect(&db, "postgres");
    // Cancel once the playbook's statement is running (not during the guards: a cancel there
    // aborts before any run exists, which a loaded machine can make happen at a fixed delay).
    let h = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(8);
        while std::time::Instant::now() < deadline {
            let sleeping: bool = watcher
                .query_one(
                    "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep')",
                    &[&pid],
                )
                .unwrap()
                .get(0);
            if sleeping {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        token.cancel_query(postgres::NoTls).unwrap();
    });
    let started = std::time::Instant::now();
    let r = execute(&mut a, "sleepy", &hash, "r").expect("a cancelled run returns normally");
    h.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the cancel stopped the statement"
    );
    assert_eq!(r["status"], "FAILED");
    assert_eq!(r["error_code"], "57014");
    assert!(
        r["error_message"].as_str().unwrap().contains("cancelled"),
        "{r}"
    );
    assert_eq!(
        one::<i64>(
            &mut c.connect(&db, "postgres"),
            "SELECT count(*) FROM repair.runs WHERE status = 'FAILED' AND error_code = '57014'"
        ),
        1
    );
    a.batch_execute("SELECT 1").expect("session still usable");
}

#[test]
fn requires_before_and_after() {
    let c = Cluster::shared();
    let db = c.fresh_db("requires");
    let before = "-- repair: needs_parent\n-- title: t\n-- requires-before: public.parent_tbl\n\
                  CREATE TABLE IF NOT EXISTS public.child_tbl (id int);\n";
    let hb = reg(c, &db, before);
    let mut a = c.connect(&db, "alice");
    let r = execute(&mut a, "needs_parent", &hb, "r").unwrap();
    assert_eq!(
        (r["status"].as_str(), r["error_code"].as_str()),
        (Some("FAILED"), Some("RP008"))
    );
    assert_eq!(
        r["missing_before"],
        serde_json::json!(["public.parent_tbl"])
    );
    assert_eq!(r["statements_executed"], 0);
    assert!(one::<bool>(
        &mut a,
        "SELECT to_regclass('public.child_tbl') IS NULL"
    ));

    let after = "-- repair: promises\n-- title: t\n-- requires-after: public.made_here, public.never_made\n\
                 CREATE TABLE IF NOT EXISTS public.made_here (id int);\n";
    let ha = reg(c, &db, after);
    let r = execute(&mut a, "promises", &ha, "r").unwrap();
    assert_eq!(
        (r["status"].as_str(), r["error_code"].as_str()),
        (Some("FAILED"), Some("RP009"))
    );
    assert_eq!(r["missing_after"], serde_json::json!(["public.never_made"]));
    assert!(
        one::<bool>(&mut a, "SELECT to_regclass('public.made_here') IS NULL"),
        "rolled back"
    );
    let mut su = c.connect(&db, "postgres");
    let rows: i64 = one(
        &mut su,
        "SELECT count(*) FROM repair.runs WHERE status = 'FAILED'",
    );
    assert_eq!(rows, 2);
    let after_json: Value = one(
        &mut su,
        "SELECT missing_after FROM repair.runs WHERE playbook_id = 'promises'",
    );
    assert_eq!(after_json, serde_json::json!(["public.never_made"]));
}

#[test]
fn statements_run_as_the_session_user_never_the_definer() {
    let c = Cluster::shared();
    let db = c.fresh_db("identity");
    let body = "CREATE TABLE IF NOT EXISTS public.who_made_me AS SELECT current_user::text AS cu, session_user::text AS su;";
    let hash = reg(c, &db, &playbook("whoami", body));
    let mut a = c.connect(&db, "alice");
    assert_eq!(
        execute(&mut a, "whoami", &hash, "r").unwrap()["status"],
        "SUCCESS"
    );
    let row = a
        .query_one("SELECT cu, su FROM public.who_made_me", &[])
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("alice".into(), "alice".into())
    );
    let owner: String = one(
        &mut a,
        "SELECT tableowner::text FROM pg_tables WHERE tablename = 'who_made_me'",
    );
    assert_eq!(owner, "alice");
    // the definer's privileges are not available: alice cannot write the audit from a playbook
    let forge = "INSERT INTO repair.runs (run_id) VALUES (gen_random_uuid());";
    let hf = reg(c, &db, &playbook("forge", forge));
    let r = execute(&mut a, "forge", &hf, "r").unwrap();
    assert_eq!(
        (r["status"].as_str(), r["error_code"].as_str()),
        (Some("FAILED"), Some("42501"))
    );
    // SET ROLE is refused statically (lint) and, reached dynamically, at runtime; identity is
    // back afterwards
    let hs = reg(c, &db, &playbook("setrole", "SET ROLE postgres;"));
    let e = db_error(execute(&mut a, "setrole", &hs, "r"));
    assert_eq!(e.code().code(), "RP007");
    let hs = reg(
        c,
        &db,
        &playbook(
            "setrole",
            "DO $$ BEGIN EXECUTE 'SET ROLE postgres'; END $$;",
        ),
    );
    let r = execute(&mut a, "setrole", &hs, "r").unwrap();
    assert_eq!(r["status"], "FAILED");
    assert_eq!(one::<String>(&mut a, "SELECT current_user::text"), "alice");
}

#[test]
fn planted_functions_and_operators_are_never_called() {
    let c = Cluster::shared();
    let db = c.fresh_db("planted");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(
        "CREATE SCHEMA evil AUTHORIZATION alice;
         CREATE TABLE evil.calls (what text);
         GRANT ALL ON evil.calls TO PUBLIC;",
    )
    .unwrap();
    let mut a = c.connect(&db, "alice");
    // Same names as what the extension's own SQL calls, planted first in alice's search_path.
    a.batch_execute(
        "CREATE FUNCTION evil.to_regclass(text) RETURNS regclass LANGUAGE sql AS
           $$ INSERT INTO evil.calls VALUES ('to_regclass') RETURNING NULL::regclass $$;
         CREATE FUNCTION evil.nextval(regclass) RETURNS bigint LANGUAGE sql AS
           $$ INSERT INTO evil.calls VALUES ('nextval') RETURNING 1::bigint $$;
         CREATE FUNCTION evil.unnest(text[]) RETURNS SETOF text LANGUAGE sql AS
           $$ INSERT INTO evil.calls VALUES ('unnest') RETURNING 'x' $$;
         CREATE FUNCTION evil.textne(text, text) RETURNS boolean LANGUAGE sql AS
           $$ INSERT INTO evil.calls VALUES ('=') RETURNING true $$;
         CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.textne);
         CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS
           $$ INSERT INTO evil.calls VALUES ('now') RETURNING pg_catalog.now() $$;",
    )
    .unwrap();
    let src = "-- repair: sp\n-- title: t\n-- requires-before: public.base_tbl\n-- requires-after: evil.made_in_path\n\
               CREATE TABLE IF NOT EXISTS made_in_path (id int);\n";
    su.batch_execute("CREATE TABLE public.base_tbl (id int)")
        .unwrap();
    let hash = reg(c, &db, src);
    a.batch_execute("SET search_path = evil, pg_catalog, public")
        .unwrap();
    let r = execute(&mut a, "sp", &hash, "r").unwrap();
    assert_eq!(r["status"], "SUCCESS", "{r}");
    // the playbook's own statement used the caller's search_path ...
    assert!(one::<bool>(
        &mut a,
        "SELECT pg_catalog.to_regclass('evil.made_in_path') IS NOT NULL"
    ));
    // ... and none of the planted objects ran
    let calls: i64 = one(&mut su, "SELECT count(*) FROM evil.calls");
    assert_eq!(calls, 0);
    let path: String = one(&mut a, "SHOW search_path");
    assert_eq!(path, "evil, pg_catalog, public");
}

#[test]
fn nested_execute_is_refused() {
    let c = Cluster::shared();
    let db = c.fresh_db("nested");
    let inner = reg(c, &db, &playbook("inner", "SELECT 1;"));
    let body = format!("SELECT repair.execute('inner', '{inner}', 'nested');");
    let outer = reg(c, &db, &playbook("outer", &body));
    let r = execute(&mut c.connect(&db, "alice"), "outer", &outer, "r").unwrap();
    assert_eq!(
        (r["status"].as_str(), r["error_code"].as_str()),
        (Some("FAILED"), Some("0A000"))
    );
}

#[test]
fn repeatable_read_is_refused() {
    let c = Cluster::shared();
    let db = c.fresh_db("rr");
    let hash = reg(c, &db, &playbook("rr", "SELECT 1;"));
    let mut a = c.connect(&db, "alice");
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .unwrap();
    let e = db_error(execute(&mut a, "rr", &hash, "r"));
    assert_eq!(e.code().code(), "25000");
}

#[test]
fn eight_concurrent_sessions_one_row_each_and_valid_chains() {
    let c = Cluster::shared();
    let db = c.fresh_db("concurrent");
    let body = "CREATE TABLE IF NOT EXISTS public.conc (id int);\nSELECT pg_sleep(0.05);";
    let ha = reg(c, &db, &playbook("conc_a", body));
    let hb = reg(c, &db, &playbook("conc_b", "SELECT pg_sleep(0.05);"));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (db, id, hash) = (
                db.clone(),
                if i % 2 == 0 { "conc_a" } else { "conc_b" },
                if i % 2 == 0 { ha.clone() } else { hb.clone() },
            );
            std::thread::spawn(move || {
                let mut a = Cluster::shared().connect(&db, "alice");
                let r = execute(&mut a, id, &hash, &format!("worker {i}")).unwrap();
                r["status"].as_str().unwrap().to_string()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), "SUCCESS");
    }
    let mut su = c.connect(&db, "postgres");
    let n: i64 = one(&mut su, "SELECT count(*) FROM repair.runs");
    assert_eq!(n, 8);
    let per: Vec<(String, i64)> = su
        .query(
            "SELECT playbook_id, count(*) FROM repair.runs GROUP BY 1 ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(per, vec![("conc_a".into(), 4), ("conc_b".into(), 4)]);
    // no fork: every prev_hash is used once, and exactly one chain start per playbook
    let forks: i64 = one(&mut su, "SELECT count(*) FROM (SELECT prev_hash FROM repair.runs GROUP BY playbook_id, prev_hash HAVING count(*) > 1) f");
    assert_eq!(forks, 0);
    let starts: i64 = one(
        &mut su,
        "SELECT count(*) FROM repair.runs WHERE prev_hash IS NULL",
    );
    assert_eq!(starts, 2);
    let ok: bool = one(&mut su, "SELECT ok FROM repair.verify_audit()");
    assert!(ok);
}

#[test]
fn different_playbooks_never_wait_on_each_other() {
    let c = Cluster::shared();
    let db = c.fresh_db("nowait");
    let ha = reg(c, &db, &playbook("left", "SELECT 1;"));
    let hb = reg(c, &db, &playbook("right", "SELECT 2;"));
    let mut first = c.connect(&db, "alice");
    let mut tx = first.transaction().unwrap();
    let r: Value = tx
        .query_one("SELECT repair.execute('left', $1, 'held open')", &[&ha])
        .unwrap()
        .get(0);
    assert_eq!(r["status"], "SUCCESS");
    // the first caller keeps its transaction open; another playbook runs at once
    let mut second = c.connect(&db, "alice");
    second
        .batch_execute("SET statement_timeout = '3s'")
        .unwrap();
    assert_eq!(
        execute(&mut second, "right", &hb, "meanwhile").unwrap()["status"],
        "SUCCESS"
    );
    // the same playbook does wait (serialized)
    second.batch_execute("SET lock_timeout = '300ms'").unwrap();
    let e = db_error(execute(&mut second, "left", &ha, "same playbook"));
    assert_eq!(e.code().code(), "55P03");
    tx.commit().unwrap();
    second.batch_execute("RESET lock_timeout").unwrap();
    assert_eq!(
        execute(&mut second, "left", &ha, "after commit").unwrap()["status"],
        "SUCCESS"
    );
    let ok: bool = one(
        &mut c.connect(&db, "postgres"),
        "SELECT ok FROM repair.verify_audit()",
    );
    assert!(ok);
}

#[test]
fn nothing_is_granted_to_public() {
    let c = Cluster::shared();
    let db = c.fresh_db("nogrant");
    let mut bob = c.connect(&db, "bob");
    for sql in [
        "SELECT repair.execute('x', 'y', 'z')",
        "SELECT * FROM repair.register('-- repair: x')",
        "SELECT repair.preview('x')",
        "SELECT * FROM repair.runs",
        "SELECT * FROM repair.verify_audit()",
    ] {
        assert_eq!(
            db_error(bob.batch_execute(sql)).code().code(),
            "42501",
            "{sql}"
        );
    }
}

#[test]
fn errors_outside_execute_pass_through_the_utility_hook_unchanged() {
    let c = Cluster::shared();
    let db = c.fresh_db("hookcode");
    let e = db_error(c.connect(&db, "alice").batch_execute(
        "DO $$ BEGIN RAISE EXCEPTION 'mine' USING ERRCODE = 'AB123', HINT = 'h'; END $$",
    ));
    assert_eq!(
        (e.code().code(), e.message(), e.hint()),
        ("AB123", "mine", Some("h"))
    );
    assert!(
        e.where_().unwrap_or("").contains("PL/pgSQL"),
        "{:?}",
        e.where_()
    );
}
