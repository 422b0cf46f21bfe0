//! Time, dates and identifiers from PostgreSQL's C API, formatted in Rust (pg_repair_core::time):
//! no `SELECT` per timestamp, and no dependence on the caller's DateStyle or TimeZone.

use pg_repair_core::time::{uuid_v4, Utc};
use pgrx::pg_sys;

/// `clock_timestamp()`: the wall clock now, as a PostgreSQL `TimestampTz`.
pub fn now() -> i64 {
    // SAFETY: GetCurrentTimestamp reads the system clock; no arguments, no state.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

/// `now()`: the transaction's start, as a PostgreSQL `TimestampTz`.
pub fn transaction_start() -> i64 {
    // SAFETY: reads a field of the current transaction's state, set when it started.
    unsafe { pg_sys::GetCurrentTransactionStartTimestamp() }
}

/// Today's date in UTC as YYYY-MM-DD (the transaction's date: one answer per transaction, as
/// `CURRENT_DATE` gives).
pub fn today() -> String {
    Utc::from_pg(transaction_start()).date()
}

/// A random UUID (version 4), from the server's strong random source as gen_random_uuid() uses.
pub fn uuid() -> String {
    uuid_v4(random_bytes())
}

/// 16 bytes from the server's strong random source; `uuid_v4` makes the same UUID of them every
/// time (the refusal queue keeps a marker's id as bytes in shared memory).
pub fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    // SAFETY: the buffer is 16 writable bytes and outlives the call.
    let ok = unsafe { pg_sys::pg_strong_random(bytes.as_mut_ptr().cast(), bytes.len()) };
    assert!(ok, "could not generate random values");
    bytes
}
