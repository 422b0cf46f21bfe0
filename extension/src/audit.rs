//! The append-only, hash-chained tables: appending a row, verifying every chain, the head.
//!
//! A row's document is `jsonb_strip_nulls(to_jsonb(row)) - prev_hash - row_hash`, computed by
//! PostgreSQL under pinned settings (UTC), and row_hash = sha256(prev_hash ++ canonical JSON of
//! the document) (pg_repair_core::chain_hash). Appends happen under the playbook's advisory lock,
//! so one chain never forks; chains of different playbooks never wait on each other.

use crate::guc_scope::as_definer;
use pg_repair_core::{chain_hash, sha256_hex, to_canonical_json};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{Map, Value};

/// A hash-chained table: its id column and the column whose value names the chain.
pub struct Chained {
    pub table: &'static str,
    pub id_col: &'static str,
    pub key_col: &'static str,
}

pub const CHAINED: &[Chained] = &[
    Chained {
        table: "registry_events",
        id_col: "event_id",
        key_col: "playbook_id",
    },
    Chained {
        table: "runs",
        id_col: "run_id",
        key_col: "playbook_id",
    },
    Chained {
        table: "check_results",
        id_col: "result_id",
        key_col: "check_id",
    },
    Chained {
        table: "check_runs",
        id_col: "run_id",
        key_col: "chain_key",
    },
];

fn chained(table: &str) -> &'static Chained {
    CHAINED
        .iter()
        .find(|c| c.table == table)
        .expect("a chained table")
}

/// Transaction-scoped advisory lock for one playbook: serializes its runs and registry changes,
/// and is released by commit, rollback or a killed client alike.
pub fn lock_playbook(id: &str) {
    let key = pg_repair_core::lock_key(id);
    Spi::run_with_args("SELECT pg_catalog.pg_advisory_xact_lock($1)", &[key.into()])
        .expect("advisory lock");
}

/// Current time as an exact UTC text timestamp (round-trips through timestamptz unchanged).
pub fn now_text() -> String {
    Spi::get_one::<String>(
        "SELECT pg_catalog.to_char(pg_catalog.clock_timestamp() AT TIME ZONE 'UTC', \
         'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    )
    .expect("clock")
    .unwrap_or_default()
}

/// Appends `values` (column -> value) to repair.<table> in the chain named `key`; fills seq,
/// prev_hash, row_hash. Must run under as_definer and the chain's lock. Returns row_hash.
pub fn append(table: &str, key: &str, mut values: Map<String, Value>) -> String {
    let key_col = chained(table).key_col;
    // A fresh snapshot per statement (READ COMMITTED): the previous run committed by another
    // session before we got the lock is visible here.
    let prev: Option<String> = Spi::get_one_with_args(
        &format!(
            "SELECT (SELECT row_hash FROM repair.{table} WHERE {key_col} = $1 ORDER BY seq DESC LIMIT 1)"
        ),
        &[key.into()],
    )
    .expect("chain head");
    let seq: i64 = Spi::get_one(&format!(
        "SELECT pg_catalog.nextval('repair.{table}_seq_seq')"
    ))
    .expect("nextval")
    .expect("nextval value");
    values.insert("seq".into(), Value::from(seq));
    values.insert(
        "prev_hash".into(),
        prev.clone().map_or(Value::Null, Value::String),
    );
    values.insert(key_col.into(), Value::String(key.into()));
    let record = JsonB(Value::Object(values.clone()));
    let doc: JsonB = Spi::get_one_with_args(
        &format!(
            "SELECT pg_catalog.jsonb_strip_nulls(pg_catalog.to_jsonb(r)) - 'prev_hash' - 'row_hash' \
             FROM pg_catalog.jsonb_populate_record(NULL::repair.{table}, $1) r"
        ),
        &[record.into()],
    )
    .expect("row document")
    .expect("row document value");
    let row_hash = chain_hash(prev.as_deref(), &doc.0);
    values.insert("row_hash".into(), Value::String(row_hash.clone()));
    Spi::run_with_args(
        &format!(
            "INSERT INTO repair.{table} SELECT * FROM pg_catalog.jsonb_populate_record(NULL::repair.{table}, $1)"
        ),
        &[JsonB(Value::Object(values)).into()],
    )
    .expect("append");
    row_hash
}

#[derive(Debug, Default)]
pub struct Verification {
    pub ok: bool,
    pub rows_checked: i64,
    pub first_bad_id: Option<String>,
    pub first_bad_table: Option<String>,
    pub problem: Option<String>,
}

const BATCH: i64 = 1000;

/// Recomputes every chain and checks every stored version against its hash.
pub fn verify() -> Verification {
    as_definer(|| {
        let mut v = Verification {
            ok: true,
            ..Default::default()
        };
        for c in CHAINED {
            if !verify_chain(c, &mut v) {
                return v;
            }
        }
        verify_versions(&mut v);
        v
    })
}

fn fail(v: &mut Verification, table: &str, id: Option<String>, problem: String) {
    v.ok = false;
    v.first_bad_table = Some(table.to_string());
    v.first_bad_id = id;
    v.problem = Some(problem);
}

fn verify_chain(c: &Chained, v: &mut Verification) -> bool {
    let Chained {
        table,
        id_col,
        key_col,
    } = c;
    let query = format!(
        "SELECT {id_col}::text, {key_col}, prev_hash, row_hash, seq, \
                pg_catalog.jsonb_strip_nulls(pg_catalog.to_jsonb(r)) - 'prev_hash' - 'row_hash' \
           FROM repair.{table} r ORDER BY {key_col}, seq"
    );
    Spi::connect(|client| {
        let mut cursor = client.open_cursor(&query, &[]);
        let mut last: Option<(String, String)> = None; // (playbook, row_hash)
        loop {
            let batch = cursor.fetch(BATCH).expect("fetch");
            if batch.is_empty() {
                return true;
            }
            for row in batch {
                let id: String = row.get(1).ok().flatten().unwrap_or_default();
                let playbook: String = row.get(2).ok().flatten().unwrap_or_default();
                let prev: Option<String> = row.get(3).ok().flatten();
                let stored: Option<String> = row.get(4).ok().flatten();
                let seq: i64 = row.get(5).ok().flatten().unwrap_or_default();
                let doc: Option<JsonB> = row.get(6).ok().flatten();
                v.rows_checked += 1;
                let expected_prev = match &last {
                    Some((p, h)) if *p == playbook => Some(h.clone()),
                    _ => None,
                };
                if prev != expected_prev {
                    fail(v, table, Some(id), format!(
                        "repair.{table} seq {seq} ({key_col} {playbook}): prev_hash {} does not link to the previous row's row_hash {} (a row was deleted, inserted or reordered)",
                        prev.as_deref().unwrap_or("NULL"), expected_prev.as_deref().unwrap_or("NULL")));
                    return false;
                }
                let recomputed = doc
                    .map(|d| chain_hash(prev.as_deref(), &d.0))
                    .unwrap_or_default();
                if stored.as_deref() != Some(recomputed.as_str()) {
                    fail(v, table, Some(id), format!(
                        "repair.{table} seq {seq} ({key_col} {playbook}): row_hash does not match the row's content (the row was edited)"));
                    return false;
                }
                last = Some((playbook, recomputed));
            }
        }
    })
}

fn verify_versions(v: &mut Verification) {
    let bad: Option<(String, i32, String)> = Spi::connect(|client| {
        let rows = client
            .select(
                "SELECT v.playbook_id, v.version, v.hash, v.canonical, \
                        EXISTS (SELECT 1 FROM repair.registry_events e WHERE e.playbook_id = v.playbook_id \
                                 AND e.version = v.version AND e.hash = v.hash AND e.action IN ('new', 'updated')) \
                   FROM repair.playbook_versions v ORDER BY v.playbook_id, v.version",
                None,
                &[],
            )
            .expect("versions");
        for row in rows {
            let id: String = row.get(1).ok().flatten().unwrap_or_default();
            let version: i32 = row.get(2).ok().flatten().unwrap_or_default();
            let hash: String = row.get(3).ok().flatten().unwrap_or_default();
            let canonical: String = row.get(4).ok().flatten().unwrap_or_default();
            let registered: bool = row.get(5).ok().flatten().unwrap_or(false);
            v.rows_checked += 1;
            if sha256_hex(canonical.as_bytes()) != hash {
                return Some((
                    id,
                    version,
                    "its canonical text no longer hashes to its hash (edited)".into(),
                ));
            }
            if !registered {
                return Some((
                    id,
                    version,
                    "no registry event records this version and hash".into(),
                ));
            }
        }
        None
    });
    if let Some((id, version, why)) = bad {
        fail(
            v,
            "playbook_versions",
            None,
            format!("repair.playbook_versions {id} v{version}: {why}"),
        );
    }
}

/// SHA-256 over the newest row_hash of every chain, by table and playbook id.
pub fn head() -> String {
    as_definer(|| {
        let mut all = Map::new();
        for Chained { table, key_col, .. } in CHAINED {
            let heads: Option<JsonB> = Spi::get_one(&format!(
                "SELECT COALESCE(pg_catalog.jsonb_object_agg({key_col}, row_hash), '{{}}') FROM \
                   (SELECT DISTINCT ON ({key_col}) {key_col}, row_hash FROM repair.{table} \
                     ORDER BY {key_col}, seq DESC) h"
            ))
            .expect("heads");
            all.insert(
                (*table).into(),
                heads.map_or(Value::Object(Map::new()), |j| j.0),
            );
        }
        sha256_hex(to_canonical_json(&Value::Object(all)).as_bytes())
    })
}
