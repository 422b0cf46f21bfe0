//! The version-specific parts of the extension, exercised on whichever PostgreSQL major the harness
//! runs (`PG_REPAIR_PG_BIN`; scripts/test.sh runs this file on 15, 17 and 18 and sets
//! `PG_REPAIR_EXPECT_MAJOR` so a misconfigured run cannot silently test 15 three times).
//! Each test goes through the real hook or timer rather than trusting a header constant:
//! the custom timeout id (its enum value moved in 17), ProcessUtility and ExecutorStart hooks
//! (node tags are renumbered between majors), the object-access hook, and the catalog columns the
//! extension reads.

use pg_repair_tests::{execute, playbook, register, Cluster, PG_BIN};

#[test]
fn the_server_under_test_is_the_expected_major_with_the_library_built_for_it() {
    let c = Cluster::shared();
    let mut su = c.connect("postgres", "postgres");
    let num: i32 = su
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        (num / 10000) as u32,
        PG_BIN.major(),
        "the cluster runs another server than {PG_BIN}"
    );
    if let Ok(expect) = std::env::var("PG_REPAIR_EXPECT_MAJOR") {
        assert_eq!(
            (num / 10000).to_string(),
            expect,
            "PG_REPAIR_EXPECT_MAJOR={expect} but the server is {num}"
        );
    }
    // The preloaded library is this major's build: PostgreSQL's magic block refuses any other,
    // so a loaded library and a working GUC prove it.
    let preload: String = su
        .query_one("SHOW shared_preload_libraries", &[])
        .unwrap()
        .get(0);
    assert!(preload.contains("pg_repair"), "{preload}");
    let role: String = su.query_one("SHOW repair.db_role", &[]).unwrap().get(0);
    assert_eq!(role, "staging");
}

/// The custom statement timeout (USER_TIMEOUT moved from 12 to 13 in PostgreSQL 17): a wrong id
/// would fire another timer or none, so the run would hang or fail with the wrong SQLSTATE.
#[test]
fn the_playbook_statement_timeout_fires_on_this_major() {
    let c = Cluster::shared();
    let db = c.fresh_db("ver_timeout");
    let mut carol = c.connect(&db, "carol");
    let (_, hash, _) = register(
        &mut carol,
        "-- repair: ver_slow\n-- title: slow\n-- statement-timeout: 200ms\n\
         -- environments: staging\nSELECT pg_sleep(5);\n",
    );
    let mut alice = c.connect(&db, "alice");
    let started = std::time::Instant::now();
    let r = execute(&mut alice, "ver_slow", &hash, "version test").unwrap();
    let took = started.elapsed();
    assert_eq!(r["status"], "FAILED", "{r}");
    assert_eq!(r["error_code"], "57014", "{r}");
    assert!(
        took < std::time::Duration::from_secs(3),
        "the timer did not fire: {took:?}"
    );
    // The session's own statement_timeout is untouched by ours.
    let st: String = alice
        .query_one("SHOW statement_timeout", &[])
        .unwrap()
        .get(0);
    assert_eq!(st, "0");
}

/// Runtime enforcement sees through dynamic SQL on this major: the ProcessUtility hook (DROP
/// inside EXECUTE) and the ExecutorStart hook (DELETE inside EXECUTE), both of which decode node
/// tags whose numbers differ between majors. (The whole runtime and attack suites run on every
/// major too; this is the short proof that names the version-specific parts.)
#[test]
fn runtime_hooks_refuse_dynamic_sql_on_this_major() {
    let c = Cluster::shared();
    let db = c.fresh_db("ver_hooks");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(
        "CREATE TABLE public.keep(id int primary key); INSERT INTO public.keep VALUES (1), (2);
         ALTER TABLE public.keep OWNER TO alice;",
    )
    .unwrap();
    let mut carol = c.connect(&db, "carol");
    let mut alice = c.connect(&db, "alice");
    for (id, body, what) in [
        (
            "ver_ddl",
            "DO $$ BEGIN EXECUTE 'DROP TABLE public.keep'; END $$;",
            "DROP TABLE",
        ),
        (
            "ver_dml",
            "DO $$ BEGIN EXECUTE 'DELETE FROM public.keep'; END $$;",
            "DELETE",
        ),
    ] {
        let (_, hash, _) = register(&mut carol, &playbook(id, body));
        let r = execute(&mut alice, id, &hash, "version test").expect("execute returns");
        assert_eq!(r["status"], "FAILED", "{id}: {r}");
        assert_eq!(r["error_code"], "42501", "{id}: {r}");
        let msg = r["error_message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("RUNTIME_BLOCKED") && msg.contains(what),
            "{id}: {msg}"
        );
        let n: i64 = su
            .query_one("SELECT count(*) FROM public.keep", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 2, "{id} changed data on this major");
    }
}
