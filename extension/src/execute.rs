//! repair.execute: guards, the per-playbook lock, requires-before, the statements in a
//! subtransaction as the session user (or repair.run_as) with local timeouts, requires-after, and
//! the audit row. A FAILED run returns normally so its audit row commits with the caller.

use crate::audit::{self, now_text};
use crate::enforcement::{self, Region};
use crate::errors::{caught_message, caught_sqlstate, ErrCodeCapture, Kind, RepairError, Result};
use crate::guards::{self, Role};
use crate::guc_scope::{as_definer, with_gucs};
use crate::identity::{self, AsUser};
use crate::lock::lock_playbook;
use crate::registry::{self, Current};
use crate::subxact::in_subxact;
use crate::timeout::{self, Timer};
use crate::{gucs, lint, sqlparse};
use pgrx::prelude::*;
use serde_json::{json, Map, Value};
use std::cell::Cell;
use std::time::Instant;

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
    let current = as_definer(|| {
        lock_playbook(req.id)?;
        Ok(registry::load(req.id))
    })?;
    let current = match current {
        Some(c) if c.kind == "playbook" && !c.retired => registry::verified(c)?,
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
    // Not a guard: an invalid request id (22023) comes after every guard's refusal.
    guards::request_id(req.request_id)?;
    Ok((role, reason, current))
}

/// Today's date in UTC as YYYY-MM-DD, whatever the caller's DateStyle or TimeZone.
pub fn today() -> String {
    as_definer(|| {
        Spi::get_one::<String>(
            "SELECT pg_catalog.to_char(pg_catalog.now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        )
    })
    .expect("current date")
    .unwrap_or_default()
}

/// Guard 7: error findings not lifted by a waiver valid today.
/// `current` comes from registry::verified: its findings were recomputed from the stored source
/// (hidden characters included), never read from the stored column.
pub fn lint_guard(current: &Current) -> Result<()> {
    let blocking = lint::blocking(&current.lint, &current.waivers(), &today());
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
    /// Held until the run's record is written when the run ended in a cancel.
    _cancel: Option<crate::timeout::CancelHonoured>,
}

fn failed(code: &str, message: String, executed: i32, missing_after: Vec<String>) -> Outcome {
    let message: String = message.chars().take(1000).collect();
    Outcome {
        status: "FAILED",
        error_code: Some(code.into()),
        error_message: Some(message),
        executed,
        missing_after,
        _cancel: None,
    }
}

pub fn execute(req: &Request) -> Result<Value> {
    if enforcement::playbook_running() {
        return Err(RepairError::new(
            Kind::NestedExecute,
            "repair.execute cannot be called from inside a playbook",
        )
        .hint("Run playbooks one after another, not from each other."));
    }
    audit::require_read_committed("repair.execute")?;
    let (role, reason, current) = guarded(req)?;
    // A schema that is no release's exactly is refused before any statement runs (appending the
    // run would refuse it too, after the statements).
    as_definer(crate::schema::detect);
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
        let waived: Vec<pg_repair_core::Rule> = current
            .waivers()
            .into_iter()
            .filter(|w| w.until.as_str() >= today.as_str())
            .map(|w| w.rule)
            .collect();
        run_statements(&RunPlan {
            statements: &statements,
            target: target_oid,
            restricted,
            lock_ms,
            stmt_ms,
            requires_after: &requires_after,
            waived,
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

/// Markers thrown inside the subtransaction to roll it back.
struct MissingAfter(Vec<String>);
struct TimedOut;

/// What run_statements needs: the statements and how to run them.
struct RunPlan<'a> {
    statements: &'a [sqlparse::Statement],
    target: pg_sys::Oid,
    restricted: bool,
    lock_ms: i32,
    stmt_ms: i32,
    requires_after: &'a [String],
    /// Rules a current waiver lifts at runtime (only the waivable ones take effect).
    waived: Vec<pg_repair_core::Rule>,
}

/// Fires every pending deferred trigger event now (SET CONSTRAINTS ALL IMMEDIATE), if there is
/// one: inside a run, the playbook's deferred work runs enforced, as the run's user; before a
/// run, the caller's own pending work runs as the caller, never as repair.run_as.
fn fire_pending_deferred() {
    let rels: Vec<pg_sys::Oid> = Spi::connect(|c| {
        let rows = c.select(
            "SELECT DISTINCT tgrelid FROM pg_catalog.pg_trigger WHERE tgdeferrable",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for r in rows {
            if let Some(oid) = r.get::<pg_sys::Oid>(1)? {
                out.push(oid);
            }
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .expect("deferrable triggers");
    if rels
        .into_iter()
        .any(|rel| unsafe { pg_sys::AfterTriggerPendingOnRel(rel) })
    {
        Spi::run("SET CONSTRAINTS ALL IMMEDIATE").expect("fire deferred triggers");
    }
}

/// Names of the cursors (portals) open in this session, e.g. a PL/pgSQL `OPEN` leaves one.
fn open_cursors() -> Vec<String> {
    Spi::connect(|c| {
        let rows = c.select(
            "SELECT name FROM pg_catalog.pg_cursors ORDER BY name",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.get::<String>(1)?.unwrap_or_default());
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .expect("open cursors")
}

fn run_statements(plan: &RunPlan) -> Outcome {
    let RunPlan {
        statements,
        target,
        restricted,
        lock_ms,
        stmt_ms,
        requires_after,
        ..
    } = plan;
    let (target, restricted, lock_ms, stmt_ms) = (*target, *restricted, *lock_ms, *stmt_ms);
    let executed = Cell::new(0i32);
    let lock_timeout = format!("{lock_ms}ms");
    {
        let _caller = AsUser::switch(unsafe { pg_sys::GetOuterUserId() }, false);
        fire_pending_deferred();
    }
    let cursors_before = open_cursors();
    timeout::reset();
    let capture = ErrCodeCapture::push();
    let res = in_subxact(|| {
        // Every setting the playbook changes, SET SESSION and set_config(…, false) included, is
        // undone when it ends: success here, failure by the subtransaction's abort.
        let nest = unsafe { pg_sys::NewGUCNestLevel() };
        {
            let _region = Region::playbook(plan.waived.clone());
            // Identity is switched inside the subtransaction: its abort restores the user id too.
            let _as = AsUser::switch(target, restricted);
            with_gucs(&[(c"lock_timeout", lock_timeout.as_str())], || {
                for stmt in statements.iter() {
                    let timer = Timer::arm(stmt_ms);
                    if let Err(e) = Spi::run(&stmt.sql) {
                        panic!("statement {}: {e}", stmt.n);
                    }
                    drop(timer);
                    // A cancel that raced the disarm is raised (and caught) inside the subxact.
                    pgrx::check_for_interrupts!();
                    if timeout::fired() {
                        std::panic::panic_any(TimedOut);
                    }
                    executed.set(executed.get() + 1);
                }
                // Deferred triggers the playbook queued run now, still enforced and timed.
                let timer = Timer::arm(stmt_ms);
                fire_pending_deferred();
                drop(timer);
                pgrx::check_for_interrupts!();
                // A cursor left open would run its query when fetched, after the run: refused
                // (the rollback of the run closes it).
                let left: Vec<String> = open_cursors()
                    .into_iter()
                    .filter(|c| !cursors_before.contains(c))
                    .collect();
                if !left.is_empty() {
                    std::panic::panic_any(RepairError::new(
                        Kind::RuntimeBlocked,
                        format!(
                            "the playbook left cursor {} open (ban-cursor): its query would run when fetched, after the run",
                            crate::errors::bounded(&left.join(", "), 200)
                        ),
                    ));
                }
            });
            if timeout::fired() {
                std::panic::panic_any(TimedOut);
            }
            // A refusal the SQL caught (EXCEPTION WHEN OTHERS) still fails the run.
            if let Some(message) = enforcement::violation() {
                std::panic::panic_any(RepairError {
                    kind: Kind::RuntimeBlocked,
                    message,
                    detail: None,
                    hint: None,
                });
            }
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
        unsafe { pg_sys::AtEOXact_GUC(false, nest) };
    });
    // Before anything can process a second signal of the same cancel request.
    let fired = timeout::fired();
    let cancel = match &res {
        Err(e) if fired || caught_sqlstate(e) == "57014" => Some(timeout::CancelHonoured::hold()),
        _ => None,
    };
    let n = executed.get();
    drop(capture);
    let failing = match statements.get(n as usize) {
        Some(s) => format!("statement {}", s.n),
        None => "deferred trigger work queued by the playbook".to_string(),
    };
    match res {
        Ok(()) => Outcome {
            status: "SUCCESS",
            error_code: None,
            error_message: None,
            executed: n,
            missing_after: vec![],
            _cancel: None,
        },
        Err(e) => {
            if let pgrx::pg_sys::panic::CaughtError::RustPanic { payload, .. } = &*e {
                if let Some(MissingAfter(m)) = payload.downcast_ref::<MissingAfter>() {
                    let (code, name) = Kind::RequiresAfterMissing.code_and_name();
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
            if fired {
                // Whatever the SQL did with the cancel: the run timed out.
                return Outcome {
                    _cancel: cancel,
                    ..failed(
                        "57014",
                        format!(
                            "statement {failing}: statement timeout after {stmt_ms} ms (rolled back)"
                        ),
                        n,
                        vec![],
                    )
                };
            }
            let code = caught_sqlstate(&e);
            let message = if code == "57014" {
                format!("{failing}: cancelled by the client (or the session's statement_timeout); rolled back")
            } else {
                format!("{failing}: {} (rolled back)", caught_message(&e))
            };
            Outcome {
                _cancel: cancel,
                ..failed(&code, message, n, vec![])
            }
        }
    }
}
