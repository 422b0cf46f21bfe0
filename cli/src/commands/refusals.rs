//! `pgrepair refusals [--since WHEN] [--playbook ID] [--limit N]`: refused calls on record
//! (repair.refusals), newest first.

use serde_json::Value;

use crate::commands::{json_rows, Ctx};
use crate::duration::Since;
use crate::error::CliError;
use crate::exit;
use crate::output::{self, field};

/// `$1`: playbook or null; `$2`: a timestamp (text) or null; `$3`: an interval back from now
/// (text) or null; `$4`: limit. A drop marker names no playbook (the refusals it counts are
/// gone), so it is shown under `--playbook` too: the record there may be incomplete.
const SQL: &str = "SELECT to_jsonb(r) FROM repair.refusals AS r \
    WHERE ($1::text IS NULL OR r.playbook_id = $1 OR r.dropped IS NOT NULL) \
      AND ($2::text IS NULL OR r.refused_at >= $2::text::timestamptz) \
      AND ($3::text IS NULL OR r.refused_at >= now() - $3::text::interval) \
    ORDER BY r.refused_at DESC, r.seq DESC LIMIT $4";

pub fn run(
    ctx: &Ctx,
    since: Option<&Since>,
    playbook: Option<&str>,
    limit: u32,
) -> Result<i32, CliError> {
    let mut client = ctx.connect()?;
    let (at, ago) = match since {
        None => (None, None),
        Some(Since::At(ts)) => (Some(ts.clone()), None),
        Some(Since::Ago(span)) => (None, Some(span.interval())),
    };
    let limit = i64::from(limit);
    let rows = json_rows(&mut client, SQL, &[&playbook, &at, &ago, &limit])?;
    if ctx.json {
        output::emit_json(&Value::Array(rows));
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        let mut text = "no refusals recorded".to_string();
        if let Some(id) = playbook {
            text.push_str(&format!(" for {id}"));
        }
        match since {
            Some(Since::At(ts)) => text.push_str(&format!(" since {ts}")),
            Some(Since::Ago(span)) => text.push_str(&format!(" in the last {span}")),
            None => {}
        }
        output::emit_human(&text);
        return Ok(exit::OK);
    }
    output::emit_human(&render(&rows));
    Ok(exit::OK)
}

/// A drop marker: `— N refusals dropped (queue full)`.
fn marker(r: &Value) -> Option<String> {
    let dropped = r.get("dropped").filter(|v| !v.is_null())?;
    let n = output::text(dropped);
    let plural = if n == "1" { "refusal" } else { "refusals" };
    Some(format!("— {n} {plural} dropped (queue full)"))
}

fn render(rows: &[Value]) -> String {
    let mut table = output::table([
        "time",
        "session user",
        "function",
        "playbook",
        "guard",
        "sqlstate",
        "reason",
        "client",
        "application",
    ]);
    for r in rows {
        let time = output::timestamp(r.get("refused_at").unwrap_or(&Value::Null));
        if let Some(m) = marker(r) {
            table.add_row(vec![time, m]);
            continue;
        }
        table.add_row(vec![
            time,
            field(r, "session_user_name"),
            field(r, "function"),
            field(r, "playbook_id"),
            field(r, "guard"),
            field(r, "sqlstate"),
            output::ellipsize(&field(r, "reason"), 40),
            field(r, "client_addr"),
            output::ellipsize(&field(r, "application_name"), 30),
        ]);
    }
    let refusals = rows.iter().filter(|r| marker(r).is_none()).count();
    format!(
        "{table}\n{refusals} refusal{} shown, newest first",
        if refusals == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_and_drop_markers() {
        let rows = [
            json!({
                "refusal_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "seq": 7,
                "refused_at": "2026-01-01T10:00:01.5+00:00", "function": "execute",
                "session_user_name": "alice", "playbook_id": "p", "guard": "HASH_MISMATCH",
                "sqlstate": "RP006", "message": "HASH_MISMATCH: expected 00, registered ab",
                "reason": "INC-1\u{1b}]0;owned\u{7}", "request_id": null,
                "application_name": "pgrepair", "client_addr": "127.0.0.1", "dropped": null
            }),
            json!({
                "refusal_id": "11111111-2222-4333-8444-555555555555", "seq": 6,
                "refused_at": "2026-01-01T10:00:00+00:00", "function": null,
                "session_user_name": null, "playbook_id": null, "dropped": 1234
            }),
        ];
        let text = render(&rows);
        let first = text.lines().find(|l| l.contains("HASH_MISMATCH")).unwrap();
        for cell in [
            "2026-01-01 10:00:01+00:00",
            "alice",
            "execute",
            "RP006",
            "127.0.0.1",
            "pgrepair",
        ] {
            assert!(first.contains(cell), "{cell}: {text}");
        }
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text}"
        );
        assert!(first.contains("INC-1\\x1b]0;owned\\x07"), "{text}");
        assert!(
            text.contains("— 1234 refusals dropped (queue full)"),
            "{text}"
        );
        assert!(text.ends_with("1 refusal shown, newest first"), "{text}");
        let one = render(&[json!({"refused_at": null, "dropped": 1})]);
        assert!(one.contains("— 1 refusal dropped (queue full)"), "{one}");
    }

    #[test]
    fn the_query_orders_newest_first_and_filters_on_the_server() {
        assert!(SQL.contains("ORDER BY r.refused_at DESC, r.seq DESC"));
        assert!(
            SQL.contains("$2::text::timestamptz") && SQL.contains("now() - $3::text::interval")
        );
    }
}
