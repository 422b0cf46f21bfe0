//! Refusals on record (SPEC "Refusals on record, redaction").
//!
//! A refused call's transaction aborts, so a refusal cannot be written by the caller. It is
//! queued instead, in shared memory, and written to `repair.refusals` by the **refusal
//! recorder**, a background worker, in its own transactions:
//!
//! - **Never blocking the caller.** Enqueueing is a copy under one LWLock held for microseconds.
//!   A full queue drops the entry and counts it; the recorder writes the count as a marker row.
//! - **Per database.** A background worker connects to one database for life, and pg_repair may
//!   be installed in several. Each entry carries its database; each database with refusals gets
//!   its own recorder, a dynamic background worker registered by the first backend that queues a
//!   refusal there (no worker at all for databases that never refuse anything). The postmaster
//!   restarts a recorder that fails; one that finds another recorder already serving its
//!   database exits for good.
//! - **A killed recorder loses nothing queued.** Killing any server process makes the
//!   postmaster reinitialise shared memory. Before it does, an exit callback in the postmaster
//!   copies the unwritten entries (and the drop counts) aside, and the new segment starts with
//!   them. Entries the recorder had taken into a transaction that may or may not have committed
//!   come back marked, and are written only if their id is not in the table yet.
//! - What is lost: entries still queued when the whole server stops (shutdown while a flood is
//!   still being written, a postmaster crash, the machine going down). Every refusal is also in
//!   the server log, written before it is queued.

use crate::clock;
use crate::errors::{self, RepairError};
use crate::identity;
use pg_repair_core::records::RefusalRow;
use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{c_int, CStr};
use std::time::Duration;

/// Entries the queue holds (all databases together).
pub const CAPACITY: usize = 1024;
/// Bytes of one serialized entry (JSON). Fields are bounded so one always fits.
const SLOT_BYTES: usize = 6144;
/// Databases with a recorder at one time.
const DATABASES: usize = 64;
/// Entries one recorder transaction writes at most.
const BATCH: usize = 256;
/// How often a recorder looks at the queue (refusals are visible well within a second).
const POLL: Duration = Duration::from_millis(200);
/// Queue length at which a caller wakes the recorder before its next poll.
const WAKE_AT: usize = CAPACITY / 4;

const FREE: u32 = 0;
const READY: u32 = 1;
/// Taken by the recorder into a transaction not yet known to have committed.
const TAKEN: u32 = 2;

#[repr(C)]
struct Slot {
    state: u32,
    /// Came back after a crash from a transaction that may have committed: write only if absent.
    recovered: u32,
    db: u32,
    len: u32,
}

#[repr(C)]
struct Db {
    /// 0: entry unused.
    db: u32,
    /// A recorder was registered with the postmaster for this database.
    registered: u32,
    worker_pid: i32,
    latch: *mut pg_sys::Latch,
    /// Refusals the full queue could not take, not yet recorded.
    dropped: u64,
    /// Part of `dropped` in a recorder transaction under way, written as marker `marker_id`.
    dropped_taken: u64,
    marker_id: [u8; 16],
}

#[repr(C)]
struct Queue {
    lock: *mut pg_sys::LWLock,
    queued: u32,
    /// Refusals of databases beyond DATABASES (only in the server log).
    unrecorded: u64,
    dbs: [Db; DATABASES],
    /// Every slot's state, apart from the entries themselves: a scan reads 16 KB, not the
    /// whole 6 MB of entries (callers scan for a free slot under the lock).
    slots: [Slot; CAPACITY],
    data: [[u8; SLOT_BYTES]; CAPACITY],
}

const TRANCHE: &CStr = c"pg_repair_refusals";

static mut QUEUE: *mut Queue = std::ptr::null_mut();
static mut PREV_REQUEST: pg_sys::shmem_request_hook_type = None;
static mut PREV_STARTUP: pg_sys::shmem_startup_hook_type = None;

/// What the postmaster keeps of the queue across a reinitialisation of shared memory.
struct Carried {
    entries: Vec<(u32, bool, Vec<u8>)>,
    dbs: Vec<(u32, u64, u64, [u8; 16])>,
    unrecorded: u64,
}
static mut CARRIED: Option<Carried> = None;

/// Installs the shared-memory hooks. Called from _PG_init (shared_preload_libraries).
pub fn init() {
    // SAFETY: _PG_init runs in the postmaster, single-threaded, before any hook is called.
    unsafe {
        PREV_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(request);
        PREV_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(startup);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn request() {
    // SAFETY: called by the postmaster while it sizes shared memory.
    unsafe {
        if let Some(prev) = PREV_REQUEST {
            prev();
        }
        pg_sys::RequestAddinShmemSpace(std::mem::size_of::<Queue>());
        pg_sys::RequestNamedLWLockTranche(TRANCHE.as_ptr(), 1);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn startup() {
    // SAFETY: called by the postmaster (and, with EXEC_BACKEND, each child) after shared memory
    // is created; AddinShmemInitLock serialises the initialisation as PostgreSQL requires.
    unsafe {
        if let Some(prev) = PREV_STARTUP {
            prev();
        }
        // AddinShmemInitLock (a macro in C): the 22nd main LWLock.
        let init_lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
        pg_sys::LWLockAcquire(init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let mut found = false;
        let q = pg_sys::ShmemInitStruct(
            c"pg_repair refusal queue".as_ptr(),
            std::mem::size_of::<Queue>(),
            &mut found,
        ) as *mut Queue;
        if !found {
            std::ptr::write_bytes(q as *mut u8, 0, std::mem::size_of::<Queue>());
            (*q).lock = &raw mut (*pg_sys::GetNamedLWLockTranche(TRANCHE.as_ptr())).lock;
            restore(&mut *q);
        }
        QUEUE = q;
        pg_sys::LWLockRelease(init_lock);
        if !pg_sys::IsUnderPostmaster {
            pg_sys::on_shmem_exit(Some(carry), pg_sys::Datum::from(0));
        }
    }
}

/// Postmaster, shared memory about to go (crash reinitialisation or shutdown): keep what was not
/// written. Every other process is gone, so nothing changes the queue meanwhile.
#[pg_guard]
unsafe extern "C-unwind" fn carry(_code: c_int, _arg: pg_sys::Datum) {
    // SAFETY: runs in the postmaster with the segment still attached (this callback was
    // registered after the segment's own detach callback, and they run in reverse order).
    unsafe {
        if pg_sys::MyProcPid != pg_sys::PostmasterPid || QUEUE.is_null() {
            return;
        }
        let q = &*QUEUE;
        let mut kept = Carried {
            entries: vec![],
            dbs: vec![],
            unrecorded: q.unrecorded,
        };
        for (i, s) in q.slots.iter().enumerate() {
            if (s.state == READY || s.state == TAKEN) && (s.len as usize) <= SLOT_BYTES {
                kept.entries.push((
                    s.db,
                    s.state == TAKEN || s.recovered != 0,
                    q.data[i][..s.len as usize].to_vec(),
                ));
            }
        }
        for d in q.dbs.iter() {
            if d.db != 0 && (d.dropped > 0 || d.dropped_taken > 0) {
                kept.dbs
                    .push((d.db, d.dropped, d.dropped_taken, d.marker_id));
            }
        }
        CARRIED = Some(kept);
        QUEUE = std::ptr::null_mut();
    }
}

/// Puts what [`carry`] kept into a new segment.
fn restore(q: &mut Queue) {
    // SAFETY: postmaster only, single-threaded.
    let Some(kept) = (unsafe { (&raw mut CARRIED).replace(None) }) else {
        return;
    };
    q.unrecorded = kept.unrecorded;
    for (i, (db, recovered, data)) in kept.entries.into_iter().take(CAPACITY).enumerate() {
        q.data[i][..data.len()].copy_from_slice(&data);
        let s = &mut q.slots[i];
        s.db = db;
        s.recovered = recovered as u32;
        s.len = data.len() as u32;
        s.state = READY;
        q.queued += 1;
    }
    for (i, (db, dropped, taken, marker)) in kept.dbs.into_iter().take(DATABASES).enumerate() {
        let d = &mut q.dbs[i];
        d.db = db;
        d.dropped = dropped;
        d.dropped_taken = taken;
        d.marker_id = marker;
    }
}

/// The queue under its lock (None before shared memory exists, e.g. in `cargo pgrx test`'s
/// postmaster if the library was not preloaded).
fn with_queue<R>(f: impl FnOnce(&mut Queue) -> R) -> Option<R> {
    // SAFETY: QUEUE points into shared memory for the life of the process once set; every access
    // is under its LWLock, held only for copies (nothing in between can raise an ERROR).
    unsafe {
        let q = QUEUE;
        if q.is_null() {
            return None;
        }
        pg_sys::LWLockAcquire((*q).lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let r = f(&mut *q);
        pg_sys::LWLockRelease((*q).lock);
        Some(r)
    }
}

fn db_entry(q: &mut Queue, db: u32, add: bool) -> Option<&mut Db> {
    if let Some(i) = q.dbs.iter().position(|d| d.db == db) {
        return Some(&mut q.dbs[i]);
    }
    if !add {
        return None;
    }
    let i = q.dbs.iter().position(|d| d.db == 0)?;
    let d = &mut q.dbs[i];
    d.db = db;
    Some(d)
}

fn my_database() -> u32 {
    // SAFETY: set at backend start, never changes.
    unsafe { pg_sys::MyDatabaseId }.to_u32()
}

// ---------------------------------------------------------------------------------------------
// The caller's side.

/// Logs a refusal and queues it for repair.refusals. Never raises, never waits.
pub fn record(
    function: &str,
    e: &RepairError,
    playbook: Option<&str>,
    reason: Option<&str>,
    request_id: Option<&str>,
) {
    let session = identity::session_user().1;
    errors::log_refusal(e, playbook, &session, reason);
    if !crate::gucs::record_refusals() || crate::guards::in_recovery() {
        return;
    }
    let mut row = RefusalRow {
        refusal_id: clock::uuid(),
        refused_at: clock::now(),
        function: function.to_string(),
        session_user_name: Some(session),
        playbook_id: playbook.map(|p| errors::bounded(p, 100)),
        guard: Some(e.kind.name().to_string()),
        sqlstate: Some(e.kind.code().to_string()),
        message: Some(errors::bounded(&e.message, 500)),
        reason: reason.map(|r| errors::bounded(r, 500)),
        request_id: request_id.map(|r| errors::bounded(r, 200)),
        application_name: application_name(),
        client_addr: client_addr(),
        dropped: None,
    };
    let mut data = serde_json::to_vec(&row).unwrap_or_default();
    if data.len() > SLOT_BYTES {
        // Only hostile text gets here (escapes multiply a character's size): shorter still.
        row.message = row.message.map(|m| errors::bounded(&m, 100));
        row.reason = row.reason.map(|r| errors::bounded(&r, 100));
        row.playbook_id = row.playbook_id.map(|p| errors::bounded(&p, 40));
        row.request_id = row.request_id.map(|r| errors::bounded(&r, 40));
        data = serde_json::to_vec(&row).unwrap_or_default();
    }
    if data.is_empty() || data.len() > SLOT_BYTES {
        return;
    }
    enqueue(my_database(), &data);
}

fn enqueue(db: u32, data: &[u8]) {
    let outcome = with_queue(|q| {
        let free = if (q.queued as usize) < CAPACITY {
            q.slots.iter().position(|s| s.state == FREE)
        } else {
            None
        };
        let Some(entry) = db_entry(q, db, true) else {
            q.unrecorded += 1;
            return None;
        };
        let register = entry.registered == 0;
        entry.registered = 1;
        let latch = entry.latch;
        match free {
            None => entry.dropped += 1,
            Some(i) => {
                q.data[i][..data.len()].copy_from_slice(data);
                let s = &mut q.slots[i];
                s.db = db;
                s.recovered = 0;
                s.len = data.len() as u32;
                s.state = READY;
                q.queued += 1;
            }
        }
        // The recorder polls (POLL); it is woken early only when the queue fills up, so a
        // flood does not cost a wake-up (and a transaction) per refusal.
        Some((register, latch, q.queued as usize >= WAKE_AT))
    })
    .flatten();
    let Some((register, latch, wake)) = outcome else {
        return;
    };
    if register && !register_recorder(db) {
        with_queue(|q| {
            if let Some(e) = db_entry(q, db, false) {
                e.registered = 0;
            }
        });
    }
    if wake && !latch.is_null() {
        // SAFETY: a latch in a PGPROC, in shared memory for the server's life; setting the latch
        // of a process that has exited only wakes whoever uses that PGPROC now.
        unsafe { pg_sys::SetLatch(latch) };
    }
}

fn register_recorder(db: u32) -> bool {
    let worker = pgrx::bgworkers::BackgroundWorkerBuilder::new(&format!(
        "pg_repair refusal recorder (database {db})"
    ))
    .set_type("pg_repair refusal recorder")
    .set_library("pg_repair")
    .set_function("pg_repair_refusal_recorder")
    .set_argument(Some(pg_sys::Datum::from(db as usize)))
    .enable_spi_access()
    .set_start_time(pgrx::bgworkers::BgWorkerStartTime::RecoveryFinished)
    .set_restart_time(Some(Duration::from_secs(1)))
    .load_dynamic();
    if worker.is_err() {
        errors::log_line(
            "pg_repair: could not start the refusal recorder (max_worker_processes reached?); refusals stay queued",
        );
    }
    worker.is_ok()
}

fn c_string(p: *const std::ffi::c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string owned by PostgreSQL for the session's life.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    (!s.is_empty()).then_some(s)
}

fn application_name() -> Option<String> {
    // SAFETY: the GUC's backing string, read on the backend's thread.
    c_string(unsafe { pg_sys::application_name }).map(|a| errors::bounded(&a, 64))
}

thread_local! {
    /// The session's client address: fixed for the session, computed at its first refusal.
    static CLIENT_ADDR: std::cell::OnceCell<Option<String>> = const { std::cell::OnceCell::new() };
}

/// `inet_client_addr()` as text (None over a Unix socket).
fn client_addr() -> Option<String> {
    CLIENT_ADDR.with(|c| {
        c.get_or_init(|| {
            // SAFETY: inet_client_addr takes no arguments and reads the session's connection
            // (NULL without one); inet_out turns the inet datum into a palloc'd C string.
            unsafe {
                let inet = pgrx::direct_function_call_as_datum(pg_sys::inet_client_addr, &[])?;
                let text = pgrx::direct_function_call_as_datum(pg_sys::inet_out, &[Some(inet)])?;
                c_string(text.cast_mut_ptr::<std::ffi::c_char>())
            }
        })
        .clone()
    })
}

/// repair.refusal_queue(): this database's share of the queue.
pub fn status() -> serde_json::Value {
    let db = my_database();
    let s = with_queue(|q| {
        let mine = q
            .slots
            .iter()
            .filter(|s| s.state != FREE && s.db == db)
            .count();
        let (dropped, pid, registered) = db_entry(q, db, false)
            .map(|e| (e.dropped + e.dropped_taken, e.worker_pid, e.registered != 0))
            .unwrap_or((0, 0, false));
        (q.queued, mine, dropped, pid, registered, q.unrecorded)
    });
    match s {
        None => serde_json::json!({"available": false}),
        Some((total, mine, dropped, pid, registered, unrecorded)) => serde_json::json!({
            "available": true,
            "capacity": CAPACITY,
            "queued": mine,
            "queued_all_databases": total,
            "dropped_pending": dropped,
            "recorder_pid": (pid != 0).then_some(pid),
            "recorder_registered": registered,
            "unrecorded_other_databases": unrecorded,
            "recording": crate::gucs::record_refusals(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The recorder.

/// The refusal recorder's entry point (a dynamic background worker per database).
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_repair_refusal_recorder(arg: pg_sys::Datum) {
    let db = arg.value() as u32;
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // SAFETY: MyProcPid and MyLatch are this process's; MyLatch is in its PGPROC (shared).
    let (pid, latch) = unsafe { (pg_sys::MyProcPid, pg_sys::MyLatch) };
    let claimed = with_queue(|q| {
        let Some(e) = db_entry(q, db, true) else {
            return false;
        };
        if e.worker_pid != 0 && e.worker_pid != pid {
            return false;
        }
        e.worker_pid = pid;
        e.latch = latch;
        e.registered = 1;
        // Entries a failed predecessor (exit 1, restarted) had taken: back, written only if absent.
        for s in q.slots.iter_mut() {
            if s.state == TAKEN && s.db == db {
                s.state = READY;
                s.recovered = 1;
            }
        }
        true
    })
    .unwrap_or(false);
    if !claimed {
        // Another recorder serves this database: this registration ends for good (exit 0).
        return;
    }
    // SAFETY: registered once; runs at this process's exit, before shared memory detaches.
    unsafe { pg_sys::before_shmem_exit(Some(release_claim), pg_sys::Datum::from(db as usize)) };
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(db)), None);
    let mut idle = std::time::Instant::now();
    loop {
        let mut worked = false;
        while let Some(more) = drain(db) {
            worked = true;
            if !more {
                break;
            }
        }
        if worked {
            idle = std::time::Instant::now();
        } else if idle.elapsed() >= IDLE_EXIT && retire_if_idle(db, pid) {
            // Connected, a recorder holds up DROP DATABASE: it leaves when idle, and the next
            // refusal starts another.
            return;
        }
        if !BackgroundWorker::wait_latch(Some(POLL)) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: the standard reload of a background worker, outside any transaction.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
    }
    // Shutdown: write what is queued before going.
    while drain(db) == Some(true) {}
}

/// A recorder with nothing to do for this long exits (exit 0: its registration ends). Shorter
/// than the 5 s DROP DATABASE waits for other sessions to leave, so a recorder never makes it
/// fail.
const IDLE_EXIT: Duration = Duration::from_secs(3);

/// Gives up the claim when nothing is queued, atomically with the queue: a refusal queued after
/// this sees no recorder and registers a new one. The background-worker slot this frees goes to a
/// database whose refusals wait without a recorder (its registration failed: no free slot).
fn retire_if_idle(db: u32, pid: i32) -> bool {
    let outcome = with_queue(|q| {
        let pending = |q: &Queue, db: u32| q.slots.iter().any(|s| s.state != FREE && s.db == db);
        let mine = pending(q, db);
        let Some(e) = db_entry(q, db, false) else {
            return (false, None);
        };
        if mine || e.dropped != 0 || e.dropped_taken != 0 || e.worker_pid != pid {
            return (false, None);
        }
        // The entry itself is freed: databases come and go over a server's life.
        *e = Db {
            db: 0,
            registered: 0,
            worker_pid: 0,
            latch: std::ptr::null_mut(),
            dropped: 0,
            dropped_taken: 0,
            marker_id: [0; 16],
        };
        let waiting = q
            .dbs
            .iter()
            .position(|d| d.db != 0 && d.registered == 0 && (d.dropped > 0 || pending(q, d.db)));
        let handoff = waiting.map(|i| {
            q.dbs[i].registered = 1;
            q.dbs[i].db
        });
        (true, handoff)
    });
    let Some((retired, handoff)) = outcome else {
        return false;
    };
    if let Some(other) = handoff {
        if !register_recorder(other) {
            with_queue(|q| {
                if let Some(e) = db_entry(q, other, false) {
                    e.registered = 0;
                }
            });
        }
    }
    retired
}

#[pg_guard]
unsafe extern "C-unwind" fn release_claim(code: c_int, arg: pg_sys::Datum) {
    let db = arg.value() as u32;
    // SAFETY: MyProcPid is this process's.
    let pid = unsafe { pg_sys::MyProcPid };
    with_queue(|q| {
        if let Some(e) = db_entry(q, db, false) {
            if e.worker_pid == pid {
                e.worker_pid = 0;
                e.latch = std::ptr::null_mut();
                // Exit 0 ends the registration (a restart follows only a failure).
                if code == 0 {
                    e.registered = 0;
                }
            }
        }
    });
}

struct Taken {
    slots: Vec<usize>,
    entries: Vec<serde_json::Value>,
}

/// Takes a batch of this database's entries and writes it: None when there was nothing to take,
/// else whether there may be more.
fn drain(db: u32) -> Option<bool> {
    // Entries are copied under the lock and parsed after it: callers never wait for JSON.
    let mut raw: Vec<(Vec<u8>, bool)> = Vec::new();
    let taken = with_queue(|q| {
        let mut t = Taken {
            slots: vec![],
            entries: vec![],
        };
        let Queue { slots, data, .. } = &mut *q;
        for (i, s) in slots.iter_mut().enumerate() {
            if t.slots.len() >= BATCH {
                break;
            }
            if s.state == READY && s.db == db {
                s.state = TAKEN;
                raw.push((data[i][..s.len as usize].to_vec(), s.recovered != 0));
                t.slots.push(i);
            }
        }
        if let Some(e) = db_entry(q, db, false) {
            if e.dropped_taken > 0 {
                // A marker from before a failure or crash: written again unless it committed.
                t.entries.push(marker(e.dropped_taken, e.marker_id, true));
            } else if e.dropped > 0 {
                let id = clock::random_bytes();
                e.dropped_taken = e.dropped;
                e.dropped = 0;
                e.marker_id = id;
                t.entries.push(marker(e.dropped_taken, id, false));
            }
        }
        t
    })
    .unwrap_or(Taken {
        slots: vec![],
        entries: vec![],
    });
    let mut taken = taken;
    let parsed = raw.into_iter().map(|(bytes, recovered)| {
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if recovered {
            v["recovered"] = serde_json::Value::Bool(true);
        }
        v
    });
    // Markers (pushed under the lock) go after the entries.
    let markers = std::mem::take(&mut taken.entries);
    taken.entries = parsed.chain(markers).collect();
    if taken.entries.is_empty() {
        return None;
    }
    let more = taken.slots.len() >= BATCH;
    if write(&taken.entries) {
        finish(db, &taken, 0);
        return Some(more);
    }
    // One bad entry must not hold up the rest: one transaction each; an entry that fails alone
    // is dropped and counted (the count is written in the next marker row).
    let mut failed = 0u64;
    for e in &taken.entries {
        if !write(std::slice::from_ref(e)) {
            failed += e.get("dropped").and_then(|d| d.as_u64()).unwrap_or(1);
        }
    }
    finish(db, &taken, failed);
    Some(more)
}

fn finish(db: u32, taken: &Taken, failed: u64) {
    with_queue(|q| {
        for &i in &taken.slots {
            q.slots[i].state = FREE;
            q.slots[i].recovered = 0;
            q.queued -= 1;
        }
        if let Some(e) = db_entry(q, db, false) {
            e.dropped_taken = 0;
            e.dropped += failed;
        }
    });
}

fn marker(n: u64, id: [u8; 16], recovered: bool) -> serde_json::Value {
    let row = RefusalRow {
        refusal_id: pg_repair_core::time::uuid_v4(id),
        refused_at: clock::now(),
        function: "pg_repair".into(),
        guard: Some("QUEUE_FULL".into()),
        message: Some(format!(
            "{n} refusal(s) were not recorded: the refusal queue was full (they are in the server log)"
        )),
        dropped: Some(n as i64),
        ..Default::default()
    };
    let mut v = serde_json::to_value(row).unwrap_or_default();
    if recovered {
        v["recovered"] = serde_json::Value::Bool(true);
    }
    v
}

thread_local! {
    /// Whether this recorder's database has repair._record_refusals (a yes is kept until a write
    /// fails; a no is asked again at the next batch).
    static HAS_RECORDER_FN: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// One transaction: repair._record_refusals(entries). False when it failed (rolled back) or
/// this database has no recorder function (pg_repair not installed, or an earlier schema).
fn write(entries: &[serde_json::Value]) -> bool {
    let doc = serde_json::Value::Array(entries.to_vec());
    // SAFETY: the standard transaction of a background worker, outside any other transaction;
    // an ERROR inside is caught, and the transaction aborted and cleaned up by PostgreSQL.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let outcome = PgTryBuilder::new(|| {
        let has_fn = HAS_RECORDER_FN.get().unwrap_or_else(|| {
            let found = Spi::get_one::<bool>(
                "SELECT pg_catalog.to_regprocedure('repair._record_refusals(jsonb)') IS NOT NULL",
            )
            .ok()
            .flatten()
            .unwrap_or(false);
            // Only a yes is kept: an ALTER EXTENSION UPDATE may add the function at any time.
            if found {
                HAS_RECORDER_FN.set(Some(true));
            }
            found
        });
        if !has_fn {
            errors::log_line(&format!(
                "pg_repair refusal recorder: {} refusal(s) not recorded: this database has no repair._record_refusals (ALTER EXTENSION pg_repair UPDATE)",
                entries.len()
            ));
            return true;
        }
        Spi::run_with_args(
            "SELECT repair._record_refusals($1::jsonb)",
            &[pgrx::JsonB(doc.clone()).into()],
        )
        .is_ok()
    })
    .catch_others(|e| {
        let msg = match &e {
            pg_sys::panic::CaughtError::PostgresError(r)
            | pg_sys::panic::CaughtError::ErrorReport(r)
            | pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => r.message().to_string(),
        };
        errors::log_line(&format!(
            "pg_repair refusal recorder: writing {} refusal(s) failed: {msg}",
            entries.len()
        ));
        false
    })
    .execute();
    if !outcome {
        // Asked again next time (the extension may have been updated or dropped meanwhile).
        HAS_RECORDER_FN.set(None);
    }
    // SAFETY: as above: commit what succeeded, abort (and clean up) what did not.
    unsafe {
        if outcome {
            pg_sys::PopActiveSnapshot();
            pg_sys::CommitTransactionCommand();
        } else {
            pg_sys::AbortCurrentTransaction();
        }
    }
    outcome
}

/// repair._record_refusals: appends entries to the refusals chain (recorder only: superuser).
pub fn append(entries: serde_json::Value) -> crate::errors::Result<i64> {
    crate::audit::require_read_committed("repair._record_refusals")?;
    let list = entries.as_array().cloned().unwrap_or_default();
    crate::guc_scope::as_definer(|| {
        let schema = crate::schema::detect();
        crate::lock::lock_playbook("refusals:chain")?;
        let mut rows = Vec::with_capacity(list.len());
        for mut v in list {
            let recovered = v
                .as_object_mut()
                .and_then(|m| m.remove("recovered"))
                .is_some();
            let Ok(row) = serde_json::from_value::<RefusalRow>(v) else {
                continue;
            };
            if recovered
                && crate::spi::one::<bool>(
                    "SELECT true FROM repair.refusals WHERE refusal_id = $1::uuid",
                    &[row.refusal_id.as_str().into()],
                )
                .is_some()
            {
                continue;
            }
            rows.push(row);
        }
        crate::audit::append_rows("refusals", RefusalRow::CHAIN, &rows, schema);
        Ok(rows.len() as i64)
    })
}
