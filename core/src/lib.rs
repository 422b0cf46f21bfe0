//! Everything the pg_repair extension and the `pgrepair` CLI must agree on byte for byte:
//! the playbook / check file format, the canonical JSON that is hashed, the audit hash chain and
//! the lint rule catalogue. Pure Rust on purpose (no pgrx), so both sides link the same code and
//! a hash computed offline always equals the one the server registers.

// Every unsafe block says why it is sound (`// SAFETY:`).
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod canonical;
pub mod chain;
pub mod online;
pub mod records;
pub mod redact;
pub mod rules;
pub mod source;
mod suggest;
pub mod text_safety;
pub mod time;

pub use canonical::{sha256_hex, to_canonical_json};
pub use chain::{chain_hash, lock_key, GENESIS};
pub use rules::{Rule, Severity};
pub use source::{
    batch_marker_lines, from_canonical, parse, parse_playbook, Check, CheckSeverity, Mode,
    ParseError, Playbook, Source, Waiver, BATCH_MARKER,
};
