//! Switching the current user for playbook statements, and back on every exit path.

use pgrx::pg_sys;
use std::ffi::{c_int, CStr, CString};

/// While alive, the current user is `role`; Drop restores the previous user and security context
/// (also while unwinding from an ERROR or panic).
pub struct AsUser {
    uid: pg_sys::Oid,
    ctx: c_int,
}

impl AsUser {
    pub fn switch(role: pg_sys::Oid, restricted: bool) -> Self {
        let (mut uid, mut ctx) = (pg_sys::InvalidOid, 0);
        // LOCAL_USERID_CHANGE: SET ROLE / SESSION AUTHORIZATION are refused inside. A different
        // run_as role also gets a restricted operation: no temp objects, PREPARE or LISTEN left
        // behind in the caller's session.
        let mut flags = pg_sys::SECURITY_LOCAL_USERID_CHANGE as c_int;
        if restricted {
            flags |= pg_sys::SECURITY_RESTRICTED_OPERATION as c_int;
        }
        // SAFETY: the out-pointers are live locals; `role` is a role oid the caller took from
        // the session or the catalog, and the context switched to is restored by Drop on every
        // exit path (ERRORs and panics included).
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut uid, &mut ctx);
            pg_sys::SetUserIdAndSecContext(role, ctx | flags);
        }
        AsUser { uid, ctx }
    }
}

/// Switches to `role` for an online run's statement, which spans hook calls (so no guard value
/// can hold it); returns the user and context to give to [`restore`] when it ends. A transaction
/// abort in between is handled by the online module's transaction callback, which restores too.
pub fn switch_for_statement(role: pg_sys::Oid, restricted: bool) -> (pg_sys::Oid, c_int) {
    let guard = AsUser::switch(role, restricted);
    let saved = (guard.uid, guard.ctx);
    std::mem::forget(guard);
    saved
}

pub fn restore((uid, ctx): (pg_sys::Oid, c_int)) {
    // SAFETY: restores a user and context read earlier by switch_for_statement.
    unsafe { pg_sys::SetUserIdAndSecContext(uid, ctx) }
}

impl Drop for AsUser {
    fn drop(&mut self) {
        // SAFETY: restores exactly the user and context read in `switch`.
        unsafe { pg_sys::SetUserIdAndSecContext(self.uid, self.ctx) }
    }
}

pub fn role_name(oid: pg_sys::Oid) -> String {
    // SAFETY: with noerr = false GetUserNameFromId raises (a panic through pgrx's guard) rather
    // than return NULL; the name is a palloc'd C string, copied out before it can be freed.
    unsafe { CStr::from_ptr(pg_sys::GetUserNameFromId(oid, false)) }
        .to_string_lossy()
        .into_owned()
}

pub fn session_user() -> (pg_sys::Oid, String) {
    // SAFETY: reads a backend-local variable, set once the session is authenticated.
    let oid = unsafe { pg_sys::GetSessionUserId() };
    (oid, role_name(oid))
}

/// The caller's current_user (SET ROLE included), as it was outside our SECURITY DEFINER
/// functions, which switch the current user to the extension owner.
pub fn caller_user() -> String {
    // SAFETY: reads a backend-local variable.
    role_name(unsafe { pg_sys::GetOuterUserId() })
}

/// Oid of a role by name, None if it does not exist.
pub fn role_oid(name: &str) -> Option<pg_sys::Oid> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is NUL-terminated and alive for the call; missing_ok = true, so an unknown role
    // is InvalidOid rather than an ERROR.
    let oid = unsafe { pg_sys::get_role_oid(c.as_ptr(), true) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// Strict membership: superusers are not implicitly members of anything, so authority to execute
/// is always declared in repair.executors.
pub fn is_member(member: pg_sys::Oid, role: pg_sys::Oid) -> bool {
    // SAFETY: plain oids; a catalog lookup inside the caller's transaction.
    unsafe { pg_sys::is_member_of_role_nosuper(member, role) }
}
