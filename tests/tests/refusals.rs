//! Refusals on record against a real server: every kind of refusal lands in repair.refusals
//! within a second although its caller rolled back; a flood is counted, never blocking; the
//! recorder killed with SIGKILL is restarted and nothing it had queued is lost; several
//! databases; tampering with the table is detected. Settings are cluster-wide: CONF lock.

use pg_repair_tests::{db_error, one, playbook, register, Cluster, Conf};
use postgres::Client;
use serde_json::Value;
use std::time::{Duration, Instant};

fn queue(c: &mut Client) -> Value {
    one(c, "SELECT repair.refusal_queue()")
}

/// Waits until this database's queue is written out (nothing queued, no drop count pending).
fn drained(c: &Cluster, db: &str, within: Duration) {
    let deadline = Instant::now() + within;
    let mut su = c.connect(db, "postgres");
    loop {
        let q = queue(&mut su);
        if q["queued"] == 0 && q["dropped_pending"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "queue not drained: {q}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The refusal row with this reason, polled for until `deadline`.
fn refusal(c: &mut Client, reason: &str, deadline: Instant) -> Option<Value> {
    loop {
        let row: Option<Value> = c
            .query_opt(
                "SELECT to_jsonb(r) FROM repair.refusals r WHERE reason = $1",
                &[&reason],
            )
            .unwrap()
            .map(|r| r.get(0));
        if row.is_some() || Instant::now() >= deadline {
            return row;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Calls `sql` in a transaction that the caller then rolls back; returns the SQLSTATE.
fn refused_and_rolled_back(c: &mut Client, sql: &str) -> String {
    c.batch_execute("BEGIN").unwrap();
    let e = db_error(c.batch_execute(sql));
    c.batch_execute("ROLLBACK").unwrap();
    e.code().code().to_string()
}

#[test]
fn every_kind_of_refusal_is_recorded_within_a_second_despite_the_rollback() {
    let conf = Conf::take();
    let c = conf.cluster;
    let db = c.fresh_db("ref_kinds");
    // bob may call execute but is no executor
    c.connect(&db, "postgres")
        .batch_execute("GRANT USAGE ON SCHEMA repair TO bob; GRANT EXECUTE ON FUNCTION repair.execute(text, text, text, boolean, text) TO bob; \
                        GRANT EXECUTE ON FUNCTION repair.assert_migrations_allowed(boolean) TO repair_operators")
        .unwrap();
    let mut carol = c.connect(&db, "carol");
    let (_, hash, _) = register(
        &mut carol,
        &playbook("okay", "CREATE TABLE IF NOT EXISTS public.okay_t (id int);"),
    );
    let (_, lint_hash, _) = register(&mut carol, &playbook("linty", "DROP TABLE public.gone;"));
    let online = "-- repair: onl\n-- title: online\n-- environments: staging, prod\n-- mode: online\nCREATE TABLE IF NOT EXISTS public.onl_t (id int);\n";
    let (_, online_hash, _) = register(&mut carol, online);
    let exec = |id: &str, h: &str, reason: &str| {
        format!("SELECT repair.execute('{id}', '{h}', '{reason}')")
    };
    // (setup settings, user, statement, expected SQLSTATE, guard NAME, function, reason)
    type Case = (
        &'static [(&'static str, Option<&'static str>)],
        &'static str,
        String,
        &'static str,
        &'static str,
        &'static str,
        String,
    );
    let mut cases: Vec<Case> = vec![];
    let r = |n: u32| format!("kinds-{n}");
    cases.push((
        &[("repair.db_role", None)],
        "alice",
        exec("okay", &hash, &r(1)),
        "RP001",
        "ROLE_UNDECLARED",
        "execute",
        r(1),
    ));
    cases.push((
        &[("repair.db_role", Some("replica"))],
        "alice",
        exec("okay", &hash, &r(2)),
        "RP002",
        "ENV_DISABLED",
        "execute",
        r(2),
    ));
    cases.push((
        &[("repair.db_role", Some("staging"))],
        "bob",
        exec("okay", &hash, &r(3)),
        "42501",
        "NOT_AUTHORIZED",
        "execute",
        r(3),
    ));
    cases.push((
        &[],
        "alice",
        format!("SELECT repair.execute('nope', '{hash}', '{}')", r(4)),
        "RP005",
        "UNKNOWN_PLAYBOOK",
        "execute",
        r(4),
    ));
    cases.push((
        &[],
        "alice",
        exec("okay", &"0".repeat(64), &r(5)),
        "RP006",
        "HASH_MISMATCH",
        "execute",
        r(5),
    ));
    cases.push((
        &[],
        "alice",
        exec("linty", &lint_hash, &r(6)),
        "RP007",
        "LINT_REJECTED",
        "execute",
        r(6),
    ));
    cases.push((
        &[("repair.require_approval", Some("always"))],
        "alice",
        exec("okay", &hash, &r(7)),
        "RP010",
        "APPROVAL_REQUIRED",
        "execute",
        r(7),
    ));
    cases.push((
        &[("repair.require_approval", Some("off"))],
        "alice",
        exec("onl", &online_hash, &r(8)),
        "RP011",
        "ONLINE_SEQUENCE",
        "execute",
        r(8),
    ));
    cases.push((
        &[],
        "alice",
        format!(
            "SELECT repair.online_begin('onl', '{online_hash}', '{}')",
            r(9)
        ),
        "25001",
        "ACTIVE_SQL_TRANSACTION",
        "online_begin",
        r(9),
    ));
    cases.push((
        &[],
        "erin",
        format!("SELECT repair.approve('okay', '{hash}', '{}')", r(10)),
        "42501",
        "NOT_AUTHORIZED",
        "approve",
        r(10),
    ));
    cases.push((
        &[("repair.approvers", Some("repair_approvers"))],
        "erin",
        format!(
            "SELECT repair.approve('okay', '{}', '{}')",
            "f".repeat(64),
            r(11)
        ),
        "RP006",
        "HASH_MISMATCH",
        "approve",
        r(11),
    ));
    cases.push((
        &[("repair.db_role", Some("replica"))],
        "alice",
        "SELECT repair.assert_migrations_allowed()".to_string(),
        "RP002",
        "ENV_DISABLED",
        "gate",
        String::new(),
    ));
    let mut last = Instant::now();
    for (settings, user, sql, code, _, _, _) in &cases {
        if !settings.is_empty() {
            c.set_conf(settings);
        }
        let mut k = c.connect(&db, user);
        assert_eq!(&refused_and_rolled_back(&mut k, sql), code, "{sql}");
        last = Instant::now();
    }
    // recorded although every caller rolled back: within a second of the last refusal
    let mut dave = c.connect(&db, "dave");
    let deadline = last + Duration::from_secs(1);
    for (_, user, sql, code, name, function, reason) in &cases {
        if reason.is_empty() {
            continue;
        }
        let row = refusal(&mut dave, reason, deadline)
            .unwrap_or_else(|| panic!("{sql}: not in repair.refusals within 1 s"));
        assert_eq!(
            (
                row["sqlstate"].as_str(),
                row["guard"].as_str(),
                row["function"].as_str(),
                row["session_user_name"].as_str()
            ),
            (Some(*code), Some(*name), Some(*function), Some(*user)),
            "{row}"
        );
        assert!(
            row["message"].as_str().unwrap_or("").starts_with(name),
            "{row}"
        );
        assert_eq!(row["client_addr"], "127.0.0.1", "{row}");
    }
    let gate = loop {
        let n: i64 = one(
            &mut dave,
            "SELECT count(*) FROM repair.refusals WHERE function = 'gate' AND sqlstate = 'RP002'",
        );
        if n > 0 || Instant::now() >= deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(gate, 1, "the gate's refusal within 1 s");
    // online_begin refused in its own (autocommit) transaction, and application_name
    c.set_conf(&[("repair.db_role", Some("staging"))]);
    let mut a = Client::connect(
        &format!("{} application_name=kinds_app", c.conninfo(&db, "alice")),
        postgres::NoTls,
    )
    .unwrap();
    let e = db_error(a.batch_execute(&format!(
        "SELECT repair.online_begin('okay', '{hash}', 'kinds-12')"
    )));
    assert_eq!(e.code().code(), "RP011");
    let row = refusal(
        &mut dave,
        "kinds-12",
        Instant::now() + Duration::from_secs(1),
    )
    .expect("RP011 recorded");
    assert_eq!(
        (
            row["sqlstate"].as_str(),
            row["function"].as_str(),
            row["application_name"].as_str()
        ),
        (Some("RP011"), Some("online_begin"), Some("kinds_app"))
    );
    assert!(one::<bool>(
        &mut dave,
        "SELECT ok FROM repair.verify_audit()"
    ));
    // record_refusals = off: the log line only
    c.set_conf(&[("repair.record_refusals", Some("off"))]);
    refused_and_rolled_back(
        &mut c.connect(&db, "alice"),
        &exec("okay", &"1".repeat(64), "kinds-off"),
    );
    std::thread::sleep(Duration::from_millis(700));
    assert!(refusal(&mut dave, "kinds-off", Instant::now()).is_none());
    assert!(c.log().contains("kinds-off"), "still in the server log");
}

#[test]
fn a_flood_never_blocks_callers_and_every_refusal_is_counted() {
    let conf = Conf::take();
    let c = conf.cluster;
    let db = c.fresh_db("ref_flood");
    let mut carol = c.connect(&db, "carol");
    register(&mut carol, &playbook("flooded", "SELECT 1;"));
    // start the recorder with one refusal, then freeze it: the queue fills, callers go on
    let mut a = c.connect(&db, "alice");
    refused_and_rolled_back(
        &mut a,
        &format!(
            "SELECT repair.execute('flooded', '{}', 'warmup')",
            "0".repeat(64)
        ),
    );
    drained(c, &db, Duration::from_secs(5));
    let pid = queue(&mut c.connect(&db, "postgres"))["recorder_pid"]
        .as_i64()
        .expect("a recorder") as i32;
    // SAFETY: signals a server process this test's cluster started (its recorder).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    const CLIENTS: usize = 8;
    const EACH: usize = 2500;
    let started = Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut k = Cluster::shared().connect(&db, "alice");
                let stmt = k
                    .prepare("SELECT repair.execute('flooded', $1, $2)")
                    .unwrap();
                let bad = "0".repeat(64);
                for i in 0..EACH {
                    let e = k
                        .query_one(&stmt, &[&bad, &format!("flood-{t}-{i}")])
                        .unwrap_err();
                    assert_eq!(e.as_db_error().unwrap().code().code(), "RP006");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let took = started.elapsed();
    let q = queue(&mut c.connect(&db, "postgres"));
    assert!(
        q["dropped_pending"].as_i64() > Some(0),
        "the queue filled: {q}"
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    drained(c, &db, Duration::from_secs(60));
    let mut dave = c.connect(&db, "dave");
    let (rows, dropped, markers): (i64, i64, i64) = dave
        .query_one(
            "SELECT count(*) FILTER (WHERE reason LIKE 'flood-%'),
                    coalesce(sum(dropped), 0)::bigint, count(*) FILTER (WHERE dropped IS NOT NULL)
               FROM repair.refusals",
            &[],
        )
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    println!("flood: {} refusals in {took:?} with the recorder frozen; {rows} recorded + {dropped} counted as dropped ({markers} marker rows)", CLIENTS * EACH);
    assert_eq!(rows + dropped, (CLIENTS * EACH) as i64);
    assert!(dropped > 0 && markers >= 1);
    assert!(one::<bool>(
        &mut dave,
        "SELECT ok FROM repair.verify_audit()"
    ));
}

#[test]
fn refusals_of_several_databases_each_land_in_their_own() {
    let conf = Conf::take();
    let c = conf.cluster;
    let dbs: Vec<String> = (0..3)
        .map(|i| c.fresh_db(&format!("ref_multi{i}")))
        .collect();
    for (i, db) in dbs.iter().enumerate() {
        let mut a = c.connect(db, "alice");
        refused_and_rolled_back(
            &mut a,
            &format!("SELECT repair.execute('nope{i}', 'x', 'multi-{i}')"),
        );
    }
    for (i, db) in dbs.iter().enumerate() {
        let mut dave = c.connect(db, "dave");
        let row = refusal(
            &mut dave,
            &format!("multi-{i}"),
            Instant::now() + Duration::from_secs(3),
        )
        .unwrap_or_else(|| panic!("{db}: not recorded"));
        assert_eq!(row["playbook_id"], format!("nope{i}"));
        let others: i64 = one(
            &mut dave,
            "SELECT count(*) FROM repair.refusals WHERE reason LIKE 'multi-%'",
        );
        assert_eq!(others, 1, "{db} holds only its own refusal");
    }
}

#[test]
fn only_the_recorder_writes_refusals() {
    let conf = Conf::take();
    let c = conf.cluster;
    let db = c.fresh_db("ref_forge");
    for user in ["alice", "dave", "erin"] {
        let mut k = c.connect(&db, user);
        let e = db_error(k.batch_execute(
            "SELECT repair._record_refusals('[{\"refusal_id\":\"00000000-0000-4000-8000-000000000001\",\"refused_at\":0,\"function\":\"execute\",\"session_user_name\":\"mallory\",\"sqlstate\":\"RP006\"}]')",
        ));
        assert_eq!(e.code().code(), "42501", "{user}");
        let e = db_error(k.batch_execute(
            "INSERT INTO repair.refusals (refusal_id, chain_key, refused_at, function, session_user_name, sqlstate, row_hash) \
             VALUES (gen_random_uuid(), 'refusals', now(), 'execute', 'mallory', 'RP006', 'x')",
        ));
        assert_eq!(e.code().code(), "42501", "{user}");
    }
}

#[test]
fn a_deleted_or_edited_refusal_is_detected() {
    let conf = Conf::take();
    let c = conf.cluster;
    let db = c.fresh_db("ref_tamper");
    let mut a = c.connect(&db, "alice");
    for i in 0..3 {
        refused_and_rolled_back(
            &mut a,
            &format!("SELECT repair.execute('nope', 'x', 'tamper-{i}')"),
        );
    }
    let mut dave = c.connect(&db, "dave");
    refusal(
        &mut dave,
        "tamper-2",
        Instant::now() + Duration::from_secs(3),
    )
    .expect("recorded");
    let triggers = |state: &str| {
        c.connect(&db, "postgres")
            .batch_execute(&format!(
                "UPDATE pg_catalog.pg_trigger SET tgenabled = '{state}' WHERE tgrelid = 'repair.refusals'::regclass"
            ))
            .unwrap();
    };
    let head: String = one(
        &mut c.connect(&db, "postgres"),
        "SELECT repair.audit_head()",
    );
    triggers("D");
    for (edit, what) in [
        (
            "UPDATE repair.refusals SET session_user_name = 'nobody' WHERE reason = 'tamper-0'",
            "edited",
        ),
        (
            "DELETE FROM repair.refusals WHERE reason = 'tamper-1'",
            "deleted",
        ),
    ] {
        let mut su = c.connect(&db, "postgres");
        su.batch_execute("BEGIN").unwrap();
        su.batch_execute(edit).unwrap();
        let (ok, table): (bool, Option<String>) = su
            .query_one("SELECT ok, first_bad_table FROM repair.verify_audit()", &[])
            .map(|r| (r.get(0), r.get(1)))
            .unwrap();
        assert_eq!((ok, table.as_deref()), (false, Some("refusals")), "{what}");
        su.batch_execute("ROLLBACK").unwrap();
    }
    // the newest refusal deleted: the chain still links, the exported head does not match
    let mut su = c.connect(&db, "postgres");
    su.batch_execute("BEGIN").unwrap();
    su.batch_execute("DELETE FROM repair.refusals WHERE reason = 'tamper-2'")
        .unwrap();
    assert_ne!(one::<String>(&mut su, "SELECT repair.audit_head()"), head);
    su.batch_execute("ROLLBACK").unwrap();
    triggers("A");
    let mut su = c.connect(&db, "postgres");
    assert!(one::<bool>(&mut su, "SELECT ok FROM repair.verify_audit()"));
    // the table is append-only for its owner too
    for sql in [
        "UPDATE repair.refusals SET reason = 'x'",
        "DELETE FROM repair.refusals",
        "TRUNCATE repair.refusals",
    ] {
        assert_eq!(
            db_error(su.batch_execute(sql)).code().code(),
            "42501",
            "{sql}"
        );
    }
}

/// SIGKILL of the recorder makes the postmaster reinitialise shared memory: what it had queued
/// must survive that and be written by the restarted recorder. Own cluster: the crash ends every
/// session of the cluster.
#[test]
fn a_recorder_killed_with_sigkill_is_restarted_and_loses_nothing_queued() {
    let c = Cluster::start(&[], true);
    let db = c.fresh_db("ref_kill");
    let mut a = c.connect(&db, "alice");
    refused_and_rolled_back(&mut a, "SELECT repair.execute('nope', 'x', 'kill-warmup')");
    drained(&c, &db, Duration::from_secs(5));
    let pid = queue(&mut c.connect(&db, "postgres"))["recorder_pid"]
        .as_i64()
        .expect("recorder") as i32;
    // SAFETY: signals a process of this test's own cluster.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    for i in 0..5 {
        refused_and_rolled_back(
            &mut a,
            &format!("SELECT repair.execute('nope', 'x', 'kill-{i}')"),
        );
    }
    assert_eq!(queue(&mut c.connect(&db, "postgres"))["queued"], 5);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    // the postmaster reinitialises; wait until the server accepts connections again
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut dave = loop {
        std::thread::sleep(Duration::from_millis(200));
        if let Ok(k) = Client::connect(&c.conninfo(&db, "dave"), postgres::NoTls) {
            if k.is_closed() {
                continue;
            }
            let mut k = k;
            if k.batch_execute("SELECT 1").is_ok() {
                break k;
            }
        }
        assert!(Instant::now() < deadline, "server did not come back");
    };
    for i in 0..5 {
        let row = refusal(
            &mut dave,
            &format!("kill-{i}"),
            Instant::now() + Duration::from_secs(20),
        );
        assert!(row.is_some(), "kill-{i} lost in the crash:\n{}", c.log());
    }
    let n: i64 = one(
        &mut dave,
        "SELECT count(*) FROM repair.refusals WHERE reason LIKE 'kill-%'",
    );
    assert_eq!(n, 6, "each once (the warmup and the five)");
    assert!(one::<bool>(
        &mut dave,
        "SELECT ok FROM repair.verify_audit()"
    ));
    let new_pid = queue(&mut c.connect(&db, "postgres"))["recorder_pid"].as_i64();
    assert!(
        new_pid.is_some_and(|p| p as i32 != pid),
        "a new recorder runs"
    );
}

#[test]
fn drop_database_right_after_a_refusal_is_not_held_up_by_its_recorder() {
    let conf = Conf::take();
    let c = conf.cluster;
    let db = c.fresh_db("ref_drop");
    let mut a = c.connect(&db, "alice");
    refused_and_rolled_back(&mut a, "SELECT repair.execute('nope', 'x', 'drop-me')");
    drop(a);
    refusal(
        &mut c.connect(&db, "dave"),
        "drop-me",
        Instant::now() + Duration::from_secs(3),
    )
    .expect("recorded");
    // the recorder is still connected now; DROP DATABASE waits up to 5 s for it to leave
    c.connect("postgres", "postgres")
        .batch_execute(&format!("DROP DATABASE {db}"))
        .expect("DROP DATABASE without FORCE");
}
