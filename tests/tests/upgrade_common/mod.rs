//! What a DBA does with a database created by an earlier release: use it with the new library
//! (the released API only), then ALTER EXTENSION pg_repair UPDATE. Shared by the upgrade tests.

#![allow(dead_code)]

pub mod catalog;

use pg_repair_tests::{execute, playbook, register, Cluster, GRANTS_SQL, PG_BIN};
use postgres::Client;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;

/// Every earlier release, oldest first: (version, SHA-256 of its install script as shipped, kept
/// unchanged in extension/sql/pg_repair--VERSION.sql). Each release adds a row here (see
/// CONTRIBUTING.md); every test below runs for every row.
pub const RELEASES: &[(&str, &str)] = &[
    (
        "0.1.0",
        "877d5334232516eef28314f213c33e97c46980c6cb705cb3ff8b3c1b639fb45e",
    ),
    (
        "0.2.0",
        "15fdc2524d11b53ecf661a8487c0aa0737c6d01cd8d38af6961f8d100d8dba29",
    ),
    (
        "0.3.0",
        "f063f62a7e09abe8f01eb6eeed20394ee9717a4b36c4d37e52f5d4bdecf4f84a",
    ),
];

/// Grants on the validation API (0.1.0 has every one of these functions).
pub const VALIDATION_GRANTS: &str = "
    GRANT EXECUTE ON FUNCTION repair.run_checks(text[]), repair.decision(uuid),
        repair.baseline_capture(text, regclass[]), repair.baseline_verify(text) TO repair_operators;
";

/// Every append-only table, with the order its rows are compared in.
pub const AUDIT_TABLES: &[(&str, &str)] = &[
    ("playbook_versions", "playbook_id, version"),
    ("registry_events", "seq"),
    ("runs", "seq"),
    ("check_runs", "seq"),
    ("check_results", "seq"),
    ("baseline_captures", "seq"),
    ("baseline_counts", "capture_id, table_name"),
];

/// What the README's "Upgrading" asks of an administrator after an UPDATE that adds tables (0.4.0
/// adds repair.approvals, repair.refusals, repair.approval_status): auditors read them too.
pub const AFTER_UPDATE_GRANTS: &str =
    "GRANT SELECT ON ALL TABLES IN SCHEMA repair TO repair_auditors";

pub fn create_db(c: &Cluster, db: &str) {
    c.connect("postgres", "postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap_or_else(|e| panic!("CREATE DATABASE {db}: {e}"));
}

/// A database as `release`'s install script made it, with the usual grants.
pub fn create_at(c: &Cluster, db: &str, release: &str) {
    create_db(c, db);
    let mut su = c.connect(db, "postgres");
    su.batch_execute(&format!("CREATE EXTENSION pg_repair VERSION '{release}'"))
        .unwrap_or_else(|e| panic!("CREATE EXTENSION pg_repair VERSION '{release}' (install extension/sql/pg_repair--{release}.sql into the server's sharedir): {e}"));
    su.batch_execute(GRANTS_SQL).expect("grants");
    su.batch_execute(VALIDATION_GRANTS)
        .expect("validation grants");
}

/// A fresh CREATE EXTENSION with the same grants and the same user objects as [`use_released_api`]
/// leaves (the playbooks create public.up_t as alice).
pub fn create_fresh(c: &Cluster, db: &str) {
    create_db(c, db);
    let mut su = c.connect(db, "postgres");
    su.batch_execute("CREATE EXTENSION pg_repair").unwrap();
    su.batch_execute(GRANTS_SQL).unwrap();
    su.batch_execute(VALIDATION_GRANTS).unwrap();
    su.batch_execute("CREATE TABLE public.up_t (id int); ALTER TABLE public.up_t OWNER TO alice")
        .unwrap();
}

pub fn extversion(c: &mut Client) -> String {
    c.query_one(
        "SELECT extversion FROM pg_extension WHERE extname = 'pg_repair'",
        &[],
    )
    .unwrap()
    .get(0)
}

/// Hashes of the playbooks [`use_released_api`] registered.
pub struct Registered {
    pub ok: String,
    pub fail: String,
}

/// Every operation of the first release's API (later releases keep it), as the roles that do
/// them, each asserted to work: register, retire, execute (SUCCESS and FAILED), run_checks +
/// decision, baseline_capture + baseline_verify, verify_audit (0.1.0's five columns), audit_head.
pub fn use_released_api(c: &Cluster, db: &str) -> Registered {
    let mut carol = c.connect(db, "carol");
    let (_, ok, status) = register(
        &mut carol,
        &playbook("up_ok", "CREATE TABLE IF NOT EXISTS public.up_t (id int);"),
    );
    assert_eq!(status, "new");
    let (_, fail, _) = register(
        &mut carol,
        &playbook("up_fail", "INSERT INTO public.up_missing VALUES (1);"),
    );
    let (_, _, _) = register(&mut carol, &playbook("up_gone", "SELECT 1;"));
    carol
        .batch_execute("SELECT repair.retire('up_gone', 'superseded by up_ok')")
        .expect("retire");
    let (_, _, status) = register(
        &mut carol,
        "-- check: up_check\n-- title: up_t has no negative ids\n-- severity: critical\n-- tags: up\nSELECT id FROM public.up_t WHERE id < 0\n",
    );
    assert_eq!(status, "new");

    let mut alice = c.connect(db, "alice");
    for reason in ["first run", "second run"] {
        let r = execute(&mut alice, "up_ok", &ok, reason).expect("execute up_ok");
        assert_eq!(r["status"], "SUCCESS", "{r}");
    }
    let r = execute(&mut alice, "up_fail", &fail, "a run that fails").expect("execute up_fail");
    assert_eq!(r["status"], "FAILED", "{r}");
    assert_eq!(r["error_code"], "42P01", "{r}");

    let rows = alice
        .query(
            "SELECT run_id::text, check_id, status FROM repair.run_checks(NULL)",
            &[],
        )
        .expect("run_checks");
    assert!(
        rows.iter()
            .any(|r| r.get::<_, String>(1) == "up_check" && r.get::<_, String>(2) == "PASS"),
        "up_check ran and passed"
    );
    let decision: postgres::types::Json<Value> = alice
        .query_one(
            "SELECT to_jsonb(d) FROM repair.decision($1::text::uuid) d",
            &[&rows[0].get::<_, String>(0)],
        )
        .map(|r| r.get(0))
        .expect("decision");
    assert!(decision.0["decision"].is_string(), "{}", decision.0);

    let counted = alice
        .query(
            "SELECT * FROM repair.baseline_capture('before-upgrade')",
            &[],
        )
        .expect("baseline_capture");
    assert!(
        counted
            .iter()
            .any(|r| r.get::<_, String>(0) == "public.up_t"),
        "public.up_t counted"
    );
    let drift = alice
        .query(
            "SELECT * FROM repair.baseline_verify('before-upgrade')",
            &[],
        )
        .expect("baseline_verify");
    assert!(drift.is_empty(), "no drift right after the capture");
    alice
        .batch_execute("INSERT INTO public.up_t VALUES (1)")
        .unwrap();
    let drift = alice
        .query(
            "SELECT table_name, status FROM repair.baseline_verify('before-upgrade')",
            &[],
        )
        .expect("baseline_verify");
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].get::<_, String>(1), "changed");

    let (ok_audit, _) = verify_audit(c, db);
    assert!(ok_audit, "verify_audit() before the update");
    let _ = audit_head(c, db);
    Registered { ok, fail }
}

/// `SELECT * FROM repair.verify_audit()` as the auditor: (ok, the row as JSON). On a 0.1.0
/// schema the result has exactly 0.1.0's five columns.
pub fn verify_audit(c: &Cluster, db: &str) -> (bool, Value) {
    let mut dave = c.connect(db, "dave");
    let rows = dave
        .query("SELECT * FROM repair.verify_audit()", &[])
        .expect("verify_audit() as the auditor");
    assert_eq!(rows.len(), 1);
    let names: Vec<&str> = rows[0].columns().iter().map(|c| c.name()).collect();
    let v010 = extversion(&mut dave) == "0.1.0";
    let expected: &[&str] = if v010 {
        &[
            "ok",
            "rows_checked",
            "first_bad_run",
            "first_bad_table",
            "problem",
        ]
    } else {
        &[
            "ok",
            "rows_checked",
            "first_bad_run",
            "first_bad_table",
            "problem",
            "problems",
        ]
    };
    assert_eq!(names, expected, "verify_audit()'s columns");
    let row: postgres::types::Json<Value> = dave
        .query_one("SELECT to_jsonb(v) FROM repair.verify_audit() v", &[])
        .unwrap()
        .get(0);
    (row.0["ok"] == Value::Bool(true), row.0)
}

pub fn audit_head(c: &Cluster, db: &str) -> String {
    c.connect(db, "dave")
        .query_one("SELECT repair.audit_head()", &[])
        .expect("audit_head() as the auditor")
        .get(0)
}

/// Every row of every append-only table, as JSON without NULLs (columns an upgrade adds are
/// NULL in the rows it keeps).
pub fn audit_rows(c: &Cluster, db: &str) -> BTreeMap<&'static str, Value> {
    let mut su = c.connect(db, "postgres");
    AUDIT_TABLES
        .iter()
        .map(|(t, order)| {
            let v: postgres::types::Json<Value> = su
                .query_one(
                    &format!(
                        "SELECT coalesce(jsonb_agg(jsonb_strip_nulls(to_jsonb(r)) ORDER BY {order}), '[]') \
                           FROM repair.{t} r"
                    ),
                    &[],
                )
                .unwrap()
                .get(0);
            (*t, v.0)
        })
        .collect()
}

/// The newest two rows of a playbook's run chain: (prev_hash of the newest, row_hash of the one
/// before).
pub fn last_link(
    c: &Cluster,
    db: &str,
    table: &str,
    key_col: &str,
    key: &str,
) -> (Option<String>, Option<String>) {
    let mut su = c.connect(db, "postgres");
    let rows = su
        .query(
            &format!(
                "SELECT prev_hash, row_hash FROM repair.{table} WHERE {key_col} = $1 ORDER BY seq DESC LIMIT 2"
            ),
            &[&key],
        )
        .unwrap();
    assert_eq!(rows.len(), 2, "two rows in {table} for {key}");
    (rows[0].get(0), rows[1].get(1))
}

/// ALTER EXTENSION pg_repair UPDATE, then: version, every audit row kept byte for byte, the same
/// head, verify_audit() true (no problems), and new rows chain onto the old chains.
pub fn update_and_check(c: &Cluster, db: &str, reg: &Registered) {
    let rows_before = audit_rows(c, db);
    let head_before = audit_head(c, db);
    let mut su = c.connect(db, "postgres");
    su.batch_execute("ALTER EXTENSION pg_repair UPDATE")
        .expect("ALTER EXTENSION pg_repair UPDATE");
    su.batch_execute(AFTER_UPDATE_GRANTS)
        .expect("grants on new tables");
    assert_eq!(extversion(&mut su), env!("CARGO_PKG_VERSION"));
    assert_eq!(
        audit_rows(c, db),
        rows_before,
        "every audit row kept, unchanged"
    );
    assert_eq!(
        audit_head(c, db),
        head_before,
        "the head pinned before the update still holds"
    );
    let (ok, row) = verify_audit(c, db);
    assert!(ok, "verify_audit() after the update: {row}");
    assert_eq!(row["problems"], serde_json::json!([]), "{row}");

    // New rows chain onto the old chains.
    let mut alice = c.connect(db, "alice");
    let r = execute(&mut alice, "up_ok", &reg.ok, "after the upgrade").unwrap();
    assert_eq!(r["status"], "SUCCESS", "{r}");
    let r = execute(&mut alice, "up_fail", &reg.fail, "fails again").unwrap();
    assert_eq!(r["status"], "FAILED", "{r}");
    for key in ["up_ok", "up_fail"] {
        let (prev, before) = last_link(c, db, "runs", "playbook_id", key);
        assert!(
            prev.is_some() && prev == before,
            "run chain of {key} continues"
        );
    }
    let mut carol = c.connect(db, "carol");
    let (version, _, status) = register(
        &mut carol,
        &playbook(
            "up_ok",
            "CREATE TABLE IF NOT EXISTS public.up_t (id int);\nSELECT 1;",
        ),
    );
    assert_eq!((version, status.as_str()), (2, "updated"));
    let (prev, before) = last_link(c, db, "registry_events", "playbook_id", "up_ok");
    assert!(prev.is_some() && prev == before, "registry chain continues");
    alice
        .batch_execute("SELECT * FROM repair.run_checks(NULL)")
        .unwrap();
    let (prev, before) = last_link(c, db, "check_results", "check_id", "up_check");
    assert!(prev.is_some() && prev == before, "check chain continues");
    // The label's chain begins with its first capture after the update; verify still compares
    // with the label's first capture, made before it.
    alice
        .batch_execute("SELECT * FROM repair.baseline_capture('before-upgrade')")
        .unwrap();
    let drift = alice
        .query(
            "SELECT status FROM repair.baseline_verify('before-upgrade')",
            &[],
        )
        .unwrap();
    assert_eq!(
        drift.len(),
        1,
        "the drift since the first capture is still reported"
    );
    let (ok, row) = verify_audit(c, db);
    assert!(ok, "verify_audit() after new rows: {row}");
    assert_ne!(
        audit_head(c, db),
        head_before,
        "the head moves with new rows"
    );
}

/// `pg_dump -s` of a database, without the \restrict lines that differ per dump.
pub fn schema_dump(c: &Cluster, db: &str) -> String {
    let out = Command::new(format!("{PG_BIN}/pg_dump"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &c.port.to_string(),
            "-U",
            "postgres",
            "-s",
            db,
        ])
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// pg_dump -Fc of `db` in `from`, restored into `to_db` (which must exist) in `to`. With
/// `existing_schema`, the dump's CREATE SCHEMA repair is left out (pg_restore -L): the target
/// already has the extension, created at the version the DBA chose.
pub fn dump_restore(from: &Cluster, db: &str, to: &Cluster, to_db: &str, existing_schema: bool) {
    let file = from.dir.join(format!("{db}.dump"));
    let out = Command::new(format!("{PG_BIN}/pg_dump"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &from.port.to_string(),
            "-U",
            "postgres",
            "-Fc",
            "-f",
        ])
        .arg(&file)
        .arg(db)
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut restore = Command::new(format!("{PG_BIN}/pg_restore"));
    restore.args([
        "-h",
        "127.0.0.1",
        "-p",
        &to.port.to_string(),
        "-U",
        "postgres",
        "--exit-on-error",
        "-d",
        to_db,
    ]);
    if existing_schema {
        let out = Command::new(format!("{PG_BIN}/pg_restore"))
            .arg("-l")
            .arg(&file)
            .output()
            .expect("pg_restore -l");
        assert!(
            out.status.success(),
            "pg_restore -l: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: String = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.contains(" SCHEMA - repair "))
            .map(|l| format!("{l}\n"))
            .collect();
        let list_file = from.dir.join(format!("{db}.list"));
        std::fs::write(&list_file, list).expect("restore list");
        restore.arg("-L").arg(&list_file);
    }
    let out = restore.arg(&file).output().expect("pg_restore");
    assert!(
        out.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
