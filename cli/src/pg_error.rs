//! Describing the postgres driver's errors in one line. Its own module, with no dependency on the
//! rest of the CLI, so that connect.rs, error.rs and cancel.rs can all use it without depending on
//! each other.

use std::error::Error as _;

/// The useful part of a driver error: the server's message, or the underlying I/O error.
pub fn error_reason(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let top = e.to_string();
    match e.source() {
        Some(src) if top == "error connecting to server" => src.to_string(),
        Some(src) => format!("{top}: {src}"),
        None => top,
    }
}
