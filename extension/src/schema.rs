//! Which release's schema this database has.
//!
//! With a new library installed, a database created by an earlier release's install script keeps
//! working until `ALTER EXTENSION pg_repair UPDATE`: the library writes and verifies exactly what
//! that schema holds. The schema is read from the catalog and must be one release's schema
//! *exactly* (pg_extension.extversion, the columns each release added, verify_audit()'s declared
//! result). Anything else — some 0.2.0 columns present and others missing, a version that
//! disagrees with the columns — is refused (fail closed): dropping a column must never be a way
//! to switch a check off.

use crate::errors::{Kind, RepairError};
use pgrx::pg_sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// The schema `pg_repair--0.1.0.sql` created: no registry version digests, baseline captures
    /// not chained, verify_audit() without `problems`.
    V0_1_0,
    /// The schema `pg_repair--0.2.0.sql` created (or 0.1.0 after UPDATE to 0.2.0): no online
    /// runs (runs.mode, online_run, batches, rows_affected; STARTED/ABORTED rows).
    V0_2_0,
    /// The schema `pg_repair--0.3.0.sql` created: no approvals (repair.approvals,
    /// runs.approval_id), no refusals on record (repair.refusals).
    V0_3_0,
    /// This library's own schema (a fresh CREATE EXTENSION, or an earlier one after UPDATE).
    Current,
}

impl Schema {
    /// Version digests, chained baseline captures, verify_audit()'s `problems`.
    pub fn has_0_2_0(self) -> bool {
        matches!(self, Schema::V0_2_0 | Schema::V0_3_0 | Schema::Current)
    }
    /// Online runs.
    pub fn has_0_3_0(self) -> bool {
        matches!(self, Schema::V0_3_0 | Schema::Current)
    }
    /// Approvals and refusals on record.
    pub fn has_0_4_0(self) -> bool {
        matches!(self, Schema::Current)
    }
}

/// The columns 0.4.0 added (extension/sql/pg_repair--0.3.0--0.4.0.sql), as `table.column`; its
/// new tables are named by their first column.
const ADDED_IN_0_4_0: &[&str] = &[
    "runs.approval_id",
    "approvals.event_id",
    "refusals.refusal_id",
];

/// The columns 0.3.0 added (extension/sql/pg_repair--0.2.0--0.3.0.sql), as `table.column`.
const ADDED_IN_0_3_0: &[&str] = &[
    "runs.mode",
    "runs.online_run",
    "runs.batches",
    "runs.rows_affected",
];

/// The columns 0.2.0 added (extension/sql/pg_repair--0.1.0--0.2.0.sql), as `table.column`.
const ADDED_IN_0_2_0: &[&str] = &[
    "registry_events.version_digest",
    "baseline_captures.counts_digest",
    "baseline_captures.prev_hash",
    "baseline_captures.row_hash",
];

/// verify_audit()'s declared result per release. 0.1.0's columns are a prefix of 0.2.0's, so the
/// library's 0.2.0 row is formed against 0.1.0's declaration (heap_form_tuple takes the declared
/// number of columns) only once this exact shape has been checked.
const VERIFY_RESULT_0_1_0: &str = "TABLE(ok boolean, rows_checked bigint, first_bad_run uuid, \
                                   first_bad_table text, problem text)";
const VERIFY_RESULT_CURRENT: &str = "TABLE(ok boolean, rows_checked bigint, first_bad_run uuid, \
                                     first_bad_table text, problem text, problems jsonb)";

thread_local! {
    /// The last answer, with the extension version it was given for. Valid until a catalog change
    /// that could alter it (a column, relation, function or schema anywhere: syscache
    /// invalidations, ours or other sessions') clears it; pg_extension has no syscache, so its
    /// version is read on every call.
    static LAST: std::cell::RefCell<Option<(Option<String>, Schema)>> = const { std::cell::RefCell::new(None) };
}
static CALLBACKS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

unsafe extern "C-unwind" fn forget(_arg: pg_sys::Datum, _cacheid: std::ffi::c_int, _hash: u32) {
    LAST.with(|l| l.replace(None));
}

/// Registered once per backend (a fixed number of callback slots exists).
fn watch_catalog() {
    if CALLBACKS.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    for cache in [
        pg_sys::SysCacheIdentifier::ATTNUM,
        pg_sys::SysCacheIdentifier::RELOID,
        pg_sys::SysCacheIdentifier::PROCOID,
        pg_sys::SysCacheIdentifier::NAMESPACEOID,
    ] {
        // SAFETY: `forget` is a plain function valid for the backend's life; registering only
        // fails (ERROR) when the callback table is full.
        unsafe {
            pg_sys::CacheRegisterSyscacheCallback(
                cache as std::ffi::c_int,
                Some(forget),
                pg_sys::Datum::from(0),
            )
        };
    }
}

fn extension_version() -> Option<String> {
    crate::spi::one(
        "SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_repair'",
        &[],
    )
}

/// The schema of this database, or a SCHEMA_MISMATCH error (thrown; callers run inside
/// `errors::boundary`).
pub fn detect() -> Schema {
    watch_catalog();
    let version = extension_version();
    let known = LAST.with(|l| {
        l.borrow()
            .as_ref()
            .filter(|(v, _)| *v == version)
            .map(|(_, s)| *s)
    });
    if let Some(schema) = known {
        return schema;
    }
    let schema = decide();
    LAST.with(|l| l.replace(Some((version, schema))));
    schema
}

fn decide() -> Schema {
    let (version, present, verify_result) = facts();
    let has = |set: &[&str]| set.iter().all(|c| present.iter().any(|p| p == c));
    let none = |set: &[&str]| !set.iter().any(|c| present.iter().any(|p| p == c));
    let current_version = env!("CARGO_PKG_VERSION");
    let verify_current = verify_result.as_deref() == Some(VERIFY_RESULT_CURRENT);
    if version.as_deref() == Some(current_version)
        && has(ADDED_IN_0_2_0)
        && has(ADDED_IN_0_3_0)
        && has(ADDED_IN_0_4_0)
        && verify_current
    {
        return Schema::Current;
    }
    if version.as_deref() == Some("0.3.0")
        && has(ADDED_IN_0_2_0)
        && has(ADDED_IN_0_3_0)
        && none(ADDED_IN_0_4_0)
        && verify_current
    {
        return Schema::V0_3_0;
    }
    if version.as_deref() == Some("0.2.0")
        && has(ADDED_IN_0_2_0)
        && none(ADDED_IN_0_3_0)
        && none(ADDED_IN_0_4_0)
        && verify_current
    {
        return Schema::V0_2_0;
    }
    if version.as_deref() == Some("0.1.0")
        && none(ADDED_IN_0_2_0)
        && none(ADDED_IN_0_3_0)
        && none(ADDED_IN_0_4_0)
        && verify_result.as_deref() == Some(VERIFY_RESULT_0_1_0)
    {
        return Schema::V0_1_0;
    }
    let missing: Vec<&str> = ADDED_IN_0_2_0
        .iter()
        .chain(ADDED_IN_0_3_0)
        .chain(ADDED_IN_0_4_0)
        .copied()
        .filter(|c| !present.iter().any(|p| p == c))
        .collect();
    std::panic::panic_any(
        RepairError::new(
            Kind::SchemaMismatch,
            format!(
                "the pg_repair schema is neither 0.1.0, 0.2.0, 0.3.0 nor {current_version}: extension version {}, \
                 later columns present [{}], missing [{}], verify_audit() returns {}",
                version.as_deref().unwrap_or("(none)"),
                present.join(", "),
                missing.join(", "),
                verify_result.as_deref().unwrap_or("(no such function)")
            ),
        )
        .detail("Its objects were changed outside CREATE/ALTER EXTENSION: pg_repair appends nothing to the audit and verifies nothing against a schema it does not recognise.")
        .hint("Compare the schema with a fresh CREATE EXTENSION pg_repair, and run ALTER EXTENSION pg_repair UPDATE."),
    )
}

/// (pg_extension.extversion, the 0.2.0 columns present, verify_audit()'s declared result).
fn facts() -> (Option<String>, Vec<String>, Option<String>) {
    let added: Vec<String> = ADDED_IN_0_2_0
        .iter()
        .chain(ADDED_IN_0_3_0)
        .chain(ADDED_IN_0_4_0)
        .map(|s| s.to_string())
        .collect();
    // Only the extension's own schema: a temporary table named like one of ours is not ours.
    crate::spi::query(
            "SELECT (SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_repair'), \
                    ARRAY(SELECT c.relname::text || '.' || a.attname::text \
                            FROM pg_catalog.pg_attribute a \
                            JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                           WHERE n.nspname = 'repair' AND c.relkind = 'r' \
                             AND a.attnum > 0 AND NOT a.attisdropped \
                             AND c.relname::text || '.' || a.attname::text = ANY ($1) \
                           ORDER BY 1), \
                    (SELECT pg_catalog.pg_get_function_result(p.oid) FROM pg_catalog.pg_proc p \
                       JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                      WHERE n.nspname = 'repair' AND p.proname = 'verify_audit' AND p.pronargs = 0)",
            &[added.into()],
        |rows| {
        let row = rows.first();
        Ok::<_, pgrx::spi::Error>((
            row.get::<String>(1)?,
            row.get::<Vec<String>>(2)?.unwrap_or_default(),
            row.get::<String>(3)?,
        ))
    })
    .expect("pg_repair schema facts")
}
