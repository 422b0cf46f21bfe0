//! Hashes the extension's audit trail and locking are built on. They live here so the CLI can
//! re-verify an exported audit chain offline with exactly the server's arithmetic.

use crate::canonical::to_canonical_json;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `prev_hash` of a chain's first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Tamper-evident audit chain: `sha256_hex(prev.unwrap_or(GENESIS) ++ to_canonical_json(row))`.
///
/// `row` must not contain the row's own hash; whatever it contains is committed to, so a row
/// read back from the database hashes identically only if every field survived unchanged.
pub fn chain_hash(prev: Option<&str>, row: &Value) -> String {
    let digest = Sha256::new()
        .chain_update(prev.unwrap_or(GENESIS).as_bytes())
        .chain_update(to_canonical_json(row).as_bytes())
        .finalize();
    crate::canonical::hex(&digest)
}

/// Advisory-lock key for a playbook id: first 8 bytes (big-endian i64) of
/// `sha256("pg_repair/playbook/" ++ id)`.
///
/// Hashing (rather than e.g. `hashtext`) keeps the key stable across PostgreSQL versions, and
/// the prefix keeps it away from keys other software derives from the same id.
pub fn lock_key(id: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(b"pg_repair/playbook/")
        .chain_update(id.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::sha256_hex;
    use serde_json::json;

    #[test]
    fn genesis_is_64_zeros() {
        assert_eq!(GENESIS.len(), 64);
        assert!(GENESIS.bytes().all(|b| b == b'0'));
    }

    #[test]
    fn chain_hash_is_prev_then_canonical_row() {
        let row = json!({"status": "SUCCESS", "run": 1});
        let expected =
            sha256_hex(format!("{GENESIS}{{\"run\":1,\"status\":\"SUCCESS\"}}").as_bytes());
        assert_eq!(chain_hash(None, &row), expected);
        assert_eq!(chain_hash(Some(GENESIS), &row), expected);

        let next = chain_hash(Some(&expected), &row);
        assert_ne!(next, expected);
        assert_eq!(
            next,
            sha256_hex(format!("{expected}{{\"run\":1,\"status\":\"SUCCESS\"}}").as_bytes())
        );
    }

    #[test]
    fn chain_hash_detects_any_field_change() {
        let a = chain_hash(None, &json!({"reason": "fix", "n": 1}));
        let b = chain_hash(None, &json!({"reason": "fix ", "n": 1}));
        let c = chain_hash(None, &json!({"reason": "fix", "n": 2}));
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn lock_key_is_first_eight_bytes_big_endian() {
        let hex = sha256_hex(b"pg_repair/playbook/intent_issue_tables");
        let expected = u64::from_str_radix(&hex[..16], 16).unwrap() as i64;
        assert_eq!(lock_key("intent_issue_tables"), expected);
        assert_ne!(lock_key("a"), lock_key("b"));
    }
}
