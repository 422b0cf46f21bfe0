//! `pgrepair lint FILE…`: lint playbook / check files with the server's own parser
//! (`repair.lint`), printed like a compiler: `FILE:LINE:COL: severity[rule] message`.
//!
//! Every file is read and its header parsed locally first (with `pg_repair_core`); a file whose
//! header does not parse is reported as `FILE:LINE: parse error: message` and never sent. The
//! server is contacted only when at least one file parsed. Exit 1 when any file has an
//! error-level finding, a parse error or cannot be read; warnings alone exit 0.

use std::path::{Path, PathBuf};

use pg_repair_core::text_safety;
use postgres::Client;
use serde_json::{json, Value};

use crate::commands::Ctx;
use crate::error::CliError;
use crate::exit;
use crate::output;
use crate::source_file;

const LINT_SQL: &str =
    "SELECT rule, severity, statement, line, col, message FROM repair.lint($1::text)";

/// SQLSTATE `repair.lint` raises for a file that does not parse as a playbook / check.
const INVALID_PARAMETER_VALUE: &str = "22023";
/// SQLSTATE of "function repair.lint(text) does not exist" (an older extension).
const UNDEFINED_FUNCTION: &str = "42883";

/// One finding as `repair.lint` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: String,
    pub severity: String,
    pub statement: Option<i32>,
    pub line: Option<i32>,
    pub col: Option<i32>,
    pub message: String,
}

/// A file that could not be linted: unreadable, not UTF-8, or a header that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// 1-based line, when one applies.
    pub line: Option<u32>,
    pub message: String,
    /// `parse error: …` (a header problem) rather than a plain `FILE: message`.
    pub is_parse_error: bool,
}

/// What linting one file produced (`findings` is filled only by the unit tests: the command
/// streams findings instead of collecting them).
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub struct FileReport {
    pub file: String,
    pub findings: Vec<Finding>,
    pub problem: Option<FileProblem>,
}

#[cfg(test)]
impl FileReport {
    fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity != "warning")
            .count()
            + usize::from(self.problem.is_some())
    }

    fn warnings(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == "warning")
            .count()
    }
}

pub fn run(ctx: &Ctx, files: &[PathBuf]) -> Result<i32, CliError> {
    // 1. Read and parse everything locally; only files that parse go to the server.
    let mut loaded = Vec::with_capacity(files.len());
    for path in files {
        loaded.push(load(path));
    }

    // 2. One session for all of them, opened before anything is printed and only if something
    //    is to be sent.
    let mut client = if loaded.iter().any(|(_, text)| text.is_some()) {
        Some(ctx.connect()?)
    } else {
        None
    };

    // 3. Stream: each finding is printed as its row arrives (1.7 M findings must not be held in
    //    memory), files in the order given.
    let mut printer = Printer::new(ctx.json);
    for (report, text) in &loaded {
        match (text, client.as_mut()) {
            (Some(text), Some(client)) => lint_one(client, &mut printer, &report.file, text)?,
            _ => printer.file_done(&report.file, report.problem.as_ref()),
        }
    }
    let errors = printer.errors;
    printer.finish(files.len());
    Ok(if errors > 0 { exit::FAILED } else { exit::OK })
}

/// Writes the report as it comes: compiler-style lines, or the JSON array
/// `[{file, findings: [...], parse_error}]` built piece by piece. A file's entry starts only when
/// its first finding (or its end) arrives, so an error before that leaves no half-written entry.
struct Printer {
    json: bool,
    out: output::Stdout,
    errors: usize,
    warnings: usize,
    entries: usize,
    /// The file whose entry is open, and how many findings it has so far.
    open: Option<usize>,
}

impl Printer {
    fn new(json: bool) -> Printer {
        Printer {
            json,
            out: output::Stdout::new(),
            errors: 0,
            warnings: 0,
            entries: 0,
            open: None,
        }
    }

    fn begin(&mut self, file: &str) {
        if self.open.is_some() {
            return;
        }
        self.open = Some(0);
        if self.json {
            self.out
                .write_str(if self.entries == 0 { "[\n" } else { ",\n" });
            self.out.write_str(&format!(
                "  {{\n    \"file\": {},\n    \"findings\": [",
                json!(file)
            ));
        }
        self.entries += 1;
    }

    fn finding(&mut self, file: &str, f: &Finding) {
        self.begin(file);
        // `waived`: an error a current waiver of the file lifts; shown, never counted as an error.
        match f.severity.as_str() {
            "warning" => self.warnings += 1,
            "waived" => {}
            _ => self.errors += 1,
        }
        let n = self.open.unwrap_or(0);
        self.open = Some(n + 1);
        if self.json {
            self.out
                .write_str(if n == 0 { "\n      " } else { ",\n      " });
            self.out.write_str(&text_safety::json_escape_unsafe(
                &finding_json(f).to_string(),
            ));
        } else {
            self.out.line(&finding_line(file, f));
        }
    }

    fn file_done(&mut self, file: &str, problem: Option<&FileProblem>) {
        self.begin(file);
        let n = self.open.take().unwrap_or(0);
        if problem.is_some() {
            self.errors += 1;
        }
        if self.json {
            self.out
                .write_str(if n == 0 { "],\n" } else { "\n    ],\n" });
            let pe = problem.map(|p| json!({"line": p.line, "message": p.message}));
            self.out.write_str(&format!(
                "    \"parse_error\": {}\n  }}",
                pe.unwrap_or(Value::Null)
            ));
        } else if let Some(p) = problem {
            self.out.line(&problem_line(file, p));
        }
    }

    fn finish(mut self, files: usize) {
        if self.json {
            self.out
                .write_str(if self.entries == 0 { "[]\n" } else { "\n]\n" });
        } else {
            self.out.line(&summary(self.errors, self.warnings, files));
        }
        self.out.flush();
    }
}

/// Reads and parses one file. The text comes back only when the header parsed.
fn load(path: &Path) -> (FileReport, Option<String>) {
    let file = path.display().to_string();
    let mut report = FileReport {
        file,
        findings: Vec::new(),
        problem: None,
    };
    // Read like every other command reads a playbook (same messages), parsed here so that a
    // header problem is reported as a parse error.
    let text = match source_file::read(path) {
        Ok(text) => text,
        Err(e) => {
            report.problem = Some(FileProblem {
                line: (e.line > 0).then_some(e.line),
                message: e.message,
                is_parse_error: false,
            });
            return (report, None);
        }
    };
    if let Err(e) = pg_repair_core::parse(&text) {
        report.problem = Some(FileProblem {
            line: Some(e.line),
            message: e.message,
            is_parse_error: true,
        });
        return (report, None);
    }
    (report, Some(text))
}

/// Runs `repair.lint` on one file and prints its findings as the rows arrive. A PARSE_ERROR
/// from the server (the extension's parser disagrees with ours: different versions) becomes
/// that file's parse error; any other server error stops the command.
fn lint_one(
    client: &mut Client,
    printer: &mut Printer,
    file: &str,
    text: &str,
) -> Result<(), CliError> {
    // A portal read in batches: memory stays bounded by one batch, and the client wakes once
    // per batch rather than once per row. (The transaction only scopes the portal.)
    const BATCH: i32 = 10_000;
    let mut seen = 0usize;
    let mut tx = match client.transaction() {
        Ok(tx) => tx,
        Err(e) => return Err(CliError::from_pg(e, Some(file.to_string()))),
    };
    let portal = match tx.bind(LINT_SQL, &[&text]) {
        Ok(p) => p,
        Err(e) => return server_error(printer, file, e, seen),
    };
    loop {
        let rows = match tx.query_portal(&portal, BATCH) {
            Ok(rows) => rows,
            Err(e) => return server_error(printer, file, e, seen),
        };
        let done = rows.len() < BATCH as usize;
        for row in rows {
            let finding = (|| -> Result<Finding, postgres::Error> {
                Ok(Finding {
                    rule: row.try_get::<_, Option<String>>(0)?.unwrap_or_default(),
                    severity: row
                        .try_get::<_, Option<String>>(1)?
                        .unwrap_or_else(|| "error".to_string()),
                    statement: row.try_get(2)?,
                    line: row.try_get(3)?,
                    col: row.try_get(4)?,
                    message: row.try_get::<_, Option<String>>(5)?.unwrap_or_default(),
                })
            })()
            .map_err(|e| CliError::from_pg(e, Some(file.to_string())))?;
            seen += 1;
            printer.finding(file, &finding);
        }
        if done {
            break;
        }
    }
    // read-only: nothing to keep
    let _ = tx.rollback();
    printer.file_done(file, None);
    Ok(())
}

fn server_error(
    printer: &mut Printer,
    file: &str,
    e: postgres::Error,
    seen: usize,
) -> Result<(), CliError> {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        if code == INVALID_PARAMETER_VALUE && seen == 0 {
            if let Some((line, message)) = server_parse_error(db.message()) {
                printer.file_done(
                    file,
                    Some(&FileProblem {
                        line,
                        message,
                        is_parse_error: true,
                    }),
                );
                return Ok(());
            }
        }
        if code == UNDEFINED_FUNCTION {
            return Err(CliError::from_pg(e, Some(file.to_string())).with_note(
                "this server's pg_repair has no repair.lint(text): \
                 update the extension (ALTER EXTENSION pg_repair UPDATE)",
            ));
        }
    }
    Err(CliError::from_pg(e, Some(file.to_string())))
}

/// `PARSE_ERROR: line N: message` → (Some(N), message).
fn server_parse_error(message: &str) -> Option<(Option<u32>, String)> {
    let rest = message.strip_prefix("PARSE_ERROR:")?.trim_start();
    if let Some(after) = rest.strip_prefix("line ") {
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<u32>() {
            let msg = after[digits.len()..]
                .trim_start_matches(':')
                .trim()
                .to_string();
            return Some((Some(n), msg));
        }
    }
    Some((None, rest.to_string()))
}

/// `FILE:LINE: parse error: message` (or `FILE: message`).
fn problem_line(file: &str, p: &FileProblem) -> String {
    let prefix = if p.is_parse_error {
        "parse error: "
    } else {
        ""
    };
    let message = one_line(&p.message);
    match p.line {
        Some(l) => format!("{file}:{l}: {prefix}{message}"),
        None => format!("{file}: {prefix}{message}"),
    }
}

/// `FILE:LINE:COL: severity[rule] message`.
fn finding_line(file: &str, f: &Finding) -> String {
    let at = match (f.line, f.col) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
        (Some(l), None) => format!("{file}:{l}"),
        _ => file.to_string(),
    };
    format!("{at}: {}[{}] {}", f.severity, f.rule, one_line(&f.message))
}

fn finding_json(f: &Finding) -> Value {
    json!({
        "rule": f.rule,
        "severity": f.severity,
        "statement": f.statement,
        "line": f.line,
        "col": f.col,
        "message": f.message,
    })
}

/// The compiler-style lines of one file.
#[cfg(test)]
pub fn human_lines(r: &FileReport) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(p) = &r.problem {
        lines.push(problem_line(&r.file, p));
    }
    for f in &r.findings {
        lines.push(finding_line(&r.file, f));
    }
    lines
}

/// `2 errors, 1 warning in 3 files`.
pub fn summary(errors: usize, warnings: usize, files: usize) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {} in {}",
        plural(errors, "error"),
        plural(warnings, "warning"),
        plural(files, "file")
    )
}

/// `[{file, findings: [{rule, severity, statement, line, col, message}], parse_error}]`.
/// `parse_error` is `{line, message}` (line null when none applies, e.g. an unreadable file).
/// (The command streams the same document through `Printer`.)
#[cfg(test)]
pub fn to_json(reports: &[FileReport]) -> Value {
    Value::Array(
        reports
            .iter()
            .map(|r| {
                json!({
                    "file": r.file,
                    "findings": r.findings.iter().map(finding_json).collect::<Vec<_>>(),
                    "parse_error": r.problem.as_ref().map(|p| json!({
                        "line": p.line,
                        "message": p.message,
                    })),
                })
            })
            .collect(),
    )
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim_end).collect::<Vec<_>>().join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg_repair_core::Rule;

    fn finding(rule: &str, severity: &str, line: Option<i32>, col: Option<i32>) -> Finding {
        Finding {
            rule: rule.into(),
            severity: severity.into(),
            statement: Some(1),
            line,
            col,
            message: "msg".into(),
        }
    }

    #[test]
    fn summary_pluralizes() {
        assert_eq!(summary(0, 0, 1), "0 errors, 0 warnings in 1 file");
        assert_eq!(summary(1, 1, 2), "1 error, 1 warning in 2 files");
    }

    #[test]
    fn compiler_style_lines() {
        let r = FileReport {
            file: "p.sql".into(),
            findings: vec![
                finding(Rule::BanDrop.id(), "error", Some(5), Some(1)),
                finding(Rule::WarnDynamicSql.id(), "warning", Some(7), None),
                finding(Rule::EmptyBody.id(), "error", None, None),
            ],
            problem: None,
        };
        assert_eq!(
            human_lines(&r),
            vec![
                "p.sql:5:1: error[ban-drop] msg",
                "p.sql:7: warning[warn-dynamic-sql] msg",
                "p.sql: error[empty-body] msg",
            ]
        );
        assert_eq!((r.errors(), r.warnings()), (2, 1));
    }

    #[test]
    fn problems_render_with_and_without_line() {
        let mut r = FileReport {
            file: "b.sql".into(),
            findings: vec![],
            problem: Some(FileProblem {
                line: Some(3),
                message: "unknown key `colour`".into(),
                is_parse_error: true,
            }),
        };
        assert_eq!(
            human_lines(&r),
            vec!["b.sql:3: parse error: unknown key `colour`"]
        );
        r.problem = Some(FileProblem {
            line: None,
            message: "cannot read: No such file or directory".into(),
            is_parse_error: false,
        });
        assert_eq!(
            human_lines(&r),
            vec!["b.sql: cannot read: No such file or directory"]
        );
        assert_eq!(r.errors(), 1);
        let j = to_json(&[r]);
        assert_eq!(j[0]["parse_error"]["line"], Value::Null);
        assert_eq!(j[0]["findings"], json!([]));
    }

    #[test]
    fn server_parse_errors_are_split() {
        assert_eq!(
            server_parse_error("PARSE_ERROR: line 3: unknown key `x`"),
            Some((Some(3), "unknown key `x`".to_string()))
        );
        assert_eq!(
            server_parse_error("PARSE_ERROR: empty file"),
            Some((None, "empty file".to_string()))
        );
        assert_eq!(server_parse_error("something else"), None);
    }
}
