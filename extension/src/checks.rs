//! Validation checks: read-only queries returning violating rows, run one by one (each in a
//! read-only subtransaction that is always rolled back), recorded append-only and hash-chained,
//! and summarised as GO / HOLD / NO-GO.

use crate::audit;
use crate::enforcement::Region;
use crate::errors::{caught_sqlstate, ErrCodeCapture, Kind, RepairError, Result};
use crate::guc_scope::{self, as_definer, with_gucs};
use crate::identity::{self, AsUser};
use crate::lock::lock_playbook;
use crate::subxact::in_rolled_back_subxact;
use crate::timeout::{self, Timer};
use crate::{gucs, registry, sqlparse};
use pg_repair_core::records::{CheckResultRow, CheckRunRow};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};
use std::ffi::CStr;
use std::time::Instant;

/// Built-ins that need no parameters: (id, severity, category tag, query). Each carries the tags
/// `builtin` and its category; it runs when no tag is named or one of its tags is.
const BUILTINS: &[(&str, &str, &str, &str)] = &[
    (
        "builtin.fk_type_mismatch",
        "critical",
        "fk",
        "SELECT * FROM repair.check_fk_type_mismatch()",
    ),
    (
        "builtin.fk_missing_index",
        "important",
        "fk",
        "SELECT * FROM repair.check_fk_missing_index()",
    ),
    (
        "builtin.invalid_index",
        "critical",
        "index",
        "SELECT * FROM repair.check_invalid_index()",
    ),
    (
        "builtin.table_without_pk",
        "important",
        "schema",
        "SELECT * FROM repair.check_table_without_pk()",
    ),
];

const SAMPLE_ROWS: i64 = 5;

struct Spec {
    id: String,
    version: Option<i32>,
    hash: Option<String>,
    severity: String,
    sql: String,
    builtin: bool,
    /// Why the check may not run (lint errors, tampering): it is reported as FAIL unrun.
    rejected: Option<String>,
}

pub struct CheckResult {
    pub check_id: String,
    pub severity: String,
    pub status: &'static str,
    pub violations: i64,
    pub sample: Value,
    pub error: Option<String>,
}

/// Registered, active checks whose tags overlap `tags` (all when None). A check runs only when
/// its stored version re-derives cleanly and has no lint error: its query is then exactly one
/// read-only SELECT, which runs as a single statement.
fn registered(tags: Option<&[String]>) -> Vec<Spec> {
    let ids: Vec<String> = as_definer(|| {
        crate::spi::rows("SELECT p.id FROM repair.playbooks p \
                   JOIN repair.playbook_versions v ON v.playbook_id = p.id AND v.version = p.version \
                  WHERE p.kind = 'check' AND p.status = 'active' \
                    AND ($1::text[] IS NULL OR ARRAY(SELECT pg_catalog.jsonb_array_elements_text(v.canonical::jsonb -> 'tags')) && $1) \
                  ORDER BY p.id", &[tags.map(|t| t.to_vec()).into()], |r| Ok(r.get::<String>(1)?.unwrap_or_default()))
    });
    ids.into_iter()
        .filter_map(|id| as_definer(|| registry::load(&id)))
        .map(spec_of)
        .collect()
}

fn spec_of(stored: registry::Current) -> Spec {
    let mut spec = Spec {
        id: stored.id.clone(),
        version: Some(stored.version),
        hash: Some(stored.hash.clone()),
        severity: stored
            .check()
            .map_or("critical", |c| c.severity.as_str())
            .to_string(),
        sql: String::new(),
        builtin: false,
        rejected: None,
    };
    let current = match registry::verified(stored) {
        Ok(c) => c,
        Err(e) => {
            spec.rejected = Some(e.message);
            return spec;
        }
    };
    let blocking = crate::lint::blocking(&current.lint, current.waivers(), &crate::clock::today());
    if let Some(first) = blocking.first() {
        spec.rejected = Some(format!(
            "LINT_REJECTED: check {} has {} lint error(s), first: {} ({}); not run",
            current.id,
            blocking.len(),
            first["message"].as_str().unwrap_or(""),
            first["rule"].as_str().unwrap_or("")
        ));
        return spec;
    }
    match sqlparse::split(current.sql()) {
        Ok(stmts) if stmts.len() == 1 => spec.sql = stmts[0].sql.clone(),
        _ => {
            spec.rejected = Some(format!(
                "LINT_REJECTED: check {} is not exactly one query; not run",
                current.id
            ))
        }
    }
    spec
}

/// Runs one check. Registered checks run as the session user; built-ins (our own catalog
/// queries) as the definer with a pinned search_path. Either way read-only, rolled back, and
/// under the statement timeout. An error is a FAIL with the error.
/// A check that may not run: FAIL with why, so it counts against the decision.
fn not_run(spec: &Spec, why: &str) -> CheckResult {
    CheckResult {
        check_id: spec.id.clone(),
        severity: spec.severity.clone(),
        status: "FAIL",
        violations: 0,
        sample: json!([]),
        error: Some(why.chars().take(1000).collect()),
    }
}

fn evaluate(spec: &Spec) -> CheckResult {
    if let Some(why) = &spec.rejected {
        return not_run(spec, why);
    }
    // The query sits on lines of its own, so a trailing line comment ends with its line. It
    // parsed alone as exactly one SELECT; the wrapped text must parse as exactly one statement
    // too, or nothing runs.
    let wrapped = format!(
        "WITH q AS MATERIALIZED (\n{}\n) SELECT (SELECT pg_catalog.count(*) FROM q), \
         (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(s)), '[]'::jsonb) FROM (SELECT * FROM q LIMIT {SAMPLE_ROWS}) s)",
        spec.sql
    );
    if !matches!(sqlparse::split(&wrapped), Ok(s) if s.len() == 1) {
        return CheckResult {
            check_id: spec.id.clone(),
            severity: spec.severity.clone(),
            status: "FAIL",
            violations: 0,
            sample: json!([]),
            error: Some(
                "LINT_REJECTED: the check's query does not stand alone as one statement; not run"
                    .into(),
            ),
        };
    }
    let session = identity::session_user().0;
    let timeout_ms = gucs::statement_timeout_ms();
    timeout::reset();
    let capture = ErrCodeCapture::push();
    let res = in_rolled_back_subxact(|| {
        let _region = Region::check();
        let _as = (!spec.builtin).then(|| AsUser::switch(session, false));
        // Read-only for the rest of this always-rolled-back subtransaction; a check cannot turn
        // it off again (PostgreSQL refuses read-write inside a read-only subtransaction).
        guc_scope::set_local_in_rolled_back_subxact(c"transaction_read_only", "on");
        let settings: &[(&CStr, &str)] = if spec.builtin {
            &[(c"search_path", "pg_catalog, pg_temp")]
        } else {
            &[]
        };
        with_gucs(settings, || {
            let timer = Timer::arm(timeout_ms);
            let row = Spi::get_two::<i64, JsonB>(&wrapped);
            drop(timer);
            pgrx::check_for_interrupts!();
            let (count, sample) = row.expect("check query");
            (count.unwrap_or(0), sample.map_or(json!([]), |j| j.0))
        })
    });
    let fired = timeout::fired();
    let result = match res {
        Ok((violations, sample)) => CheckResult {
            check_id: spec.id.clone(),
            severity: spec.severity.clone(),
            status: if violations == 0 { "PASS" } else { "FAIL" },
            violations,
            sample,
            error: None,
        },
        Err(e) => {
            let code = caught_sqlstate(&e);
            if code == Kind::Cancelled.code() && !fired {
                drop(capture);
                (*e).rethrow();
            }
            let message = if code == Kind::Cancelled.code() {
                format!("timeout after {timeout_ms} ms")
            } else {
                crate::errors::caught_message_and_detail(&e)
            };
            CheckResult {
                check_id: spec.id.clone(),
                severity: spec.severity.clone(),
                status: "FAIL",
                violations: 0,
                sample: json!([]),
                error: Some(
                    crate::redaction::scrub(&format!("{code}: {message}"))
                        .chars()
                        .take(1000)
                        .collect(),
                ),
            }
        }
    };
    drop(capture);
    result
}

pub struct Decision {
    pub decision: &'static str,
    pub score: String,
    pub passed: i32,
    pub total: i32,
    pub failed_critical: i32,
    pub failed_important: i32,
}

/// GO: all pass. HOLD: only one or two important failures. NO-GO: any critical failure or
/// three or more important ones.
pub fn decide<'a>(results: impl Iterator<Item = (&'a str, &'a str)>) -> Decision {
    let (mut total, mut passed, mut crit, mut imp) = (0, 0, 0, 0);
    for (severity, status) in results {
        total += 1;
        match (status, severity) {
            ("PASS", _) => passed += 1,
            (_, "important") => imp += 1,
            _ => crit += 1,
        }
    }
    let decision = if crit > 0 || imp >= 3 {
        "NO-GO"
    } else if imp > 0 {
        "HOLD"
    } else {
        "GO"
    };
    Decision {
        decision,
        score: format!("{passed}/{total}"),
        passed,
        total,
        failed_critical: crit,
        failed_important: imp,
    }
}

pub fn run_checks(tags: Option<Vec<String>>) -> Result<(String, Vec<CheckResult>)> {
    audit::require_read_committed("repair.run_checks")?;
    // Null or empty (after trimming) = every check.
    let tags = tags
        .map(|t| {
            t.into_iter()
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty());
    let mut specs: Vec<Spec> = BUILTINS
        .iter()
        .filter(|(_, _, category, _)| {
            tags.as_ref()
                .is_none_or(|t| t.iter().any(|t| t == "builtin" || t == category))
        })
        .map(|(id, severity, _, sql)| Spec {
            id: id.to_string(),
            version: None,
            hash: None,
            severity: severity.to_string(),
            sql: sql.to_string(),
            builtin: true,
            rejected: None,
        })
        .collect();
    specs.extend(registered(tags.as_deref()));
    let started_at = crate::clock::now();
    let results: Vec<(CheckResult, i64, &Spec)> = specs
        .iter()
        .map(|spec| {
            let clock = Instant::now();
            let r = evaluate(spec);
            (r, clock.elapsed().as_micros() as i64, spec)
        })
        .collect();
    let finished_at = crate::clock::now();
    let session = identity::session_user().1;
    let run_id = as_definer(|| -> Result<String> {
        let run_id: String = crate::clock::uuid();
        let schema = crate::schema::detect();
        for (r, duration_us, spec) in &results {
            lock_playbook(&r.check_id)?;
            let row = CheckResultRow {
                result_id: crate::clock::uuid(),
                run_id: run_id.clone(),
                check_id: r.check_id.clone(),
                check_version: spec.version,
                check_hash: spec.hash.clone(),
                severity: r.severity.to_string(),
                status: r.status.to_string(),
                violation_count: r.violations,
                sample: r.sample.clone(),
                error: r.error.clone(),
                duration_us: *duration_us,
            };
            audit::append_row("check_results", &r.check_id, &row, schema);
        }
        let d = decide(
            results
                .iter()
                .map(|(r, _, _)| (r.severity.as_str(), r.status)),
        );
        lock_playbook(CheckRunRow::CHAIN)?;
        let row = CheckRunRow {
            run_id: run_id.clone(),
            started_at,
            finished_at,
            session_user_name: session.clone(),
            tags: tags.clone(),
            total: d.total,
            passed: d.passed,
            failed_critical: d.failed_critical,
            failed_important: d.failed_important,
            decision: d.decision.to_string(),
            score: d.score.clone(),
        };
        audit::append_row("check_runs", CheckRunRow::CHAIN, &row, schema);
        Ok(run_id)
    })?;
    Ok((run_id, results.into_iter().map(|(r, _, _)| r).collect()))
}

pub fn decision(run_id: &str) -> Result<Decision> {
    let rows: Vec<(String, String)> = as_definer(|| {
        crate::spi::rows("SELECT severity, status FROM repair.check_results WHERE run_id = $1::uuid ORDER BY seq", &[run_id.into()], |r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())))
    });
    if rows.is_empty() {
        return Err(
            RepairError::new(Kind::InvalidArgument, format!("no check run {run_id}"))
                .hint("Use the run_id that repair.run_checks() returned."),
        );
    }
    Ok(decide(rows.iter().map(|(s, st)| (s.as_str(), st.as_str()))))
}
