//! Upgrades from 0.1.0, as a DBA does them (SPEC "Versions, upgrades, packages"): a database
//! created by the released 0.1.0 install script keeps working with the new library before the
//! UPDATE; `ALTER EXTENSION pg_repair UPDATE` keeps every audit row and the chains; and the
//! catalog then equals a fresh CREATE EXTENSION object by object, in place and across
//! pg_dump/pg_restore. A schema change in sql/ without an upgrade script fails here, naming the
//! object.

mod upgrade_common;

use pg_repair_tests::{db_error, Cluster};
use upgrade_common::catalog::{assert_covers, assert_same, snapshot};
use upgrade_common::*;

#[test]
fn the_catalog_snapshot_sees_every_kind_of_object() {
    let c = Cluster::shared();
    create_fresh(c, "upc_probe");
    assert_covers(&snapshot(&mut c.connect("upc_probe", "postgres")));
}

#[test]
fn update_in_place_keeps_the_audit_and_equals_a_fresh_install() {
    let c = Cluster::shared();
    create_0_1_0(c, "upc_old");
    let reg = use_0_1_0_api(c, "upc_old");
    update_and_check(c, "upc_old", &reg);

    create_fresh(c, "upc_fresh");
    let upgraded = snapshot(&mut c.connect("upc_old", "postgres"));
    let fresh = snapshot(&mut c.connect("upc_fresh", "postgres"));
    assert_covers(&upgraded);
    assert_same(&upgraded, &fresh, "in place");
    assert_eq!(
        schema_dump(c, "upc_old"),
        schema_dump(c, "upc_fresh"),
        "pg_dump -s"
    );
}

/// pg_restore recreates the extension at the default version (pg_dump writes no VERSION): the
/// 0.1.0 rows land in the 0.2.0 tables, and UPDATE has nothing left to do.
#[test]
fn dump_of_a_0_1_0_database_restored_with_the_new_library() {
    let c = Cluster::shared();
    create_0_1_0(c, "upc_src");
    let reg = use_0_1_0_api(c, "upc_src");
    let rows = audit_rows(c, "upc_src");
    let head = audit_head(c, "upc_src");

    let other = Cluster::start(&[], true);
    create_db(&other, "upc_restored");
    dump_restore(c, "upc_src", &other, "upc_restored", false);
    let mut su = other.connect("upc_restored", "postgres");
    su.batch_execute("ALTER EXTENSION pg_repair UPDATE")
        .unwrap();
    assert_eq!(extversion(&mut su), env!("CARGO_PKG_VERSION"));
    assert_eq!(
        audit_rows(&other, "upc_restored"),
        rows,
        "every audit row restored, unchanged"
    );
    assert_eq!(audit_head(&other, "upc_restored"), head);
    let (ok, row) = verify_audit(&other, "upc_restored");
    assert!(ok, "{row}");
    // The next runs chain on, and the catalog equals a fresh install in that cluster.
    let mut alice = other.connect("upc_restored", "alice");
    let r = pg_repair_tests::execute(&mut alice, "up_ok", &reg.ok, "after the restore").unwrap();
    assert_eq!(r["status"], "SUCCESS", "{r}");
    let (prev, before) = last_link(&other, "upc_restored", "runs", "playbook_id", "up_ok");
    assert!(prev.is_some() && prev == before);
    assert!(verify_audit(&other, "upc_restored").0);
    create_fresh(&other, "upc_fresh");
    assert_same(
        &snapshot(&mut other.connect("upc_restored", "postgres")),
        &snapshot(&mut other.connect("upc_fresh", "postgres")),
        "pg_dump/pg_restore",
    );
}

/// The DBA who restores into a database prepared at 0.1.0 (CREATE EXTENSION ... VERSION '0.1.0'
/// first; the dump's CREATE EXTENSION IF NOT EXISTS then keeps it), works with it, then updates.
#[test]
fn dump_restored_at_0_1_0_then_updated() {
    let c = Cluster::shared();
    create_0_1_0(c, "upc_src2");
    let reg = use_0_1_0_api(c, "upc_src2");
    let rows = audit_rows(c, "upc_src2");
    let head = audit_head(c, "upc_src2");

    let other = Cluster::start(&[], true);
    create_db(&other, "upc_at010");
    other
        .connect("upc_at010", "postgres")
        .batch_execute("CREATE EXTENSION pg_repair VERSION '0.1.0'")
        .unwrap();
    dump_restore(c, "upc_src2", &other, "upc_at010", true);
    let mut su = other.connect("upc_at010", "postgres");
    assert_eq!(extversion(&mut su), "0.1.0");
    assert_eq!(audit_rows(&other, "upc_at010"), rows);
    assert_eq!(audit_head(&other, "upc_at010"), head);
    assert!(
        verify_audit(&other, "upc_at010").0,
        "verify_audit() after the restore"
    );
    update_and_check(&other, "upc_at010", &reg);
    create_fresh(&other, "upc_fresh2");
    assert_same(
        &snapshot(&mut other.connect("upc_at010", "postgres")),
        &snapshot(&mut other.connect("upc_fresh2", "postgres")),
        "pg_restore at 0.1.0, then UPDATE",
    );
    assert_eq!(
        schema_dump(&other, "upc_at010"),
        schema_dump(&other, "upc_fresh2"),
        "pg_dump -s"
    );
}

/// On a 0.1.0 schema the library still detects an edited run (the chains 0.1.0 had are verified).
#[test]
fn an_edit_on_a_0_1_0_schema_is_still_detected() {
    let c = Cluster::shared();
    create_0_1_0(c, "upc_edit");
    use_0_1_0_api(c, "upc_edit");
    let mut su = c.connect("upc_edit", "postgres");
    let run: String = su
        .query_one(
            "SELECT run_id::text FROM repair.runs ORDER BY seq LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    // As a superuser who edits the catalog: each step in its own transaction, and the edit in a
    // new session (the relation cache of an open one still has the triggers enabled).
    let triggers = |state: &str| {
        c.connect("upc_edit", "postgres")
            .batch_execute(&format!(
                "UPDATE pg_catalog.pg_trigger SET tgenabled = '{state}' WHERE tgrelid = 'repair.runs'::regclass"
            ))
            .unwrap()
    };
    triggers("D");
    c.connect("upc_edit", "postgres")
        .batch_execute(&format!(
            "UPDATE repair.runs SET reason = 'innocent' WHERE run_id = '{run}'"
        ))
        .unwrap();
    triggers("A");
    let (ok, row) = verify_audit(c, "upc_edit");
    assert!(!ok, "{row}");
    assert_eq!(row["first_bad_run"], run.as_str(), "{row}");
    assert_eq!(row["first_bad_table"], "runs", "{row}");
}

/// Fail closed: a schema that is neither 0.1.0's nor this release's exactly (a version that
/// disagrees with the columns, a 0.2.0 column renamed away) is refused, so claiming 0.1.0 cannot
/// switch off the checks 0.2.0 added.
#[test]
fn a_schema_that_is_neither_release_is_refused() {
    let c = Cluster::shared();
    let tamper: &[(&str, bool, &str)] = &[
        // (database, created at 0.1.0, catalog edit by a superuser)
        ("upc_claims_010", false, "UPDATE pg_catalog.pg_extension SET extversion = '0.1.0' WHERE extname = 'pg_repair'"),
        ("upc_claims_020", true, "UPDATE pg_catalog.pg_extension SET extversion = '0.2.0' WHERE extname = 'pg_repair'"),
        ("upc_renamed", false, "UPDATE pg_catalog.pg_attribute SET attname = 'digest_x' \
                                 WHERE attrelid = 'repair.baseline_captures'::regclass AND attname = 'counts_digest'"),
    ];
    for (db, at_010, edit) in tamper {
        if *at_010 {
            create_0_1_0(c, db);
        } else {
            create_fresh(c, db);
        }
        let mut su = c.connect(db, "postgres");
        su.batch_execute(edit).unwrap();
        for sql in [
            "SELECT * FROM repair.verify_audit()",
            "SELECT repair.audit_head()",
            "SELECT * FROM repair.baseline_capture('x')",
        ] {
            let e = db_error(su.query(sql, &[]));
            assert_eq!(e.code().code(), "55000", "{db}: {sql}: {}", e.message());
            assert!(
                e.message().starts_with("SCHEMA_MISMATCH"),
                "{db}: {sql}: {}",
                e.message()
            );
        }
        let e = db_error(su.query(
            "SELECT * FROM repair.register($1)",
            &[&pg_repair_tests::playbook("up_x", "SELECT 1;")],
        ));
        assert!(
            e.message().starts_with("SCHEMA_MISMATCH"),
            "{db}: register: {}",
            e.message()
        );
    }
}
