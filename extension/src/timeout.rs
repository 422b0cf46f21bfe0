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

/// Runs in the SIGALRM handler: async-signal-safe work only.
extern "C" fn on_timeout() {
    FIRED.store(true, Ordering::SeqCst);
    unsafe {
        std::ptr::write_volatile(&raw mut pg_sys::QueryCancelPending, 1);
        std::ptr::write_volatile(&raw mut pg_sys::InterruptPending, 1);
    }
}

/// Armed while alive; Drop disarms (on return, ERROR and panic alike).
pub struct Timer(c_int);

impl Timer {
    pub fn arm(ms: i32) -> Timer {
        let mut id = TIMEOUT_ID.load(Ordering::Relaxed);
        if id < 0 {
            id = unsafe {
                pg_sys::ffi::pg_guard_ffi_boundary(|| {
                    ffi::RegisterTimeout(ffi::USER_TIMEOUT, on_timeout)
                })
            };
            TIMEOUT_ID.store(id, Ordering::Relaxed);
        }
        FIRED.store(false, Ordering::SeqCst);
        unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| ffi::enable_timeout_after(id, ms.max(1))) };
        Timer(id)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        unsafe { ffi::disable_timeout(self.0, false) }
    }
}

/// Whether the last armed timer expired (i.e. a 57014 was ours, not the user's cancel).
pub fn fired() -> bool {
    FIRED.load(Ordering::SeqCst)
}

pub fn reset() {
    FIRED.store(false, Ordering::SeqCst);
}
