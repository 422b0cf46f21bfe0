//! Shared by the attack_* test binaries (issue 7): small helpers, nothing that hides an assertion.
#![allow(dead_code)] // each binary uses a different subset

use pg_repair_tests::{one, register, Cluster};
use postgres::Client;
use serde_json::Value;
use std::sync::OnceLock;

/// No Rust backtrace / panic text in anything the server sends.
pub fn assert_no_backtrace(what: &str, text: &str) {
    let lower = text.to_lowercase();
    for bad in ["backtrace", ".rs:", "panicked", "stack backtrace"] {
        assert!(!lower.contains(bad), "{what} contains {bad:?}: {text}");
    }
}

/// The error of a failed statement; asserts message/detail/hint carry no backtrace.
pub fn clean_error<T: std::fmt::Debug>(r: Result<T, postgres::Error>) -> postgres::error::DbError {
    let e = pg_repair_tests::db_error(r);
    assert_no_backtrace("message", e.message());
    assert_no_backtrace("detail", e.detail().unwrap_or_default());
    assert_no_backtrace("hint", e.hint().unwrap_or_default());
    e
}

/// admin2 (a superuser) becomes an executor once per cluster: a superuser executor shows that
/// only the runtime refusal (not a missing privilege) stops an attack.
pub fn superuser_executor(c: &Cluster) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        c.connect("postgres", "postgres")
            .batch_execute("GRANT repair_operators TO admin2")
            .unwrap();
    });
}

/// A playbook with extra header lines (e.g. waivers, statement-timeout).
pub fn playbook_with(id: &str, headers: &[&str], body: &str) -> String {
    let mut s = format!(
        "-- repair: {id}\n-- title: attack playbook {id}\n-- environments: staging, prod\n"
    );
    for h in headers {
        s.push_str("-- ");
        s.push_str(h);
        s.push('\n');
    }
    s.push_str(body);
    s.push('\n');
    s
}

/// Registers `source` as carol; returns the hash.
pub fn reg(c: &Cluster, db: &str, source: &str) -> String {
    register(&mut c.connect(db, "carol"), source).1
}

/// Execute as `user` over `client`.
pub fn exec_as(client: &mut Client, id: &str, hash: &str) -> Result<Value, postgres::Error> {
    client
        .query_one(
            "SELECT repair.execute($1, $2, $3)",
            &[&id, &hash, &"issue 7 attack"],
        )
        .map(|r| r.get(0))
}

/// Asserts a FAILED run with the SQLSTATE and no backtrace in the message.
pub fn assert_failed(r: &Value, code: &str, ctx: &str) {
    assert_eq!(r["status"], "FAILED", "{ctx}: {r}");
    assert_eq!(r["error_code"], code, "{ctx}: {r}");
    assert_no_backtrace(ctx, r["error_message"].as_str().unwrap_or_default());
}

/// (ok, problems) of verify_audit(); problems is the new jsonb column of issue 7.
pub fn verify_full(c: &mut Client) -> (bool, Value) {
    let r = c
        .query_one(
            "SELECT ok, coalesce(problems, '[]'::jsonb) FROM repair.verify_audit()",
            &[],
        )
        .expect("verify_audit with problems");
    (r.get(0), r.get(1))
}

pub fn verify_ok(c: &mut Client) -> bool {
    one(c, "SELECT ok FROM repair.verify_audit()")
}

/// Superuser attack on the audit tables: disable their triggers by editing pg_trigger.
pub fn disable_triggers(c: &Cluster, db: &str, tables: &[&str]) {
    let list = tables
        .iter()
        .map(|t| format!("'repair.{t}'::regclass"))
        .collect::<Vec<_>>()
        .join(", ");
    c.connect(db, "postgres")
        .batch_execute(&format!(
            "UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid IN ({list})"
        ))
        .unwrap();
}

pub fn enable_triggers(c: &Cluster, db: &str, tables: &[&str]) {
    let list = tables
        .iter()
        .map(|t| format!("'repair.{t}'::regclass"))
        .collect::<Vec<_>>()
        .join(", ");
    c.connect(db, "postgres")
        .batch_execute(&format!(
            "UPDATE pg_catalog.pg_trigger SET tgenabled = 'O' WHERE tgrelid IN ({list})"
        ))
        .unwrap();
}

/// Grants for the validation API (GRANTS_SQL does not grant them).
pub fn grant_validation(c: &Cluster, db: &str) {
    c.connect(db, "postgres")
        .batch_execute("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA repair TO repair_operators;")
        .unwrap();
}

/// Advisory locks held by the backend of `c`.
pub fn my_advisory_locks(c: &mut Client) -> i64 {
    one(
        c,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
    )
}
