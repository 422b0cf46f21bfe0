//! Four eyes (SPEC "Approvals"): repair.approve / repair.revoke_approval, and guard 8, which
//! execute and online_begin pass only with an unexpired, unrevoked, unused approval of the exact
//! current hash given by another session user.
//!
//! Single use without a "used" flag to update: an approval is used once a run row names it
//! (repair.runs.approval_id). Guard 8 runs after guard 5 took the playbook's lock, on a fresh
//! snapshot, so of two runs racing for one approval the second waits for the first's transaction
//! and then sees its run row: exactly one run consumes it. A run whose caller rolls back never
//! happened, and neither did the consumption.

use crate::audit;
use crate::clock;
use crate::errors::{Kind, RepairError, Result};
use crate::guards::{self, Role};
use crate::guc_scope::as_definer;
use crate::lock::lock_playbook;
use crate::registry::{self, Current};
use crate::{gucs, identity, schema};
use pg_repair_core::records::ApprovalRow;
use pg_repair_core::time::Utc;
use serde_json::{json, Value};

/// The approvals chain's lock (a name no playbook id can have).
const CHAIN_LOCK: &str = "approvals:chain";

/// The longest an approval may be valid.
pub const MAX_VALID_US: i64 = 24 * 3_600 * 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Off,
    Prod,
    Always,
}

/// repair.require_approval; anything but off / prod / always (a typo, an empty value) is
/// treated as always: fail closed.
pub fn policy() -> Policy {
    match gucs::require_approval().as_str() {
        "off" => Policy::Off,
        "prod" => Policy::Prod,
        _ => Policy::Always,
    }
}

/// Whether a run on a database of this declared role needs an approval.
pub fn required(role: Option<Role>) -> bool {
    match policy() {
        Policy::Off => false,
        Policy::Prod => role == Some(Role::Prod),
        Policy::Always => true,
    }
}

/// An approval a run may consume.
pub struct Usable {
    pub approval_id: String,
    pub approved_by: String,
    /// PostgreSQL `TimestampTz`.
    pub valid_until: i64,
}

/// Guard 8. Ok(None): no approval is required. Must run after the playbook's lock was taken
/// (guard 5) when enforcing, so the approval found is not being consumed by another run.
pub fn guard(current: &Current, role: Option<Role>) -> Result<Option<Usable>> {
    if !required(role) {
        return Ok(None);
    }
    let why = match policy() {
        Policy::Prod => "repair.require_approval = prod and this database is declared prod",
        _ => "repair.require_approval = always",
    };
    if !schema::detect().has_0_4_0() {
        return Err(RepairError::new(
            Kind::ApprovalRequired,
            format!("playbook {} needs an approval, and this database's pg_repair schema has no approvals yet", current.id),
        )
        .detail(why)
        .hint("Run ALTER EXTENSION pg_repair UPDATE, then have an approver call repair.approve."));
    }
    let session = identity::session_user().1;
    let found = crate::spi::query_mut(
        "SELECT a.approval_id::text, a.session_user_name, \
                ((pg_catalog.date_part('epoch', a.valid_until) - 946684800) * 1000000)::bigint, \
                pg_catalog.row_to_json(a)::text, a.prev_hash, a.row_hash \
           FROM repair.approvals a \
          WHERE a.action = 'approve' AND a.playbook_id = $1 AND a.hash = $2 \
            AND a.valid_until > pg_catalog.clock_timestamp() AND a.session_user_name <> $3 \
            AND NOT EXISTS (SELECT 1 FROM repair.approvals r \
                             WHERE r.action = 'revoke' AND r.approval_id = a.approval_id) \
            AND NOT EXISTS (SELECT 1 FROM repair.runs u WHERE u.approval_id = a.approval_id) \
          ORDER BY a.valid_until, a.seq LIMIT 1",
        &[
            current.id.as_str().into(),
            current.hash.as_str().into(),
            session.as_str().into(),
        ],
        |rows| {
            if rows.is_empty() {
                return Ok(None);
            }
            let r = rows.first();
            let doc = r.get::<String>(4)?.unwrap_or_default();
            let prev = r.get::<String>(5)?;
            let stored = r.get::<String>(6)?.unwrap_or_default();
            Ok(Some((
                Usable {
                    approval_id: r.get::<String>(1)?.unwrap_or_default(),
                    approved_by: r.get::<String>(2)?.unwrap_or_default(),
                    valid_until: r.get::<i64>(3)?.unwrap_or_default(),
                },
                audit::row_hash_holds(&doc, prev.as_deref(), &stored),
            )))
        },
    )
    .expect("approvals lookup");
    match found {
        // An approval is a security decision: its row must still hash to its row_hash (an edited
        // validity or hash is refused, not trusted; verify_audit() names the row).
        Some((u, false)) => Err(RepairError::new(
            Kind::Tampered,
            format!("approval {} no longer matches its row_hash", u.approval_id),
        )
        .detail("The approval row was changed after it was recorded.")
        .hint("Run repair.verify_audit(); have a new approval given.")),
        Some((u, true)) => Ok(Some(u)),
        None => Err(RepairError::new(
            Kind::ApprovalRequired,
            format!(
                "playbook {} (hash {}) has no usable approval by another person",
                current.id,
                &current.hash[..12.min(current.hash.len())]
            ),
        )
        .detail(format!("{why}. {}", why_none(current, &session)))
        .hint(if gucs::approvers().is_empty() {
            "repair.approvers is empty, so nobody can approve: a superuser sets it and reloads."
        } else {
            "Ask an approver (repair.approvers) who is not you to review this version and call repair.approve (pgrepair approve) with its hash."
        })),
    }
}

/// What became of this playbook's approvals, for the refusal's detail.
fn why_none(current: &Current, session: &str) -> String {
    let counts: Option<pgrx::JsonB> = crate::spi::query_mut(
        "SELECT pg_catalog.jsonb_build_object( \
            'stale', count(*) FILTER (WHERE s.hash <> $2), \
            'yours', count(*) FILTER (WHERE s.hash = $2 AND s.approved_by = $3 AND s.state = 'usable'), \
            'used', count(*) FILTER (WHERE s.hash = $2 AND s.state = 'used'), \
            'expired', count(*) FILTER (WHERE s.hash = $2 AND s.state = 'expired'), \
            'revoked', count(*) FILTER (WHERE s.hash = $2 AND s.state = 'revoked')) \
           FROM repair.approval_status s WHERE s.playbook_id = $1",
        &[
            current.id.as_str().into(),
            current.hash.as_str().into(),
            session.into(),
        ],
        |rows| rows.first().get::<pgrx::JsonB>(1),
    )
    .expect("approval counts");
    let c = counts.map(|j| j.0).unwrap_or(Value::Null);
    let n = |k: &str| c[k].as_i64().unwrap_or(0);
    let parts: Vec<String> = [
        (
            "stale",
            "for another hash (a new version needs a new approval)",
        ),
        (
            "yours",
            "given by you (the executor may not approve their own run)",
        ),
        ("used", "already used by a run"),
        ("expired", "expired"),
        ("revoked", "revoked"),
    ]
    .iter()
    .filter(|(k, _)| n(k) > 0)
    .map(|(k, what)| format!("{} {what}", n(k)))
    .collect();
    if parts.is_empty() {
        "This playbook has no approvals.".to_string()
    } else {
        format!("Its approvals: {}.", parts.join("; "))
    }
}

/// The approver guard: session_user is a member of a role in repair.approvers.
fn approver() -> Result<()> {
    guards::listed_member(
        "repair.approvers",
        &gucs::approvers(),
        "approve",
        "approve playbook runs",
    )
}

fn require_schema() -> Result<()> {
    if schema::detect().has_0_4_0() {
        return Ok(());
    }
    Err(RepairError::new(
        Kind::SchemaMismatch,
        "this database's pg_repair schema predates approvals",
    )
    .hint("Run ALTER EXTENSION pg_repair UPDATE."))
}

/// repair.approve: the approval's id.
pub fn approve(
    id: &str,
    expected_hash: Option<&str>,
    reason: Option<&str>,
    valid_for_us: i64,
) -> Result<String> {
    audit::require_read_committed("repair.approve")?;
    as_definer(|| {
        approver()?;
        let reason = guards::reason(reason)?;
        if valid_for_us <= 0 || valid_for_us > MAX_VALID_US {
            return Err(RepairError::new(
                Kind::InvalidArgument,
                "valid_for must be more than 0 and at most 24 hours",
            )
            .detail(format!(
                "valid_for was {} seconds.",
                valid_for_us / 1_000_000
            ))
            .hint("Approve for the window the run will happen in, e.g. valid_for => '2 hours'."));
        }
        require_schema()?;
        let current = loaded(id)?;
        guards::hash(expected_hash, &current.hash)?;
        lock_playbook(CHAIN_LOCK)?;
        let at = clock::now();
        let event_id = clock::uuid();
        let row = ApprovalRow {
            event_id: event_id.clone(),
            action: "approve",
            approval_id: event_id.clone(),
            playbook_id: current.id.clone(),
            version: current.version,
            hash: current.hash.clone(),
            at,
            valid_until: Some(at + valid_for_us),
            session_user_name: identity::session_user().1,
            reason,
        };
        audit::append_row("approvals", ApprovalRow::CHAIN, &row, schema::detect());
        Ok(event_id)
    })
}

/// The current, active, verified version of a playbook an approval is about.
fn loaded(id: &str) -> Result<Current> {
    let stored = registry::load(id).ok_or_else(|| registry::unknown(id))?;
    if let Some(e) = guards::unusable(id, &stored) {
        return Err(e);
    }
    registry::verified(stored)
}

/// repair.revoke_approval: the revocation's event id.
pub fn revoke(approval_id: &str, reason: Option<&str>) -> Result<String> {
    audit::require_read_committed("repair.revoke_approval")?;
    as_definer(|| {
        approver()?;
        let reason = guards::reason(reason)?;
        require_schema()?;
        if approval_id.is_empty() {
            return Err(RepairError::new(
                Kind::UnknownApproval,
                "no approval id given",
            ));
        }
        lock_playbook(CHAIN_LOCK)?;
        let approval: Option<(String, i32, String)> = crate::spi::query_mut(
            "SELECT playbook_id, version, hash FROM repair.approvals \
              WHERE action = 'approve' AND approval_id = $1::uuid",
            &[approval_id.into()],
            |rows| {
                if rows.is_empty() {
                    return Ok(None);
                }
                let r = rows.first();
                Ok(Some((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<i32>(2)?.unwrap_or_default(),
                    r.get::<String>(3)?.unwrap_or_default(),
                )))
            },
        )
        .expect("approval lookup");
        let Some((playbook_id, version, hash)) = approval else {
            return Err(RepairError::new(
                Kind::UnknownApproval,
                format!("no approval {approval_id}"),
            )
            .hint(
                "List approvals with SELECT * FROM repair.approval_status (pgrepair approvals).",
            ));
        };
        let event_id = clock::uuid();
        let row = ApprovalRow {
            event_id: event_id.clone(),
            action: "revoke",
            approval_id: approval_id.to_string(),
            playbook_id,
            version,
            hash,
            at: clock::now(),
            valid_until: None,
            session_user_name: identity::session_user().1,
            reason,
        };
        audit::append_row("approvals", ApprovalRow::CHAIN, &row, schema::detect());
        Ok(event_id)
    })
}

/// Preview's view of guard 8 for this caller.
pub fn preview_json(current: &Current, role: Option<Role>) -> Value {
    let required = required(role);
    let policy = gucs::require_approval();
    if !required {
        return json!({"required": false, "policy": policy, "usable": null});
    }
    match guard(current, role) {
        Ok(Some(u)) => json!({"required": true, "policy": policy, "usable": true,
            "approval_id": u.approval_id, "approved_by": u.approved_by,
            "valid_until": Utc::from_pg(u.valid_until).text()}),
        Ok(None) => json!({"required": false, "policy": policy, "usable": null}),
        Err(e) => json!({"required": true, "policy": policy, "usable": false,
            "message": e.message, "detail": e.detail}),
    }
}
