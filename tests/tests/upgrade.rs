//! The upgrade path: a database created by the released 0.1.0 install script
//! (extension/sql/pg_repair--0.1.0.sql, installed by scripts/test.sh) keeps its audit rows through
//! ALTER EXTENSION pg_repair UPDATE, verify_audit() stays true, and the catalog ends up identical
//! to a fresh CREATE EXTENSION, grants included.
//!
//! `pg_dump -s` leaves out the extension's member objects (it writes CREATE EXTENSION and the
//! grants that differ from the initial privileges), so this comparison alone would not notice a
//! column missing from the upgrade script: upgrade_catalog.rs compares the catalog object by object.

mod upgrade_common;

use pg_repair_tests::{execute, playbook, register, Cluster};
use upgrade_common::schema_dump;

const ADMIN_GRANTS: &str = "
    GRANT USAGE ON SCHEMA repair TO repair_operators, repair_authors, repair_auditors;
    GRANT EXECUTE ON FUNCTION repair.register(text), repair.retire(text, text) TO repair_authors;
    GRANT EXECUTE ON FUNCTION repair.preview(text), repair.execute(text, text, text, boolean, text)
        TO repair_operators;
    GRANT SELECT ON ALL TABLES IN SCHEMA repair TO repair_auditors;
    GRANT EXECUTE ON FUNCTION repair.verify_audit(), repair.audit_head() TO repair_auditors;
";

#[test]
fn upgrade_from_0_1_0_keeps_the_audit_and_equals_a_fresh_install() {
    let c = Cluster::shared();
    let mut su = c.connect("postgres", "postgres");
    su.batch_execute("CREATE DATABASE up_010").unwrap();
    su.batch_execute("CREATE DATABASE up_fresh").unwrap();

    let mut old = c.connect("up_010", "postgres");
    old.batch_execute("CREATE EXTENSION pg_repair VERSION '0.1.0'")
        .unwrap();
    old.batch_execute(ADMIN_GRANTS).unwrap();
    old.batch_execute("GRANT CREATE, USAGE ON SCHEMA public TO repair_operators")
        .unwrap();
    let mut carol = c.connect("up_010", "carol");
    let (_, hash, _) = register(
        &mut carol,
        &playbook(
            "up_tables",
            "CREATE TABLE IF NOT EXISTS public.up_t (id int);",
        ),
    );
    let mut alice = c.connect("up_010", "alice");
    assert_eq!(
        execute(&mut alice, "up_tables", &hash, "before the upgrade").unwrap()["status"],
        "SUCCESS"
    );
    let head_before: String = old
        .query_one("SELECT repair.audit_head()", &[])
        .unwrap()
        .get(0);
    let rows_before: i64 = old
        .query_one("SELECT count(*) FROM repair.runs", &[])
        .unwrap()
        .get(0);

    old.batch_execute("ALTER EXTENSION pg_repair UPDATE")
        .unwrap();
    old.batch_execute(upgrade_common::AFTER_UPDATE_GRANTS)
        .unwrap();
    let version: String = old
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_repair'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        version,
        env!("CARGO_PKG_VERSION"),
        "UPDATE goes to this release"
    );
    let head_after: String = old
        .query_one("SELECT repair.audit_head()", &[])
        .unwrap()
        .get(0);
    assert_eq!(head_before, head_after, "every audit row kept, unchanged");
    let mut dave = c.connect("up_010", "dave");
    let (ok, problems): (bool, serde_json::Value) = {
        let r = dave
            .query_one("SELECT ok, problems FROM repair.verify_audit()", &[])
            .expect("the auditor's grant survives the recreated function");
        (r.get(0), r.get(1))
    };
    assert!(ok, "{problems}");
    let rows_after: i64 = old
        .query_one("SELECT count(*) FROM repair.runs", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows_before, rows_after);

    // 0.2.0 features work on the upgraded database, and the chains keep verifying.
    assert_eq!(
        execute(&mut alice, "up_tables", &hash, "after the upgrade").unwrap()["status"],
        "SUCCESS"
    );
    old.batch_execute("SELECT * FROM repair.baseline_capture('after-upgrade')")
        .unwrap();
    let ok: bool = dave
        .query_one("SELECT ok FROM repair.verify_audit()", &[])
        .unwrap()
        .get(0);
    assert!(ok);

    // The catalog equals a fresh install with the same grants.
    let mut fresh = c.connect("up_fresh", "postgres");
    fresh.batch_execute("CREATE EXTENSION pg_repair").unwrap();
    fresh.batch_execute(ADMIN_GRANTS).unwrap();
    fresh
        .batch_execute("GRANT CREATE, USAGE ON SCHEMA public TO repair_operators; CREATE TABLE IF NOT EXISTS public.up_t (id int); ALTER TABLE public.up_t OWNER TO alice")
        .unwrap();
    assert_eq!(schema_dump(c, "up_010"), schema_dump(c, "up_fresh"));
}
