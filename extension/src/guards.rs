//! The guards of SPEC "Guards", each a function returning the refusal it would raise, so that
//! execute (first failure wins), preview (every verdict) and the migration gate share them.

use crate::errors::{Kind, RepairError, Result};
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
    unsafe { pg_sys::RecoveryInProgress() }
}

pub fn session_replication_role() -> &'static str {
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
    let (session_oid, session_name) = identity::session_user();
    let listed = gucs::executors();
    let allowed = listed
        .iter()
        .filter_map(|r| identity::role_oid(r))
        .any(|role| identity::is_member(session_oid, role));
    if allowed {
        return Ok(());
    }
    let detail = if listed.is_empty() {
        "repair.executors is empty, so nobody may execute.".to_string()
    } else {
        format!(
            "session_user {session_name} is not a member of any of: {}.",
            listed.join(", ")
        )
    };
    Err(RepairError::new(Kind::NotAuthorized, format!("{session_name} may not execute playbooks"))
        .detail(detail)
        .hint("A superuser grants membership in a role listed in repair.executors (checked against session_user, not SET ROLE)."))
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
