//! `pgrepair baseline capture LABEL [--table T]...` and `pgrepair baseline verify LABEL`:
//! exact row counts stored under a label, and the drift since. Drift exits 3.

use serde_json::{json, Value};

use crate::commands::{json_rows, Ctx};
use crate::error::CliError;
use crate::exit;
use crate::output::{self, field};

const CAPTURE_SQL: &str = "SELECT jsonb_build_object('table_name', b.table_name, \
    'row_count', b.row_count) FROM repair.baseline_capture($1, $2::text[]::regclass[]) AS b";
const VERIFY_SQL: &str = "SELECT jsonb_build_object('table_name', v.table_name, \
    'status', v.status, 'before', v.before, 'after', v.after) \
    FROM repair.baseline_verify($1) AS v";

pub fn capture(ctx: &Ctx, label: &str, tables: &[String]) -> Result<i32, CliError> {
    let mut client = ctx.connect()?;
    let tables: Option<Vec<String>> = (!tables.is_empty()).then(|| tables.to_vec());
    let rows = json_rows(&mut client, CAPTURE_SQL, &[&label, &tables])
        .map_err(|e| e.with_note("no baseline was stored"))?;
    let total: i64 = rows
        .iter()
        .filter_map(|r| r.get("row_count").and_then(Value::as_i64))
        .sum();
    if ctx.json {
        output::emit_json(&json!({
            "label": label,
            "tables": rows.len(),
            "total_rows": total,
            "counts": rows,
        }));
        return Ok(exit::OK);
    }
    output::emit_human(&format!(
        "baseline {label}: {} table{}, {total} row{} counted",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        if total == 1 { "" } else { "s" },
    ));
    Ok(exit::OK)
}

pub fn verify(ctx: &Ctx, label: &str) -> Result<i32, CliError> {
    let mut client = ctx.connect()?;
    let rows = json_rows(&mut client, VERIFY_SQL, &[&label])?;
    let code = if rows.is_empty() {
        exit::OK
    } else {
        exit::DRIFT_OR_NO_GO
    };
    if ctx.json {
        output::emit_json(&json!({
            "label": label,
            "drift": !rows.is_empty(),
            "tables": rows,
        }));
        return Ok(code);
    }
    if rows.is_empty() {
        output::emit_human(&format!("baseline {label}: no drift"));
        return Ok(code);
    }
    let mut table = output::table(["table", "status", "before", "after"]);
    output::align_right(&mut table, &[2, 3]);
    for r in &rows {
        table.add_row(vec![
            field(r, "table_name"),
            field(r, "status"),
            field(r, "before"),
            field(r, "after"),
        ]);
    }
    output::emit_human(&format!(
        "{table}\nbaseline {label}: drift in {} table{}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    ));
    Ok(code)
}
