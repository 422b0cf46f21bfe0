//! Interprets header lines as playbook or check fields: unknown, duplicate and missing keys.

use super::layout::{HeaderLine, Layout};
use super::values::{self, shown};
use super::{Check, ParseError, Playbook, Waiver};
use crate::rules::Rule;
use crate::suggest::{close_matches, or_list};
use crate::text_safety;
use std::collections::HashMap;

/// Header keys a playbook file may use, in the order they are usually written.
pub const PLAYBOOK_KEYS: &[&str] = &[
    "repair",
    "title",
    "description",
    "environments",
    "requires-before",
    "requires-after",
    "lock-timeout",
    "statement-timeout",
    "mode",
    "batch-pause",
    "waive",
];

/// Header keys a check file may use.
pub const CHECK_KEYS: &[&str] = &["check", "title", "description", "severity", "tags"];

const REPEATABLE: &[&str] = &["description", "waive"];

fn err(line: u32, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// Rejects unknown and repeated keys. Called line by line together with the value parsers, so
/// the error reported is always the first problem in file order.
#[derive(Default)]
struct Admission<'a> {
    seen: HashMap<&'a str, u32>,
}

impl<'a> Admission<'a> {
    fn admit(&mut self, kind: &str, h: &HeaderLine<'a>, valid: &[&str]) -> Result<(), ParseError> {
        if !valid.contains(&h.key) {
            return Err(err(h.line, unknown_key(kind, h.key, valid)));
        }
        if let Some(first) = self.seen.get(h.key) {
            return Err(err(
                h.line,
                format!(
                    "duplicate `{}` on lines {first} and {}: keep only one",
                    h.key, h.line
                ),
            ));
        }
        if !REPEATABLE.contains(&h.key) {
            self.seen.insert(h.key, h.line);
        }
        Ok(())
    }
}

fn unknown_key(kind: &str, key: &str, valid: &[&str]) -> String {
    let mut message = format!("unknown header key `{}` in a {kind} file", shown(key));
    let close = close_matches(key, valid);
    if !close.is_empty() {
        message.push_str(&format!(": did you mean {}?", or_list(&close)));
    }
    message.push_str(&format!("; valid keys: {}", valid.join(", ")));
    if close.is_empty() {
        message.push_str(
            ". A comment directly below the header is read as a header line: put a blank line \
             between the header and the rest of the file",
        );
    }
    message
}

/// Header values are plain one-line text: no control character (tab included, except the spaces
/// and tabs around the value, which are trimmed) and no bidirectional override anywhere on the
/// line. Checked before anything else on the line, so a hostile value is never echoed.
fn plain_text(h: &HeaderLine<'_>) -> Result<(), ParseError> {
    let inner = h.raw_value.trim_matches([' ', '\t']);
    let lead = h.raw_value.len() - h.raw_value.trim_start_matches([' ', '\t']).len();
    let Err(found) = text_safety::check_field(inner) else {
        return Ok(());
    };
    // The prefix before the value is ASCII, so byte offsets there are columns.
    let col = u64::from(h.raw_value_col) + lead as u64 + found.index as u64;
    Err(err(
        h.line,
        format!(
            "{} contains {} at column {col}: header values are plain one-line text; remove it",
            h.key,
            found.describe()
        ),
    ))
}

fn missing(layout: &Layout<'_>, kind: &str, keys: &[(&str, &str)]) -> ParseError {
    let lines: Vec<String> = keys
        .iter()
        .map(|(key, example)| format!("`-- {key}: {example}`"))
        .collect();
    err(
        layout.first_line,
        format!("the {kind} header is missing {}", lines.join(" and ")),
    )
}

fn body(layout: &Layout<'_>) -> Result<(String, u32), ParseError> {
    layout
        .body
        .clone()
        .ok_or_else(|| err(layout.last_line, "empty body: put the SQL after the header"))
}

pub(super) fn playbook(layout: &Layout<'_>) -> Result<Playbook, ParseError> {
    let mut admission = Admission::default();
    let mut id = None;
    let mut title = None;
    let mut description: Vec<String> = Vec::new();
    let mut environments = None;
    let mut requires_before = Vec::new();
    let mut requires_after = Vec::new();
    let mut lock_timeout_ms = None;
    let mut statement_timeout_ms = None;
    let mut waivers: Vec<Waiver> = Vec::new();
    let mut mode = None;
    let mut batch_pause = None;
    let mut waived_on: HashMap<Rule, u32> = HashMap::new();

    for h in &layout.header {
        plain_text(h)?;
        admission.admit("playbook", h, PLAYBOOK_KEYS)?;
        let at = |message: String| err(h.line, message);
        match h.key {
            "repair" => id = Some(values::id("repair", h.value).map_err(at)?),
            "title" => title = Some(values::title(h.value).map_err(at)?),
            "description" => description.push(values::description_line(h.value).map_err(at)?),
            "environments" => environments = Some(values::environments(h.value).map_err(at)?),
            "requires-before" => requires_before = values::relations(h.key, h.value).map_err(at)?,
            "requires-after" => requires_after = values::relations(h.key, h.value).map_err(at)?,
            "lock-timeout" => {
                lock_timeout_ms = Some(values::timeout_ms(h.key, h.value).map_err(at)?)
            }
            "statement-timeout" => {
                statement_timeout_ms = Some(values::timeout_ms(h.key, h.value).map_err(at)?)
            }
            "mode" => mode = Some((values::mode(h.value).map_err(at)?, h.line)),
            "batch-pause" => {
                batch_pause = Some((values::pause_ms(h.key, h.value).map_err(at)?, h.line))
            }
            "waive" => {
                let waiver = values::waiver(h.value).map_err(at)?;
                // Two waivers for one rule would leave which expiry applies to the reader's guess.
                if let Some(first) = waived_on.get(&waiver.rule) {
                    return Err(at(format!(
                        "`{}` is already waived on line {first}: keep one waiver per rule",
                        waiver.rule
                    )));
                }
                waived_on.insert(waiver.rule, h.line);
                waivers.push(waiver);
            }
            _ => {}
        }
    }

    let (id, title) = match (id, title) {
        (Some(id), Some(title)) => (id, title),
        (id, title) => {
            let mut keys = Vec::new();
            if id.is_none() {
                keys.push(("repair", "<id>"));
            }
            if title.is_none() {
                keys.push(("title", "<one-line summary>"));
            }
            return Err(missing(layout, "playbook", &keys));
        }
    };
    let (sql, body_line) = body(layout)?;
    let mode = mode.map(|(m, _)| m).unwrap_or_default();
    if mode != super::Mode::Online {
        if let Some((_, line)) = batch_pause {
            return Err(err(
                line,
                "`batch-pause` applies to batch statements, which only online playbooks have: \
                 add `-- mode: online`, or remove the line",
            ));
        }
        if let Some(n) = super::batch_marker_lines(&sql).first() {
            return Err(err(
                body_line + n - 1,
                "a `-- batch` line marks a batch statement, which only online playbooks have: \
                 add `-- mode: online` to the header, or remove the line",
            ));
        }
    }
    waivers.sort_by(|a, b| (&a.rule, &a.until, &a.because).cmp(&(&b.rule, &b.until, &b.because)));
    Ok(Playbook {
        id,
        title,
        description: (!description.is_empty()).then(|| description.join("\n")),
        environments: environments.unwrap_or_else(|| vec!["staging".to_string()]),
        requires_before,
        requires_after,
        lock_timeout_ms,
        statement_timeout_ms,
        waivers,
        mode,
        batch_pause_ms: batch_pause.map(|(ms, _)| ms),
        sql,
        body_line,
    })
}

pub(super) fn check(layout: &Layout<'_>) -> Result<Check, ParseError> {
    let mut admission = Admission::default();
    let mut id = None;
    let mut title = None;
    let mut description: Vec<String> = Vec::new();
    let mut severity = None;
    let mut tags = Vec::new();

    for h in &layout.header {
        plain_text(h)?;
        admission.admit("check", h, CHECK_KEYS)?;
        let at = |message: String| err(h.line, message);
        match h.key {
            "check" => id = Some(values::id("check", h.value).map_err(at)?),
            "title" => title = Some(values::title(h.value).map_err(at)?),
            "description" => description.push(values::description_line(h.value).map_err(at)?),
            "severity" => severity = Some(values::severity(h.value).map_err(at)?),
            "tags" => tags = values::tags(h.value).map_err(at)?,
            _ => {}
        }
    }

    let (id, title, severity) = match (id, title, severity) {
        (Some(id), Some(title), Some(severity)) => (id, title, severity),
        (id, title, severity) => {
            let mut keys = Vec::new();
            if id.is_none() {
                keys.push(("check", "<id>"));
            }
            if title.is_none() {
                keys.push(("title", "<one-line summary>"));
            }
            if severity.is_none() {
                keys.push(("severity", "critical|important"));
            }
            return Err(missing(layout, "check", &keys));
        }
    };
    let (sql, body_line) = body(layout)?;
    Ok(Check {
        id,
        title,
        description: (!description.is_empty()).then(|| description.join("\n")),
        severity,
        tags,
        sql,
        body_line,
    })
}
