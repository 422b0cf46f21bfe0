//! The registry: registering and retiring playbooks (and checks), and loading the current one.

use crate::audit;
use crate::errors::{Kind, RepairError, Result};
use crate::guc_scope::as_definer;
use crate::lock::lock_playbook;
use crate::{identity, lint};
use pg_repair_core::records::RegistryEvent;
use pg_repair_core::{Check, Playbook, Source, Waiver};
use pgrx::JsonB;
use serde_json::Value;

pub fn parse(source: &str) -> Result<Source> {
    pg_repair_core::parse(source).map_err(|e| {
        RepairError::new(Kind::ParseError, e.to_string())
            .detail(format!("The playbook file could not be parsed at line {}.", e.line))
            .hint("Check the header: `-- key: value` lines (repair, title, description, environments, requires-before, requires-after, lock-timeout, statement-timeout, waive), then the SQL.")
    })
}

pub struct Registered {
    pub id: String,
    pub version: i32,
    pub hash: String,
    pub status: &'static str,
}

pub fn register(source: &str) -> Result<Registered> {
    audit::require_read_committed("repair.register")?;
    let parsed = parse(source)?;
    let id = parsed.id().to_string();
    let hash = parsed.hash();
    let findings: Vec<Value> = lint::lint_source(&parsed)
        .iter()
        .map(lint::Finding::to_json)
        .collect();
    let (session, current) = (identity::session_user().1, identity::caller_user());
    as_definer(|| {
        lock_playbook(&id)?;
        let latest: Option<(i32, String, String)> = crate::spi::rows(
            "SELECT version, hash, kind FROM repair.playbook_versions WHERE playbook_id = $1 \
                 ORDER BY version DESC LIMIT 1",
            &[id.as_str().into()],
            |r| {
                Ok((
                    r.get::<i32>(1)?.unwrap_or(0),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<String>(3)?.unwrap_or_default(),
                ))
            },
        )
        .pop();
        if let Some((_, _, kind)) = &latest {
            if kind != parsed.kind() {
                return Err(RepairError::new(
                    Kind::InvalidArgument,
                    format!(
                        "{id} is already registered as a {kind}, not a {}",
                        parsed.kind()
                    ),
                )
                .hint("Playbooks and checks share one id space; choose another id."));
            }
        }
        if let Some((version, existing, _)) = &latest {
            if *existing == hash {
                return Ok(Registered {
                    id: id.clone(),
                    version: *version,
                    hash: hash.clone(),
                    status: "unchanged",
                });
            }
        }
        let version = latest.as_ref().map_or(1, |l| l.0 + 1);
        let at = crate::clock::now();
        crate::spi::run(
            "INSERT INTO repair.playbook_versions (playbook_id, version, kind, hash, canonical, source, \
             body_line, lint, registered_at, registered_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::timestamptz, $10)",
            &[
                id.as_str().into(),
                version.into(),
                parsed.kind().into(),
                hash.as_str().into(),
                parsed.canonical_json().into(),
                source.into(),
                (parsed.body_line() as i32).into(),
                JsonB(Value::Array(findings.clone())).into(),
                pg_repair_core::time::Utc::from_pg(at).text().into(),
                session.as_str().into(),
            ],
        );
        let action = if version == 1 { "new" } else { "updated" };
        append_event(&id, version, action, &hash, None, at, &session, &current);
        Ok(Registered {
            id: id.clone(),
            version,
            hash: hash.clone(),
            status: if version == 1 { "new" } else { "updated" },
        })
    })
}

#[allow(clippy::too_many_arguments)]
fn append_event(
    id: &str,
    version: i32,
    action: &'static str,
    hash: &str,
    reason: Option<&str>,
    at: i64,
    session: &str,
    current: &str,
) {
    let schema = crate::schema::detect();
    // Pins every column of the version row (source, lint, registered_by, …) into the chain.
    // A 0.1.0 schema has no column for it (its events pin the hash only).
    let version_digest = schema
        .has_0_2_0()
        .then(|| audit::version_doc(id, version).map(|d| audit::digest_of(&d)));
    let row = RegistryEvent {
        event_id: crate::clock::uuid(),
        playbook_id: id.to_string(),
        version,
        action,
        hash: hash.to_string(),
        reason: reason.map(str::to_string),
        at,
        session_user_name: session.to_string(),
        current_user_name: current.to_string(),
        version_digest,
    };
    audit::append_row("registry_events", id, &row, schema);
}

pub fn retire(id: &str, reason: Option<&str>) -> Result<()> {
    audit::require_read_committed("repair.retire")?;
    let reason = crate::guards::reason(reason)?;
    let (session, current) = (identity::session_user().1, identity::caller_user());
    as_definer(|| {
        lock_playbook(id)?;
        let Some(current_version) = load(id) else {
            return Err(unknown(id));
        };
        if current_version.retired {
            pgrx::notice!("playbook {id} is already retired");
            return Ok(());
        }
        let at = crate::clock::now();
        append_event(
            id,
            current_version.version,
            "retired",
            &current_version.hash,
            Some(&reason),
            at,
            &session,
            &current,
        );
        Ok(())
    })
}

pub fn unknown(id: &str) -> RepairError {
    // The id is the caller's text: bounded, so a 10 MB id is not a 10 MB error.
    RepairError::new(
        Kind::UnknownPlaybook,
        format!("no playbook {}", crate::errors::bounded(id, 80)),
    )
    .hint("See repair.playbooks for the registered ids; register the file first.")
}

/// The current (newest) version of a playbook or check.
#[derive(Debug, Clone)]
pub struct Current {
    pub id: String,
    pub version: i32,
    pub kind: String,
    pub hash: String,
    pub retired: bool,
    /// The stored canonical JSON read back into its type (None when it is not one: such a row
    /// never verifies); after [`verified`], the version parsed from its source.
    pub doc: Option<Source>,
    pub body_line: u32,
    pub lint: Value,
    pub source: String,
    pub canonical: String,
}

const NONE: &[String] = &[];

impl Current {
    /// Transactional for a check (and for a row that is not a playbook).
    pub fn mode(&self) -> pg_repair_core::Mode {
        self.doc
            .as_ref()
            .map_or(pg_repair_core::Mode::Transactional, Source::mode)
    }

    pub fn playbook(&self) -> Option<&Playbook> {
        match &self.doc {
            Some(Source::Playbook(p)) => Some(p),
            _ => None,
        }
    }
    pub fn check(&self) -> Option<&Check> {
        match &self.doc {
            Some(Source::Check(c)) => Some(c),
            _ => None,
        }
    }
    pub fn sql(&self) -> &str {
        self.doc.as_ref().map_or("", Source::sql)
    }
    pub fn title(&self) -> Option<&str> {
        match &self.doc {
            Some(Source::Playbook(p)) => Some(&p.title),
            Some(Source::Check(c)) => Some(&c.title),
            None => None,
        }
    }
    pub fn description(&self) -> Option<&str> {
        match &self.doc {
            Some(Source::Playbook(p)) => p.description.as_deref(),
            Some(Source::Check(c)) => c.description.as_deref(),
            None => None,
        }
    }
    pub fn environments(&self) -> &[String] {
        self.playbook().map_or(NONE, |p| &p.environments)
    }
    pub fn requires_before(&self) -> &[String] {
        self.playbook().map_or(NONE, |p| &p.requires_before)
    }
    pub fn requires_after(&self) -> &[String] {
        self.playbook().map_or(NONE, |p| &p.requires_after)
    }
    pub fn lock_timeout_ms(&self) -> Option<i32> {
        self.playbook().and_then(|p| p.lock_timeout_ms)
    }
    pub fn statement_timeout_ms(&self) -> Option<i32> {
        self.playbook().and_then(|p| p.statement_timeout_ms)
    }
    pub fn waivers(&self) -> &[Waiver] {
        self.playbook().map_or(&[], |p| &p.waivers)
    }
}

/// Loads the current version; call under as_definer.
pub fn load(id: &str) -> Option<Current> {
    crate::spi::query(
        "SELECT v.version, v.kind, v.hash, v.body_line, v.lint::text, v.source, v.canonical, \
                COALESCE((SELECT e.action = 'retired' FROM repair.registry_events e \
                           WHERE e.playbook_id = v.playbook_id ORDER BY e.seq DESC LIMIT 1), false) \
           FROM repair.playbook_versions v WHERE v.playbook_id = $1 ORDER BY v.version DESC LIMIT 1",
        &[id.into()],
        |rows| {
            if rows.is_empty() {
                return Ok(None);
            }
            let r = rows.first();
            let canonical: String = r.get::<String>(7)?.unwrap_or_default();
            let body_line = r.get::<i32>(4)?.unwrap_or(1) as u32;
            Ok(Some(Current {
                id: id.to_string(),
                version: r.get::<i32>(1)?.unwrap_or(0),
                kind: r.get::<String>(2)?.unwrap_or_default(),
                hash: r.get::<String>(3)?.unwrap_or_default(),
                doc: pg_repair_core::from_canonical(&canonical, body_line),
                body_line,
                lint: r
                    .get::<String>(5)?
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or(Value::Array(vec![])),
                source: r.get::<String>(6)?.unwrap_or_default(),
                canonical,
                retired: r.get::<bool>(8)?.unwrap_or(false),
            }))
        },
    )
    .expect("load playbook")
}

thread_local! {
    /// Versions this backend has verified, by id: re-deriving a version (hash, parse, lint) is
    /// skipped only when every stored field it was derived from is byte-for-byte the same.
    static VERIFIED: std::cell::RefCell<std::collections::HashMap<String, Current>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn same_stored(a: &Current, b: &Current) -> bool {
    a.version == b.version
        && a.kind == b.kind
        && a.hash == b.hash
        && a.body_line == b.body_line
        && a.canonical == b.canonical
        && a.source == b.source
}

/// [`verify`], remembered per backend for the exact stored row (any change re-verifies).
pub fn verified(c: Current) -> Result<Current> {
    let hit = VERIFIED.with(|m| {
        m.borrow()
            .get(&c.id)
            .filter(|v| same_stored(v, &c))
            .map(|v| Current {
                retired: c.retired,
                ..v.clone()
            })
    });
    if let Some(v) = hit {
        return Ok(v);
    }
    let v = verify(c)?;
    VERIFIED.with(|m| {
        let mut m = m.borrow_mut();
        // A bound, so a backend that touches many ids does not grow without limit.
        if m.len() >= 1000 {
            m.clear();
        }
        m.insert(v.id.clone(), v.clone());
    });
    Ok(v)
}

/// The stored version re-derived from its source before anything trusts it: the source must
/// still parse to the stored canonical JSON, which must still hash to the stored hash, and the
/// lint findings are recomputed (the stored column is only a record, covered by the audit chain).
fn verify(mut c: Current) -> Result<Current> {
    let tampered = |why: &str| {
        RepairError::new(
            Kind::Tampered,
            format!("stored version {} of {} {why}", c.version, c.id),
        )
        .detail("The registry row was changed after registration; it is never run or trusted.")
        .hint("Run repair.verify_audit() and register the reviewed file again.")
    };
    if pg_repair_core::sha256_hex(c.canonical.as_bytes()) != c.hash {
        return Err(tampered("no longer hashes to its hash"));
    }
    let parsed = pg_repair_core::parse(&c.source)
        .map_err(|_| tampered("has a source that no longer parses"))?;
    if parsed.canonical_json() != c.canonical {
        return Err(tampered(
            "has a source that differs from its canonical form",
        ));
    }
    c.lint = Value::Array(
        lint::lint_source(&parsed)
            .iter()
            .map(lint::Finding::to_json)
            .collect(),
    );
    c.doc = Some(parsed);
    Ok(c)
}
