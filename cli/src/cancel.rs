//! Ctrl-C (SIGINT): cancel the statement running on the server, wait for its answer, exit 130.
//!
//! `install()` blocks SIGINT in every thread and starts one watcher thread that waits for it
//! with `sigwait` (no async-signal-unsafe code runs in a signal handler). What happens on the
//! first SIGINT depends on what the main thread is doing:
//!
//! - a query is running (`query_scope`, or a client `attach`ed for its lifetime): the watcher
//!   sends PostgreSQL's cancel request through the connection's `CancelToken` (and sends it
//!   again every second while the same query is still running, so a cancel that reached the
//!   server between two statements is not lost). The query then ends with SQLSTATE 57014 (or,
//!   for `repair.execute`, a FAILED run with error code 57014) and the command reports
//!   "cancelled" and exits 130;
//! - the main thread polls `requested()` (waiting for `pg_dump`): it stops the child itself;
//! - anything else (connecting, local work): the process exits 130 at once.
//!
//! A second SIGINT exits 130 immediately without waiting for the server.
//!
//! Child processes (pg_dump) start with an empty signal mask (the standard library resets it),
//! so a Ctrl-C at a terminal still reaches them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use postgres::{CancelToken, Client, NoTls};

use crate::exit;

/// SQLSTATE query_canceled.
pub const QUERY_CANCELED: &str = "57014";

static REQUESTED: AtomicBool = AtomicBool::new(false);
static STATE: Mutex<State> = Mutex::new(State {
    phase: Phase::Idle,
    generation: 0,
});

struct State {
    phase: Phase,
    /// Bumped every time a query scope starts, so the watcher only re-sends for the same one.
    generation: u64,
}

enum Phase {
    /// Nothing to cancel: SIGINT exits at once.
    Idle,
    /// The main thread checks `requested()` itself.
    Polling,
    /// A session that may be running a query.
    Query(CancelToken),
}

/// True once SIGINT arrived.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Blocks SIGINT in this (the main) thread, so in every thread started later, and starts the
/// watcher. Call first thing in `main`, before any other thread exists.
pub fn install() {
    // SAFETY: plain libc calls on a local, initialised sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return; // keep the default behaviour (killed by SIGINT) rather than none
        }
    }
    let spawned = std::thread::Builder::new()
        .name("sigint".into())
        .spawn(watch);
    if spawned.is_err() {
        // no watcher: restore the default so Ctrl-C still stops the process
        // SAFETY: as above.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
    }
}

fn wait_sigint() {
    // SAFETY: sigwait on a set holding only SIGINT, which every thread blocks.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        let mut sig: libc::c_int = 0;
        while libc::sigwait(&set, &mut sig) != 0 {}
    }
}

fn watch() {
    wait_sigint();
    REQUESTED.store(true, Ordering::SeqCst);
    // the second Ctrl-C: leave now
    std::thread::spawn(|| {
        wait_sigint();
        errln!("pgrepair: interrupted again: exiting without waiting for the server");
        std::process::exit(exit::CANCELLED);
    });
    let (token, generation) = {
        let state = lock();
        match &state.phase {
            Phase::Idle => {
                drop(state);
                errln!("pgrepair: cancelled");
                std::process::exit(exit::CANCELLED);
            }
            Phase::Polling => return,
            Phase::Query(token) => (token.clone(), state.generation),
        }
    };
    errln!("pgrepair: Ctrl-C: asking the server to cancel the running statement…");
    loop {
        if let Err(e) = token.cancel_query(NoTls) {
            errln!(
                "pgrepair: could not send the cancel request: {}; press Ctrl-C again to exit \
                 without waiting",
                crate::pg_error::error_reason(&e)
            );
        }
        std::thread::sleep(Duration::from_secs(1));
        let state = lock();
        match &state.phase {
            Phase::Query(_) if state.generation == generation => continue,
            _ => return,
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

fn set_phase(phase: Phase) {
    let mut state = lock();
    state.generation += 1;
    state.phase = phase;
}

/// While alive, SIGINT cancels the query running on `client` instead of exiting.
pub struct Scope {
    _private: (),
}

impl Drop for Scope {
    fn drop(&mut self) {
        set_phase(Phase::Idle);
    }
}

/// SIGINT cancels whatever `client` runs until the scope ends.
pub fn query_scope(client: &Client) -> Scope {
    set_phase(Phase::Query(client.cancel_token()));
    Scope { _private: () }
}

/// SIGINT only sets `requested()`; the caller polls it.
pub fn polling_scope() -> Scope {
    set_phase(Phase::Polling);
    Scope { _private: () }
}

/// For read-only commands: SIGINT cancels whatever `client` runs, for the rest of the process.
pub fn attach(client: &Client) {
    set_phase(Phase::Query(client.cancel_token()));
}
