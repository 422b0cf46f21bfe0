//! Four eyes (guard 8) against a real server: the approval matrix, the races (two executors for
//! one approval, an approval expiring while its run waits for the lock), approver = executor
//! through a shared role, online runs, dump/restore, and tampering with an approval.
//! These tests change cluster-wide settings, so they run one at a time (CONF lock).

use pg_repair_tests::{db_error, execute, one, playbook, register, Cluster, Conf};
use postgres::Client;
use serde_json::Value;
use std::time::Duration;

const BODY: &str = "CREATE TABLE IF NOT EXISTS public.approved_target (id int);";

/// prod, allow_prod on, approvers = repair_approvers (erin); a database with playbook `fixit`.
fn prod(conf: &Conf, label: &str) -> (String, String) {
    let c = conf.cluster;
    c.set_conf(&[
        ("repair.db_role", Some("prod")),
        ("repair.allow_prod", Some("on")),
        ("repair.approvers", Some("repair_approvers")),
    ]);
    let db = c.fresh_db(label);
    let (_, hash, _) = register(&mut c.connect(&db, "carol"), &playbook("fixit", BODY));
    (db, hash)
}

fn approve(c: &mut Client, hash: &str, valid_for: &str) -> Result<String, postgres::Error> {
    c.query_one(
        "SELECT repair.approve('fixit', $1, 'reviewed in CHG-7', $2::text::interval)::text",
        &[&hash, &valid_for],
    )
    .map(|r| r.get(0))
}

fn run_prod(c: &mut Client, hash: &str) -> Result<Value, postgres::Error> {
    c.query_one(
        "SELECT repair.execute('fixit', $1, 'T-1', confirm_prod => true)",
        &[&hash],
    )
    .map(|r| r.get(0))
}

fn state(c: &Cluster, db: &str, approval: &str) -> String {
    one(
        &mut c.connect(db, "postgres"),
        &format!("SELECT state FROM repair.approval_status WHERE approval_id = '{approval}'"),
    )
}

#[test]
fn approval_matrix() {
    let conf = Conf::take();
    let c = conf.cluster;
    let (db, hash) = prod(&conf, "appr_matrix");
    let mut alice = c.connect(&db, "alice");
    let mut erin = c.connect(&db, "erin");

    // required (prod), none given: RP010, nothing ran, the detail says why
    let e = db_error(run_prod(&mut alice, &hash));
    assert_eq!(e.code().code(), "RP010", "{}", e.message());
    assert!(
        e.message().starts_with("APPROVAL_REQUIRED:"),
        "{}",
        e.message()
    );
    assert!(
        e.detail().unwrap_or("").contains("no approvals"),
        "{:?}",
        e.detail()
    );

    // preview tells the same, without raising
    let p: Value = one(&mut alice, "SELECT repair.preview('fixit')");
    assert_eq!(p["approval"]["required"], true, "{p}");
    assert_eq!(p["approval"]["usable"], false, "{p}");
    let g8 = p["guards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["guard"] == 8)
        .cloned();
    assert_eq!(
        g8.as_ref().map(|g| g["verdict"].clone()),
        Some("fail".into()),
        "{p}"
    );

    // a valid approval by another person: the run consumes it and names it
    let a1 = approve(&mut erin, &hash, "1 hour").unwrap();
    let p: Value = one(&mut alice, "SELECT repair.preview('fixit')");
    assert_eq!(
        (
            p["approval"]["usable"].clone(),
            p["approval"]["approval_id"].clone()
        ),
        (Value::Bool(true), Value::String(a1.clone())),
        "{p}"
    );
    let r = run_prod(&mut alice, &hash).expect("approved run");
    assert_eq!(r["status"], "SUCCESS", "{r}");
    assert_eq!(r["approval_id"], a1.as_str(), "{r}");
    let named: String = one(
        &mut c.connect(&db, "postgres"),
        &format!(
            "SELECT approval_id::text FROM repair.runs WHERE run_id = '{}'",
            r["run_id"].as_str().unwrap()
        ),
    );
    assert_eq!(named, a1);
    assert_eq!(state(c, &db, &a1), "used");

    // used: single use
    let e = db_error(run_prod(&mut alice, &hash));
    assert_eq!(e.code().code(), "RP010");
    assert!(
        e.detail().unwrap_or("").contains("already used"),
        "{:?}",
        e.detail()
    );

    // revoked
    let a2 = approve(&mut erin, &hash, "1 hour").unwrap();
    erin.execute(
        "SELECT repair.revoke_approval($1::text::uuid, 'wrong window')",
        &[&a2],
    )
    .unwrap();
    assert_eq!(state(c, &db, &a2), "revoked");
    let e = db_error(run_prod(&mut alice, &hash));
    assert_eq!(e.code().code(), "RP010");
    assert!(
        e.detail().unwrap_or("").contains("revoked"),
        "{:?}",
        e.detail()
    );

    // expired
    let a3 = approve(&mut erin, &hash, "1 second").unwrap();
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(state(c, &db, &a3), "expired");
    let e = db_error(run_prod(&mut alice, &hash));
    assert_eq!(e.code().code(), "RP010");
    assert!(
        e.detail().unwrap_or("").contains("expired"),
        "{:?}",
        e.detail()
    );

    // stale: approved, then a new version is registered; the approval does not carry over
    let a4 = approve(&mut erin, &hash, "1 hour").unwrap();
    let (_, hash2, status) = register(
        &mut c.connect(&db, "carol"),
        &playbook(
            "fixit",
            "CREATE TABLE IF NOT EXISTS public.approved_target2 (id int);",
        ),
    );
    assert_eq!(status, "updated");
    assert_eq!(state(c, &db, &a4), "stale");
    let e = db_error(run_prod(&mut alice, &hash2));
    assert_eq!(e.code().code(), "RP010");
    assert!(
        e.detail().unwrap_or("").contains("another hash"),
        "{:?}",
        e.detail()
    );
    // the old hash is refused at guard 6 before guard 8, and approving it is refused too
    assert_eq!(db_error(run_prod(&mut alice, &hash)).code().code(), "RP006");
    assert_eq!(
        db_error(approve(&mut erin, &hash, "1 hour")).code().code(),
        "RP006"
    );

    // the executor's own approval: approvers now include the operators (alice is both)
    c.set_conf(&[(
        "repair.approvers",
        Some("repair_approvers, repair_operators"),
    )]);
    c.connect(&db, "postgres")
        .batch_execute(
            "GRANT EXECUTE ON FUNCTION repair.approve(text, text, text, interval) TO repair_operators",
        )
        .unwrap();
    let mut alice = c.connect(&db, "alice");
    let own = approve(&mut alice, &hash2, "1 hour").expect("alice may approve now");
    let e = db_error(run_prod(&mut alice, &hash2));
    assert_eq!(
        e.code().code(),
        "RP010",
        "the executor's own approval must not count"
    );
    assert!(
        e.detail().unwrap_or("").contains("given by you"),
        "{:?}",
        e.detail()
    );
    // ... also through SET ROLE to a role both are members of: session users are compared
    alice.batch_execute("SET ROLE repair_operators").unwrap();
    assert_eq!(
        db_error(run_prod(&mut alice, &hash2)).code().code(),
        "RP010"
    );
    alice.batch_execute("RESET ROLE").unwrap();
    assert_eq!(state(c, &db, &own), "usable");
    // another person's approval of the current hash: runs
    let a5 = approve(&mut c.connect(&db, "erin"), &hash2, "2 hours").unwrap();
    let r = run_prod(&mut alice, &hash2).expect("erin's approval");
    assert_eq!(
        (r["status"].as_str(), r["approval_id"].as_str()),
        (Some("SUCCESS"), Some(a5.as_str()))
    );

    // not required: off, and staging under `prod`
    c.set_conf(&[("repair.require_approval", Some("off"))]);
    let r = run_prod(&mut c.connect(&db, "alice"), &hash2).expect("off");
    assert!(r.get("approval_id").is_none(), "{r}");
    c.set_conf(&[
        ("repair.require_approval", Some("prod")),
        ("repair.db_role", Some("staging")),
    ]);
    let r = execute(&mut c.connect(&db, "alice"), "fixit", &hash2, "staging").expect("staging");
    assert_eq!(r["status"], "SUCCESS");
    // always: staging too; and a misspelled policy fails closed (as always)
    for policy in ["always", "Prod", "", "of"] {
        c.set_conf(&[("repair.require_approval", Some(policy))]);
        let e = db_error(execute(
            &mut c.connect(&db, "alice"),
            "fixit",
            &hash2,
            "staging",
        ));
        assert_eq!(e.code().code(), "RP010", "require_approval = {policy:?}");
    }
}

#[test]
fn who_may_approve_and_for_how_long() {
    let conf = Conf::take();
    let c = conf.cluster;
    let (db, hash) = prod(&conf, "appr_who");
    let mut erin = c.connect(&db, "erin");
    for (valid_for, code) in [
        ("25 hours", "22023"),
        ("0 seconds", "22023"),
        ("-1 hour", "22023"),
        ("1 month", "22023"),
    ] {
        assert_eq!(
            db_error(approve(&mut erin, &hash, valid_for)).code().code(),
            code,
            "{valid_for}"
        );
    }
    assert!(approve(&mut erin, &hash, "24 hours").is_ok());
    // default: 4 hours
    let id: String = one(
        &mut erin,
        &format!("SELECT repair.approve('fixit', '{hash}', 'default window')::text"),
    );
    let hours: f64 = one(
        &mut c.connect(&db, "postgres"),
        &format!("SELECT extract(epoch FROM valid_until - approved_at)::float8 / 3600 FROM repair.approval_status WHERE approval_id = '{id}'"),
    );
    assert!((hours - 4.0).abs() < 0.001, "{hours}");
    // reason, unknown playbook
    let e = db_error(erin.query_one("SELECT repair.approve('fixit', $1, '  ')", &[&hash]));
    assert_eq!(e.code().code(), "RP004");
    let e = db_error(erin.query_one("SELECT repair.approve('nope', $1, 'r')", &[&hash]));
    assert_eq!(e.code().code(), "RP005");
    // not an approver (even with EXECUTE granted), or approvers empty
    c.connect(&db, "postgres")
        .batch_execute("GRANT EXECUTE ON FUNCTION repair.approve(text, text, text, interval) TO repair_operators")
        .unwrap();
    let e = db_error(approve(&mut c.connect(&db, "alice"), &hash, "1 hour"));
    assert_eq!(e.code().code(), "42501");
    c.set_conf(&[("repair.approvers", Some(""))]);
    let e = db_error(approve(&mut c.connect(&db, "erin"), &hash, "1 hour"));
    assert_eq!(e.code().code(), "42501");
    // a user setting cannot lift or change the policy
    let mut alice = c.connect(&db, "alice");
    for set in [
        "SET repair.require_approval = 'off'",
        "SET repair.approvers = 'repair_operators'",
    ] {
        let e = db_error(alice.batch_execute(set));
        assert!(
            ["42501", "55P02"].contains(&e.code().code()),
            "{set}: {}",
            e.code().code()
        );
    }
    // revoking: approvers only, unknown id
    c.set_conf(&[("repair.approvers", Some("repair_approvers"))]);
    let e = db_error(c.connect(&db, "erin").execute(
        "SELECT repair.revoke_approval('00000000-0000-4000-8000-000000000000', 'r')",
        &[],
    ));
    assert_eq!(e.code().code(), "42704");
    c.connect(&db, "postgres")
        .batch_execute(
            "GRANT EXECUTE ON FUNCTION repair.revoke_approval(uuid, text) TO repair_operators",
        )
        .unwrap();
    let e = db_error(
        c.connect(&db, "alice")
            .execute("SELECT repair.revoke_approval($1::text::uuid, 'r')", &[&id]),
    );
    assert_eq!(e.code().code(), "42501");
    // nobody inserts approvals directly
    let e = db_error(c.connect(&db, "erin").batch_execute(&format!(
        "INSERT INTO repair.approvals (event_id, chain_key, action, approval_id, playbook_id, version, hash, at, valid_until, session_user_name, reason, row_hash) \
         VALUES (gen_random_uuid(), 'approvals', 'approve', gen_random_uuid(), 'fixit', 1, '{hash}', now(), now() + interval '1 hour', 'erin', 'forged', 'x')"
    )));
    assert_eq!(e.code().code(), "42501");
}

#[test]
fn two_executors_racing_for_one_approval_exactly_one_runs() {
    let conf = Conf::take();
    let c = conf.cluster;
    c.set_conf(&[
        ("repair.db_role", Some("prod")),
        ("repair.allow_prod", Some("on")),
        ("repair.approvers", Some("repair_approvers")),
    ]);
    let db = c.fresh_db("appr_race");
    let slow = playbook(
        "fixit",
        "SELECT pg_sleep(0.4);\nCREATE TABLE IF NOT EXISTS public.raced (id int);",
    );
    let (_, hash, _) = register(&mut c.connect(&db, "carol"), &slow);
    for round in 0..3 {
        let approval = approve(&mut c.connect(&db, "erin"), &hash, "1 hour").unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (db, hash, barrier) = (db.clone(), hash.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut a = Cluster::shared().connect(&db, "alice");
                    barrier.wait();
                    run_prod(&mut a, &hash).map_err(|e| {
                        e.as_db_error()
                            .map(|d| d.code().code().to_string())
                            .unwrap_or_default()
                    })
                })
            })
            .collect();
        let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let ok: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        let refused: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
        assert_eq!(ok.len(), 1, "round {round}: {outcomes:?}");
        assert_eq!(ok[0]["approval_id"], approval.as_str());
        assert_eq!(refused, vec!["RP010"], "round {round}: {outcomes:?}");
        let uses: i64 = one(
            &mut c.connect(&db, "postgres"),
            &format!("SELECT count(*) FROM repair.runs WHERE approval_id = '{approval}'"),
        );
        assert_eq!(uses, 1);
    }
    assert!(one::<bool>(
        &mut c.connect(&db, "postgres"),
        "SELECT ok FROM repair.verify_audit()"
    ));
}

#[test]
fn an_approval_that_expires_during_the_lock_wait_is_refused() {
    let conf = Conf::take();
    let c = conf.cluster;
    let (db, hash) = prod(&conf, "appr_expiry");
    approve(&mut c.connect(&db, "erin"), &hash, "1 second").unwrap();
    // carol holds the playbook's lock (registering it in an open transaction) for 2 s
    let mut carol = c.connect(&db, "carol");
    carol.batch_execute("BEGIN").unwrap();
    register(&mut carol, &playbook("fixit", BODY));
    let (db2, hash2) = (db.clone(), hash.clone());
    let waiter = std::thread::spawn(move || {
        let mut a = Cluster::shared().connect(&db2, "alice");
        run_prod(&mut a, &hash2).map_err(|e| e.as_db_error().map(|d| d.code().code().to_string()))
    });
    std::thread::sleep(Duration::from_millis(2000));
    carol.batch_execute("COMMIT").unwrap();
    let outcome = waiter.join().unwrap();
    assert_eq!(
        outcome.err(),
        Some(Some("RP010".to_string())),
        "checked after the wait, not before"
    );
}

#[test]
fn online_runs_need_and_consume_an_approval() {
    let conf = Conf::take();
    let c = conf.cluster;
    c.set_conf(&[
        ("repair.db_role", Some("prod")),
        ("repair.allow_prod", Some("on")),
        ("repair.approvers", Some("repair_approvers")),
    ]);
    let db = c.fresh_db("appr_online");
    let source = "-- repair: fixit\n-- title: online\n-- environments: prod\n-- mode: online\nCREATE TABLE IF NOT EXISTS public.online_approved (id int);\n";
    let (_, hash, _) = register(&mut c.connect(&db, "carol"), source);
    let begin = "SELECT repair.online_begin('fixit', $1, 'T-2', confirm_prod => true)";
    let mut a = c.connect(&db, "alice");
    let e = db_error(a.query_one(begin, &[&hash]));
    assert_eq!(e.code().code(), "RP010");
    let approval = approve(&mut c.connect(&db, "erin"), &hash, "1 hour").unwrap();
    let start: Value = a.query_one(begin, &[&hash]).unwrap().get(0);
    assert_eq!(start["status"], "STARTED", "{start}");
    a.batch_execute(start["statements"][0]["sql"].as_str().unwrap())
        .unwrap();
    let run_id = start["run_id"].as_str().unwrap();
    let end: Value = a
        .query_one(&format!("SELECT repair.online_finish('{run_id}')"), &[])
        .unwrap()
        .get(0);
    assert_eq!(end["status"], "SUCCESS", "{end}");
    let named: i64 = one(
        &mut c.connect(&db, "postgres"),
        &format!("SELECT count(*) FROM repair.runs WHERE approval_id = '{approval}'"),
    );
    assert_eq!(
        named, 2,
        "the STARTED row and the closing row name the approval"
    );
    assert_eq!(
        db_error(a.query_one(begin, &[&hash])).code().code(),
        "RP010"
    );
}

#[test]
fn an_edited_approval_is_refused_and_detected() {
    let conf = Conf::take();
    let c = conf.cluster;
    let (db, hash) = prod(&conf, "appr_tamper");
    let approval = approve(&mut c.connect(&db, "erin"), &hash, "1 second").unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    // a superuser stretches the expired approval by editing the row behind the triggers
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(&format!(
        "UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'repair.approvals'::regclass;
         UPDATE repair.approvals SET valid_until = now() + interval '1 hour' WHERE approval_id = '{approval}';
         UPDATE pg_catalog.pg_trigger SET tgenabled = 'A' WHERE tgrelid = 'repair.approvals'::regclass;"
    ))
    .unwrap();
    let e = db_error(run_prod(&mut c.connect(&db, "alice"), &hash));
    assert_eq!(e.code().code(), "XX001", "{}", e.message());
    let (ok, table): (bool, Option<String>) = su
        .query_one("SELECT ok, first_bad_table FROM repair.verify_audit()", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((ok, table.as_deref()), (false, Some("approvals")));
}

#[test]
fn approvals_survive_dump_and_restore_and_verify() {
    let conf = Conf::take();
    let c = conf.cluster;
    let (db, hash) = prod(&conf, "appr_dump");
    let used = approve(&mut c.connect(&db, "erin"), &hash, "1 hour").unwrap();
    run_prod(&mut c.connect(&db, "alice"), &hash).unwrap();
    let open = approve(&mut c.connect(&db, "erin"), &hash, "1 hour").unwrap();
    let restored = c.dump_restore(&db);
    let facts = |d: &str| -> (bool, String, String, String) {
        let mut k = c.connect(d, "postgres");
        k.query_one(
            "SELECT (SELECT ok FROM repair.verify_audit()), repair.audit_head(),
                    (SELECT string_agg(approval_id::text || ':' || state, ',' ORDER BY approved_at) FROM repair.approval_status),
                    (SELECT md5(string_agg(a::text, '|' ORDER BY seq)) FROM repair.approvals a)",
            &[],
        )
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .unwrap()
    };
    let (before, after) = (facts(&db), facts(&restored));
    assert_eq!(before, after);
    assert!(after.0);
    assert_eq!(after.2, format!("{used}:used,{open}:usable"));
    // the restored approval is usable once there, too
    let mut k = c.connect(&restored, "postgres");
    k.batch_execute(pg_repair_tests::GRANTS_SQL).unwrap();
    let r = run_prod(&mut c.connect(&restored, "alice"), &hash).unwrap();
    assert_eq!(r["approval_id"], open.as_str());
    assert!(one::<bool>(&mut k, "SELECT ok FROM repair.verify_audit()"));
}

#[test]
fn approving_through_someone_elses_function_or_a_stale_snapshot_fails() {
    let conf = Conf::take();
    let c = conf.cluster;
    let (db, hash) = prod(&conf, "appr_attack");
    // erin (an approver) wraps repair.approve in a SECURITY DEFINER function and hands it to
    // alice (the executor): the approver check and approved_by use session_user, not the definer
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(
        "GRANT CREATE, USAGE ON SCHEMA public TO repair_approvers;
         GRANT USAGE ON SCHEMA public TO repair_operators",
    )
    .unwrap();
    c.connect(&db, "erin")
        .batch_execute(
            "CREATE FUNCTION public.rubber_stamp(h text) RETURNS uuid LANGUAGE sql SECURITY DEFINER
               AS $$ SELECT repair.approve('fixit', h, 'stamped') $$;
             GRANT EXECUTE ON FUNCTION public.rubber_stamp(text) TO repair_operators;",
        )
        .unwrap();
    let mut alice = c.connect(&db, "alice");
    let e = db_error(alice.query_one("SELECT public.rubber_stamp($1)", &[&hash]));
    assert_eq!(e.code().code(), "42501", "{}", e.message());
    assert_eq!(db_error(run_prod(&mut alice, &hash)).code().code(), "RP010");
    // an approval under REPEATABLE READ would append on a stale snapshot: refused
    let mut erin = c.connect(&db, "erin");
    erin.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .unwrap();
    let e = db_error(approve(&mut erin, &hash, "1 hour"));
    assert_eq!(e.code().code(), "25000");
    erin.batch_execute("ROLLBACK").unwrap();
    // an approval inside a transaction that rolls back never existed
    erin.batch_execute("BEGIN").unwrap();
    approve(&mut erin, &hash, "1 hour").unwrap();
    erin.batch_execute("ROLLBACK").unwrap();
    assert_eq!(db_error(run_prod(&mut alice, &hash)).code().code(), "RP010");
    // a run that rolls back does not use up the approval
    let id = approve(&mut erin, &hash, "1 hour").unwrap();
    alice.batch_execute("BEGIN").unwrap();
    assert_eq!(
        run_prod(&mut alice, &hash).unwrap()["approval_id"],
        id.as_str()
    );
    alice.batch_execute("ROLLBACK").unwrap();
    assert_eq!(state(c, &db, &id), "usable");
    assert_eq!(
        run_prod(&mut alice, &hash).unwrap()["approval_id"],
        id.as_str()
    );
    assert_eq!(state(c, &db, &id), "used");
}
