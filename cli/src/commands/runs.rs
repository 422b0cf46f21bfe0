//! `pgrepair runs [--playbook ID] [--limit N]`: recent audit rows, newest first.

use serde_json::Value;

use crate::commands::{json_rows, Ctx};
use crate::error::CliError;
use crate::exit;
use crate::output::{self, field};

// The online-run columns (`mode`, `online_run`, `batches`, `rows_affected`) and `approval_id`
// (0.4.0) are read through `to_jsonb(r)`, so a database whose schema predates them (no such
// columns) still answers, with nulls. An online run's closing row shows the approval its STARTED
// row consumed, whichever of the two rows the server names it in.
const COLUMNS: &str = "jsonb_build_object(\
    'run_id', r.run_id, 'playbook_id', r.playbook_id, 'version', r.version, 'status', r.status, \
    'started_at', r.started_at, 'duration_ms', r.duration_us / 1000.0, \
    'session_user_name', r.session_user_name, 'declared_role', r.declared_role, \
    'reason', r.reason, 'error_code', r.error_code, 'error_message', r.error_message, \
    'row_hash', r.row_hash, 'mode', j.doc -> 'mode', 'online_run', j.doc -> 'online_run', \
    'batches', j.doc -> 'batches', 'rows_affected', j.doc -> 'rows_affected', \
    'approval_id', COALESCE(NULLIF(j.doc -> 'approval_id', 'null'::jsonb), \
        (SELECT to_jsonb(s) -> 'approval_id' FROM repair.runs s \
         WHERE s.run_id = (j.doc ->> 'online_run')::uuid AND s.status = 'STARTED' LIMIT 1)), \
    'incomplete', r.status = 'STARTED')";

/// One line per online run: its STARTED row is left out once a closing row names it, so a STARTED
/// row that is shown is a run that never finished (INCOMPLETE). `$1`: playbook or null.
const SQL: &str = "WITH closed AS (\
        SELECT DISTINCT to_jsonb(c) ->> 'online_run' AS online_run FROM repair.runs c \
        WHERE c.status <> 'STARTED' AND ($1::text IS NULL OR c.playbook_id = $1)) \
    SELECT {COLUMNS} FROM repair.runs r CROSS JOIN LATERAL (SELECT to_jsonb(r) AS doc) j \
    WHERE ($1::text IS NULL OR r.playbook_id = $1) \
      AND NOT (r.status = 'STARTED' \
               AND EXISTS (SELECT 1 FROM closed WHERE closed.online_run = r.run_id::text)) \
    ORDER BY r.started_at DESC, r.seq DESC LIMIT $2";

pub fn run(ctx: &Ctx, playbook: Option<&str>, limit: u32) -> Result<i32, CliError> {
    let mut client = ctx.connect()?;
    let limit = i64::from(limit);
    let rows = json_rows(
        &mut client,
        &SQL.replace("{COLUMNS}", COLUMNS),
        &[&playbook, &limit],
    )?;
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
    output::emit_human(&render(&rows));
    Ok(exit::OK)
}

/// The status shown: INCOMPLETE for an online run whose STARTED row has no closing row.
fn status(r: &Value) -> String {
    if r.get("incomplete") == Some(&Value::Bool(true)) {
        "INCOMPLETE".to_string()
    } else {
        field(r, "status")
    }
}

/// The human table. The mode / batches / rows columns only appear when an online run is shown,
/// the approval column when a run consumed an approval.
fn render(rows: &[Value]) -> String {
    let online = rows.iter().any(|r| !field(r, "mode").is_empty());
    let approved = rows.iter().any(|r| !field(r, "approval_id").is_empty());
    let mut headers = vec!["started", "run id", "playbook", "version", "status"];
    if online {
        headers.extend(["mode", "batches", "rows"]);
    }
    if approved {
        headers.push("approval");
    }
    headers.extend(["duration", "user", "role", "reason", "error"]);
    let duration = headers.iter().position(|h| *h == "duration").unwrap_or(5);
    let mut table = output::table(headers);
    if online {
        output::align_right(&mut table, &[3, 6, 7, duration]);
    } else {
        output::align_right(&mut table, &[3, duration]);
    }
    for r in rows {
        let code = field(r, "error_code");
        let msg = field(r, "error_message");
        let error = match (code.is_empty(), msg.is_empty()) {
            (true, true) => String::new(),
            (false, true) => code,
            (true, false) => output::ellipsize(&msg, 60),
            (false, false) => format!("{code}: {}", output::ellipsize(&msg, 60)),
        };
        // an online run is known by its STARTED row's id, in its closing row too
        let run_id = match field(r, "online_run") {
            id if id.is_empty() => field(r, "run_id"),
            id => id,
        };
        let mut cells = vec![
            output::timestamp(r.get("started_at").unwrap_or(&Value::Null)),
            run_id,
            field(r, "playbook_id"),
            field(r, "version"),
            status(r),
        ];
        if online {
            cells.extend([
                field(r, "mode"),
                field(r, "batches"),
                field(r, "rows_affected"),
            ]);
        }
        if approved {
            cells.push(super::approvals::short(
                &field(r, "approval_id"),
                super::approve::MIN_PREFIX,
            ));
        }
        cells.extend([
            r.get("duration_ms")
                .map(output::duration_ms)
                .unwrap_or_default(),
            field(r, "session_user_name"),
            field(r, "declared_role"),
            output::ellipsize(&field(r, "reason"), 40),
            error,
        ]);
        table.add_row(cells);
    }
    format!(
        "{table}\n{} run{} shown, newest first",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(status: &str, extra: Value) -> Value {
        let mut r = json!({
            "run_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "playbook_id": "p",
            "version": 1, "status": status, "started_at": "2026-01-01T10:00:00.5+00:00",
            "duration_ms": 1500.0, "session_user_name": "alice", "declared_role": "staging",
            "reason": "INC-1", "error_code": null, "error_message": null, "row_hash": "ab",
            "mode": null, "online_run": null, "batches": null, "rows_affected": null,
            "approval_id": null, "incomplete": status == "STARTED"
        });
        if let (Value::Object(m), Value::Object(e)) = (&mut r, extra) {
            m.extend(e);
        }
        r
    }

    #[test]
    fn transactional_runs_look_as_before() {
        let text = render(&[row("SUCCESS", json!({}))]);
        let header = text.lines().nth(1).unwrap();
        assert!(
            header.contains("status") && !header.contains("mode"),
            "{text}"
        );
        assert!(text.contains("7c9e6679-7425-40de-944b-e07fc1f90ae7"));
        assert!(text.ends_with("1 run shown, newest first"));
    }

    #[test]
    fn an_online_run_is_one_line_and_an_unfinished_one_is_incomplete() {
        let text = render(&[
            row(
                "ABORTED",
                json!({"mode": "online", "online_run": "0f8fad5b-d9cb-469f-a165-70867728950e",
                       "batches": 7, "rows_affected": 35000, "error_code": "57014"}),
            ),
            row(
                "STARTED",
                json!({"mode": "online", "run_id": "11111111-2222-4333-8444-555555555555",
                       "online_run": "11111111-2222-4333-8444-555555555555"}),
            ),
            row("SUCCESS", json!({})),
        ]);
        let header = text.lines().nth(1).unwrap();
        for h in ["mode", "batches", "rows"] {
            assert!(header.contains(h), "{text}");
        }
        let lines: Vec<&str> = text.lines().collect();
        let aborted = lines.iter().find(|l| l.contains("ABORTED")).unwrap();
        assert!(
            aborted.contains("0f8fad5b-d9cb-469f-a165-70867728950e"),
            "{text}"
        );
        assert!(
            aborted.contains("35000") && aborted.contains("online"),
            "{text}"
        );
        let incomplete = lines.iter().find(|l| l.contains("INCOMPLETE")).unwrap();
        assert!(incomplete.contains("11111111-2222"), "{text}");
        assert!(!text.contains("STARTED"), "{text}");
    }

    #[test]
    fn the_query_reads_new_columns_through_to_jsonb() {
        let sql = SQL.replace("{COLUMNS}", COLUMNS);
        for c in [
            "mode",
            "online_run",
            "batches",
            "rows_affected",
            "approval_id",
        ] {
            assert!(sql.contains(&format!("j.doc -> '{c}'")), "{c}");
            assert!(!sql.contains(&format!("r.{c}")), "{c}");
        }
        assert!(sql.contains("to_jsonb(c) ->> 'online_run'"));
        assert!(sql.contains("to_jsonb(s) -> 'approval_id'"));
    }

    #[test]
    fn the_approval_column_appears_when_a_run_used_one() {
        let text = render(&[row("SUCCESS", json!({}))]);
        assert!(!text.lines().nth(1).unwrap().contains("approval"), "{text}");
        let text = render(&[
            row(
                "SUCCESS",
                json!({"approval_id": "0f8fad5b-d9cb-469f-a165-70867728950e"}),
            ),
            row("FAILED", json!({})),
        ]);
        assert!(text.lines().nth(1).unwrap().contains("approval"), "{text}");
        let line = text.lines().find(|l| l.contains("SUCCESS")).unwrap();
        assert!(
            line.contains("0f8fad5b ") && !line.contains("0f8fad5b-"),
            "{text}"
        );
    }
}
