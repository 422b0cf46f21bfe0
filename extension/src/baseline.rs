//! Row-count baselines: exact counts stored append-only and hash-chained per label, and the drift
//! since. Counting happens as the session user, so privileges and row-level security apply: a
//! baseline never reveals a count its caller could not compute with SELECT count(*) itself.

use crate::audit;
use crate::errors::{Kind, RepairError, Result};
use crate::guc_scope::as_definer;
use crate::identity::{self, AsUser};
use crate::lock::lock_playbook;
use crate::schema::{self, Schema};
use pg_repair_core::records::BaselineCaptureRow;
use pgrx::prelude::*;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// Every user table the session user may count: SELECT on the table, USAGE on its schema.
fn user_tables(session: pg_sys::Oid) -> Vec<String> {
    crate::spi::rows(
        "SELECT t.table_name FROM repair.user_tables() t \
               JOIN pg_catalog.pg_class c ON c.oid = t.relid \
              WHERE pg_catalog.has_table_privilege($1, t.relid, 'SELECT') \
                AND pg_catalog.has_schema_privilege($1, c.relnamespace, 'USAGE') \
              ORDER BY t.table_name",
        &[session.into()],
        |r| Ok(r.get::<String>(1)?.unwrap_or_default()),
    )
}

/// Names of listed tables; each must be a table the session user may count.
fn names_of(tables: &[pg_sys::Oid], session: pg_sys::Oid) -> Result<Vec<String>> {
    tables
        .iter()
        .map(|oid| {
            let row = crate::spi::query(
                "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), \
                        pg_catalog.has_table_privilege($2, c.oid, 'SELECT') \
                        AND pg_catalog.has_schema_privilege($2, c.relnamespace, 'USAGE') \
                   FROM pg_catalog.pg_class c \
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                  WHERE c.oid = $1 AND c.relkind IN ('r', 'p')",
                &[(*oid).into(), session.into()],
                |rows| {
                    if rows.is_empty() {
                        return Ok(None);
                    }
                    let r = rows.first();
                    Ok(Some((r.get::<String>(1)?, r.get::<bool>(2)?)))
                },
            )
            .ok()
            .flatten();
            match row {
                Some((Some(name), Some(true))) => Ok(name),
                Some((Some(name), _)) => Err(RepairError::new(
                    Kind::NotAuthorized,
                    format!("you may not count the rows of {name}"),
                )
                .detail("Baselines count as the session user: SELECT on the table and USAGE on its schema are needed.")
                .hint("Ask for SELECT on the table, or leave it out of the baseline.")),
                _ => Err(RepairError::new(
                    Kind::InvalidArgument,
                    format!("relation {} is not a table", oid.to_u32()),
                )
                .hint("Baselines count ordinary and partitioned tables.")),
            }
        })
        .collect()
}

/// Counts as the session user (row-level security applies).
fn count(table: &str, session: pg_sys::Oid) -> i64 {
    let _as = AsUser::switch(session, false);
    // `table` comes from format('%I.%I'): already quoted.
    crate::spi::one::<i64>(&format!("SELECT pg_catalog.count(*) FROM {table}"), &[]).unwrap_or(0)
}

/// Counts with a progress NOTICE at most once a second (pgrepair shows them).
fn count_all(label: &str, tables: &[String], session: pg_sys::Oid) -> Vec<(String, i64)> {
    let mut last = Instant::now();
    let n = tables.len();
    tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if last.elapsed() >= Duration::from_secs(1) {
                pgrx::notice!("baseline {label}: counted {i}/{n} tables");
                last = Instant::now();
            }
            (t.clone(), count(t, session))
        })
        .collect()
}

fn lock_label(label: &str) -> Result<()> {
    lock_playbook(&format!("baseline:{label}"))
}

pub fn capture(label: &str, tables: Option<Vec<pg_sys::Oid>>) -> Result<Vec<(String, i64)>> {
    audit::require_read_committed("repair.baseline_capture")?;
    let label = label.trim();
    if label.is_empty() {
        return Err(RepairError::new(
            Kind::InvalidArgument,
            "a baseline needs a label",
        ));
    }
    let (session, session_name) = identity::session_user();
    as_definer(|| {
        let (scope, names) = match &tables {
            None => ("all", user_tables(session)),
            Some(oids) => ("listed", names_of(oids, session)?),
        };
        let counts = count_all(label, &names, session);
        lock_label(label)?;
        let capture_id: String = crate::clock::uuid();
        // The same document audit::counts_doc reads back from baseline_counts.
        let doc: Map<String, Value> = counts.iter().map(|(t, c)| (t.clone(), json!(c))).collect();
        let captured_at = crate::clock::now();
        match schema::detect() {
            schema @ (Schema::V0_2_0 | Schema::V0_3_0 | Schema::Current) => {
                let row = BaselineCaptureRow {
                    capture_id: capture_id.clone(),
                    label: label.to_string(),
                    scope,
                    captured_at,
                    session_user_name: session_name.clone(),
                    table_count: counts.len() as i32,
                    counts_digest: audit::digest_of(&Value::Object(doc)),
                };
                audit::append_row("baseline_captures", label, &row, schema);
            }
            // A 0.1.0 schema has no chain columns: the capture is stored as 0.1.0 stored it
            // (unchained; after the UPDATE the label's chain begins with its next capture).
            Schema::V0_1_0 => {
                crate::spi::run(
                    "INSERT INTO repair.baseline_captures \
                       (capture_id, label, scope, captured_at, session_user_name, table_count) \
                     VALUES ($1::uuid, $2, $3, $4::timestamptz, $5, $6)",
                    &[
                        capture_id.as_str().into(),
                        label.into(),
                        scope.into(),
                        pg_repair_core::time::Utc::from_pg(captured_at)
                            .text()
                            .into(),
                        session_name.as_str().into(),
                        (counts.len() as i32).into(),
                    ],
                );
            }
        }
        let (names, rows): (Vec<String>, Vec<i64>) = counts.iter().cloned().unzip();
        crate::spi::run(
            "INSERT INTO repair.baseline_counts (capture_id, table_name, row_count) \
             SELECT $1::uuid, t, c FROM unnest($2::text[], $3::bigint[]) AS u(t, c)",
            &[capture_id.as_str().into(), names.into(), rows.into()],
        );
        Ok(counts)
    })
}

/// (table, status changed|added|missing, before, after) for every table that drifted.
pub type Drift = (String, String, Option<i64>, Option<i64>);

/// Drift against the first capture of `label` (a later re-capture cannot erase drift), or against
/// the capture named.
pub fn verify(label: &str, capture_id: Option<String>) -> Result<Vec<Drift>> {
    let session = identity::session_user().0;
    as_definer(|| {
        let chosen: Option<(String, String)> = crate::spi::rows("SELECT capture_id::text, scope FROM repair.baseline_captures \
                  WHERE label = $1 AND ($2::uuid IS NULL OR capture_id = $2::uuid) ORDER BY seq LIMIT 1", &[label.trim().into(), capture_id.clone().into()], |r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default()))).pop();
        let Some((capture_id, scope)) = chosen else {
            return Err(RepairError::new(
                Kind::InvalidArgument,
                match &capture_id {
                    Some(id) => format!("no baseline capture {id} labelled {label}"),
                    None => format!("no baseline labelled {label}"),
                },
            )
            .hint("Capture one first: SELECT * FROM repair.baseline_capture('label')."));
        };
        let before: Value = audit::counts_doc(&capture_id);
        let before: Vec<(String, i64)> = before
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        let mut drift = Vec::new();
        for (table, was) in &before {
            let exists = crate::spi::one::<bool>(
                "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
                &[table.as_str().into()],
            )
            .unwrap_or(false);
            if !exists {
                drift.push((table.clone(), "missing".into(), Some(*was), None));
                continue;
            }
            let now = count(table, session);
            if now != *was {
                drift.push((table.clone(), "changed".into(), Some(*was), Some(now)));
            }
        }
        if scope == "all" {
            for table in user_tables(session) {
                if !before.iter().any(|(t, _)| *t == table) {
                    let now = count(&table, session);
                    drift.push((table, "added".into(), None, Some(now)));
                }
            }
        }
        drift.sort();
        Ok(drift)
    })
}
