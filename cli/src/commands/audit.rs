//! `pgrepair audit verify [--expect-head H]`: recompute the hash chains, compare the head.

use serde_json::{json, Value};

use crate::commands::{json_rows, Ctx};
use crate::error::CliError;
use crate::exit;
use crate::output::{self, field};

/// `to_jsonb` of the row keeps this working whatever extra columns verify_audit() returns.
const VERIFY_SQL: &str = "SELECT to_jsonb(v) FROM repair.verify_audit() AS v";
const HEAD_SQL: &str = "SELECT repair.audit_head()::text";

/// `--expect-head` is the head itself, or a file holding it (its first 64-hex-digit word, e.g. a
/// file written by `pgrepair --json audit verify | jq -r .head > FILE`). A value that is neither
/// a head nor an existing file is compared as it is, so it mismatches (exit 1).
fn expected_head(value: Option<&str>) -> Result<Option<String>, CliError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let is_head = |w: &str| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit());
    if is_head(value) || !std::path::Path::new(value).is_file() {
        return Ok(Some(value.to_string()));
    }
    let text = std::fs::read_to_string(value).map_err(|e| {
        CliError::Usage(format!("--expect-head {value}: cannot read the file ({e})"))
    })?;
    text.split(|c: char| !c.is_ascii_hexdigit())
        .find(|w| is_head(w))
        .map(|w| Some(w.to_ascii_lowercase()))
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--expect-head {value}: the file holds no 64-hex-digit audit head"
            ))
        })
}

pub fn verify(ctx: &Ctx, expect_head: Option<&str>) -> Result<i32, CliError> {
    let expect_owned = expected_head(expect_head)?;
    let mut client = ctx.connect()?;
    let rows = json_rows(&mut client, VERIFY_SQL, &[])?;
    let v = rows
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Failed("repair.verify_audit() returned no row".to_string()))?;
    let head: Option<String> = client
        .query_one(HEAD_SQL, &[])
        .and_then(|r| r.try_get(0))
        .map_err(|e| CliError::from_pg(e, None))?;

    let ok = v.get("ok") == Some(&Value::Bool(true));
    let expect = expect_owned.as_deref();
    let head_matches = expect.map(|e| head.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(e)));
    let code = if ok && head_matches != Some(false) {
        exit::OK
    } else {
        exit::FAILED
    };

    if ctx.json {
        let mut doc = match v {
            Value::Object(_) => v,
            other => json!({ "ok": other }),
        };
        doc["head"] = json!(head);
        doc["expected_head"] = json!(expect);
        doc["head_matches"] = json!(head_matches);
        output::emit_json(&doc);
        return Ok(code);
    }

    let rows_checked = field(&v, "rows_checked");
    let mut out = String::new();
    if ok {
        out.push_str(&format!("audit   ok ({rows_checked} rows checked)\n"));
    } else {
        out.push_str(&format!("audit   BROKEN ({rows_checked} rows checked)\n"));
        for (label, key) in [
            ("first bad run", "first_bad_run"),
            ("table", "first_bad_table"),
            ("problem", "problem"),
        ] {
            let val = field(&v, key);
            if !val.is_empty() {
                out.push_str(&format!("  {label:<14}{val}\n"));
            }
        }
        // every broken link, not only the first
        let problems = v.get("problems").and_then(Value::as_array);
        if let Some(problems) = problems.filter(|p| p.len() > 1) {
            out.push_str(&format!("  {} problems:\n", problems.len()));
            for p in problems {
                out.push_str(&format!("  - {}\n", field(p, "problem")));
            }
        }
    }
    out.push_str(&format!(
        "head    {}\n",
        head.as_deref().unwrap_or("(none: no runs recorded)")
    ));
    match (expect, head_matches) {
        (Some(_), Some(true)) => out.push_str("expected head matches\n"),
        (Some(e), Some(false)) => out.push_str(&format!("expected head {e}: MISMATCH\n")),
        _ => {}
    }
    output::emit_human(&out);

    if !ok {
        let mut msg = "audit trail does not verify".to_string();
        let bad = field(&v, "first_bad_run");
        if !bad.is_empty() {
            msg.push_str(&format!(": first bad run {bad}"));
        }
        let table = field(&v, "first_bad_table");
        if !table.is_empty() {
            msg.push_str(&format!(" in {table}"));
        }
        let problem = field(&v, "problem");
        if !problem.is_empty() {
            msg.push_str(&format!(" ({problem})"));
        }
        output::eprint_human(&format!("pgrepair: {msg}"));
    }
    if head_matches == Some(false) {
        output::eprint_human(&format!(
            "pgrepair: audit head mismatch: expected {}, current {}",
            expect.unwrap_or_default(),
            head.as_deref().unwrap_or("(none)")
        ));
    }
    Ok(code)
}
