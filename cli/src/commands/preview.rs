//! `pgrepair preview ID`: what a playbook would do and which guards would pass, read-only.

use serde_json::Value;

use crate::commands::{json_value, Ctx};
use crate::error::CliError;
use crate::exit;
use crate::output::{self, field, list};

const SQL: &str = "SELECT repair.preview($1)";

pub fn run(ctx: &Ctx, id: &str) -> Result<i32, CliError> {
    let mut client = ctx.connect()?;
    let p = json_value(&mut client, SQL, &[&id])?;
    if ctx.json {
        output::emit_json(&p);
    } else {
        output::emit_human(&render(&p));
    }
    Ok(exit::OK)
}

/// The human report. Tolerant of missing and extra keys.
pub fn render(p: &Value) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        if !value.is_empty() {
            out.push_str(&format!("{label:<15}{value}\n"));
        }
    };

    let mut head = field(p, "id");
    if let Some(v) = p.get("version").filter(|v| !v.is_null()) {
        head.push_str(&format!("  v{}", output::text(v)));
    }
    let status = field(p, "status");
    if !status.is_empty() {
        head.push_str(&format!("  ({status})"));
    }
    line("playbook", head);
    line("title", field(p, "title"));
    line("hash", field(p, "hash"));
    let role = field(p, "declared_role");
    line(
        "declared role",
        if role.is_empty() && p.get("declared_role").is_some() {
            "(unset)".to_string()
        } else {
            role
        },
    );
    line(
        "environments",
        output::joined_or_dash(&list(p, "environments")),
    );
    // absent from an older server's preview: nothing is shown rather than a guess
    line(
        "mode",
        match field(p, "mode").as_str() {
            "online" => "online: one statement at a time, each in its own transaction (pgrepair \
                         execute drives it)"
                .to_string(),
            other => other.to_string(),
        },
    );
    let lock = p.get("lock_timeout_ms").filter(|v| !v.is_null());
    let stmt = p.get("statement_timeout_ms").filter(|v| !v.is_null());
    if lock.is_some() || stmt.is_some() {
        let show = |v: Option<&Value>| {
            v.map(output::duration_ms)
                .unwrap_or_else(|| "default".into())
        };
        line(
            "timeouts",
            format!("lock {}, statement {}", show(lock), show(stmt)),
        );
    }
    match p.get("would_run") {
        Some(Value::Bool(true)) => line("would run", "yes: every guard passes".to_string()),
        Some(Value::Bool(false)) => {
            let why = first_blocker(p)
                .map(|g| format!("no: {g}"))
                .unwrap_or_else(|| "no".to_string());
            line("would run", why)
        }
        _ => {}
    }
    let description = field(p, "description");
    if !description.is_empty() {
        out.push('\n');
        for l in description.lines() {
            out.push_str(&format!("  {l}\n"));
        }
    }

    if let Some(Value::Array(guards)) = p.get("guards") {
        if !guards.is_empty() {
            let mut t = output::table(["#", "guard", "check", "verdict", "sqlstate", "message"]);
            output::align_right(&mut t, &[0]);
            for g in guards {
                t.add_row(vec![
                    field(g, "guard"),
                    field(g, "name"),
                    field(g, "check"),
                    verdict(&field(g, "verdict")),
                    field(g, "sqlstate"),
                    field(g, "message"),
                ]);
            }
            out.push_str(&format!("\nGuards\n{t}\n"));
        }
    }

    let before = list(p, "requires_before");
    let after = list(p, "requires_after");
    if !before.is_empty() || !after.is_empty() {
        out.push_str("\nRequired objects\n");
        out.push_str(&format!(
            "  before: {}\n",
            requirement(
                &before,
                &list(p, "missing_before"),
                "MISSING",
                "execute would stop before running anything"
            )
        ));
        out.push_str(&format!(
            "  after:  {}\n",
            requirement(
                &after,
                &list(p, "missing_after"),
                "not there yet",
                "the run must create them"
            )
        ));
    }

    if let Some(Value::Array(stmts)) = p.get("statements") {
        out.push_str(&format!("\nStatements ({})\n", stmts.len()));
        for (i, s) in stmts.iter().enumerate() {
            let n = match s.get("n").filter(|v| !v.is_null()) {
                Some(v) => output::text(v),
                None => (i + 1).to_string(),
            };
            let at = match s.get("line").filter(|v| !v.is_null()) {
                Some(l) => format!("  (line {})", output::text(l)),
                None => String::new(),
            };
            // a batch statement runs again and again until it affects no row
            let batch = if s.get("batch") == Some(&Value::Bool(true)) {
                "  [batch]"
            } else {
                ""
            };
            out.push_str(&format!("  [{n}]{at}{batch}\n"));
            for l in field(s, "sql").lines() {
                out.push_str(&format!("      {l}\n"));
            }
            if s.get("truncated") == Some(&Value::Bool(true)) {
                out.push_str("      … (truncated for display)\n");
            }
        }
    }

    match p.get("lint") {
        Some(Value::Array(findings)) if !findings.is_empty() => {
            let mut t = output::table(["rule", "severity", "stmt", "line:col", "message"]);
            output::align_right(&mut t, &[2]);
            for f in findings {
                let pos = match (field(f, "line"), field(f, "col")) {
                    (l, c) if l.is_empty() => c,
                    (l, c) if c.is_empty() => l,
                    (l, c) => format!("{l}:{c}"),
                };
                let mut severity = field(f, "severity");
                let waived = field(f, "waived_until");
                if !waived.is_empty() {
                    severity.push_str(&format!(" (waived until {waived})"));
                }
                t.add_row(vec![
                    field(f, "rule"),
                    severity,
                    field(f, "statement"),
                    pos,
                    field(f, "message"),
                ]);
            }
            out.push_str(&format!("\nLint findings\n{t}\n"));
        }
        Some(Value::Array(_)) => out.push_str("\nLint findings: none\n"),
        _ => {}
    }

    if let Some(Value::Array(waivers)) = p.get("waivers") {
        if !waivers.is_empty() {
            let mut t = output::table(["rule", "until", "because"]);
            for w in waivers {
                t.add_row(vec![
                    field(w, "rule"),
                    field(w, "until"),
                    field(w, "because"),
                ]);
            }
            out.push_str(&format!("\nWaivers\n{t}\n"));
        }
    }
    out
}

fn verdict(v: &str) -> String {
    match v {
        "pass" => "pass".to_string(),
        "fail" => "FAIL".to_string(),
        "needs_input" => "needs input".to_string(),
        other => other.to_string(),
    }
}

/// `NAME (SQLSTATE): message` of the first guard that fails.
fn first_blocker(p: &Value) -> Option<String> {
    let guards = p.get("guards")?.as_array()?;
    let g = guards.iter().find(|g| field(g, "verdict") == "fail")?;
    let mut s = field(g, "name");
    let code = field(g, "sqlstate");
    if !code.is_empty() {
        s.push_str(&format!(" [{code}]"));
    }
    let msg = field(g, "message");
    if !msg.is_empty() {
        s.push_str(&format!(": {msg}"));
    }
    Some(s)
}

fn requirement(required: &[String], missing: &[String], label: &str, consequence: &str) -> String {
    if required.is_empty() {
        return "-".to_string();
    }
    let mut s = required.join(", ");
    if missing.is_empty() {
        s.push_str(" -- all present");
    } else {
        s.push_str(&format!(
            " -- {label}: {} ({consequence})",
            missing.join(", ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_full_document() {
        let p = json!({
            "id": "intent_issue_tables", "version": 2, "hash": "ab".repeat(32),
            "title": "Recreate tables", "description": "line one\nline two",
            "status": "active", "declared_role": "staging", "environments": ["staging"],
            "guards": [
                {"guard": 1, "name": "ROLE_UNDECLARED", "check": "declared role", "verdict": "pass", "sqlstate": "RP001", "message": "staging"},
                {"guard": 3, "name": "NOT_AUTHORIZED", "check": "executor", "verdict": "fail", "sqlstate": "42501", "message": "alice is not an executor"},
                {"guard": 4, "name": "REASON_REQUIRED", "check": "reason", "verdict": "needs_input", "sqlstate": "RP004", "message": ""}
            ],
            "would_run": false,
            "requires_before": ["public.workspaces"], "requires_after": ["public.a", "public.b"],
            "missing_before": [], "missing_after": ["public.b"],
            "lock_timeout_ms": 2000, "statement_timeout_ms": 300000,
            "statements": [{"n": 1, "line": 8, "sql": "CREATE TABLE IF NOT EXISTS public.a (id int);", "truncated": false},
                           {"n": 2, "line": 9, "sql": "CREATE TABLE IF NOT EXISTS public.b (", "truncated": true}],
            "lint": [{"rule": "do_block", "severity": "warning", "statement": 2, "line": 9, "col": 1, "message": "cannot verify"},
                     {"rule": "delete", "severity": "error", "statement": 1, "line": 8, "col": 1, "message": "DELETE", "waived_until": "2030-01-01"}],
            "waivers": [{"rule": "delete", "until": "2030-01-01", "because": "cleanup"}],
            "unexpected": "ignored"
        });
        let text = render(&p);
        assert!(text.contains("intent_issue_tables  v2  (active)"));
        assert!(text.contains("no: NOT_AUTHORIZED [42501]: alice is not an executor"));
        assert!(text.contains("FAIL"));
        assert!(text.contains("needs input"));
        assert!(text.contains("lock 2.0 s, statement 5 min 00 s"));
        assert!(text.contains("public.workspaces -- all present"));
        assert!(text.contains("not there yet: public.b"));
        assert!(text.contains("public.b"));
        assert!(text.contains("[2]  (line 9)"));
        assert!(text.contains("truncated"));
        assert!(text.contains("do_block"));
        assert!(text.contains("error (waived until 2030-01-01)"));
    }

    #[test]
    fn shows_the_mode_and_marks_batch_statements() {
        let p = json!({
            "id": "orders_backfill", "mode": "online",
            "statements": [
                {"n": 1, "line": 6, "sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (x)", "batch": false},
                {"n": 2, "line": 9, "sql": "UPDATE t SET y = 0 WHERE id IN (SELECT id FROM t WHERE y IS NULL LIMIT 1000)", "batch": true}
            ]
        });
        let text = render(&p);
        assert!(
            text.contains("mode           online: one statement at a time"),
            "{text}"
        );
        assert!(text.contains("  [1]  (line 6)\n"), "{text}");
        assert!(text.contains("  [2]  (line 9)  [batch]\n"), "{text}");
        let t = render(&json!({"id": "x", "mode": "transactional"}));
        assert!(t.contains("mode           transactional"), "{t}");
        // an older server: no mode, no batch flags
        let old = render(&json!({"id": "x", "statements": [{"n": 1, "sql": "SELECT 1"}]}));
        assert!(!old.contains("mode") && !old.contains("[batch]"), "{old}");
    }

    #[test]
    fn tolerates_a_sparse_document() {
        let text = render(&json!({"id": "x"}));
        assert!(text.contains("playbook       x"));
        render(&json!(null));
    }
}
