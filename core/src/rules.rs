//! The lint rule catalogue. The extension produces findings under these rules, the runtime
//! refuses statements under them, and waivers may only name the waivable ones, so the catalogue
//! lives here where the parser can reject a misspelt waiver at parse time. A rule is a [`Rule`]
//! everywhere; its id string exists only at the edges (JSON, SQL rows, waiver headers).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

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

/// What kind of rule it is, which decides whether a waiver may name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A lint rule a waiver may name.
    Lint,
    /// A lint rule no waiver may name: a hidden control or bidi character is never a reviewed
    /// decision.
    Unwaivable,
    /// Never a lint finding: only the runtime refuses under it (functions and foreign tables it
    /// meets while a playbook or check runs).
    RuntimeOnly,
}

/// Whether, and how, the runtime (the preloaded hooks) refuses a rule's statements while a
/// playbook runs, however it reached them (DO, functions, EXECUTE, triggers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// Lint only.
    No,
    /// Refused whatever the playbook's waivers say.
    Always,
    /// A utility statement refused unless a current waiver of the playbook lifts the rule.
    UnlessWaived,
    /// Judged on the executor's plan (DELETE, UPDATE, MERGE, ON CONFLICT DO UPDATE, and the same
    /// in data-modifying CTEs), refused unless a current waiver of the playbook lifts the rule.
    PlanUnlessWaived,
    /// Only what outlives the run: RESET ALL, DISCARD, ALTER DATABASE … SET, LOAD, and changing
    /// session_replication_role. Other settings are undone when the run ends.
    SessionOnly,
}

macro_rules! rules {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $id:literal, $severity:ident, $class:ident, $runtime:ident, $message:literal;
    )*) => {
        /// Every rule, lint and runtime.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Rule {
            $($(#[$doc])* $variant,)*
        }

        impl Rule {
            /// Every rule, in catalogue order.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)*];

            /// The kebab-case id findings, waivers and refusals name the rule by.
            pub const fn id(self) -> &'static str {
                match self {
                    $(Rule::$variant => $id,)*
                }
            }

            /// The severity of a finding under this rule.
            pub const fn severity(self) -> Severity {
                match self {
                    $(Rule::$variant => Severity::$severity,)*
                }
            }

            pub const fn class(self) -> Class {
                match self {
                    $(Rule::$variant => Class::$class,)*
                }
            }

            pub const fn runtime(self) -> Runtime {
                match self {
                    $(Rule::$variant => Runtime::$runtime,)*
                }
            }

            /// The finding message (for a runtime-only rule, the refusal's detail). Some rules
            /// word it differently per statement; those variants live where the rule is raised
            /// and this is the general one.
            pub const fn message(self) -> &'static str {
                match self {
                    $(Rule::$variant => $message,)*
                }
            }
        }
    };
}

rules! {
    BanDrop = "ban-drop", Error, Lint, Always,
        "DROP removes objects and data; a repair playbook only creates or restores (write CREATE … IF NOT EXISTS)";
    BanTruncate = "ban-truncate", Error, Lint, Always,
        "TRUNCATE deletes every row; a repair playbook must not remove data";
    BanDelete = "ban-delete", Error, Lint, PlanUnlessWaived,
        "DELETE removes rows; a repair playbook must not remove data (clean up data in a reviewed migration instead)";
    BanUpdate = "ban-update", Error, Lint, PlanUnlessWaived,
        "UPDATE rewrites rows; a repair playbook restores structure, not data";
    /// Refused at runtime as the DELETE / UPDATE it contains (ban-delete, ban-update).
    BanDataModifyingCte = "ban-data-modifying-cte", Error, Lint, No,
        "data-modifying WITH query: playbooks must not change rows; move row changes out of the playbook";
    BanAlterTableDrop = "ban-alter-table-drop", Error, Lint, Always,
        "ALTER TABLE … DROP removes structure or data; a repair playbook only adds";
    BanAlterSystem = "ban-alter-system", Error, Lint, Always,
        "ALTER SYSTEM changes server configuration for every database; not a playbook's job";
    BanTransactionControl = "ban-transaction-control", Error, Lint, No,
        "transaction control inside a playbook would break its all-or-nothing run; remove BEGIN/COMMIT/ROLLBACK/SAVEPOINT";
    BanSet = "ban-set", Error, Lint, SessionOnly,
        "SET/RESET changes the session; only SET LOCAL lock_timeout / statement_timeout are allowed (or use the lock-timeout / statement-timeout headers)";
    BanRoleChange = "ban-role-change", Error, Lint, Always,
        "SET ROLE / SESSION AUTHORIZATION changes who the playbook runs as; it runs as the session user or repair.run_as";
    BanRoleManagement = "ban-role-management", Error, Lint, Always,
        "role management (CREATE/ALTER/DROP ROLE, GRANT role, REASSIGN OWNED) is not a repair; do it through your access process";
    BanCopyProgram = "ban-copy-program", Error, Lint, Always,
        "COPY … PROGRAM runs a shell command on the database server; never in a playbook";
    BanNonTransactional = "ban-non-transactional", Error, Lint, No,
        "the statement cannot run inside a transaction, and a playbook runs in one";
    RequireIfNotExists = "require-if-not-exists", Error, Lint, No,
        "CREATE TABLE fails on a second run; write CREATE TABLE IF NOT EXISTS";
    RequireOrReplace = "require-or-replace", Error, Lint, No,
        "CREATE FUNCTION/PROCEDURE fails on a second run; write CREATE OR REPLACE";
    BanRule = "ban-rule", Error, Lint, Always,
        "CREATE RULE rewrites other statements invisibly; use a trigger or a view";
    BanNonSelectCheck = "ban-non-select-check", Error, Lint, No,
        "a check must be a read-only SELECT (no INTO, FOR UPDATE/SHARE, or data-modifying WITH)";
    BanGrant = "ban-grant", Error, Lint, UnlessWaived,
        "GRANT/REVOKE changes privileges; do it through your access process, not a repair playbook";
    BanAlterType = "ban-alter-type", Error, Lint, UnlessWaived,
        "ALTER COLUMN … TYPE rewrites every row of the column (USING can change the data); not a repair";
    BanRename = "ban-rename", Error, Lint, UnlessWaived,
        "ALTER … RENAME / SET SCHEMA moves or renames an object: the application would see a missing or an empty replacement object";
    BanCursor = "ban-cursor", Error, Lint, Always,
        "DECLARE CURSOR leaves work that runs after the playbook (a WITH HOLD cursor is computed at COMMIT); use a plain query";
    BanSessionState = "ban-session-state", Error, Lint, Always,
        "PREPARE leaves a prepared statement in the caller's session after the run";
    BanExtension = "ban-extension", Error, Lint, Always,
        "CREATE EXTENSION of an extension that reaches outside the transaction or the server's file system (remote sessions, files, untrusted code); never in a playbook";
    BanEventTrigger = "ban-event-trigger", Error, Lint, Always,
        "an event trigger runs its function later in other sessions (on every DDL, or at every login from PostgreSQL 17), after the run and outside its guards; not a playbook's job";
    /// A `-- batch` line of an online playbook that marks no statement, or marks one that cannot
    /// be repeated until it affects no rows.
    BatchStatement = "batch-statement", Error, Lint, No,
        "a `-- batch` line must stand right before an UPDATE, DELETE, INSERT or MERGE that affects 0 rows once the work is done";
    /// The parser's own message and position, or a statement nested too deeply to verify.
    SyntaxError = "syntax-error", Error, Lint, No,
        "the SQL does not parse (fix the SQL so PostgreSQL's parser accepts it)";
    EmptyBody = "empty-body", Error, Lint, No,
        "the body has no SQL statement (only comments or semicolons)";
    WarnDynamicSql = "warn-dynamic-sql", Warning, Lint, No,
        "DO block: its contents cannot be verified statically (runtime enforcement still applies while the playbook runs)";
    /// An unsafe character in code (or a bidi override leaking out of its literal).
    ControlCharacter = "control-character", Error, Unwaivable, No,
        "a control or bidi character in the SQL code: editors and terminals may display the code differently from what runs; remove it";
    /// An unsafe character inside a string literal or a comment.
    ControlCharacterInLiteral = "control-character-in-literal", Warning, Unwaivable, No,
        "a control or bidi character inside a string literal or comment: write it as an escape so reviewers can see it";
    /// A built-in function acting outside the run (other sessions, the server, large objects,
    /// session locks), under any name.
    BanFunction = "ban-function", Error, RuntimeOnly, Always,
        "It acts outside this run: on other sessions, the server, large objects, locks held past the run, or a remote server.";
    /// A foreign table, or a function of dblink / postgres_fdw: a session on another server.
    BanRemote = "ban-remote", Error, RuntimeOnly, Always,
        "A foreign table is a session on another server: its work escapes this transaction and the rollback.";
}

impl Rule {
    /// The rule with this exact id (ids are lowercase; no folding).
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.id() == id)
    }

    /// Whether a waiver may name this rule.
    pub const fn waivable(self) -> bool {
        matches!(self.class(), Class::Lint)
    }

    /// Whether the runtime refuses (some of) this rule's statements while a playbook runs.
    pub const fn is_runtime_enforced(self) -> bool {
        !matches!(self.runtime(), Runtime::No)
    }

    /// Whether a current waiver of the running playbook lifts the runtime refusal.
    pub const fn runtime_waivable(self) -> bool {
        matches!(
            self.runtime(),
            Runtime::UnlessWaived | Runtime::PlanUnlessWaived
        )
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Ordered by id, so anything sorted by rule sorts exactly as it did when rules were strings
/// (waivers in the canonical JSON, hence the hash).
impl Ord for Rule {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id().cmp(other.id())
    }
}

impl PartialOrd for Rule {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq<str> for Rule {
    fn eq(&self, other: &str) -> bool {
        self.id() == other
    }
}

impl PartialEq<&str> for Rule {
    fn eq(&self, other: &&str) -> bool {
        self.id() == *other
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = String::deserialize(d)?;
        Rule::from_id(&id)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown lint rule `{id}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_unique_and_lowercase_kebab() {
        let mut ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
        for id in &ids {
            assert!(id.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), Rule::ALL.len());
    }

    #[test]
    fn every_rule_round_trips_through_its_id_and_json() {
        for &rule in Rule::ALL {
            assert_eq!(Rule::from_id(rule.id()), Some(rule));
            let json = serde_json::to_string(&rule).unwrap();
            assert_eq!(json, format!("\"{}\"", rule.id()));
            assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), rule);
            assert_eq!(rule.to_string(), rule.id());
            assert!(!rule.message().is_empty());
        }
        assert!(serde_json::from_str::<Rule>("\"ban-drops\"").is_err());
    }

    #[test]
    fn lookup_is_exact() {
        assert_eq!(Rule::from_id("ban-drop"), Some(Rule::BanDrop));
        assert_eq!(Rule::from_id("BAN-DROP"), None);
        assert_eq!(Rule::from_id(""), None);
        assert_eq!(Rule::from_id("ban-drop "), None);
    }

    #[test]
    fn severities() {
        assert_eq!(Rule::BanDrop.severity(), Severity::Error);
        assert_eq!(Rule::WarnDynamicSql.severity(), Severity::Warning);
        assert_eq!(Rule::ControlCharacter.severity(), Severity::Error);
        assert_eq!(
            Rule::ControlCharacterInLiteral.severity(),
            Severity::Warning
        );
        let warnings: Vec<Rule> = Rule::ALL
            .iter()
            .copied()
            .filter(|r| r.severity() == Severity::Warning)
            .collect();
        assert_eq!(
            warnings,
            [Rule::WarnDynamicSql, Rule::ControlCharacterInLiteral]
        );
        assert_eq!(
            serde_json::to_string(&Severity::Warning).unwrap(),
            "\"warning\""
        );
    }

    #[test]
    fn waivable_rules() {
        let unwaivable: Vec<&str> = Rule::ALL
            .iter()
            .filter(|r| !r.waivable())
            .map(|r| r.id())
            .collect();
        assert_eq!(
            unwaivable,
            [
                "control-character",
                "control-character-in-literal",
                "ban-function",
                "ban-remote"
            ]
        );
        assert_eq!(
            Rule::ALL
                .iter()
                .filter(|r| r.class() == Class::Lint)
                .count(),
            28
        );
    }

    #[test]
    fn runtime_enforcement() {
        // DROP and TRUNCATE stay refused at runtime whatever the waivers say (SPEC, "Waivers").
        for rule in [Rule::BanDrop, Rule::BanTruncate] {
            assert_eq!(rule.runtime(), Runtime::Always);
            assert!(!rule.runtime_waivable());
        }
        for rule in [Rule::BanDelete, Rule::BanUpdate] {
            assert_eq!(rule.runtime(), Runtime::PlanUnlessWaived);
        }
        let waivable: Vec<Rule> = Rule::ALL
            .iter()
            .copied()
            .filter(|r| r.runtime() == Runtime::UnlessWaived)
            .collect();
        assert_eq!(
            waivable,
            [Rule::BanGrant, Rule::BanAlterType, Rule::BanRename]
        );
        for &rule in Rule::ALL {
            if rule.class() == Class::RuntimeOnly {
                assert!(rule.is_runtime_enforced(), "{rule}");
            }
        }
        assert!(!Rule::WarnDynamicSql.is_runtime_enforced());
    }

    #[test]
    fn ordered_by_id() {
        let mut rules = Rule::ALL.to_vec();
        rules.sort();
        let ids: Vec<&str> = rules.iter().map(|r| r.id()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted);
        assert!(Rule::BanDelete < Rule::BanDrop);
        assert!(Rule::WarnDynamicSql > Rule::BanDrop);
    }
}
