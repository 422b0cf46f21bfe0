//! Writing results: JSON documents, comfy-table tables, and small formatting helpers for the
//! loosely typed (jsonb) values the server returns.
//!
//! Everything on stdout goes through `emit` / [`Stdout`], everything on stderr through `err_line`.
//! Neither ever panics or exits: a closed stdout (`pgrepair check | head -1`, `| true`) makes
//! the rest of the output go nowhere, and the process still exits with the code the command
//! earned. A closed or broken stderr is ignored the same way. (Rust ignores SIGPIPE, so a
//! write to a closed pipe is an EPIPE error, never a signal.)

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use comfy_table::{presets, Cell, CellAlignment, Table};
use pg_repair_core::text_safety;
use serde_json::Value;

/// Set once a write to stdout failed: later writes are skipped.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
/// Set once a write to stderr failed.
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Writes text to stdout (a newline is added when missing). Never panics, never exits.
pub fn emit(text: &str) {
    let mut out = Stdout::new();
    out.write_str(text);
    if !text.ends_with('\n') {
        out.write_str("\n");
    }
    out.flush();
}

/// A buffered stdout for output written piece by piece (a stream of lint findings). Errors are
/// remembered, not returned: after the first failed write nothing more is attempted.
pub struct Stdout {
    out: io::BufWriter<io::StdoutLock<'static>>,
}

impl Default for Stdout {
    fn default() -> Self {
        Self::new()
    }
}

impl Stdout {
    pub fn new() -> Stdout {
        Stdout {
            out: io::BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
        }
    }

    pub fn write_str(&mut self, text: &str) {
        if STDOUT_GONE.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.out.write_all(text.as_bytes()) {
            stdout_failed(&e);
        }
    }

    /// One human-readable line, escaped by [`human`].
    pub fn line(&mut self, text: &str) {
        self.write_str(&human(text));
        self.write_str("\n");
    }

    pub fn flush(&mut self) {
        if STDOUT_GONE.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.out.flush() {
            stdout_failed(&e);
        }
    }
}

impl Drop for Stdout {
    fn drop(&mut self) {
        // (BufWriter's own drop ignores a failed final flush)
        self.flush();
    }
}

fn stdout_failed(e: &io::Error) {
    if !STDOUT_GONE.swap(true, Ordering::Relaxed) && e.kind() != io::ErrorKind::BrokenPipe {
        // a reader that went away is normal (`| head`); anything else is worth one line
        err_line(&format!("pgrepair: cannot write to stdout: {e}"));
    }
}

/// One line on stderr, escaped by [`human`] (every stderr line may carry server text). Never
/// panics (unlike `eprintln!`) when stderr is closed or a broken pipe. A status line shown by
/// [`live_set`] is erased first and drawn again below the line, so the two never mix (the Ctrl-C
/// watcher prints from its own thread).
pub fn err_line(text: &str) {
    if STDERR_GONE.load(Ordering::Relaxed) {
        return;
    }
    let text = human(text);
    let live = live_lock();
    let mut buf = String::with_capacity(text.len() + 16);
    if live.is_some() {
        buf.push_str(ERASE_LINE);
    }
    buf.push_str(&text);
    buf.push('\n');
    if let Some(l) = live.as_deref() {
        buf.push_str(l);
    }
    write_stderr(&buf);
}

/// Back to the start of the line and erase it (a terminal's CR + EL).
const ERASE_LINE: &str = "\r\x1b[2K";

/// The status line at the bottom of a terminal (stderr), if one is shown.
static LIVE: Mutex<Option<String>> = Mutex::new(None);

fn live_lock() -> MutexGuard<'static, Option<String>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

fn write_stderr(buf: &str) {
    let mut err = io::stderr().lock();
    if err
        .write_all(buf.as_bytes())
        .and_then(|_| err.flush())
        .is_err()
    {
        STDERR_GONE.store(true, Ordering::Relaxed);
    }
}

/// Shows (or replaces) the status line on stderr, without a newline. Only for a terminal. `text`
/// is escaped with [`text_safety::visible_line`] here, so it can never hold a control character
/// of its own; the caller keeps it shorter than the terminal is wide.
pub fn live_set(text: &str) {
    if STDERR_GONE.load(Ordering::Relaxed) {
        return;
    }
    let text = text_safety::visible_line(text).into_owned();
    let mut live = live_lock();
    write_stderr(&format!("{ERASE_LINE}{text}"));
    *live = Some(text);
}

/// Erases the status line (if one is shown) and forgets it.
pub fn live_clear() {
    let mut live = live_lock();
    if live.take().is_some() && !STDERR_GONE.load(Ordering::Relaxed) {
        write_stderr(ERASE_LINE);
    }
}

/// Pretty-printed JSON on stdout. serde_json escapes C0 controls; DEL, C1 and bidi characters
/// are written as `\uXXXX` too, so the document is exactly the same and still safe to print.
pub fn emit_json(v: &Value) {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    emit(&text_safety::json_escape_unsafe(&text));
}

/// Terminal safety: the one function every human-readable text passes through before it is
/// printed. Control characters (C0 except line feed and tab, DEL, C1) and bidirectional
/// override/isolate characters are shown as visible escapes (`\x1b`, `\r`, `\u202e`), so text
/// from the database, a file or the server can never act on the operator's terminal.
pub fn human(text: &str) -> Cow<'_, str> {
    text_safety::visible(text)
}

/// Human-readable text on stdout, escaped by [`human`].
pub fn emit_human(text: &str) {
    emit(&human(text));
}

/// One human-readable line (or several) on stderr, escaped by [`human`].
pub fn eprint_human(text: &str) {
    err_line(text);
}

/// A table in the project's house style.
pub fn table<I, S>(headers: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header(headers.into_iter().map(|h| Cell::new(h.into())));
    t
}

/// Right-aligns the given (0-based) columns, for numbers.
pub fn align_right(t: &mut Table, columns: &[usize]) {
    for &i in columns {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// A JSON value as display text: strings unquoted, null as empty, arrays comma-joined. Strings
/// come out already escaped by [`human`], so tables measure the width they will print at.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => human(s).into_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(_) => v.to_string(),
    }
}

/// `text` of `obj[key]` (empty when missing).
pub fn field(obj: &Value, key: &str) -> String {
    obj.get(key).map(text).unwrap_or_default()
}

/// A string array at `obj[key]` (missing or null = empty).
pub fn list(obj: &Value, key: &str) -> Vec<String> {
    match obj.get(key) {
        Some(Value::Array(a)) => a.iter().map(text).collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![text(other)],
    }
}

/// A list for display, `-` when empty.
pub fn joined_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}

/// `2024-05-01T12:03:04.123456+00:00` (jsonb timestamptz) → `2024-05-01 12:03:04+00:00`.
pub fn timestamp(v: &Value) -> String {
    let s = text(v);
    if s.len() < 19 || s.as_bytes().get(10) != Some(&b'T') {
        return s;
    }
    let (date, rest) = s.split_at(10);
    let rest = &rest[1..];
    let (clock, tail) = rest.split_at(rest.len().min(8));
    // drop fractional seconds, keep the zone offset
    let zone = match tail.strip_prefix('.') {
        Some(frac) => frac.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => tail,
    };
    format!("{date} {clock}{zone}")
}

/// Milliseconds for display: `850 ms`, `12.3 s`, `4 min 05 s`.
pub fn duration_ms(v: &Value) -> String {
    let ms = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    match ms {
        None => text(v),
        Some(ms) if ms < 1000.0 => format!("{} ms", trim_float(ms)),
        Some(ms) if ms < 60_000.0 => format!("{:.1} s", ms / 1000.0),
        Some(ms) => {
            let secs = (ms / 1000.0).round() as u64;
            format!("{} min {:02} s", secs / 60, secs % 60)
        }
    }
}

fn trim_float(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// Shortens `s` to at most `max` characters, marking the cut with `…`.
pub fn ellipsize(s: &str, max: usize) -> String {
    let one_line = s.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut out: String = one_line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Whether stderr is a terminal that can take a redrawn status line (not `TERM=dumb`).
pub fn stderr_takes_status_line() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_are_readable() {
        assert_eq!(
            timestamp(&json!("2024-05-01T12:03:04.123456+00:00")),
            "2024-05-01 12:03:04+00:00"
        );
        assert_eq!(
            timestamp(&json!("2024-05-01T12:03:04+02:00")),
            "2024-05-01 12:03:04+02:00"
        );
        assert_eq!(timestamp(&json!(null)), "");
        assert_eq!(timestamp(&json!("garbage")), "garbage");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms(&json!(850)), "850 ms");
        assert_eq!(duration_ms(&json!(12.4)), "12.4 ms");
        assert_eq!(duration_ms(&json!(12345)), "12.3 s");
        assert_eq!(duration_ms(&json!(245000)), "4 min 05 s");
        assert_eq!(duration_ms(&json!(null)), "");
    }

    #[test]
    fn values_as_text() {
        let v = json!({"a": ["x", "y"], "n": 3, "s": "t", "z": null});
        assert_eq!(field(&v, "a"), "x, y");
        assert_eq!(field(&v, "n"), "3");
        assert_eq!(field(&v, "missing"), "");
        assert_eq!(list(&v, "z"), Vec::<String>::new());
        assert_eq!(ellipsize("abcdef", 4), "abc…");
        assert_eq!(ellipsize("ab\ncd", 10), "ab cd");
    }

    #[test]
    fn human_text_is_escaped() {
        let v = json!({"t": "a\u{1b}[2Jb\rc\u{202e}d\te\nf", "a": ["\u{7}"]});
        assert_eq!(field(&v, "t"), "a\\x1b[2Jb\\rc\\u202ed\te\nf");
        assert_eq!(list(&v, "a"), vec!["\\x07"]);
        assert_eq!(human("x\u{9b}y\u{7f}"), "x\\u009by\\x7f");
        assert_eq!(human(&human("\u{1b}")), "\\x1b");
    }
}
