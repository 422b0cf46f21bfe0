//! repair.execute: guards, the per-playbook lock, requires-before, the statements in a
//! subtransaction as the session user (or repair.run_as) with local timeouts, requires-after, and
//! the audit row. A FAILED run returns normally so its audit row commits with the caller.

use crate::audit::{self, lock_playbook, now_text};
use crate::errors::{caught_message, caught_sqlstate, ErrCodeCapture, Kind, RepairError, Result};
use crate::guards::{self, Role};
use crate::guc_scope::{as_definer, with_gucs};
use crate::identity::{self, AsUser};
use crate::registry::{self, Current};
use crate::subxact::in_subxact;
use crate::timeout::{self, Timer};
use crate::{gucs, lint, sqlparse};
use pgrx::prelude::*;
use serde_json::{json, Map, Value};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Set while a playbook's statements run (one backend = one thread), with what its current
/// waivers allow at runtime. Only this module sets them; no user can.
static RUNNING: AtomicBool = AtomicBool::new(false);
static ALLOW_DELETE: AtomicBool = AtomicBool::new(false);
static ALLOW_UPDATE: AtomicBool = AtomicBool::new(false);

pub fn is_running() -> bool {
    RUNNING.load(Ordering::Relaxed)
}

/// Whether a waiver of this run lifts the runtime ban on DELETE / UPDATE (never DROP/TRUNCATE).
pub fn runtime_allows(rule: &str) -> bool {
    match rule {
        "ban-delete" => ALLOW_DELETE.load(Ordering::Relaxed),
        "ban-update" => ALLOW_UPDATE.load(Ordering::Relaxed),
        _ => false,
    }
}

struct RunningFlag;
impl RunningFlag {
    fn set(allow_delete: bool, allow_update: bool) -> Self {
        ALLOW_DELETE.store(allow_delete, Ordering::Relaxed);
        ALLOW_UPDATE.store(allow_update, Ordering::Relaxed);
        RUNNING.store(true, Ordering::Relaxed);
        RunningFlag
    }
}
impl Drop for RunningFlag {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::Relaxed);
        ALLOW_DELETE.store(false, Ordering::Relaxed);
        ALLOW_UPDATE.store(false, Ordering::Relaxed);
    }
}

pub struct Request<'a> {
    pub id: &'a str,
    pub expected_hash: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub confirm_prod: bool,
    pub request_id: Option<&'a str>,
}

/// Guards 1–7 in SPEC order; the lock is taken before the registry is read (guard 5 on), so the
/// playbook checked is the playbook run.
fn guarded(req: &Request) -> Result<(Role, String, Current)> {
    let role = guards::declared_role()?;
    guards::environment(role, req.confirm_prod)?;
    guards::executor()?;
    let reason = guards::reason(req.reason)?;
    guards::request_id(req.request_id)?;
    let current = as_definer(|| {
        lock_playbook(req.id);
        registry::load(req.id)
    });
    let current = match current {
        Some(c) if c.kind == "playbook" && !c.retired => c,
        Some(c) if c.retired => {
            return Err(RepairError::new(
                Kind::UnknownPlaybook,
                format!("playbook {} is retired", req.id),
            )
            .detail(format!(
                "Version {} was retired; retired playbooks never run.",
                c.version
            ))
            .hint("Register a new, reviewed version to bring it back."))
        }
        Some(_) => {
            return Err(RepairError::new(
                Kind::UnknownPlaybook,
                format!("{} is a check, not a playbook", req.id),
            )
            .hint("Checks run through repair.run_checks()."))
        }
        None => return Err(registry::unknown(req.id)),
    };
    guards::playbook_environment(req.id, role, &current.list("environments"))?;
    guards::hash(req.expected_hash, &current.hash)?;
    lint_guard(&current)?;
    Ok((role, reason, current))
}

pub fn today() -> String {
    as_definer(|| Spi::get_one::<String>("SELECT CURRENT_DATE::text"))
        .expect("current date")
        .unwrap_or_default()
}

/// Guard 7: error findings not lifted by a waiver valid today.
pub fn lint_guard(current: &Current) -> Result<()> {
    let mut blocking = lint::blocking(&current.lint, &current.waivers(), &today());
    // Hidden characters are scanned again from the stored body rather than trusted to the stored
    // findings: a row written by an older version (or by hand) must not run them either. They
    // cannot be waived.
    for f in lint::hidden_characters(current.sql(), current.body_line) {
        let f = f.to_json();
        let known = blocking
            .iter()
            .any(|b| b["rule"] == f["rule"] && b["line"] == f["line"] && b["col"] == f["col"]);
        if f["severity"] == "error" && !known {
            blocking.push(f);
        }
    }
    let Some(first) = blocking.first() else {
        return Ok(());
    };
    let list: Vec<String> = blocking
        .iter()
        .map(|f| {
            format!(
                "line {}: {} ({})",
                f["line"],
                f["message"].as_str().unwrap_or(""),
                f["rule"].as_str().unwrap_or("")
            )
        })
        .collect();
    Err(RepairError::new(
        Kind::LintRejected,
        format!("playbook {} has {} lint error(s), first: {}", current.id, blocking.len(), first["rule"].as_str().unwrap_or("")),
    )
    .detail(list.join("\n"))
    .hint("Fix the playbook and register it again, or add a time-boxed `-- waive: RULE until YYYY-MM-DD because TEXT` header."))
}

/// The run_as target: repair.run_as, or the session user. A configured role that does not exist
/// refuses the run rather than falling back.
fn target_role() -> Result<(pg_sys::Oid, String, bool)> {
    match gucs::run_as() {
        None => {
            let (oid, name) = identity::session_user();
            Ok((oid, name, false))
        }
        Some(name) => match identity::role_oid(&name) {
            Some(oid) => Ok((oid, name, true)),
            None => Err(RepairError::new(
                Kind::RunAsInvalid,
                format!("repair.run_as names role {name}, which does not exist"),
            )
            .hint("Fix repair.run_as (empty = the session user) and reload.")),
        },
    }
}

/// Relations among `names` that do not exist now. Runs as the definer.
pub fn missing(names: &[String]) -> Vec<String> {
    if names.is_empty() {
        return vec![];
    }
    as_definer(|| {
        Spi::get_one_with_args::<Vec<String>>(
            "SELECT COALESCE(array_agg(n ORDER BY n), '{}') FROM unnest($1::text[]) n \
              WHERE pg_catalog.to_regclass(n) IS NULL",
            &[names.to_vec().into()],
        )
    })
    .expect("requires check")
    .unwrap_or_default()
}

struct Outcome {
    status: &'static str,
    error_code: Option<String>,
    error_message: Option<String>,
    executed: i32,
    missing_after: Vec<String>,
}

fn failed(code: &str, message: String, executed: i32, missing_after: Vec<String>) -> Outcome {
    let message: String = message.chars().take(1000).collect();
    Outcome {
        status: "FAILED",
        error_code: Some(code.into()),
        error_message: Some(message),
        executed,
        missing_after,
    }
}

pub fn execute(req: &Request) -> Result<Value> {
    if is_running() {
        return Err(RepairError::new(
            Kind::NestedExecute,
            "repair.execute cannot be called from inside a playbook",
        )
        .hint("Run playbooks one after another, not from each other."));
    }
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return Err(RepairError::new(Kind::IsolationLevel, "repair.execute needs READ COMMITTED")
            .detail("Under REPEATABLE READ or SERIALIZABLE the audit chain could not see runs committed while waiting for the playbook lock.")
            .hint("Call it in a READ COMMITTED transaction (the default)."));
    }
    let (role, reason, current) = guarded(req)?;
    let (target_oid, target_name, restricted) = target_role()?;
    let session_name = identity::session_user().1;
    let current_user = identity::caller_user();

    let started_at = as_definer(now_text);
    let clock = Instant::now();
    let requires_before = current.list("requires_before");
    let requires_after = current.list("requires_after");
    let missing_before = missing(&requires_before);
    let statements = sqlparse::split(current.sql()).map_err(|e| {
        RepairError::new(
            Kind::LintRejected,
            format!("playbook {} does not parse: {}", current.id, e.message),
        )
    })?;
    let lock_ms = current
        .int("lock_timeout_ms")
        .unwrap_or_else(gucs::lock_timeout_ms);
    let stmt_ms = current
        .int("statement_timeout_ms")
        .unwrap_or_else(gucs::statement_timeout_ms);

    let outcome = if !missing_before.is_empty() {
        let (code, name) = Kind::RequiresBeforeMissing.code_and_name();
        failed(
            code,
            format!(
                "{name}: {} missing before the run: {}",
                missing_before.len(),
                missing_before.join(", ")
            ),
            0,
            vec![],
        )
    } else {
        let today = today();
        let waived = |rule: &str| {
            current
                .waivers()
                .iter()
                .any(|w| w.rule == rule && w.until.as_str() >= today.as_str())
        };
        run_statements(&RunPlan {
            statements: &statements,
            target: target_oid,
            restricted,
            lock_ms,
            stmt_ms,
            requires_after: &requires_after,
            allow: (waived("ban-delete"), waived("ban-update")),
        })
    };

    let finished_at = as_definer(now_text);
    let duration_us = clock.elapsed().as_micros() as i64;
    let run_id: String = as_definer(|| Spi::get_one("SELECT pg_catalog.gen_random_uuid()::text"))
        .expect("uuid")
        .unwrap_or_default();
    let today = today();
    let waivers = current.waivers();
    let mut waivers_used: Vec<Value> = lint::from_json(&current.lint)
        .iter()
        .filter_map(|f| lint::waived_by(f, &waivers, &today))
        .map(|w| json!({"rule": w.rule, "until": w.until, "because": w.because}))
        .collect();
    waivers_used.dedup();

    let mut row = Map::new();
    row.insert("run_id".into(), json!(run_id));
    row.insert("version".into(), json!(current.version));
    row.insert(
        "expected_hash".into(),
        json!(req.expected_hash.unwrap_or("").trim().to_ascii_lowercase()),
    );
    row.insert("actual_hash".into(), json!(current.hash));
    row.insert("started_at".into(), json!(started_at));
    row.insert("finished_at".into(), json!(finished_at));
    row.insert("session_user_name".into(), json!(session_name));
    row.insert("current_user_name".into(), json!(current_user));
    row.insert("executed_as".into(), json!(target_name));
    row.insert("declared_role".into(), json!(role.as_str()));
    row.insert("confirm_prod".into(), json!(req.confirm_prod));
    row.insert("reason".into(), json!(reason));
    row.insert("request_id".into(), json!(req.request_id));
    row.insert("status".into(), json!(outcome.status));
    row.insert("error_code".into(), json!(outcome.error_code));
    row.insert("error_message".into(), json!(outcome.error_message));
    row.insert("missing_before".into(), json!(missing_before));
    row.insert("missing_after".into(), json!(outcome.missing_after));
    row.insert("statements_total".into(), json!(statements.len()));
    row.insert("statements_executed".into(), json!(outcome.executed));
    row.insert("duration_us".into(), json!(duration_us));
    row.insert("waivers".into(), json!(waivers_used));
    let row_hash = as_definer(|| audit::append("runs", &current.id, row));

    Ok(json!({
        "run_id": run_id,
        "playbook": current.id,
        "version": current.version,
        "hash": current.hash,
        "status": outcome.status,
        "statements_total": statements.len(),
        "statements_executed": outcome.executed,
        "missing_before": missing_before,
        "missing_after": outcome.missing_after,
        "duration_ms": duration_us as f64 / 1000.0,
        "error_code": outcome.error_code,
        "error_message": outcome.error_message,
        "declared_role": role.as_str(),
        "executed_as": target_name,
        "waivers": waivers_used,
        "started_at": started_at,
        "finished_at": finished_at,
        "row_hash": row_hash,
    }))
}

/// Marker thrown inside the subtransaction to roll it back when requires-after objects are missing.
struct MissingAfter(Vec<String>);

/// What run_statements needs: the statements and how to run them.
struct RunPlan<'a> {
    statements: &'a [sqlparse::Statement],
    target: pg_sys::Oid,
    restricted: bool,
    lock_ms: i32,
    stmt_ms: i32,
    requires_after: &'a [String],
    /// (DELETE, UPDATE) lifted at runtime by a current waiver.
    allow: (bool, bool),
}

fn run_statements(plan: &RunPlan) -> Outcome {
    let RunPlan {
        statements,
        target,
        restricted,
        lock_ms,
        stmt_ms,
        requires_after,
        allow,
    } = *plan;
    let executed = Cell::new(0i32);
    let lock_timeout = format!("{lock_ms}ms");
    timeout::reset();
    let capture = ErrCodeCapture::push();
    let res = in_subxact(|| {
        {
            let _running = RunningFlag::set(allow.0, allow.1);
            // Identity is switched inside the subtransaction: its abort restores the user id too.
            let _as = AsUser::switch(target, restricted);
            with_gucs(&[(c"lock_timeout", lock_timeout.as_str())], || {
                for stmt in statements {
                    let timer = Timer::arm(stmt_ms);
                    if let Err(e) = Spi::run(&stmt.sql) {
                        panic!("statement {}: {e}", stmt.n);
                    }
                    drop(timer);
                    // A cancel that raced the disarm is raised (and caught) inside the subxact.
                    pgrx::check_for_interrupts!();
                    executed.set(executed.get() + 1);
                }
            });
        }
        if guards::session_replication_role() != "origin" {
            std::panic::panic_any(RepairError::new(
                Kind::EnvDisabled,
                "the playbook changed session_replication_role (rolled back)",
            ));
        }
        let missing_after = missing(requires_after);
        if !missing_after.is_empty() {
            std::panic::panic_any(MissingAfter(missing_after));
        }
    });
    let fired = timeout::fired();
    let n = executed.get();
    let outcome = match res {
        Ok(()) => Outcome {
            status: "SUCCESS",
            error_code: None,
            error_message: None,
            executed: n,
            missing_after: vec![],
        },
        Err(e) => {
            if let pgrx::pg_sys::panic::CaughtError::RustPanic { payload, .. } = &*e {
                if let Some(MissingAfter(m)) = payload.downcast_ref::<MissingAfter>() {
                    let (code, name) = Kind::RequiresAfterMissing.code_and_name();
                    drop(capture);
                    return failed(
                        code,
                        format!(
                            "{name}: {} missing after the run (rolled back): {}",
                            m.len(),
                            m.join(", ")
                        ),
                        n,
                        m.clone(),
                    );
                }
            }
            let code = caught_sqlstate(&e);
            if code == "57014" && !fired {
                // The user's cancel or the session's own statement_timeout: never swallowed.
                drop(capture);
                (*e).rethrow();
            }
            let failing = statements.get(n as usize).map_or(0, |s| s.n);
            let message = if code == "57014" {
                format!("statement {failing}: statement timeout after {stmt_ms} ms (rolled back)")
            } else {
                format!("statement {failing}: {} (rolled back)", caught_message(&e))
            };
            failed(&code, message, n, vec![])
        }
    };
    drop(capture);
    outcome
}
