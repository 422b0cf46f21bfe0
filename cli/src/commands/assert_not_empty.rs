//! `pgrepair assert-not-empty`: exit 99 when the database has no user tables (a restore that
//! silently produced an empty database must halt the workflow).

use serde_json::json;

use crate::commands::Ctx;
use crate::error::CliError;
use crate::exit;
use crate::output;

const SQL: &str = "SELECT current_database()::text, \
    (SELECT count(*) FROM repair.user_tables())::bigint";

pub fn run(ctx: &Ctx) -> Result<i32, CliError> {
    let mut client = ctx.connect()?;
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
