//! `pgrepair execute ID --hash H --reason R …`: optional pg_dump backup, then repair.execute().

use serde_json::{json, Value};

use crate::backup;
use crate::cli::ExecuteArgs;
use crate::commands::{json_value, Ctx};
use crate::error::CliError;
use crate::exit;
use crate::output::{self, field, list};

const SQL: &str = "SELECT repair.execute($1, $2, $3, $4, $5)";

pub fn run(ctx: &Ctx, args: &ExecuteArgs) -> Result<i32, CliError> {
    let target = ctx.target()?;
    // Connect first: an unreachable database is a connection error (exit 2), not a failed dump.
    let mut client = target.connect()?;

    let mut backup_file = None;
    let mut rotated = Vec::new();
    if let Some(dir) = &args.backup_dir {
        let path = backup::dump(&target, &args.pg_dump, dir, &args.id)?;
        rotated =
            backup::rotate(dir, target.dbname(), &args.id, args.keep as usize).map_err(|e| {
                e.with_note(format!(
                    "backup written to {}; nothing was executed",
                    path.display()
                ))
            })?;
        backup_file = Some(path);
    }

    let result = json_value(
        &mut client,
        SQL,
        &[
            &args.id,
            &args.hash,
            &args.reason,
            &args.confirm_prod,
            &args.request_id,
        ],
    );
    let mut result = match result {
        Ok(v) => v,
        Err(e) => {
            return Err(match &backup_file {
                Some(p) => e.with_note(format!("backup written to {}", p.display())),
                None => e,
            })
        }
    };

    let status = field(&result, "status");
    let code = if status == "SUCCESS" {
        exit::OK
    } else {
        exit::FAILED
    };

    if ctx.json {
        if let (Some(p), Value::Object(map)) = (&backup_file, &mut result) {
            map.insert("backup_file".into(), json!(p.display().to_string()));
            map.insert(
                "backups_removed".into(),
                json!(rotated
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()),
            );
        }
        output::emit_json(&result);
        return Ok(code);
    }

    let mut out = String::new();
    let mut version = field(&result, "version");
    if !version.is_empty() {
        version = format!(" v{version}");
    }
    let playbook = match field(&result, "playbook") {
        p if p.is_empty() => args.id.clone(),
        p => p,
    };
    out.push_str(&format!(
        "{}  {playbook}{version}\n",
        if status.is_empty() {
            "UNKNOWN"
        } else {
            &status
        }
    ));
    let mut line = |label: &str, value: String| {
        if !value.is_empty() {
            out.push_str(&format!("  {label:<12}{value}\n"));
        }
    };
    line("run", field(&result, "run_id"));
    line("hash", field(&result, "hash"));
    let total = field(&result, "statements_total");
    let done = field(&result, "statements_executed");
    if !total.is_empty() || !done.is_empty() {
        line("statements", format!("{done} of {total} executed"));
    }
    line(
        "duration",
        result
            .get("duration_ms")
            .map(output::duration_ms)
            .unwrap_or_default(),
    );
    let role = field(&result, "declared_role");
    let who = field(&result, "executed_as");
    line(
        "role",
        match (role.is_empty(), who.is_empty()) {
            (true, true) => String::new(),
            (false, true) => role,
            (true, false) => format!("executed as {who}"),
            (false, false) => format!("{role}, executed as {who}"),
        },
    );
    let missing_before = list(&result, "missing_before");
    if !missing_before.is_empty() {
        line("missing before", missing_before.join(", "));
    }
    let missing_after = list(&result, "missing_after");
    if !missing_after.is_empty() {
        line("missing after", missing_after.join(", "));
    }
    if let Some(Value::Array(waivers)) = result.get("waivers") {
        let w: Vec<String> = waivers
            .iter()
            .map(
                |w| match (w.is_object(), field(w, "rule"), field(w, "until")) {
                    (true, rule, until) if !until.is_empty() => format!("{rule} until {until}"),
                    (true, rule, _) => rule,
                    (false, _, _) => output::text(w),
                },
            )
            .collect();
        if !w.is_empty() {
            line("waivers", w.join(", "));
        }
    }
    if let Some(p) = &backup_file {
        let removed = match rotated.len() {
            0 => String::new(),
            1 => " (removed 1 older backup)".to_string(),
            n => format!(" (removed {n} older backups)"),
        };
        line("backup", format!("{}{removed}", p.display()));
    }
    if code != exit::OK {
        let ec = field(&result, "error_code");
        let em = field(&result, "error_message");
        line(
            "error",
            match (ec.is_empty(), em.is_empty()) {
                (true, true) => "(no error reported)".to_string(),
                (false, true) => format!("[SQLSTATE {ec}]"),
                (true, false) => em,
                (false, false) => format!("{em} [SQLSTATE {ec}]"),
            },
        );
        line(
            "note",
            "the playbook's statements were rolled back; the run is recorded in the audit trail"
                .to_string(),
        );
    }
    output::emit_human(&out);
    if code != exit::OK {
        let ec = field(&result, "error_code");
        let em = field(&result, "error_message");
        let mut msg = format!(
            "{playbook}: run {}",
            if status.is_empty() {
                "ended without a status"
            } else {
                &status
            }
        );
        if !em.is_empty() {
            msg.push_str(&format!(": {em}"));
        }
        if !ec.is_empty() {
            msg.push_str(&format!(" [SQLSTATE {ec}]"));
        }
        output::eprint_human(&CliError::Failed(msg).human_lines().join("\n"));
    }
    Ok(code)
}
