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
//! - an online run (`online_scope`): SIGINT never exits. It cancels the playbook statement
//!   running at that moment, if any (`arm_statement` … `disarm_statement`), re-sent every second
//!   like above, and sets `requested()`; the driver then stops sending statements and aborts the
//!   run itself with `repair.online_abort`, which is never cancelled (exit 1, the ABORTED run);
//! - anything else (connecting, local work): the process exits 130 at once.
//!
//! A cancel request is sent while holding the state lock, so the main thread cannot move on to
//! its next query (in an online run: `online_abort`) while a cancel meant for the previous one is
//! still on its way. (PostgreSQL can still, rarely, deliver a cancel that arrived just after a
//! statement ended to the next one; the online driver retries its closing call once for that.)
//!
//! A second SIGINT exits 130 immediately without waiting for the server.
//!
//! Child processes (pg_dump) start with an empty signal mask (the standard library resets it),
//! so a Ctrl-C at a terminal still reaches them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// An online run: SIGINT never exits; it cancels the statement running (`Some`), if any.
    Armed(Option<CancelToken>),
}

/// How often a cancel request is sent again while the same statement keeps running.
const RESEND: Duration = Duration::from_secs(1);

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
    let mut state = lock();
    // a plain query scope: only the query running now is cancelled
    let first = state.generation;
    match &state.phase {
        Phase::Idle => {
            drop(state);
            errln!("pgrepair: cancelled");
            std::process::exit(exit::CANCELLED);
        }
        Phase::Polling => return,
        Phase::Query(_) | Phase::Armed(_) => {}
    }
    // (generation, when) of the last cancel request sent
    let mut sent: Option<(u64, Instant)> = None;
    loop {
        let token = match &state.phase {
            Phase::Query(token) if state.generation == first => Some(token),
            Phase::Armed(token) => token.as_ref(),
            _ => return,
        };
        if let Some(token) = token {
            let due = match sent {
                Some((generation, at)) => generation != state.generation || at.elapsed() >= RESEND,
                None => true,
            };
            if due {
                if sent.is_none() {
                    errln!("pgrepair: Ctrl-C: asking the server to cancel the running statement…");
                }
                // under the lock: see the module comment
                if let Err(e) = token.cancel_query(NoTls) {
                    errln!(
                        "pgrepair: could not send the cancel request: {}; press Ctrl-C again to \
                         exit without waiting",
                        crate::pg_error::error_reason(&e)
                    );
                }
                sent = Some((state.generation, Instant::now()));
            }
        }
        drop(state);
        std::thread::sleep(Duration::from_millis(100));
        state = lock();
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

/// For an online run: SIGINT never exits while the scope lives (see the module comment). Use
/// [`arm_statement`] around each playbook statement.
pub fn online_scope() -> Scope {
    set_phase(Phase::Armed(None));
    Scope { _private: () }
}

/// Inside an [`online_scope`]: SIGINT now cancels what `client` runs. False (and nothing changed)
/// when Ctrl-C was already pressed: the caller must not send the statement. Checked under the
/// lock the watcher takes after setting `requested()`, so a Ctrl-C either is seen here or finds
/// the statement's token.
pub fn arm_statement(client: &Client) -> bool {
    let mut state = lock();
    if requested() {
        return false;
    }
    state.generation += 1;
    state.phase = Phase::Armed(Some(client.cancel_token()));
    true
}

/// Inside an [`online_scope`]: the statement ended; SIGINT cancels nothing until the next
/// [`arm_statement`]. Waits for a cancel request being sent to be delivered.
pub fn disarm_statement() {
    set_phase(Phase::Armed(None));
}

/// Sleeps for `d` unless Ctrl-C is pressed meanwhile. False when interrupted.
pub fn sleep_unless_requested(d: Duration) -> bool {
    let until = Instant::now() + d;
    loop {
        if requested() {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}
