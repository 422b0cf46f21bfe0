//! repair.execute: guards, the per-playbook lock, requires-before, the statements in a
//! subtransaction as the session user (or repair.run_as) with local timeouts, requires-after, and
//! the audit row. A FAILED run returns normally so its audit row commits with the caller.

use crate::audit;
use crate::clock;
use crate::enforcement::{self, Region};
use crate::errors::{caught_sqlstate, ErrCodeCapture, Kind, RepairError, Result};
use crate::guards::{self, Request};
use crate::guc_scope::{as_definer, with_gucs};
use crate::identity::{self, AsUser};
use crate::registry::Current;
use crate::subxact::in_subxact;
use crate::timeout::{self, Timer};
use crate::{gucs, lint, sqlparse};
use pg_repair_core::records::{RunRow, RunStatus, WaiverUsed};
use pgrx::prelude::*;
use serde_json::Value;
use std::cell::Cell;
use std::time::Instant;

/// The run_as target: repair.run_as, or the session user. A configured role that does not exist
/// refuses the run rather than falling back.
pub fn target_role() -> Result<(pg_sys::Oid, String, bool)> {
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
        crate::spi::one::<Vec<String>>(
            "SELECT COALESCE(pg_catalog.array_agg(n ORDER BY n), '{}') FROM pg_catalog.unnest($1::text[]) n \
              WHERE pg_catalog.to_regclass(n) IS NULL",
            &[names.to_vec().into()],
        )
    })
    .unwrap_or_default()
}

struct Outcome {
    status: RunStatus,
    error_code: Option<String>,
    error_message: Option<String>,
    executed: i32,
    missing_after: Vec<String>,
    /// Held until the run's record is written when the run ended in a cancel.
    _cancel: Option<crate::timeout::CancelHonoured>,
}

fn failed(code: &str, message: String, executed: i32, missing_after: Vec<String>) -> Outcome {
    let message: String = crate::redaction::scrub(&message)
        .chars()
        .take(1000)
        .collect();
    Outcome {
        status: RunStatus::Failed,
        error_code: Some(code.into()),
        error_message: Some(message),
        executed,
        missing_after,
        _cancel: None,
    }
}

/// What a run starts from: every guard passed, the schema known, requires-before checked.
pub struct Prepared {
    pub role: guards::Role,
    pub reason: String,
    pub current: Current,
    pub missing_before: Vec<String>,
    pub schema: crate::schema::Schema,
    /// The approval the run consumes (guard 8), when one was required.
    pub approval: Option<crate::approvals::Usable>,
}

/// Guards, the schema and requires-before, in one definer scope (settings pinned once); a
/// playbook of the other mode is refused with RP011 after the guards.
pub fn prepare(req: &Request, mode: pg_repair_core::Mode) -> Result<Prepared> {
    as_definer(|| -> Result<_> {
        let guards::Authorization {
            role,
            reason,
            current,
            approval,
        } = guards::authorize(req)?;
        // A schema that is no release's exactly is refused before any statement runs (appending
        // the run would refuse it too, after the statements).
        let schema = crate::schema::detect();
        match (mode, current.mode()) {
            (want, got) if want == got => {}
            (pg_repair_core::Mode::Transactional, _) => {
                return Err(RepairError::new(
                    Kind::OnlineSequence,
                    format!(
                        "playbook {} is an online playbook (mode: online): its statements run one at a time, each in its own transaction, which repair.execute cannot do",
                        current.id
                    ),
                )
                .detail("Nothing was executed.")
                .hint("Run it with pgrepair execute (same flags), or with repair.online_begin, its statements, and repair.online_finish."));
            }
            (pg_repair_core::Mode::Online, _) => {
                return Err(RepairError::new(
                    Kind::OnlineSequence,
                    format!(
                        "playbook {} is transactional: it runs in one transaction",
                        current.id
                    ),
                )
                .hint("Run it with repair.execute (or pgrepair execute)."));
            }
        }
        let missing_before = missing(current.requires_before());
        Ok(Prepared {
            role,
            reason,
            current,
            missing_before,
            schema,
            approval,
        })
    })
}

pub fn execute(req: &Request) -> Result<Value> {
    enforcement::refuse_nested("repair.execute")?;
    audit::require_read_committed("repair.execute")?;
    let Prepared {
        role,
        reason,
        current,
        missing_before,
        schema,
        approval,
    } = prepare(req, pg_repair_core::Mode::Transactional)?;
    let (target_oid, target_name, restricted) = target_role()?;
    let session_name = identity::session_user().1;
    let current_user = identity::caller_user();

    let started_at = clock::now();
    let clock = Instant::now();
    let requires_after = current.requires_after();
    let statements = statements_of(&current)?;
    let lock_ms = current
        .lock_timeout_ms()
        .unwrap_or_else(gucs::lock_timeout_ms);
    let stmt_ms = current
        .statement_timeout_ms()
        .unwrap_or_else(gucs::statement_timeout_ms);
    let today = clock::today();
    let waivers = current.waivers();

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
        let waived: Vec<pg_repair_core::Rule> = waivers
            .iter()
            .filter(|w| w.is_current(&today))
            .map(|w| w.rule)
            .collect();
        run_statements(&RunPlan {
            statements: &statements,
            target: target_oid,
            restricted,
            lock_ms,
            stmt_ms,
            requires_after,
            waived,
        })
    };

    let finished_at = clock::now();
    let duration_us = clock.elapsed().as_micros() as i64;
    let waivers_used = waivers_used(&current, &today);

    let row = RunRow {
        run_id: clock::uuid(),
        playbook_id: current.id.clone(),
        version: current.version,
        expected_hash: req.expected_hash.unwrap_or("").trim().to_ascii_lowercase(),
        actual_hash: current.hash.clone(),
        started_at,
        finished_at,
        session_user_name: session_name,
        current_user_name: current_user,
        executed_as: target_name,
        declared_role: role.as_str().to_string(),
        confirm_prod: req.confirm_prod,
        reason,
        request_id: req.request_id.map(str::to_string),
        status: outcome.status,
        error_code: outcome.error_code.clone(),
        error_message: outcome.error_message.clone(),
        missing_before,
        missing_after: outcome.missing_after.clone(),
        statements_total: statements.len() as i32,
        statements_executed: outcome.executed,
        duration_us,
        waivers: waivers_used,
        mode: None,
        online_run: None,
        batches: None,
        rows_affected: None,
        approval_id: approval.map(|a| a.approval_id),
    };
    let row_hash = as_definer(|| audit::append_row("runs", &row.playbook_id, &row, schema));
    drop(outcome);
    Ok(serde_json::to_value(row.result(&row_hash)).expect("a run result is JSON"))
}

/// The waivers the playbook's lint findings rely on today, as the run row records them.
pub fn waivers_used(current: &Current, today: &str) -> Vec<WaiverUsed> {
    let mut used: Vec<WaiverUsed> = lint::from_json(&current.lint)
        .iter()
        .filter_map(|f| lint::waived_by(f, current.waivers(), today))
        .map(|w| WaiverUsed {
            rule: w.rule.id().to_string(),
            until: w.until.clone(),
            because: w.because.clone(),
        })
        .collect();
    used.dedup();
    used
}

thread_local! {
    /// Each playbook's statements, split once per backend, by hash (the hash covers the SQL:
    /// registry::verified has checked the stored text against it).
    static SPLIT: std::cell::RefCell<std::collections::HashMap<String, std::rc::Rc<Vec<sqlparse::Statement>>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

pub fn statements_of(current: &Current) -> Result<std::rc::Rc<Vec<sqlparse::Statement>>> {
    if let Some(s) = SPLIT.with(|m| m.borrow().get(&current.hash).cloned()) {
        return Ok(s);
    }
    let statements = sqlparse::split(current.sql()).map_err(|e| {
        RepairError::new(
            Kind::LintRejected,
            format!("playbook {} does not parse: {}", current.id, e.message),
        )
    })?;
    let statements = std::rc::Rc::new(statements);
    SPLIT.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= 1000 {
            m.clear();
        }
        m.insert(current.hash.clone(), statements.clone());
    });
    Ok(statements)
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
pub fn fire_pending_deferred() {
    if deferrable_relations()
        .into_iter()
        // SAFETY: reads this backend's after-trigger queue for a relation OID; no side effects.
        .any(|rel| unsafe { pg_sys::AfterTriggerPendingOnRel(rel) })
    {
        crate::spi::run("SET CONSTRAINTS ALL IMMEDIATE", &[]);
    }
}

thread_local! {
    /// Relations with a deferrable trigger. A trigger is created, changed or dropped only with an
    /// invalidation of its relation's relcache entry (ours at the next command, other sessions'
    /// when we next take a lock), which clears this.
    static DEFERRABLE: std::cell::RefCell<Option<Vec<pg_sys::Oid>>> = const { std::cell::RefCell::new(None) };
}
static WATCHING_RELCACHE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

unsafe extern "C-unwind" fn forget_deferrable(_arg: pg_sys::Datum, _relid: pg_sys::Oid) {
    DEFERRABLE.with(|d| d.replace(None));
}

fn deferrable_relations() -> Vec<pg_sys::Oid> {
    if !WATCHING_RELCACHE.swap(true, std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: `forget_deferrable` is a plain function valid for the backend's life.
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(Some(forget_deferrable), pg_sys::Datum::from(0))
        };
    }
    if let Some(rels) = DEFERRABLE.with(|d| d.borrow().clone()) {
        return rels;
    }
    let rels: Vec<pg_sys::Oid> = crate::spi::query(
        "SELECT DISTINCT tgrelid FROM pg_catalog.pg_trigger WHERE tgdeferrable",
        &[],
        |rows| {
            let mut out = Vec::new();
            for r in rows {
                if let Some(oid) = r.get::<pg_sys::Oid>(1)? {
                    out.push(oid);
                }
            }
            Ok(out)
        },
    )
    .expect("deferrable triggers");
    DEFERRABLE.with(|d| d.replace(Some(rels.clone())));
    rels
}

/// Names of the cursors (portals) open in this session, e.g. a PL/pgSQL `OPEN` leaves one.
fn open_cursors() -> Vec<String> {
    crate::spi::query(
        "SELECT name FROM pg_catalog.pg_cursors ORDER BY name",
        &[],
        |rows| {
            let mut out = Vec::new();
            for r in rows {
                out.push(r.get::<String>(1)?.unwrap_or_default());
            }
            Ok(out)
        },
    )
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
        // SAFETY: GetOuterUserId reads the session's outer user id (set at login / SET ROLE).
        let _caller = AsUser::switch(unsafe { pg_sys::GetOuterUserId() }, false);
        fire_pending_deferred();
    }
    let cursors_before = open_cursors();
    timeout::reset();
    let capture = ErrCodeCapture::push();
    let res = in_subxact(|| {
        // Every setting the playbook changes, SET SESSION and set_config(…, false) included, is
        // undone when it ends: success here, failure by the subtransaction's abort.
        // SAFETY: opens a GUC nesting level, closed by AtEOXact_GUC below or by the subtransaction's
        // abort on ERROR.
        let nest = unsafe { pg_sys::NewGUCNestLevel() };
        {
            let _region = Region::playbook(plan.waived.clone());
            // Identity is switched inside the subtransaction: its abort restores the user id too.
            let _as = AsUser::switch(target, restricted);
            with_gucs(&[(c"lock_timeout", lock_timeout.as_str())], || {
                // One SPI connection for every statement (not one per statement).
                Spi::connect_mut(|client| {
                    for stmt in statements.iter() {
                        let timer = Timer::arm(stmt_ms);
                        if let Err(e) = client.update(stmt.sql.as_str(), None, &[]) {
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
                });
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
        // SAFETY: closes the GUC level opened at the start of this closure (`nest`); every inner level
        // (with_gucs, SET in the playbook's functions) has been closed by the statements' ends.
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
            status: RunStatus::Success,
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
                format!(
                    "{failing}: {} (rolled back)",
                    crate::errors::caught_message_and_detail(&e)
                )
            };
            Outcome {
                _cancel: cancel,
                ..failed(&code, message, n, vec![])
            }
        }
    }
}
