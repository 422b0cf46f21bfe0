//! `pgrepair hash FILE…`: offline canonical hashes.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::commands::Ctx;
use crate::error::CliError;
use crate::exit;
use crate::output;
use crate::source_file;

pub fn run(ctx: &Ctx, files: &[PathBuf]) -> Result<i32, CliError> {
    let (sources, errors) = source_file::load_all(files);
    if !errors.is_empty() && ctx.json {
        // JSON consumers get one document: the error, naming every bad file.
        return Err(CliError::Files {
            errors,
            summary: None,
        });
    }
    if ctx.json {
        let docs: Vec<Value> = sources
            .iter()
            .map(|s| {
                json!({
                    "file": s.file,
                    "id": s.source.id(),
                    "kind": s.source.kind(),
                    "hash": s.source.hash(),
                    "canonical": s.source.canonical_json(),
                })
            })
            .collect();
        output::emit_json(&Value::Array(docs));
        return Ok(exit::OK);
    }
    let mut text = String::new();
    for s in &sources {
        text.push_str(&format!(
            "{}  {}  {}\n",
            s.source.hash(),
            s.source.id(),
            s.file
        ));
    }
    if !text.is_empty() {
        output::emit_human(&text);
    }
    if errors.is_empty() {
        Ok(exit::OK)
    } else {
        // the good files were printed above; the bad ones are reported on stderr
        Err(CliError::Files {
            errors,
            summary: None,
        })
    }
}
