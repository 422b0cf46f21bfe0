//! repair.preview: what execute would do for this caller, without raising and without writing.

use crate::clock::today;
use crate::execute::missing;
use crate::guards::{self, Reported, Verdict};
use crate::guc_scope::as_definer;
use crate::{lint, sqlparse};
use serde_json::{json, Value};

const DISPLAY_LIMIT: usize = 2000;

fn verdict_json(r: &Reported) -> Value {
    let (code, name) = r.kind.code_and_name();
    let (verdict, sqlstate, message) = match &r.verdict {
        Verdict::Pass => ("pass", code, None),
        Verdict::Fail(e) => ("fail", e.kind.code(), Some(e.message.clone())),
        Verdict::NeedsInput(why) => ("needs_input", code, Some(why.clone())),
    };
    json!({"guard": r.guard, "name": name, "check": r.check, "verdict": verdict, "sqlstate": sqlstate, "message": message})
}

pub fn preview(id: &str) -> Option<Value> {
    let guards::Report {
        role,
        guards: reported,
        current,
    } = as_definer(|| guards::report(id))?;
    let guard_list: Vec<Value> = reported.iter().map(verdict_json).collect();
    let would_run = guard_list.iter().all(|g| g["verdict"] != "fail");

    let online = current.mode() == pg_repair_core::Mode::Online;
    let statements: Value = match sqlparse::split(current.sql()) {
        Ok(stmts) => {
            let batches = if online {
                crate::online::batch_statements(&stmts, current.sql())
            } else {
                vec![]
            };
            stmts
            .iter()
            .map(|s| {
                let truncated = s.sql.chars().count() > DISPLAY_LIMIT;
                let shown: String = s.sql.chars().take(DISPLAY_LIMIT).collect();
                json!({"n": s.n, "line": s.line + current.body_line - 1, "col": s.col, "tag": s.tag,
                       "sql": if truncated { format!("{shown}…") } else { shown }, "truncated": truncated,
                       "batch": batches.contains(&s.n)})
            })
            .collect()
        }
        Err(_) => json!([]),
    };
    let waivers = current.waivers();
    let today = today();
    let lint_findings: Vec<Value> = lint::from_json(&current.lint)
        .into_iter()
        .map(|mut f| {
            let w = lint::waived_by(&f, waivers, &today).map(|w| w.until.clone());
            f["waived_until"] = json!(w);
            f
        })
        .collect();
    let requires_before = current.requires_before();
    let requires_after = current.requires_after();
    Some(json!({
        "id": current.id,
        "kind": current.kind,
        "version": current.version,
        "hash": current.hash,
        "title": current.title(),
        "description": current.description(),
        "status": if current.retired { "retired" } else { "active" },
        "declared_role": role.map(|r| r.as_str()),
        "environments": current.playbook().map(|p| &p.environments),
        "guards": guard_list,
        "approval": crate::approvals::preview_json(&current, role),
        "would_run": would_run,
        "requires_before": requires_before,
        "requires_after": requires_after,
        "missing_before": missing(requires_before),
        "missing_after": missing(requires_after),
        "lock_timeout_ms": current.lock_timeout_ms().unwrap_or_else(crate::gucs::lock_timeout_ms),
        "statement_timeout_ms": current.statement_timeout_ms().unwrap_or_else(crate::gucs::statement_timeout_ms),
        "mode": current.mode().as_str(),
        "batch_pause_ms": current.playbook().and_then(|p| p.batch_pause_ms),
        "statements": statements,
        "lint": lint_findings,
        "waivers": current.playbook().map(|p| &p.waivers),
    }))
}
