//! The playbook / check file format: `-- key: value` header lines, then the SQL body.
//!
//! Parsing is total: any input yields a value or a `ParseError` naming a real line of the file,
//! never a panic, because the extension parses untrusted text inside the server.

mod canonical_form;
mod header;
mod layout;
mod values;

use serde::Serialize;

use crate::rules::Rule;

pub use canonical_form::from_canonical;
pub use header::{CHECK_KEYS, PLAYBOOK_KEYS};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Waiver {
    /// Always a waivable rule ([`Rule::waivable`]): the parser refuses any other.
    pub rule: Rule,
    /// `YYYY-MM-DD`, a valid calendar date.
    pub until: String,
    pub because: String,
}

impl Playbook {
    /// Lines of `sql` (1-based within the body) that are a `-- batch` marker.
    pub fn batch_marker_lines(&self) -> Vec<u32> {
        batch_marker_lines(&self.sql)
    }
}

/// Lines of a normalised body (1-based) that are exactly a `-- batch` marker (surrounding spaces
/// allowed). Whether the line is a comment or sits inside a literal is for the SQL parser to
/// decide (the server's lint does); here it is only a line.
pub fn batch_marker_lines(sql: &str) -> Vec<u32> {
    sql.lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == BATCH_MARKER)
        .map(|(i, _)| i as u32 + 1)
        .collect()
}

impl Waiver {
    /// Whether the waiver still lifts its rule on `today` (`YYYY-MM-DD`): through its `until`
    /// day inclusive. Both dates are zero-padded `YYYY-MM-DD`, so text order is date order.
    pub fn is_current(&self, today: &str) -> bool {
        self.until.as_str() >= today
    }
}

/// How a playbook runs: in one transaction (`repair.execute`), or one top-level statement at a
/// time (`repair.online_begin` … `online_finish`, driven by `pgrepair execute`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Transactional,
    Online,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Transactional => "transactional",
            Mode::Online => "online",
        }
    }
}

/// The body line that marks the next statement of an online playbook as a batch statement.
pub const BATCH_MARKER: &str = "-- batch";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Playbook {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    /// Sorted, unique; `["staging"]` when the header has no `environments` line.
    pub environments: Vec<String>,
    /// Sorted (byte order), unique, exactly as written.
    pub requires_before: Vec<String>,
    pub requires_after: Vec<String>,
    pub lock_timeout_ms: Option<i32>,
    pub statement_timeout_ms: Option<i32>,
    /// Sorted by rule, then until.
    pub waivers: Vec<Waiver>,
    pub mode: Mode,
    /// `batch-pause` (online playbooks only): the pause between two batches.
    pub batch_pause_ms: Option<i32>,
    /// Normalised body: LF line ends, no trailing spaces or tabs, no leading or trailing blank
    /// lines, no final newline.
    pub sql: String,
    /// 1-based line in the original file of the first line of `sql`, so positions the server's
    /// parser reports inside `sql` can be mapped back to the file.
    pub body_line: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckSeverity {
    Critical,
    Important,
}

impl CheckSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckSeverity::Critical => "critical",
            CheckSeverity::Important => "important",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub severity: CheckSeverity,
    /// Sorted, unique.
    pub tags: Vec<String>,
    pub sql: String,
    pub body_line: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    Playbook(Playbook),
    Check(Check),
}

impl Source {
    pub fn id(&self) -> &str {
        match self {
            Source::Playbook(p) => &p.id,
            Source::Check(c) => &c.id,
        }
    }

    /// `"playbook"` or `"check"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Playbook(_) => "playbook",
            Source::Check(_) => "check",
        }
    }

    pub fn sql(&self) -> &str {
        match self {
            Source::Playbook(p) => &p.sql,
            Source::Check(c) => &c.sql,
        }
    }

    /// Transactional for a check.
    pub fn mode(&self) -> Mode {
        match self {
            Source::Playbook(p) => p.mode,
            Source::Check(_) => Mode::Transactional,
        }
    }

    pub fn body_line(&self) -> u32 {
        match self {
            Source::Playbook(p) => p.body_line,
            Source::Check(c) => c.body_line,
        }
    }

    pub fn canonical_json(&self) -> String {
        match self {
            Source::Playbook(p) => p.canonical_json(),
            Source::Check(c) => c.canonical_json(),
        }
    }

    pub fn hash(&self) -> String {
        match self {
            Source::Playbook(p) => p.hash(),
            Source::Check(c) => c.hash(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based, always a real line of the file (1 for an empty file).
    pub line: u32,
    pub message: String,
}

/// Parses a playbook or a check file; the first header key (`repair` or `check`) decides which.
pub fn parse(source: &str) -> Result<Source, ParseError> {
    if let Some(at) = source.find('\0') {
        return Err(nul_byte(source, at));
    }
    let layout = layout::layout(source);
    let Some(first) = layout.header.first() else {
        return Err(no_header(&layout));
    };
    match first.key {
        "repair" => header::playbook(&layout).map(Source::Playbook),
        "check" => header::check(&layout).map(Source::Check),
        other => {
            let kind_key = layout
                .header
                .iter()
                .find(|h| h.key == "repair" || h.key == "check");
            let close = crate::suggest::close_matches(other, &["repair", "check"]);
            let advice = match (kind_key, close.first()) {
                (_, Some(key)) => format!("write `-- {key}: <id>`"),
                (Some(h), None) => format!(
                    "move `-- {}:` (line {}) to the top of the header",
                    h.key, h.line
                ),
                (None, None) => {
                    "start the header with `-- repair: <id>` (a playbook) or `-- check: \
                         <id>` (a check)"
                        .to_string()
                }
            };
            Err(ParseError {
                line: first.line,
                message: format!(
                    "the first header line must name the playbook or check, not `{}`: {advice}",
                    values::shown(other)
                ),
            })
        }
    }
}

/// Like [`parse`], but a check file is an error.
pub fn parse_playbook(source: &str) -> Result<Playbook, ParseError> {
    match parse(source)? {
        Source::Playbook(p) => Ok(p),
        Source::Check(_) => {
            let layout = layout::layout(source);
            Err(ParseError {
                line: layout.first_line,
                message: "this is a check file (`-- check:`), not a playbook: start the file \
                          with `-- repair: <id>`, or register it as a check"
                    .to_string(),
            })
        }
    }
}

/// PostgreSQL's `text` cannot hold U+0000 (the server refuses it with SQLSTATE 22021 before the
/// parser runs), so the offline parser refuses it too: a file never hashes locally that the
/// server would not accept.
fn nul_byte(source: &str, at: usize) -> ParseError {
    let before = &source.as_bytes()[..at];
    let mut line = 1u32;
    for (i, b) in before.iter().enumerate() {
        match b {
            b'\n' => line += 1,
            b'\r' if before.get(i + 1) != Some(&b'\n') => line += 1,
            _ => {}
        }
    }
    ParseError {
        line,
        message: "the file contains a NUL byte (U+0000, shown as \\x00), which PostgreSQL text cannot hold \
                  (the server refuses it with SQLSTATE 22021): remove it"
            .to_string(),
    }
}

fn no_header(layout: &layout::Layout<'_>) -> ParseError {
    let start =
        "start the file with `-- repair: <id>` (a playbook) or `-- check: <id>` (a check), \
                 then one `-- key: value` line per setting, then the SQL";
    let message = match layout.first_text {
        None => format!("the file is empty: {start}"),
        Some(text) if layout::header_line(text.trim_start()).is_some() => {
            "header lines must start with `--` in the first column: remove the indentation"
                .to_string()
        }
        Some(_) => format!("no header: {start}"),
    };
    ParseError {
        line: layout.first_line,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiver(until: &str) -> Waiver {
        Waiver {
            rule: Rule::BanDelete,
            until: until.into(),
            because: "TICKET-1".into(),
        }
    }

    #[test]
    fn a_waiver_is_current_through_its_until_day() {
        let w = waiver("2030-06-15");
        assert!(w.is_current("2000-01-01"));
        assert!(w.is_current("2030-06-14"));
        assert!(
            w.is_current("2030-06-15"),
            "the until day itself is included"
        );
        assert!(!w.is_current("2030-06-16"));
        assert!(!w.is_current("2031-01-01"));
        // Zero-padded dates order as text across months and years.
        assert!(waiver("2030-10-01").is_current("2030-09-30"));
        assert!(!waiver("2029-12-31").is_current("2030-01-01"));
    }

    #[test]
    fn a_parsed_waiver_carries_its_rule() {
        let p = parse_playbook(
            "-- repair: w\n-- title: t\n-- waive: ban-delete until 2030-01-31 because TICKET-1\n\nSELECT 1;\n",
        )
        .unwrap();
        assert_eq!(p.waivers, vec![waiver("2030-01-31")]);
        assert!(p.waivers[0].is_current("2030-01-31"));
        assert_eq!(
            serde_json::to_value(&p.waivers[0]).unwrap(),
            serde_json::json!({"rule": "ban-delete", "until": "2030-01-31", "because": "TICKET-1"})
        );
    }
}
