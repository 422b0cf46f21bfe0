//! `pgrepair install [DIR]`: parse every file locally, then register them all in one
//! transaction.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::commands::Ctx;
use crate::error::{CliError, FileError};
use crate::exit;
use crate::output;
use crate::source_file::{self, LocalSource};

const REGISTER_SQL: &str = "SELECT to_jsonb(r) FROM repair.register($1) AS r";

pub fn run(ctx: &Ctx, dir: &Path) -> Result<i32, CliError> {
    let (files, skipped) = source_file::sql_files_in(dir)?;
    for s in &skipped {
        errln!(
            "pgrepair: warning: skipped {}: {}, not a regular file",
            s.path.display(),
            s.why
        );
    }
    if files.is_empty() {
        return Err(CliError::Failed(format!(
            "no *.sql files in {}: nothing to install",
            dir.display()
        )));
    }

    // 1. Everything parses locally, or nothing is sent.
    let (sources, mut errors) = source_file::load_all(&files);
    errors.extend(duplicate_ids(&sources));
    if !errors.is_empty() {
        let n = errors.len();
        return Err(CliError::Files {
            errors,
            summary: Some(format!(
                "{n} error{} in {}; nothing was installed",
                if n == 1 { "" } else { "s" },
                dir.display()
            )),
        });
    }

    // 2. One transaction for the lot.
    let mut client = ctx.connect()?;
    let mut tx = client
        .transaction()
        .map_err(|e| CliError::from_pg(e, None))?;
    let mut results = Vec::with_capacity(sources.len());
    for s in &sources {
        let row = match tx.query_one(REGISTER_SQL, &[&s.text]) {
            Ok(row) => row,
            Err(e) => {
                let err = CliError::from_pg(e, Some(s.file.clone()));
                // dropping the transaction rolls back; be explicit and ignore a dead connection
                let _ = tx.rollback();
                return Err(err.with_note("the transaction was rolled back; nothing was installed"));
            }
        };
        let v: Value = row
            .try_get::<_, Option<Value>>(0)
            .map_err(|e| CliError::from_pg(e, Some(s.file.clone())))?
            .unwrap_or(Value::Null);
        results.push(v);
    }
    tx.commit().map_err(|e| CliError::from_pg(e, None))?;

    for (s, r) in sources.iter().zip(&results) {
        let server_hash = output::field(r, "hash");
        let local_hash = s.source.hash();
        if !server_hash.is_empty() && server_hash != local_hash {
            output::eprint_human(&format!(
                "pgrepair: warning: {}: server hash {server_hash} differs from local hash \
                 {local_hash} (pgrepair and the extension are different versions?)",
                s.file
            ));
        }
    }

    if ctx.json {
        let docs: Vec<Value> = sources
            .iter()
            .zip(&results)
            .map(|(s, r)| {
                json!({
                    "file": s.file,
                    "id": r.get("id").cloned().unwrap_or_else(|| json!(s.source.id())),
                    "kind": s.source.kind(),
                    "version": r.get("version").cloned().unwrap_or(Value::Null),
                    "status": r.get("status").cloned().unwrap_or(Value::Null),
                    "hash": r.get("hash").cloned().unwrap_or_else(|| json!(s.source.hash())),
                })
            })
            .collect();
        output::emit_json(&Value::Array(docs));
        return Ok(exit::OK);
    }

    let mut table = output::table(["file", "id", "version", "status", "hash"]);
    output::align_right(&mut table, &[2]);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (s, r) in sources.iter().zip(&results) {
        let status = output::field(r, "status");
        *counts.entry(status.clone()).or_default() += 1;
        let id = match output::field(r, "id") {
            id if id.is_empty() => s.source.id().to_string(),
            id => id,
        };
        table.add_row(vec![
            s.file.clone(),
            id,
            output::field(r, "version"),
            status,
            output::field(r, "hash"),
        ]);
    }
    let mut summary: Vec<String> = ["new", "updated", "unchanged"]
        .iter()
        .map(|k| format!("{} {k}", counts.get(*k).copied().unwrap_or(0)))
        .collect();
    for (k, n) in &counts {
        if !["new", "updated", "unchanged"].contains(&k.as_str()) {
            summary.push(format!("{n} {k}"));
        }
    }
    output::emit_human(&format!(
        "{table}\n{} file{} registered: {}",
        sources.len(),
        if sources.len() == 1 { "" } else { "s" },
        summary.join(", ")
    ));
    Ok(exit::OK)
}

/// Two files with the same id would silently make one a new version of the other.
fn duplicate_ids(sources: &[LocalSource]) -> Vec<FileError> {
    let mut first: HashMap<String, &LocalSource> = HashMap::new();
    let mut errors = Vec::new();
    for s in sources {
        let key = format!("{}:{}", s.source.kind(), s.source.id());
        match first.get(&key) {
            Some(earlier) => errors.push(FileError {
                file: s.file.clone(),
                line: source_file::id_line(&s.text),
                message: format!(
                    "duplicate {} id `{}` (also in {})",
                    s.source.kind(),
                    s.source.id(),
                    earlier.file
                ),
            }),
            None => {
                first.insert(key, s);
            }
        }
    }
    errors
}
