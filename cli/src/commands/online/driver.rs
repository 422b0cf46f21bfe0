//! The decisions of the online protocol, apart from PostgreSQL so they can be tested with a fake
//! session: which statement goes next, when a batch statement is done, when the run is finished
//! and when it is aborted.
//!
//! After `repair.online_begin` the session is armed: the server accepts only the next
//! statement's text, exactly as it gave it (or the current batch statement again), and then one
//! call of `repair.online_finish` or `repair.online_abort`. So nothing else is ever sent here,
//! and the closing calls are built from literals (a checked uuid, a fixed reason).

use std::time::{Duration, Instant};

use pg_repair_core::records::{OnlineStart, OnlineStatement, RunResult};
use serde_json::Value;

use crate::error::CliError;
use crate::progress::{Event, Progress, Step};

/// The reason `online_abort` records for a Ctrl-C.
pub const ABORT_REASON: &str = "interrupted by Ctrl-C in pgrepair execute";

/// Why one step did not complete.
#[derive(Debug)]
pub enum StepError {
    /// Not sent: Ctrl-C came first.
    Interrupted,
    /// The server answered with an error; the session is still there.
    Sql(CliError),
    /// The connection is gone (with the driver's or server's reason).
    Lost(String),
}

/// The armed session, as the driver sees it.
pub trait Session {
    /// Sends one playbook statement alone, in autocommit; how many rows it affected.
    fn statement(&mut self, sql: &str) -> Result<u64, StepError>;
    /// Sends one closing call (`online_finish` / `online_abort`); the jsonb it returns.
    fn control(&mut self, sql: &str) -> Result<Value, StepError>;
    /// Waits `d` between two batches; false when Ctrl-C cut the wait short.
    fn pause(&mut self, d: Duration) -> bool;
    /// Ctrl-C was pressed.
    fn interrupted(&self) -> bool;
}

/// How an online run ended.
#[derive(Debug)]
pub enum Outcome {
    /// `online_finish` or `online_abort` answered.
    Closed(Box<Closed>),
    /// The connection was lost: the run stays INCOMPLETE in the audit.
    Lost { reason: String },
}

#[derive(Debug)]
pub struct Closed {
    /// The result as the server returned it (printed as is with `--json`).
    pub raw: Value,
    pub run: RunResult,
    /// Closed by `online_abort` after a Ctrl-C.
    pub aborted: bool,
    /// Ctrl-C came after the last statement had completed: the run was finished normally.
    pub too_late: bool,
}

/// `SELECT repair.online_finish('…'::uuid)`.
pub fn finish_sql(run_id: &str) -> Result<String, CliError> {
    Ok(format!(
        "SELECT repair.online_finish('{}'::uuid)",
        checked_uuid(run_id)?
    ))
}

/// `SELECT repair.online_abort('…'::uuid, '…')`.
pub fn abort_sql(run_id: &str, reason: &str) -> Result<String, CliError> {
    Ok(format!(
        "SELECT repair.online_abort('{}'::uuid, {})",
        checked_uuid(run_id)?,
        quote_literal(reason)
    ))
}

/// The run id is inlined into SQL: only a canonical lowercase 8-4-4-4-12 hex uuid passes.
fn checked_uuid(s: &str) -> Result<&str, CliError> {
    let ok = s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        });
    if ok {
        Ok(s)
    } else {
        Err(CliError::Failed(format!(
            "the server returned an online run id that is not a uuid ({}); nothing more was sent",
            crate::output::ellipsize(&crate::output::human(s), 60)
        )))
    }
}

/// A SQL string literal: quotes doubled; with a backslash, an `E''` literal with backslashes
/// doubled too, so the text means the same whatever `standard_conforming_strings` says.
pub fn quote_literal(s: &str) -> String {
    let quoted = s.replace('\'', "''");
    if quoted.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// A run result from the server, typed. One this pgrepair does not understand is an error.
pub fn parse_result(raw: &Value) -> Result<RunResult, CliError> {
    serde_json::from_value(raw.clone()).map_err(|e| {
        CliError::Failed(format!(
            "the server returned a run result this pgrepair does not understand ({e}); run \
             `pgrepair runs` to see what was recorded"
        ))
    })
}

fn step<'a>(s: &'a OnlineStatement, total: usize) -> Step<'a> {
    Step {
        n: s.n,
        total,
        line: s.line,
        sql: &s.sql,
    }
}

/// Runs the statements of a started run in order, then closes it: `online_finish` after the
/// last statement or the first failure, `online_abort` after a Ctrl-C.
pub fn drive(
    start: &OnlineStart,
    session: &mut impl Session,
    progress: &mut impl Progress,
) -> Result<Outcome, CliError> {
    let total = start.statements.len();
    let pause = Duration::from_millis(u64::try_from(start.batch_pause_ms).unwrap_or(0));
    for s in &start.statements {
        let step = step(s, total);
        if session.interrupted() {
            return abort(start, session, progress);
        }
        progress.event(Event::Started(step));
        let t0 = Instant::now();
        let result = if s.batch {
            batches(step, pause, session, progress).map(|(rows, n)| (rows, Some(n)))
        } else {
            session.statement(&s.sql).map(|rows| (rows, None))
        };
        match result {
            Ok((rows, batches)) => progress.event(Event::Done {
                step,
                batches,
                rows,
                elapsed: t0.elapsed(),
            }),
            Err(StepError::Interrupted) => return abort(start, session, progress),
            Err(StepError::Sql(e)) => {
                progress.event(Event::Failed {
                    step,
                    elapsed: t0.elapsed(),
                    reason: reason(&e),
                });
                // after a Ctrl-C the error is (most likely) the cancellation itself
                return if session.interrupted() {
                    abort(start, session, progress)
                } else {
                    // the server recorded the error; finish closes the run as FAILED
                    close(start, session, &finish_sql(&start.run_id)?, false)
                };
            }
            Err(StepError::Lost(reason)) => {
                progress.event(Event::Failed {
                    step,
                    elapsed: t0.elapsed(),
                    reason: reason.clone(),
                });
                return Ok(Outcome::Lost { reason });
            }
        }
    }
    close(start, session, &finish_sql(&start.run_id)?, false)
}

/// A batch statement: again and again, each its own transaction, until it affects no row.
/// (rows in all, how often it ran)
fn batches(
    step: Step<'_>,
    pause: Duration,
    session: &mut impl Session,
    progress: &mut impl Progress,
) -> Result<(u64, u32), StepError> {
    let mut so_far: u64 = 0;
    let mut batch: u32 = 0;
    loop {
        batch += 1;
        let rows = session.statement(step.sql)?;
        if rows == 0 {
            return Ok((so_far, batch));
        }
        so_far += rows;
        progress.event(Event::Batch {
            step,
            batch,
            rows,
            so_far,
        });
        let go_on = if pause.is_zero() {
            !session.interrupted()
        } else {
            session.pause(pause)
        };
        if !go_on {
            return Err(StepError::Interrupted);
        }
    }
}

fn abort(
    start: &OnlineStart,
    session: &mut impl Session,
    progress: &mut impl Progress,
) -> Result<Outcome, CliError> {
    progress.event(Event::Message(format!(
        "Ctrl-C: aborting online run {}; statements that completed stay in effect",
        start.run_id
    )));
    close(
        start,
        session,
        &abort_sql(&start.run_id, ABORT_REASON)?,
        true,
    )
}

/// Sends the closing call. A 57014 after a Ctrl-C is a cancel request that reached the server
/// just after the statement it was meant for had ended: the call is sent once more.
fn close(
    start: &OnlineStart,
    session: &mut impl Session,
    sql: &str,
    aborted: bool,
) -> Result<Outcome, CliError> {
    let mut retried = false;
    loop {
        match session.control(sql) {
            Ok(raw) => {
                let run = parse_result(&raw)?;
                return Ok(Outcome::Closed(Box::new(Closed {
                    raw,
                    run,
                    aborted,
                    too_late: !aborted && session.interrupted(),
                })));
            }
            Err(StepError::Lost(reason)) => return Ok(Outcome::Lost { reason }),
            Err(StepError::Sql(e))
                if !retried && session.interrupted() && e.is_query_canceled() =>
            {
                retried = true;
            }
            Err(StepError::Sql(e)) => {
                return Err(e.with_note(format!(
                    "online run {} was not closed: it stays INCOMPLETE in the audit; the \
                     playbook is idempotent, run it again",
                    start.run_id
                )))
            }
            Err(StepError::Interrupted) => {
                return Err(CliError::Failed(format!(
                    "online run {} was not closed: it stays INCOMPLETE in the audit",
                    start.run_id
                )))
            }
        }
    }
}

/// An error's text for a progress line: the server's message and SQLSTATE.
fn reason(e: &CliError) -> String {
    match e {
        CliError::Server(s) => match &s.sqlstate {
            Some(code) => format!("{} [SQLSTATE {code}]", s.message),
            None => s.message.clone(),
        },
        other => other
            .human_lines()
            .join(" ")
            .trim_start_matches("pgrepair: ")
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ServerError;
    use crate::progress::plain_line;
    use pg_repair_core::records::RunStatus;
    use serde_json::json;
    use std::collections::VecDeque;

    const RUN: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    fn start(statements: &[(&str, bool)]) -> OnlineStart {
        OnlineStart {
            run_id: RUN.into(),
            status: RunStatus::Started,
            playbook: "p".into(),
            version: 1,
            hash: "ab".into(),
            declared_role: "staging".into(),
            executed_as: "alice".into(),
            lock_timeout_ms: 2000,
            statement_timeout_ms: 0,
            batch_pause_ms: 100,
            statements: statements
                .iter()
                .enumerate()
                .map(|(i, (sql, batch))| OnlineStatement {
                    n: i as i32 + 1,
                    line: 10 + i as i32,
                    sql: sql.to_string(),
                    batch: *batch,
                })
                .collect(),
            incomplete_runs: vec![],
            started_at: "2026-01-01T00:00:00.000000Z".into(),
            row_hash: "cd".into(),
        }
    }

    fn result(status: &str) -> Value {
        json!({
            "run_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "playbook": "p", "version": 1,
            "hash": "ab", "status": status, "statements_total": 3, "statements_executed": 1,
            "missing_before": [], "missing_after": [], "duration_ms": 12.5,
            "error_code": null, "error_message": null, "declared_role": "staging",
            "executed_as": "alice", "waivers": [], "started_at": "x", "finished_at": "y",
            "row_hash": "ef", "mode": "online", "online_run": RUN, "batches": 3,
            "rows_affected": 10000
        })
    }

    fn sql_error(code: &str) -> StepError {
        StepError::Sql(CliError::Server(Box::new(ServerError {
            sqlstate: Some(code.into()),
            message: "boom".into(),
            detail: None,
            hint: None,
            context: None,
            note: None,
        })))
    }

    /// Answers from scripts; Ctrl-C "pressed" during the statement sent `ctrl_c_at` (1-based),
    /// or during the first pause.
    #[derive(Default)]
    struct Fake {
        answers: VecDeque<Result<u64, StepError>>,
        controls: VecDeque<Result<Value, StepError>>,
        sent: Vec<String>,
        pauses: usize,
        ctrl_c_at: Option<usize>,
        ctrl_c_in_pause: bool,
        interrupted: bool,
    }

    impl Session for Fake {
        fn statement(&mut self, sql: &str) -> Result<u64, StepError> {
            if self.interrupted {
                return Err(StepError::Interrupted);
            }
            self.sent.push(sql.to_string());
            if self.ctrl_c_at == Some(self.sent.len()) {
                self.interrupted = true;
            }
            self.answers
                .pop_front()
                .expect("an answer for every statement")
        }
        fn control(&mut self, sql: &str) -> Result<Value, StepError> {
            self.sent.push(sql.to_string());
            self.controls.pop_front().expect("an answer for every call")
        }
        fn pause(&mut self, d: Duration) -> bool {
            assert_eq!(d, Duration::from_millis(100));
            self.pauses += 1;
            if self.ctrl_c_in_pause {
                self.interrupted = true;
            }
            !self.interrupted
        }
        fn interrupted(&self) -> bool {
            self.interrupted
        }
    }

    #[derive(Default)]
    struct Lines(Vec<String>);
    impl Progress for Lines {
        fn event(&mut self, e: Event<'_>) {
            self.0.extend(plain_line(&e));
        }
    }

    fn finish() -> String {
        finish_sql(RUN).unwrap()
    }
    fn abort_call() -> String {
        abort_sql(RUN, ABORT_REASON).unwrap()
    }

    #[test]
    fn runs_every_statement_and_batches_until_zero_rows_then_finishes() {
        let st = start(&[
            ("CREATE INDEX CONCURRENTLY i ON t (x)", false),
            (
                "UPDATE t SET y = 1 WHERE id IN (SELECT id FROM t WHERE y IS NULL LIMIT 5000)",
                true,
            ),
        ]);
        let mut f = Fake {
            answers: VecDeque::from([Ok(0), Ok(5000), Ok(5000), Ok(0)]),
            controls: VecDeque::from([Ok(result("SUCCESS"))]),
            ..Fake::default()
        };
        let mut p = Lines::default();
        let Outcome::Closed(c) = drive(&st, &mut f, &mut p).unwrap() else {
            panic!("closed expected")
        };
        assert_eq!(c.run.status, RunStatus::Success);
        assert!(!c.aborted && !c.too_late);
        let batch = st.statements[1].sql.clone();
        assert_eq!(
            f.sent,
            vec![
                st.statements[0].sql.clone(),
                batch.clone(),
                batch.clone(),
                batch,
                finish()
            ]
        );
        assert_eq!(f.pauses, 2);
        assert_eq!(p.0.len(), 4);
        assert!(p.0[0].starts_with("[1/2] line 10 CREATE INDEX CONCURRENTLY i ON t (x) done ("));
        assert_eq!(p.0[1], "[2/2] batch 1: 5000 rows (5000 so far)");
        assert_eq!(p.0[2], "[2/2] batch 2: 5000 rows (10000 so far)");
        assert!(
            p.0[3].contains(" done: 3 batches, 10000 rows ("),
            "{}",
            p.0[3]
        );
    }

    #[test]
    fn a_failed_statement_stops_the_run_and_finish_records_it() {
        let st = start(&[("A", false), ("B", false), ("C", false)]);
        let mut f = Fake {
            answers: VecDeque::from([Ok(0), Err(sql_error("23514"))]),
            controls: VecDeque::from([Ok(result("FAILED"))]),
            ..Fake::default()
        };
        let mut p = Lines::default();
        let Outcome::Closed(c) = drive(&st, &mut f, &mut p).unwrap() else {
            panic!()
        };
        assert_eq!(c.run.status, RunStatus::Failed);
        assert!(!c.aborted);
        assert_eq!(f.sent, vec!["A".to_string(), "B".into(), finish()]);
        assert!(
            p.0[1].ends_with("failed (0.00 s): boom [SQLSTATE 23514]"),
            "{}",
            p.0[1]
        );
    }

    #[test]
    fn ctrl_c_during_a_statement_aborts_the_run() {
        let st = start(&[("A", false), ("B", false)]);
        let mut f = Fake {
            answers: VecDeque::from([Err(sql_error("57014"))]),
            controls: VecDeque::from([Ok(result("ABORTED"))]),
            ctrl_c_at: Some(1),
            ..Fake::default()
        };
        let mut p = Lines::default();
        let Outcome::Closed(c) = drive(&st, &mut f, &mut p).unwrap() else {
            panic!()
        };
        assert!(c.aborted);
        assert_eq!(c.run.status, RunStatus::Aborted);
        assert_eq!(f.sent, vec!["A".to_string(), abort_call()]);
        assert!(p
            .0
            .last()
            .unwrap()
            .starts_with("Ctrl-C: aborting online run 0f8fad5b"));
    }

    #[test]
    fn a_statement_that_completed_despite_ctrl_c_is_followed_by_the_abort_not_the_next_one() {
        let st = start(&[("A", false), ("B", false)]);
        let mut f = Fake {
            answers: VecDeque::from([Ok(0)]),
            controls: VecDeque::from([Ok(result("ABORTED"))]),
            ctrl_c_at: Some(1),
            ..Fake::default()
        };
        let Outcome::Closed(c) = drive(&st, &mut f, &mut Lines::default()).unwrap() else {
            panic!()
        };
        assert!(c.aborted);
        assert_eq!(f.sent, vec!["A".to_string(), abort_call()]);
    }

    #[test]
    fn ctrl_c_in_a_batch_pause_aborts_the_run() {
        let st = start(&[("B", true), ("C", false)]);
        let mut f = Fake {
            answers: VecDeque::from([Ok(10)]),
            controls: VecDeque::from([Ok(result("ABORTED"))]),
            ctrl_c_in_pause: true,
            ..Fake::default()
        };
        let Outcome::Closed(c) = drive(&st, &mut f, &mut Lines::default()).unwrap() else {
            panic!()
        };
        assert!(c.aborted);
        assert_eq!(f.sent, vec!["B".to_string(), abort_call()]);
    }

    #[test]
    fn ctrl_c_after_the_last_statement_finishes_the_run_too_late_to_abort() {
        let st = start(&[("A", false)]);
        let mut f = Fake {
            answers: VecDeque::from([Ok(0)]),
            controls: VecDeque::from([Err(sql_error("57014")), Ok(result("SUCCESS"))]),
            ctrl_c_at: Some(1),
            ..Fake::default()
        };
        let Outcome::Closed(c) = drive(&st, &mut f, &mut Lines::default()).unwrap() else {
            panic!()
        };
        assert!(!c.aborted && c.too_late);
        // the stray cancel hit the finish call: it is sent once more
        assert_eq!(f.sent, vec!["A".to_string(), finish(), finish()]);
    }

    #[test]
    fn a_lost_connection_ends_the_run_without_another_word_to_the_server() {
        let st = start(&[("A", false), ("B", false)]);
        let mut f = Fake {
            answers: VecDeque::from([Err(StepError::Lost("server closed the connection".into()))]),
            ..Fake::default()
        };
        let mut p = Lines::default();
        match drive(&st, &mut f, &mut p).unwrap() {
            Outcome::Lost { reason } => assert_eq!(reason, "server closed the connection"),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.sent, vec!["A".to_string()]);
        assert!(p.0[0].ends_with("failed (0.00 s): server closed the connection"));
    }

    #[test]
    fn a_refused_closing_call_is_an_error_naming_the_incomplete_run() {
        let st = start(&[("A", false)]);
        let mut f = Fake {
            answers: VecDeque::from([Ok(0)]),
            controls: VecDeque::from([Err(sql_error("RP011"))]),
            ..Fake::default()
        };
        let e = drive(&st, &mut f, &mut Lines::default()).unwrap_err();
        let text = e.human_lines().join("\n");
        assert!(text.contains("[SQLSTATE RP011]"), "{text}");
        assert!(
            text.contains(&format!("online run {RUN} was not closed")),
            "{text}"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn a_result_this_pgrepair_does_not_understand_is_an_error() {
        let st = start(&[]);
        let mut f = Fake {
            controls: VecDeque::from([Ok(json!({"status": "SUCCESS"}))]),
            ..Fake::default()
        };
        let e = drive(&st, &mut f, &mut Lines::default()).unwrap_err();
        assert!(e.human_lines()[0].contains("does not understand"));
    }

    #[test]
    fn closing_calls_are_literal_and_checked() {
        assert_eq!(
            finish_sql(RUN).unwrap(),
            format!("SELECT repair.online_finish('{RUN}'::uuid)")
        );
        assert_eq!(
            abort_sql(RUN, ABORT_REASON).unwrap(),
            format!(
                "SELECT repair.online_abort('{RUN}'::uuid, 'interrupted by Ctrl-C in pgrepair \
                 execute')"
            )
        );
        for bad in [
            "",
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "0f8fad5bd9cb469fa16570867728950e",
            "0f8fad5b-d9cb-469f-a165-70867728950e'); DROP TABLE t; --",
            "0f8fad5b-d9cb-469f-a165-70867728950g",
            "{0f8fad5b-d9cb-469f-a165-70867728950}",
        ] {
            assert!(finish_sql(bad).is_err(), "{bad}");
            assert!(abort_sql(bad, "x").is_err(), "{bad}");
        }
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b'"), "E'a\\\\b'''");
    }
}
