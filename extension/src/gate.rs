//! The migration gate (guards 1–3) and the authority report: declared role plus evidence, which
//! may only refuse or warn, never grant.

use crate::errors::Result;
use crate::guards;
use crate::guc_scope::as_definer;
use crate::{gucs, identity};
use serde_json::{json, Value};

pub fn assert_migrations_allowed(confirm_prod: bool) -> Result<Value> {
    let role = guards::authorize_migrations(confirm_prod)?;
    Ok(json!({
        "allowed": true,
        "declared_role": role.as_str(),
        "session_user": identity::session_user().1,
        "confirm_prod": confirm_prod,
    }))
}

fn setting(name: &str) -> Option<String> {
    as_definer(|| {
        crate::spi::one::<String>(
            "SELECT pg_catalog.current_setting($1, true)",
            &[name.into()],
        )
    })
}

pub fn authority() -> Value {
    let declared = gucs::db_role();
    let role = guards::declared_role();
    let in_recovery = guards::in_recovery();
    let listen = setting("listen_addresses").unwrap_or_default();
    let cluster = setting("cluster_name").unwrap_or_default();
    let database =
        as_definer(|| crate::spi::one::<String>("SELECT pg_catalog.current_database()::text", &[]))
            .unwrap_or_default();
    let mut warnings: Vec<String> = Vec::new();
    match &role {
        Err(e) => warnings.push(e.message.clone()),
        Ok(guards::Role::Replica) if !in_recovery => warnings
            .push("declared replica, but the server is not in recovery and accepts writes".into()),
        Ok(r) if *r != guards::Role::Replica && in_recovery => warnings.push(format!(
            "declared {}, but the server is in recovery (a standby): gated calls are refused",
            r.as_str()
        )),
        _ => {}
    }
    let names = format!("{cluster} {database}").to_ascii_lowercase();
    if let Ok(r) = &role {
        if *r == guards::Role::Staging && names.contains("prod") {
            warnings.push(format!(
                "declared staging, but cluster/database name \"{}\" suggests production",
                names.trim()
            ));
        }
        if *r == guards::Role::Prod
            && (names.contains("stag") || names.contains("test") || names.contains("dev"))
        {
            warnings.push(format!(
                "declared prod, but cluster/database name \"{}\" suggests a non-production system",
                names.trim()
            ));
        }
    }
    if guards::session_replication_role() != "origin" {
        warnings.push(format!(
            "session_replication_role is {}: gated calls are refused",
            guards::session_replication_role()
        ));
    }
    json!({
        "declared_role": declared,
        "role_valid": role.is_ok(),
        "allow_prod": gucs::allow_prod(),
        "executors": gucs::executors(),
        "evidence": {
            "in_recovery": in_recovery,
            "session_replication_role": guards::session_replication_role(),
            "listen_addresses": listen,
            "cluster_name": cluster,
            "database": database,
        },
        "warnings": warnings,
    })
}
