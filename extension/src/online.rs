//! Online runs: `repair.online_begin` … `online_finish` / `online_abort`.
//!
//! An online playbook runs one top-level statement at a time, each in its own transaction, sent
//! by the client (`pgrepair execute`), because CREATE INDEX CONCURRENTLY, REINDEX CONCURRENTLY and
//! batched backfills cannot run inside one function or transaction. Between begin and
//! finish/abort the session is *armed*: the hooks (hooks.rs) ask [`admit_top_level`] about every
//! top-level statement and every function called outside one, and admit only the playbook's next
//! statement (exactly as registered; a batch statement again until it affects 0 rows) or one call
//! of the control functions. Everything else is refused with RP011 ONLINE_SEQUENCE before it runs.
//!
//! State changes follow the transactions that carry them: arming takes effect when begin's
//! transaction commits, a statement counts when its own transaction commits, disarming when
//! finish's or abort's commits; an abort undoes what its transaction would have done (a failed
//! statement fails the run). The playbook's lock is a session lock held from begin to the end of
//! the run (or of the session), so one playbook's runs never interleave while other playbooks
//! never wait.

use crate::audit;
use crate::clock;
use crate::enforcement;
use crate::errors::{Kind, RepairError, Result};
use crate::execute::{missing, statements_of, target_role, waivers_used};
use crate::guards::Request;
use crate::guc_scope::{self, as_definer};
use crate::identity;
use crate::lock;
use crate::sqlparse::Statement;
use pg_repair_core::online::same_statement;
use pg_repair_core::records::{
    OnlineStart, OnlineStatement, RunResult, RunRow, RunStatus, WaiverUsed,
};
use pg_repair_core::time::Utc;
use pg_repair_core::{Mode, Rule};
use pgrx::pg_sys;
use std::cell::RefCell;
use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// One statement of the run, with whether it is a batch statement.
#[derive(Clone)]
struct Step {
    n: usize,
    line: u32,
    sql: String,
    batch: bool,
}

/// What is running right now in the armed session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Window {
    /// Nothing admitted: the next top-level statement is judged.
    Closed,
    /// An admitted playbook statement (index into steps) is running; for a plannable statement,
    /// the QueryDesc its executor runs.
    Statement(usize, *mut pg_sys::QueryDesc),
    /// An admitted call of online_finish / online_abort (its QueryDesc once the executor starts).
    Control(*mut pg_sys::QueryDesc),
    /// The planner is planning an admitted statement or control call.
    Planning,
}

/// A statement that ended without error and counts once its transaction commits.
#[derive(Clone, Copy)]
struct Done {
    index: usize,
    rows: u64,
}

struct Armed {
    run_id: String,
    playbook: String,
    version: i32,
    hash: String,
    expected_hash: String,
    reason: String,
    request_id: Option<String>,
    confirm_prod: bool,
    declared_role: String,
    session_user_name: String,
    current_user_name: String,
    executed_as: String,
    target: pg_sys::Oid,
    restricted: bool,
    steps: Vec<Step>,
    waived: Vec<Rule>,
    waivers_used: Vec<WaiverUsed>,
    /// The approval the run consumed (named by both its rows).
    approval_id: Option<String>,
    missing_before: Vec<String>,
    requires_after: Vec<String>,
    started_at: i64,
    clock: Instant,
    /// Index of the next statement to admit.
    next: usize,
    executed: i32,
    batches: i32,
    rows: i64,
    /// (SQLSTATE, message) of the statement error that failed the run.
    failed: Option<(String, String)>,
    /// The settings begin changed for the session, with their values before.
    saved: Vec<(&'static CStr, String)>,
    window: Window,
    /// The user and security context to restore when the running statement ends.
    outer_user: Option<(pg_sys::Oid, c_int)>,
    /// The GUC nesting level opened for the running statement: every setting it changes (SET
    /// inside a DO block, set_config) is undone when it ends, as repair.execute undoes a run's.
    guc_nest: Option<c_int>,
    done: Option<Done>,
    /// finish or abort appended the closing row: disarm when its transaction commits.
    closing: bool,
}

thread_local! {
    /// The armed run of this session.
    static ARMED: RefCell<Option<Armed>> = const { RefCell::new(None) };
    /// A run begun in the current transaction: armed when it commits, forgotten if it aborts.
    static BEGUN: RefCell<Option<Armed>> = const { RefCell::new(None) };
    /// (SQLSTATE, message) of the last ERROR raised inside the running statement.
    static LAST_ERROR: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// One flag the hooks read on every statement: is this session armed (or arming)?
static ARMED_FLAG: AtomicBool = AtomicBool::new(false);
static CALLBACK: AtomicBool = AtomicBool::new(false);
/// How many hook frames of admitted work (its planning, executor calls, utility call) are on
/// the stack. Work that starts while none is, is top-level and judged, even if admitted work is
/// still open (a suspended portal between two protocol messages, say): nested work of the
/// admitted statement always runs inside one of its frames.
static FRAMES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

pub fn enter_frame() {
    FRAMES.fetch_add(1, Ordering::Relaxed);
}

pub fn leave_frame() {
    let _ = FRAMES.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
}

/// Inside a frame of admitted work: nested work is not judged here (runtime enforcement
/// applies to it).
pub fn in_frames() -> bool {
    FRAMES.load(Ordering::Relaxed) > 0
}

pub fn armed() -> bool {
    ARMED_FLAG.load(Ordering::Relaxed)
}

fn sync_flag() {
    let on = ARMED.with(|a| a.borrow().is_some());
    ARMED_FLAG.store(on, Ordering::Relaxed);
}

fn sequence_error(message: impl AsRef<str>) -> RepairError {
    RepairError::new(Kind::OnlineSequence, message)
}

fn short(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::errors::bounded(&one_line, 120)
}

/// Where a body's `-- batch` lines fall: a statement is a batch statement when one stands
/// between the previous statement's last line and its first; any other marker (inside a
/// statement, after the last one) marks nothing.
struct Markers {
    /// Per statement, in order.
    batch: Vec<bool>,
    /// Body lines of the markers that mark no statement.
    stray: Vec<u32>,
}

fn markers(statements: &[Statement], sql: &str) -> Markers {
    let lines = pg_repair_core::batch_marker_lines(sql);
    let mut used = vec![false; lines.len()];
    let mut prev_end = 0u32;
    let batch = statements
        .iter()
        .map(|s| {
            let mut marked = false;
            for (i, m) in lines.iter().enumerate() {
                if *m > prev_end && *m < s.line {
                    used[i] = true;
                    marked = true;
                }
            }
            prev_end = s.line + s.sql.matches('\n').count() as u32;
            marked
        })
        .collect();
    let stray = lines
        .into_iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|(m, _)| m)
        .collect();
    Markers { batch, stray }
}

/// The statements of an online playbook with their batch flags, lines in file coordinates.
fn steps_of(statements: &[Statement], sql: &str, body_line: u32) -> Vec<Step> {
    statements
        .iter()
        .zip(markers(statements, sql).batch)
        .map(|(s, batch)| Step {
            n: s.n,
            line: s.line + body_line - 1,
            sql: s.sql.clone(),
            batch,
        })
        .collect()
}

/// Body lines of `-- batch` markers that mark no statement, for lint.
pub fn stray_markers(statements: &[Statement], sql: &str) -> Vec<u32> {
    markers(statements, sql).stray
}

/// Batch statements (by number) of a body.
pub fn batch_statements(statements: &[Statement], sql: &str) -> Vec<usize> {
    statements
        .iter()
        .zip(markers(statements, sql).batch)
        .filter(|(_, batch)| *batch)
        .map(|(s, _)| s.n)
        .collect()
}

fn register_callback() {
    if !CALLBACK.swap(true, Ordering::Relaxed) {
        // SAFETY: `on_xact` is a plain function valid for the backend's life.
        unsafe { pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut()) };
    }
}

/// repair.online_begin.
pub fn begin(req: &Request) -> Result<serde_json::Value> {
    enforcement::refuse_nested("repair.online_begin")?;
    register_callback();
    if let Some(id) = ARMED.with(|a| a.borrow().as_ref().map(|a| a.run_id.clone())) {
        return Err(
            sequence_error(format!("this session already runs online run {id}"))
                .hint("Finish it (repair.online_finish) or abort it (repair.online_abort) first."),
        );
    }
    // SAFETY: reads transaction state of this backend.
    if unsafe { pg_sys::IsTransactionBlock() } || BEGUN.with(|b| b.borrow().is_some()) {
        return Err(RepairError::new(
            Kind::InTransactionBlock,
            "repair.online_begin cannot run inside a transaction block",
        )
        .detail("Every statement of an online run is its own transaction (CREATE INDEX CONCURRENTLY cannot run in one).")
        .hint("Call it alone, in autocommit mode (no BEGIN, one statement per query)."));
    }
    audit::require_read_committed("repair.online_begin")?;
    let crate::execute::Prepared {
        role,
        reason,
        current,
        missing_before,
        schema,
        approval,
    } = crate::execute::prepare(req, Mode::Online)?;
    if !schema.has_0_3_0() {
        return Err(RepairError::new(
            Kind::SchemaMismatch,
            "online runs need the pg_repair schema of this release",
        )
        .hint("Run ALTER EXTENSION pg_repair UPDATE."));
    }
    let (target, executed_as, restricted) = target_role()?;
    let statements = statements_of(&current)?;
    let playbook = current.playbook().expect("a playbook");
    let steps = steps_of(&statements, &playbook.sql, playbook.body_line);
    let lock_ms = current
        .lock_timeout_ms()
        .unwrap_or_else(crate::gucs::lock_timeout_ms);
    let stmt_ms = current
        .statement_timeout_ms()
        .unwrap_or_else(crate::gucs::statement_timeout_ms);
    let pause_ms = playbook.batch_pause_ms.unwrap_or(0);
    let today = clock::today();
    let waived: Vec<Rule> = current
        .waivers()
        .iter()
        .filter(|w| w.is_current(&today))
        .map(|w| w.rule)
        .collect();
    let run_id = clock::uuid();
    let started_at = clock::now();
    let mut row = RunRow {
        run_id: run_id.clone(),
        playbook_id: current.id.clone(),
        version: current.version,
        expected_hash: req.expected_hash.unwrap_or("").trim().to_ascii_lowercase(),
        actual_hash: current.hash.clone(),
        started_at,
        finished_at: started_at,
        session_user_name: identity::session_user().1,
        current_user_name: identity::caller_user(),
        executed_as: executed_as.clone(),
        declared_role: role.as_str().to_string(),
        confirm_prod: req.confirm_prod,
        reason: reason.clone(),
        request_id: req.request_id.map(str::to_string),
        status: RunStatus::Started,
        error_code: None,
        error_message: None,
        missing_before: missing_before.clone(),
        missing_after: vec![],
        statements_total: steps.len() as i32,
        statements_executed: 0,
        duration_us: 0,
        waivers: waivers_used(&current, &today),
        mode: Some("online".into()),
        online_run: Some(run_id.clone()),
        batches: None,
        rows_affected: None,
        approval_id: approval.map(|a| a.approval_id),
    };
    if !missing_before.is_empty() {
        // Nothing ran: one closed FAILED row, and the session is not armed.
        let (code, name) = Kind::RequiresBeforeMissing.code_and_name();
        row.status = RunStatus::Failed;
        row.error_code = Some(code.into());
        row.error_message = Some(
            format!(
                "{name}: {} missing before the run: {}",
                missing_before.len(),
                missing_before.join(", ")
            )
            .chars()
            .take(1000)
            .collect(),
        );
        row.batches = Some(0);
        row.rows_affected = Some(0);
        let row_hash = as_definer(|| audit::append_row("runs", &row.playbook_id, &row, schema));
        return Ok(serde_json::to_value(row.result(&row_hash)).expect("JSON"));
    }
    let incomplete = as_definer(|| incomplete_runs(&current.id));
    let row_hash = as_definer(|| audit::append_row("runs", &row.playbook_id, &row, schema));
    // The lock outlives this transaction: held until the run ends (or the session does).
    lock::hold_for_session(&current.id);
    let mut saved = Vec::new();
    for (name, ms) in [(c"lock_timeout", lock_ms), (c"statement_timeout", stmt_ms)] {
        saved.push((name, guc_scope::current(name).unwrap_or_default()));
        guc_scope::set_for_session(name, &format!("{ms}ms"));
    }
    let start = OnlineStart {
        run_id: run_id.clone(),
        status: RunStatus::Started,
        playbook: current.id.clone(),
        version: current.version,
        hash: current.hash.clone(),
        declared_role: role.as_str().to_string(),
        executed_as: executed_as.clone(),
        lock_timeout_ms: lock_ms,
        statement_timeout_ms: stmt_ms,
        batch_pause_ms: pause_ms,
        statements: steps
            .iter()
            .map(|s| OnlineStatement {
                n: s.n as i32,
                line: s.line as i32,
                sql: s.sql.clone(),
                batch: s.batch,
            })
            .collect(),
        incomplete_runs: incomplete,
        started_at: Utc::from_pg(started_at).text(),
        row_hash,
    };
    BEGUN.with(|b| {
        *b.borrow_mut() = Some(Armed {
            run_id,
            playbook: current.id.clone(),
            version: current.version,
            hash: current.hash.clone(),
            expected_hash: row.expected_hash.clone(),
            reason,
            request_id: row.request_id.clone(),
            confirm_prod: req.confirm_prod,
            declared_role: role.as_str().to_string(),
            session_user_name: row.session_user_name.clone(),
            current_user_name: row.current_user_name.clone(),
            executed_as,
            target,
            restricted,
            steps,
            waived,
            waivers_used: row.waivers.clone(),
            approval_id: row.approval_id.clone(),
            missing_before,
            requires_after: current.requires_after().to_vec(),
            started_at,
            clock: Instant::now(),
            next: 0,
            executed: 0,
            batches: 0,
            rows: 0,
            failed: None,
            saved,
            window: Window::Closed,
            outer_user: None,
            guc_nest: None,
            done: None,
            closing: false,
        })
    });
    Ok(serde_json::to_value(start).expect("JSON"))
}

/// STARTED rows of `id` that no closing row names: runs whose session ended first.
fn incomplete_runs(id: &str) -> Vec<String> {
    crate::spi::rows(
        "SELECT r.run_id::text FROM repair.runs r \
          WHERE r.playbook_id = $1 AND r.status = 'STARTED' \
            AND NOT EXISTS (SELECT 1 FROM repair.runs c \
                             WHERE c.playbook_id = r.playbook_id AND c.online_run = r.run_id \
                               AND c.status <> 'STARTED') \
          ORDER BY r.seq",
        &[id.into()],
        |r| r.get::<String>(1),
    )
    .into_iter()
    .flatten()
    .collect()
}

/// How a run ends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Finish,
    Abort,
}

/// repair.online_finish / repair.online_abort.
pub fn end(run_id: &str, ending: Ending, reason: Option<&str>) -> Result<serde_json::Value> {
    let what = match ending {
        Ending::Finish => "repair.online_finish",
        Ending::Abort => "repair.online_abort",
    };
    enforcement::refuse_nested(what)?;
    let run_id = run_id.trim().to_ascii_lowercase();
    let plan = ARMED.with(|a| -> Result<_> {
        let a = a.borrow();
        let Some(a) = a.as_ref().filter(|a| a.run_id == run_id) else {
            return Err(sequence_error(match a.as_ref() {
                Some(other) => format!(
                    "{run_id} is not this session's online run ({} is)",
                    other.run_id
                ),
                None => format!("this session has no online run {run_id}"),
            })
            .detail("An online run is finished or aborted by the session that began it.")
            .hint("A run whose session ended stays INCOMPLETE in repair.runs; run the playbook again."));
        };
        if a.closing {
            return Err(sequence_error(format!(
                "online run {run_id} is already closing"
            )));
        }
        if ending == Ending::Finish && a.failed.is_none() && a.next < a.steps.len() {
            let s = &a.steps[a.next];
            return Err(sequence_error(format!(
                "online run {run_id} has {} statement(s) left; next is statement {} (line {})",
                a.steps.len() - a.next,
                s.n,
                s.line
            ))
            .hint("Send the remaining statements, or end the run with repair.online_abort(run_id, reason)."));
        }
        Ok((a.playbook.clone(), a.requires_after.clone(), a.failed.is_some()))
    })?;
    let (playbook, requires_after, failed) = plan;
    audit::require_read_committed(what)?;
    let schema = as_definer(crate::schema::detect);
    // Our session lock makes this immediate; taking it gives the append a fresh snapshot.
    as_definer(|| lock::lock_playbook(&playbook))?;
    let missing_after = if ending == Ending::Finish && !failed {
        missing(&requires_after)
    } else {
        vec![]
    };
    let finished_at = clock::now();
    let row = ARMED.with(|a| {
        let a = a.borrow();
        let a = a.as_ref().expect("armed");
        let (status, error_code, error_message) = match (ending, &a.failed) {
            (Ending::Abort, Some((code, msg))) => (
                RunStatus::Aborted,
                Some(code.clone()),
                Some(format!("{msg}; aborted: {}", reason.unwrap_or(""))),
            ),
            (Ending::Abort, None) => (
                RunStatus::Aborted,
                None,
                Some(format!(
                    "aborted after {} of {} statements: {}",
                    a.executed,
                    a.steps.len(),
                    reason.unwrap_or("")
                )),
            ),
            (Ending::Finish, Some((code, msg))) => {
                (RunStatus::Failed, Some(code.clone()), Some(msg.clone()))
            }
            (Ending::Finish, None) if !missing_after.is_empty() => {
                let (code, name) = Kind::RequiresAfterMissing.code_and_name();
                (
                    RunStatus::Failed,
                    Some(code.to_string()),
                    Some(format!(
                        "{name}: {} missing after the run: {}",
                        missing_after.len(),
                        missing_after.join(", ")
                    )),
                )
            }
            (Ending::Finish, None) => (RunStatus::Success, None, None),
        };
        RunRow {
            run_id: clock::uuid(),
            playbook_id: a.playbook.clone(),
            version: a.version,
            expected_hash: a.expected_hash.clone(),
            actual_hash: a.hash.clone(),
            started_at: a.started_at,
            finished_at,
            session_user_name: a.session_user_name.clone(),
            current_user_name: a.current_user_name.clone(),
            executed_as: a.executed_as.clone(),
            declared_role: a.declared_role.clone(),
            confirm_prod: a.confirm_prod,
            reason: a.reason.clone(),
            request_id: a.request_id.clone(),
            status,
            error_code,
            error_message: error_message
                .map(|m| crate::redaction::scrub(&m).chars().take(1000).collect()),
            missing_before: a.missing_before.clone(),
            missing_after: missing_after.clone(),
            statements_total: a.steps.len() as i32,
            statements_executed: a.executed,
            duration_us: a.clock.elapsed().as_micros() as i64,
            waivers: a.waivers_used.clone(),
            mode: Some("online".into()),
            online_run: Some(a.run_id.clone()),
            batches: Some(a.batches),
            rows_affected: Some(a.rows),
            approval_id: a.approval_id.clone(),
        }
    });
    let row_hash = as_definer(|| audit::append_row("runs", &row.playbook_id, &row, schema));
    // The session's settings as they were before begin (undone if this transaction aborts).
    let saved = ARMED.with(|a| {
        a.borrow()
            .as_ref()
            .map(|a| a.saved.clone())
            .unwrap_or_default()
    });
    for (name, value) in saved {
        guc_scope::set_for_session(name, &value);
    }
    ARMED.with(|a| {
        if let Some(a) = a.borrow_mut().as_mut() {
            a.closing = true;
        }
    });
    let result: RunResult = row.result(&row_hash);
    Ok(serde_json::to_value(result).expect("JSON"))
}

/// What an armed session may do with a piece of top-level work.
pub enum Admit {
    /// Not judged: not armed, or nested inside admitted work.
    Pass,
    /// The playbook's next statement (index into the run's statements).
    Statement(usize),
    /// A call of online_finish / online_abort.
    Control,
    Refuse(RepairError),
}

/// Kinds of top-level work the hooks ask about.
pub enum Asked<'a> {
    /// A plannable statement (about to be planned or started) or a utility statement: its text,
    /// and whether its tree is exactly one control call.
    Statement { text: &'a str, control_call: bool },
    /// A function called outside any admitted work (a fast-path function call, say).
    Function,
}

/// Judges one top-level piece of work of an armed session (a planned statement is judged again
/// when its executor starts: a plan prepared before the run never passes unjudged).
pub fn admit_top_level(asked: Asked<'_>) -> Admit {
    ARMED.with(|a| {
        let a = a.borrow();
        let Some(a) = a.as_ref() else {
            return Admit::Pass;
        };
        if a.window != Window::Closed {
            return Admit::Refuse(
                sequence_error(format!(
                    "online run {}: the previous statement has not ended; send one statement at a time and wait for its result",
                    a.run_id
                ))
                .detail("Nothing was executed."),
            );
        }
        let refuse = |m: String| {
            Admit::Refuse(
                sequence_error(m)
                    .detail(format!(
                        "This session runs online playbook {} (run {}): it may send only the playbook's next statement, exactly as registered and alone, or call repair.online_finish / repair.online_abort. Nothing was executed.",
                        a.playbook, a.run_id
                    ))
                    .hint("Use another session for other work; end the run with repair.online_abort(run_id, reason)."),
            )
        };
        let text = match asked {
            Asked::Function => {
                return refuse("a function call outside the online run's statements is refused".into())
            }
            Asked::Statement { control_call: true, .. } => return Admit::Control,
            Asked::Statement { text, .. } => text,
        };
        // SAFETY: reads transaction state of this backend.
        if unsafe { pg_sys::IsTransactionBlock() } || a.done.is_some() {
            return refuse("an online run's statement must be sent alone, in its own transaction (no BEGIN, one statement per query)".into());
        }
        if a.closing {
            return refuse(format!("online run {} is closing", a.run_id));
        }
        if let Some((code, _)) = &a.failed {
            return refuse(format!(
                "online run {} failed (SQLSTATE {code}); only repair.online_finish or repair.online_abort may follow",
                a.run_id
            ));
        }
        let Some(step) = a.steps.get(a.next) else {
            return refuse(format!(
                "every statement of online run {} has run; call repair.online_finish",
                a.run_id
            ));
        };
        if same_statement(text, &step.sql) {
            Admit::Statement(a.next)
        } else {
            let expected = if step.batch && a.batches > 0 {
                format!("batch statement {} again", step.n)
            } else {
                format!("statement {} (line {})", step.n, step.line)
            };
            refuse(format!(
                "expected {expected}: {}; got: {}",
                short(&step.sql),
                short(text)
            ))
        }
    })
}

/// Admitted work is being planned: functions the planner evaluates are let through.
pub fn planning_started() {
    ARMED.with(|a| {
        if let Some(a) = a.borrow_mut().as_mut() {
            a.window = Window::Planning;
        }
    });
}

/// The admitted statement `index` starts: the run's runtime enforcement, its user.
pub fn statement_started(index: usize, query_desc: *mut pg_sys::QueryDesc) {
    let (target, restricted, waived) = ARMED.with(|a| {
        let mut a = a.borrow_mut();
        let a = a.as_mut().expect("armed");
        a.window = Window::Statement(index, query_desc);
        a.done = None;
        (a.target, a.restricted, a.waived.clone())
    });
    LAST_ERROR.with(|e| e.replace(None));
    crate::timeout::reset();
    // Preparing the region may run our own catalog queries (and the functions they call): they
    // are part of the admitted work, not top-level work of the session.
    enter_frame();
    enforcement::enter_playbook(waived);
    leave_frame();
    let outer = identity::switch_for_statement(target, restricted);
    // SAFETY: opens a GUC nesting level, closed when the statement ends (window_ended) or by the
    // transaction's end (commit or abort close every level).
    let nest = unsafe { pg_sys::NewGUCNestLevel() };
    ARMED.with(|a| {
        let mut a = a.borrow_mut();
        let a = a.as_mut().expect("armed");
        a.outer_user = Some(outer);
        a.guc_nest = Some(nest);
    });
}

/// The control call's executor starts.
pub fn control_started(query_desc: *mut pg_sys::QueryDesc) {
    ARMED.with(|a| {
        if let Some(a) = a.borrow_mut().as_mut() {
            a.window = Window::Control(query_desc);
        }
    });
}

/// Planning of the admitted work is over (its executor has not started yet).
pub fn planning_done() {
    ARMED.with(|a| {
        if let Some(a) = a.borrow_mut().as_mut() {
            if a.window == Window::Planning {
                a.window = Window::Closed;
            }
        }
    });
}

/// Whether `query_desc` is the admitted statement's or control call's executor.
pub fn is_window_query(query_desc: *mut pg_sys::QueryDesc) -> bool {
    ARMED.with(|a| {
        a.borrow().as_ref().is_some_and(|a| match a.window {
            Window::Statement(_, q) | Window::Control(q) => q == query_desc && !q.is_null(),
            _ => false,
        })
    })
}

/// The admitted statement (or control call) ended without error; `rows` it affected.
pub fn window_ended(rows: u64) {
    let in_statement = ARMED.with(|a| {
        a.borrow()
            .as_ref()
            .is_some_and(|a| matches!(a.window, Window::Statement(..)))
    });
    if in_statement {
        // Deferred trigger work the statement queued runs now, still as its user and under the
        // runtime enforcement, as repair.execute does; an error in it fails the statement.
        let _capture = crate::errors::ContextEntry::push(capture_error);
        enter_frame();
        crate::execute::fire_pending_deferred();
        leave_frame();
    }
    let statement = ARMED.with(|a| {
        let mut a = a.borrow_mut();
        let a = a.as_mut()?;
        let w = std::mem::replace(&mut a.window, Window::Closed);
        match w {
            Window::Statement(index, _) => {
                a.done = Some(Done { index, rows });
                // An error the statement caught is not its error.
                LAST_ERROR.with(|e| e.replace(None));
                Some((a.outer_user.take(), a.guc_nest.take()))
            }
            _ => None,
        }
    });
    if let Some((outer, nest)) = statement {
        if let Some(nest) = nest {
            // SAFETY: closes the level statement_started opened; levels the statement opened
            // inside it have been closed by their own ends. A statement that committed inside
            // (CREATE INDEX CONCURRENTLY, a procedure's COMMIT) already had it closed by that
            // commit: then nothing is at this level and only the counter is set back.
            unsafe { pg_sys::AtEOXact_GUC(false, nest) };
        }
        if let Some(outer) = outer {
            identity::restore(outer);
        }
        enforcement::leave_playbook();
        // A refusal the statement's own SQL caught still fails the run.
        if let Some(message) = enforcement::violation() {
            ARMED.with(|a| {
                if let Some(a) = a.borrow_mut().as_mut() {
                    a.done = None;
                    a.failed.get_or_insert(("42501".into(), message));
                }
            });
        }
    }
}

/// The error context callback pushed around admitted statements: remembers the last ERROR
/// (SQLSTATE and message) raised inside, which becomes the run's error if the statement fails.
///
/// # Safety
/// Called by PostgreSQL while it builds an error report.
pub unsafe extern "C-unwind" fn capture_error(_arg: *mut c_void) {
    // SAFETY: inside an error report (the callback's contract) the current ErrorData can be
    // copied; the copy is made in TopMemoryContext (not ErrorContext, which the report owns) and
    // freed before returning; strings are read while the copy lives.
    unsafe {
        let old = pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
        let data = pg_sys::CopyErrorData();
        pg_sys::MemoryContextSwitchTo(old);
        if data.is_null() {
            return;
        }
        if (*data).elevel >= pg_sys::PGERROR as c_int {
            let code = crate::errors::unpack_sqlstate((*data).sqlerrcode);
            let text = |p: *const std::ffi::c_char| {
                (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
            };
            // Scrubbed each on its own (repair.redact), before they are joined.
            let mut message = crate::redaction::scrub(&text((*data).message).unwrap_or_default());
            if let Some(d) = text((*data).detail) {
                message = format!("{message} ({})", crate::redaction::scrub(&d));
            }
            LAST_ERROR.with(|e| {
                if let Ok(mut e) = e.try_borrow_mut() {
                    *e = Some((code, message));
                }
            });
        }
        pg_sys::FreeErrorData(data);
    }
}

/// Transaction ends: arming, counting and disarming take effect on commit; an abort inside an
/// admitted statement fails the run.
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_COMMIT => {
            if let Some(b) = BEGUN.with(|b| b.borrow_mut().take()) {
                ARMED.with(|a| *a.borrow_mut() = Some(b));
            }
            let release = ARMED.with(|a| {
                let mut a = a.borrow_mut();
                let armed = a.as_mut()?;
                match armed.window {
                    // CREATE INDEX CONCURRENTLY commits inside its (utility) statement: not the
                    // end of it.
                    Window::Statement(_, q) if q.is_null() => return None,
                    // A plannable statement ends (ExecutorEnd) before its transaction commits;
                    // if it somehow did not, the run fails rather than leave the window open.
                    Window::Statement(index, _) => {
                        armed.window = Window::Closed;
                        armed.done = None;
                        let n = armed.steps[index].n;
                        armed.failed.get_or_insert((
                            "XX000".into(),
                            format!(
                                "statement {n}: its transaction ended before the statement did"
                            ),
                        ));
                        return Some(Err(armed.outer_user.take()));
                    }
                    _ => armed.window = Window::Closed,
                }
                if let Some(Done { index, rows }) = armed.done.take() {
                    let batch = armed.steps[index].batch;
                    armed.rows += rows as i64;
                    if batch {
                        armed.batches += 1;
                    }
                    if !batch || rows == 0 {
                        armed.next = index + 1;
                        armed.executed += 1;
                    }
                }
                if armed.closing {
                    return a.take().map(|a| Ok(a.playbook));
                }
                None
            });
            match release {
                Some(Ok(playbook)) => lock::release_session(&playbook),
                Some(Err(outer)) => {
                    if let Some(outer) = outer {
                        identity::restore(outer);
                    }
                    enforcement::leave_playbook();
                }
                None => {}
            }
            sync_flag();
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT => {
            // The ERROR longjmp'd past the frames that would have counted themselves out.
            FRAMES.store(0, Ordering::Relaxed);
            if let Some(b) = BEGUN.with(|b| b.borrow_mut().take()) {
                lock::release_session(&b.playbook);
            }
            let restore = ARMED.with(|a| {
                let mut a = a.borrow_mut();
                let armed = a.as_mut()?;
                armed.closing = false;
                let w = std::mem::replace(&mut armed.window, Window::Closed);
                let in_statement = matches!(w, Window::Statement(..)) || armed.done.is_some();
                let index = match w {
                    Window::Statement(i, _) => Some(i),
                    _ => armed.done.map(|d| d.index),
                };
                armed.done = None;
                if in_statement {
                    let n = index.map(|i| armed.steps[i].n).unwrap_or(0);
                    let (code, message) = LAST_ERROR
                        .with(|e| e.borrow_mut().take())
                        .unwrap_or_else(|| {
                            (
                                "XX000".into(),
                                "the statement's transaction was rolled back".into(),
                            )
                        });
                    armed
                        .failed
                        .get_or_insert((code, format!("statement {n}: {message}")));
                }
                armed.guc_nest = None;
                Some(armed.outer_user.take())
            });
            if let Some(outer) = restore {
                if let Some(outer) = outer {
                    identity::restore(outer);
                }
                enforcement::leave_playbook();
            }
            sync_flag();
        }
        _ => {}
    }
}
