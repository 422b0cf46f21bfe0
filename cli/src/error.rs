//! The one error type every command returns, and how it is shown: a single `pgrepair: …` line on
//! stderr (plus indented `detail:` / `hint:` lines), or `{"error": {…}}` on stdout with `--json`.

use std::fmt;

use serde_json::{json, Value};

use crate::exit;

/// A problem in one local file (`FILE:LINE: message`; line 0 when no line applies).
#[derive(Debug, Clone)]
pub struct FileError {
    pub file: String,
    pub line: u32,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

/// An I/O error's description without its `(os error N)` suffix: "No such file or directory
/// (os error 2)" → "No such file or directory".
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// An error the server raised, with what we were doing when it happened.
#[derive(Debug)]
pub struct ServerError {
    pub sqlstate: Option<String>,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// What we were doing, e.g. the playbook file being registered.
    pub context: Option<String>,
    /// Our own remark on the consequence (e.g. "nothing was installed").
    pub note: Option<String>,
}

#[derive(Debug)]
pub enum CliError {
    /// The server raised an error (guard refusals included).
    Server(Box<ServerError>),
    /// Could not open a session.
    Connect {
        target: String,
        reason: String,
        sqlstate: Option<String>,
    },
    /// Bad invocation or configuration (exit 2).
    Usage(String),
    /// Local files that did not parse / could not be read. `summary` is an optional closing line.
    Files {
        errors: Vec<FileError>,
        summary: Option<String>,
    },
    /// Anything else that makes the command fail (exit 1).
    Failed(String),
    /// Stopped by Ctrl-C; the server cancelled the running statement (exit 130).
    Cancelled(String),
    /// The session was lost in the middle of work that matters (an online run): one line saying
    /// what that leaves behind; `cause` only in the JSON `detail` (exit 2).
    ConnectionLost { message: String, cause: String },
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Connect { .. } | CliError::Usage(_) | CliError::ConnectionLost { .. } => {
                exit::USAGE
            }
            CliError::Server(_) | CliError::Files { .. } | CliError::Failed(_) => exit::FAILED,
            CliError::Cancelled(_) => exit::CANCELLED,
        }
    }

    /// The server cancelled the statement (SQLSTATE 57014, query_canceled).
    pub fn is_query_canceled(&self) -> bool {
        matches!(self, CliError::Server(e)
            if e.sqlstate.as_deref() == Some(crate::cancel::QUERY_CANCELED))
    }

    /// Turns a driver error from a query into a `Server` error, or (for a lost connection or a
    /// type conversion problem) a plain failure.
    pub fn from_pg(e: postgres::Error, context: Option<String>) -> CliError {
        if let Some(db) = e.as_db_error() {
            return CliError::Server(Box::new(ServerError {
                sqlstate: Some(db.code().code().to_string()),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                hint: db.hint().map(str::to_string),
                context,
                note: None,
            }));
        }
        let message = crate::pg_error::error_reason(&e);
        let message = match context {
            Some(c) => format!("{c}: {message}"),
            None => message,
        };
        CliError::Failed(message)
    }

    /// Adds a remark on the consequence of the error (`note:` line / `"note"` key).
    pub fn with_note(self, text: impl Into<String>) -> CliError {
        match self {
            CliError::Server(mut e) => {
                e.note = Some(text.into());
                CliError::Server(e)
            }
            CliError::Failed(m) => CliError::Failed(format!("{m}; {}", text.into())),
            CliError::Cancelled(m) => CliError::Cancelled(format!("{m}; {}", text.into())),
            other => other,
        }
    }

    /// The human rendering, one line per entry, for stderr.
    pub fn human_lines(&self) -> Vec<String> {
        match self {
            CliError::Server(e) => {
                let ServerError {
                    sqlstate,
                    message,
                    detail,
                    hint,
                    context,
                    note,
                } = e.as_ref();
                let mut first = String::from("pgrepair: ");
                if let Some(c) = context {
                    first.push_str(c);
                    first.push_str(": ");
                }
                first.push_str(&one_line(message));
                if let Some(code) = sqlstate {
                    first.push_str(&format!(" [SQLSTATE {code}]"));
                }
                let mut lines = vec![first];
                if let Some(d) = detail {
                    lines.push(format!("  detail: {}", one_line(d)));
                }
                if let Some(h) = hint {
                    lines.push(format!("  hint: {}", one_line(h)));
                }
                if let Some(n) = note {
                    lines.push(format!("  note: {}", one_line(n)));
                }
                lines
            }
            CliError::Connect { target, reason, .. } => {
                vec![format!(
                    "pgrepair: cannot connect to {target}: {}",
                    one_line(reason)
                )]
            }
            CliError::Usage(m) | CliError::Failed(m) => vec![format!("pgrepair: {}", one_line(m))],
            CliError::ConnectionLost { message, .. } => {
                vec![format!("pgrepair: {}", one_line(message))]
            }
            CliError::Cancelled(m) => vec![format!("pgrepair: cancelled: {}", one_line(m))],
            CliError::Files { errors, summary } => {
                let mut lines: Vec<String> =
                    errors.iter().map(|e| one_line(&e.to_string())).collect();
                if let Some(s) = summary {
                    lines.push(format!("pgrepair: {s}"));
                }
                lines
            }
        }
    }

    /// The `--json` rendering: `{"error": {"sqlstate", "message", "detail", "hint", …}}`.
    pub fn to_json(&self) -> Value {
        let inner = match self {
            CliError::Server(e) => {
                let ServerError {
                    sqlstate,
                    message,
                    detail,
                    hint,
                    context,
                    note,
                } = e.as_ref();
                let mut v = json!({
                    "kind": "server",
                    "sqlstate": sqlstate,
                    "message": message,
                    "detail": detail,
                    "hint": hint,
                });
                if let Some(c) = context {
                    v["context"] = json!(c);
                }
                if let Some(n) = note {
                    v["note"] = json!(n);
                }
                v
            }
            CliError::Connect {
                target,
                reason,
                sqlstate,
            } => json!({
                "kind": "connection",
                // 08001: sqlclient_unable_to_establish_sqlconnection, unless the server said more.
                "sqlstate": sqlstate.clone().unwrap_or_else(|| "08001".to_string()),
                "message": format!("cannot connect to {target}: {reason}"),
                "detail": null,
                "hint": null,
                "target": target,
            }),
            CliError::ConnectionLost { message, cause } => json!({
                // 08006: connection_failure
                "kind": "connection", "sqlstate": "08006", "message": message,
                "detail": cause, "hint": null,
            }),
            CliError::Usage(m) => json!({
                "kind": "usage", "sqlstate": null, "message": m, "detail": null, "hint": null,
            }),
            CliError::Failed(m) => json!({
                "kind": "failed", "sqlstate": null, "message": m, "detail": null, "hint": null,
            }),
            CliError::Cancelled(m) => json!({
                "kind": "cancelled", "sqlstate": crate::cancel::QUERY_CANCELED,
                "message": format!("cancelled: {m}"), "detail": null, "hint": null,
            }),
            CliError::Files { errors, summary } => {
                let message = summary.clone().unwrap_or_else(|| {
                    errors
                        .first()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "file error".to_string())
                });
                json!({
                    "kind": "parse",
                    "sqlstate": null,
                    "message": message,
                    "detail": null,
                    "hint": null,
                    "files": errors.iter().map(|e| json!({
                        "file": e.file,
                        "line": if e.line > 0 { json!(e.line) } else { Value::Null },
                        "message": e.message,
                    })).collect::<Vec<_>>(),
                })
            }
        };
        json!({ "error": inner })
    }
}

/// Server messages may span lines; the contract is one line per entry.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, part) in s.lines().enumerate() {
        if i > 0 {
            out.push_str(" / ");
        }
        out.push_str(part.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_renders_sqlstate_detail_hint() {
        let e = CliError::Server(Box::new(ServerError {
            sqlstate: Some("RP006".into()),
            message: "HASH_MISMATCH: expected ab, registered cd".into(),
            detail: Some("d".into()),
            hint: Some("run pgrepair preview".into()),
            context: None,
            note: None,
        }));
        assert_eq!(
            e.human_lines(),
            vec![
                "pgrepair: HASH_MISMATCH: expected ab, registered cd [SQLSTATE RP006]",
                "  detail: d",
                "  hint: run pgrepair preview",
            ]
        );
        let j = e.to_json();
        assert_eq!(j["error"]["sqlstate"], "RP006");
        assert_eq!(j["error"]["hint"], "run pgrepair preview");
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn a_lost_connection_is_one_line_and_exit_2() {
        let e = CliError::ConnectionLost {
            message: "connection lost during online run r: the run stays INCOMPLETE".into(),
            cause: "server closed the connection unexpectedly".into(),
        };
        assert_eq!(
            e.human_lines(),
            vec!["pgrepair: connection lost during online run r: the run stays INCOMPLETE"]
        );
        assert_eq!(e.exit_code(), 2);
        let j = e.to_json();
        assert_eq!(j["error"]["kind"], "connection");
        assert_eq!(
            j["error"]["detail"],
            "server closed the connection unexpectedly"
        );
    }

    #[test]
    fn multi_line_messages_stay_on_one_line() {
        let e = CliError::Failed("a\nb".into());
        assert_eq!(e.human_lines(), vec!["pgrepair: a / b"]);
    }

    #[test]
    fn file_errors_are_file_colon_line() {
        let e = CliError::Files {
            errors: vec![FileError {
                file: "p.sql".into(),
                line: 3,
                message: "unknown key `foo`".into(),
            }],
            summary: None,
        };
        assert_eq!(e.human_lines(), vec!["p.sql:3: unknown key `foo`"]);
        assert_eq!(e.to_json()["error"]["files"][0]["line"], 3);
    }
}
