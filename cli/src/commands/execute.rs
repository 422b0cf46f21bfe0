//! `pgrepair execute ID --hash H --reason R …`: optional pg_dump backup, then repair.execute().
//! An online playbook is refused by repair.execute with RP011 (after guards 1–7 passed); the run
//! then goes through the online protocol instead (`online.rs`), with the same arguments.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::backup;
use crate::cancel;
use crate::cli::ExecuteArgs;
use crate::commands::{json_value, online, Ctx};
use crate::error::{CliError, ServerError};
use crate::exit;
use crate::output::{self, field, human};
use pg_repair_core::records::{RunResult, RunStatus};

const SQL: &str = "SELECT repair.execute($1, $2, $3, $4, $5)";
/// repair.execute's refusal of an online playbook (ONLINE_SEQUENCE).
const ONLINE_SEQUENCE: &str = "RP011";
const PREVIEW_SQL: &str = "SELECT repair.preview($1)";

pub fn run(ctx: &Ctx, args: &ExecuteArgs) -> Result<i32, CliError> {
    let target = ctx.target()?;
    // Connect first: an unreachable database is a connection error (exit 2), not a failed dump.
    let mut client = target.connect()?;

    let mut backup_file = None;
    let mut rotation = backup::Rotation::default();
    if let Some(dir) = &args.backup_dir {
        // 1. the directory is safe to write to (local, cheap)
        let dir = backup::open_dir(dir)?;
        // 2. the run would not be refused: no dump for an unknown id or a failing guard
        {
            let _scope = cancel::query_scope(&client);
            preflight(&mut client, args)?;
        }
        // 3. the dump, then rotation
        let b = backup::dump(&dir, &target, &args.pg_dump, &args.id)?;
        let note = format!(
            "backup written to {}; nothing was executed",
            b.path.display()
        );
        if cancel::requested() {
            return Err(CliError::Cancelled(format!(
                "interrupted by Ctrl-C; {note}"
            )));
        }
        rotation = backup::rotate(
            &dir,
            target.dbname(),
            &args.id,
            args.keep as usize,
            Some(&b),
        )
        .map_err(|e| e.with_note(note))?;
        for p in &rotation.ignored {
            errln!(
                "pgrepair: warning: {} has a backup's name but is not a regular file owned by \
                 you: left alone, not counted",
                p.display()
            );
        }
        // `b` holds the lock that keeps concurrent rotations off this backup until we exit
        backup_file = Some(b);
    }
    let backup_path = backup_file.as_ref().map(|b| b.path.clone());
    let backup = BackupTaken {
        path: backup_path.clone(),
        removed: rotation.deleted.clone(),
    };

    let result = {
        let _scope = cancel::query_scope(&client);
        if cancel::requested() {
            return Err(CliError::Cancelled(match &backup_path {
                Some(p) => format!("nothing was executed; backup written to {}", p.display()),
                None => "nothing was executed".to_string(),
            }));
        }
        json_value(
            &mut client,
            SQL,
            &[
                &args.id,
                &args.hash,
                &args.reason,
                &args.confirm_prod,
                &args.request_id,
            ],
        )
    };
    let mut result = match result {
        Ok(v) => v,
        // an online playbook: guards 1–7 passed; its statements go one by one
        Err(e) if is_online_refusal(&e) && !cancel::requested() => {
            return online::run(ctx, args, &mut client, &backup);
        }
        Err(e) => {
            let e = if cancel::requested() && e.is_query_canceled() {
                CliError::Cancelled(
                    "the server cancelled the run; its statements were rolled back".to_string(),
                )
            } else {
                e
            };
            return Err(backup.note(e));
        }
    };

    // The same type the server serialises (pg_repair_core::records); a result this pgrepair does
    // not understand is an error, not a guess.
    let run = online::parse_result(&result)?;
    let status = run.status;
    // A FAILED run with 57014 after our Ctrl-C is the cancellation (57014 without a Ctrl-C is
    // a statement_timeout: a plain failure).
    let cancelled = status == RunStatus::Failed
        && cancel::requested()
        && run.error_code.as_deref() == Some(cancel::QUERY_CANCELED);
    let code = if cancelled {
        exit::CANCELLED
    } else if status == RunStatus::Success {
        exit::OK
    } else {
        exit::FAILED
    };
    let too_late = cancel::requested() && status == RunStatus::Success;

    if ctx.json {
        backup.add_to(&mut result);
        if let Value::Object(map) = &mut result {
            if cancelled {
                map.insert("cancelled".into(), json!(true));
            }
        }
        output::emit_json(&result);
        return Ok(code);
    }

    let note = if cancelled {
        "cancelled by Ctrl-C: the playbook's statements were rolled back; the run is recorded \
         in the audit trail"
    } else {
        "the playbook's statements were rolled back; the run is recorded in the audit trail"
    };
    output::emit_human(&render(&run, &backup, note));
    if too_late {
        errln!("pgrepair: Ctrl-C came too late: the run had already completed");
    }
    if cancelled {
        errln!(
            "{}",
            CliError::Cancelled(format!(
                "{}: run {} was cancelled by the client; its statements were rolled back",
                human(&run.playbook),
                human(&run.run_id)
            ))
            .human_lines()
            .join("\n")
        );
    } else if code != exit::OK {
        output::eprint_human(&failure_line(&run));
    }
    Ok(code)
}

/// repair.execute refused because the playbook is an online one (it raises RP011 only after
/// guards 1–7 passed; their own refusals keep their own SQLSTATEs).
fn is_online_refusal(e: &CliError) -> bool {
    matches!(e, CliError::Server(s) if s.sqlstate.as_deref() == Some(ONLINE_SEQUENCE))
}

/// The backup taken before the run (none without --backup-dir), for the report.
#[derive(Debug, Default)]
pub struct BackupTaken {
    pub path: Option<PathBuf>,
    /// Older backups the rotation removed.
    pub removed: Vec<PathBuf>,
}

impl BackupTaken {
    /// `backup_file` and `backups_removed` in the --json result.
    pub fn add_to(&self, result: &mut Value) {
        if let (Some(p), Value::Object(map)) = (&self.path, result) {
            map.insert("backup_file".into(), json!(p.display().to_string()));
            map.insert(
                "backups_removed".into(),
                json!(self
                    .removed
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()),
            );
        }
    }

    /// For an error that stops the command after the backup: where the backup is.
    pub fn note(&self, e: CliError) -> CliError {
        match &self.path {
            Some(p) => e.with_note(format!("backup written to {}", p.display())),
            None => e,
        }
    }
}

/// The human summary of a run (stdout). `note` explains the consequence of a run that did not
/// succeed. Online runs add their mode, batches and rows affected.
pub fn render(run: &RunResult, backup: &BackupTaken, note: &str) -> String {
    let h = |t: &str| human(t).into_owned();
    let mut out = String::new();
    out.push_str(&format!(
        "{}  {} v{}\n",
        run.status.as_str(),
        h(&run.playbook),
        run.version
    ));
    let mut line = |label: &str, value: String| {
        if !value.is_empty() {
            // a label too long for the column ("missing before") gets a colon, never runs
            // into its value
            if label.len() >= 12 {
                out.push_str(&format!("  {label}: {value}\n"));
            } else {
                out.push_str(&format!("  {label:<12}{value}\n"));
            }
        }
    };
    // an online run is known by its STARTED row's id (progress, `runs`); the closing row has
    // its own
    match run.online_run.as_deref().filter(|o| *o != run.run_id) {
        Some(o) => line("run", format!("{} (closing row {})", h(o), h(&run.run_id))),
        None => line("run", h(&run.run_id)),
    }
    line("mode", run.mode.as_deref().map(h).unwrap_or_default());
    line("hash", h(&run.hash));
    line(
        "statements",
        format!(
            "{} of {} executed",
            run.statements_executed, run.statements_total
        ),
    );
    line(
        "batches",
        run.batches.map(|b| b.to_string()).unwrap_or_default(),
    );
    line(
        "rows",
        run.rows_affected
            .map(|r| format!("{r} affected"))
            .unwrap_or_default(),
    );
    line("duration", output::duration_ms(&json!(run.duration_ms)));
    line(
        "role",
        format!(
            "{}, executed as {}",
            h(&run.declared_role),
            h(&run.executed_as)
        ),
    );
    let joined = |v: &[String]| v.iter().map(|t| h(t)).collect::<Vec<_>>().join(", ");
    line("missing before", joined(&run.missing_before));
    line("missing after", joined(&run.missing_after));
    line(
        "waivers",
        run.waivers
            .iter()
            .map(|w| format!("{} until {}", h(&w.rule), h(&w.until)))
            .collect::<Vec<_>>()
            .join(", "),
    );
    if let Some(p) = &backup.path {
        let removed = match backup.removed.len() {
            0 => String::new(),
            1 => " (removed 1 older backup)".to_string(),
            n => format!(" (removed {n} older backups)"),
        };
        line("backup", format!("{}{removed}", p.display()));
    }
    if run.status != RunStatus::Success {
        let ec = run.error_code.as_deref().map(h).unwrap_or_default();
        let em = run.error_message.as_deref().map(h).unwrap_or_default();
        line(
            "error",
            match (ec.is_empty(), em.is_empty()) {
                (true, true) => "(no error reported)".to_string(),
                (false, true) => format!("[SQLSTATE {ec}]"),
                (true, false) => em,
                (false, false) => format!("{em} [SQLSTATE {ec}]"),
            },
        );
        line("note", note.to_string());
    }
    out
}

/// The closing stderr line of a run that did not succeed: `p: run FAILED: message [SQLSTATE x]`.
pub fn failure_line(run: &RunResult) -> String {
    let h = |t: &str| human(t).into_owned();
    let mut msg = format!("{}: run {}", h(&run.playbook), run.status.as_str());
    if let Some(em) = run.error_message.as_deref().filter(|m| !m.is_empty()) {
        msg.push_str(&format!(": {}", h(em)));
    }
    if let Some(ec) = run.error_code.as_deref().filter(|c| !c.is_empty()) {
        msg.push_str(&format!(" [SQLSTATE {}]", h(ec)));
    }
    CliError::Failed(msg).human_lines().join("\n")
}

/// With a backup: asks `repair.preview` first, so an unknown id, a failing guard or a wrong
/// hash stops before minutes of `pg_dump`. The server's own checks still run in execute.
fn preflight(client: &mut postgres::Client, args: &ExecuteArgs) -> Result<(), CliError> {
    const NOTE: &str = "checked with repair.preview before the backup: nothing was executed \
                        and no backup was taken";
    let p = json_value(client, PREVIEW_SQL, &[&args.id]).map_err(|e| e.with_note(NOTE))?;
    let refusal = |sqlstate: String, message: String, hint: Option<String>| {
        CliError::Server(Box::new(ServerError {
            sqlstate: (!sqlstate.is_empty()).then_some(sqlstate),
            message,
            detail: None,
            hint,
            context: Some(args.id.clone()),
            note: Some(NOTE.to_string()),
        }))
    };
    if let Some(Value::Array(guards)) = p.get("guards") {
        if let Some(g) = guards.iter().find(|g| field(g, "verdict") == "fail") {
            let mut message = field(g, "name");
            let m = field(g, "message");
            if !m.is_empty() {
                message.push_str(&format!(": {m}"));
            }
            return Err(refusal(field(g, "sqlstate"), message, None));
        }
    }
    let registered = field(&p, "hash");
    if !registered.is_empty() && !registered.eq_ignore_ascii_case(args.hash.trim()) {
        return Err(refusal(
            "RP006".to_string(),
            format!(
                "HASH_MISMATCH: expected {}, registered {registered}",
                args.hash.trim()
            ),
            Some(format!(
                "review the playbook (pgrepair preview {}) and pass its hash",
                args.id
            )),
        ));
    }
    Ok(())
}
