//! The append-only, hash-chained tables: appending a row, verifying every chain, the head.
//!
//! A row's document is `jsonb_strip_nulls(to_jsonb(row)) - prev_hash - row_hash`, computed by
//! PostgreSQL under pinned settings (UTC), and row_hash = sha256(prev_hash ++ canonical JSON of
//! the document) (pg_repair_core::chain_hash). Appends happen under the playbook's lock (lock.rs),
//! so one chain never forks; chains of different playbooks never wait on each other.

use crate::guc_scope::as_definer;
use crate::schema::{self, Schema};
use pg_repair_core::records::{strip_nulls, Cell, Chained as ChainedRow};
use pg_repair_core::time::Utc;
use pg_repair_core::{chain_hash, sha256_hex, to_canonical_json};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::JsonB;
use serde_json::{Map, Value};

/// A hash-chained table: its id column and the column whose value names the chain.
pub struct Chained {
    pub table: &'static str,
    pub id_col: &'static str,
    pub key_col: &'static str,
    /// The chain began with 0.2.0 (the table existed in 0.1.0, unchained): on a 0.1.0 schema it
    /// is neither written nor verified; rows from before 0.2.0 have no row_hash; and it enters
    /// audit_head() only with chained rows, so a head pinned before an upgrade stays valid.
    pub chained_since_0_2_0: bool,
    /// The table came with 0.4.0: absent from earlier schemas, and in audit_head() only once it
    /// has rows, so a head pinned before the upgrade stays valid.
    pub since_0_4_0: bool,
}

pub const CHAINED: &[Chained] = &[
    Chained {
        table: "registry_events",
        id_col: "event_id",
        key_col: "playbook_id",
        chained_since_0_2_0: false,
        since_0_4_0: false,
    },
    Chained {
        table: "runs",
        id_col: "run_id",
        key_col: "playbook_id",
        chained_since_0_2_0: false,
        since_0_4_0: false,
    },
    Chained {
        table: "check_results",
        id_col: "result_id",
        key_col: "check_id",
        chained_since_0_2_0: false,
        since_0_4_0: false,
    },
    Chained {
        table: "check_runs",
        id_col: "run_id",
        key_col: "chain_key",
        chained_since_0_2_0: false,
        since_0_4_0: false,
    },
    Chained {
        table: "baseline_captures",
        id_col: "capture_id",
        key_col: "label",
        chained_since_0_2_0: true,
        since_0_4_0: false,
    },
    Chained {
        table: "approvals",
        id_col: "event_id",
        key_col: "chain_key",
        chained_since_0_2_0: false,
        since_0_4_0: true,
    },
    Chained {
        table: "refusals",
        id_col: "refusal_id",
        key_col: "chain_key",
        chained_since_0_2_0: false,
        since_0_4_0: true,
    },
];

/// The chains this database's schema has (schema.rs decides, by catalog, and refuses a schema that
/// is not exactly one release's): a database created by 0.1.0 keeps working with this library
/// until ALTER EXTENSION pg_repair UPDATE adds the rest.
fn chains(schema: Schema) -> Vec<&'static Chained> {
    CHAINED
        .iter()
        .filter(|c| schema.has_0_2_0() || !c.chained_since_0_2_0)
        .filter(|c| schema.has_0_4_0() || !c.since_0_4_0)
        .collect()
}

fn chained(table: &str) -> &'static Chained {
    CHAINED
        .iter()
        .find(|c| c.table == table)
        .expect("a chained table")
}

/// Appending to a chain reads its head after taking the chain's lock. Under REPEATABLE READ or
/// SERIALIZABLE that read would use a snapshot older than the lock and miss a row another session
/// appended meanwhile, forking the chain: every appending function refuses those levels.
pub fn require_read_committed(what: &str) -> crate::errors::Result<()> {
    // SAFETY: reads the current transaction's isolation level global, on the backend's thread.
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return Err(crate::errors::RepairError::new(
            crate::errors::Kind::IsolationLevel,
            format!("{what} needs READ COMMITTED"),
        )
        .detail("Under REPEATABLE READ or SERIALIZABLE the audit chain could not see rows committed by other sessions while waiting for its lock.")
        .hint("Call it in a READ COMMITTED transaction (the default)."));
    }
    Ok(())
}

/// The chain's newest row_hash (the link of the first row about to be appended) and the seqs of
/// the `n` rows, in one statement. On a fresh snapshot (READ COMMITTED): the previous row committed
/// by another session before we got the lock is visible here. Must run under the chain's lock.
fn head_and_seqs(
    chain: &Chained,
    key: &str,
    schema: Schema,
    n: usize,
) -> (Option<String>, Vec<i64>) {
    // Nothing is appended to a schema that is no release's exactly (schema::detect refuses it),
    // nor to a chain that schema does not have.
    assert!(
        chains(schema).iter().any(|c| c.table == chain.table),
        "repair.{} is not chained in this database's schema",
        chain.table
    );
    let Chained { table, key_col, .. } = chain;
    let (prev, seqs) = crate::spi::query_mut(
        &format!(
            "SELECT (SELECT row_hash FROM repair.{table} WHERE {key_col} = $1 AND row_hash IS NOT NULL \
                      ORDER BY seq DESC LIMIT 1), \
                    ARRAY(SELECT pg_catalog.nextval('repair.{table}_seq_seq') FROM pg_catalog.generate_series(1, $2))"
        ),
        &[key.into(), (n as i64).into()],
        |rows| {
            let r = rows.first();
            Ok((r.get::<String>(1)?, r.get::<Vec<i64>>(2)?.unwrap_or_default()))
        },
    )
    .expect("chain head");
    assert_eq!(seqs.len(), n, "one seq per row");
    // The first chained row of a chain that began with 0.2.0 links to the rows from before it.
    let prev = match prev {
        None if chain.chained_since_0_2_0 => link_to_unchained(key, None),
        prev => prev,
    };
    (prev, seqs)
}

/// Appends a typed row to repair.<table> in the chain named `key` (typed columns, one kept
/// plan per table); fills seq, prev_hash, row_hash. `schema` is what schema::detect answered in
/// this call. Must run under as_definer and the chain's lock. Returns row_hash.
pub fn append_row<R: ChainedRow>(table: &str, key: &str, row: &R, schema: Schema) -> String {
    let (prev, seqs) = head_and_seqs(chained(table), key, schema, 1);
    let seq = seqs[0];
    let row_hash = chain_hash(prev.as_deref(), &row.document(seq));
    // NULL cells are left out of the INSERT (the columns' default is NULL): a row of an earlier
    // release's shape never names a column that release's schema lacks.
    let cells: Vec<_> = row
        .cells()
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .collect();
    let n = cells.len();
    let columns: Vec<&str> = cells.iter().map(|(c, _)| *c).collect();
    let values: Vec<String> = cells
        .iter()
        .enumerate()
        .map(|(i, (_, v))| format!("${}::{}", i + 1, v.sql_type()))
        .collect();
    let sql = format!(
        "INSERT INTO repair.{table} ({}, seq, prev_hash, row_hash) VALUES ({}, ${}, ${}, ${})",
        columns.join(", "),
        values.join(", "),
        n + 1,
        n + 2,
        n + 3
    );
    let mut args: Vec<DatumWithOid> = cells.iter().map(|(_, v)| datum(v)).collect();
    args.push(seq.into());
    args.push(prev.as_deref().into());
    args.push(row_hash.as_str().into());
    crate::spi::run(&sql, &args);
    log_head(table, key, &row_hash);
    row_hash
}

/// Appends rows to one chain in one statement (the refusal recorder's batches): one head read,
/// the links computed here in order, one INSERT for all. Same rows, hashes and checks as
/// [`append_row`] one by one. Must run under as_definer and the chain's lock.
pub fn append_rows<R: ChainedRow>(table: &str, key: &str, rows: &[R], schema: Schema) {
    if rows.is_empty() {
        return;
    }
    let (mut prev, seqs) = head_and_seqs(chained(table), key, schema, rows.len());
    let mut docs = Vec::with_capacity(rows.len());
    for (row, seq) in rows.iter().zip(seqs) {
        let mut doc = row.document(seq);
        let row_hash = chain_hash(prev.as_deref(), &doc);
        if let Value::Object(m) = &mut doc {
            m.insert("prev_hash".into(), prev.map_or(Value::Null, Value::String));
            m.insert("row_hash".into(), Value::String(row_hash.clone()));
        }
        docs.push(doc);
        prev = Some(row_hash);
    }
    crate::spi::run(
        &format!(
            "INSERT INTO repair.{table} SELECT * FROM pg_catalog.jsonb_populate_recordset(NULL::repair.{table}, $1)"
        ),
        &[JsonB(Value::Array(docs)).into()],
    );
    if let Some(h) = &prev {
        log_head(table, key, h);
    }
}

/// A cell as a statement parameter (text for the types the statement casts).
fn datum(cell: &Cell) -> DatumWithOid<'static> {
    match cell {
        Cell::Text(v) => v.clone().into(),
        Cell::Int(v) => (*v).into(),
        Cell::BigInt(v) => (*v).into(),
        Cell::Bool(b) => (*b).into(),
        Cell::Uuid(u) => u.clone().into(),
        Cell::NullableUuid(u) => u.clone().into(),
        Cell::Timestamp(t) => Utc::from_pg(*t).text().into(),
        Cell::Json(v) => serde_json::to_string(v).expect("a JSON value").into(),
        Cell::TextArray(v) => v.clone().into(),
    }
}

fn log_head(table: &str, key: &str, row_hash: &str) {
    if crate::gucs::log_head() {
        // An external witness: with log shipping, the server log keeps every head, so a chain
        // rewritten consistently by a superuser still disagrees with what was logged.
        let key_col = chained(table).key_col;
        crate::errors::log_line(&format!(
            "pg_repair audit head: {} (after repair.{table} {key_col} {} row_hash {row_hash}, uncommitted)",
            head(),
            crate::errors::bounded(key, 80)
        ));
    }
}

/// What the first chained capture of a label links to instead of NULL: the digest of the label's
/// captures from before 0.2.0 (unchained; each row with its counts), in seq order, those before
/// `before_seq` when given. So a capture slipped in before a chain, or an old one edited or
/// removed, breaks the link. None when the label has no such captures (as on a fresh install).
/// baseline_captures is the only chain that began with 0.2.0.
fn link_to_unchained(label: &str, before_seq: Option<i64>) -> Option<String> {
    crate::spi::one::<JsonB>(
        "SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object( \
                  'row', pg_catalog.jsonb_strip_nulls(pg_catalog.to_jsonb(r)) - 'prev_hash' - 'row_hash', \
                  'counts', (SELECT COALESCE(pg_catalog.jsonb_object_agg(c.table_name, c.row_count), '{}') \
                               FROM repair.baseline_counts c WHERE c.capture_id = r.capture_id)) \
                ORDER BY r.seq) \
           FROM repair.baseline_captures r \
          WHERE r.label = $1 AND r.row_hash IS NULL AND ($2::bigint IS NULL OR r.seq < $2)",
        &[label.into(), before_seq.into()],
    )
    .map(|d| digest_of(&d.0))
}

/// SHA-256 of the canonical JSON of a stored row's document (every column): what a registry
/// event pins for a playbook version, and a baseline capture for its counts.
pub fn digest_of(doc: &Value) -> String {
    sha256_hex(to_canonical_json(doc).as_bytes())
}

/// The document of one playbook_versions row, every column, as stored.
pub fn version_doc(id: &str, version: i32) -> Option<Value> {
    crate::spi::one::<JsonB>(
        "SELECT pg_catalog.jsonb_strip_nulls(pg_catalog.to_jsonb(v)) FROM repair.playbook_versions v \
          WHERE v.playbook_id = $1 AND v.version = $2",
        &[id.into(), version.into()],
    )
    .map(|j| j.0)
}

/// The counts of one baseline capture as a {table: count} document.
pub fn counts_doc(capture_id: &str) -> Value {
    crate::spi::one::<JsonB>(
        "SELECT COALESCE(pg_catalog.jsonb_object_agg(table_name, row_count), '{}') \
           FROM repair.baseline_counts WHERE capture_id = $1::uuid",
        &[capture_id.into()],
    )
    .map_or(Value::Object(Map::new()), |j| j.0)
}

/// One broken link or edited row.
#[derive(Debug, Clone)]
pub struct Problem {
    pub table: String,
    pub id: Option<String>,
    pub seq: Option<i64>,
    pub key: Option<String>,
    pub problem: String,
}

impl Problem {
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "table": self.table, "id": self.id, "seq": self.seq, "key": self.key, "problem": self.problem,
        })
    }
}

#[derive(Debug, Default)]
pub struct Verification {
    pub rows_checked: i64,
    pub problems: Vec<Problem>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
    fn add(
        &mut self,
        table: &str,
        id: Option<String>,
        seq: Option<i64>,
        key: Option<&str>,
        problem: String,
    ) {
        self.problems.push(Problem {
            table: table.to_string(),
            id,
            seq,
            key: key.map(str::to_string),
            problem,
        });
    }
}

const BATCH: i64 = 1000;

/// Recomputes every chain, every stored version and every baseline's counts; reports every
/// problem, not only the first.
pub fn verify() -> Verification {
    as_definer(|| {
        let mut v = Verification::default();
        let schema = schema::detect();
        for c in chains(schema) {
            verify_chain(c, &mut v);
        }
        verify_versions(schema, &mut v);
        // Counts are pinned by a digest only since 0.2.0.
        if schema.has_0_2_0() {
            verify_baseline_counts(&mut v);
        }
        v
    })
}

fn verify_chain(c: &Chained, v: &mut Verification) {
    let Chained {
        table,
        id_col,
        key_col,
        ..
    } = c;
    // The row as JSON text (row_to_json writes every value as to_jsonb would, without building
    // a jsonb per row); the document (nulls and the two hash columns left out) is made in Rust.
    let query = format!(
        "SELECT {id_col}::text, {key_col}, prev_hash, row_hash, seq, pg_catalog.row_to_json(r)::text \
           FROM repair.{table} r ORDER BY {key_col}, seq"
    );
    // First chained rows of a chain that began with 0.2.0: (id, seq, key, prev_hash), whose link
    // to the rows from before it is checked after the scan.
    let mut first_links: Vec<(String, i64, String, Option<String>)> = Vec::new();
    // (chain key, stored row_hash of its previous row). Links are checked against the stored
    // hash, so one edited row is reported once and the rows after it still verify.
    let mut last: Option<(String, Option<String>)> = None;
    crate::spi::for_each(&query, &[], BATCH, |row| {
        let id: String = row.get(1).ok().flatten().unwrap_or_default();
        let key: String = row.get(2).ok().flatten().unwrap_or_default();
        let prev: Option<String> = row.get(3).ok().flatten();
        let stored: Option<String> = row.get(4).ok().flatten();
        let seq: i64 = row.get(5).ok().flatten().unwrap_or_default();
        let doc: Option<String> = row.get(6).ok().flatten();
        v.rows_checked += 1;
        if c.chained_since_0_2_0 && stored.is_none() {
            // A capture made before 0.2.0, never chained: acceptable only before its
            // label's chain begins.
            if matches!(&last, Some((k, Some(_))) if *k == key) {
                v.add(table, Some(id), Some(seq), Some(&key), format!(
                            "repair.{table} seq {seq} ({key_col} {key}): an unchained row after the chain began (inserted)"));
            }
            last = Some((key, None));
            return;
        }
        let expected_prev = match &last {
            Some((k, h)) if *k == key => h.clone(),
            _ => None,
        };
        if c.chained_since_0_2_0 && expected_prev.is_none() {
            first_links.push((id.clone(), seq, key.clone(), prev.clone()));
        } else if prev != expected_prev {
            v.add(table, Some(id.clone()), Some(seq), Some(&key), format!(
                        "repair.{table} seq {seq} ({key_col} {key}): prev_hash {} does not link to the previous row's row_hash {} (a row was deleted, inserted or reordered)",
                        prev.as_deref().unwrap_or("NULL"), expected_prev.as_deref().unwrap_or("NULL")));
        }
        let recomputed = doc
            .and_then(|d| row_document(&d))
            .map(|d| chain_hash(prev.as_deref(), &d))
            .unwrap_or_default();
        if stored.as_deref() != Some(recomputed.as_str()) {
            v.add(table, Some(id), Some(seq), Some(&key), format!(
                        "repair.{table} seq {seq} ({key_col} {key}): row_hash does not match the row's content (the row was edited)"));
        }
        last = Some((key, stored));
    });
    for (id, seq, key, prev) in first_links {
        let expected = link_to_unchained(&key, Some(seq));
        if prev != expected {
            v.add(table, Some(id), Some(seq), Some(&key), format!(
                "repair.{table} seq {seq} ({key_col} {key}): prev_hash {} does not link to the {key_col}'s rows from before 0.2.0 ({}): one of them was inserted, edited or deleted",
                prev.as_deref().unwrap_or("NULL"), expected.as_deref().unwrap_or("none")));
        }
    }
}

/// Whether a stored row (its `row_to_json` text) still hashes to its stored row_hash.
pub fn row_hash_holds(row_json: &str, prev: Option<&str>, stored: &str) -> bool {
    row_document(row_json).is_some_and(|d| chain_hash(prev, &d) == stored)
}

/// A stored row's chained document from its `row_to_json` text: what
/// `jsonb_strip_nulls(to_jsonb(row)) - 'prev_hash' - 'row_hash'` gives.
fn row_document(json: &str) -> Option<Value> {
    let mut v: Value = serde_json::from_str(json).ok()?;
    let m = v.as_object_mut()?;
    m.remove("prev_hash");
    m.remove("row_hash");
    strip_nulls(&mut v);
    Some(v)
}

fn verify_versions(schema: Schema, v: &mut Verification) {
    // (id, version, hash, canonical, Some(digest pinned by its event, None for an event written
    // before digests existed) or None without any event).
    type Row = (String, i32, String, String, Option<Option<String>>);
    // A 0.1.0 schema has no version digests: its events pin the hash only (as 0.1.0 did).
    let digest = match schema {
        Schema::V0_2_0 | Schema::V0_3_0 | Schema::Current => "ev.version_digest",
        Schema::V0_1_0 => "NULL::text",
    };
    let rows: Vec<Row> = crate::spi::rows(
        &format!("SELECT v.playbook_id, v.version, v.hash, v.canonical, e.found, e.version_digest \
           FROM repair.playbook_versions v \
           LEFT JOIN LATERAL (SELECT true AS found, {digest} AS version_digest FROM repair.registry_events ev \
                               WHERE ev.playbook_id = v.playbook_id AND ev.version = v.version \
                                 AND ev.hash = v.hash AND ev.action IN ('new', 'updated') \
                               ORDER BY ev.seq LIMIT 1) e ON true \
          ORDER BY v.playbook_id, v.version"),
        &[],
        |row| {
            let found: Option<bool> = row.get(5)?;
            let digest: Option<String> = row.get(6)?;
            Ok((
                row.get(1)?.unwrap_or_default(),
                row.get(2)?.unwrap_or_default(),
                row.get(3)?.unwrap_or_default(),
                row.get(4)?.unwrap_or_default(),
                found.map(|_| digest),
            ))
        },
    );
    for (id, version, hash, canonical, pinned) in rows {
        v.rows_checked += 1;
        let mut why = Vec::new();
        if sha256_hex(canonical.as_bytes()) != hash {
            why.push("its canonical text no longer hashes to its hash (edited)".to_string());
        }
        match pinned {
            None => why.push("no registry event records this version and hash".to_string()),
            // Registered before events pinned a digest: its hash still covers what runs.
            Some(None) => {}
            Some(Some(pinned)) => {
                let now = version_doc(&id, version).map(|d| digest_of(&d));
                if now.as_deref() != Some(pinned.as_str()) {
                    why.push("a column (source, lint, registered_by, …) differs from what its registry event pinned (edited)".to_string());
                }
            }
        }
        for w in why {
            v.add(
                "playbook_versions",
                None,
                None,
                Some(&id),
                format!("repair.playbook_versions {id} v{version}: {w}"),
            );
        }
    }
}

fn verify_baseline_counts(v: &mut Verification) {
    let rows: Vec<(String, String, i64, String)> = crate::spi::rows(
        "SELECT capture_id::text, label, seq, counts_digest FROM repair.baseline_captures \
          WHERE counts_digest IS NOT NULL ORDER BY seq",
        &[],
        |row| {
            Ok((
                row.get(1)?.unwrap_or_default(),
                row.get(2)?.unwrap_or_default(),
                row.get(3)?.unwrap_or_default(),
                row.get(4)?.unwrap_or_default(),
            ))
        },
    );
    for (id, label, seq, digest) in rows {
        if digest_of(&counts_doc(&id)) != digest {
            v.add(
                "baseline_counts",
                Some(id),
                Some(seq),
                Some(&label),
                format!("repair.baseline_counts of capture seq {seq} (label {label}): the counts differ from what the capture pinned (edited)"),
            );
        }
    }
}

/// SHA-256 over the newest row_hash of every chain, by table and playbook id.
pub fn head() -> String {
    as_definer(|| {
        let mut all = Map::new();
        for Chained {
            table,
            key_col,
            chained_since_0_2_0,
            since_0_4_0,
            ..
        } in chains(schema::detect())
        {
            // Rows from before a chain began carry no row_hash and are no link of it (verify
            // refuses one after the chain began).
            let chained_only = if *chained_since_0_2_0 {
                "WHERE row_hash IS NOT NULL"
            } else {
                ""
            };
            let heads: Option<JsonB> = crate::spi::one(
                &format!(
                "SELECT COALESCE(pg_catalog.jsonb_object_agg({key_col}, row_hash), '{{}}') FROM \
                   (SELECT DISTINCT ON ({key_col}) {key_col}, row_hash FROM repair.{table} \
                     {chained_only} ORDER BY {key_col}, seq DESC) h"
            ),
                &[],
            );
            let heads = heads.map_or(Value::Object(Map::new()), |j| j.0);
            let optional = *chained_since_0_2_0 || *since_0_4_0;
            if !optional || heads.as_object().is_some_and(|m| !m.is_empty()) {
                all.insert((*table).into(), heads);
            }
        }
        sha256_hex(to_canonical_json(&Value::Object(all)).as_bytes())
    })
}
