//! repair.preview: what execute would do for this caller, without raising and without writing.

use crate::errors::{Kind, RepairError};
use crate::execute::{lint_guard, missing, today};
use crate::guards;
use crate::guc_scope::as_definer;
use crate::registry;
use crate::{lint, sqlparse};
use serde_json::{json, Value};

const DISPLAY_LIMIT: usize = 2000;

fn verdict(n: u8, kind: Kind, check: &str, result: Result<(), RepairError>) -> Value {
    let (code, name) = kind.code_and_name();
    match result {
        Ok(()) => {
            json!({"guard": n, "name": name, "check": check, "verdict": "pass", "sqlstate": code, "message": null})
        }
        Err(e) => {
            json!({"guard": n, "name": name, "check": check, "verdict": "fail", "sqlstate": e.kind.code(), "message": e.message})
        }
    }
}

fn needs_input(n: u8, kind: Kind, check: &str, message: &str) -> Value {
    let (code, name) = kind.code_and_name();
    json!({"guard": n, "name": name, "check": check, "verdict": "needs_input", "sqlstate": code, "message": message})
}

pub fn preview(id: &str) -> Option<Value> {
    let stored = as_definer(|| registry::load(id))?;
    // What execute would trust: the version re-derived from its source (tampering refuses).
    let (current, integrity) = match registry::verified(stored.clone()) {
        Ok(c) => (c, Ok(())),
        Err(e) => (stored, Err(e)),
    };
    let role = guards::declared_role();
    let mut guard_list = vec![verdict(
        1,
        Kind::RoleUndeclared,
        "declared role",
        role.clone().map(|_| ()),
    )];
    match &role {
        Ok(r) => {
            let base = guards::environment_without_confirmation(*r);
            if base.is_ok() && *r == guards::Role::Prod {
                guard_list.push(needs_input(
                    2,
                    Kind::EnvDisabled,
                    "environment",
                    "prod: repair.allow_prod is on; the call must also pass confirm_prod => true",
                ));
            } else {
                guard_list.push(verdict(2, Kind::EnvDisabled, "environment", base));
            }
        }
        Err(_) => {
            let (code, name) = Kind::EnvDisabled.code_and_name();
            guard_list.push(json!({"guard": 2, "name": name, "check": "environment",
                "verdict": "fail", "sqlstate": code, "message": "no declared role"}));
        }
    }
    guard_list.push(verdict(
        3,
        Kind::NotAuthorized,
        "executor",
        guards::executor(),
    ));
    guard_list.push(needs_input(
        4,
        Kind::ReasonRequired,
        "reason",
        "given at execute (1–500 characters)",
    ));
    let playbook_check = if current.retired {
        Err(RepairError::new(
            Kind::UnknownPlaybook,
            format!("playbook {id} is retired"),
        ))
    } else if current.kind != "playbook" {
        Err(RepairError::new(
            Kind::UnknownPlaybook,
            format!("{id} is a check, not a playbook"),
        ))
    } else {
        match &role {
            Ok(r) => guards::playbook_environment(id, *r, &current.list("environments")),
            Err(_) => Ok(()),
        }
    };
    guard_list.push(verdict(
        5,
        Kind::UnknownPlaybook,
        "playbook",
        playbook_check,
    ));
    guard_list.push(needs_input(
        6,
        Kind::HashMismatch,
        "hash",
        &format!("execute must pass expected_hash = {}", current.hash),
    ));
    guard_list.push(verdict(
        7,
        Kind::LintRejected,
        "lint",
        integrity.and_then(|_| lint_guard(&current)),
    ));
    let would_run = guard_list.iter().all(|g| g["verdict"] != "fail");

    let statements: Value = match sqlparse::split(current.sql()) {
        Ok(stmts) => stmts
            .iter()
            .map(|s| {
                let truncated = s.sql.chars().count() > DISPLAY_LIMIT;
                let shown: String = s.sql.chars().take(DISPLAY_LIMIT).collect();
                json!({"n": s.n, "line": s.line + current.body_line - 1, "col": s.col, "tag": s.tag,
                       "sql": if truncated { format!("{shown}…") } else { shown }, "truncated": truncated})
            })
            .collect(),
        Err(_) => json!([]),
    };
    let waivers = current.waivers();
    let today = today();
    let lint_findings: Vec<Value> = lint::from_json(&current.lint)
        .into_iter()
        .map(|mut f| {
            let w = lint::waived_by(&f, &waivers, &today).map(|w| w.until.clone());
            f["waived_until"] = json!(w);
            f
        })
        .collect();
    let requires_before = current.list("requires_before");
    let requires_after = current.list("requires_after");
    Some(json!({
        "id": current.id,
        "kind": current.kind,
        "version": current.version,
        "hash": current.hash,
        "title": current.doc["title"],
        "description": current.doc["description"],
        "status": if current.retired { "retired" } else { "active" },
        "declared_role": role.as_ref().ok().map(|r| r.as_str()),
        "environments": current.doc["environments"],
        "guards": guard_list,
        "would_run": would_run,
        "requires_before": requires_before,
        "requires_after": requires_after,
        "missing_before": missing(&requires_before),
        "missing_after": missing(&requires_after),
        "lock_timeout_ms": current.int("lock_timeout_ms").unwrap_or_else(crate::gucs::lock_timeout_ms),
        "statement_timeout_ms": current.int("statement_timeout_ms").unwrap_or_else(crate::gucs::statement_timeout_ms),
        "statements": statements,
        "lint": lint_findings,
        "waivers": current.doc["waivers"],
    }))
}
