//! Lint findings for a body: parsed with the server's own parser, each statement's parse tree
//! classified against the rules (classify.rs), positions in file coordinates; and waivers.

use crate::{classify, sqlparse};
use pg_repair_core::{severity_of, text_safety, Severity, Waiver};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    /// 1-based statement number, None for findings about the whole body.
    pub statement: Option<usize>,
    /// 1-based line and column in the file (header included).
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl Finding {
    pub fn to_json(&self) -> Value {
        json!({
            "rule": self.rule,
            "severity": self.severity.as_str(),
            "statement": self.statement,
            "line": self.line,
            "col": self.col,
            "message": self.message,
        })
    }
}

/// Findings for a body whose first line is line `body_line` of its file.
pub fn lint_body(sql: &str, body_line: u32) -> Vec<Finding> {
    let to_file_line = |l: u32| l + body_line - 1;
    let parsed = sqlparse::with_statements(sql, |stmts| {
        if stmts.is_empty() {
            return vec![Finding {
                rule: "empty-body",
                severity: Severity::Error,
                statement: None,
                line: body_line,
                col: 1,
                message: "the body has no SQL statement (only comments or semicolons)".into(),
            }];
        }
        stmts
            .iter()
            .flat_map(|(stmt, node)| {
                classify::classify(*node)
                    .into_iter()
                    .map(move |hit| Finding {
                        rule: hit.rule,
                        severity: severity_of(hit.rule).unwrap_or(Severity::Error),
                        statement: Some(stmt.n),
                        line: to_file_line(stmt.line),
                        col: stmt.col,
                        message: hit.message,
                    })
            })
            .collect()
    });
    parsed.unwrap_or_else(|e| {
        vec![Finding {
            rule: "syntax-error",
            severity: Severity::Error,
            statement: None,
            line: to_file_line(e.line),
            col: e.col,
            message: format!(
                "{} (fix the SQL so PostgreSQL's parser accepts it)",
                e.message
            ),
        }]
    })
}

/// Findings for a check body: exactly one read-only query.
pub fn lint_check(sql: &str, body_line: u32) -> Vec<Finding> {
    let mut findings = lint_body(sql, body_line);
    if findings
        .iter()
        .any(|f| f.rule == "syntax-error" || f.rule == "empty-body")
    {
        return findings;
    }
    let extra = sqlparse::with_statements(sql, |stmts| {
        let mut out = Vec::new();
        if stmts.len() != 1 {
            out.push(Finding {
                rule: "ban-non-select-check",
                severity: Severity::Error,
                statement: stmts.get(1).map(|(s, _)| s.n),
                line: stmts.get(1).map_or(body_line, |(s, _)| s.line + body_line - 1),
                col: stmts.get(1).map_or(1, |(s, _)| s.col),
                message: format!("a check is exactly one query returning the violating rows; found {} statements", stmts.len()),
            });
        }
        if let Some((stmt, node)) = stmts.first() {
            if !classify::is_read_only_query(*node) {
                out.push(Finding {
                    rule: "ban-non-select-check",
                    severity: Severity::Error,
                    statement: Some(stmt.n),
                    line: stmt.line + body_line - 1,
                    col: stmt.col,
                    message: "a check must be a read-only SELECT (no INTO, FOR UPDATE/SHARE, or data-modifying WITH)".into(),
                });
            }
        }
        out
    })
    .unwrap_or_default();
    findings.extend(extra);
    findings
}

/// Control and bidi characters in a body (text_safety): in code an error, inside a string
/// literal or comment a warning whose message shows the escape.
pub fn hidden_characters(sql: &str, body_line: u32) -> Vec<Finding> {
    text_safety::scan_body(sql)
        .into_iter()
        .map(|hit| Finding {
            rule: hit.rule(),
            severity: if hit.is_error() {
                Severity::Error
            } else {
                Severity::Warning
            },
            statement: None,
            line: hit.line + body_line - 1,
            col: hit.col,
            message: hit.message(),
        })
        .collect()
}

/// Findings for a parsed source, by kind.
pub fn lint_source(source: &pg_repair_core::Source) -> Vec<Finding> {
    let mut findings = hidden_characters(source.sql(), source.body_line());
    findings.extend(match source {
        pg_repair_core::Source::Check(c) => lint_check(&c.sql, c.body_line),
        other => lint_body(other.sql(), other.body_line()),
    });
    findings
}

/// Findings stored as jsonb back into (rule, severity) pairs, for guard 7 and preview.
pub fn from_json(stored: &Value) -> Vec<Value> {
    stored.as_array().cloned().unwrap_or_default()
}

/// Whether a finding is waived on `today` (YYYY-MM-DD) by one of the playbook's waivers.
pub fn waived_by<'a>(finding: &Value, waivers: &'a [Waiver], today: &str) -> Option<&'a Waiver> {
    let rule = finding.get("rule").and_then(Value::as_str)?;
    waivers
        .iter()
        .find(|w| w.rule == rule && w.until.as_str() >= today)
}

/// Error findings not lifted by a current waiver: these refuse execution (guard 7).
pub fn blocking(stored: &Value, waivers: &[Waiver], today: &str) -> Vec<Value> {
    from_json(stored)
        .into_iter()
        .filter(|f| f.get("severity").and_then(Value::as_str) == Some("error"))
        .filter(|f| waived_by(f, waivers, today).is_none())
        .collect()
}
