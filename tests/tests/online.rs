//! Online playbooks against a real server, driven over SQL as a client would: the sequence guard
//! of an armed session (and its attacks), statement errors, audit rows, locks, guards 1–7, a
//! 200,000-row batched backfill, and writers' latency while an index is built.

use pg_repair_tests::{db_error, execute, one, register, Cluster, Conf};
use postgres::{Client, SimpleQueryMessage};
use serde_json::Value;
use std::time::{Duration, Instant};

fn online(id: &str, header: &str, body: &str) -> String {
    format!("-- repair: {id}\n-- title: online test {id}\n-- environments: staging, prod\n-- mode: online\n{header}{body}\n")
}

fn reg(c: &Cluster, db: &str, src: &str) -> String {
    register(&mut c.connect(db, "carol"), src).1
}

fn begin(cl: &mut Client, id: &str, hash: &str, reason: &str) -> Result<Value, postgres::Error> {
    cl.query_one(
        "SELECT repair.online_begin($1, $2, $3)",
        &[&id, &hash, &reason],
    )
    .map(|r| r.get(0))
}

/// Sends one statement as a simple query; rows affected.
fn send(cl: &mut Client, sql: &str) -> Result<u64, postgres::Error> {
    let mut rows = 0;
    for m in cl.simple_query(sql)? {
        if let SimpleQueryMessage::CommandComplete(n) = m {
            rows = n;
        }
    }
    Ok(rows)
}

/// A control call with literal arguments (the only form an armed session accepts).
fn control(cl: &mut Client, sql: &str) -> Result<Value, postgres::Error> {
    for m in cl.simple_query(sql)? {
        if let SimpleQueryMessage::Row(r) = m {
            return Ok(serde_json::from_str(r.get(0).unwrap()).unwrap());
        }
    }
    panic!("{sql}: no row");
}

fn finish(cl: &mut Client, run: &str) -> Result<Value, postgres::Error> {
    control(cl, &format!("SELECT repair.online_finish('{run}')"))
}

fn abort(cl: &mut Client, run: &str, why: &str) -> Result<Value, postgres::Error> {
    control(cl, &format!("SELECT repair.online_abort('{run}', '{why}')"))
}

/// Runs every statement of a begun run (batch statements until 0 rows); the batches' rows.
fn drive(cl: &mut Client, start: &Value) -> Vec<u64> {
    let mut batches = vec![];
    for s in start["statements"].as_array().unwrap() {
        let sql = s["sql"].as_str().unwrap();
        if s["batch"] == true {
            loop {
                let n = send(cl, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                batches.push(n);
                if n == 0 {
                    break;
                }
            }
        } else {
            send(cl, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
    batches
}

fn run_id(v: &Value) -> String {
    v["run_id"].as_str().unwrap().to_string()
}

fn verify_ok(c: &Cluster, db: &str) {
    let ok: bool = one(
        &mut c.connect(db, "postgres"),
        "SELECT ok FROM repair.verify_audit()",
    );
    assert!(ok, "verify_audit");
}

const ORDERS: &str =
    "CREATE TABLE public.orders (id bigserial PRIMARY KEY, customer_id int, note text);
    INSERT INTO public.orders (customer_id) SELECT g % 100 FROM generate_series(1, 2000) g;
    GRANT SELECT, INSERT, UPDATE ON public.orders TO alice;
    ALTER TABLE public.orders OWNER TO alice;";

#[test]
fn an_online_run_goes_statement_by_statement_and_chains_two_rows() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_ok");
    c.connect(&db, "postgres").batch_execute(ORDERS).unwrap();
    c.connect(&db, "postgres")
        .batch_execute("CREATE TABLE public.customers (id int PRIMARY KEY); INSERT INTO public.customers SELECT generate_series(0, 99); ALTER TABLE public.customers OWNER TO alice;")
        .unwrap();
    let src = online(
        "orders_online",
        "-- requires-after: public.orders_customer_idx\n-- waive: ban-update until 2099-01-01 because backfill reviewed\n",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_idx ON public.orders (customer_id);\n\
         ALTER TABLE public.orders DROP CONSTRAINT IF EXISTS x_never, ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES public.customers (id) NOT VALID;\n\
         ALTER TABLE public.orders VALIDATE CONSTRAINT orders_customer_fk;\n\
         -- batch\n\
         UPDATE public.orders SET note = 'filled' WHERE id IN (SELECT id FROM public.orders WHERE note IS NULL ORDER BY id LIMIT 700);",
    );
    // ALTER TABLE … DROP is refused by lint even here: only the online forms are added.
    let mut carol = c.connect(&db, "carol");
    let (_, bad_hash, _) = register(&mut carol, &src);
    let mut su = c.connect(&db, "postgres");
    let rules: Vec<String> = one(
        &mut su,
        "SELECT array_agg(f ->> 'rule' ORDER BY f ->> 'rule') FROM repair.playbook_versions v, jsonb_array_elements(v.lint) f WHERE v.playbook_id = 'orders_online'",
    );
    assert_eq!(
        rules,
        ["ban-alter-table-drop", "ban-update"],
        "only the online forms are allowed"
    );
    let mut a = c.connect(&db, "alice");
    assert_eq!(
        db_error(begin(&mut a, "orders_online", &bad_hash, "T-1"))
            .code()
            .code(),
        "RP007"
    );
    let src = src.replace("DROP CONSTRAINT IF EXISTS x_never, ", "");
    let hash = reg(c, &db, &src);
    let mode: String = one(
        &mut su,
        "SELECT mode FROM repair.playbooks WHERE id = 'orders_online'",
    );
    assert_eq!(mode, "online");
    let lock_before: String = one(&mut a, "SHOW lock_timeout");

    let start = begin(&mut a, "orders_online", &hash, "T-1 online index").unwrap();
    assert_eq!(start["status"], "STARTED");
    assert_eq!(start["incomplete_runs"], serde_json::json!([]));
    let stmts = start["statements"].as_array().unwrap();
    assert_eq!(stmts.len(), 4);
    assert_eq!(
        stmts.iter().map(|s| s["batch"] == true).collect::<Vec<_>>(),
        [false, false, false, true]
    );
    assert_eq!(stmts[0]["line"], 7, "file line of the statement");
    let run = run_id(&start);
    let batches = drive(&mut a, &start);
    assert_eq!(batches, [700, 700, 600, 0]);
    let done = finish(&mut a, &run).unwrap();
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(done["online_run"], run.as_str());
    assert_eq!(done["statements_executed"], 4);
    assert_eq!(done["batches"], 4);
    assert_eq!(done["rows_affected"], 2000);
    // the session is back to normal: its settings restored, any statement allowed
    let lock_after: String = one(&mut a, "SHOW lock_timeout");
    assert_eq!(lock_after, lock_before);
    let _: i32 = one(&mut a, "SELECT 1");

    let rows = su
        .query(
            "SELECT status, online_run::text, mode, batches, rows_affected, statements_executed, prev_hash IS NOT DISTINCT FROM lag(row_hash) OVER (ORDER BY seq)
               FROM repair.runs ORDER BY seq",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, String>(0), "STARTED");
    assert_eq!(rows[1].get::<_, String>(0), "SUCCESS");
    for r in &rows {
        assert_eq!(r.get::<_, String>(1), run);
        assert_eq!(r.get::<_, String>(2), "online");
    }
    assert_eq!(rows[1].get::<_, Option<i32>>(3), Some(4));
    assert_eq!(rows[1].get::<_, Option<i64>>(4), Some(2000));
    assert!(
        rows[1].get::<_, bool>(6),
        "the closing row links to the STARTED row"
    );
    let valid: bool = one(
        &mut su,
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.orders_customer_idx'::regclass",
    );
    assert!(valid);
    let validated: bool = one(
        &mut su,
        "SELECT convalidated FROM pg_constraint WHERE conname = 'orders_customer_fk'",
    );
    assert!(validated);
    verify_ok(c, &db);
    // transactional playbooks are unchanged: execute still runs them
    let tx = reg(
        c,
        &db,
        "-- repair: tx_one\n-- title: t\nCREATE TABLE IF NOT EXISTS public.tx_one (id int);\n",
    );
    assert_eq!(
        execute(&mut a, "tx_one", &tx, "T-2").unwrap()["status"],
        "SUCCESS"
    );
}

#[test]
fn execute_refuses_an_online_playbook_only_after_the_guards() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_exec");
    let hash = reg(
        c,
        &db,
        &online(
            "ix",
            "",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_i ON public.t (id);",
        ),
    );
    let mut a = c.connect(&db, "alice");
    let wrong = "0".repeat(64);
    assert_eq!(
        db_error(execute(&mut a, "ix", &wrong, "T-1")).code().code(),
        "RP006"
    );
    let e = db_error(execute(&mut a, "ix", &hash, "T-1"));
    assert_eq!(e.code().code(), "RP011");
    assert!(
        e.message().starts_with("ONLINE_SEQUENCE:"),
        "{}",
        e.message()
    );
    assert!(e.hint().unwrap_or("").contains("pgrepair execute"));
    let runs: i64 = one(
        &mut c.connect(&db, "postgres"),
        "SELECT count(*) FROM repair.runs",
    );
    assert_eq!(runs, 0);
    // and online_begin refuses a transactional playbook
    let tx = reg(
        c,
        &db,
        "-- repair: tx\n-- title: t\nCREATE TABLE IF NOT EXISTS public.t (id int);\n",
    );
    assert_eq!(
        db_error(begin(&mut a, "tx", &tx, "T-1")).code().code(),
        "RP011"
    );
}

#[test]
fn guards_one_to_seven_apply_to_online_begin_exactly_as_to_execute() {
    let conf = Conf::take();
    let c = conf.cluster;
    let db = c.fresh_db("online_guards");
    let hash = reg(
        c,
        &db,
        &online(
            "g",
            "",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_i ON public.t (id);",
        ),
    );
    let lint_hash = reg(
        c,
        &db,
        &online(
            "g_lint",
            "",
            "CREATE INDEX CONCURRENTLY t_i2 ON public.t (id);",
        ),
    );
    let staging_only = reg(
        c,
        &db,
        "-- repair: g_staging\n-- title: t\n-- mode: online\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_i3 ON public.t (id);\n",
    );
    c.connect(&db, "postgres")
        .batch_execute("CREATE TABLE public.t (id int); ALTER TABLE public.t OWNER TO alice")
        .unwrap();
    let both = |user: &str, id: &str, h: &str, reason: &str| -> (String, String) {
        let mut cl = c.connect(&db, user);
        let e1 = db_error(execute(&mut cl, id, h, reason))
            .code()
            .code()
            .to_string();
        let e2 = db_error(begin(&mut cl, id, h, reason))
            .code()
            .code()
            .to_string();
        (e1, e2)
    };
    let same = |(a, b): (String, String), want: &str| {
        assert_eq!((a.as_str(), b.as_str()), (want, want));
    };
    same(both("bob", "g", &hash, "T-1"), "42501");
    same(both("alice", "g", &hash, ""), "RP004");
    same(both("alice", "nope", &hash, "T-1"), "RP005");
    same(both("alice", "g", &"f".repeat(64), "T-1"), "RP006");
    same(both("alice", "g_lint", &lint_hash, "T-1"), "RP007");
    // guard order: an unknown executor is refused before a missing reason
    same(both("bob", "g", &hash, ""), "42501");
    c.set_conf(&[
        ("repair.db_role", Some("prod")),
        ("repair.allow_prod", Some("on")),
    ]);
    same(both("alice", "g_staging", &staging_only, "T-1"), "RP002");
    // prod without the confirmation
    same(both("alice", "g", &hash, "T-1"), "RP002");
    c.set_conf(&[("repair.db_role", Some("replica"))]);
    same(both("alice", "g", &hash, "T-1"), "RP002");
    c.set_conf(&[("repair.db_role", None)]);
    same(both("alice", "g", &hash, "T-1"), "RP001");
    c.set_conf(&[("repair.db_role", Some("staging"))]);
    let mut a = c.connect(&db, "alice");
    let start = begin(&mut a, "g", &hash, "T-1").unwrap();
    drive(&mut a, &start);
    assert_eq!(
        finish(&mut a, &run_id(&start)).unwrap()["status"],
        "SUCCESS"
    );
    verify_ok(c, &db);
}

#[test]
fn an_armed_session_refuses_everything_out_of_sequence_and_changes_nothing() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_seq");
    c.connect(&db, "postgres").batch_execute(ORDERS).unwrap();
    c.connect(&db, "postgres")
        .batch_execute("CREATE TABLE public.other (id int); ALTER TABLE public.other OWNER TO alice;
                        CREATE PROCEDURE public.proc_ok() LANGUAGE sql AS 'INSERT INTO public.other VALUES (2)';")
        .unwrap();
    let first = "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_a ON public.orders (customer_id)";
    let second = "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_b ON public.orders (note)";
    let hash = reg(c, &db, &online("seq", "", &format!("{first};\n{second};")));
    let mut a = c.connect(&db, "alice");
    a.batch_execute("PREPARE p AS UPDATE public.orders SET note = 'p'; DECLARE cur CURSOR WITH HOLD FOR SELECT * FROM public.orders")
        .unwrap();
    // a protocol-level prepared statement whose plan is cached before the run (no parameters:
    // always the generic plan) and that calls no function: its later Bind/Execute plans nothing
    // and its query string is a copy, so only the executor hook's frame rule can judge it
    let cached = a.prepare("INSERT INTO public.other VALUES (5)").unwrap();
    a.execute(&cached, &[]).unwrap();
    let start = begin(&mut a, "seq", &hash, "T-1").unwrap();
    let run = run_id(&start);
    let e = db_error(a.execute(&cached, &[]));
    assert_eq!(e.code().code(), "RP011", "{}", e.message());
    let attacks: &[&str] = &[
        "CREATE TABLE public.evil (id int)",
        "DROP TABLE public.other",
        "SET ROLE bob",
        "SET statement_timeout = 0",
        "RESET ALL",
        "UPDATE public.orders SET note = 'x'",
        "INSERT INTO public.other VALUES (1)",
        second,
        "SELECT 1",
        "BEGIN",
        "EXECUTE p",
        "FETCH ALL FROM cur",
        &format!("{first}; SELECT 1"),
        &first.replace("CREATE INDEX", "CREATE  INDEX"),
        &format!("{first} WHERE customer_id > 0"),
        &format!("SELECT repair.online_finish('{run}'), 1"),
        &format!("SELECT repair.online_finish('{run}') FROM public.orders"),
        &format!("SELECT repair.online_abort('{run}', (SELECT 'x' FROM public.orders LIMIT 1))"),
        "SELECT pg_catalog.set_config('search_path', 'evil', false)",
        "CALL public.proc_ok()",
        "LISTEN x",
        "DISCARD ALL",
    ];
    for sql in attacks {
        let e = db_error(send(&mut a, sql));
        assert_eq!(e.code().code(), "RP011", "{sql}: {}", e.message());
        assert!(
            e.message().starts_with("ONLINE_SEQUENCE:"),
            "{}",
            e.message()
        );
    }
    // the extended protocol (a prepared statement, a parameter) is judged the same way
    let e = db_error(a.query("SELECT $1::int", &[&1i32]));
    assert_eq!(e.code().code(), "RP011");
    // another session works normally meanwhile
    let mut b = c.connect(&db, "alice");
    b.batch_execute(
        "CREATE TABLE public.meanwhile (id int); UPDATE public.orders SET note = 'b' WHERE id = 1",
    )
    .unwrap();
    let mut su = c.connect(&db, "postgres");
    let evil: Option<String> = one(&mut su, "SELECT to_regclass('public.evil')::text");
    assert_eq!(evil, None, "a refused statement changed nothing");
    let other: Option<String> = one(&mut su, "SELECT to_regclass('public.other')::text");
    assert!(other.is_some());
    let changed: i64 = one(
        &mut su,
        "SELECT count(*) FROM public.orders WHERE note IN ('x', 'p')",
    );
    assert_eq!(changed, 0);
    let fives: i64 = one(&mut su, "SELECT count(*) FROM public.other WHERE id = 5");
    assert_eq!(fives, 1, "the cached INSERT ran only before the run");
    let b_index: Option<String> = one(&mut su, "SELECT to_regclass('public.orders_b')::text");
    assert_eq!(b_index, None, "statement 2 before statement 1 did not run");
    // the run itself is unaffected: the statements in order (a leading comment is not part of
    // a statement, on every supported major), then finish
    send(
        &mut a,
        &format!("-- step 1 of the reviewed playbook\n{first}"),
    )
    .unwrap();
    send(&mut a, second).unwrap();
    let done = finish(&mut a, &run).unwrap();
    assert_eq!(done["status"], "SUCCESS");
    assert_eq!(done["statements_executed"], 2);
    // disarmed: the session is normal again
    a.batch_execute("CREATE TABLE public.after_run (id int)")
        .unwrap();
    verify_ok(c, &db);
}

#[test]
fn a_failed_statement_fails_the_run_and_no_statement_can_be_skipped() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_fail");
    c.connect(&db, "postgres")
        .batch_execute("CREATE TABLE public.dup (id int, email text); INSERT INTO public.dup VALUES (1, 'alice@example.com'), (2, 'alice@example.com'); ALTER TABLE public.dup OWNER TO alice;")
        .unwrap();
    let hash = reg(
        c,
        &db,
        &online(
            "uniq",
            "",
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS dup_email ON public.dup (email);\nCREATE TABLE IF NOT EXISTS public.after_uniq (id int);",
        ),
    );
    let mut a = c.connect(&db, "alice");
    let start = begin(&mut a, "uniq", &hash, "T-1").unwrap();
    let run = run_id(&start);
    let stmts = start["statements"].as_array().unwrap();
    let e = db_error(send(&mut a, stmts[0]["sql"].as_str().unwrap()));
    assert_eq!(e.code().code(), "23505", "{e:?}");
    // the client cannot go on to the next statement, nor retry
    for s in stmts {
        let e = db_error(send(&mut a, s["sql"].as_str().unwrap()));
        assert_eq!(e.code().code(), "RP011", "{}", e.message());
    }
    let done = finish(&mut a, &run).unwrap();
    assert_eq!(done["status"], "FAILED");
    assert_eq!(done["error_code"], "23505");
    assert!(
        done["error_message"]
            .as_str()
            .unwrap()
            .starts_with("statement 1: could not create unique index"),
        "{done}"
    );
    assert_eq!(done["statements_executed"], 0);
    let mut su = c.connect(&db, "postgres");
    let after: Option<String> = one(&mut su, "SELECT to_regclass('public.after_uniq')::text");
    assert_eq!(after, None);
    // CONCURRENTLY left an INVALID index behind: the built-in check names it
    let invalid: i64 = one(
        &mut su,
        "SELECT count(*) FROM repair.check_invalid_index() WHERE index_name::text LIKE '%dup_email%'",
    );
    assert_eq!(invalid, 1);
    verify_ok(c, &db);
}

#[test]
fn finish_needs_every_statement_and_abort_closes_the_run() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_abort");
    let hash = reg(
        c,
        &db,
        &online(
            "two",
            "",
            "CREATE TABLE IF NOT EXISTS public.two_a (id int);\nCREATE TABLE IF NOT EXISTS public.two_b (id int);",
        ),
    );
    let mut a = c.connect(&db, "alice");
    let start = begin(&mut a, "two", &hash, "T-1").unwrap();
    let run = run_id(&start);
    send(&mut a, start["statements"][0]["sql"].as_str().unwrap()).unwrap();
    let e = db_error(finish(&mut a, &run));
    assert_eq!(e.code().code(), "RP011");
    assert!(
        e.message().contains("1 statement(s) left"),
        "{}",
        e.message()
    );
    // only this session's run can be ended, and only by this session
    let mut other = c.connect(&db, "alice");
    assert_eq!(
        db_error(abort(&mut other, &run, "x")).code().code(),
        "RP011"
    );
    let done = abort(&mut a, &run, "operator stopped it").unwrap();
    assert_eq!(done["status"], "ABORTED");
    assert_eq!(done["statements_executed"], 1);
    assert!(done["error_message"]
        .as_str()
        .unwrap()
        .contains("operator stopped it"));
    // the lock is released: the playbook can be run again at once, by another session
    let again = begin(&mut other, "two", &hash, "T-2").unwrap();
    drive(&mut other, &again);
    assert_eq!(
        finish(&mut other, &run_id(&again)).unwrap()["status"],
        "SUCCESS"
    );
    verify_ok(c, &db);
}

#[test]
fn one_playbook_never_interleaves_and_others_never_wait() {
    let conf = Conf::take();
    let c = conf.cluster;
    c.set_conf(&[("repair.lock_timeout", Some("300ms"))]);
    let db = c.fresh_db("online_lock");
    let h1 = reg(
        c,
        &db,
        &online("l1", "", "CREATE TABLE IF NOT EXISTS public.l1 (id int);"),
    );
    let h2 = reg(
        c,
        &db,
        &online("l2", "", "CREATE TABLE IF NOT EXISTS public.l2 (id int);"),
    );
    let mut a = c.connect(&db, "alice");
    let mut b = c.connect(&db, "alice");
    let start = begin(&mut a, "l1", &h1, "T-1").unwrap();
    // across a's transactions the lock stays held
    let t = Instant::now();
    let e = db_error(begin(&mut b, "l1", &h1, "T-2"));
    assert_eq!(e.code().code(), "55P03", "{}", e.message());
    assert!(t.elapsed() < Duration::from_secs(5));
    // nor can a transactional execute of it, or a new registration, slip in
    let t = Instant::now();
    let other = begin(&mut b, "l2", &h2, "T-3").unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "another playbook does not wait"
    );
    drive(&mut b, &other);
    finish(&mut b, &run_id(&other)).unwrap();
    drive(&mut a, &start);
    finish(&mut a, &run_id(&start)).unwrap();
    let again = begin(&mut b, "l1", &h1, "T-4").unwrap();
    drive(&mut b, &again);
    assert_eq!(
        finish(&mut b, &run_id(&again)).unwrap()["status"],
        "SUCCESS"
    );
    verify_ok(c, &db);
}

#[test]
fn a_session_that_dies_leaves_an_incomplete_run_that_the_next_begin_reports() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_dead");
    let hash = reg(
        c,
        &db,
        &online(
            "dies",
            "",
            "CREATE TABLE IF NOT EXISTS public.d1 (id int);\nCREATE TABLE IF NOT EXISTS public.d2 (id int);",
        ),
    );
    let first = {
        let mut a = c.connect(&db, "alice");
        let start = begin(&mut a, "dies", &hash, "T-1").unwrap();
        send(&mut a, start["statements"][0]["sql"].as_str().unwrap()).unwrap();
        run_id(&start)
        // the connection closes here, mid-run
    };
    let mut b = c.connect(&db, "alice");
    let deadline = Instant::now() + Duration::from_secs(10);
    let start = loop {
        match begin(&mut b, "dies", &hash, "T-2") {
            Ok(v) => break v,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(db_error::<()>(Err(e)).code().code(), "55P03");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(start["incomplete_runs"], serde_json::json!([first]));
    drive(&mut b, &start);
    assert_eq!(
        finish(&mut b, &run_id(&start)).unwrap()["status"],
        "SUCCESS"
    );
    verify_ok(c, &db);
}

#[test]
fn statements_run_as_the_session_user_with_the_runtime_enforced() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_identity");
    c.connect(&db, "postgres")
        .batch_execute("CREATE TABLE public.victim (id int); INSERT INTO public.victim VALUES (1); GRANT ALL ON public.victim TO alice;")
        .unwrap();
    let hash = reg(
        c,
        &db,
        &online(
            "who",
            "",
            "CREATE TABLE IF NOT EXISTS public.owned (id int);\nDO $$ BEGIN EXECUTE 'DELETE FROM public.victim'; END $$;",
        ),
    );
    let mut a = c.connect(&db, "alice");
    // a role set before begin does not carry over: the statements run as the session user
    a.batch_execute("SET ROLE repair_operators").unwrap();
    let start = begin(&mut a, "who", &hash, "T-1").unwrap();
    assert_eq!(start["executed_as"], "alice");
    let run = run_id(&start);
    send(&mut a, start["statements"][0]["sql"].as_str().unwrap()).unwrap();
    let e = db_error(send(
        &mut a,
        start["statements"][1]["sql"].as_str().unwrap(),
    ));
    assert_eq!(
        e.code().code(),
        "42501",
        "DELETE refused at runtime: {}",
        e.message()
    );
    let done = finish(&mut a, &run).unwrap();
    assert_eq!(done["status"], "FAILED");
    assert!(
        done["error_message"].as_str().unwrap().contains("DELETE"),
        "{done}"
    );
    let mut su = c.connect(&db, "postgres");
    let owner: String = one(
        &mut su,
        "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'public.owned'::regclass",
    );
    assert_eq!(owner, "alice");
    let left: i64 = one(&mut su, "SELECT count(*) FROM public.victim");
    assert_eq!(left, 1);
    // a function named like a control function is not one
    su.batch_execute("CREATE FUNCTION public.online_finish(uuid) RETURNS int LANGUAGE sql AS 'SELECT 1'; GRANT EXECUTE ON FUNCTION public.online_finish(uuid) TO alice;")
        .unwrap();
    let start = begin(&mut a, "who", &hash, "T-2").unwrap();
    let e = db_error(send(
        &mut a,
        &format!("SELECT public.online_finish('{}')", run_id(&start)),
    ));
    assert_eq!(e.code().code(), "RP011");
    abort(&mut a, &run_id(&start), "done").unwrap();
    verify_ok(c, &db);
}

#[test]
fn a_batched_backfill_of_200000_rows_commits_batch_by_batch() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_backfill");
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE TABLE public.events (id bigint PRIMARY KEY, kind text, kind_code int);
             INSERT INTO public.events SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END FROM generate_series(1, 200000) g;
             ALTER TABLE public.events OWNER TO alice;",
        )
        .unwrap();
    let hash = reg(
        c,
        &db,
        &online(
            "backfill",
            "-- waive: ban-update until 2099-01-01 because backfill of kind_code reviewed\n",
            "-- batch\nUPDATE public.events SET kind_code = CASE kind WHEN 'a' THEN 1 ELSE 2 END\n WHERE id IN (SELECT id FROM public.events WHERE kind_code IS NULL ORDER BY id LIMIT 5000);",
        ),
    );
    let mut a = c.connect(&db, "alice");
    let mut watcher = c.connect(&db, "postgres");
    let start = begin(&mut a, "backfill", &hash, "T-1").unwrap();
    let sql = start["statements"][0]["sql"].as_str().unwrap().to_string();
    let t = Instant::now();
    let mut total = 0u64;
    let mut batches = 0;
    loop {
        let n = send(&mut a, &sql).unwrap();
        batches += 1;
        total += n;
        // each batch is its own committed transaction: another session sees the progress
        let seen: i64 = one(
            &mut watcher,
            "SELECT count(*) FROM public.events WHERE kind_code IS NOT NULL",
        );
        assert_eq!(seen as u64, total);
        if n == 0 {
            break;
        }
        assert_eq!(n, 5000);
    }
    let secs = t.elapsed().as_secs_f64();
    let done = finish(&mut a, &run_id(&start)).unwrap();
    assert_eq!(done["status"], "SUCCESS");
    assert_eq!(done["batches"], 41);
    assert_eq!(done["rows_affected"], 200000);
    assert_eq!(batches, 41);
    eprintln!(
        "backfill: 200000 rows in 40 batches of 5000 (+1 empty) in {secs:.2} s = {:.0} rows/s",
        200000.0 / secs
    );
    verify_ok(c, &db);
}

/// Writers' worst latency while `build` runs in another session.
fn writers_max_latency(c: &Cluster, db: &str, build: impl FnOnce()) -> Duration {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let conninfo = c.conninfo(db, "postgres");
    let s = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut w = Client::connect(&conninfo, postgres::NoTls).unwrap();
        let mut worst = Duration::ZERO;
        let mut i = 0i64;
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            w.execute(
                "INSERT INTO public.busy (customer_id) VALUES ($1)",
                &[&(i as i32 % 1000)],
            )
            .unwrap();
            w.execute(
                "UPDATE public.busy SET customer_id = customer_id WHERE id = $1",
                &[&(i % 1000 + 1)],
            )
            .unwrap();
            worst = worst.max(t.elapsed());
            i += 1;
        }
        worst
    });
    std::thread::sleep(Duration::from_millis(200));
    build();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap()
}

#[test]
fn writers_keep_writing_while_an_online_playbook_builds_an_index() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_writers");
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE TABLE public.busy (id bigserial PRIMARY KEY, customer_id int, pad text);
             INSERT INTO public.busy (customer_id, pad) SELECT g % 1000, repeat('x', 100) FROM generate_series(1, 1500000) g;
             ANALYZE public.busy; ALTER TABLE public.busy OWNER TO alice;",
        )
        .unwrap();
    let online_hash = reg(
        c,
        &db,
        &online(
            "busy_online",
            "-- lock-timeout: 2s\n",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS busy_online_idx ON public.busy (customer_id, pad);",
        ),
    );
    let tx_hash = reg(
        c,
        &db,
        "-- repair: busy_tx\n-- title: t\n-- lock-timeout: 2s\n-- statement-timeout: 5min\nCREATE INDEX IF NOT EXISTS busy_tx_idx ON public.busy (customer_id, pad);\n",
    );
    let mut build_online = Duration::ZERO;
    let online_worst = writers_max_latency(c, &db, || {
        let mut a = c.connect(&db, "alice");
        let t = Instant::now();
        let start = begin(&mut a, "busy_online", &online_hash, "T-1").unwrap();
        drive(&mut a, &start);
        assert_eq!(
            finish(&mut a, &run_id(&start)).unwrap()["status"],
            "SUCCESS"
        );
        build_online = t.elapsed();
    });
    let mut build_tx = Duration::ZERO;
    let tx_worst = writers_max_latency(c, &db, || {
        let mut a = c.connect(&db, "alice");
        let t = Instant::now();
        assert_eq!(
            execute(&mut a, "busy_tx", &tx_hash, "T-2").unwrap()["status"],
            "SUCCESS"
        );
        build_tx = t.elapsed();
    });
    eprintln!(
        "writers' worst latency: online {:.0} ms (build {:.0} ms), transactional {:.0} ms (build {:.0} ms)",
        online_worst.as_secs_f64() * 1000.0,
        build_online.as_secs_f64() * 1000.0,
        tx_worst.as_secs_f64() * 1000.0,
        build_tx.as_secs_f64() * 1000.0
    );
    assert!(
        online_worst < Duration::from_secs(2),
        "no writer waits longer than the lock timeout"
    );
    assert!(
        tx_worst >= build_tx / 2,
        "the transactional build blocks the writers for most of the build ({tx_worst:?} of {build_tx:?})"
    );
    assert!(tx_worst > online_worst * 2);
    verify_ok(c, &db);
}

#[test]
fn the_playbooks_timeouts_hold_for_its_statements_and_the_session_gets_its_own_back() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_timeouts");
    let hash = reg(
        c,
        &db,
        &online(
            "slow",
            "-- statement-timeout: 300ms\n-- lock-timeout: 150ms\n",
            "SELECT pg_catalog.pg_sleep(2);\nCREATE TABLE IF NOT EXISTS public.never (id int);",
        ),
    );
    let mut a = c.connect(&db, "alice");
    a.batch_execute("SET statement_timeout = '7s'; SET lock_timeout = '3s'")
        .unwrap();
    let start = begin(&mut a, "slow", &hash, "T-1").unwrap();
    assert_eq!(start["statement_timeout_ms"], 300);
    let t = Instant::now();
    let e = db_error(send(
        &mut a,
        start["statements"][0]["sql"].as_str().unwrap(),
    ));
    assert_eq!(e.code().code(), "57014");
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    let done = finish(&mut a, &run_id(&start)).unwrap();
    assert_eq!(done["status"], "FAILED");
    assert_eq!(done["error_code"], "57014");
    let (st, lt): (String, String) = {
        let r = a
            .query_one(
                "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((st.as_str(), lt.as_str()), ("7s", "3s"));
    verify_ok(c, &db);
}

#[test]
fn begin_refuses_transaction_blocks_repeatable_read_a_second_run_and_nesting() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_begin_refusals");
    let h1 = reg(
        c,
        &db,
        &online("b1", "", "CREATE TABLE IF NOT EXISTS public.b1 (id int);"),
    );
    let h2 = reg(
        c,
        &db,
        &online(
            "b2",
            "",
            "DO $$ BEGIN PERFORM repair.online_abort(gen_random_uuid(), 'from inside'); END $$;",
        ),
    );
    let mut a = c.connect(&db, "alice");
    a.batch_execute("BEGIN").unwrap();
    assert_eq!(
        db_error(begin(&mut a, "b1", &h1, "T-1")).code().code(),
        "25001"
    );
    a.batch_execute("ROLLBACK").unwrap();
    a.batch_execute("SET default_transaction_isolation = 'repeatable read'")
        .unwrap();
    assert_eq!(
        db_error(begin(&mut a, "b1", &h1, "T-1")).code().code(),
        "25000"
    );
    a.batch_execute("RESET default_transaction_isolation")
        .unwrap();
    // two statements in one query string are one implicit transaction: refused
    let e = db_error(send(
        &mut a,
        &format!("SELECT repair.online_begin('b1', '{h1}', 'T-1'); SELECT 1"),
    ));
    assert_eq!(e.code().code(), "25001");
    let start = begin(&mut a, "b1", &h1, "T-1").unwrap();
    // a second run in the same session is a sequence error (and begin itself is not the next
    // statement of the first)
    assert_eq!(
        db_error(begin(&mut a, "b2", &h2, "T-2")).code().code(),
        "RP011"
    );
    drive(&mut a, &start);
    finish(&mut a, &run_id(&start)).unwrap();
    // a playbook statement cannot end a run (its own or any other)
    let start = begin(&mut a, "b2", &h2, "T-3").unwrap();
    let e = db_error(send(
        &mut a,
        start["statements"][0]["sql"].as_str().unwrap(),
    ));
    assert_eq!(e.code().code(), "0A000", "{}", e.message());
    let done = finish(&mut a, &run_id(&start)).unwrap();
    assert_eq!(done["status"], "FAILED");
    verify_ok(c, &db);
}

#[test]
fn deferred_work_of_a_statement_runs_inside_the_run_and_is_enforced() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_deferred");
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE TABLE public.victim (id int); INSERT INTO public.victim VALUES (1), (2);
             CREATE TABLE public.items (id int PRIMARY KEY, v int);
             INSERT INTO public.items SELECT g, NULL FROM generate_series(1, 10) g;
             CREATE FUNCTION public.wipe() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN DELETE FROM public.victim; RETURN NULL; END $$;
             CREATE CONSTRAINT TRIGGER later AFTER UPDATE ON public.items
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.wipe();
             ALTER TABLE public.items OWNER TO alice; GRANT ALL ON public.victim TO alice;",
        )
        .unwrap();
    let hash = reg(
        c,
        &db,
        &online(
            "deferred",
            "-- waive: ban-update until 2099-01-01 because test\n",
            "-- batch\nUPDATE public.items SET v = 1 WHERE id IN (SELECT id FROM public.items WHERE v IS NULL LIMIT 5);",
        ),
    );
    let mut a = c.connect(&db, "alice");
    let start = begin(&mut a, "deferred", &hash, "T-1").unwrap();
    let e = db_error(send(
        &mut a,
        start["statements"][0]["sql"].as_str().unwrap(),
    ));
    assert_eq!(e.code().code(), "42501", "{}", e.message());
    let done = finish(&mut a, &run_id(&start)).unwrap();
    assert_eq!(done["status"], "FAILED");
    assert!(
        done["error_message"].as_str().unwrap().contains("DELETE"),
        "{done}"
    );
    let mut su = c.connect(&db, "postgres");
    let left: i64 = one(&mut su, "SELECT count(*) FROM public.victim");
    assert_eq!(left, 2, "the deferred DELETE was refused");
    let updated: i64 = one(
        &mut su,
        "SELECT count(*) FROM public.items WHERE v IS NOT NULL",
    );
    assert_eq!(updated, 0, "the batch rolled back with it");
    verify_ok(c, &db);
}

#[test]
fn settings_a_statement_changes_end_with_it() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_settings");
    let hash = reg(
        c,
        &db,
        &online(
            "sets",
            "-- statement-timeout: 300ms\n",
            "DO $$ BEGIN PERFORM pg_catalog.set_config('statement_timeout', '0', false); PERFORM pg_catalog.set_config('search_path', 'pg_temp', false); END $$;\n\
             SELECT pg_catalog.pg_sleep(1);",
        ),
    );
    let mut a = c.connect(&db, "alice");
    let path_before: String = one(&mut a, "SHOW search_path");
    let start = begin(&mut a, "sets", &hash, "T-1").unwrap();
    send(&mut a, start["statements"][0]["sql"].as_str().unwrap()).unwrap();
    // the DO block's session-level settings did not outlive its statement: the playbook's
    // statement timeout still holds for the next one
    let e = db_error(send(
        &mut a,
        start["statements"][1]["sql"].as_str().unwrap(),
    ));
    assert_eq!(e.code().code(), "57014");
    assert_eq!(finish(&mut a, &run_id(&start)).unwrap()["status"], "FAILED");
    let path_after: String = one(&mut a, "SHOW search_path");
    assert_eq!(path_after, path_before);
    verify_ok(c, &db);
}

#[test]
fn a_missing_requires_before_object_is_a_failed_run_and_the_session_stays_free() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_before");
    let hash = reg(
        c,
        &db,
        &online(
            "needs",
            "-- requires-before: public.nope\n",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS nope_i ON public.nope (id);",
        ),
    );
    let mut a = c.connect(&db, "alice");
    let r = begin(&mut a, "needs", &hash, "T-1").unwrap();
    assert_eq!(r["status"], "FAILED");
    assert_eq!(r["error_code"], "RP008");
    assert_eq!(r["missing_before"], serde_json::json!(["public.nope"]));
    assert_eq!(r["mode"], "online");
    // not armed: anything goes
    let n: i32 = one(&mut a, "SELECT 1");
    assert_eq!(n, 1);
    let rows: i64 = one(
        &mut c.connect(&db, "postgres"),
        "SELECT count(*) FROM repair.runs WHERE status = 'FAILED' AND mode = 'online' AND online_run = run_id",
    );
    assert_eq!(rows, 1);
    verify_ok(c, &db);
}

#[test]
fn the_extended_protocol_drives_a_run_too() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_extended");
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE TABLE public.ext (id int PRIMARY KEY, v int);
             INSERT INTO public.ext SELECT g, NULL FROM generate_series(1, 25) g;
             ALTER TABLE public.ext OWNER TO alice;",
        )
        .unwrap();
    let hash = reg(
        c,
        &db,
        &online(
            "ext",
            "-- waive: ban-update until 2099-01-01 because test\n",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ext_v ON public.ext (v);\n-- batch\nUPDATE public.ext SET v = 1 WHERE id IN (SELECT id FROM public.ext WHERE v IS NULL ORDER BY id LIMIT 10);",
        ),
    );
    let mut a = c.connect(&db, "alice");
    let start = begin(&mut a, "ext", &hash, "T-1").unwrap();
    let stmts = start["statements"].as_array().unwrap();
    a.execute(stmts[0]["sql"].as_str().unwrap(), &[]).unwrap();
    let mut seen = vec![];
    loop {
        let n = a.execute(stmts[1]["sql"].as_str().unwrap(), &[]).unwrap();
        seen.push(n);
        if n == 0 {
            break;
        }
    }
    assert_eq!(seen, [10, 10, 5, 0]);
    // the control call through the extended protocol, with a parameter
    let done: Value = a
        .query_one(
            "SELECT repair.online_finish($1::text::uuid)",
            &[&run_id(&start)],
        )
        .unwrap()
        .get(0);
    assert_eq!(done["status"], "SUCCESS");
    assert_eq!(done["rows_affected"], 25);
    verify_ok(c, &db);
}
