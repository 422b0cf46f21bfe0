//! The one place that maps pg_repair's error kinds to SQLSTATEs, and the machinery that gets a
//! custom SQLSTATE (RP001…) to the client intact.
//!
//! pgrx's `PgSqlErrorCode` is a closed enum: any code it does not know becomes XX000, both in
//! `ereport!` and when it turns a PostgreSQL ERROR raised under SPI into a Rust panic. So errors are
//! *thrown* as a Rust panic carrying a [`RepairError`] (it unwinds normally through Drop guards,
//! subtransactions and `PgTryBuilder`), and [`boundary`] — wrapped around the body of every SQL
//! function — raises them with PostgreSQL's own `errstart`/`errfinish` once nothing Rust-owned is
//! left alive on the stack.
//!
//! The preloaded hooks run outside any SQL function, so no `boundary` catches there:
//! [`raise_in_hook`] raises through pgrx's own error report instead, which keeps the standard
//! SQLSTATEs their kinds use.
//!
//! Refusals raised from PL/pgSQL rather than Rust use the same SQLSTATE and NAME as their kind
//! here (see [`Kind::AppendOnly`], [`Kind::Protected`]); `sql_raised_kinds_match` checks them.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::{CaughtError, ErrorReport, ErrorReportWithLevel};
use pgrx::{PgLogLevel, PgSqlErrorCode};
use std::any::Any;
use std::ffi::{c_int, c_void, CString};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI32, Ordering};

/// Every error kind pg_repair raises on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    RoleUndeclared,
    EnvDisabled,
    NotAuthorized,
    ReasonRequired,
    UnknownPlaybook,
    HashMismatch,
    LintRejected,
    ParseError,
    InvalidArgument,
    RunAsInvalid,
    NestedExecute,
    IsolationLevel,
    /// Recorded in a FAILED run, never raised.
    RequiresBeforeMissing,
    RequiresAfterMissing,
    /// Another run of the playbook held its lock longer than repair.lock_timeout.
    LockTimeout,
    /// The client (or the session's statement_timeout) cancelled the call.
    Cancelled,
    /// A statement the runtime refuses while a playbook runs (recorded in a FAILED run).
    RuntimeBlocked,
    /// A stored row no longer matches its hash: refused, never trusted.
    Tampered,
    /// The extension's schema is not exactly one release's (changed outside CREATE/ALTER
    /// EXTENSION): nothing is written or verified against it.
    SchemaMismatch,
    /// A change that would silence or detach pg_repair's protection (its event triggers, its
    /// extension membership, schema repair) outside CREATE/ALTER EXTENSION. Raised by the utility
    /// hook (hooks.rs) and, for what event triggers see, from SQL by repair._protect_objects()
    /// (sql/protect.sql).
    Protected,
    /// An UPDATE, DELETE, TRUNCATE or foreign INSERT on an append-only table. Raised only from
    /// SQL: repair._deny_modification() and repair._insert_guard() (sql/protect.sql).
    #[allow(dead_code)]
    AppendOnly,
    /// The library was loaded other than through shared_preload_libraries. Raised in _PG_init
    /// (lib.rs), before any SQL function exists.
    PreloadRequired,
    /// An online run's session sent something other than the playbook's next statement; or
    /// repair.execute was asked to run an online playbook.
    OnlineSequence,
    /// A call that must be alone in its transaction was made inside a transaction block.
    InTransactionBlock,
    /// Guard 8: approval required and no usable approval by another person.
    ApprovalRequired,
    /// repair.revoke_approval named an approval that does not exist.
    UnknownApproval,
}

/// Every kind (for recognising pg_repair's own messages by their NAME).
const ALL_KINDS: &[Kind] = &[
    Kind::RoleUndeclared,
    Kind::EnvDisabled,
    Kind::NotAuthorized,
    Kind::ReasonRequired,
    Kind::UnknownPlaybook,
    Kind::HashMismatch,
    Kind::LintRejected,
    Kind::ParseError,
    Kind::InvalidArgument,
    Kind::RunAsInvalid,
    Kind::NestedExecute,
    Kind::IsolationLevel,
    Kind::RequiresBeforeMissing,
    Kind::RequiresAfterMissing,
    Kind::LockTimeout,
    Kind::Cancelled,
    Kind::RuntimeBlocked,
    Kind::Tampered,
    Kind::SchemaMismatch,
    Kind::Protected,
    Kind::AppendOnly,
    Kind::PreloadRequired,
    Kind::OnlineSequence,
    Kind::InTransactionBlock,
    Kind::ApprovalRequired,
    Kind::UnknownApproval,
];

impl Kind {
    /// (SQLSTATE, NAME). NAME starts every message so logs and clients can match on it.
    pub fn code_and_name(self) -> (&'static str, &'static str) {
        match self {
            Kind::RoleUndeclared => ("RP001", "ROLE_UNDECLARED"),
            Kind::EnvDisabled => ("RP002", "ENV_DISABLED"),
            Kind::NotAuthorized => ("42501", "NOT_AUTHORIZED"),
            Kind::ReasonRequired => ("RP004", "REASON_REQUIRED"),
            Kind::UnknownPlaybook => ("RP005", "UNKNOWN_PLAYBOOK"),
            Kind::HashMismatch => ("RP006", "HASH_MISMATCH"),
            Kind::LintRejected => ("RP007", "LINT_REJECTED"),
            Kind::ParseError => ("22023", "PARSE_ERROR"),
            Kind::InvalidArgument => ("22023", "INVALID_ARGUMENT"),
            Kind::RunAsInvalid => ("42704", "RUN_AS_INVALID"),
            Kind::NestedExecute => ("0A000", "NESTED_EXECUTE"),
            Kind::IsolationLevel => ("25000", "ISOLATION_LEVEL"),
            Kind::RequiresBeforeMissing => ("RP008", "REQUIRES_BEFORE_MISSING"),
            Kind::RequiresAfterMissing => ("RP009", "REQUIRES_AFTER_MISSING"),
            Kind::LockTimeout => ("55P03", "LOCK_TIMEOUT"),
            Kind::Cancelled => ("57014", "QUERY_CANCELED"),
            Kind::RuntimeBlocked => ("42501", "RUNTIME_BLOCKED"),
            Kind::Tampered => ("XX001", "TAMPERED"),
            Kind::SchemaMismatch => ("55000", "SCHEMA_MISMATCH"),
            Kind::Protected => ("42501", "PROTECTED"),
            Kind::AppendOnly => ("42501", "APPEND_ONLY"),
            Kind::PreloadRequired => ("55000", "PRELOAD_REQUIRED"),
            Kind::OnlineSequence => ("RP011", "ONLINE_SEQUENCE"),
            Kind::InTransactionBlock => ("25001", "ACTIVE_SQL_TRANSACTION"),
            Kind::ApprovalRequired => ("RP010", "APPROVAL_REQUIRED"),
            Kind::UnknownApproval => ("42704", "UNKNOWN_APPROVAL"),
        }
    }
    pub fn code(self) -> &'static str {
        self.code_and_name().0
    }
    pub fn name(self) -> &'static str {
        self.code_and_name().1
    }
}

/// An error with its SQLSTATE, message (prefixed with the kind's NAME), detail and hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairError {
    pub kind: Kind,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl RepairError {
    pub fn new(kind: Kind, message: impl AsRef<str>) -> Self {
        RepairError {
            kind,
            message: format!("{}: {}", kind.name(), message.as_ref()),
            detail: None,
            hint: None,
        }
    }
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }
}

pub type Result<T> = std::result::Result<T, RepairError>;

/// Writes a refusal to the server log as one structured line; the caller's transaction may abort,
/// the log line stays.
pub fn log_refusal(
    e: &RepairError,
    playbook: Option<&str>,
    session_user: &str,
    reason: Option<&str>,
) {
    // Every field is bounded: a caller controls the reason (and through the id, part of the
    // message), and one refusal must never become a megabyte-long log line.
    let line = serde_json::json!({
        "code": e.kind.code(),
        "name": e.kind.name(),
        "playbook": playbook.map(|p| bounded(p, 80)),
        "session_user": bounded(session_user, 80),
        "reason": reason.map(|r| bounded(r, 200)),
        "message": bounded(&e.message, 500),
    });
    // JSON escapes C0 characters but not DEL, C1 or bidi ones: escape those too, so a hostile
    // reason cannot act on a terminal that tails the server log.
    let line = pg_repair_core::text_safety::json_escape_unsafe(&line.to_string()).into_owned();
    log_line(&format!("pg_repair refusal: {line}"));
}

/// One LOG line without the statement text (which the caller controls and may be huge: LOG
/// ranks above ERROR for log_min_error_statement, so it would be printed in full).
pub fn log_line(text: &str) {
    let c = CString::new(text.replace('\0', "")).unwrap_or_default();
    // SAFETY: the format is a static "%s" and its one argument `c` a NUL-terminated string alive
    // for the whole call (errmsg copies it); at LOG level errfinish returns instead of
    // longjmp'ing, and pg_guard_ffi_boundary turns any ERROR raised meanwhile into a panic.
    unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| {
            if elog_ffi::errstart(pg_sys::LOG as c_int, std::ptr::null()) {
                elog_ffi::errhidestmt(true);
                elog_ffi::errmsg(c"%s".as_ptr(), c.as_ptr());
                elog_ffi::errfinish(
                    c"pg_repair/errors.rs".as_ptr(),
                    line!() as c_int,
                    c"log_line".as_ptr(),
                );
            }
        })
    }
}

/// At most `max` characters of `s`, with the number left out.
pub fn bounded(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push_str(&format!("… ({} more characters)", n - max));
    out
}

/// PostgreSQL's MAKE_SQLSTATE.
pub fn make_sqlstate(code: &str) -> c_int {
    code.bytes().enumerate().fold(0, |acc, (i, c)| {
        acc + ((((c as c_int) - ('0' as c_int)) & 0x3F) << (6 * i))
    })
}

pub fn unpack_sqlstate(code: c_int) -> String {
    (0..5)
        .map(|i| ((((code >> (6 * i)) & 0x3F) as u8) + b'0') as char)
        .collect()
}

mod elog_ffi {
    use std::ffi::{c_char, c_int};
    // pgrx keeps these out of pg_sys; they are PostgreSQL's own error API.
    unsafe extern "C-unwind" {
        pub fn errstart(elevel: c_int, domain: *const c_char) -> bool;
        pub fn errcode(sqlerrcode: c_int) -> c_int;
        pub fn errmsg(fmt: *const c_char, ...) -> c_int;
        pub fn errdetail(fmt: *const c_char, ...) -> c_int;
        pub fn errhint(fmt: *const c_char, ...) -> c_int;
        pub fn errhidestmt(hide_stmt: bool) -> c_int;
        pub fn errfinish(filename: *const c_char, lineno: c_int, funcname: *const c_char);
    }
}

/// ereport(ERROR) with the error's SQLSTATE.
///
/// # Safety
/// `errfinish` longjmps to the innermost PG_TRY, skipping every Rust frame in between: call only
/// where nothing with a destructor is alive above (this is what [`boundary`] guarantees).
pub unsafe fn raise_now(e: RepairError) -> ! {
    let code = make_sqlstate(e.kind.code());
    // SAFETY: pstrdup copies a NUL-terminated string alive for the call into the current
    // memory context, where it outlives the longjmp below.
    let dup = |s: &str| unsafe {
        let c = CString::new(s.replace('\0', "")).unwrap_or_default();
        pg_sys::pstrdup(c.as_ptr())
    };
    let msg = dup(&e.message);
    let detail = e.detail.as_deref().map_or(std::ptr::null_mut(), dup);
    let hint = e.hint.as_deref().map_or(std::ptr::null_mut(), dup);
    drop(e);
    // SAFETY: msg/detail/hint are palloc'd C strings (or null, then not passed) formatted with a
    // static "%s"; errfinish(ERROR) longjmps, and nothing with a destructor is alive in this
    // frame (`e` was dropped above, the strings are palloc'd) nor above it (caller's contract).
    unsafe {
        if elog_ffi::errstart(pg_sys::PGERROR as c_int, std::ptr::null()) {
            elog_ffi::errcode(code);
            // The statement text is the caller's (a 10 MB reason, say): our own refusal line
            // (log_refusal) already names what the log needs, bounded.
            elog_ffi::errhidestmt(true);
            elog_ffi::errmsg(c"%s".as_ptr(), msg);
            if !detail.is_null() {
                elog_ffi::errdetail(c"%s".as_ptr(), detail);
            }
            if !hint.is_null() {
                elog_ffi::errhint(c"%s".as_ptr(), hint);
            }
            elog_ffi::errfinish(
                c"pg_repair/errors.rs".as_ptr(),
                line!() as c_int,
                c"raise".as_ptr(),
            );
        }
    }
    unreachable!("errfinish(ERROR) returned")
}

// pgrx collapses unknown SQLSTATEs to XX000 when it converts a PostgreSQL ERROR into a panic. An
// error context callback sees every ereport while it is installed: it remembers the real code.
static LAST_ERRCODE: AtomicI32 = AtomicI32::new(0);
static LAST_ERRPOS: AtomicI32 = AtomicI32::new(0);

unsafe extern "C-unwind" fn remember_errcode(_arg: *mut c_void) {
    // SAFETY: PostgreSQL calls an error context callback while it builds an error report, which
    // is when geterrcode/geterrposition may be called.
    let code = unsafe { pg_sys::geterrcode() };
    let class = unpack_sqlstate(code);
    if !matches!(&class[..2], "00" | "01" | "02") {
        LAST_ERRCODE.store(code, Ordering::Relaxed);
        // SAFETY: as for geterrcode above: we are inside the error report.
        LAST_ERRPOS.store(unsafe { pg_sys::geterrposition() }, Ordering::Relaxed);
    }
}

/// The cursor position (1-based, in characters) of the last ERROR seen by an [`ErrCodeCapture`],
/// 0 if it had none.
pub fn last_error_position() -> i32 {
    LAST_ERRPOS.load(Ordering::Relaxed)
}

/// While alive, `callback` is on PostgreSQL's error context stack: it sees every report raised
/// below it. Drop pops it (also while a caught ERROR unwinds as a panic).
pub struct ContextEntry(Box<pg_sys::ErrorContextCallback>);

impl ContextEntry {
    pub fn push(callback: unsafe extern "C-unwind" fn(*mut c_void)) -> Self {
        let mut cb = Box::new(pg_sys::ErrorContextCallback {
            // SAFETY: a plain global of this backend, read on its only thread.
            previous: unsafe { pg_sys::error_context_stack },
            callback: Some(callback),
            arg: std::ptr::null_mut(),
        });
        // SAFETY: the callback is boxed, so its address is stable for as long as the returned
        // guard owns it, and Drop pops it before the box is freed; error_context_stack is only
        // touched from this backend's single thread.
        unsafe { pg_sys::error_context_stack = &mut *cb };
        ContextEntry(cb)
    }
}

impl Drop for ContextEntry {
    fn drop(&mut self) {
        // SAFETY: restores the entry that was on top when this guard pushed itself, so the stack
        // no longer points into the box about to be freed; single backend thread. Guards are
        // dropped in reverse order of pushing (they are scoped values), and an ERROR that
        // longjmps past one restores error_context_stack by itself (PG_CATCH).
        unsafe { pg_sys::error_context_stack = self.0.previous }
    }
}

/// While alive, records the SQLSTATE of every ERROR raised below it.
pub struct ErrCodeCapture(#[allow(dead_code)] ContextEntry);

impl ErrCodeCapture {
    pub fn push() -> Self {
        let entry = ContextEntry::push(remember_errcode);
        LAST_ERRCODE.store(0, Ordering::Relaxed);
        LAST_ERRPOS.store(0, Ordering::Relaxed);
        ErrCodeCapture(entry)
    }
}

pub fn report_of(e: &CaughtError) -> &ErrorReportWithLevel {
    match e {
        CaughtError::PostgresError(r)
        | CaughtError::ErrorReport(r)
        | CaughtError::RustPanic { ereport: r, .. } => r,
    }
}

/// The SQLSTATE of a caught error: a thrown RepairError's own code, or the real code of a
/// PostgreSQL ERROR (needs an [`ErrCodeCapture`] around the code that raised it).
pub fn caught_sqlstate(e: &CaughtError) -> String {
    if let CaughtError::RustPanic { payload, .. } = e {
        if let Some(r) = payload.downcast_ref::<RepairError>() {
            return r.kind.code().to_string();
        }
    }
    let code = report_of(e).sql_error_code() as c_int;
    let last = LAST_ERRCODE.load(Ordering::Relaxed);
    if code == make_sqlstate("XX000") && last != 0 {
        unpack_sqlstate(last)
    } else {
        unpack_sqlstate(code)
    }
}

/// The message of a caught error (a thrown RepairError's own message).
pub fn caught_message(e: &CaughtError) -> String {
    if let CaughtError::RustPanic { payload, .. } = e {
        if let Some(r) = payload.downcast_ref::<RepairError>() {
            return r.message.clone();
        }
    }
    report_of(e).message().to_string()
}

/// The message of a caught error followed by its detail in parentheses, as a run records it
/// (the detail is where PostgreSQL names the key or row: repair.redact scrubs the values).
/// Message and detail are scrubbed each on its own (repair.redact) before they are joined: a value
/// in one must never shift where the other's values end.
/// pg_repair's own refusals (raised from hooks or SQL, e.g. RUNTIME_BLOCKED) keep their wording
/// without the detail: it explains the rule, not the data.
pub fn caught_message_and_detail(e: &CaughtError) -> String {
    let raw = caught_message(e);
    let own = raw
        .split_once(':')
        .is_some_and(|(head, _)| ALL_KINDS.iter().any(|k| k.name() == head));
    let message = crate::redaction::scrub(&raw);
    match report_of(e).detail() {
        Some(d) if !d.is_empty() && !own && !matches!(e, CaughtError::RustPanic { .. }) => {
            format!("{message} ({})", crate::redaction::scrub(d))
        }
        _ => message,
    }
}

fn repair_error_of(p: &(dyn Any + Send)) -> Option<RepairError> {
    if let Some(e) = p.downcast_ref::<RepairError>() {
        return Some(e.clone());
    }
    match p.downcast_ref::<CaughtError>()? {
        CaughtError::RustPanic { payload, .. } => payload.downcast_ref::<RepairError>().cloned(),
        _ => None,
    }
}

/// Raises `e` from code that runs in a `#[pg_guard]` hook rather than under [`boundary`]: through
/// pgrx's error report, which unwinds the hook's Rust frames and keeps the SQLSTATE as long as it
/// is one of PostgreSQL's own (pgrx's closed enum would turn an RP… code into XX000, so a kind
/// with a custom code is an internal error here).
#[track_caller]
pub fn raise_in_hook(e: RepairError) -> ! {
    let code = PgSqlErrorCode::from(make_sqlstate(e.kind.code()));
    assert!(
        code != PgSqlErrorCode::ERRCODE_INTERNAL_ERROR || e.kind.code() == "XX000",
        "internal error: {} ({}) cannot be raised from a hook",
        e.kind.name(),
        e.kind.code()
    );
    let mut report = ErrorReport::new(code, e.message, "pg_repair hook");
    if let Some(detail) = e.detail {
        report = report.set_detail(detail);
    }
    if let Some(hint) = e.hint {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}

/// Wraps the body of every `#[pg_extern]`: `Err(RepairError)` or a thrown one leaves the function
/// as an ERROR with exactly its SQLSTATE, detail and hint; anything else propagates unchanged.
pub fn boundary<R>(f: impl FnOnce() -> Result<R>) -> R {
    let outcome = catch_unwind(AssertUnwindSafe(f));
    let err = match outcome {
        Ok(Ok(v)) => return v,
        Ok(Err(e)) => e,
        Err(payload) => match repair_error_of(&*payload) {
            Some(e) => {
                drop(payload);
                e
            }
            None => resume_unwind(payload),
        },
    };
    // SAFETY: raise_now's contract: everything this function owned has been moved into `err`
    // or dropped, and the frames it longjmps over are pgrx's wrappers, which hold nothing with a
    // destructor.
    unsafe { raise_now(err) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds raised from PL/pgSQL, which names conditions rather than SQLSTATEs.
    const SQL_RAISED: &[(Kind, &str)] = &[
        (Kind::AppendOnly, "insufficient_privilege"),
        (Kind::Protected, "insufficient_privilege"),
    ];
    const CONDITIONS: &[(&str, &str)] = &[("insufficient_privilege", "42501")];

    #[test]
    fn sql_raised_kinds_match() {
        let sql = include_str!("../../sql/protect.sql");
        let mut seen = Vec::new();
        for raise in sql.split("RAISE EXCEPTION '").skip(1) {
            let name = raise.split(':').next().unwrap_or_default();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                continue;
            }
            let (kind, condition) = SQL_RAISED
                .iter()
                .find(|(k, _)| k.name() == name)
                .unwrap_or_else(|| panic!("{name} is raised in SQL but has no Kind"));
            let errcode = raise
                .split("ERRCODE = '")
                .nth(1)
                .and_then(|r| r.split('\'').next())
                .unwrap_or_else(|| panic!("{name}: RAISE without ERRCODE"));
            assert_eq!(errcode, *condition, "{name}");
            let code = CONDITIONS.iter().find(|(c, _)| *c == errcode).unwrap().1;
            assert_eq!(code, kind.code(), "{name}");
            seen.push(*kind);
        }
        for (kind, _) in SQL_RAISED {
            assert!(seen.contains(kind), "{} is not raised in SQL", kind.name());
        }
    }

    #[test]
    fn hook_kinds_keep_their_sqlstate_through_pgrx() {
        for kind in [Kind::RuntimeBlocked, Kind::Protected, Kind::Cancelled] {
            let code = PgSqlErrorCode::from(make_sqlstate(kind.code()));
            assert_ne!(code, PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, "{kind:?}");
            assert_eq!(unpack_sqlstate(code as c_int), kind.code());
        }
        assert_eq!(
            PgSqlErrorCode::from(make_sqlstate(Kind::RuntimeBlocked.code())),
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE
        );
        assert_eq!(
            PgSqlErrorCode::from(make_sqlstate(Kind::Cancelled.code())),
            PgSqlErrorCode::ERRCODE_QUERY_CANCELED
        );
    }
}
