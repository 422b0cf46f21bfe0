//! Lint findings for a body: parsed with the server's own parser, each statement's parse tree
//! classified against the rules (classify.rs), positions in file coordinates; and waivers.

use crate::{classify, sqlparse};
use pg_repair_core::{text_safety, Rule, Severity, Waiver};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    /// 1-based statement number, None for findings about the whole body.
    pub statement: Option<usize>,
    /// 1-based line and column in the file (header included).
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl Finding {
    /// A finding under `rule`, with the rule's own severity, at `(line, col)` in the file.
    pub fn new(
        rule: Rule,
        statement: Option<usize>,
        (line, col): (u32, u32),
        message: impl Into<String>,
    ) -> Self {
        Finding {
            rule,
            severity: rule.severity(),
            statement,
            line,
            col,
            message: message.into(),
        }
    }

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
            return vec![Finding::new(
                Rule::EmptyBody,
                None,
                (body_line, 1),
                Rule::EmptyBody.message(),
            )];
        }
        stmts
            .iter()
            .flat_map(|(stmt, node)| {
                classify::classify(*node).into_iter().map(move |hit| {
                    Finding::new(
                        hit.rule,
                        Some(stmt.n),
                        (to_file_line(stmt.line), stmt.col),
                        hit.message,
                    )
                })
            })
            .collect()
    });
    parsed.unwrap_or_else(|e| {
        vec![Finding::new(
            Rule::SyntaxError,
            None,
            (to_file_line(e.line), e.col),
            format!(
                "{} (fix the SQL so PostgreSQL's parser accepts it)",
                e.message
            ),
        )]
    })
}

/// Findings for a check body: exactly one read-only query.
pub fn lint_check(sql: &str, body_line: u32) -> Vec<Finding> {
    let mut findings = lint_body(sql, body_line);
    if findings
        .iter()
        .any(|f| matches!(f.rule, Rule::SyntaxError | Rule::EmptyBody))
    {
        return findings;
    }
    let extra = sqlparse::with_statements(sql, |stmts| {
        let mut out = Vec::new();
        if stmts.len() != 1 {
            out.push(Finding::new(
                Rule::BanNonSelectCheck,
                stmts.get(1).map(|(s, _)| s.n),
                (
                    stmts.get(1).map_or(body_line, |(s, _)| s.line + body_line - 1),
                    stmts.get(1).map_or(1, |(s, _)| s.col),
                ),
                format!("a check is exactly one query returning the violating rows; found {} statements", stmts.len()),
            ));
        }
        if let Some((stmt, node)) = stmts.first() {
            if !classify::is_read_only_query(*node) {
                out.push(Finding::new(
                    Rule::BanNonSelectCheck,
                    Some(stmt.n),
                    (stmt.line + body_line - 1, stmt.col),
                    Rule::BanNonSelectCheck.message(),
                ));
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
        .map(|hit| {
            Finding::new(
                hit.rule(),
                None,
                (hit.line + body_line - 1, hit.col),
                hit.message(),
            )
        })
        .collect()
}

/// The statements only an online playbook may have (each runs alone, outside a transaction).
fn online_form(f: &Finding) -> bool {
    f.rule == Rule::BanNonTransactional
        && (f.message.starts_with("CREATE INDEX CONCURRENTLY ")
            || f.message.starts_with("REINDEX CONCURRENTLY "))
}

/// Findings for an online playbook: the online forms are allowed (every other rule stands), and
/// each `-- batch` line must mark a statement that can be repeated until it affects no rows.
fn lint_online(sql: &str, body_line: u32) -> Vec<Finding> {
    let mut findings: Vec<Finding> = lint_body(sql, body_line)
        .into_iter()
        .filter(|f| !online_form(f))
        .collect();
    if let Ok(stmts) = sqlparse::split(sql) {
        for line in crate::online::stray_markers(&stmts, sql) {
            findings.push(Finding::new(
                Rule::BatchStatement,
                None,
                (line + body_line - 1, 1),
                "this `-- batch` line marks no statement (it must stand between two statements, right before the batch statement)",
            ));
        }
        let batches = crate::online::batch_statements(&stmts, sql);
        for s in stmts.iter().filter(|s| batches.contains(&s.n)) {
            if !matches!(
                s.tag.as_str(),
                "UpdateStmt" | "DeleteStmt" | "InsertStmt" | "MergeStmt"
            ) {
                findings.push(Finding::new(
                    Rule::BatchStatement,
                    Some(s.n),
                    (s.line + body_line - 1, s.col),
                    format!(
                        "a batch statement runs again until it affects 0 rows, so it must be an UPDATE, DELETE, INSERT or MERGE (this is a {})",
                        s.tag
                    ),
                ));
            }
        }
    }
    findings
}

/// Findings for a parsed source, by kind.
pub fn lint_source(source: &pg_repair_core::Source) -> Vec<Finding> {
    let mut findings = hidden_characters(source.sql(), source.body_line());
    findings.extend(match source {
        pg_repair_core::Source::Check(c) => lint_check(&c.sql, c.body_line),
        pg_repair_core::Source::Playbook(p) if p.mode == pg_repair_core::Mode::Online => {
            lint_online(&p.sql, p.body_line)
        }
        other => lint_body(other.sql(), other.body_line()),
    });
    findings
}

/// Findings stored as jsonb back into (rule, severity) pairs, for guard 7 and preview.
pub fn from_json(stored: &Value) -> Vec<Value> {
    stored.as_array().cloned().unwrap_or_default()
}

/// Whether a finding is waived on `today` (YYYY-MM-DD) by one of the playbook's waivers. A
/// stored finding under a rule this release does not know is waived by nothing.
pub fn waived_by<'a>(finding: &Value, waivers: &'a [Waiver], today: &str) -> Option<&'a Waiver> {
    let rule = finding
        .get("rule")
        .and_then(Value::as_str)
        .and_then(Rule::from_id)?;
    waivers
        .iter()
        .find(|w| w.rule == rule && w.is_current(today))
}

/// Error findings not lifted by a current waiver: these refuse execution (guard 7).
pub fn blocking(stored: &Value, waivers: &[Waiver], today: &str) -> Vec<Value> {
    from_json(stored)
        .into_iter()
        .filter(|f| f.get("severity").and_then(Value::as_str) == Some("error"))
        .filter(|f| waived_by(f, waivers, today).is_none())
        .collect()
}
