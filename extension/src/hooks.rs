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
//! UPDATE and data-modifying CTEs) unless a current waiver of the playbook lifts that rule, and
//! any access to a foreign table (a remote session outside the transaction).
//!
//! object_access (function execute): while a playbook or check runs, refuses functions that reach
//! outside the transaction or the run: other backends, large objects, session advisory locks,
//! configuration reloads, and every function of dblink and postgres_fdw.
//!
//! Extension scripts (CREATE EXTENSION IF NOT EXISTS hstore in a playbook) are not judged: the
//! runtime decides whether a playbook may create an extension (classify.rs), not what its
//! installed script does. After the run's statement timeout fires, every further statement of the
//! run is refused, so SQL that catches the cancel cannot keep working.

use crate::errors::{raise_in_hook, Kind, RepairError};
use crate::online_hooks;
use crate::parse_tree::NodeRef;
use pg_repair_core::Rule;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{c_char, CStr};

static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;
static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_OBJECT_ACCESS: pg_sys::object_access_hook_type = None;
static mut PREV_PLANNER: pg_sys::planner_hook_type = None;
static mut PREV_EXECUTOR_RUN: pg_sys::ExecutorRun_hook_type = None;
static mut PREV_EXECUTOR_FINISH: pg_sys::ExecutorFinish_hook_type = None;
static mut PREV_EXECUTOR_END: pg_sys::ExecutorEnd_hook_type = None;

pub fn install() {
    // SAFETY: called once, from _PG_init while shared_preload_libraries loads in the postmaster:
    // single-threaded, before any backend exists and before any hook can run, so nothing reads the
    // hook variables or our PREV_* statics concurrently. Each backend inherits them by fork.
    unsafe {
        PREV_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
        PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
        PREV_OBJECT_ACCESS = pg_sys::object_access_hook;
        pg_sys::object_access_hook = Some(object_access);
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(planner);
        PREV_EXECUTOR_RUN = pg_sys::ExecutorRun_hook;
        pg_sys::ExecutorRun_hook = Some(executor_run);
        PREV_EXECUTOR_FINISH = pg_sys::ExecutorFinish_hook;
        pg_sys::ExecutorFinish_hook = Some(executor_finish);
        PREV_EXECUTOR_END = pg_sys::ExecutorEnd_hook;
        pg_sys::ExecutorEnd_hook = Some(executor_end);
    }
}

/// Whether the runtime judges statements now: inside a run, and not inside an extension's own
/// installed script.
fn judging(region_on: bool) -> bool {
    // SAFETY: a plain bool global of this backend, read on its only thread.
    region_on && !unsafe { pg_sys::creating_extension }
}

fn our_extension() -> pg_sys::Oid {
    // SAFETY: a static NUL-terminated name; missing_ok = true, so a missing extension is
    // InvalidOid rather than an ERROR; called only inside a transaction (from the hooks).
    unsafe { pg_sys::get_extension_oid(c"pg_repair".as_ptr(), true) }
}

/// An event trigger that belongs to pg_repair (by pg_depend membership, never by name).
///
/// # Safety
/// `name` is null or a live NUL-terminated string; called inside a transaction.
unsafe fn is_our_event_trigger(name: *const c_char) -> bool {
    if name.is_null() {
        return false;
    }
    // SAFETY: `name` is a live C string (caller's contract); missing_ok = true, so an unknown
    // trigger is InvalidOid rather than an ERROR.
    unsafe {
        let oid = pg_sys::get_event_trigger_oid(name, true);
        let ext = our_extension();
        oid != pg_sys::InvalidOid
            && ext != pg_sys::InvalidOid
            && pg_sys::getExtensionOfObject(pg_sys::EventTriggerRelationId, oid) == ext
    }
}

/// The name in a String node (object names of event triggers are plain strings).
///
/// # Safety
/// `node` is null or a live node.
unsafe fn string_node(node: *mut pg_sys::Node) -> *const c_char {
    // SAFETY: read only when non-null, then live (caller's contract); cast to String only when
    // its tag says so.
    unsafe {
        if !node.is_null() && (*node).type_ == pg_sys::NodeTag::T_String {
            (*(node as *mut pg_sys::String)).sval
        } else {
            std::ptr::null()
        }
    }
}

/// True only while the script of CREATE/ALTER EXTENSION pg_repair runs.
pub fn in_extension_script() -> bool {
    // SAFETY: creating_extension and CurrentExtensionObject are plain globals of this backend,
    // read on its only thread; the name is a static C string and missing_ok = true.
    unsafe {
        pg_sys::creating_extension
            && pg_sys::CurrentExtensionObject
                == pg_sys::get_extension_oid(c"pg_repair".as_ptr(), true)
    }
}

/// # Safety
/// `p` is null or a live NUL-terminated string.
unsafe fn cstr_eq(p: *const c_char, s: &[u8]) -> bool {
    // SAFETY: read only when non-null, then a live C string (caller's contract).
    !p.is_null() && unsafe { CStr::from_ptr(p) }.to_bytes() == s
}

/// The refused command, if `stmt` is one.
fn refused(stmt: NodeRef<'_>) -> Option<&'static str> {
    let node = stmt.as_ptr();
    let tag = stmt.tag()?;
    // SAFETY: `node` is a live, non-null node of a well-formed tree (NodeRef's contract, and its
    // tag was read above), cast only to the struct its tag names; the object lists are Lists of
    // String nodes, as the grammar builds them for event triggers and schemas. Called inside the
    // utility statement's transaction, as the catalog lookups need.
    unsafe {
        match tag {
            pg_sys::NodeTag::T_AlterEventTrigStmt => {
                is_our_event_trigger((*(node as *mut pg_sys::AlterEventTrigStmt)).trigname)
                    .then_some("ALTER EVENT TRIGGER on pg_repair's protection")
            }
            pg_sys::NodeTag::T_RenameStmt => {
                let s = &*(node as *mut pg_sys::RenameStmt);
                (s.renameType == pg_sys::ObjectType::OBJECT_EVENT_TRIGGER
                    && is_our_event_trigger(string_node(s.object)))
                .then_some("ALTER EVENT TRIGGER … RENAME on pg_repair's protection")
            }
            pg_sys::NodeTag::T_AlterOwnerStmt => {
                let s = &*(node as *mut pg_sys::AlterOwnerStmt);
                (s.objectType == pg_sys::ObjectType::OBJECT_EVENT_TRIGGER
                    && is_our_event_trigger(string_node(s.object)))
                .then_some("ALTER EVENT TRIGGER … OWNER TO on pg_repair's protection")
            }
            pg_sys::NodeTag::T_AlterExtensionContentsStmt => cstr_eq(
                (*(node as *mut pg_sys::AlterExtensionContentsStmt)).extname,
                b"pg_repair",
            )
            .then_some("ALTER EXTENSION pg_repair ADD/DROP"),
            pg_sys::NodeTag::T_DropStmt
                if (*(node as *mut pg_sys::DropStmt)).removeType
                    == pg_sys::ObjectType::OBJECT_EVENT_TRIGGER =>
            {
                crate::classify::nodes((*(node as *mut pg_sys::DropStmt)).objects)
                    .into_iter()
                    .any(|n| is_our_event_trigger(string_node(n)))
                    .then_some("DROP EVENT TRIGGER on pg_repair's protection")
            }
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
        pub fn standard_planner(
            parse: *mut pg_sys::Query,
            query_string: *const c_char,
            cursor_options: std::ffi::c_int,
            bound_params: pg_sys::ParamListInfo,
        ) -> *mut pg_sys::PlannedStmt;
        #[cfg(not(feature = "pg18"))]
        pub fn standard_ExecutorRun(
            query_desc: *mut pg_sys::QueryDesc,
            direction: pg_sys::ScanDirection::Type,
            count: u64,
            execute_once: bool,
        );
        #[cfg(feature = "pg18")]
        pub fn standard_ExecutorRun(
            query_desc: *mut pg_sys::QueryDesc,
            direction: pg_sys::ScanDirection::Type,
            count: u64,
        );
        pub fn standard_ExecutorFinish(query_desc: *mut pg_sys::QueryDesc);
        pub fn standard_ExecutorEnd(query_desc: *mut pg_sys::QueryDesc);
    }
}

/// Refuses `what`, which breaks `rule`, while a playbook runs.
fn runtime_blocked(what: &str, rule: Rule, why: &str) -> ! {
    let e = RepairError::new(
        Kind::RuntimeBlocked,
        format!("{what} ({rule}) is refused while a playbook runs"),
    )
    .detail(format!(
        "{why} The run fails and everything it did is rolled back."
    ));
    // Remembered: SQL that catches this error still fails the run.
    crate::enforcement::record_violation(&e.message);
    raise_in_hook(e)
}

/// After the run's own statement timeout fired: no further statement of the run may start.
fn refuse_after_timeout() {
    if crate::timeout::fired() {
        // Worded as PostgreSQL's own cancel (no NAME prefix): it is one, made to last.
        raise_in_hook(RepairError {
            kind: Kind::Cancelled,
            message: "canceling statement due to the playbook's statement timeout".into(),
            detail: Some(
                "The run's statement timeout has fired; nothing more of it may run.".into(),
            ),
            hint: None,
        });
    }
}

/// Raises (through pgrx's guard) if the statement is one we refuse.
///
/// # Safety
/// `pstmt` is the live utility PlannedStmt that ProcessUtility was called with.
#[pg_guard]
unsafe extern "C-unwind" fn refuse_protected(pstmt: *mut pg_sys::PlannedStmt) {
    // SAFETY: `pstmt` is live (caller's contract) and its utilityStmt, the statement's parse
    // tree, is not freed while ProcessUtility runs, which outlasts this call; creating_extension
    // is a plain global of this backend, read on its only thread.
    unsafe {
        let stmt = NodeRef::new((*pstmt).utilityStmt);
        if judging(crate::enforcement::playbook_running()) {
            refuse_after_timeout();
            if let Some(hit) = crate::classify::runtime_refusal(stmt) {
                let what = crate::sqlparse::command_tag(stmt);
                runtime_blocked(&what, hit.rule, &hit.message);
            }
        }
        if pg_sys::creating_extension {
            return;
        }
        if let Some(what) = refused(stmt) {
            raise_in_hook(
                RepairError::new(Kind::Protected, format!("{what} is refused")).detail(
                    "It would silence or detach pg_repair's audit protection. To remove the \
                     extension, use DROP EXTENSION pg_repair (it drops its data).",
                ),
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
    // SAFETY: PostgreSQL calls this hook with the live arguments of a ProcessUtility call, passed
    // on unchanged to the previous hook or the standard one; PREV_PROCESS_UTILITY was written
    // once in _PG_init, before any backend existed, and is only read here.
    unsafe {
        // An armed online session: only the run's next statement.
        // Unboxed first: nothing allocated may be left behind by the longjmp of a refusal.
        let verdict = if crate::online::armed() {
            online_hooks::judge_utility(pstmt, query_string).map(|b| *b)
        } else {
            None
        };
        let admitted = match verdict {
            None => false,
            Some(Ok(admitted)) => admitted,
            Some(Err(e)) => crate::errors::raise_now(e),
        };
        // Lives on this frame for the call; an ERROR restores error_context_stack itself.
        let mut capture = online_hooks::capture_entry();
        if admitted {
            pg_sys::error_context_stack = &mut capture;
            online_hooks::enter_frame();
        }
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
        if admitted {
            online_hooks::leave_frame();
            pg_sys::error_context_stack = capture.previous;
            online_hooks::utility_ended(qc);
        }
    }
}

/// The first foreign table a plan reads or writes.
///
/// # Safety
/// `stmt` is a live PlannedStmt; called inside its transaction.
unsafe fn foreign_table(stmt: *mut pg_sys::PlannedStmt) -> Option<String> {
    // SAFETY: `stmt` is live (caller's contract) and its rtable is a List of RangeTblEntry
    // nodes; get_rel_name returns a palloc'd C string or NULL.
    unsafe {
        crate::classify::nodes((*stmt).rtable)
            .into_iter()
            .map(|n| &*(n as *mut pg_sys::RangeTblEntry))
            .find(|rte| {
                rte.rtekind == pg_sys::RTEKind::RTE_RELATION
                    && rte.relkind as u8 == pg_sys::RELKIND_FOREIGN_TABLE
            })
            .map(|rte| {
                let name = pg_sys::get_rel_name(rte.relid);
                if name.is_null() {
                    format!("oid {}", rte.relid.to_u32())
                } else {
                    CStr::from_ptr(name).to_string_lossy().into_owned()
                }
            })
    }
}

/// The first refused DML operation in a plan: the top of the main plan and of every subplan
/// (data-modifying CTEs) is a ModifyTable node when the (sub)query writes.
///
/// # Safety
/// `stmt` is a live PlannedStmt.
unsafe fn refused_dml(stmt: *mut pg_sys::PlannedStmt) -> Option<(&'static str, Rule)> {
    // SAFETY: `stmt` is live (caller's contract); planTree and the subplans List hold Plan nodes
    // (or null), each cast to ModifyTable only when its tag says so.
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
            let hits: Vec<(&'static str, Rule)> = match mt.operation {
                pg_sys::CmdType::CMD_DELETE => vec![("DELETE", Rule::BanDelete)],
                pg_sys::CmdType::CMD_UPDATE => vec![("UPDATE", Rule::BanUpdate)],
                pg_sys::CmdType::CMD_MERGE => merge_hits(mt),
                pg_sys::CmdType::CMD_INSERT
                    if mt.onConflictAction == pg_sys::OnConflictAction::ONCONFLICT_UPDATE =>
                {
                    vec![("INSERT … ON CONFLICT DO UPDATE", Rule::BanUpdate)]
                }
                _ => vec![],
            };
            for (what, rule) in hits {
                if !crate::enforcement::runtime_allows(rule) {
                    return Some((what, rule));
                }
            }
        }
        None
    }
}

/// What a MERGE may do, judged per action: a `WHEN MATCHED THEN DELETE` (and, from PostgreSQL 17,
/// `WHEN NOT MATCHED BY SOURCE THEN DELETE`) deletes rows, so it needs the delete waiver even
/// when an update waiver is present. Every MERGE counts as an update at least, as lint has it.
///
/// # Safety
/// `mt` is a ModifyTable node of a live plan.
unsafe fn merge_hits(mt: &pg_sys::ModifyTable) -> Vec<(&'static str, Rule)> {
    let mut hits = vec![("MERGE", Rule::BanUpdate)];
    // SAFETY: mergeActionLists is a List (one per result relation) of Lists of MergeAction nodes,
    // built by the planner for this plan and alive for the executor's whole run.
    let deletes = unsafe {
        crate::classify::nodes(mt.mergeActionLists)
            .into_iter()
            .flat_map(|list| crate::classify::nodes(list as *mut pg_sys::List))
            .any(|a| (*(a as *mut pg_sys::MergeAction)).commandType == pg_sys::CmdType::CMD_DELETE)
    };
    if deletes {
        hits.push(("MERGE … THEN DELETE", Rule::BanDelete));
    }
    hits
}

/// # Safety
/// `query_desc` is the live QueryDesc that ExecutorStart was called with.
#[pg_guard]
unsafe extern "C-unwind" fn refuse_dml(
    query_desc: *mut pg_sys::QueryDesc,
    eflags: std::ffi::c_int,
) {
    // SAFETY: `query_desc` and its plannedstmt are live for the whole ExecutorStart call
    // (caller's contract), inside the query's transaction.
    unsafe {
        if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as std::ffi::c_int != 0 {
            return;
        }
        if crate::enforcement::playbook_running() {
            refuse_after_timeout();
            if let Some((what, rule)) = refused_dml((*query_desc).plannedstmt) {
                runtime_blocked(
                    what,
                    rule,
                    &format!(
                        "Playbooks restore structure; they do not change or remove rows (a current waiver of the playbook can lift {}/{}).",
                        Rule::BanDelete,
                        Rule::BanUpdate
                    ),
                );
            }
        }
        if let Some(name) = foreign_table((*query_desc).plannedstmt) {
            runtime_blocked(
                &format!("access to foreign table {name}"),
                Rule::BanRemote,
                Rule::BanRemote.message(),
            );
        }
    }
}

/// Deliberately not #[pg_guard], like process_utility.
unsafe extern "C-unwind" fn executor_start(
    query_desc: *mut pg_sys::QueryDesc,
    eflags: std::ffi::c_int,
) {
    // SAFETY: PostgreSQL calls this hook with a live QueryDesc, passed on unchanged to the
    // previous hook or the standard one; PREV_EXECUTOR_START was written once in _PG_init,
    // before any backend existed, and is only read here.
    unsafe {
        let judged = if crate::online::armed() {
            online_hooks::judge_started(query_desc, eflags).map(|b| *b)
        } else {
            None
        };
        if let Some(e) = judged {
            crate::errors::raise_now(e);
        }
        in_window(window_of(query_desc), || {
            if judging(crate::enforcement::enforcing()) {
                refuse_dml(query_desc, eflags);
            }
            match PREV_EXECUTOR_START {
                Some(prev) => prev(query_desc, eflags),
                None => raw::standard_ExecutorStart(query_desc, eflags),
            }
        });
    }
}

/// Deliberately not #[pg_guard], like process_utility. Judges a top-level statement of an armed
/// online session before the planner evaluates anything of it.
unsafe extern "C-unwind" fn planner(
    parse: *mut pg_sys::Query,
    query_string: *const c_char,
    cursor_options: std::ffi::c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: PostgreSQL calls this hook with live arguments, passed on unchanged; PREV_PLANNER
    // was written once in _PG_init and is only read here.
    unsafe {
        let verdict = if crate::online::armed() {
            online_hooks::judge_planned(parse, query_string).map(|b| *b)
        } else {
            None
        };
        let planning = match verdict {
            None => false,
            Some(Ok(admitted)) => admitted,
            Some(Err(e)) => crate::errors::raise_now(e),
        };
        if planning {
            online_hooks::enter_frame();
        }
        let plan = match PREV_PLANNER {
            Some(prev) => prev(parse, query_string, cursor_options, bound_params),
            None => raw::standard_planner(parse, query_string, cursor_options, bound_params),
        };
        if planning {
            online_hooks::leave_frame();
            online_hooks::planning_ended();
        }
        plan
    }
}

/// Whether `query_desc` is an online run's admitted statement or control call (one flag check
/// when no run is armed).
fn window_of(query_desc: *mut pg_sys::QueryDesc) -> bool {
    crate::online::armed() && online_hooks::is_window_query(query_desc)
}

/// Runs `call` (one executor step) inside the frame of admitted work, with the error-capturing
/// context entry on this stack frame, when `window` (see [`window_of`]). Holds nothing with a
/// destructor: an ERROR may longjmp through it (PG_CATCH restores error_context_stack; the
/// transaction abort resets the frames).
#[inline(always)]
fn in_window(window: bool, call: impl FnOnce()) {
    let mut capture = online_hooks::capture_entry();
    // SAFETY: `capture` lives on this frame for the whole call and is popped before it ends;
    // error_context_stack is touched only from this backend's single thread.
    unsafe {
        if window {
            pg_sys::error_context_stack = &mut capture;
            online_hooks::enter_frame();
        }
        call();
        if window {
            online_hooks::leave_frame();
            pg_sys::error_context_stack = capture.previous;
        }
    }
}

/// Deliberately not #[pg_guard]: captures the errors of an online run's statement.
#[cfg(not(feature = "pg18"))]
unsafe extern "C-unwind" fn executor_run(
    query_desc: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
    execute_once: bool,
) {
    // SAFETY: live arguments passed on unchanged; PREV_EXECUTOR_RUN is written once in _PG_init.
    unsafe {
        in_window(window_of(query_desc), || match PREV_EXECUTOR_RUN {
            Some(prev) => prev(query_desc, direction, count, execute_once),
            None => raw::standard_ExecutorRun(query_desc, direction, count, execute_once),
        });
    }
}

/// Deliberately not #[pg_guard]: captures the errors of an online run's statement.
#[cfg(feature = "pg18")]
unsafe extern "C-unwind" fn executor_run(
    query_desc: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
) {
    // SAFETY: live arguments passed on unchanged; PREV_EXECUTOR_RUN is written once in _PG_init.
    unsafe {
        in_window(window_of(query_desc), || match PREV_EXECUTOR_RUN {
            Some(prev) => prev(query_desc, direction, count),
            None => raw::standard_ExecutorRun(query_desc, direction, count),
        });
    }
}

/// Deliberately not #[pg_guard]: captures the errors of an online run's statement.
unsafe extern "C-unwind" fn executor_finish(query_desc: *mut pg_sys::QueryDesc) {
    // SAFETY: live argument passed on unchanged; PREV_EXECUTOR_FINISH is written once in _PG_init.
    unsafe {
        in_window(window_of(query_desc), || match PREV_EXECUTOR_FINISH {
            Some(prev) => prev(query_desc),
            None => raw::standard_ExecutorFinish(query_desc),
        });
    }
}

/// Deliberately not #[pg_guard]: the end of an online run's statement (or control call).
unsafe extern "C-unwind" fn executor_end(query_desc: *mut pg_sys::QueryDesc) {
    // SAFETY: live argument passed on unchanged; PREV_EXECUTOR_END is written once in _PG_init;
    // the rows are read before ExecutorEnd frees the executor state.
    unsafe {
        let window = window_of(query_desc);
        let rows = if window {
            online_hooks::rows_processed(query_desc)
        } else {
            0
        };
        in_window(window, || match PREV_EXECUTOR_END {
            Some(prev) => prev(query_desc),
            None => raw::standard_ExecutorEnd(query_desc),
        });
        if window {
            online_hooks::window_ended(rows);
        }
    }
}

/// Built-in functions refused inside a run: they act on other sessions, the server's
/// configuration or files, large objects, or hold locks past the run.
const BANNED_BUILTINS: &[&str] = &[
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_drop_replication_slot",
    "lo_unlink",
    "lo_import",
    "lo_export",
    "lo_truncate",
    "lo_truncate64",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
];

/// Extensions whose every function opens or uses a remote session.
const REMOTE_EXTENSIONS: &[&str] = &["dblink", "postgres_fdw"];

thread_local! {
    /// The C symbols (prosrc) of the banned built-ins, read once per backend: a function created
    /// under another name over the same symbol (LANGUAGE internal) is refused too.
    static BANNED_SYMBOLS: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
    /// function oid -> (name, rule) if refused. Cleared by any change to pg_proc (a function
    /// replaced under the same oid, ours or another session's), so a decision never outlives
    /// the definition it judged.
    static DECISIONS: std::cell::RefCell<std::collections::HashMap<u32, Option<(String, Rule)>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

static WATCHING_PROCS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

unsafe extern "C-unwind" fn forget_decisions(
    _arg: pg_sys::Datum,
    _cache: std::ffi::c_int,
    _hash: u32,
) {
    DECISIONS.with(|d| d.borrow_mut().clear());
}

/// Before a region starts: the pg_proc watch is registered and the banned symbols are known.
pub fn prepare_function_decisions() {
    if !WATCHING_PROCS.swap(true, std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: `forget_decisions` is a plain function valid for the backend's life.
        unsafe {
            pg_sys::CacheRegisterSyscacheCallback(
                pg_sys::SysCacheIdentifier::PROCOID as std::ffi::c_int,
                Some(forget_decisions),
                pg_sys::Datum::from(0),
            )
        };
    }
    if BANNED_SYMBOLS.with(|b| b.borrow().is_none()) {
        // As the definer, with its pinned settings (an operator planted in the caller's path
        // must never resolve here).
        let symbols: Vec<String> = crate::guc_scope::as_definer(|| {
            crate::spi::rows(
                "SELECT DISTINCT prosrc FROM pg_catalog.pg_proc \
                  WHERE pronamespace = 'pg_catalog'::pg_catalog.regnamespace \
                    AND prolang = 12 AND proname = ANY($1)",
                &[BANNED_BUILTINS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .into()],
                |r| r.get::<String>(1),
            )
            .into_iter()
            .flatten()
            .collect()
        });
        BANNED_SYMBOLS.with(|b| *b.borrow_mut() = Some(symbols));
    }
}

/// (language oid, prosrc, probin) of a function, from the syscache.
///
/// # Safety
/// Called inside a transaction (the syscache needs one).
unsafe fn implementation(oid: pg_sys::Oid) -> Option<(u32, String, Option<String>)> {
    // SAFETY: the tuple is checked non-null, read only while pinned (ReleaseSysCache comes last)
    // and is a pg_proc row, so its struct is FormData_pg_proc; prosrc/probin are text datums,
    // read only when not null.
    unsafe {
        let cache = pg_sys::SysCacheIdentifier::PROCOID as std::ffi::c_int;
        let tup = pg_sys::SearchSysCache1(cache, pg_sys::Datum::from(oid));
        if tup.is_null() {
            return None;
        }
        let lang = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_proc>(tup))
            .prolang
            .to_u32();
        let text_attr = |attno: u32| {
            let mut isnull = false;
            let d = pg_sys::SysCacheGetAttr(cache, tup, attno as _, &mut isnull);
            (!isnull).then(|| {
                CStr::from_ptr(pg_sys::text_to_cstring(d.cast_mut_ptr()))
                    .to_string_lossy()
                    .into_owned()
            })
        };
        let src = text_attr(pg_sys::Anum_pg_proc_prosrc).unwrap_or_default();
        let bin = text_attr(pg_sys::Anum_pg_proc_probin);
        pg_sys::ReleaseSysCache(tup);
        Some((lang, src, bin))
    }
}

/// # Safety
/// Called inside a transaction (catalog lookups).
unsafe fn decide_function(oid: pg_sys::Oid) -> Option<(String, Rule)> {
    // SAFETY: catalog lookups by oid inside the caller's transaction; the names they return are
    // palloc'd C strings, read only when non-null.
    unsafe {
        let name_ptr = pg_sys::get_func_name(oid);
        if name_ptr.is_null() {
            return None;
        }
        let name = CStr::from_ptr(name_ptr).to_string_lossy().into_owned();
        if pg_sys::get_func_namespace(oid).to_u32() == pg_sys::PG_CATALOG_NAMESPACE
            && BANNED_BUILTINS.contains(&name.as_str())
        {
            return Some((name, Rule::BanFunction));
        }
        // The same code under another name: a LANGUAGE internal function over a banned
        // built-in's symbol, or a LANGUAGE C function from a remote-session library.
        const INTERNAL_LANGUAGE: u32 = 12;
        const C_LANGUAGE: u32 = 13;
        match implementation(oid) {
            Some((INTERNAL_LANGUAGE, src, _))
                if BANNED_SYMBOLS
                    .with(|b| b.borrow().as_ref().is_some_and(|s| s.contains(&src))) =>
            {
                return Some((name, Rule::BanFunction));
            }
            Some((C_LANGUAGE, _, Some(bin)))
                if REMOTE_EXTENSIONS.iter().any(|lib| bin.contains(lib)) =>
            {
                return Some((name, Rule::BanRemote));
            }
            _ => {}
        }
        let ext = pg_sys::getExtensionOfObject(pg_sys::ProcedureRelationId, oid);
        if ext != pg_sys::InvalidOid {
            let ext_name = pg_sys::get_extension_name(ext);
            if !ext_name.is_null()
                && REMOTE_EXTENSIONS.contains(&CStr::from_ptr(ext_name).to_str().unwrap_or(""))
            {
                return Some((name, Rule::BanRemote));
            }
        }
        None
    }
}

/// # Safety
/// Called from the object_access hook, inside a transaction.
#[pg_guard]
unsafe extern "C-unwind" fn judge_function(oid: pg_sys::Oid) {
    // SAFETY: decide_function's only requirement, a transaction, holds (caller's contract).
    unsafe {
        if crate::enforcement::playbook_running() {
            refuse_after_timeout();
        }
        let hit = DECISIONS.with(|d| d.borrow().get(&oid.to_u32()).cloned());
        let hit = match hit {
            Some(h) => h,
            None => {
                let h = decide_function(oid);
                DECISIONS.with(|d| d.borrow_mut().insert(oid.to_u32(), h.clone()));
                h
            }
        };
        if let Some((name, rule)) = hit {
            // One wording for both rules: it names the remote server too.
            runtime_blocked(
                &format!("function {name}"),
                rule,
                Rule::BanFunction.message(),
            );
        }
    }
}

/// Deliberately not #[pg_guard], like process_utility.
unsafe extern "C-unwind" fn object_access(
    access: pg_sys::ObjectAccessType::Type,
    class_id: pg_sys::Oid,
    object_id: pg_sys::Oid,
    sub_id: std::ffi::c_int,
    arg: *mut std::ffi::c_void,
) {
    // SAFETY: PostgreSQL calls this hook inside a transaction with live arguments, passed on
    // unchanged to the previous hook; PREV_OBJECT_ACCESS was written once in _PG_init, before
    // any backend existed, and is only read here.
    unsafe {
        if access == pg_sys::ObjectAccessType::OAT_FUNCTION_EXECUTE {
            let judged = if crate::online::armed() {
                online_hooks::judge_function_call().map(|b| *b)
            } else {
                None
            };
            if let Some(e) = judged {
                crate::errors::raise_now(e);
            }
        }
        if access == pg_sys::ObjectAccessType::OAT_FUNCTION_EXECUTE
            && judging(crate::enforcement::enforcing())
        {
            judge_function(object_id);
        }
        if let Some(prev) = PREV_OBJECT_ACCESS {
            prev(access, class_id, object_id, sub_id, arg);
        }
    }
}
