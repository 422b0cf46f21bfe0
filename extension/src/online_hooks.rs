//! The hooks' side of online runs (online.rs decides; this reads PostgreSQL's structures).
//!
//! In an armed session every piece of work that starts outside the frames of admitted work is
//! top-level (whatever its query string: the extended protocol's Execute runs a copy of it) and
//! is judged. A plannable statement is judged twice where it can be: when it is
//! planned (so nothing the planner evaluates runs for a refused statement) and when its executor
//! starts (a plan prepared before the run is judged too), and every utility statement before it
//! runs. A function called outside admitted work (a fast-path call) is refused by the
//! object_access hook. While admitted work runs, an error context callback remembers the error
//! that may end it.

use crate::errors::RepairError;
use crate::online::{self, Admit, Asked};
use crate::parse_tree::NodeRef;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{c_char, c_int, CStr};

/// The text of one statement of a query string (`location` < 0: the whole string; `len` 0: to
/// its end), as PostgreSQL's stmt_location / stmt_len give it.
///
/// # Safety
/// `source` is null or a live NUL-terminated string.
unsafe fn statement_text(source: *const c_char, location: c_int, len: c_int) -> String {
    if source.is_null() {
        return String::new();
    }
    // SAFETY: a live C string (caller's contract).
    let bytes = unsafe { CStr::from_ptr(source) }.to_bytes();
    let start = usize::try_from(location).unwrap_or(0).min(bytes.len());
    let end = match usize::try_from(len) {
        Ok(0) | Err(_) => bytes.len(),
        Ok(n) => (start + n).min(bytes.len()),
    };
    String::from_utf8_lossy(&bytes[start..end]).into_owned()
}

/// # Safety
/// `node` is null or a live expression node.
unsafe fn literal_argument(node: *mut pg_sys::Node) -> bool {
    // SAFETY: null or live (caller's contract); cast only to the struct its tag names.
    unsafe {
        match NodeRef::new(node).tag() {
            Some(pg_sys::NodeTag::T_Const | pg_sys::NodeTag::T_Param) => true,
            Some(pg_sys::NodeTag::T_RelabelType) => {
                literal_argument((*(node as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node)
            }
            Some(pg_sys::NodeTag::T_CoerceViaIO) => {
                literal_argument((*(node as *mut pg_sys::CoerceViaIO)).arg as *mut pg_sys::Node)
            }
            _ => false,
        }
    }
}

/// Whether `oid` is pg_repair's online_finish or online_abort (by extension membership).
///
/// # Safety
/// Called inside a transaction (catalog lookups).
unsafe fn is_control_function(oid: pg_sys::Oid) -> bool {
    // SAFETY: catalog lookups by oid inside the caller's transaction; the name is a palloc'd C
    // string, read only when non-null.
    unsafe {
        let name = pg_sys::get_func_name(oid);
        if name.is_null() {
            return false;
        }
        let name = CStr::from_ptr(name).to_bytes();
        let ext = pg_sys::get_extension_oid(c"pg_repair".as_ptr(), true);
        matches!(name, b"online_finish" | b"online_abort")
            && ext != pg_sys::InvalidOid
            && pg_sys::getExtensionOfObject(pg_sys::ProcedureRelationId, oid) == ext
    }
}

/// Whether a target list is exactly one call of a control function with literal arguments.
///
/// # Safety
/// `targets` is null or a live List of TargetEntry nodes; inside a transaction.
unsafe fn one_control_call(targets: *mut pg_sys::List) -> bool {
    // SAFETY: the list holds TargetEntry nodes (caller's contract); each cast only on its tag.
    unsafe {
        let entries = crate::classify::nodes(targets);
        let [entry] = entries.as_slice() else {
            return false;
        };
        let expr = (*(*entry as *mut pg_sys::TargetEntry)).expr as *mut pg_sys::Node;
        if NodeRef::new(expr).tag() != Some(pg_sys::NodeTag::T_FuncExpr) {
            return false;
        }
        let f = &*(expr as *mut pg_sys::FuncExpr);
        !f.funcretset
            && is_control_function(f.funcid)
            && crate::classify::nodes(f.args)
                .into_iter()
                .all(|a| literal_argument(a))
    }
}

/// `SELECT repair.online_finish(…)` / `online_abort(…)` as analysed: no relation, no subquery.
///
/// # Safety
/// `q` is a live Query; inside a transaction.
unsafe fn query_is_control_call(q: *mut pg_sys::Query) -> bool {
    // SAFETY: `q` is live (caller's contract).
    unsafe {
        let q = &*q;
        q.commandType == pg_sys::CmdType::CMD_SELECT
            && q.utilityStmt.is_null()
            && crate::classify::nodes(q.rtable).is_empty()
            && q.cteList.is_null()
            && !q.hasSubLinks
            && q.setOperations.is_null()
            && one_control_call(q.targetList)
    }
}

/// The same, as planned: a Result node computing the one call.
///
/// # Safety
/// `p` is a live PlannedStmt; inside a transaction.
unsafe fn plan_is_control_call(p: *mut pg_sys::PlannedStmt) -> bool {
    // SAFETY: `p` is live (caller's contract); planTree is cast to Result only on its tag.
    unsafe {
        let p = &*p;
        let plan = p.planTree;
        p.commandType == pg_sys::CmdType::CMD_SELECT
            && p.utilityStmt.is_null()
            && crate::classify::nodes(p.subplans).is_empty()
            && !plan.is_null()
            && (*plan).type_ == pg_sys::NodeTag::T_Result
            && (*plan).lefttree.is_null()
            && (*plan).righttree.is_null()
            && (*plan).initPlan.is_null()
            && (*(plan as *mut pg_sys::Result)).resconstantqual.is_null()
            && one_control_call((*plan).targetlist)
    }
}

/// For a statement about to be planned: `Ok(true)` when it is admitted work (the caller ends
/// its planning with [`planning_ended`]).
///
/// # Safety
/// `parse` is the live Query being planned, `query_string` its source (or null).
#[pg_guard]
pub unsafe extern "C-unwind" fn judge_planned(
    parse: *mut pg_sys::Query,
    query_string: *const c_char,
) -> Option<Box<Result<bool, RepairError>>> {
    // Outside every frame of admitted work, whatever its text: the client's statement (its
    // query string is not always debug_query_string: the extended protocol's Execute copies it).
    if !online::armed() || online::in_frames() {
        return None;
    }
    // SAFETY: `parse` and `query_string` are live (caller's contract), inside the transaction.
    let (text, control) = unsafe {
        (
            statement_text(query_string, (*parse).stmt_location, (*parse).stmt_len),
            query_is_control_call(parse),
        )
    };
    let verdict = match online::admit_top_level(Asked::Statement {
        text: &text,
        control_call: control,
    }) {
        Admit::Refuse(e) => Err(e),
        Admit::Pass => Ok(false),
        Admit::Statement(_) | Admit::Control => {
            online::planning_started();
            Ok(true)
        }
    };
    Some(Box::new(verdict))
}

#[pg_guard]
pub extern "C-unwind" fn planning_ended() {
    online::planning_done();
}

pub use online::{enter_frame, leave_frame};

/// # Safety
/// `query_desc` is the live QueryDesc ExecutorStart was called with.
#[pg_guard]
pub unsafe extern "C-unwind" fn judge_started(
    query_desc: *mut pg_sys::QueryDesc,
    eflags: c_int,
) -> Option<Box<RepairError>> {
    // SAFETY: `query_desc` and its plannedstmt are live (caller's contract).
    unsafe {
        if !online::armed()
            || eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as c_int != 0
            || online::in_frames()
        {
            return None;
        }
        let p = (*query_desc).plannedstmt;
        let text = statement_text((*query_desc).sourceText, (*p).stmt_location, (*p).stmt_len);
        match online::admit_top_level(Asked::Statement {
            text: &text,
            control_call: plan_is_control_call(p),
        }) {
            Admit::Refuse(e) => Some(Box::new(e)),
            Admit::Statement(i) => {
                online::statement_started(i, query_desc);
                None
            }
            Admit::Control => {
                online::control_started(query_desc);
                None
            }
            Admit::Pass => None,
        }
    }
}

/// For a top-level utility statement: `Ok(true)` when it is the run's admitted statement (the
/// caller ends it with [`utility_ended`]).
///
/// # Safety
/// `pstmt` is the live utility PlannedStmt, `query_string` its source.
#[pg_guard]
pub unsafe extern "C-unwind" fn judge_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
) -> Option<Box<Result<bool, RepairError>>> {
    // Any context: outside the frames of admitted work nothing is nested in it.
    if !online::armed() || online::in_frames() {
        return None;
    }
    // SAFETY: `pstmt` and `query_string` are live (caller's contract).
    let text = unsafe { statement_text(query_string, (*pstmt).stmt_location, (*pstmt).stmt_len) };
    let verdict = match online::admit_top_level(Asked::Statement {
        text: &text,
        control_call: false,
    }) {
        Admit::Refuse(e) => Err(e),
        Admit::Statement(i) => {
            online::statement_started(i, std::ptr::null_mut());
            Ok(true)
        }
        Admit::Pass | Admit::Control => Ok(false),
    };
    Some(Box::new(verdict))
}

/// # Safety
/// `qc` is null or the live QueryCompletion of the utility statement that just ran.
#[pg_guard]
pub unsafe extern "C-unwind" fn utility_ended(qc: *mut pg_sys::QueryCompletion) {
    let rows = if qc.is_null() {
        0
    } else {
        // SAFETY: non-null, so live (caller's contract).
        unsafe { (*qc).nprocessed }
    };
    online::window_ended(rows);
}

/// Whether the executor of `query_desc` is admitted work (its errors are captured).
#[pg_guard]
pub extern "C-unwind" fn is_window_query(query_desc: *mut pg_sys::QueryDesc) -> bool {
    online::armed() && online::is_window_query(query_desc)
}

/// Rows the admitted statement processed; read before ExecutorEnd frees its state.
///
/// # Safety
/// `query_desc` is a live QueryDesc whose executor ran.
pub unsafe fn rows_processed(query_desc: *mut pg_sys::QueryDesc) -> u64 {
    // SAFETY: live (caller's contract); estate is null only for a never-started executor.
    unsafe {
        let estate = (*query_desc).estate;
        if estate.is_null() {
            0
        } else {
            (*estate).es_processed
        }
    }
}

#[pg_guard]
pub extern "C-unwind" fn window_ended(rows: u64) {
    online::window_ended(rows);
}

/// A function called in an armed session outside admitted work.
#[pg_guard]
pub extern "C-unwind" fn judge_function_call() -> Option<Box<RepairError>> {
    if !online::armed() || online::in_frames() {
        return None;
    }
    match online::admit_top_level(Asked::Function) {
        Admit::Refuse(e) => Some(Box::new(e)),
        _ => None,
    }
}

/// An error context entry that captures the error of admitted work, pushed on the hook's own
/// stack frame around the call it covers.
pub fn capture_entry() -> pg_sys::ErrorContextCallback {
    pg_sys::ErrorContextCallback {
        // SAFETY: a plain global of this backend, read on its only thread.
        previous: unsafe { pg_sys::error_context_stack },
        callback: Some(online::capture_error),
        arg: std::ptr::null_mut(),
    }
}
