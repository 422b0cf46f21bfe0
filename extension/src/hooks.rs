//! The preloaded hooks. Both always chain to the previous hook, and cost one flag check when no
//! playbook runs.
//!
//! ProcessUtility: refuses what event triggers cannot see — ALTER EVENT TRIGGER on our
//! protection triggers, ALTER EXTENSION pg_repair ADD/DROP (detaching objects), DROP SCHEMA
//! repair (which drops the extension before sql_drop fires) — outside extension scripts; and,
//! while a playbook runs, every utility statement the runtime bans (DROP, TRUNCATE, ALTER TABLE
//! … DROP, ALTER SYSTEM, role changes and management, session_replication_role), however the
//! playbook reached it (DO, functions, EXECUTE, triggers).
//!
//! ExecutorStart: while a playbook runs, refuses DELETE and UPDATE (also MERGE, ON CONFLICT DO
//! UPDATE and data-modifying CTEs) unless a current waiver of the playbook lifts that rule.

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{c_char, CStr};

static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;
static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;

pub fn install() {
    unsafe {
        PREV_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
        PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
    }
}

/// True only while the script of CREATE/ALTER EXTENSION pg_repair runs.
pub fn in_extension_script() -> bool {
    unsafe {
        pg_sys::creating_extension
            && pg_sys::CurrentExtensionObject
                == pg_sys::get_extension_oid(c"pg_repair".as_ptr(), true)
    }
}

unsafe fn cstr_eq(p: *const c_char, s: &[u8]) -> bool {
    !p.is_null() && unsafe { CStr::from_ptr(p) }.to_bytes() == s
}

/// The refused command, if `node` is one.
unsafe fn refused(node: *mut pg_sys::Node) -> Option<&'static str> {
    unsafe {
        match (*node).type_ {
            pg_sys::NodeTag::T_AlterEventTrigStmt => {
                let name = (*(node as *mut pg_sys::AlterEventTrigStmt)).trigname;
                (!name.is_null() && CStr::from_ptr(name).to_bytes().starts_with(b"pg_repair_"))
                    .then_some("ALTER EVENT TRIGGER on pg_repair's protection")
            }
            pg_sys::NodeTag::T_AlterExtensionContentsStmt => cstr_eq(
                (*(node as *mut pg_sys::AlterExtensionContentsStmt)).extname,
                b"pg_repair",
            )
            .then_some("ALTER EXTENSION pg_repair ADD/DROP"),
            pg_sys::NodeTag::T_DropStmt => {
                let stmt = node as *mut pg_sys::DropStmt;
                ((*stmt).removeType == pg_sys::ObjectType::OBJECT_SCHEMA
                    && crate::classify::nodes((*stmt).objects)
                        .into_iter()
                        .any(|n| cstr_eq((*(n as *mut pg_sys::String)).sval, b"repair")))
                .then_some("DROP SCHEMA repair")
            }
            _ => None,
        }
    }
}

mod raw {
    use pgrx::pg_sys;
    use std::ffi::c_char;
    // Declared here, not taken from pg_sys: pgrx wraps its bindings in an FFI guard that turns a
    // PostgreSQL ERROR into a Rust panic and re-raises it at the next guard with pgrx's closed
    // error-code enum, so every error of every utility statement in the server (a custom
    // SQLSTATE from a DO block, say) would come out as XX000. Called raw, the ERROR longjmps
    // straight through our frame, which holds nothing that needs dropping.
    unsafe extern "C-unwind" {
        pub fn standard_ProcessUtility(
            pstmt: *mut pg_sys::PlannedStmt,
            query_string: *const c_char,
            read_only_tree: bool,
            context: pg_sys::ProcessUtilityContext::Type,
            params: pg_sys::ParamListInfo,
            query_env: *mut pg_sys::QueryEnvironment,
            dest: *mut pg_sys::DestReceiver,
            qc: *mut pg_sys::QueryCompletion,
        );
        pub fn standard_ExecutorStart(query_desc: *mut pg_sys::QueryDesc, eflags: std::ffi::c_int);
    }
}

fn runtime_blocked(what: &str, why: &str) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("RUNTIME_BLOCKED: {what} is refused while a playbook runs"),
        format!("{why} The run fails and everything it did is rolled back.")
    );
}

/// Raises (through pgrx's guard) if the statement is one we refuse.
#[pg_guard]
unsafe extern "C-unwind" fn refuse_protected(pstmt: *mut pg_sys::PlannedStmt) {
    unsafe {
        if crate::execute::is_running() {
            if let Some(hit) = crate::classify::runtime_refusal((*pstmt).utilityStmt) {
                let what = crate::sqlparse::command_tag((*pstmt).utilityStmt);
                runtime_blocked(&format!("{what} ({})", hit.rule), &hit.message);
            }
        }
        if pg_sys::creating_extension {
            return;
        }
        if let Some(what) = refused((*pstmt).utilityStmt) {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("PROTECTED: {what} is refused"),
                "It would silence or detach pg_repair's audit protection. To remove the \
                 extension, use DROP EXTENSION pg_repair (it drops its data)."
            );
        }
    }
}

/// Deliberately not #[pg_guard] (see `raw`): nothing with a destructor lives in this frame.
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    unsafe {
        refuse_protected(pstmt);
        match PREV_PROCESS_UTILITY {
            Some(prev) => prev(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
            None => raw::standard_ProcessUtility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    }
}

/// The first refused DML operation in a plan: the top of the main plan and of every subplan
/// (data-modifying CTEs) is a ModifyTable node when the (sub)query writes.
unsafe fn refused_dml(stmt: *mut pg_sys::PlannedStmt) -> Option<(&'static str, &'static str)> {
    unsafe {
        let mut plans = vec![(*stmt).planTree];
        plans.extend(
            crate::classify::nodes((*stmt).subplans)
                .into_iter()
                .map(|n| n as *mut pg_sys::Plan),
        );
        for plan in plans {
            if plan.is_null() || (*plan).type_ != pg_sys::NodeTag::T_ModifyTable {
                continue;
            }
            let mt = &*(plan as *mut pg_sys::ModifyTable);
            let hit = match mt.operation {
                pg_sys::CmdType::CMD_DELETE => Some(("DELETE", "ban-delete")),
                pg_sys::CmdType::CMD_UPDATE => Some(("UPDATE", "ban-update")),
                pg_sys::CmdType::CMD_MERGE => Some(("MERGE", "ban-update")),
                pg_sys::CmdType::CMD_INSERT
                    if mt.onConflictAction == pg_sys::OnConflictAction::ONCONFLICT_UPDATE =>
                {
                    Some(("INSERT … ON CONFLICT DO UPDATE", "ban-update"))
                }
                _ => None,
            };
            if let Some((what, rule)) = hit {
                if !crate::execute::runtime_allows(rule) {
                    return Some((what, rule));
                }
            }
        }
        None
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn refuse_dml(
    query_desc: *mut pg_sys::QueryDesc,
    eflags: std::ffi::c_int,
) {
    unsafe {
        if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as std::ffi::c_int != 0 {
            return;
        }
        if let Some((what, rule)) = refused_dml((*query_desc).plannedstmt) {
            runtime_blocked(
                &format!("{what} ({rule})"),
                "Playbooks restore structure; they do not change or remove rows (a current waiver of the playbook can lift ban-delete/ban-update).",
            );
        }
    }
}

/// Deliberately not #[pg_guard], like process_utility.
unsafe extern "C-unwind" fn executor_start(
    query_desc: *mut pg_sys::QueryDesc,
    eflags: std::ffi::c_int,
) {
    unsafe {
        if crate::execute::is_running() {
            refuse_dml(query_desc, eflags);
        }
        match PREV_EXECUTOR_START {
            Some(prev) => prev(query_desc, eflags),
            None => raw::standard_ExecutorStart(query_desc, eflags),
        }
    }
}
