//! A per-statement timeout for playbook SQL run through SPI. `SET LOCAL statement_timeout` does
//! not arm anything for SPI statements (PostgreSQL arms it when a top-level statement starts), and
//! re-arming PostgreSQL's own STATEMENT_TIMEOUT clobbers the session's. So: a custom timeout that
//! raises a query cancel, and a flag telling our cancel apart from the user's.

use pgrx::pg_sys;
use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

mod ffi {
    use std::ffi::c_int;
    // enum TimeoutId in utils/timeout.h; only PG 15 is tested here.
    #[cfg(feature = "pg13")]
    pub const USER_TIMEOUT: c_int = 8;
    #[cfg(feature = "pg14")]
    pub const USER_TIMEOUT: c_int = 11;
    #[cfg(any(feature = "pg15", feature = "pg16"))]
    pub const USER_TIMEOUT: c_int = 12;
    #[cfg(any(feature = "pg17", feature = "pg18"))]
    pub const USER_TIMEOUT: c_int = 13;
    unsafe extern "C-unwind" {
        pub fn RegisterTimeout(id: c_int, handler: extern "C" fn()) -> c_int;
        pub fn enable_timeout_after(id: c_int, delay_ms: c_int);
        pub fn disable_timeout(id: c_int, keep_indicator: bool);
    }
}

static FIRED: AtomicBool = AtomicBool::new(false);
// Registered lazily in each backend: InitializeTimeouts() at backend start wipes registrations the
// postmaster's _PG_init would have made.
static TIMEOUT_ID: AtomicI32 = AtomicI32::new(-1);
static KILL_ID: AtomicI32 = AtomicI32::new(-1);

/// How long SQL may keep running after its cancel before the backend is terminated: SQL that
/// catches query_canceled in a loop must not outlive its timeout for long.
const KILL_GRACE_MS: i32 = 2_000;

/// Runs in the SIGALRM handler: async-signal-safe work only.
extern "C" fn on_timeout() {
    FIRED.store(true, Ordering::SeqCst);
    // SAFETY: in a signal handler: volatile stores to sig_atomic_t flags, exactly what PostgreSQL's
    // own StatementCancelHandler does.
    unsafe {
        std::ptr::write_volatile(&raw mut pg_sys::QueryCancelPending, 1);
        std::ptr::write_volatile(&raw mut pg_sys::InterruptPending, 1);
    }
}

/// Runs in the SIGALRM handler: the cancel was ignored for KILL_GRACE_MS; terminate the backend
/// (FATAL at the next interrupt check; the transaction and the run are rolled back).
extern "C" fn on_kill() {
    // SAFETY: in a signal handler: volatile stores to sig_atomic_t flags, exactly what PostgreSQL's
    // own die() handler does; the next CHECK_FOR_INTERRUPTS acts on them.
    unsafe {
        std::ptr::write_volatile(&raw mut pg_sys::ProcDiePending, 1);
        std::ptr::write_volatile(&raw mut pg_sys::InterruptPending, 1);
    }
}

fn registered(slot: &AtomicI32, handler: extern "C" fn()) -> c_int {
    let mut id = slot.load(Ordering::Relaxed);
    if id < 0 {
        // SAFETY: registers a handler in a free USER_TIMEOUT slot (an ERROR if none is left, caught by
        // the FFI guard); the handler is a plain function valid for the backend's life.
        id = unsafe {
            pg_sys::ffi::pg_guard_ffi_boundary(|| ffi::RegisterTimeout(ffi::USER_TIMEOUT, handler))
        };
        slot.store(id, Ordering::Relaxed);
    }
    id
}

/// Armed while alive; Drop disarms (on return, ERROR and panic alike).
pub struct Timer(c_int, c_int);

impl Timer {
    /// Arms the run's timeout; does not reset whether an earlier one of this run fired.
    pub fn arm(ms: i32) -> Timer {
        let id = registered(&TIMEOUT_ID, on_timeout);
        let kill = registered(&KILL_ID, on_kill);
        let ms = ms.max(1);
        // SAFETY: both ids were returned by RegisterTimeout in this backend; enabling only schedules
        // SIGALRM, and the handlers do async-signal-safe work only.
        unsafe {
            pg_sys::ffi::pg_guard_ffi_boundary(|| {
                ffi::enable_timeout_after(id, ms);
                ffi::enable_timeout_after(kill, ms.saturating_add(KILL_GRACE_MS));
            })
        };
        Timer(id, kill)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        // SAFETY: disables the two timeouts `arm` registered and enabled; disabling one that already
        // fired or was never enabled is a no-op.
        unsafe {
            ffi::disable_timeout(self.0, false);
            ffi::disable_timeout(self.1, false);
        }
    }
}

/// Whether the last armed timer expired (i.e. a 57014 was ours, not the user's cancel).
pub fn fired() -> bool {
    FIRED.load(Ordering::SeqCst)
}

pub fn reset() {
    FIRED.store(false, Ordering::SeqCst);
}

/// Held from the moment a run is known to have been cancelled until its FAILED record is written.
///
/// A client's cancel request reaches the backend as two SIGINTs: the postmaster signals the
/// process and then its process group. When the backend wakes between the two, the first cancels
/// the playbook (caught: the run failed) and the second would cancel the audit append, losing the
/// record of the run. PostgreSQL clears such a duplicate after its own error recovery
/// (PostgresMain); this does the same for the cancel the run already honoured. Only cancels are
/// held: a terminate still ends the backend (and rolls the whole call back).
pub struct CancelHonoured(());

impl CancelHonoured {
    pub fn hold() -> CancelHonoured {
        // SAFETY: QueryCancelHoldoffCount is a plain backend global; raising it only defers a cancel
        // (PostgreSQL's HOLD_CANCEL_INTERRUPTS does the same).
        unsafe {
            let n = std::ptr::read_volatile(&raw const pg_sys::QueryCancelHoldoffCount);
            std::ptr::write_volatile(&raw mut pg_sys::QueryCancelHoldoffCount, n + 1);
        }
        CancelHonoured(())
    }
}

/// How long the record's writer waits for the second signal of a cancel that has not arrived
/// yet: the postmaster sends the two back to back, but on a loaded machine it can be descheduled
/// between them, and a duplicate landing after the hold ends would cancel the returning call.
const DUPLICATE_GRACE: std::time::Duration = std::time::Duration::from_millis(20);

impl Drop for CancelHonoured {
    fn drop(&mut self) {
        let deadline = std::time::Instant::now() + DUPLICATE_GRACE;
        // SAFETY: the holdoff count and the pending flag are plain backend globals, read and written only
        // on this (the backend's only) thread; the count was raised by `hold`. pg_usleep only sleeps
        // (a signal ends it early).
        unsafe {
            while std::ptr::read_volatile(&raw const pg_sys::QueryCancelPending) == 0
                && std::time::Instant::now() < deadline
            {
                pg_sys::pg_usleep(1000);
            }
            std::ptr::write_volatile(&raw mut pg_sys::QueryCancelPending, 0);
            let n = std::ptr::read_volatile(&raw const pg_sys::QueryCancelHoldoffCount);
            std::ptr::write_volatile(
                &raw mut pg_sys::QueryCancelHoldoffCount,
                n.saturating_sub(1),
            );
        }
    }
}
