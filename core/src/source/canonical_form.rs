//! The JSON objects that are hashed (format 1). Changing anything here changes every registered
//! hash, so the key set is pinned by the published test vector.

use super::{Check, Playbook, Waiver};
use crate::canonical::{sha256_hex, to_canonical_json};
use serde_json::{json, Value};

const FORMAT: u32 = 1;

/// Lists are sorted again here (the parser already did) so a value built by hand, e.g. from
/// database columns, hashes exactly like the file it came from.
fn sorted_unique(v: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = v.iter().map(String::as_str).collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn waivers(w: &[Waiver]) -> Value {
    let mut w: Vec<&Waiver> = w.iter().collect();
    w.sort_by(|a, b| (&a.rule, &a.until, &a.because).cmp(&(&b.rule, &b.until, &b.because)));
    Value::Array(
        w.into_iter()
            .map(|w| json!({"because": w.because, "rule": w.rule, "until": w.until}))
            .collect(),
    )
}

impl Playbook {
    pub fn canonical_value(&self) -> Value {
        json!({
            "description": self.description,
            "environments": sorted_unique(&self.environments),
            "format": FORMAT,
            "id": self.id,
            "lock_timeout_ms": self.lock_timeout_ms,
            "requires_after": sorted_unique(&self.requires_after),
            "requires_before": sorted_unique(&self.requires_before),
            "sql": self.sql,
            "statement_timeout_ms": self.statement_timeout_ms,
            "title": self.title,
            "waivers": waivers(&self.waivers),
        })
    }

    pub fn canonical_json(&self) -> String {
        to_canonical_json(&self.canonical_value())
    }

    /// Lowercase hex SHA-256 of [`Playbook::canonical_json`].
    pub fn hash(&self) -> String {
        sha256_hex(self.canonical_json().as_bytes())
    }
}

impl Check {
    pub fn canonical_value(&self) -> Value {
        json!({
            "description": self.description,
            "format": FORMAT,
            "id": self.id,
            "kind": "check",
            "severity": self.severity.as_str(),
            "sql": self.sql,
            "tags": sorted_unique(&self.tags),
            "title": self.title,
        })
    }

    pub fn canonical_json(&self) -> String {
        to_canonical_json(&self.canonical_value())
    }

    /// Lowercase hex SHA-256 of [`Check::canonical_json`].
    pub fn hash(&self) -> String {
        sha256_hex(self.canonical_json().as_bytes())
    }
}
