//! Internal subtransactions: run a closure so that any error inside rolls back only what the
//! closure did, and comes back as a value. The subtransaction is always closed before the caller
//! sees the error, so rethrowing (e.g. a user's cancel) leaves the session usable.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgTryBuilder;
use std::panic::AssertUnwindSafe;

pub fn in_subxact<T>(f: impl FnOnce() -> T) -> Result<T, Box<CaughtError>> {
    subxact(f, true)
}

/// Like [`in_subxact`], but rolls back even on success: for work that must leave no trace.
pub fn in_rolled_back_subxact<T>(f: impl FnOnce() -> T) -> Result<T, Box<CaughtError>> {
    subxact(f, false)
}

fn subxact<T>(f: impl FnOnce() -> T, keep: bool) -> Result<T, Box<CaughtError>> {
    // SAFETY: reads two backend globals on the backend's thread; the values are restored below.
    let (old_cxt, old_owner) =
        unsafe { (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner) };
    // SAFETY: called inside a transaction (every caller is a SQL function); the subtransaction is
    // closed below on every path, and `old_cxt` outlives it.
    unsafe {
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        // Keep allocating in the caller's context, as PL/Python does.
        pg_sys::MemoryContextSwitchTo(old_cxt);
    }
    let res = PgTryBuilder::new(AssertUnwindSafe(|| Ok(f())))
        .catch_others(|e| Err(Box::new(e)))
        .execute();
    // SAFETY: closes the subtransaction opened above (released on success when kept, rolled back
    // otherwise) and restores the caller's memory context and resource owner, which outlive it.
    unsafe {
        if keep && res.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(old_cxt);
        pg_sys::CurrentResourceOwner = old_owner;
    }
    res
}
