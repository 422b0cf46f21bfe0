//! pg_repair: reviewed, hash-pinned repair playbooks, executed only when every guard passes, with
//! an append-only, tamper-evident audit trail. SQL API in schema `repair` (see SPEC.md).

// Every unsafe block says why it is sound (`// SAFETY:`).
#![warn(clippy::undocumented_unsafe_blocks)]

use pgrx::prelude::*;
use pgrx::JsonB;

mod approvals;
mod audit;
mod baseline;
mod checks;
mod classify;
mod clock;
mod enforcement;
mod errors;
mod execute;
mod gate;
mod guards;
mod guc_scope;
mod gucs;
mod hooks;
mod identity;
mod lint;
mod lock;
mod online;
mod online_hooks;
mod parse_tree;
mod preview;
mod redaction;
mod refusals;
mod registry;
mod schema;
mod spi;
mod sqlparse;
mod subxact;
mod timeout;

use errors::{boundary, Kind, RepairError};

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!(
    "../../sql/checks.sql",
    name = "checks",
    requires = ["schema"]
);
extension_sql_file!(
    "../../sql/api.sql",
    name = "api",
    requires = [_baseline_capture]
);
extension_sql_file!("../../sql/protect.sql", name = "protect", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // Loaded any later than postmaster start, a session could already have created placeholder
    // repair.* settings of its own: refuse instead of trusting them.
    // SAFETY: a plain bool global, read on the loading process's only thread.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        errors::raise_in_hook(
            errors::RepairError::new(
                errors::Kind::PreloadRequired,
                "pg_repair must be loaded via shared_preload_libraries",
            )
            .detail("Add pg_repair to shared_preload_libraries in postgresql.conf and restart the server."),
        );
    }
    // pgrx attaches a captured Rust backtrace to errors it relays; with RUST_BACKTRACE in the
    // server's environment that put 30 frames into a client's DETAIL. Backtraces are never
    // captured in the server (set before any backend exists, so every backend inherits it).
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    gucs::init();
    hooks::install();
    refusals::init();
}

/// Parse, lint and store a playbook or check file.
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn register(
    source: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(id, String),
        name!(version, i32),
        name!(hash, String),
        name!(status, String),
    ),
> {
    boundary(|| {
        let source =
            source.ok_or_else(|| RepairError::new(Kind::InvalidArgument, "source is NULL"))?;
        let r = registry::register(source)?;
        Ok(TableIterator::once((
            r.id,
            r.version,
            r.hash,
            r.status.to_string(),
        )))
    })
}

/// Retire a playbook: it stays in the registry and the audit, and never runs again.
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn retire(id: Option<&str>, reason: Option<&str>) {
    boundary(|| {
        let id = id.ok_or_else(|| registry::unknown("NULL"))?;
        registry::retire(id, reason)
            .inspect_err(|e| refusals::record("retire", e, Some(id), reason, None))
    })
}

/// The canonical SHA-256 of a playbook or check file.
#[pg_extern(name = "hash", immutable, parallel_safe)]
fn hash_source(source: &str) -> String {
    boundary(|| Ok(registry::parse(source)?.hash()))
}

/// Lint findings for a playbook or check file, positions in file lines and columns.
#[pg_extern]
#[allow(clippy::type_complexity)]
fn lint(
    source: &str,
) -> TableIterator<
    'static,
    (
        name!(rule, String),
        name!(severity, String),
        name!(statement, Option<i32>),
        name!(line, i32),
        name!(col, i32),
        name!(message, String),
    ),
> {
    boundary(|| {
        let parsed = registry::parse(source)?;
        // The file's own waivers apply: a finding a current waiver lifts is `waived`, never
        // `error`; an expired waiver lifts nothing.
        let waivers = match &parsed {
            pg_repair_core::Source::Playbook(p) => p.waivers.clone(),
            _ => vec![],
        };
        let today = crate::clock::today();
        let rows: Vec<_> = lint::lint_source(&parsed)
            .into_iter()
            .map(|f| {
                let waiver = (f.severity == pg_repair_core::Severity::Error)
                    .then(|| lint::waived_by(&f.to_json(), &waivers, &today))
                    .flatten();
                let (severity, message) = match waiver {
                    Some(w) => (
                        "waived".to_string(),
                        format!(
                            "{} (waived until {} because {})",
                            f.message, w.until, w.because
                        ),
                    ),
                    None => (f.severity.as_str().to_string(), f.message),
                };
                (
                    f.rule.to_string(),
                    severity,
                    f.statement.map(|n| n as i32),
                    f.line as i32,
                    f.col as i32,
                    message,
                )
            })
            .collect();
        Ok(TableIterator::new(rows))
    })
}

/// What execute would do for this caller (guards, missing objects, statements, lint, waivers).
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn preview(id: Option<&str>) -> JsonB {
    boundary(|| {
        let id = id.unwrap_or("");
        preview::preview(id)
            .map(JsonB)
            .ok_or_else(|| registry::unknown(id))
    })
}

/// Run a playbook through every guard and record the run. A FAILED run returns normally.
/// search_path is NOT pinned on the function: the playbook's statements must see the caller's.
/// The extension's own SQL pins it itself (guc_scope::as_definer).
#[pg_extern(security_definer)]
fn execute(
    id: Option<&str>,
    expected_hash: Option<&str>,
    reason: Option<&str>,
    confirm_prod: default!(Option<bool>, false),
    request_id: default!(Option<&str>, "NULL"),
) -> JsonB {
    boundary(|| {
        let req = guards::Request::of(id, expected_hash, reason, confirm_prod, request_id);
        execute::execute(&req)
            .map(JsonB)
            .inspect_err(|e| refusals::record("execute", e, id, reason, request_id))
    })
}

/// Begin an online run: guards, requires-before, the playbook's lock for the whole run, the
/// STARTED row; returns the run id and the statements the session may send next, one by one.
/// The statements that follow are the client's own top-level statements, with its own
/// search_path; this function runs only the extension's SQL, so its search_path is pinned.
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn online_begin(
    id: Option<&str>,
    expected_hash: Option<&str>,
    reason: Option<&str>,
    confirm_prod: default!(Option<bool>, false),
    request_id: default!(Option<&str>, "NULL"),
) -> JsonB {
    boundary(|| {
        let req = guards::Request::of(id, expected_hash, reason, confirm_prod, request_id);
        online::begin(&req)
            .map(JsonB)
            .inspect_err(|e| refusals::record("online_begin", e, id, reason, request_id))
    })
}

/// Approve one playbook version (by hash) for one run by another person (four eyes).
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn approve(
    id: Option<&str>,
    expected_hash: Option<&str>,
    reason: Option<&str>,
    valid_for: default!(Option<pgrx::datum::Interval>, "'4 hours'"),
) -> pgrx::Uuid {
    boundary(|| {
        let us = match valid_for {
            None => 0,
            Some(i) if i.months() != 0 => i64::MAX,
            Some(i) => (i.days() as i64)
                .saturating_mul(86_400_000_000)
                .saturating_add(i.micros()),
        };
        let pid = id.unwrap_or("");
        approvals::approve(pid, expected_hash, reason, us)
            .map(|u| parse_uuid(&u).expect("a uuid"))
            .inspect_err(|e| refusals::record("approve", e, id, reason, None))
    })
}

/// Revoke an approval (approvers only).
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn revoke_approval(approval_id: Option<pgrx::Uuid>, reason: Option<&str>) -> pgrx::Uuid {
    boundary(|| {
        let id = approval_id.as_ref().map(uuid_text).unwrap_or_default();
        approvals::revoke(&id, reason)
            .map(|u| parse_uuid(&u).expect("a uuid"))
            .inspect_err(|e| refusals::record("revoke_approval", e, None, reason, None))
    })
}

/// Internal: the refusal recorder's append (not granted to anyone; the recorder is superuser).
#[pg_extern(security_definer, name = "_record_refusals")]
#[search_path(pg_catalog, pg_temp)]
fn record_refusals(entries: JsonB) -> i64 {
    boundary(|| refusals::append(entries.0))
}

/// This database's refusal queue: waiting entries, capacity, drops not yet recorded, recorder.
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn refusal_queue() -> JsonB {
    JsonB(refusals::status())
}

fn uuid_text(u: &pgrx::Uuid) -> String {
    pg_repair_core::time::uuid_text(u.as_bytes())
}

/// Finish this session's online run: requires-after, the closing row (SUCCESS or FAILED).
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn online_finish(run_id: Option<pgrx::Uuid>) -> JsonB {
    boundary(|| {
        let id = run_id.as_ref().map(uuid_text).unwrap_or_default();
        online::end(&id, online::Ending::Finish, None).map(JsonB)
    })
}

/// Abort this session's online run: the closing row (ABORTED) with the reason.
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn online_abort(run_id: Option<pgrx::Uuid>, reason: Option<&str>) -> JsonB {
    boundary(|| {
        let id = run_id.as_ref().map(uuid_text).unwrap_or_default();
        let reason = guards::reason(reason)?;
        online::end(&id, online::Ending::Abort, Some(&reason)).map(JsonB)
    })
}

/// Recompute every hash chain; names the first row that does not verify.
/// On a 0.1.0 schema the function is still declared with 0.1.0's five columns: the row is formed
/// against that declaration (its first five columns), which audit::verify (schema::detect) has
/// checked is exactly 0.1.0's.
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn verify_audit() -> TableIterator<
    'static,
    (
        name!(ok, bool),
        name!(rows_checked, i64),
        name!(first_bad_run, Option<pgrx::Uuid>),
        name!(first_bad_table, Option<String>),
        name!(problem, Option<String>),
        name!(problems, JsonB),
    ),
> {
    boundary(|| {
        let v = audit::verify();
        let first = v.problems.first();
        Ok(TableIterator::once((
            v.ok(),
            v.rows_checked,
            first.and_then(|p| p.id.as_deref()).and_then(parse_uuid),
            first.map(|p| p.table.clone()),
            first.map(|p| p.problem.clone()),
            JsonB(serde_json::Value::Array(
                v.problems.iter().map(audit::Problem::to_json).collect(),
            )),
        )))
    })
}

fn parse_uuid(s: &str) -> Option<pgrx::Uuid> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(pgrx::Uuid::from_bytes(bytes))
}

/// SHA-256 over the newest row_hash of every chain: pin it outside the database.
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn audit_head() -> String {
    boundary(|| Ok(audit::head()))
}

/// Run every built-in check and the registered checks (tags overlap, or all), read-only;
/// record the run; one row per check. search_path is not pinned on the function: check queries
/// see the caller's, the extension's own SQL pins it itself.
#[pg_extern(security_definer)]
#[allow(clippy::type_complexity)]
fn run_checks(
    tags: default!(Option<Vec<String>>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(run_id, pgrx::Uuid),
        name!(check_id, String),
        name!(severity, String),
        name!(status, String),
        name!(violation_count, i64),
        name!(sample, JsonB),
        name!(error, Option<String>),
    ),
> {
    boundary(|| {
        let (run_id, results) = checks::run_checks(tags)?;
        let id = parse_uuid(&run_id).expect("run id");
        Ok(TableIterator::new(results.into_iter().map(move |r| {
            (
                id,
                r.check_id,
                r.severity,
                r.status.to_string(),
                r.violations,
                JsonB(r.sample),
                r.error,
            )
        })))
    })
}

/// GO (all pass), HOLD (only 1–2 important failures), NO-GO (any critical, or 3+ important).
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn decision(
    run_id: pgrx::Uuid,
) -> TableIterator<
    'static,
    (
        name!(decision, String),
        name!(score, String),
        name!(passed, i32),
        name!(total, i32),
        name!(failed_critical, i32),
        name!(failed_important, i32),
    ),
> {
    boundary(|| {
        let d = checks::decision(&run_id.to_string())?;
        Ok(TableIterator::once((
            d.decision.to_string(),
            d.score,
            d.passed,
            d.total,
            d.failed_critical,
            d.failed_important,
        )))
    })
}

/// Internal: baseline_capture's body (the public wrapper takes regclass[]).
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn _baseline_capture(
    label: &str,
    tables: Option<Vec<pg_sys::Oid>>,
) -> TableIterator<'static, (name!(table_name, String), name!(row_count, i64))> {
    boundary(|| Ok(TableIterator::new(baseline::capture(label, tables)?)))
}

/// Tables whose row count changed since the first capture of `label` (a re-capture cannot erase
/// drift), and tables added or missing since.
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn baseline_verify(
    label: &str,
) -> TableIterator<
    'static,
    (
        name!(table_name, String),
        name!(status, String),
        name!(before, Option<i64>),
        name!(after, Option<i64>),
    ),
> {
    boundary(|| Ok(TableIterator::new(baseline::verify(label, None)?)))
}

/// The same, against the named capture of `label`.
#[pg_extern(security_definer, name = "baseline_verify")]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn baseline_verify_capture(
    label: &str,
    capture_id: pgrx::Uuid,
) -> TableIterator<
    'static,
    (
        name!(table_name, String),
        name!(status, String),
        name!(before, Option<i64>),
        name!(after, Option<i64>),
    ),
> {
    boundary(|| {
        Ok(TableIterator::new(baseline::verify(
            label,
            Some(capture_id.to_string()),
        )?))
    })
}

/// The migration gate: guards 1–3. Returns what allowed it, or raises the guard's error.
#[pg_extern]
fn assert_migrations_allowed(confirm_prod: default!(Option<bool>, false)) -> JsonB {
    boundary(|| {
        gate::assert_migrations_allowed(confirm_prod.unwrap_or(false))
            .map(JsonB)
            .inspect_err(|e| refusals::record("gate", e, None, None, None))
    })
}

/// The declared role, the evidence (recovery, replication role, listen addresses, cluster and
/// database name) and mismatch warnings. Never infers a role.
#[pg_extern]
fn authority() -> JsonB {
    JsonB(gate::authority())
}

/// Internal: true only while CREATE/ALTER EXTENSION pg_repair runs its script.
#[pg_extern(name = "_in_extension_script", volatile)]
fn in_extension_script() -> bool {
    hooks::in_extension_script()
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    const PLAYBOOK: &str = "-- repair: pg_test_tables\n-- title: t\n\nCREATE TABLE IF NOT EXISTS public.pg_test_a (id int);\nSELECT 1;\n";

    #[pg_test]
    fn server_hash_equals_core_hash() {
        let server = Spi::get_one_with_args::<String>("SELECT repair.hash($1)", &[PLAYBOOK.into()])
            .unwrap()
            .unwrap();
        assert_eq!(server, pg_repair_core::parse(PLAYBOOK).unwrap().hash());
    }

    #[pg_test]
    fn split_counts_statements_with_positions() {
        let sql = "CREATE TABLE a(x int);\n  SELECT ';';\n\n-- note: next\n/* a /* nested */ one */ DO $$ BEGIN NULL; END $$";
        let s = crate::sqlparse::split(sql).unwrap();
        let got: Vec<_> = s
            .iter()
            .map(|s| (s.n, s.line, s.col, s.tag.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 1, 1, "CreateStmt"),
                (2, 2, 3, "SelectStmt"),
                (3, 5, 26, "DoStmt")
            ]
        );
        assert_eq!(s[1].sql, "SELECT ';'");
        assert!(s[2].sql.starts_with("DO $$"));
    }

    #[pg_test]
    fn syntax_error_is_a_value_with_position() {
        let e = crate::sqlparse::split("SELECT 1;\nSELEC 2;").unwrap_err();
        assert_eq!((e.line, e.col), (2, 1));
        assert!(e.message.contains("syntax error"), "{}", e.message);
    }

    #[pg_test]
    fn register_is_idempotent_and_versions() {
        let reg = |src: &str| {
            Spi::get_two_with_args::<i32, String>(
                "SELECT version, status FROM repair.register($1)",
                &[src.into()],
            )
            .unwrap()
        };
        assert_eq!(reg(PLAYBOOK), (Some(1), Some("new".into())));
        assert_eq!(reg(PLAYBOOK), (Some(1), Some("unchanged".into())));
        assert_eq!(
            reg(&PLAYBOOK.replace("SELECT 1", "SELECT 2")),
            (Some(2), Some("updated".into()))
        );
        let ok = Spi::get_one::<bool>("SELECT ok FROM repair.verify_audit()").unwrap();
        assert_eq!(ok, Some(true));
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![
            "shared_preload_libraries='pg_repair'",
            "repair.db_role='staging'",
            "repair.executors='postgres'",
        ]
    }
}
