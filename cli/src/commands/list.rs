//! `pgrepair list`: the registered playbooks.

use serde_json::Value;

use crate::commands::{json_rows, Ctx};
use crate::error::CliError;
use crate::exit;
use crate::output;

const SQL: &str = "SELECT to_jsonb(p) FROM repair.playbooks AS p ORDER BY p.id";

/// Hashes are shortened in the table; `preview` and `--json` show them whole.
const SHORT_HASH: usize = 16;

pub fn run(ctx: &Ctx) -> Result<i32, CliError> {
    let mut client = ctx.connect()?;
    let rows = json_rows(&mut client, SQL, &[])?;
    if ctx.json {
        output::emit_json(&Value::Array(rows));
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        output::emit_human("no playbooks registered (pgrepair install DIR registers them)");
        return Ok(exit::OK);
    }
    let mut table = output::table([
        "id",
        "version",
        "status",
        "mode",
        "environments",
        "lint E/W",
        "registered",
        "hash",
        "title",
    ]);
    output::align_right(&mut table, &[1, 5]);
    for r in &rows {
        let hash = output::field(r, "hash");
        let short: String = hash.chars().take(SHORT_HASH).collect();
        table.add_row(vec![
            output::field(r, "id"),
            output::field(r, "version"),
            output::field(r, "status"),
            // An older server's view has no mode column: every playbook there is transactional.
            match output::field(r, "mode") {
                m if m.is_empty() => "transactional".to_string(),
                m => m,
            },
            output::field(r, "environments"),
            format!(
                "{}/{}",
                count(r.get("lint_errors")),
                count(r.get("lint_warnings"))
            ),
            output::timestamp(r.get("registered_at").unwrap_or(&Value::Null)),
            if hash.chars().count() > SHORT_HASH {
                format!("{short}…")
            } else {
                hash
            },
            output::ellipsize(&output::field(r, "title"), 60),
        ]);
    }
    output::emit_human(&format!(
        "{table}\n{} playbook{} (full hashes: pgrepair preview ID, or --json)",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    ));
    Ok(exit::OK)
}

fn count(v: Option<&Value>) -> String {
    match v {
        Some(Value::Null) | None => "0".to_string(),
        Some(v) => output::text(v),
    }
}
