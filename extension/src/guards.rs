//! The guards of SPEC "Guards", each a function returning the refusal it would raise, so that
//! execute (first failure wins), preview (every verdict) and the migration gate share them.

use crate::errors::{Kind, RepairError, Result};
use crate::lock::lock_playbook;
use crate::registry::{self, Current};
use crate::{gucs, identity};
use pg_repair_core::text_safety;
use pgrx::pg_sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Staging,
    Prod,
    Replica,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Staging => "staging",
            Role::Prod => "prod",
            Role::Replica => "replica",
        }
    }
}

/// Guard 1: the declared role, exactly one of staging / prod / replica.
pub fn declared_role() -> Result<Role> {
    let raw = gucs::db_role();
    match raw.as_deref() {
        Some("staging") => Ok(Role::Staging),
        Some("prod") => Ok(Role::Prod),
        Some("replica") => Ok(Role::Replica),
        None | Some("") => Err(RepairError::new(Kind::RoleUndeclared, "repair.db_role is not set")
            .detail("pg_repair never infers a database's role; it must be declared.")
            .hint("Set repair.db_role to staging, prod or replica in postgresql.conf (or ALTER SYSTEM) and reload.")),
        Some(other) => Err(RepairError::new(
            Kind::RoleUndeclared,
            format!("repair.db_role = '{other}' is not one of staging, prod, replica"),
        )
        .detail("Values are exact and lowercase; anything else is treated as undeclared.")
        .hint("Fix repair.db_role in postgresql.conf (or ALTER SYSTEM) and reload.")),
    }
}

/// Evidence that can only refuse: a server in recovery, or replication-role sessions.
pub fn in_recovery() -> bool {
    // SAFETY: no arguments; reads shared memory state under PostgreSQL's own locking.
    unsafe { pg_sys::RecoveryInProgress() }
}

pub fn session_replication_role() -> &'static str {
    // SAFETY: reads the GUC's backing integer, on the backend's thread.
    match unsafe { pg_sys::SessionReplicationRole } as u32 {
        pg_sys::SESSION_REPLICATION_ROLE_ORIGIN => "origin",
        pg_sys::SESSION_REPLICATION_ROLE_REPLICA => "replica",
        _ => "local",
    }
}

/// Guard 2 without the per-call confirmation: Err for anything that refuses regardless of it.
pub fn environment_without_confirmation(role: Role) -> Result<()> {
    if role == Role::Replica {
        return Err(
            RepairError::new(Kind::EnvDisabled, "this database is declared a replica")
                .detail("repair.db_role = replica: nothing may run here.")
                .hint("Run the playbook on the primary it replicates from."),
        );
    }
    if in_recovery() {
        return Err(
            RepairError::new(Kind::EnvDisabled, "the server is in recovery (a standby)")
                .detail(format!(
                    "repair.db_role = {}, but pg_is_in_recovery() is true.",
                    role.as_str()
                ))
                .hint("Run the playbook on the primary; check the declared role of this server."),
        );
    }
    let srr = session_replication_role();
    if srr != "origin" {
        return Err(RepairError::new(
            Kind::EnvDisabled,
            format!("session_replication_role is {srr}"),
        )
        .detail(
            "Playbooks run only with session_replication_role = origin, so triggers fire as usual.",
        )
        .hint("RESET session_replication_role and try again."));
    }
    if role == Role::Prod && !gucs::allow_prod() {
        return Err(RepairError::new(
            Kind::EnvDisabled,
            "prod runs are disabled (repair.allow_prod = off)",
        )
        .detail("repair.db_role = prod and repair.allow_prod is off.")
        .hint(
            "A superuser must set repair.allow_prod = on and reload; each call must also confirm.",
        ));
    }
    Ok(())
}

/// Guard 2: also requires the per-call confirmation on prod.
pub fn environment(role: Role, confirm_prod: bool) -> Result<()> {
    environment_without_confirmation(role)?;
    if role == Role::Prod && !confirm_prod {
        return Err(RepairError::new(Kind::EnvDisabled, "prod runs need an explicit confirmation")
            .detail("repair.db_role = prod and repair.allow_prod = on, but confirm_prod was not given.")
            .hint("Pass confirm_prod => true (pgrepair: --confirm-prod) once you are sure."));
    }
    Ok(())
}

/// Guard 3: session_user is a member of a role listed in repair.executors.
pub fn executor() -> Result<()> {
    listed_member(
        "repair.executors",
        &gucs::executors(),
        "execute",
        "execute playbooks",
    )
}

/// session_user is a member of one of the roles a setting lists (empty = nobody): executors,
/// approvers. `verb` for "nobody may …", `action` for "… may not …".
pub fn listed_member(setting: &str, listed: &[String], verb: &str, action: &str) -> Result<()> {
    let (session_oid, session_name) = identity::session_user();
    let allowed = listed
        .iter()
        .filter_map(|r| identity::role_oid(r))
        .any(|role| identity::is_member(session_oid, role));
    if allowed {
        return Ok(());
    }
    let detail = if listed.is_empty() {
        format!("{setting} is empty, so nobody may {verb}.")
    } else {
        format!(
            "session_user {session_name} is not a member of any of: {}.",
            listed.join(", ")
        )
    };
    Err(RepairError::new(Kind::NotAuthorized, format!("{session_name} may not {action}"))
        .detail(detail)
        .hint(format!("A superuser grants membership in a role listed in {setting} (checked against session_user, not SET ROLE).")))
}

pub const MAX_REASON: usize = 500;

/// Guard 4: a reason of at most 500 characters with visible text and no control or bidi
/// character (the header-value rule of pg_repair_core::text_safety): it is shown to operators
/// and auditors, so it must read as what it is.
pub fn reason(reason: Option<&str>) -> Result<String> {
    let raw = reason.unwrap_or("");
    // Line breaks and tabs at the ends are trimmed like spaces; inside, they are refused.
    if let Err(found) = text_safety::check_field(raw.trim_matches([' ', '\t', '\n', '\r'])) {
        return Err(RepairError::new(
            Kind::ReasonRequired,
            format!(
                "the reason contains {} at character {}",
                found.describe(),
                found.index + 1
            ),
        )
        .detail("A reason is one line of plain text: no control characters (tabs and line breaks included) and no bidirectional overrides.")
        .hint("Write the reason again as plain text."));
    }
    let r = raw.trim();
    if !text_safety::has_visible_text(r) {
        return Err(
            RepairError::new(Kind::ReasonRequired, "a reason is required")
                .detail("Every run is audited with the reason it was made.")
                .hint("Pass a short reason, e.g. a ticket number and what is being repaired."),
        );
    }
    let n = r.chars().count();
    if n > MAX_REASON {
        return Err(RepairError::new(
            Kind::ReasonRequired,
            format!("the reason is {n} characters long"),
        )
        .detail(format!("A reason may be at most {MAX_REASON} characters."))
        .hint("Shorten the reason; link to the ticket for details."));
    }
    Ok(r.to_string())
}

/// request_id follows the same rule as a reason (it is recorded and shown); not a guard of its
/// own, so it fails with 22023 like any invalid argument.
pub const MAX_REQUEST_ID: usize = 200;

pub fn request_id(request_id: Option<&str>) -> Result<()> {
    let Some(id) = request_id else { return Ok(()) };
    let n = id.chars().count();
    if n > MAX_REQUEST_ID {
        return Err(RepairError::new(
            Kind::InvalidArgument,
            format!("the request_id is {n} characters long"),
        )
        .detail(format!(
            "A request id may be at most {MAX_REQUEST_ID} characters."
        ))
        .hint("Pass a short ticket or change number."));
    }
    match text_safety::check_field(id) {
        Ok(()) => Ok(()),
        Err(found) => Err(RepairError::new(
            Kind::InvalidArgument,
            format!(
                "request_id contains {} at character {}",
                found.describe(),
                found.index + 1
            ),
        )
        .hint("Pass a request id of plain text (e.g. a ticket or change number).")),
    }
}

/// Guard 5 (environment part): the declared role is one of the playbook's environments.
pub fn playbook_environment(id: &str, role: Role, environments: &[String]) -> Result<()> {
    if environments.iter().any(|e| e == role.as_str()) {
        return Ok(());
    }
    Err(RepairError::new(
        Kind::EnvDisabled,
        format!("playbook {id} is not allowed on {}", role.as_str()),
    )
    .detail(format!("Its environments are: {}.", environments.join(", ")))
    .hint("Add the environment to the playbook's environments header (a reviewed change) and register it again."))
}

/// Guard 6: the caller's expected hash is the registered one.
pub fn hash(expected: Option<&str>, registered: &str) -> Result<()> {
    let given = expected
        .map(|h| h.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if given == registered {
        return Ok(());
    }
    let shown = if given.is_empty() {
        "(none)".to_string()
    } else {
        crate::errors::bounded(&given, 80)
    };
    Err(RepairError::new(
        Kind::HashMismatch,
        format!("expected {shown}, registered {registered}"),
    )
    .detail("The playbook registered now is not the one you reviewed.")
    .hint("Preview it again (repair.preview / pgrepair preview) and pass the hash you reviewed."))
}

/// Guard 7: error findings not lifted by a waiver valid today.
/// `current` comes from registry::verified: its findings were recomputed from the stored source
/// (hidden characters included), never read from the stored column.
pub fn lint(current: &Current) -> Result<()> {
    let blocking = crate::lint::blocking(&current.lint, current.waivers(), &crate::clock::today());
    let Some(first) = blocking.first() else {
        return Ok(());
    };
    let list: Vec<String> = blocking
        .iter()
        .map(|f| {
            format!(
                "line {}: {} ({})",
                f["line"],
                f["message"].as_str().unwrap_or(""),
                f["rule"].as_str().unwrap_or("")
            )
        })
        .collect();
    Err(RepairError::new(
        Kind::LintRejected,
        format!("playbook {} has {} lint error(s), first: {}", current.id, blocking.len(), first["rule"].as_str().unwrap_or("")),
    )
    .detail(list.join("\n"))
    .hint("Fix the playbook and register it again, or add a time-boxed `-- waive: RULE until YYYY-MM-DD because TEXT` header."))
}

// ---------------------------------------------------------------------------------------------
// The pipeline: guards 1–7 in SPEC order, once, for every caller.

/// What a call asks to run.
pub struct Request<'a> {
    pub id: &'a str,
    pub expected_hash: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub confirm_prod: bool,
    pub request_id: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// The arguments of a run's SQL function (execute, online_begin), SQL NULLs as absent.
    pub fn of(
        id: Option<&'a str>,
        expected_hash: Option<&'a str>,
        reason: Option<&'a str>,
        confirm_prod: Option<bool>,
        request_id: Option<&'a str>,
    ) -> Self {
        Request {
            id: id.unwrap_or(""),
            expected_hash,
            reason,
            confirm_prod: confirm_prod.unwrap_or(false),
            request_id,
        }
    }
}

/// A request every guard passed: what may run, on which declared role, and why. Only
/// [`authorize`] makes one.
pub struct Authorization {
    pub role: Role,
    pub reason: String,
    /// Verified (re-derived from its stored source) and locked until the transaction ends.
    pub current: Current,
    /// The approval the run consumes (guard 8), when one is required.
    pub approval: Option<crate::approvals::Usable>,
}

/// One guard's verdict as repair.preview reports it.
pub enum Verdict {
    Pass,
    Fail(RepairError),
    /// Decided by what the call itself passes (reason, hash, prod confirmation).
    NeedsInput(String),
}

pub struct Reported {
    pub guard: u8,
    /// The refusal this guard raises.
    pub kind: Kind,
    pub check: &'static str,
    pub verdict: Verdict,
}

/// Every verdict for a playbook, without a request (repair.preview).
pub struct Report {
    /// The declared role, when guard 1 passed.
    pub role: Option<Role>,
    pub guards: Vec<Reported>,
    /// As stored when it fails verification (the failure is guard 7's verdict), else verified.
    pub current: Current,
}

/// Execute: the first refusal is raised. Preview: every verdict is reported, nothing raised,
/// nothing locked.
enum Mode<'a> {
    Enforce(&'a Request<'a>),
    Report(Vec<Reported>),
}

impl Mode<'_> {
    /// A guard's outcome: raised (enforce) or recorded (report; Ok(None) on failure).
    fn decide<T>(
        &mut self,
        n: u8,
        kind: Kind,
        check: &'static str,
        r: Result<T>,
    ) -> Result<Option<T>> {
        match self {
            Mode::Enforce(_) => r.map(Some),
            Mode::Report(list) => Ok(match r {
                Ok(v) => {
                    list.push(Reported {
                        guard: n,
                        kind,
                        check,
                        verdict: Verdict::Pass,
                    });
                    Some(v)
                }
                Err(e) => {
                    list.push(Reported {
                        guard: n,
                        kind,
                        check,
                        verdict: Verdict::Fail(e),
                    });
                    None
                }
            }),
        }
    }

    fn needs_input(&mut self, n: u8, kind: Kind, check: &'static str, why: String) {
        if let Mode::Report(list) = self {
            list.push(Reported {
                guard: n,
                kind,
                check,
                verdict: Verdict::NeedsInput(why),
            });
        }
    }
}

/// Guards 1–8 for a run: the authorisation or the first refusal. Takes the playbook's lock before reading it (guard 5 on), so the playbook
/// checked is the playbook run. Call under as_definer.
pub fn authorize(req: &Request) -> Result<Authorization> {
    let mut mode = Mode::Enforce(req);
    let (role, reason, current, approval) =
        walk(req.id, &mut mode)?.expect("enforced guards passed");
    // Not a guard: an invalid request id (22023) comes after every guard's refusal.
    request_id(req.request_id)?;
    Ok(Authorization {
        role: role.expect("guard 1 passed"),
        reason: reason.expect("guard 4 passed"),
        current,
        approval,
    })
}

/// Every guard's verdict for playbook `id` (None: no such playbook). Call under as_definer.
pub fn report(id: &str) -> Option<Report> {
    let mut mode = Mode::Report(Vec::new());
    let (role, _, current, _) = walk(id, &mut mode).ok().flatten()?;
    let Mode::Report(guards) = mode else {
        unreachable!()
    };
    Some(Report {
        role,
        guards,
        current,
    })
}

type Walked = (
    Option<Role>,
    Option<String>,
    Current,
    Option<crate::approvals::Usable>,
);

/// Guards 1–3 for a migration tool (repair.assert_migrations_allowed): the declared role, or the
/// first refusal.
pub fn authorize_migrations(confirm_prod: bool) -> Result<Role> {
    let req = Request {
        id: "",
        expected_hash: None,
        reason: None,
        confirm_prod,
        request_id: None,
    };
    Ok(environment_guards(&mut Mode::Enforce(&req))?.expect("enforced guards passed"))
}

/// Guards 1–3: the declared role, the environment, the executor.
fn environment_guards(mode: &mut Mode) -> Result<Option<Role>> {
    let confirm = match mode {
        Mode::Enforce(req) => Some(req.confirm_prod),
        Mode::Report(_) => None,
    };
    // 1. the declared role
    let role = mode.decide(1, Kind::RoleUndeclared, "declared role", declared_role())?;
    // 2. the environment
    match (role, confirm) {
        (Some(r), Some(confirm)) => {
            mode.decide(2, Kind::EnvDisabled, "environment", environment(r, confirm))?;
        }
        (Some(r), None) => {
            let base = environment_without_confirmation(r);
            if base.is_ok() && r == Role::Prod {
                mode.needs_input(
                    2,
                    Kind::EnvDisabled,
                    "environment",
                    "prod: repair.allow_prod is on; the call must also pass confirm_prod => true"
                        .into(),
                );
            } else {
                mode.decide(2, Kind::EnvDisabled, "environment", base)?;
            }
        }
        (None, _) => {
            let none: Result<()> = Err(RepairError::new(Kind::EnvDisabled, "no declared role"));
            mode.decide(2, Kind::EnvDisabled, "environment", none)?;
        }
    }
    // 3. the executor
    mode.decide(3, Kind::NotAuthorized, "executor", executor())?;
    Ok(role)
}

/// Guard 5's refusal of a registered id that cannot run: retired, or a check.
pub fn unusable(id: &str, stored: &Current) -> Option<RepairError> {
    if stored.retired {
        Some(
            RepairError::new(Kind::UnknownPlaybook, format!("playbook {id} is retired"))
                .detail(format!(
                    "Version {} was retired; retired playbooks never run.",
                    stored.version
                ))
                .hint("Register a new, reviewed version to bring it back."),
        )
    } else if stored.kind != "playbook" {
        Some(
            RepairError::new(
                Kind::UnknownPlaybook,
                format!("{id} is a check, not a playbook"),
            )
            .hint("Checks run through repair.run_checks()."),
        )
    } else {
        None
    }
}

/// The ordered guards. Ok(None): report mode, no such playbook.
fn walk(id: &str, mode: &mut Mode) -> Result<Option<Walked>> {
    let role = environment_guards(mode)?;
    // 4. the reason
    let reason = match mode {
        Mode::Enforce(req) => Some(reason(req.reason)?),
        Mode::Report(_) => {
            mode.needs_input(
                4,
                Kind::ReasonRequired,
                "reason",
                "given at execute (1–500 characters)".into(),
            );
            None
        }
    };
    // 5. the playbook: registered, current, not retired, a playbook, allowed on this role
    let stored = match mode {
        Mode::Enforce(_) => {
            lock_playbook(id)?;
            registry::load(id)
        }
        Mode::Report(_) => registry::load(id),
    };
    let Some(stored) = stored else {
        return match mode {
            Mode::Enforce(_) => Err(registry::unknown(id)),
            Mode::Report(_) => Ok(None),
        };
    };
    let unusable = unusable(id, &stored);
    // What is trusted: the version re-derived from its source. Execute refuses a tampered
    // version here; preview shows it as stored and reports the tampering at guard 7.
    let (current, integrity) = match mode {
        Mode::Enforce(_) => {
            if let Some(e) = unusable {
                return Err(e);
            }
            (registry::verified(stored)?, Ok(()))
        }
        Mode::Report(_) => match registry::verified(stored.clone()) {
            Ok(c) => (c, Ok(())),
            Err(e) => (stored, Err(e)),
        },
    };
    let playbook = match (unusable, role) {
        (Some(e), _) => Err(e),
        (None, Some(r)) => playbook_environment(id, r, current.environments()),
        (None, None) => Ok(()),
    };
    mode.decide(5, Kind::UnknownPlaybook, "playbook", playbook)?;
    // 6. the expected hash
    match mode {
        Mode::Enforce(req) => hash(req.expected_hash, &current.hash)?,
        Mode::Report(_) => mode.needs_input(
            6,
            Kind::HashMismatch,
            "hash",
            format!("execute must pass expected_hash = {}", current.hash),
        ),
    }
    // 7. lint: error findings not lifted by a waiver valid today
    mode.decide(
        7,
        Kind::LintRejected,
        "lint",
        integrity.and_then(|_| lint(&current)),
    )?;
    // 8. the approval (four eyes), under the playbook's lock taken at guard 5
    let approval = mode
        .decide(
            8,
            Kind::ApprovalRequired,
            "approval",
            crate::approvals::guard(&current, role),
        )?
        .flatten();
    Ok(Some((role, reason, current, approval)))
}
