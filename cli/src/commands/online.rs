//! `pgrepair execute` of an online playbook (`-- mode: online`): repair.execute refused it with
//! RP011, so the run goes through the online protocol with the same arguments:
//! `repair.online_begin` (guards, requires-before, the playbook's lock, a STARTED row), then each
//! statement alone in autocommit, a batch statement until it affects no row, then
//! `repair.online_finish`, or `repair.online_abort` after a Ctrl-C. The decisions are in
//! `driver.rs`; this file talks to PostgreSQL and prints.
//!
//! Exit codes: 0 SUCCESS; 1 FAILED, ABORTED (Ctrl-C) or refused; 2 the connection was lost (the
//! run stays INCOMPLETE in the audit).

mod driver;

use postgres::error::Severity;
use postgres::{Client, SimpleQueryMessage};
use serde_json::Value;

use crate::cancel;
use crate::cli::ExecuteArgs;
use crate::commands::execute::{self, BackupTaken};
use crate::commands::{json_value, Ctx};
use crate::error::CliError;
use crate::exit;
use crate::output::{self, human};
use crate::progress::Display;
use driver::{Outcome, Session, StepError};
use pg_repair_core::records::{OnlineStart, RunResult, RunStatus};

pub use driver::parse_result;

const BEGIN_SQL: &str = "SELECT repair.online_begin($1, $2, $3, $4, $5)";

pub fn run(
    ctx: &Ctx,
    args: &ExecuteArgs,
    client: &mut Client,
    backup: &BackupTaken,
) -> Result<i32, CliError> {
    // From here on Ctrl-C never exits on its own: a started run must be aborted, not left behind.
    let _scope = cancel::online_scope();
    // online_begin may wait for the playbook's lock (another run of it): Ctrl-C cancels it.
    if !cancel::arm_statement(client) {
        return Err(backup.note(CliError::Cancelled("nothing was executed".into())));
    }
    let begun = json_value(
        client,
        BEGIN_SQL,
        &[
            &args.id,
            &args.hash,
            &args.reason,
            &args.confirm_prod,
            &args.request_id,
        ],
    );
    cancel::disarm_statement();
    let begun = match begun {
        Ok(v) => v,
        Err(e) => return Err(backup.note(begin_error(e, client.is_closed(), &args.id))),
    };

    if begun.get("status").and_then(Value::as_str) != Some(RunStatus::Started.as_str()) {
        // not started (requires-before objects missing): a FAILED result, nothing ran
        let run = parse_result(&begun)?;
        return Ok(report(
            ctx,
            begun,
            &run,
            backup,
            "nothing was executed; the run is recorded in the audit trail",
        ));
    }
    let start: OnlineStart = serde_json::from_value(begun).map_err(|e| {
        CliError::Failed(format!(
            "the server started an online run this pgrepair does not understand ({e}); it \
             stays INCOMPLETE in the audit when this session ends"
        ))
    })?;
    announce(&start);

    let mut display = Display::new();
    let outcome = driver::drive(&start, &mut PgSession { client }, &mut display);
    drop(display); // the status line goes before the result is printed
    match outcome.map_err(|e| backup.note(e))? {
        Outcome::Lost { reason } => Err(CliError::ConnectionLost {
            message: lost_message(&start.run_id),
            cause: reason,
        }),
        Outcome::Closed(c) => {
            let code = report(ctx, c.raw, &c.run, backup, &note(&c.run, c.aborted));
            if !ctx.json && c.too_late {
                errln!("pgrepair: Ctrl-C came too late: the run had already completed");
            }
            Ok(code)
        }
    }
}

/// The one line for a connection lost in the middle of a run.
fn lost_message(run_id: &str) -> String {
    format!(
        "connection lost during online run {run_id}: the run stays INCOMPLETE in the audit; the \
         playbook is idempotent, run it again"
    )
}

/// online_begin failed: a guard refusal (as repair.execute's), a Ctrl-C while it waited for the
/// playbook's lock, or a lost connection (the run may have started).
fn begin_error(e: CliError, closed: bool, id: &str) -> CliError {
    if cancel::requested() && e.is_query_canceled() {
        CliError::Cancelled("nothing was executed".into())
    } else if closed {
        CliError::ConnectionLost {
            message: format!(
                "connection lost while starting the online run of {}: if it started, it stays \
                 INCOMPLETE in the audit; the playbook is idempotent, run it again",
                human(id)
            ),
            cause: e.human_lines().join(" "),
        }
    } else {
        e
    }
}

/// First stderr lines: which run, and the earlier runs that never finished.
fn announce(start: &OnlineStart) {
    let h = |t: &str| human(t).into_owned();
    let pause = if start.batch_pause_ms > 0 {
        format!(", {} ms between batches", start.batch_pause_ms)
    } else {
        String::new()
    };
    let n = start.statements.len();
    errln!(
        "pgrepair: online run {} of {} v{}: {n} statement{}{pause}",
        h(&start.run_id),
        h(&start.playbook),
        start.version,
        if n == 1 { "" } else { "s" }
    );
    if !start.incomplete_runs.is_empty() {
        errln!(
            "pgrepair: warning: earlier online runs of {} never finished (their session ended): \
             {}; they stay INCOMPLETE in the audit, this run proceeds",
            h(&start.playbook),
            start
                .incomplete_runs
                .iter()
                .map(|r| h(r))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// What a run that did not succeed means for the database (the `note` line).
fn note(run: &RunResult, aborted: bool) -> String {
    let done = run.statements_executed;
    let stay = match done {
        0 => "no statement had completed".to_string(),
        1 => "the 1 statement that completed stays in effect".to_string(),
        n => format!("the {n} statements that completed stay in effect"),
    };
    if aborted || run.status == RunStatus::Aborted {
        format!(
            "aborted by Ctrl-C: {stay}; the run is recorded in the audit trail; the playbook is \
             idempotent, run it again to complete it"
        )
    } else {
        format!(
            "each statement of an online run commits on its own: {stay}; the run is recorded in \
             the audit trail; the playbook is idempotent: fix the cause and run it again"
        )
    }
}

/// Prints the final result (stdout) and the closing stderr line; the exit code.
fn report(ctx: &Ctx, mut raw: Value, run: &RunResult, backup: &BackupTaken, note: &str) -> i32 {
    let code = if run.status == RunStatus::Success {
        exit::OK
    } else {
        exit::FAILED
    };
    if ctx.json {
        backup.add_to(&mut raw);
        output::emit_json(&raw);
        return code;
    }
    output::emit_human(&execute::render(run, backup, note));
    if run.status == RunStatus::Aborted {
        errln!(
            "pgrepair: {}: online run {} aborted by Ctrl-C after {} of {} statements",
            human(&run.playbook),
            human(run.online_run.as_deref().unwrap_or(&run.run_id)),
            run.statements_executed,
            run.statements_total
        );
    } else if code != exit::OK {
        output::eprint_human(&execute::failure_line(run));
    }
    code
}

/// The armed session. Sends nothing but what the driver asks for, through the simple query
/// protocol (no Parse/Describe, no type lookups: the server refuses anything else).
struct PgSession<'a> {
    client: &'a mut Client,
}

impl Session for PgSession<'_> {
    fn statement(&mut self, sql: &str) -> Result<u64, StepError> {
        if !cancel::arm_statement(self.client) {
            return Err(StepError::Interrupted);
        }
        let r = self.client.simple_query(sql);
        cancel::disarm_statement();
        r.map(|m| rows_affected(&m)).map_err(|e| self.failure(e))
    }

    fn control(&mut self, sql: &str) -> Result<Value, StepError> {
        // never cancelled: the online scope's Ctrl-C only cancels an armed statement
        let msgs = self.client.simple_query(sql).map_err(|e| self.failure(e))?;
        json_cell(first_cell(&msgs)).map_err(|m| StepError::Sql(CliError::Failed(m)))
    }

    fn pause(&mut self, d: std::time::Duration) -> bool {
        cancel::sleep_unless_requested(d)
    }

    fn interrupted(&self) -> bool {
        cancel::requested()
    }
}

impl PgSession<'_> {
    fn failure(&self, e: postgres::Error) -> StepError {
        let db = e.as_db_error();
        let lost = connection_lost(
            db.map(|d| d.code().code()),
            db.and_then(|d| d.parsed_severity())
                .is_some_and(|s| matches!(s, Severity::Fatal | Severity::Panic)),
            self.client.is_closed() || e.is_closed(),
        );
        if lost {
            StepError::Lost(crate::pg_error::error_reason(&e))
        } else {
            StepError::Sql(CliError::from_pg(e, None))
        }
    }
}

/// Whether an error ends the session: no answer from the server at all (I/O, closed), a FATAL
/// or PANIC error (pg_terminate_backend: 57P01), or a connection exception (class 08).
fn connection_lost(sqlstate: Option<&str>, fatal: bool, closed: bool) -> bool {
    match sqlstate {
        _ if closed || fatal => true,
        None => true,
        Some(code) => code.starts_with("08") || code.starts_with("57P"),
    }
}

/// Rows a statement affected: its CommandComplete count.
fn rows_affected(msgs: &[SimpleQueryMessage]) -> u64 {
    msgs.iter()
        .map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => *n,
            _ => 0,
        })
        .sum()
}

/// The first column of the first row (the closing calls return one jsonb value).
fn first_cell(msgs: &[SimpleQueryMessage]) -> Option<Option<&str>> {
    msgs.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r.get(0)),
        _ => None,
    })
}

fn json_cell(cell: Option<Option<&str>>) -> Result<Value, String> {
    match cell {
        None => Err("the server returned no row for the closing call".into()),
        Some(None) => Err("the server returned NULL for the closing call".into()),
        Some(Some(text)) => serde_json::from_str(text)
            .map_err(|e| format!("the server returned text that is not JSON ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_come_from_command_complete() {
        assert_eq!(
            rows_affected(&[SimpleQueryMessage::CommandComplete(5000)]),
            5000
        );
        assert_eq!(rows_affected(&[]), 0);
    }

    #[test]
    fn closing_call_results_are_parsed() {
        assert_eq!(
            json_cell(Some(Some(r#"{"status": "SUCCESS"}"#))).unwrap(),
            json!({"status": "SUCCESS"})
        );
        assert!(json_cell(None).unwrap_err().contains("no row"));
        assert!(json_cell(Some(None)).unwrap_err().contains("NULL"));
        assert!(json_cell(Some(Some("{"))).unwrap_err().contains("not JSON"));
    }

    #[test]
    fn which_errors_mean_the_connection_is_gone() {
        assert!(connection_lost(None, false, false)); // I/O error
        assert!(connection_lost(Some("57P01"), true, false)); // pg_terminate_backend
        assert!(connection_lost(Some("08006"), false, false));
        assert!(connection_lost(Some("42P01"), false, true)); // closed right after
        assert!(!connection_lost(Some("57014"), false, false)); // cancelled: still there
        assert!(!connection_lost(Some("23514"), false, false));
        assert!(!connection_lost(Some("RP011"), false, false));
    }

    #[test]
    fn the_lost_line_names_the_run() {
        assert_eq!(
            lost_message("0f8fad5b-d9cb-469f-a165-70867728950e"),
            "connection lost during online run 0f8fad5b-d9cb-469f-a165-70867728950e: the run \
             stays INCOMPLETE in the audit; the playbook is idempotent, run it again"
        );
    }

    fn run(status: &str, executed: i32) -> RunResult {
        serde_json::from_value(json!({
            "run_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "playbook": "p", "version": 3,
            "hash": "ab", "status": status, "statements_total": 3,
            "statements_executed": executed, "missing_before": [], "missing_after": [],
            "duration_ms": 12345.0, "error_code": "57014",
            "error_message": "canceling statement due to user request",
            "declared_role": "staging", "executed_as": "alice", "waivers": [],
            "started_at": "x", "finished_at": "y", "row_hash": "ef", "mode": "online",
            "online_run": "0f8fad5b-d9cb-469f-a165-70867728950e", "batches": 7,
            "rows_affected": 35000
        }))
        .unwrap()
    }

    #[test]
    fn an_aborted_run_renders_with_mode_batches_rows_and_what_stays() {
        let r = run("ABORTED", 2);
        let text = execute::render(&r, &BackupTaken::default(), &note(&r, true));
        assert!(text.starts_with("ABORTED  p v3\n"), "{text}");
        assert!(text.contains(
            "  run         0f8fad5b-d9cb-469f-a165-70867728950e (closing row \
             7c9e6679-7425-40de-944b-e07fc1f90ae7)\n"
        ));
        assert!(text.contains("  mode        online\n"), "{text}");
        assert!(text.contains("  statements  2 of 3 executed\n"), "{text}");
        assert!(text.contains("  batches     7\n"), "{text}");
        assert!(text.contains("  rows        35000 affected\n"), "{text}");
        assert!(text.contains("[SQLSTATE 57014]"), "{text}");
        assert!(
            text.contains("aborted by Ctrl-C: the 2 statements that completed stay in effect"),
            "{text}"
        );
        let failed = run("FAILED", 1);
        assert!(note(&failed, false)
            .starts_with("each statement of an online run commits on its own: the 1 statement"));
    }

    #[test]
    fn a_transactional_result_renders_as_before() {
        let mut r = run("SUCCESS", 3);
        r.mode = None;
        r.online_run = None;
        r.batches = None;
        r.rows_affected = None;
        let text = execute::render(&r, &BackupTaken::default(), "unused");
        assert!(text.contains("  run         7c9e6679-7425-40de-944b-e07fc1f90ae7\n"));
        for absent in ["mode", "batches", "rows", "error", "note"] {
            assert!(!text.contains(&format!("  {absent} ")), "{absent}: {text}");
        }
    }
}
