//! The lint rule catalogue. The extension produces findings under these ids and waivers may only
//! name them, so the list lives here where the parser can reject a misspelt waiver at parse time.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// Every lint rule id with its severity. Waivers may only name these.
pub const RULES: &[(&str, Severity)] = &[
    ("ban-drop", Severity::Error),
    ("ban-truncate", Severity::Error),
    ("ban-delete", Severity::Error),
    ("ban-update", Severity::Error),
    ("ban-data-modifying-cte", Severity::Error),
    ("ban-alter-table-drop", Severity::Error),
    ("ban-alter-system", Severity::Error),
    ("ban-transaction-control", Severity::Error),
    ("ban-set", Severity::Error),
    ("ban-role-change", Severity::Error),
    ("ban-role-management", Severity::Error),
    ("ban-copy-program", Severity::Error),
    ("ban-non-transactional", Severity::Error),
    ("require-if-not-exists", Severity::Error),
    ("require-or-replace", Severity::Error),
    ("ban-rule", Severity::Error),
    ("ban-non-select-check", Severity::Error),
    ("ban-grant", Severity::Error),
    ("ban-alter-type", Severity::Error),
    ("ban-rename", Severity::Error),
    ("ban-cursor", Severity::Error),
    ("ban-session-state", Severity::Error),
    ("ban-extension", Severity::Error),
    ("ban-event-trigger", Severity::Error),
    ("syntax-error", Severity::Error),
    ("empty-body", Severity::Error),
    ("warn-dynamic-sql", Severity::Warning),
];

/// Rules no waiver may name: a hidden control or bidi character is never a reviewed decision.
pub const UNWAIVABLE: &[(&str, Severity)] = &[
    (crate::text_safety::RULE_ERROR, Severity::Error),
    (crate::text_safety::RULE_WARNING, Severity::Warning),
];

pub fn severity_of(rule: &str) -> Option<Severity> {
    RULES
        .iter()
        .chain(UNWAIVABLE)
        .find(|(id, _)| *id == rule)
        .map(|(_, severity)| *severity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_unique_and_lowercase_kebab() {
        let mut ids: Vec<&str> = RULES.iter().chain(UNWAIVABLE).map(|(id, _)| *id).collect();
        for id in &ids {
            assert!(id.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len() + UNWAIVABLE.len());
    }

    #[test]
    fn severity_lookup() {
        assert_eq!(severity_of("ban-drop"), Some(Severity::Error));
        assert_eq!(severity_of("warn-dynamic-sql"), Some(Severity::Warning));
        assert_eq!(severity_of("BAN-DROP"), None);
        assert_eq!(severity_of("control-character"), Some(Severity::Error));
        assert_eq!(
            severity_of("control-character-in-literal"),
            Some(Severity::Warning)
        );
        assert_eq!(severity_of(""), None);
        assert_eq!(
            serde_json::to_string(&Severity::Warning).unwrap(),
            "\"warning\""
        );
    }
}
