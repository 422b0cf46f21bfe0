//! `pgrepair assert-not-empty`: exit 99 when the database has no user tables (a restore that
//! silently produced an empty database must halt the workflow).
//!
//! It reads the catalog directly, so it works on any database, with or without the extension (a
//! restore that produced nothing has no extension either), and needs nothing but CONNECT. It
//! counts what `repair.user_tables()` would: ordinary and partitioned tables (partitions
//! included) outside `pg_catalog`, `information_schema`, `pg_toast*`/`pg_temp*` and the
//! extension's schema `repair`, and not belonging to an extension.

use serde_json::json;

use crate::commands::Ctx;
use crate::error::CliError;
use crate::exit;
use crate::output;

const SQL: &str = "\
SELECT pg_catalog.current_database()::text, pg_catalog.count(*)::bigint
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname !~ '^pg_'
   AND n.nspname NOT IN ('information_schema', 'repair')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND d.objid = c.oid AND d.deptype = 'e')";

pub fn run(ctx: &Ctx) -> Result<i32, CliError> {
    let mut client = ctx.connect()?;
    // Only the catalog's own operators and functions, whatever the role's search_path holds.
    client
        .batch_execute("SET search_path = pg_catalog, pg_temp")
        .map_err(|e| CliError::from_pg(e, None))?;
    let row = client
        .query_one(SQL, &[])
        .map_err(|e| CliError::from_pg(e, None))?;
    let db: String = row.try_get(0).map_err(|e| CliError::from_pg(e, None))?;
    let n: i64 = row.try_get(1).map_err(|e| CliError::from_pg(e, None))?;
    let code = if n == 0 {
        exit::EMPTY_DATABASE
    } else {
        exit::OK
    };
    if ctx.json {
        output::emit_json(&json!({"database": db, "user_tables": n, "empty": n == 0}));
    } else if n == 0 {
        output::eprint_human(&format!("pgrepair: database {db} has no user tables"));
    } else {
        output::emit_human(&format!(
            "database {db} has {n} user table{}",
            if n == 1 { "" } else { "s" }
        ));
    }
    Ok(code)
}
