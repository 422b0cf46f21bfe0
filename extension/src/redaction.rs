//! repair.redact: data values leave error messages and details before they are stored in an
//! append-only table nobody may delete from (or returned by execute). The rules are
//! pg_repair_core::redact's, shared with anything else that shows PostgreSQL errors.

/// `text` with data values replaced by `<redacted>` when repair.redact is on (the default).
pub fn scrub(text: &str) -> String {
    if crate::gucs::redact() {
        pg_repair_core::redact::redact(text)
    } else {
        text.to_string()
    }
}
