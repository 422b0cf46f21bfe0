//! `pgrepair approvals [ID] [--limit N]`: approvals and their state (repair.approval_status),
//! newest first.

use serde_json::Value;

use crate::commands::{json_rows, Ctx};
use crate::error::CliError;
use crate::exit;
use crate::output::{self, field};

/// The view's order is not guaranteed: ordered here. `$1`: playbook or null; `$2`: limit.
const SQL: &str = "SELECT to_jsonb(a) FROM repair.approval_status AS a \
    WHERE ($1::text IS NULL OR a.playbook_id = $1) \
    ORDER BY a.approved_at DESC, a.approval_id DESC LIMIT $2";

/// Ids are shortened in the table to what `revoke-approval` accepts as a prefix; hashes to a
/// recognisable head. `--json` shows both whole.
const SHORT_ID: usize = super::approve::MIN_PREFIX;
const SHORT_HASH: usize = 12;

pub fn run(ctx: &Ctx, playbook: Option<&str>, limit: u32) -> Result<i32, CliError> {
    let mut client = ctx.connect()?;
    let limit = i64::from(limit);
    let rows = json_rows(&mut client, SQL, &[&playbook, &limit])?;
    if ctx.json {
        output::emit_json(&Value::Array(rows));
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        output::emit_human(&match playbook {
            Some(id) => format!("no approvals of {id} recorded"),
            None => "no approvals recorded".to_string(),
        });
        return Ok(exit::OK);
    }
    output::emit_human(&render(&rows));
    Ok(exit::OK)
}

/// The first `n` characters of an already escaped display value.
pub fn short(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn render(rows: &[Value]) -> String {
    let mut table = output::table([
        "approval",
        "playbook",
        "version",
        "hash",
        "approved by",
        "valid until",
        "state",
        "used by run",
    ]);
    output::align_right(&mut table, &[2]);
    for r in rows {
        table.add_row(vec![
            short(&field(r, "approval_id"), SHORT_ID),
            field(r, "playbook_id"),
            field(r, "version"),
            short(&field(r, "hash"), SHORT_HASH),
            field(r, "approved_by"),
            output::timestamp(r.get("valid_until").unwrap_or(&Value::Null)),
            field(r, "state"),
            short(&field(r, "used_by_run"), SHORT_ID),
        ]);
    }
    format!(
        "{table}\n{} approval{} shown, newest first (full ids: --json)",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_table_shortens_ids_and_hashes_and_escapes_text() {
        let rows = [
            json!({
                "approval_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "playbook_id": "p",
                "version": 2, "hash": "ab".repeat(32), "approved_by": "dave\u{1b}[2J",
                "approved_at": "2026-01-01T10:00:00+00:00",
                "valid_until": "2026-01-01T14:00:00.25+00:00", "reason": "CHG-1",
                "state": "used", "used_by_run": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                "revoked_by": null, "revoked_at": null, "revoke_reason": null
            }),
            json!({
                "approval_id": "11111111-2222-4333-8444-555555555555", "playbook_id": "p",
                "version": 1, "hash": "cd".repeat(32), "approved_by": "dave",
                "valid_until": "2026-01-01T09:00:00+00:00", "state": "revoked",
                "used_by_run": null
            }),
        ];
        let text = render(&rows);
        let used = text.lines().find(|l| l.contains("0f8fad5b")).unwrap();
        assert!(
            used.contains("0f8fad5b ") && !used.contains("0f8fad5b-"),
            "{text}"
        );
        assert!(used.contains(&format!("{} ", "ab".repeat(6))), "{text}");
        assert!(
            used.contains("7c9e6679 ") && !used.contains("7c9e6679-"),
            "{text}"
        );
        assert!(used.contains("2026-01-01 14:00:00+00:00"), "{text}");
        assert!(
            !text.contains('\u{1b}') && text.contains("dave\\x1b[2J"),
            "{text}"
        );
        assert!(text.contains("revoked"), "{text}");
        assert!(text.ends_with("2 approvals shown, newest first (full ids: --json)"));
    }

    #[test]
    fn the_query_orders_itself() {
        assert!(SQL.contains("ORDER BY a.approved_at DESC"));
    }
}
