//! `pgrepair check [--tag T]...`: run the validation checks, print the matrix and the decision.

use serde_json::{json, Value};

use crate::commands::{json_rows, json_value, Ctx};
use crate::error::CliError;
use crate::exit;
use crate::output::{self, field};

const CHECKS_SQL: &str = "SELECT jsonb_build_object('run_id', c.run_id, 'check_id', c.check_id, \
    'severity', c.severity, 'status', c.status, 'violation_count', c.violation_count, \
    'sample', c.sample, 'error', c.error) FROM repair.run_checks($1::text[]) AS c";
const DECISION_SQL: &str = "SELECT to_jsonb(d) FROM repair.decision($1::text::uuid) AS d";

/// The exit code of a decision.
pub fn exit_code(decision: &str) -> i32 {
    match decision {
        "GO" => exit::OK,
        "HOLD" => exit::HOLD,
        _ => exit::DRIFT_OR_NO_GO,
    }
}

pub fn run(ctx: &Ctx, tags: &[String]) -> Result<i32, CliError> {
    let mut client = ctx.connect()?;
    let tags: Option<Vec<String>> = (!tags.is_empty()).then(|| tags.to_vec());
    let checks = json_rows(&mut client, CHECKS_SQL, &[&tags])?;
    let run_id = checks
        .first()
        .map(|c| field(c, "run_id"))
        .ok_or_else(|| CliError::Failed("repair.run_checks() returned no row".to_string()))?;
    let d = json_value(&mut client, DECISION_SQL, &[&run_id])?;
    let decision = field(&d, "decision");
    let score = field(&d, "score");
    let code = exit_code(&decision);

    if ctx.json {
        let checks: Vec<Value> = checks
            .into_iter()
            .map(|mut c| {
                if let Value::Object(m) = &mut c {
                    m.remove("run_id");
                }
                c
            })
            .collect();
        output::emit_json(&json!({
            "run_id": run_id,
            "decision": decision,
            "score": score,
            "passed": d.get("passed"),
            "total": d.get("total"),
            "failed_critical": d.get("failed_critical"),
            "failed_important": d.get("failed_important"),
            "checks": checks,
        }));
        return Ok(code);
    }

    let mut table = output::table(["check", "severity", "status", "violations", "error"]);
    output::align_right(&mut table, &[3]);
    for c in &checks {
        table.add_row(vec![
            field(c, "check_id"),
            field(c, "severity"),
            field(c, "status"),
            field(c, "violation_count"),
            output::ellipsize(&field(c, "error"), 60),
        ]);
    }
    output::emit_human(&format!(
        "{table}\nrun {run_id}\ndecision: {decision}  score: {score}"
    ));
    Ok(code)
}
