//! `pgrepair approve ID --hash H --reason R [--valid-for DUR]` and
//! `pgrepair revoke-approval APPROVAL_ID --reason R`: the four-eyes approvals (repair.approve,
//! repair.revoke_approval). The server decides everything (who may approve, the hash, the
//! longest validity); a refusal is its one-line error, exit 1.

use serde_json::{json, Value};

use crate::cli::ApproveArgs;
use crate::commands::{json_rows, Ctx};
use crate::error::CliError;
use crate::exit;
use crate::output::{self, field};

/// Without --valid-for the argument is left out, so the server's default (4 hours) applies.
const APPROVE_SQL: &str = "SELECT repair.approve($1, $2, $3)::text";
const APPROVE_FOR_SQL: &str = "SELECT repair.approve($1, $2, $3, $4::text::interval)::text";
/// The approval just recorded, for its validity.
const STATUS_SQL: &str =
    "SELECT to_jsonb(a) FROM repair.approval_status AS a WHERE a.approval_id = $1::text::uuid";
const REVOKE_SQL: &str = "SELECT repair.revoke_approval($1::text::uuid, $2)::text";
/// The approvals whose id starts with the hex digits `$1` (at most two: one is the answer, two
/// is ambiguous). `$1` is validated hex, so it holds no LIKE pattern characters.
const PREFIX_SQL: &str = "SELECT a.approval_id::text FROM repair.approval_status AS a \
    WHERE replace(a.approval_id::text, '-', '') LIKE $1 || '%' \
    ORDER BY a.approval_id LIMIT 2";

/// The shortest prefix `revoke-approval` accepts (what `pgrepair approvals` shows).
pub const MIN_PREFIX: usize = 8;

pub fn run(ctx: &Ctx, args: &ApproveArgs) -> Result<i32, CliError> {
    let mut client = ctx.connect()?;
    let id: Option<String> = match &args.valid_for {
        None => client.query_one(APPROVE_SQL, &[&args.id, &args.hash, &args.reason]),
        Some(span) => client.query_one(
            APPROVE_FOR_SQL,
            &[&args.id, &args.hash, &args.reason, &span.interval()],
        ),
    }
    .and_then(|row| row.try_get(0))
    .map_err(|e| CliError::from_pg(e, None).with_note("nothing was approved"))?;
    let approval_id =
        id.ok_or_else(|| CliError::Failed("repair.approve() returned no approval id".into()))?;

    // The approval is recorded (committed): failing to read it back is a warning, not a failure.
    let status = match json_rows(&mut client, STATUS_SQL, &[&approval_id]) {
        Ok(mut rows) if !rows.is_empty() => Ok(rows.remove(0)),
        Ok(_) => Err("it is not in repair.approval_status".to_string()),
        Err(e) => Err(e.human_lines().join(" ")),
    };
    let (status, warning) = match status {
        Ok(s) => (s, None),
        Err(why) => (Value::Null, Some(why)),
    };
    let pick = |key: &str, given: &str| match status.get(key) {
        Some(v) if !v.is_null() => v.clone(),
        _ => json!(given),
    };
    let playbook_id = pick("playbook_id", &args.id);
    let hash = pick("hash", &args.hash);
    let valid_until = status.get("valid_until").cloned().unwrap_or(Value::Null);
    if let Some(why) = &warning {
        errln!(
            "pgrepair: warning: approval {approval_id} was recorded, but its validity could not \
             be read back: {why}"
        );
    }

    if ctx.json {
        output::emit_json(&json!({
            "approval_id": approval_id,
            "playbook_id": playbook_id,
            "hash": hash,
            "valid_until": valid_until,
        }));
        return Ok(exit::OK);
    }
    let mut playbook = output::text(&playbook_id);
    let version = field(&status, "version");
    if !version.is_empty() {
        playbook.push_str(&format!(" v{version}"));
    }
    let until = if valid_until.is_null() {
        "(unknown)".to_string()
    } else {
        output::timestamp(&valid_until)
    };
    let valid_for = match &args.valid_for {
        Some(span) => format!(" ({span} from now)"),
        None => String::new(),
    };
    output::emit_human(&format!(
        "approval {approval_id} recorded\n  playbook     {playbook}\n  hash         {}\n  \
         valid until  {until}{valid_for}",
        output::text(&hash),
    ));
    Ok(exit::OK)
}

/// What APPROVAL_ID names: a whole id, or a prefix to look up.
#[derive(Debug, PartialEq, Eq)]
enum ApprovalRef {
    Full(String),
    /// Lowercase hex digits, dashes removed.
    Prefix(String),
}

fn approval_ref(text: &str) -> Result<ApprovalRef, CliError> {
    let t = text.trim();
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    let all_hex = !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    let dashes_ok = !t.starts_with('-') && !t.ends_with('-') && !t.contains("--");
    if all_hex && dashes_ok && hex.len() == 32 {
        return Ok(ApprovalRef::Full(hex_uuid(&hex.to_ascii_lowercase())));
    }
    if all_hex && dashes_ok && (MIN_PREFIX..32).contains(&hex.len()) {
        return Ok(ApprovalRef::Prefix(hex.to_ascii_lowercase()));
    }
    Err(CliError::Usage(format!(
        "`{}` is not an approval id: give the id (a UUID) or its first {MIN_PREFIX} or more hex \
         digits, as `pgrepair approvals` shows them",
        output::ellipsize(t, 40)
    )))
}

/// 32 hex digits in the 8-4-4-4-12 form.
fn hex_uuid(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

pub fn revoke(ctx: &Ctx, approval_id: &str, reason: &str) -> Result<i32, CliError> {
    // a malformed id is a usage error, before connecting
    let wanted = approval_ref(approval_id)?;
    let mut client = ctx.connect()?;
    let approval_id = match wanted {
        ApprovalRef::Full(id) => id,
        ApprovalRef::Prefix(prefix) => {
            let rows = client
                .query(PREFIX_SQL, &[&prefix])
                .map_err(|e| CliError::from_pg(e, None).with_note("nothing was revoked"))?;
            let ids: Vec<String> = rows
                .iter()
                .filter_map(|r| r.try_get::<_, String>(0).ok())
                .collect();
            match ids.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(CliError::Failed(format!(
                        "no approval id starts with {prefix}; nothing was revoked"
                    )))
                }
                _ => {
                    return Err(CliError::Failed(format!(
                        "more than one approval id starts with {prefix}: give more digits; \
                         nothing was revoked"
                    )))
                }
            }
        }
    };
    let event: Option<String> = client
        .query_one(REVOKE_SQL, &[&approval_id, &reason])
        .and_then(|row| row.try_get(0))
        .map_err(|e| CliError::from_pg(e, None).with_note("nothing was revoked"))?;
    if ctx.json {
        output::emit_json(&json!({
            "approval_id": approval_id,
            "revocation_id": event,
        }));
        return Ok(exit::OK);
    }
    output::emit_human(&format!(
        "approval {approval_id} revoked (revocation {})",
        event.as_deref().unwrap_or("-")
    ));
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_ids_and_prefixes() {
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(approval_ref(id).unwrap(), ApprovalRef::Full(id.to_string()));
        assert_eq!(
            approval_ref(&id.to_ascii_uppercase()).unwrap(),
            ApprovalRef::Full(id.to_string())
        );
        assert_eq!(
            approval_ref("0f8fad5bd9cb469fa16570867728950e").unwrap(),
            ApprovalRef::Full(id.to_string())
        );
        assert_eq!(
            approval_ref("0f8fad5b").unwrap(),
            ApprovalRef::Prefix("0f8fad5b".into())
        );
        assert_eq!(
            approval_ref("0F8FAD5B-D9").unwrap(),
            ApprovalRef::Prefix("0f8fad5bd9".into())
        );
        for bad in [
            "",
            "0f8fad5",
            "nonsense",
            "0f8fad5g",
            "-0f8fad5b",
            "0f8fad5b-",
            "0f8f--ad5b",
            "0f8fad5b%",
            "0f8fad5b_",
            "0f8fad5b-d9cb-469f-a165-70867728950e0",
        ] {
            let e = approval_ref(bad).unwrap_err();
            assert_eq!(e.exit_code(), exit::USAGE, "{bad:?}");
        }
    }

    #[test]
    fn valid_for_is_sent_as_seconds() {
        let span = crate::duration::parse_span("1h30m").unwrap();
        assert_eq!(span.interval(), "5400 seconds");
        assert!(APPROVE_FOR_SQL.contains("$4::text::interval"));
        assert!(!APPROVE_SQL.contains("$4"));
    }
}
