//! Settings. The gating ones are SIGHUP (postgresql.conf / ALTER SYSTEM + reload only), the
//! timeout defaults SUSET: no ordinary user can change any of them, and the `repair.` prefix is
//! reserved so nobody can create a placeholder of the same name.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

static DB_ROLE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static ALLOW_PROD: GucSetting<bool> = GucSetting::<bool>::new(false);
static EXECUTORS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static RUN_AS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static LOCK_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(5_000);
static STATEMENT_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(300_000);
static LOG_HEAD: GucSetting<bool> = GucSetting::<bool>::new(false);
static APPROVERS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static REQUIRE_APPROVAL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"prod"));
static REDACT: GucSetting<bool> = GucSetting::<bool>::new(true);
static RECORD_REFUSALS: GucSetting<bool> = GucSetting::<bool>::new(true);

pub fn init() {
    GucRegistry::define_bool_guc(
        c"repair.log_head",
        c"Write the new audit_head() to the server log after every append to an audit chain.",
        c"An external witness: with the log shipped elsewhere, a chain rewritten consistently by a superuser still disagrees with the heads logged.",
        &LOG_HEAD,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"repair.db_role",
        c"Declared role of this database: staging, prod or replica.",
        c"Unset, empty or anything else refuses every gated call (ROLE_UNDECLARED). Never inferred.",
        &DB_ROLE,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"repair.allow_prod",
        c"Whether playbooks and migrations may run at all when repair.db_role = prod.",
        c"Even when on, each call must also confirm (confirm_prod => true).",
        &ALLOW_PROD,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"repair.executors",
        c"Comma-separated roles whose members may execute playbooks.",
        c"Checked against session_user; empty means nobody.",
        &EXECUTORS,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"repair.run_as",
        c"Role the playbook SQL runs as; empty means the session user.",
        c"",
        &RUN_AS,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"repair.lock_timeout",
        c"Default lock timeout for playbook statements (a playbook's lock-timeout header overrides it).",
        c"",
        &LOCK_TIMEOUT_MS,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"repair.statement_timeout",
        c"Default timeout for each playbook statement (a playbook's statement-timeout header overrides it).",
        c"",
        &STATEMENT_TIMEOUT_MS,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_string_guc(
        c"repair.approvers",
        c"Comma-separated roles whose members may approve playbook runs (four eyes).",
        c"Checked against session_user; empty means nobody.",
        &APPROVERS,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"repair.require_approval",
        c"When a run needs an approval by another person: off, prod (on a prod-declared database) or always.",
        c"Anything else, including an empty value, is treated as always (fail closed).",
        &REQUIRE_APPROVAL,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"repair.redact",
        c"Remove data values from error messages and details stored in the audit and returned by execute.",
        c"Key (...)=(...) values, Failing row contains (...) and quoted literals become <redacted>.",
        &REDACT,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"repair.record_refusals",
        c"Record every guard refusal in repair.refusals (through the refusal recorder, a background worker).",
        c"Off: refusals go to the server log only.",
        &RECORD_REFUSALS,
        GucContext::Sighup,
        GucFlags::default(),
    );
    // SAFETY: a static NUL-terminated prefix; called from _PG_init in the postmaster (single
    // thread), after the repair.* settings above are defined, as PostgreSQL requires.
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"repair".as_ptr()) };
}

fn string_of(s: &GucSetting<Option<CString>>) -> Option<String> {
    s.get().map(|c| c.to_string_lossy().into_owned())
}

pub fn log_head() -> bool {
    LOG_HEAD.get()
}

/// The raw declared role (None when unset); guards validate it.
pub fn db_role() -> Option<String> {
    string_of(&DB_ROLE)
}
pub fn allow_prod() -> bool {
    ALLOW_PROD.get()
}
/// Listed executor role names (trimmed, empty items dropped).
pub fn executors() -> Vec<String> {
    split_list(&string_of(&EXECUTORS).unwrap_or_default())
}
/// Listed approver role names.
pub fn approvers() -> Vec<String> {
    split_list(&string_of(&APPROVERS).unwrap_or_default())
}

/// repair.require_approval as set (trimmed); guards::approval_policy interprets it.
pub fn require_approval() -> String {
    string_of(&REQUIRE_APPROVAL)
        .unwrap_or_default()
        .trim()
        .to_string()
}
pub fn redact() -> bool {
    REDACT.get()
}
pub fn record_refusals() -> bool {
    RECORD_REFUSALS.get()
}
/// The configured run_as role, None when empty.
pub fn run_as() -> Option<String> {
    string_of(&RUN_AS)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}
pub fn lock_timeout_ms() -> i32 {
    LOCK_TIMEOUT_MS.get()
}
pub fn statement_timeout_ms() -> i32 {
    STATEMENT_TIMEOUT_MS.get()
}

pub fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}
