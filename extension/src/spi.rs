//! Every internal statement pg_repair runs, as a plan prepared once per backend and kept
//! (`SPI_keepplan`): the per-call cost is executing it, not parsing and planning it.
//!
//! Plans are keyed by their SQL text and checked out of the cache while they run, so a statement
//! that (through a trigger or hook) reaches pg_repair again prepares its own copy instead of
//! sharing one in use. PostgreSQL's plan cache revalidates a kept plan after DDL on what it reads.
//! Every statement names its objects schema-qualified (`repair.`, `pg_catalog.`), so the plan does
//! not depend on the caller's search_path.

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::PgOid;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult, SpiTupleTable};
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    static PLANS: RefCell<HashMap<String, OwnedPreparedStatement>> = RefCell::new(HashMap::new());
}

const MAX_PLANS: usize = 256;

/// A kept plan taken out of the cache; back in when dropped (a kept plan outlives the
/// transaction, so after an ERROR too).
struct Checkout {
    key: String,
    plan: Option<OwnedPreparedStatement>,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(plan) = self.plan.take() {
            let key = std::mem::take(&mut self.key);
            PLANS.with(|m| {
                let mut m = m.borrow_mut();
                // Statements naming a user table (baseline counts) make the set open-ended.
                if m.len() >= MAX_PLANS {
                    m.clear();
                }
                m.insert(key, plan)
            });
        }
    }
}

fn checkout(
    client: &SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid<'_>],
    writes: bool,
) -> SpiResult<Checkout> {
    let key = format!("{}{sql}", if writes { 'w' } else { 'r' });
    if let Some(plan) = PLANS.with(|m| m.borrow_mut().remove(&key)) {
        return Ok(Checkout {
            key,
            plan: Some(plan),
        });
    }
    let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
    let plan = if writes {
        client.prepare_mut(sql, &types)?
    } else {
        client.prepare(sql, &types)?
    };
    Ok(Checkout {
        key,
        plan: Some(plan.keep()),
    })
}

/// Runs `sql` (parameters typed by `args`) through its kept plan and hands the rows to `f`.
/// Errors from PostgreSQL are raised as they are (the statement is ours: an error is a bug or the
/// database refusing, e.g. a trigger); `f`'s own SPI errors come back as `Err`.
pub fn query<R>(
    sql: &str,
    args: &[DatumWithOid<'_>],
    f: impl FnOnce(SpiTupleTable<'_>) -> SpiResult<R>,
) -> SpiResult<R> {
    execute(sql, args, false, f)
}

/// Like [`query`] for a statement that writes (or must see every committed row: it always runs
/// on a fresh snapshot, never read-only on the caller's).
pub fn query_mut<R>(
    sql: &str,
    args: &[DatumWithOid<'_>],
    f: impl FnOnce(SpiTupleTable<'_>) -> SpiResult<R>,
) -> SpiResult<R> {
    execute(sql, args, true, f)
}

fn execute<R>(
    sql: &str,
    args: &[DatumWithOid<'_>],
    writes: bool,
    f: impl FnOnce(SpiTupleTable<'_>) -> SpiResult<R>,
) -> SpiResult<R> {
    Spi::connect_mut(|client| {
        let co = checkout(client, sql, args, writes)?;
        let plan = co.plan.as_ref().expect("checked out");
        let rows = if writes {
            client.update(plan, None, args)?
        } else {
            client.select(plan, None, args)?
        };
        f(rows)
    })
}

/// The first column of the first row (None for no row or NULL).
pub fn one<T: FromDatum + IntoDatum>(sql: &str, args: &[DatumWithOid<'_>]) -> Option<T> {
    query(sql, args, |rows| {
        if rows.is_empty() {
            return Ok(None);
        }
        rows.first().get::<T>(1)
    })
    .unwrap_or_else(|e| panic!("internal statement failed: {e}"))
}

/// Runs a statement that writes, for its effect.
pub fn run(sql: &str, args: &[DatumWithOid<'_>]) {
    query_mut(sql, args, |_| Ok(())).unwrap_or_else(|e| panic!("internal statement failed: {e}"))
}

/// Every row mapped by `f` (a short result: it is collected).
pub fn rows<R>(
    sql: &str,
    args: &[DatumWithOid<'_>],
    mut f: impl FnMut(&pgrx::spi::SpiHeapTupleData<'_>) -> SpiResult<R>,
) -> Vec<R> {
    query(sql, args, |rows| {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(f(&r)?);
        }
        Ok(out)
    })
    .unwrap_or_else(|e| panic!("internal statement failed: {e}"))
}

/// Streams a long result through a cursor on the kept plan, `batch` rows at a time, so memory
/// stays bounded whatever the table's size.
pub fn for_each(
    sql: &str,
    args: &[DatumWithOid<'_>],
    batch: i64,
    mut f: impl FnMut(&pgrx::spi::SpiHeapTupleData<'_>),
) {
    Spi::connect(|client| {
        let co = checkout(client, sql, args, false)?;
        let plan = co.plan.as_ref().expect("checked out");
        let mut cursor = client.try_open_cursor(plan, args)?;
        loop {
            let rows = cursor.fetch(batch)?;
            if rows.is_empty() {
                return Ok::<_, pgrx::spi::Error>(());
            }
            for r in rows {
                f(&r);
            }
        }
    })
    .unwrap_or_else(|e| panic!("internal statement failed: {e}"))
}
