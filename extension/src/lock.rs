//! The per-playbook lock. A transaction-scoped heavyweight lock under a tag no SQL function can
//! build: `pg_advisory_*` only produce advisory tags whose fourth field is 1 or 2, so nobody can
//! take (and hold) a playbook's lock to stall its runs. The wait is bounded by
//! repair.lock_timeout (or the caller's shorter lock_timeout) and ends in a clear LOCK_TIMEOUT
//! error.

use crate::errors::{caught_sqlstate, ErrCodeCapture, Kind, RepairError, Result};
use crate::guc_scope::with_gucs;
use crate::gucs;
use crate::subxact::in_subxact;
use pgrx::pg_sys;

/// Fourth tag field of pg_repair's locks ("RP"); pg_advisory_* use 1 and 2.
const TAG_SPACE: u16 = 0x5250;

fn tag(id: &str) -> pg_sys::LOCKTAG {
    let key = pg_repair_core::lock_key(id) as u64;
    pg_sys::LOCKTAG {
        // SAFETY: MyDatabaseId is set at backend start and never changes; read on the backend's thread.
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: (key >> 32) as u32,
        locktag_field3: key as u32,
        locktag_field4: TAG_SPACE,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

/// Keeps the playbook's lock (which the caller's transaction already holds: lock_playbook) past
/// the transaction, until [`release_session`] or the end of the session: an online run holds it
/// from begin to finish.
pub fn hold_for_session(id: &str) {
    let tag = tag(id);
    // SAFETY: `tag` is a valid LOCKTAG on our stack; this backend already holds the lock in its
    // transaction, so the session-level request never conflicts and dontWait never sleeps.
    let got = unsafe { pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as i32, true, true) };
    assert!(
        got != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL,
        "the playbook lock is held by this transaction"
    );
}

/// Releases the session-level hold of [`hold_for_session`].
pub fn release_session(id: &str) {
    let tag = tag(id);
    // SAFETY: `tag` is a valid LOCKTAG on our stack; releasing a lock not held only warns.
    unsafe { pg_sys::LockRelease(&tag, pg_sys::ExclusiveLock as i32, true) };
}

/// Serializes the runs and registry changes of one playbook (or one check chain) until the
/// transaction ends: commit, rollback and a killed client release it alike.
pub fn lock_playbook(id: &str) -> Result<()> {
    let tag = tag(id);
    // Uncontended (the common case): taken at once, no subtransaction or settings needed.
    // SAFETY: `tag` is a valid LOCKTAG on our stack; with dontWait the call never sleeps and
    // returns LOCKACQUIRE_NOT_AVAIL instead of waiting (no ERROR path for a busy lock).
    let got = unsafe { pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as i32, false, true) };
    if got != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL {
        // SAFETY: see the end of this function.
        unsafe { pg_sys::GetCurrentTransactionId() };
        return Ok(());
    }
    // The caller may choose to wait less (its own lock_timeout), never longer.
    // SAFETY: reads the lock_timeout GUC's backing integer, on the backend's thread.
    let own = unsafe { pg_sys::LockTimeout };
    let ms = match gucs::lock_timeout_ms() {
        limit if own > 0 => limit.min(own),
        limit => limit,
    };
    let timeout = format!("{ms}ms");
    let capture = ErrCodeCapture::push();
    // In a subtransaction so that a timeout or cancel while waiting is cleaned up by
    // PostgreSQL (wait queue, settings) before it becomes our own error.
    let res = in_subxact(|| {
        // SAFETY: `tag` lives on this stack frame for the call; a wait that times out or is cancelled
        // raises an ERROR that the subtransaction around us catches and cleans up.
        with_gucs(&[(c"lock_timeout", timeout.as_str())], || unsafe {
            pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as i32, false, false);
        })
    });
    let id = crate::errors::bounded(id, 80);
    let outcome = match res {
        Ok(()) => Ok(()),
        Err(e) => Err(match caught_sqlstate(&e).as_str() {
            "55P03" => RepairError::new(
                Kind::LockTimeout,
                format!("another run of {id} held its lock for more than {ms} ms"),
            )
            .detail("Runs and registry changes of one playbook are serialized.")
            .hint("Wait for the other run to finish (see pg_stat_activity), or raise repair.lock_timeout."),
            "57014" => RepairError::new(
                Kind::Cancelled,
                format!("cancelled while waiting for the lock of {id}"),
            ),
            code => RepairError::new(
                Kind::LockTimeout,
                format!("could not take the lock of {id} (SQLSTATE {code})"),
            ),
        }),
    };
    drop(capture);
    // From here on the transaction writes: make every later SPI query take a fresh snapshot
    // (pgrx runs queries of a transaction without an xid read-only, on the caller's snapshot,
    // which predates the wait and could miss the run that held the lock).
    if outcome.is_ok() {
        // SAFETY: assigns this transaction an xid (an ERROR if it cannot; no pointers involved).
        unsafe { pg_sys::GetCurrentTransactionId() };
    }
    outcome
}
