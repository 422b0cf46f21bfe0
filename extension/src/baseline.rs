//! Row-count baselines: exact counts stored append-only under a label, and the drift since.

use crate::audit::now_text;
use crate::errors::{Kind, RepairError, Result};
use crate::guc_scope::as_definer;
use crate::identity;
use pgrx::prelude::*;
use std::time::{Duration, Instant};

/// (table name as `schema.table`, quoted where needed), for every user table.
fn user_tables() -> Vec<String> {
    Spi::connect(|c| {
        let rows = c.select("SELECT table_name FROM repair.user_tables()", None, &[])?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.get::<String>(1)?.unwrap_or_default());
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .expect("user tables")
}

fn names_of(tables: &[pg_sys::Oid]) -> Result<Vec<String>> {
    tables
        .iter()
        .map(|oid| {
            Spi::get_one_with_args::<String>(
                "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = $1 AND c.relkind IN ('r', 'p')",
                &[(*oid).into()],
            )
            .ok()
            .flatten()
            .ok_or_else(|| {
                RepairError::new(Kind::InvalidArgument, format!("relation {} is not a table", oid.to_u32()))
                    .hint("Baselines count ordinary and partitioned tables.")
            })
        })
        .collect()
}

fn count(table: &str) -> i64 {
    // `table` comes from format('%I.%I'): already quoted.
    Spi::get_one::<i64>(&format!("SELECT pg_catalog.count(*) FROM {table}"))
        .expect("count")
        .unwrap_or(0)
}

/// Counts with a progress NOTICE at most once a second (pgrepair shows them).
fn count_all(label: &str, tables: &[String]) -> Vec<(String, i64)> {
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
            (t.clone(), count(t))
        })
        .collect()
}

pub fn capture(label: &str, tables: Option<Vec<pg_sys::Oid>>) -> Result<Vec<(String, i64)>> {
    let label = label.trim();
    if label.is_empty() {
        return Err(RepairError::new(
            Kind::InvalidArgument,
            "a baseline needs a label",
        ));
    }
    let session = identity::session_user().1;
    as_definer(|| {
        let (scope, names) = match &tables {
            None => ("all", user_tables()),
            Some(oids) => ("listed", names_of(oids)?),
        };
        let counts = count_all(label, &names);
        let capture_id: String = Spi::get_one("SELECT pg_catalog.gen_random_uuid()::text")
            .expect("uuid")
            .unwrap_or_default();
        Spi::run_with_args(
            "INSERT INTO repair.baseline_captures (capture_id, label, scope, captured_at, session_user_name, table_count) \
             VALUES ($1::uuid, $2, $3, $4::timestamptz, $5, $6)",
            &[capture_id.as_str().into(), label.into(), scope.into(), now_text().as_str().into(),
              session.as_str().into(), (counts.len() as i32).into()],
        )
        .expect("capture");
        let (names, rows): (Vec<String>, Vec<i64>) = counts.iter().cloned().unzip();
        Spi::run_with_args(
            "INSERT INTO repair.baseline_counts (capture_id, table_name, row_count) \
             SELECT $1::uuid, t, c FROM unnest($2::text[], $3::bigint[]) AS u(t, c)",
            &[capture_id.as_str().into(), names.into(), rows.into()],
        )
        .expect("counts");
        Ok(counts)
    })
}

/// (table, status changed|added|missing, before, after) for every table that drifted.
pub type Drift = (String, String, Option<i64>, Option<i64>);

pub fn verify(label: &str) -> Result<Vec<Drift>> {
    as_definer(|| {
        let latest: Option<(String, String)> = Spi::connect(|c| {
            let rows = c.select(
                "SELECT capture_id::text, scope FROM repair.baseline_captures WHERE label = $1 ORDER BY seq DESC LIMIT 1",
                None,
                &[label.trim().into()],
            )?;
            let mut out = None;
            for r in rows {
                out = Some((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default()));
            }
            Ok::<_, pgrx::spi::Error>(out)
        })
        .expect("baseline lookup");
        let Some((capture_id, scope)) = latest else {
            return Err(RepairError::new(
                Kind::InvalidArgument,
                format!("no baseline labelled {label}"),
            )
            .hint("Capture one first: SELECT * FROM repair.baseline_capture('label')."));
        };
        let before: Vec<(String, i64)> = Spi::connect(|c| {
            let rows = c.select(
                "SELECT table_name, row_count FROM repair.baseline_counts WHERE capture_id = $1::uuid ORDER BY table_name",
                None,
                &[capture_id.as_str().into()],
            )?;
            let mut out = Vec::new();
            for r in rows {
                out.push((r.get::<String>(1)?.unwrap_or_default(), r.get::<i64>(2)?.unwrap_or(0)));
            }
            Ok::<_, pgrx::spi::Error>(out)
        })
        .expect("baseline counts");
        let mut drift = Vec::new();
        for (table, was) in &before {
            let exists = Spi::get_one_with_args::<bool>(
                "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
                &[table.as_str().into()],
            )
            .expect("exists")
            .unwrap_or(false);
            if !exists {
                drift.push((table.clone(), "missing".into(), Some(*was), None));
                continue;
            }
            let now = count(table);
            if now != *was {
                drift.push((table.clone(), "changed".into(), Some(*was), Some(now)));
            }
        }
        if scope == "all" {
            for table in user_tables() {
                if !before.iter().any(|(t, _)| *t == table) {
                    let now = count(&table);
                    drift.push((table, "added".into(), None, Some(now)));
                }
            }
        }
        Ok(drift)
    })
}
