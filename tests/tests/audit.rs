//! The audit trail under attack: append-only for owner and superusers (also as replica),
//! protected objects, tampering detected by verify_audit and audit_head, dump/restore.

use pg_repair_tests::{db_error, execute, one, playbook, register, Cluster};
use postgres::Client;

/// What repair.verify_audit() says.
struct Verdict {
    ok: bool,
    first_bad_run: Option<String>,
    first_bad_table: Option<String>,
    problem: String,
}

fn verify(c: &mut Client) -> Verdict {
    let r = c
        .query_one(
            "SELECT ok, first_bad_run::text, first_bad_table, coalesce(problem, '') FROM repair.verify_audit()",
            &[],
        )
        .expect("verify_audit");
    Verdict {
        ok: r.get(0),
        first_bad_run: r.get(1),
        first_bad_table: r.get(2),
        problem: r.get(3),
    }
}

/// A database with `runs` successful runs of two playbooks.
fn with_runs(c: &Cluster, label: &str, runs: usize) -> String {
    let db = c.fresh_db(label);
    let mut carol = c.connect(&db, "carol");
    let ha = register(&mut carol, &playbook("audited_a", "SELECT 1;")).1;
    let hb = register(&mut carol, &playbook("audited_b", "SELECT 2;")).1;
    let mut a = c.connect(&db, "alice");
    for i in 0..runs {
        let (id, h) = if i % 2 == 0 {
            ("audited_a", &ha)
        } else {
            ("audited_b", &hb)
        };
        assert_eq!(
            execute(&mut a, id, h, &format!("run {i}")).unwrap()["status"],
            "SUCCESS"
        );
    }
    db
}

#[test]
fn audit_tables_refuse_update_delete_truncate_for_owner_and_superusers() {
    let c = Cluster::shared();
    let db = with_runs(c, "appendonly", 2);
    for user in ["postgres", "admin2"] {
        let mut su = c.connect(&db, user);
        for srr in ["origin", "replica"] {
            su.batch_execute(&format!("SET session_replication_role = {srr}"))
                .unwrap();
            for table in ["runs", "registry_events", "playbook_versions"] {
                for sql in [
                    format!("UPDATE repair.{table} SET playbook_id = playbook_id"),
                    format!("DELETE FROM repair.{table}"),
                    format!("TRUNCATE repair.{table}"),
                ] {
                    let e = db_error(su.batch_execute(&sql));
                    assert_eq!(
                        e.code().code(),
                        "42501",
                        "{user}/{srr}: {sql}: {}",
                        e.message()
                    );
                }
            }
        }
        // a direct INSERT by a superuser who is not the owner is refused too
        if user == "admin2" {
            su.batch_execute("RESET session_replication_role").unwrap();
            let e = db_error(
                su.batch_execute("INSERT INTO repair.runs SELECT * FROM repair.runs LIMIT 1"),
            );
            assert_eq!(e.code().code(), "42501");
        }
    }
    let mut su = c.connect(&db, "postgres");
    assert_eq!(one::<i64>(&mut su, "SELECT count(*) FROM repair.runs"), 2);
}

#[test]
fn protected_objects_cannot_be_altered_or_dropped() {
    let c = Cluster::shared();
    let db = with_runs(c, "protect", 1);
    let mut su = c.connect(&db, "postgres");
    for sql in [
        "ALTER TABLE repair.runs DISABLE TRIGGER ALL",
        "ALTER TABLE repair.runs DISABLE TRIGGER deny_update_delete",
        "DROP TRIGGER deny_truncate ON repair.runs",
        "ALTER TABLE repair.runs ADD COLUMN x int",
        "ALTER TABLE repair.runs OWNER TO admin2",
        "CREATE OR REPLACE FUNCTION repair._deny_modification() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
        "CREATE FUNCTION repair.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "DROP FUNCTION repair.audit_head()",
        "ALTER EVENT TRIGGER pg_repair_protect_ddl DISABLE",
        "ALTER EXTENSION pg_repair DROP TABLE repair.runs",
        "DROP SCHEMA repair CASCADE",
        "DROP TABLE repair.runs",
    ] {
        let e = db_error(su.batch_execute(sql));
        // 2BP01: PostgreSQL's own extension dependency check gets there first
        assert!(["42501", "2BP01"].contains(&e.code().code()), "{sql}: {} {}", e.code().code(), e.message());
    }
    // ordinary DDL elsewhere still works, and the audit is intact
    su.batch_execute("CREATE TABLE public.unrelated (id int); DROP TABLE public.unrelated")
        .unwrap();
    assert!(one::<bool>(&mut su, "SELECT ok FROM repair.verify_audit()"));
}

/// What a superuser can still do (README threat model): flip the catalog flags. The hash
/// chain detects the edits that follow.
fn disable_triggers_behind_the_back(c: &Cluster, db: &str) {
    let mut su = c.connect(db, "postgres");
    su.batch_execute(
        "UPDATE pg_catalog.pg_trigger SET tgenabled = 'D'
          WHERE tgrelid IN ('repair.runs'::regclass, 'repair.registry_events'::regclass)",
    )
    .unwrap();
}

#[test]
fn superuser_edit_is_detected_by_verify_audit() {
    let c = Cluster::shared();
    let db = with_runs(c, "tamper_edit", 6);
    disable_triggers_behind_the_back(c, &db);
    let mut su = c.connect(&db, "postgres");
    let victim: String = one(&mut su, "SELECT run_id::text FROM repair.runs WHERE playbook_id = 'audited_a' ORDER BY seq OFFSET 1 LIMIT 1");
    su.batch_execute(&format!(
        "UPDATE repair.runs SET reason = 'innocent' WHERE run_id = '{victim}'"
    ))
    .unwrap();
    let v = verify(&mut su);
    assert!(!v.ok);
    assert_eq!(v.first_bad_run.as_deref(), Some(victim.as_str()));
    assert!(v.problem.contains("edited"), "{}", v.problem);
}

#[test]
fn superuser_delete_is_detected_by_verify_audit_and_audit_head() {
    let c = Cluster::shared();
    let db = with_runs(c, "tamper_delete", 6);
    disable_triggers_behind_the_back(c, &db);
    let mut su = c.connect(&db, "postgres");
    // delete a middle row: the next row's prev_hash no longer links
    let (deleted, next): (String, String) = su
        .query_one(
            "SELECT (array_agg(run_id::text ORDER BY seq))[2], (array_agg(run_id::text ORDER BY seq))[3]
               FROM repair.runs WHERE playbook_id = 'audited_a'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    su.batch_execute(&format!(
        "DELETE FROM repair.runs WHERE run_id = '{deleted}'"
    ))
    .unwrap();
    let v = verify(&mut su);
    assert!(!v.ok);
    assert_eq!(v.first_bad_run.as_deref(), Some(next.as_str()));
    assert!(v.problem.contains("does not link"));
}

#[test]
fn deleting_the_newest_rows_changes_audit_head() {
    let c = Cluster::shared();
    let db = with_runs(c, "tamper_tail", 4);
    let mut su = c.connect(&db, "postgres");
    let pinned: String = one(&mut su, "SELECT repair.audit_head()");
    disable_triggers_behind_the_back(c, &db);
    let mut su = c.connect(&db, "postgres");
    su.batch_execute("DELETE FROM repair.runs WHERE seq = (SELECT max(seq) FROM repair.runs)")
        .unwrap();
    // the chain that is left is internally consistent ...
    assert!(one::<bool>(&mut su, "SELECT ok FROM repair.verify_audit()"));
    // ... but the pinned head no longer matches
    let now: String = one(&mut su, "SELECT repair.audit_head()");
    assert_ne!(now, pinned);
}

#[test]
fn audit_head_changes_with_every_run() {
    let c = Cluster::shared();
    let db = with_runs(c, "head", 1);
    let mut su = c.connect(&db, "postgres");
    let h1: String = one(&mut su, "SELECT repair.audit_head()");
    let hash: String = one(
        &mut su,
        "SELECT hash FROM repair.playbooks WHERE id = 'audited_a'",
    );
    execute(&mut c.connect(&db, "alice"), "audited_a", &hash, "again").unwrap();
    let h2: String = one(&mut su, "SELECT repair.audit_head()");
    assert_ne!(h1, h2);
    assert_eq!(h2.len(), 64);
}

#[test]
fn registry_tamper_is_detected() {
    let c = Cluster::shared();
    let db = with_runs(c, "tamper_registry", 1);
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(
        "UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'repair.playbook_versions'::regclass",
    )
    .unwrap();
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(
        "UPDATE repair.playbook_versions SET canonical = replace(canonical, 'SELECT 1', 'SELECT 666')
          WHERE playbook_id = 'audited_a'",
    )
    .unwrap();
    let v = verify(&mut su);
    assert!(!v.ok);
    assert_eq!(v.first_bad_table.as_deref(), Some("playbook_versions"));
}

#[test]
fn dump_and_restore_keep_rows_byte_identical_and_verifiable() {
    let c = Cluster::shared();
    let db = with_runs(c, "dump", 5);
    let restored = c.dump_restore(&db);
    let fingerprint = |d: &str| -> (i64, String, String, bool) {
        let mut k = c.connect(d, "postgres");
        k.query_one(
            "SELECT (SELECT count(*) FROM repair.runs),
                    (SELECT md5(string_agg(r::text, '|' ORDER BY seq)) FROM repair.runs r),
                    repair.audit_head(),
                    (SELECT ok FROM repair.verify_audit())",
            &[],
        )
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .unwrap()
    };
    let (before, after) = (fingerprint(&db), fingerprint(&restored));
    assert_eq!(before, after);
    assert!(after.3 && after.0 == 5);
    // the restored sequence continues after the restored rows
    let mut k = c.connect(&restored, "postgres");
    k.batch_execute(pg_repair_tests::GRANTS_SQL).unwrap();
    let hash: String = one(
        &mut k,
        "SELECT hash FROM repair.playbooks WHERE id = 'audited_a'",
    );
    execute(
        &mut c.connect(&restored, "alice"),
        "audited_a",
        &hash,
        "after restore",
    )
    .unwrap();
    assert!(one::<bool>(&mut k, "SELECT ok FROM repair.verify_audit()"));
    assert_eq!(
        one::<i64>(&mut k, "SELECT count(DISTINCT seq) FROM repair.runs"),
        6
    );
}
