//! Guards 1–6 against a real server: each SQLSTATE, the order (first failure wins), who may
//! change the gating settings, session_user vs current_user, and the refusal log line.
//! These tests change cluster-wide settings, so they run one at a time (CONF lock).

use pg_repair_tests::{db_error, execute, playbook, register, Cluster, Conf};

const BODY: &str = "CREATE TABLE IF NOT EXISTS public.guarded_target (id int);";

/// A database with one registered playbook; returns (db, hash).
fn setup(c: &Cluster, label: &str) -> (String, String) {
    let db = c.fresh_db(label);
    let (_, hash, _) = register(&mut c.connect(&db, "carol"), &playbook("guarded", BODY));
    (db, hash)
}

fn exec_code(c: &Cluster, db: &str, user: &str, hash: &str, reason: &str) -> String {
    let e = db_error(execute(&mut c.connect(db, user), "guarded", hash, reason));
    e.code().code().to_string()
}

#[test]
fn guard1_role_undeclared_fails_closed() {
    let conf = Conf::take();
    let c = conf.cluster;
    let (db, hash) = setup(c, "g1");
    for value in [
        None,
        Some(""),
        Some("Staging"),
        Some("stagin"),
        Some("prod "),
    ] {
        c.set_conf(&[("repair.db_role", value)]);
        let e = db_error(execute(&mut c.connect(&db, "alice"), "guarded", &hash, "r"));
        assert_eq!(e.code().code(), "RP001", "db_role {value:?}");
        assert!(
            e.message().starts_with("ROLE_UNDECLARED:"),
            "{}",
            e.message()
        );
        assert!(e.hint().is_some() && e.detail().is_some());
    }
    c.set_conf(&[("repair.db_role", Some("staging"))]);
    let r = execute(&mut c.connect(&db, "alice"), "guarded", &hash, "r").expect("staging runs");
    assert_eq!(r["status"], "SUCCESS");
}

#[test]
fn guard2_replica_and_prod_need_declaration_and_confirmation() {
    let conf = Conf::take();
    let c = conf.cluster;
    let (db, hash) = setup(c, "g2");
    c.set_conf(&[("repair.db_role", Some("replica"))]);
    assert_eq!(exec_code(c, &db, "alice", &hash, "r"), "RP002");
    // prod: allow_prod off refuses even with the confirmation
    c.set_conf(&[("repair.db_role", Some("prod"))]);
    let confirmed = "SELECT repair.execute('guarded', $1, 'r', confirm_prod => true)";
    let e = db_error(c.connect(&db, "alice").query_one(confirmed, &[&hash]));
    assert_eq!(
        (e.code().code(), e.message().starts_with("ENV_DISABLED:")),
        ("RP002", true)
    );
    // allow_prod on but no per-call confirmation (four eyes off here: approvals.rs tests them)
    c.set_conf(&[
        ("repair.allow_prod", Some("on")),
        ("repair.require_approval", Some("off")),
    ]);
    assert_eq!(exec_code(c, &db, "alice", &hash, "r"), "RP002");
    // both: runs
    let r: serde_json::Value = c
        .connect(&db, "alice")
        .query_one(confirmed, &[&hash])
        .expect("prod run")
        .get(0);
    assert_eq!(
        (r["status"].as_str(), r["declared_role"].as_str()),
        (Some("SUCCESS"), Some("prod"))
    );
}

#[test]
fn guard2_session_replication_role_refuses() {
    let conf = Conf::take();
    let c = conf.cluster;
    let (db, hash) = setup(c, "g2srr");
    // Only a superuser can change it; make admin2 an executor for this test.
    c.set_conf(&[("repair.executors", Some("repair_operators, admin2"))]);
    let mut su = c.connect(&db, "admin2");
    su.batch_execute("SET session_replication_role = replica")
        .unwrap();
    let e = db_error(execute(&mut su, "guarded", &hash, "r"));
    assert_eq!(e.code().code(), "RP002");
    assert!(
        e.message().contains("session_replication_role"),
        "{}",
        e.message()
    );
    su.batch_execute("RESET session_replication_role").unwrap();
    assert_eq!(
        execute(&mut su, "guarded", &hash, "r").unwrap()["status"],
        "SUCCESS"
    );
}

#[test]
fn guard2_playbook_environments() {
    let conf = Conf::take();
    let c = conf.cluster;
    let db = c.fresh_db("g2env");
    let src = "-- repair: staging_only\n-- title: t\nSELECT 1;\n";
    let (_, hash, _) = register(&mut c.connect(&db, "carol"), src);
    c.set_conf(&[
        ("repair.db_role", Some("prod")),
        ("repair.allow_prod", Some("on")),
    ]);
    let e = db_error(c.connect(&db, "alice").query_one(
        "SELECT repair.execute('staging_only', $1, 'r', confirm_prod => true)",
        &[&hash],
    ));
    assert_eq!(e.code().code(), "RP002");
    assert!(
        e.message().contains("not allowed on prod"),
        "{}",
        e.message()
    );
}

#[test]
fn guard3_executor_is_session_user_membership() {
    let conf = Conf::take();
    let c = conf.cluster;
    let (db, hash) = setup(c, "g3");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(
        "GRANT USAGE ON SCHEMA repair TO bob; GRANT EXECUTE ON FUNCTION repair.execute(text,text,text,boolean,text) TO bob",
    )
    .unwrap();
    // bob is not in repair_operators
    let e = db_error(execute(&mut c.connect(&db, "bob"), "guarded", &hash, "r"));
    assert_eq!(e.code().code(), "42501");
    assert!(
        e.message().starts_with("NOT_AUTHORIZED:"),
        "{}",
        e.message()
    );
    // alice is, through the group role
    assert_eq!(
        execute(&mut c.connect(&db, "alice"), "guarded", &hash, "r").unwrap()["status"],
        "SUCCESS"
    );
    // SET ROLE does not change session_user: a superuser not listed, acting as alice, is refused
    let mut admin = c.connect(&db, "admin2");
    admin.batch_execute("SET ROLE alice").unwrap();
    assert_eq!(
        db_error(execute(&mut admin, "guarded", &hash, "r"))
            .code()
            .code(),
        "42501"
    );
    // nor does a SECURITY DEFINER wrapper owned by alice, called by bob
    su.batch_execute(
        "CREATE FUNCTION public.run_for_bob(h text) RETURNS jsonb LANGUAGE sql SECURITY DEFINER
           AS $$ SELECT repair.execute('guarded', h, 'via wrapper') $$;
         ALTER FUNCTION public.run_for_bob(text) OWNER TO alice;
         GRANT EXECUTE ON FUNCTION public.run_for_bob(text) TO bob;",
    )
    .unwrap();
    let e = db_error(
        c.connect(&db, "bob")
            .query_one("SELECT public.run_for_bob($1)", &[&hash]),
    );
    assert_eq!(e.code().code(), "42501");
    // superusers are not implicit members: postgres itself is refused until listed
    assert_eq!(exec_code(c, &db, "postgres", &hash, "r"), "42501");
    c.set_conf(&[("repair.executors", Some("repair_operators,postgres"))]);
    assert_eq!(
        execute(&mut c.connect(&db, "postgres"), "guarded", &hash, "r").unwrap()["status"],
        "SUCCESS"
    );
    // empty list = nobody
    c.set_conf(&[("repair.executors", Some(""))]);
    assert_eq!(exec_code(c, &db, "alice", &hash, "r"), "42501");
    // an unknown role in the list grants nothing
    c.set_conf(&[("repair.executors", Some("no_such_role"))]);
    assert_eq!(exec_code(c, &db, "alice", &hash, "r"), "42501");
}

#[test]
fn guard4_reason_required_and_bounded() {
    let conf = Conf::take();
    let c = conf.cluster;
    let (db, hash) = setup(c, "g4");
    let mut a = c.connect(&db, "alice");
    for reason in [None, Some(""), Some("   "), Some(&*"x".repeat(501))] {
        let e = db_error(a.query_one(
            "SELECT repair.execute('guarded', $1, $2)",
            &[&hash, &reason],
        ));
        assert_eq!(e.code().code(), "RP004", "{reason:?}");
        assert!(e.message().starts_with("REASON_REQUIRED:"));
    }
    let r = execute(&mut a, "guarded", &hash, &"y".repeat(500)).expect("500 chars is fine");
    assert_eq!(r["status"], "SUCCESS");
}

#[test]
fn guard5_unknown_and_retired() {
    let conf = Conf::take();
    let c = conf.cluster;
    let (db, hash) = setup(c, "g5");
    let e = db_error(execute(
        &mut c.connect(&db, "alice"),
        "no_such_playbook",
        &hash,
        "r",
    ));
    assert_eq!(
        (
            e.code().code(),
            e.message().starts_with("UNKNOWN_PLAYBOOK:")
        ),
        ("RP005", true)
    );
    let mut carol = c.connect(&db, "carol");
    // a reason is required to retire, too
    assert_eq!(
        db_error(carol.batch_execute("SELECT repair.retire('guarded', '')"))
            .code()
            .code(),
        "RP004"
    );
    carol
        .batch_execute("SELECT repair.retire('guarded', 'superseded by guarded_v2')")
        .unwrap();
    let e = db_error(execute(&mut c.connect(&db, "alice"), "guarded", &hash, "r"));
    assert_eq!(e.code().code(), "RP005");
    assert!(e.message().contains("retired"), "{}", e.message());
    // re-registering the same source does not bring it back
    let (_, _, status) = register(&mut carol, &playbook("guarded", BODY));
    assert_eq!(status, "unchanged");
    assert_eq!(exec_code(c, &db, "alice", &hash, "r"), "RP005");
    let status: String = c
        .connect(&db, "dave")
        .query_one(
            "SELECT status FROM repair.playbooks WHERE id = 'guarded'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(status, "retired");
}

#[test]
fn guard6_hash_mismatch_after_reregistration_names_both() {
    let conf = Conf::take();
    let c = conf.cluster;
    let (db, old) = setup(c, "g6");
    let (version, new, status) = register(
        &mut c.connect(&db, "carol"),
        &playbook("guarded", &format!("{BODY}\nSELECT 2;")),
    );
    assert_eq!((version, status.as_str()), (2, "updated"));
    let e = db_error(execute(&mut c.connect(&db, "alice"), "guarded", &old, "r"));
    assert_eq!(e.code().code(), "RP006");
    assert_eq!(
        e.message(),
        format!("HASH_MISMATCH: expected {old}, registered {new}")
    );
    assert_eq!(
        execute(&mut c.connect(&db, "alice"), "guarded", &new, "r").unwrap()["version"],
        2
    );
}

#[test]
fn guards_run_in_spec_order_first_failure_wins() {
    let conf = Conf::take();
    let c = conf.cluster;
    let (db, _) = setup(c, "gorder");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(
        "GRANT USAGE ON SCHEMA repair TO bob; GRANT EXECUTE ON FUNCTION repair.execute(text,text,text,boolean,text) TO bob",
    )
    .unwrap();
    // bob, no reason, unknown playbook, wrong hash: every guard from 1 on would fail.
    let bad = |c: &Cluster| exec_code(c, &db, "bob", "wrong", "");
    c.set_conf(&[("repair.db_role", None)]);
    assert_eq!(bad(c), "RP001");
    c.set_conf(&[("repair.db_role", Some("replica"))]);
    assert_eq!(bad(c), "RP002");
    c.set_conf(&[("repair.db_role", Some("staging"))]);
    assert_eq!(bad(c), "42501");
    // alice passes 3; then reason (4), then playbook (5), then hash (6)
    let mut a = c.connect(&db, "alice");
    let run = |a: &mut postgres::Client, id: &str, hash: &str, reason: &str| {
        db_error(execute(a, id, hash, reason))
            .code()
            .code()
            .to_string()
    };
    assert_eq!(run(&mut a, "nope", "wrong", ""), "RP004");
    assert_eq!(run(&mut a, "nope", "wrong", "r"), "RP005");
    assert_eq!(run(&mut a, "guarded", "wrong", "r"), "RP006");
}

#[test]
fn refusals_are_logged_as_one_structured_line() {
    let conf = Conf::take();
    let c = conf.cluster;
    let (db, _) = setup(c, "glog");
    let marker = format!("log-marker-{}", std::process::id());
    let _ = execute(&mut c.connect(&db, "alice"), "guarded", "0000", &marker);
    let log = c.log();
    let line = log
        .lines()
        .find(|l| l.contains("pg_repair refusal:") && l.contains(&marker))
        .unwrap_or_else(|| panic!("no refusal line in the server log"));
    let json: serde_json::Value =
        serde_json::from_str(line.split("pg_repair refusal: ").nth(1).unwrap()).unwrap();
    assert_eq!(json["code"], "RP006");
    assert_eq!(json["playbook"], "guarded");
    assert_eq!(json["session_user"], "alice");
    assert_eq!(json["reason"], marker.as_str());
}

#[test]
fn gating_settings_cannot_be_changed_by_ordinary_users() {
    let conf = Conf::take();
    let c = conf.cluster;
    let db = c.fresh_db("gset");
    let mut a = c.connect(&db, "alice");
    for (name, value) in [
        ("repair.db_role", "prod"),
        ("repair.allow_prod", "on"),
        ("repair.executors", "bob"),
        ("repair.run_as", "postgres"),
        ("repair.lock_timeout", "1h"),
        ("repair.statement_timeout", "1h"),
    ] {
        for sql in [
            format!("SET {name} = '{value}'"),
            format!("SET LOCAL {name} = '{value}'"),
            format!("SELECT set_config('{name}', '{value}', false)"),
            format!("ALTER ROLE alice SET {name} = '{value}'"),
            format!("ALTER DATABASE {db} SET {name} = '{value}'"),
        ] {
            let e = db_error(a.batch_execute(&sql));
            assert!(
                ["42501", "55P02"].contains(&e.code().code()),
                "{sql}: {} {}",
                e.code().code(),
                e.message()
            );
        }
    }
    // sighup settings cannot be SET even by a superuser; a typo under the reserved prefix fails
    let mut su = c.connect(&db, "postgres");
    assert_eq!(
        db_error(su.batch_execute("SET repair.db_role = 'prod'"))
            .code()
            .code(),
        "55P02"
    );
    let e = db_error(su.batch_execute("SET repair.db_rol = 'prod'"));
    assert_eq!(e.code().code(), "42602");
    // and the values are what the config file says
    let role: String = a.query_one("SHOW repair.db_role", &[]).unwrap().get(0);
    assert_eq!(role, "staging");
}

#[test]
fn run_as_role_and_identity_restored() {
    let conf = Conf::take();
    let c = conf.cluster;
    let db = c.fresh_db("runas");
    let body = "CREATE TABLE IF NOT EXISTS public.owned_by_runner (id int);";
    let (_, hash, _) = register(&mut c.connect(&db, "carol"), &playbook("runner", body));
    c.set_conf(&[("repair.run_as", Some("fixer"))]);
    let mut a = c.connect(&db, "alice");
    let r = execute(&mut a, "runner", &hash, "r").unwrap();
    assert_eq!(
        (r["status"].as_str(), r["executed_as"].as_str()),
        (Some("SUCCESS"), Some("fixer"))
    );
    let owner: String = a
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'owned_by_runner'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(owner, "fixer");
    let who: (String, String) = a
        .query_one("SELECT current_user::text, session_user::text", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(who, ("alice".into(), "alice".into()));
    // a run_as role that does not exist refuses rather than falling back
    c.set_conf(&[("repair.run_as", Some("ghost_role"))]);
    let e = db_error(execute(&mut a, "runner", &hash, "r"));
    assert_eq!(e.code().code(), "42704");
    assert!(e.message().starts_with("RUN_AS_INVALID:"));
}

#[test]
fn library_refuses_to_load_without_shared_preload() {
    let _conf = Conf::take();
    let bare = Cluster::start(&[], false);
    let mut su = bare.connect("postgres", "postgres");
    let e = db_error(su.batch_execute("LOAD 'pg_repair'"));
    assert_eq!(e.code().code(), "55000");
    assert!(
        e.message().contains("shared_preload_libraries"),
        "{}",
        e.message()
    );
    let e = db_error(su.batch_execute("CREATE EXTENSION pg_repair"));
    assert_eq!(e.code().code(), "55000");
}
