//! `pgrepair runs [--playbook ID] [--limit N]`: recent audit rows, newest first.

use serde_json::Value;

use crate::commands::{json_rows, Ctx};
use crate::error::CliError;
use crate::exit;
use crate::output::{self, field};

const COLUMNS: &str = "jsonb_build_object(\
    'run_id', run_id, 'playbook_id', playbook_id, 'version', version, 'status', status, \
    'started_at', started_at, 'duration_ms', duration_us / 1000.0, \
    'session_user_name', session_user_name, 'declared_role', declared_role, 'reason', reason, \
    'error_code', error_code, 'error_message', error_message, 'row_hash', row_hash)";

pub fn run(ctx: &Ctx, playbook: Option<&str>, limit: u32) -> Result<i32, CliError> {
    let mut client = ctx.connect()?;
    let limit = i64::from(limit);
    let rows = match playbook {
        Some(id) => json_rows(
            &mut client,
            &format!(
                "SELECT {COLUMNS} FROM repair.runs WHERE playbook_id = $1 \
                 ORDER BY started_at DESC, seq DESC LIMIT $2"
            ),
            &[&id, &limit],
        )?,
        None => json_rows(
            &mut client,
            &format!(
                "SELECT {COLUMNS} FROM repair.runs ORDER BY started_at DESC, seq DESC LIMIT $1"
            ),
            &[&limit],
        )?,
    };
    if ctx.json {
        output::emit_json(&Value::Array(rows));
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        output::emit_human(&match playbook {
            Some(id) => format!("no runs of {id} recorded"),
            None => "no runs recorded".to_string(),
        });
        return Ok(exit::OK);
    }
    let mut table = output::table([
        "started", "run id", "playbook", "version", "status", "duration", "user", "role", "reason",
        "error",
    ]);
    output::align_right(&mut table, &[3, 5]);
    for r in &rows {
        let code = field(r, "error_code");
        let msg = field(r, "error_message");
        let error = match (code.is_empty(), msg.is_empty()) {
            (true, true) => String::new(),
            (false, true) => code,
            (true, false) => output::ellipsize(&msg, 60),
            (false, false) => format!("{code}: {}", output::ellipsize(&msg, 60)),
        };
        table.add_row(vec![
            output::timestamp(r.get("started_at").unwrap_or(&Value::Null)),
            field(r, "run_id"),
            field(r, "playbook_id"),
            field(r, "version"),
            field(r, "status"),
            r.get("duration_ms")
                .map(output::duration_ms)
                .unwrap_or_default(),
            field(r, "session_user_name"),
            field(r, "declared_role"),
            output::ellipsize(&field(r, "reason"), 40),
            error,
        ]);
    }
    output::emit_human(&format!(
        "{table}\n{} run{} shown, newest first",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    ));
    Ok(exit::OK)
}
