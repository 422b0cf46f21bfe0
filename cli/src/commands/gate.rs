//! `pgrepair gate [--confirm-prod]`: the migration gate (repair.assert_migrations_allowed) plus
//! the authority warnings, for deploy scripts that run migrations next.

use serde_json::{json, Value};

use crate::commands::{json_value, Ctx};
use crate::error::CliError;
use crate::exit;
use crate::output::{self, field};

const GATE_SQL: &str = "SELECT repair.assert_migrations_allowed($1)";
const AUTHORITY_SQL: &str = "SELECT repair.authority()";

pub fn run(ctx: &Ctx, confirm_prod: bool) -> Result<i32, CliError> {
    let mut client = ctx.connect()?;
    let allowed = json_value(&mut client, GATE_SQL, &[&confirm_prod])
        .map_err(|e| e.with_note("migrations must not run"))?;
    // The warnings are advice: when authority() is not available, go without them.
    let authority = json_value(&mut client, AUTHORITY_SQL, &[]).ok();
    let warnings = authority
        .as_ref()
        .map(|a| output::list(a, "warnings"))
        .unwrap_or_default();
    if ctx.json {
        output::emit_json(&json!({
            "allowed": allowed.get("allowed").cloned().unwrap_or(Value::Bool(true)),
            "gate": allowed,
            "authority": authority,
            "warnings": warnings,
        }));
        return Ok(exit::OK);
    }
    let mut out = format!(
        "allowed on {} (session user {}{})\n",
        field(&allowed, "declared_role"),
        field(&allowed, "session_user"),
        if allowed.get("confirm_prod") == Some(&Value::Bool(true)) {
            ", prod confirmed"
        } else {
            ""
        }
    );
    for w in &warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    output::emit_human(&out);
    Ok(exit::OK)
}
