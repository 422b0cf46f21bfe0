//! One module per subcommand. Each prints its own result (table or JSON) and returns the exit
//! code; errors go back to `main` as `CliError`, which renders them.

pub mod approvals;
pub mod approve;
pub mod assert_not_empty;
pub mod audit;
pub mod baseline;
pub mod check;
pub mod execute;
pub mod gate;
pub mod hash;
pub mod install;
pub mod lint;
pub mod list;
pub mod online;
pub mod preview;
pub mod refusals;
pub mod runs;

use postgres::Client;
use serde_json::Value;

use crate::connect::Target;
use crate::error::CliError;

/// What every command gets from the global flags.
pub struct Ctx {
    pub json: bool,
    pub dsn: Option<String>,
}

impl Ctx {
    pub fn target(&self) -> Result<Target, CliError> {
        Target::resolve(self.dsn.as_deref())
    }

    /// A session for a read-only command: Ctrl-C cancels whatever it runs (exit 130).
    pub fn connect(&self) -> Result<Client, CliError> {
        let client = self.target()?.connect()?;
        crate::cancel::attach(&client);
        Ok(client)
    }
}

/// Runs a query whose single column is jsonb (one document per row).
pub fn json_rows(
    client: &mut Client,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<Value>, CliError> {
    let rows = client
        .query(sql, params)
        .map_err(|e| CliError::from_pg(e, None))?;
    rows.iter()
        .map(|r| {
            r.try_get::<_, Option<Value>>(0)
                .map(|v| v.unwrap_or(Value::Null))
                .map_err(|e| CliError::from_pg(e, None))
        })
        .collect()
}

/// Runs a query returning exactly one jsonb value.
pub fn json_value(
    client: &mut Client,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Value, CliError> {
    let mut rows = json_rows(client, sql, params)?;
    match rows.len() {
        1 => Ok(rows.remove(0)),
        n => Err(CliError::Failed(format!(
            "expected one row from the server, got {n}"
        ))),
    }
}
