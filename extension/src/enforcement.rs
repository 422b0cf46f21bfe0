//! The enforced region: set while a playbook's statements (and the deferred work they queue)
//! run, or while a check query runs. Only this module sets it; no user can. The hooks
//! (hooks.rs) read it; a refusal is remembered, so a playbook that catches the error still fails.

use pg_repair_core::Rule;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// One backend is one thread: plain statics, read by the hooks on every statement.
static PLAYBOOK: AtomicBool = AtomicBool::new(false);
static CHECK: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Rules a current waiver of the running playbook lifts at runtime.
    static WAIVED: RefCell<Vec<Rule>> = const { RefCell::new(Vec::new()) };
    /// The first refusal of this region, kept even if the SQL caught the error.
    static VIOLATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A playbook's statements are running.
pub fn playbook_running() -> bool {
    PLAYBOOK.load(Ordering::Relaxed)
}

/// Refuses `what` (repair.execute, online_begin/finish/abort) when a playbook's statements call
/// it: runs never nest.
pub fn refuse_nested(what: &str) -> crate::errors::Result<()> {
    if playbook_running() {
        return Err(crate::errors::RepairError::new(
            crate::errors::Kind::NestedExecute,
            format!("{what} cannot be called from inside a playbook"),
        )
        .hint("Run playbooks one after another, not from each other."));
    }
    Ok(())
}

/// A playbook or a check is running: function bans apply.
pub fn enforcing() -> bool {
    PLAYBOOK.load(Ordering::Relaxed) || CHECK.load(Ordering::Relaxed)
}

/// Whether a current waiver of the running playbook lifts this rule at runtime (only a rule the
/// runtime lets a waiver lift: DROP and TRUNCATE stay refused whatever the waivers say).
pub fn runtime_allows(rule: Rule) -> bool {
    rule.runtime_waivable() && WAIVED.with(|w| w.borrow().contains(&rule))
}

pub fn record_violation(message: &str) {
    VIOLATION.with(|v| {
        let mut v = v.borrow_mut();
        if v.is_none() {
            *v = Some(message.to_string());
        }
    });
}

pub fn violation() -> Option<String> {
    VIOLATION.with(|v| v.borrow().clone())
}

/// While alive, the region is enforced; Drop ends it on every exit path.
pub struct Region(&'static AtomicBool);

/// Starts the playbook region without a guard value: an online run's statement spans several
/// hook calls. [`leave_playbook`] ends it (also from the transaction-abort callback).
pub fn enter_playbook(waived: Vec<Rule>) {
    WAIVED.with(|w| *w.borrow_mut() = waived);
    VIOLATION.with(|v| *v.borrow_mut() = None);
    crate::hooks::prepare_function_decisions();
    PLAYBOOK.store(true, Ordering::Relaxed);
}

pub fn leave_playbook() {
    PLAYBOOK.store(false, Ordering::Relaxed);
    WAIVED.with(|w| w.borrow_mut().clear());
}

impl Region {
    pub fn playbook(waived: Vec<Rule>) -> Region {
        enter_playbook(waived);
        Region(&PLAYBOOK)
    }
    pub fn check() -> Region {
        VIOLATION.with(|v| *v.borrow_mut() = None);
        crate::hooks::prepare_function_decisions();
        CHECK.store(true, Ordering::Relaxed);
        Region(&CHECK)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
        WAIVED.with(|w| w.borrow_mut().clear());
    }
}
