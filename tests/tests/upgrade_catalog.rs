//! Upgrades from every earlier release, as a DBA does them (SPEC "Versions, upgrades, packages"):
//! a database created by a released install script keeps working with the new library before
//! the UPDATE; `ALTER EXTENSION pg_repair UPDATE` keeps every audit row and the chains; and the
//! catalog then equals a fresh CREATE EXTENSION object by object, in place and across
//! pg_dump/pg_restore. A schema change in sql/ without an upgrade script fails here, naming the
//! object. Releases are listed in upgrade_common::RELEASES (one row per release).

mod upgrade_common;

use pg_repair_tests::{db_error, repo_root, Cluster, PG_BIN};
use upgrade_common::catalog::{assert_covers, assert_same, differences, snapshot};
use upgrade_common::*;

/// `0.1.0` -> `upc_0_1_0`-style database names.
fn db(prefix: &str, release: &str) -> String {
    format!("{prefix}_{}", release.replace('.', "_"))
}

#[test]
fn released_install_scripts_are_frozen_installed_and_upgradable() {
    let sql = repo_root().join("extension/sql");
    let installed = format!("{}/extension", PG_BIN.config("--sharedir"));
    let current = env!("CARGO_PKG_VERSION");
    let scripts: Vec<String> = std::fs::read_dir(&sql)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for (release, sha) in RELEASES {
        let name = format!("pg_repair--{release}.sql");
        let text = std::fs::read(sql.join(&name))
            .unwrap_or_else(|e| panic!("extension/sql/{name}: {e} (a release's script is kept)"));
        assert_eq!(
            pg_repair_core::sha256_hex(&text),
            *sha,
            "extension/sql/{name} changed: a released install script is kept exactly as shipped"
        );
        assert_eq!(
            std::fs::read(format!("{installed}/{name}")).ok().as_deref(),
            Some(&text[..]),
            "{installed}/{name} is not the repository's (install it: scripts/test.sh does)"
        );
        // A chain of upgrade scripts leads from the release to this version.
        let mut at = release.to_string();
        while at != current {
            let next = scripts
                .iter()
                .find_map(|s| {
                    s.strip_prefix(&format!("pg_repair--{at}--"))
                        .and_then(|r| r.strip_suffix(".sql"))
                })
                .unwrap_or_else(|| {
                    panic!(
                        "no extension/sql/pg_repair--{at}--*.sql: {release} cannot reach {current}"
                    )
                });
            at = next.to_string();
        }
    }
    for s in &scripts {
        let versions: Vec<&str> = s
            .trim_start_matches("pg_repair--")
            .trim_end_matches(".sql")
            .split("--")
            .collect();
        if versions.len() == 1 {
            assert!(
                RELEASES.iter().any(|(r, _)| *r == versions[0]),
                "extension/sql/{s} has no row in upgrade_common::RELEASES"
            );
        }
    }
    // The installed current script is built from sql/ as it is now (not a stale install).
    let script = std::fs::read_to_string(format!("{installed}/pg_repair--{current}.sql")).unwrap();
    for part in ["schema", "checks", "api", "protect"] {
        let text = std::fs::read_to_string(repo_root().join(format!("sql/{part}.sql"))).unwrap();
        assert!(
            script.contains(&text),
            "the installed pg_repair--{current}.sql does not contain sql/{part}.sql as it is now: \
             run cargo pgrx install before these tests"
        );
    }
}

#[test]
fn the_catalog_snapshot_sees_every_kind_of_object() {
    let c = Cluster::shared();
    create_fresh(c, "upc_probe");
    assert_covers(&snapshot(&mut c.connect("upc_probe", "postgres")));
}

/// The comparison is not blind: an enabled state, a SET clause, a grant, an initial privilege, a
/// comment and a config-dump condition that differ are each reported by the object's name.
#[test]
fn the_comparison_names_the_object_that_differs() {
    let c = Cluster::shared();
    create_fresh(c, "upc_cmp_a");
    create_fresh(c, "upc_cmp_b");
    let edits = [
        "UPDATE pg_catalog.pg_trigger SET tgenabled = 'O' \
          WHERE tgrelid = 'repair.runs'::regclass AND tgname = 'deny_truncate'",
        "UPDATE pg_catalog.pg_proc SET proconfig = NULL WHERE oid = 'repair.register(text)'::regprocedure",
        "GRANT EXECUTE ON FUNCTION repair.hash(text) TO PUBLIC",
        "DELETE FROM pg_catalog.pg_init_privs WHERE objoid = 'repair.lint(text)'::regprocedure",
        "UPDATE pg_catalog.pg_description SET description = 'x' \
          WHERE objoid = 'repair.check_runs'::regclass AND objsubid = 0",
        "UPDATE pg_catalog.pg_extension SET extcondition[1] = 'WHERE false' WHERE extname = 'pg_repair'",
        "UPDATE pg_catalog.pg_event_trigger SET evtenabled = 'O' WHERE evtname = 'pg_repair_protect_drop'",
    ];
    for edit in edits {
        c.connect("upc_cmp_b", "postgres")
            .batch_execute(edit)
            .unwrap_or_else(|e| panic!("{edit}: {e}"));
    }
    let a = snapshot(&mut c.connect("upc_cmp_a", "postgres"));
    let b = snapshot(&mut c.connect("upc_cmp_b", "postgres"));
    let diff = differences(&b, &a).join("\n");
    for object in [
        "trigger repair.runs.deny_truncate: differs",
        "function repair.register(source text): differs",
        "function repair.hash(source text): differs",
        "initial privileges function repair.lint(text): only in a fresh",
        "comment on table repair.check_runs: differs",
        "config dump repair.playbook_versions: differs",
        "event trigger pg_repair_protect_drop: differs",
    ] {
        assert!(diff.contains(object), "{object:?} not reported in:\n{diff}");
    }
    assert_eq!(
        diff.matches(": differs").count() + diff.matches(": only in").count(),
        7,
        "{diff}"
    );
}

#[test]
fn update_in_place_keeps_the_audit_and_equals_a_fresh_install() {
    let c = Cluster::shared();
    create_fresh(c, "upc_fresh");
    let fresh = snapshot(&mut c.connect("upc_fresh", "postgres"));
    for (release, _) in RELEASES {
        let old = db("upc_old", release);
        create_at(c, &old, release);
        let reg = use_released_api(c, &old);
        update_and_check(c, &old, &reg);
        let upgraded = snapshot(&mut c.connect(&old, "postgres"));
        assert_covers(&upgraded);
        assert_same(&upgraded, &fresh, &format!("{release}, updated in place"));
        assert_eq!(
            schema_dump(c, &old),
            schema_dump(c, "upc_fresh"),
            "pg_dump -s, {release}"
        );
    }
}

/// pg_restore recreates the extension at the default version (pg_dump writes no VERSION): the
/// released rows land in the current tables, and UPDATE has nothing left to do.
#[test]
fn dump_of_a_released_database_restored_with_the_new_library() {
    let c = Cluster::shared();
    let other = Cluster::start(&[], true);
    create_fresh(&other, "upc_fresh");
    let fresh = snapshot(&mut other.connect("upc_fresh", "postgres"));
    for (release, _) in RELEASES {
        let (src, restored) = (db("upc_src", release), db("upc_restored", release));
        create_at(c, &src, release);
        let reg = use_released_api(c, &src);
        let rows = audit_rows(c, &src);
        let head = audit_head(c, &src);
        create_db(&other, &restored);
        dump_restore(c, &src, &other, &restored, false);
        let mut su = other.connect(&restored, "postgres");
        su.batch_execute("ALTER EXTENSION pg_repair UPDATE")
            .unwrap();
        su.batch_execute(upgrade_common::AFTER_UPDATE_GRANTS)
            .unwrap();
        assert_eq!(extversion(&mut su), env!("CARGO_PKG_VERSION"));
        assert_eq!(
            audit_rows(&other, &restored),
            rows,
            "every audit row restored, unchanged"
        );
        assert_eq!(audit_head(&other, &restored), head);
        let (ok, row) = verify_audit(&other, &restored);
        assert!(ok, "{row}");
        // The next runs chain on, and the catalog equals a fresh install in that cluster.
        let mut alice = other.connect(&restored, "alice");
        let r =
            pg_repair_tests::execute(&mut alice, "up_ok", &reg.ok, "after the restore").unwrap();
        assert_eq!(r["status"], "SUCCESS", "{r}");
        let (prev, before) = last_link(&other, &restored, "runs", "playbook_id", "up_ok");
        assert!(prev.is_some() && prev == before);
        assert!(verify_audit(&other, &restored).0);
        assert_same(
            &snapshot(&mut other.connect(&restored, "postgres")),
            &fresh,
            &format!("{release}, pg_dump/pg_restore"),
        );
    }
}

/// The DBA who restores into a database prepared at the release (CREATE EXTENSION ... VERSION
/// first; the dump's CREATE EXTENSION IF NOT EXISTS then keeps it), works with it, then updates.
#[test]
fn dump_restored_at_the_release_then_updated() {
    let c = Cluster::shared();
    let other = Cluster::start(&[], true);
    create_fresh(&other, "upc_fresh");
    let fresh = snapshot(&mut other.connect("upc_fresh", "postgres"));
    for (release, _) in RELEASES {
        let (src, target) = (db("upc_src2", release), db("upc_at", release));
        create_at(c, &src, release);
        let reg = use_released_api(c, &src);
        let rows = audit_rows(c, &src);
        let head = audit_head(c, &src);
        create_db(&other, &target);
        other
            .connect(&target, "postgres")
            .batch_execute(&format!("CREATE EXTENSION pg_repair VERSION '{release}'"))
            .unwrap();
        dump_restore(c, &src, &other, &target, true);
        let mut su = other.connect(&target, "postgres");
        assert_eq!(extversion(&mut su), *release);
        assert_eq!(audit_rows(&other, &target), rows);
        assert_eq!(audit_head(&other, &target), head);
        assert!(
            verify_audit(&other, &target).0,
            "verify_audit() after the restore"
        );
        update_and_check(&other, &target, &reg);
        assert_same(
            &snapshot(&mut other.connect(&target, "postgres")),
            &fresh,
            &format!("{release}, pg_restore at {release}, then UPDATE"),
        );
        assert_eq!(
            schema_dump(&other, &target),
            schema_dump(&other, "upc_fresh"),
            "pg_dump -s"
        );
    }
}

/// On a 0.1.0 schema the library still detects an edited run (the chains 0.1.0 had are verified).
#[test]
fn an_edit_on_a_0_1_0_schema_is_still_detected() {
    let c = Cluster::shared();
    create_at(c, "upc_edit", "0.1.0");
    use_released_api(c, "upc_edit");
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
/// disagrees with the columns, a 0.2.0 column renamed away) is refused by everything that writes
/// or verifies the audit, so claiming 0.1.0 cannot switch off the checks 0.2.0 added.
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
            create_at(c, db, "0.1.0");
        } else {
            create_fresh(c, db);
        }
        let mut carol = c.connect(db, "carol");
        let (_, hash, _) = pg_repair_tests::register(
            &mut carol,
            &pg_repair_tests::playbook(
                "up_mm",
                "CREATE TABLE IF NOT EXISTS public.up_mm (id int);",
            ),
        );
        let (_, warm, _) = pg_repair_tests::register(
            &mut carol,
            &pg_repair_tests::playbook(
                "up_warm",
                "CREATE TABLE IF NOT EXISTS public.up_warm (id int);",
            ),
        );
        // This backend has answered "which schema" before the edit (the answer is cached per
        // backend): the edit must still be seen by the very same session.
        let mut alice = c.connect(db, "alice");
        let r = pg_repair_tests::execute(&mut alice, "up_warm", &warm, "r").unwrap();
        assert_eq!(r["status"], "SUCCESS", "{db}: {r}");
        let mut su = c.connect(db, "postgres");
        su.batch_execute(edit).unwrap();
        // Nothing runs unrecorded: execute is refused before its statements.
        let e = db_error(pg_repair_tests::execute(&mut alice, "up_mm", &hash, "r"));
        assert!(
            e.message().starts_with("SCHEMA_MISMATCH"),
            "{db}: execute: {}",
            e.message()
        );
        let ran: bool = su
            .query_one("SELECT to_regclass('public.up_mm') IS NOT NULL", &[])
            .unwrap()
            .get(0);
        assert!(!ran, "{db}: the refused playbook left its table");
        for sql in [
            "SELECT * FROM repair.verify_audit()",
            "SELECT repair.audit_head()",
            "SELECT * FROM repair.baseline_capture('x')",
            "SELECT * FROM repair.run_checks(NULL)",
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

/// Baseline captures made before 0.2.0 were never chained; the first chained capture of their
/// label links to them (rows and counts). So an unchained capture slipped in before a label's
/// chain (as the reference baseline_verify compares with), or an old count edited, is reported.
#[test]
fn captures_from_before_the_chain_are_pinned_by_it() {
    let c = Cluster::shared();
    let insert_before = |db: &str, label: &str| {
        c.connect(db, "postgres")
            .batch_execute(&format!(
                "INSERT INTO repair.baseline_captures \
                   (capture_id, seq, label, scope, captured_at, session_user_name, table_count) \
                 VALUES (gen_random_uuid(), -1, '{label}', 'all', now() - interval '1 year', 'postgres', 0)"
            ))
            .unwrap();
    };
    let edit_old_count = |db: &str| {
        let triggers = |state: &str| {
            c.connect(db, "postgres")
                .batch_execute(&format!(
                    "UPDATE pg_catalog.pg_trigger SET tgenabled = '{state}' \
                      WHERE tgrelid = 'repair.baseline_counts'::regclass"
                ))
                .unwrap()
        };
        triggers("D");
        c.connect(db, "postgres")
            .batch_execute(
                "UPDATE repair.baseline_counts SET row_count = row_count + 1 \
                  WHERE capture_id = (SELECT capture_id FROM repair.baseline_captures ORDER BY seq LIMIT 1)",
            )
            .unwrap();
        triggers("A");
    };
    // Only releases from before the chain (0.1.0) have such captures.
    for (release, _) in RELEASES.iter().filter(|(r, _)| *r == "0.1.0") {
        for (n, tamper) in ["insert", "edit"].iter().enumerate() {
            let db = db(&format!("upc_pin{n}"), release);
            create_at(c, &db, release);
            let reg = use_released_api(c, &db);
            update_and_check(c, &db, &reg);
            let first: Option<String> = c
                .connect(&db, "postgres")
                .query_one(
                    "SELECT prev_hash FROM repair.baseline_captures \
                      WHERE label = 'before-upgrade' AND row_hash IS NOT NULL ORDER BY seq LIMIT 1",
                    &[],
                )
                .unwrap()
                .get(0);
            assert!(
                first.is_some(),
                "the first chained capture links to the older ones"
            );
            match *tamper {
                "insert" => insert_before(&db, "before-upgrade"),
                _ => edit_old_count(&db),
            }
            let (ok, row) = verify_audit(c, &db);
            assert!(!ok, "{release} {tamper}: {row}");
            assert_eq!(row["first_bad_table"], "baseline_captures", "{row}");
            let problem = row["problem"].as_str().unwrap_or_default();
            assert!(problem.contains("rows from before 0.2.0"), "{problem}");
        }
    }
    // A fresh install: a label's chain has no older captures to link to; one slipped in is seen.
    create_fresh(c, "upc_pin_fresh");
    c.connect("upc_pin_fresh", "alice")
        .batch_execute("SELECT * FROM repair.baseline_capture('fresh')")
        .unwrap();
    assert!(verify_audit(c, "upc_pin_fresh").0);
    insert_before("upc_pin_fresh", "fresh");
    let (ok, row) = verify_audit(c, "upc_pin_fresh");
    assert!(!ok, "{row}");
    assert_eq!(row["first_bad_table"], "baseline_captures", "{row}");
    let problem = row["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("rows from before 0.2.0"), "{problem}");
}
