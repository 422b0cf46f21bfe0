//! The JSON objects that are hashed (format 1). Changing anything here changes every registered
//! hash, so the key set is pinned by the published test vector.

use super::{Check, CheckSeverity, Mode, Playbook, Source, Waiver};
use crate::canonical::{sha256_hex, to_canonical_json};
use serde::Deserialize;
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
        let mut v = json!({
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
        });
        // Keys only online playbooks have: every hash published before modes existed (and every
        // transactional playbook's since) is unchanged.
        if self.mode == Mode::Online {
            v["mode"] = json!("online");
            if let Some(ms) = self.batch_pause_ms {
                v["batch_pause_ms"] = json!(ms);
            }
        }
        v
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

/// The canonical object of a playbook, as stored (`repair.playbook_versions.canonical`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredPlaybook {
    description: Option<String>,
    environments: Vec<String>,
    format: u32,
    id: String,
    lock_timeout_ms: Option<i32>,
    requires_after: Vec<String>,
    requires_before: Vec<String>,
    sql: String,
    statement_timeout_ms: Option<i32>,
    title: String,
    waivers: Vec<Waiver>,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    batch_pause_ms: Option<i32>,
}

/// The canonical object of a check, as stored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredCheck {
    description: Option<String>,
    format: u32,
    id: String,
    #[allow(dead_code)]
    kind: String,
    severity: String,
    sql: String,
    tags: Vec<String>,
    title: String,
}

/// A stored canonical JSON text read back into its type (`body_line` is stored beside it).
/// None when it is not exactly a format-1 playbook or check object: a stored row that is not is
/// never trusted (the server re-derives every version from its source before running it).
pub fn from_canonical(json: &str, body_line: u32) -> Option<Source> {
    let v: Value = serde_json::from_str(json).ok()?;
    if v.get("kind").and_then(Value::as_str) == Some("check") {
        let c: StoredCheck = serde_json::from_value(v).ok()?;
        let severity = match c.severity.as_str() {
            "critical" => CheckSeverity::Critical,
            "important" => CheckSeverity::Important,
            _ => return None,
        };
        if c.format != FORMAT {
            return None;
        }
        Some(Source::Check(Check {
            id: c.id,
            title: c.title,
            description: c.description,
            severity,
            tags: c.tags,
            sql: c.sql,
            body_line,
        }))
    } else {
        let p: StoredPlaybook = serde_json::from_value(v).ok()?;
        // Only the form canonical_value writes: `mode` present exactly for online playbooks, a
        // pause only with it.
        let mode = match p.mode {
            None => Mode::Transactional,
            Some(Mode::Online) => Mode::Online,
            Some(Mode::Transactional) => return None,
        };
        if p.format != FORMAT || (mode != Mode::Online && p.batch_pause_ms.is_some()) {
            return None;
        }
        Some(Source::Playbook(Playbook {
            id: p.id,
            title: p.title,
            description: p.description,
            environments: p.environments,
            requires_before: p.requires_before,
            requires_after: p.requires_after,
            lock_timeout_ms: p.lock_timeout_ms,
            statement_timeout_ms: p.statement_timeout_ms,
            waivers: p.waivers,
            mode,
            batch_pause_ms: p.batch_pause_ms,
            sql: p.sql,
            body_line,
        }))
    }
}

#[cfg(test)]
mod stored_tests {
    use super::*;

    #[test]
    fn canonical_json_reads_back_into_the_same_value() {
        let src = "-- repair: p1\n-- title: T\n-- environments: staging, prod\n-- requires-after: public.t\n\
                   -- waive: ban-update until 2099-01-01 because reviewed\nUPDATE public.t SET x = 1 WHERE false;\n";
        let parsed = crate::parse(src).unwrap();
        let back = from_canonical(&parsed.canonical_json(), parsed.body_line()).unwrap();
        assert_eq!(back, parsed);
        let online = crate::parse("-- repair: p2\n-- title: T\n-- mode: online\n-- batch-pause: 100ms\n\
                   CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON public.t (x);\n-- batch\nUPDATE public.t SET x = 1 WHERE false;\n").unwrap();
        let back = from_canonical(&online.canonical_json(), online.body_line()).unwrap();
        assert_eq!(back, online);
        let check = crate::parse("-- check: c1\n-- title: C\n-- severity: critical\n-- tags: a, b\nSELECT 1 WHERE false;\n").unwrap();
        let back = from_canonical(&check.canonical_json(), check.body_line()).unwrap();
        assert_eq!(back, check);
    }

    #[test]
    fn anything_else_is_none() {
        assert!(from_canonical("{", 1).is_none());
        assert!(from_canonical("{}", 1).is_none());
        let src = crate::parse("-- repair: p1\n-- title: T\nSELECT 1;\n").unwrap();
        let extra = src.canonical_json().replacen('{', "{\"extra\":1,", 1);
        assert!(from_canonical(&extra, 1).is_none());
        let other_format = src.canonical_json().replace("\"format\":1", "\"format\":2");
        assert!(from_canonical(&other_format, 1).is_none());
    }
}
