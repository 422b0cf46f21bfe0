//! Setting GUCs for the duration of a closure, the way a function's SET clause does, so the
//! extension's own SQL never depends on the caller's session settings.

use pgrx::pg_sys;
use std::ffi::{CStr, CString};

/// Runs `f` with the given settings, restoring the previous values afterwards. On ERROR the
/// (sub)transaction abort restores them.
pub fn with_gucs<R>(settings: &[(&CStr, &str)], f: impl FnOnce() -> R) -> R {
    // SAFETY: no arguments; only opens a GUC nesting level, closed by AtEOXact_GUC below or, on
    // ERROR, by the (sub)transaction abort. Called inside a transaction, on the backend's thread.
    let nest = unsafe { pg_sys::NewGUCNestLevel() };
    for (name, value) in settings {
        // A setting that already has the value is left alone: setting it again (TimeZone lookups,
        // search_path recomputation) is most of the cost, and nothing needs restoring.
        if current(name).as_deref() != Some(*value) {
            set_option(name, value, pg_sys::GucAction::GUC_ACTION_SAVE);
        }
    }
    let r = f();
    // SAFETY: `nest` is the level opened above, and every level `f` opened has been closed by
    // now (or `f` would have raised an ERROR and not returned).
    unsafe { pg_sys::AtEOXact_GUC(true, nest) };
    r
}

/// Sets a transaction-scoped GUC the way `SET LOCAL` does. For settings PostgreSQL 18 refuses in a
/// function's SET clause (`transaction_read_only` and the other GUC_NO_RESET ones: "cannot be set
/// locally in functions"), so `with_gucs`'s save-and-restore cannot take them. Only call it inside
/// a subtransaction that is always rolled back: that rollback is what restores the old value.
pub fn set_local_in_rolled_back_subxact(name: &CStr, value: &str) {
    set_option(name, value, pg_sys::GucAction::GUC_ACTION_LOCAL);
}

/// Sets a setting for the rest of the session, as `SET` does (undone if the transaction aborts).
pub fn set_for_session(name: &CStr, value: &str) {
    set_option(name, value, pg_sys::GucAction::GUC_ACTION_SET);
}

/// A setting's value as SHOW prints it (None for an unknown name).
pub fn current(name: &CStr) -> Option<String> {
    // SAFETY: `name` is NUL-terminated; with missing_ok the call returns NULL rather than raising
    // for an unknown name, and the returned string is copied before anything can change it.
    unsafe {
        let v = pg_sys::GetConfigOption(name.as_ptr(), true, false);
        (!v.is_null()).then(|| CStr::from_ptr(v).to_string_lossy().into_owned())
    }
}

/// One user-level setting as the session would make it (errors are raised, not ignored).
fn set_option(name: &CStr, value: &str, action: pg_sys::GucAction::Type) {
    let value = CString::new(value).unwrap_or_default();
    // SAFETY: both strings are NUL-terminated and outlive the call; set_config_option copies them.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            0,
            false,
        );
    }
}

/// The settings every piece of the extension's own SQL runs under, whatever the caller set: a
/// pinned search_path (nothing planted in the caller's path is ever called), UTC, and fixed text
/// formats for dates, intervals, numbers and identifiers, so guards decide and row documents hash
/// the same in every session.
pub const DEFINER_SETTINGS: &[(&CStr, &str)] = &[
    (c"search_path", "pg_catalog, pg_temp"),
    (c"TimeZone", "UTC"),
    (c"DateStyle", "ISO, YMD"),
    (c"IntervalStyle", "postgres"),
    (c"extra_float_digits", "1"),
    (c"bytea_output", "hex"),
    (c"quote_all_identifiers", "off"),
    (c"standard_conforming_strings", "on"),
    (c"transform_null_equals", "off"),
    (c"array_nulls", "on"),
];

/// Runs `f` under [`DEFINER_SETTINGS`]. Nested inside another as_definer only what changed in
/// between is set again (the caller's SQL may have run there, e.g. a check as the session user).
pub fn as_definer<R>(f: impl FnOnce() -> R) -> R {
    with_gucs(DEFINER_SETTINGS, f)
}
