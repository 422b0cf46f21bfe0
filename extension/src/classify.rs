//! Classifying parse trees (from PostgreSQL's own raw parser) against the lint rules. Used
//! statically by lint (every statement of a body) and at runtime by the hooks (every utility
//! statement a running playbook reaches, however it got there).

// One match arm per node type, each testing that node's own flags, reads better than guards.
#![allow(clippy::collapsible_match)]

use crate::parse_tree::NodeRef;
use pg_repair_core::rules::Runtime;
use pg_repair_core::Rule;
use pgrx::pg_sys::{self, NodeTag as T};
use std::ffi::CStr;

/// One rule a statement breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub rule: Rule,
    pub message: String,
}

impl Hit {
    /// A hit with this statement's own wording of the rule.
    fn new(rule: Rule, message: impl Into<String>) -> Self {
        Hit {
            rule,
            message: message.into(),
        }
    }
    /// A hit with the rule's general message.
    fn of(rule: Rule) -> Self {
        Hit::new(rule, rule.message())
    }
}

/// Extensions a playbook may never create: they open remote sessions outside the transaction,
/// read or write the server's files, or run untrusted code.
pub const BANNED_EXTENSIONS: &[&str] = &[
    "dblink",
    "postgres_fdw",
    "file_fdw",
    "adminpack",
    "plpython3u",
    "plpythonu",
    "plperlu",
    "pltclu",
    "lo",
];

/// Parse trees nested deeper than this are reported instead of walked further.
const MAX_DEPTH: usize = 64;

/// The elements of a pointer List (PG 13+ array-based).
///
/// # Safety
/// `list` is NIL or a live List of pointers (not an integer or OID list).
pub unsafe fn nodes(list: *mut pg_sys::List) -> Vec<*mut pg_sys::Node> {
    if list.is_null() {
        return vec![];
    }
    // SAFETY: a live pointer List (caller's contract) has `length` initialised elements.
    unsafe {
        (0..(*list).length as usize)
            .map(|i| (*(*list).elements.add(i)).ptr_value as *mut pg_sys::Node)
            .collect()
    }
}

/// # Safety
/// `p` is null or a live NUL-terminated string.
unsafe fn text(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: non-null, so a live NUL-terminated string (caller's contract).
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// # Safety
/// `node` is null or a live node.
unsafe fn tag(node: *mut pg_sys::Node) -> Option<pg_sys::NodeTag> {
    if node.is_null() {
        None
    } else {
        // SAFETY: non-null, so a live node (caller's contract), which starts with its tag.
        Some(unsafe { (*node).type_ })
    }
}

/// DefElem names in an option list (e.g. EXPLAIN (ANALYZE), REINDEX (CONCURRENTLY)).
///
/// # Safety
/// `list` is NIL or a live List of nodes of a parse tree.
unsafe fn option_names(list: *mut pg_sys::List) -> Vec<String> {
    // SAFETY: the list's elements are live nodes (caller's contract); a DefElem's defname is a
    // C string or null.
    unsafe {
        nodes(list)
            .into_iter()
            .filter(|n| tag(*n) == Some(T::T_DefElem))
            .map(|n| text((*(n as *mut pg_sys::DefElem)).defname).to_ascii_lowercase())
            .collect()
    }
}

/// Whether a function option list says SECURITY DEFINER.
///
/// # Safety
/// `options` is NIL or a live List of nodes of a parse tree.
unsafe fn security_definer(options: *mut pg_sys::List) -> bool {
    // SAFETY: the list's elements are live nodes (caller's contract), each cast only after its
    // tag says it is a DefElem (and its arg a Boolean).
    unsafe {
        nodes(options).into_iter().any(|n| {
            if tag(n) != Some(T::T_DefElem) {
                return false;
            }
            let d = &*(n as *mut pg_sys::DefElem);
            text(d.defname) == "security"
                && tag(d.arg) == Some(T::T_Boolean)
                && (*(d.arg as *mut pg_sys::Boolean)).boolval
        })
    }
}

/// ALTER VIEW … SET (security_invoker = false | security_barrier = false) or RESET of either:
/// the view then reads with its owner's privileges (or may leak rows through functions).
///
/// # Safety
/// `options` is null or a live List of nodes of a parse tree (AlterTableCmd.def of a
/// SET/RESET (…) command).
unsafe fn widens_view_rights(options: *mut pg_sys::Node, reset: bool) -> bool {
    // SAFETY: the list's elements are live nodes (caller's contract), each cast only after its
    // tag says which node type it is.
    unsafe {
        nodes(options as *mut pg_sys::List).into_iter().any(|n| {
            if tag(n) != Some(T::T_DefElem) {
                return false;
            }
            let d = &*(n as *mut pg_sys::DefElem);
            let name = text(d.defname).to_ascii_lowercase();
            if name != "security_invoker" && name != "security_barrier" {
                return false;
            }
            if reset || d.arg.is_null() {
                // RESET, or SET (security_invoker) which means true
                return reset;
            }
            let value = match tag(d.arg) {
                Some(T::T_String) => {
                    text((*(d.arg as *mut pg_sys::String)).sval).to_ascii_lowercase()
                }
                Some(T::T_Boolean) => (*(d.arg as *mut pg_sys::Boolean)).boolval.to_string(),
                Some(T::T_Integer) => (*(d.arg as *mut pg_sys::Integer)).ival.to_string(),
                _ => String::new(),
            };
            !matches!(value.as_str(), "true" | "on" | "1" | "yes" | "t" | "y")
        })
    }
}

const DEFINER: &str = "SECURITY DEFINER makes the function run with its owner's privileges for everyone allowed to call it (PUBLIC by default): a privilege change";

/// The rules `node` breaks (empty: it is fine).
pub fn classify(node: NodeRef<'_>) -> Vec<Hit> {
    let mut out = Vec::new();
    // SAFETY: a NodeRef is null or a well-formed tree alive for the whole call.
    unsafe { walk(node.as_ptr(), 0, &mut out) };
    out
}

/// # Safety
/// `with` is null or a live WithClause of a well-formed parse tree.
unsafe fn walk_with(with: *mut pg_sys::WithClause, depth: usize, out: &mut Vec<Hit>) {
    if with.is_null() {
        return;
    }
    // SAFETY: `with` is live (caller's contract) and its ctes are CommonTableExpr nodes whose
    // ctequery is null or a node of the same tree.
    unsafe {
        for cte in nodes((*with).ctes) {
            let q = (*(cte as *mut pg_sys::CommonTableExpr)).ctequery;
            if matches!(
                tag(q),
                Some(T::T_InsertStmt | T::T_UpdateStmt | T::T_DeleteStmt | T::T_MergeStmt)
            ) {
                out.push(Hit::new(
                    Rule::BanDataModifyingCte,
                    format!(
                        "data-modifying WITH query ({}): playbooks must not change rows; move row changes out of the playbook",
                        label(q)
                    ),
                ));
            }
            walk(q, depth + 1, out);
        }
    }
}

/// # Safety
/// `node` is null or a live node.
unsafe fn label(node: *mut pg_sys::Node) -> &'static str {
    // SAFETY: null or live (caller's contract).
    match unsafe { tag(node) } {
        Some(T::T_InsertStmt) => "INSERT",
        Some(T::T_UpdateStmt) => "UPDATE",
        Some(T::T_DeleteStmt) => "DELETE",
        Some(T::T_MergeStmt) => "MERGE",
        _ => "statement",
    }
}

const NOT_IN_TXN: &str = "cannot run inside a transaction, and a playbook runs in one";

/// # Safety
/// `node` is null or the root of a well-formed parse tree that stays alive during the call.
unsafe fn walk(node: *mut pg_sys::Node, depth: usize, out: &mut Vec<Hit>) {
    // SAFETY: null or live (caller's contract).
    let Some(t) = (unsafe { tag(node) }) else {
        return;
    };
    if depth > MAX_DEPTH {
        out.push(Hit::new(
            Rule::SyntaxError,
            "statement nested too deeply to verify; simplify it",
        ));
        return;
    }
    // SAFETY: `node` is live (caller's contract) and is cast only to the struct its tag `t`
    // names; every pointer field followed is null or a node, list or string of the same tree,
    // which the parser built with the types the fields declare.
    unsafe {
        match t {
            T::T_DropStmt => {
                let s = &*(node as *mut pg_sys::DropStmt);
                out.push(Hit::of(Rule::BanDrop));
                if s.concurrent {
                    out.push(Hit::new(Rule::BanNonTransactional, format!("DROP … CONCURRENTLY {NOT_IN_TXN}")));
                }
            }
            T::T_DropOwnedStmt | T::T_DropdbStmt | T::T_DropTableSpaceStmt | T::T_DropSubscriptionStmt
            | T::T_DropUserMappingStmt => {
                out.push(Hit::new(Rule::BanDrop, "DROP removes objects and data; a repair playbook only creates or restores"));
                if t == T::T_DropdbStmt {
                    out.push(Hit::new(Rule::BanNonTransactional, format!("DROP DATABASE {NOT_IN_TXN}")));
                }
            }
            T::T_TruncateStmt => out.push(Hit::of(Rule::BanTruncate)),
            T::T_DeleteStmt => {
                let s = &*(node as *mut pg_sys::DeleteStmt);
                out.push(Hit::of(Rule::BanDelete));
                walk_with(s.withClause, depth, out);
            }
            T::T_UpdateStmt => {
                let s = &*(node as *mut pg_sys::UpdateStmt);
                out.push(Hit::of(Rule::BanUpdate));
                walk_with(s.withClause, depth, out);
            }
            T::T_InsertStmt => {
                let s = &*(node as *mut pg_sys::InsertStmt);
                if !s.onConflictClause.is_null()
                    && (*s.onConflictClause).action == pg_sys::OnConflictAction::ONCONFLICT_UPDATE
                {
                    out.push(Hit::new(Rule::BanUpdate, "INSERT … ON CONFLICT DO UPDATE rewrites existing rows; use ON CONFLICT DO NOTHING"));
                }
                walk_with(s.withClause, depth, out);
                walk(s.selectStmt, depth + 1, out);
            }
            T::T_MergeStmt => {
                let s = &*(node as *mut pg_sys::MergeStmt);
                for w in nodes(s.mergeWhenClauses) {
                    match (*(w as *mut pg_sys::MergeWhenClause)).commandType {
                        pg_sys::CmdType::CMD_UPDATE => out.push(Hit::new(Rule::BanUpdate, "MERGE … THEN UPDATE rewrites rows")),
                        pg_sys::CmdType::CMD_DELETE => out.push(Hit::new(Rule::BanDelete, "MERGE … THEN DELETE removes rows")),
                        _ => {}
                    }
                }
                walk_with(s.withClause, depth, out);
            }
            T::T_SelectStmt => {
                let s = &*(node as *mut pg_sys::SelectStmt);
                walk_with(s.withClause, depth, out);
                if !s.intoClause.is_null() {
                    out.push(Hit::new(Rule::RequireIfNotExists, "SELECT … INTO creates a table and fails when it exists; use CREATE TABLE IF NOT EXISTS … AS"));
                }
                walk(s.larg as *mut pg_sys::Node, depth + 1, out);
                walk(s.rarg as *mut pg_sys::Node, depth + 1, out);
            }
            T::T_AlterTableStmt => {
                let s = &*(node as *mut pg_sys::AlterTableStmt);
                for c in nodes(s.cmds) {
                    let cmd = &*(c as *mut pg_sys::AlterTableCmd);
                    use pg_sys::AlterTableType as A;
                    let what = match cmd.subtype {
                        A::AT_DropColumn => Some("DROP COLUMN"),
                        A::AT_DropConstraint => Some("DROP CONSTRAINT"),
                        A::AT_DropNotNull => Some("DROP NOT NULL"),
                        A::AT_DropIdentity => Some("DROP IDENTITY"),
                        A::AT_DropExpression => Some("DROP EXPRESSION"),
                        A::AT_DropInherit => Some("NO INHERIT"),
                        A::AT_DetachPartition => Some("DETACH PARTITION"),
                        _ => None,
                    };
                    let what = what.or((cmd.subtype == A::AT_ColumnDefault && cmd.def.is_null()).then_some("ALTER COLUMN … DROP DEFAULT"));
                    let what = what.or(match cmd.subtype {
                        A::AT_DisableTrig | A::AT_DisableTrigAll | A::AT_DisableTrigUser => Some("DISABLE TRIGGER"),
                        // fires only under session_replication_role = replica: off in normal use
                        A::AT_EnableReplicaTrig => Some("ENABLE REPLICA TRIGGER"),
                        A::AT_DisableRule => Some("DISABLE RULE"),
                        A::AT_EnableReplicaRule => Some("ENABLE REPLICA RULE"),
                        // not crash-safe and not replicated: the data can vanish
                        A::AT_SetUnLogged => Some("SET UNLOGGED"),
                        A::AT_AlterConstraint => weakened_constraint(cmd.def),
                        _ => None,
                    });
                    match cmd.subtype {
                        A::AT_AlterColumnType => out.push(Hit::of(Rule::BanAlterType)),
                        #[cfg(any(feature = "pg17", feature = "pg18"))]
                        A::AT_SetExpression => out.push(Hit::new(Rule::BanAlterType, "ALTER COLUMN … SET EXPRESSION (PostgreSQL 17+) recomputes every row of a generated column; not a repair")),
                        A::AT_ChangeOwner => out.push(Hit::new(Rule::BanGrant, "ALTER TABLE … OWNER TO changes who controls the table and its privileges")),
                        A::AT_DisableRowSecurity | A::AT_NoForceRowSecurity => out.push(Hit::new(Rule::BanGrant, "disabling row-level security changes who sees which rows")),
                        A::AT_SetRelOptions | A::AT_ResetRelOptions
                            if widens_view_rights(cmd.def, cmd.subtype == A::AT_ResetRelOptions) =>
                        {
                            out.push(Hit::new(Rule::BanGrant, "turning security_invoker or security_barrier off makes the view read with its owner's privileges or leak rows: a privilege change"))
                        }
                        A::AT_EnableRowSecurity | A::AT_ForceRowSecurity => out.push(Hit::new(Rule::BanGrant, "enabling row-level security hides rows from every role without a policy (the application sees an empty table)")),
                        _ => {}
                    }
                    if let Some(what) = what {
                        out.push(Hit::new(Rule::BanAlterTableDrop, format!("ALTER TABLE … {what} removes structure or data; a repair playbook only adds")));
                    }
                    if cmd.subtype == A::AT_AddColumn && !cmd.missing_ok {
                        out.push(Hit::new(Rule::RequireIfNotExists, "ALTER TABLE … ADD COLUMN fails on a second run; write ADD COLUMN IF NOT EXISTS"));
                    }
                    if cmd.subtype == A::AT_DetachPartition && !cmd.def.is_null() {
                        let pc = cmd.def as *mut pg_sys::PartitionCmd;
                        if (*pc).concurrent {
                            out.push(Hit::new(Rule::BanNonTransactional, format!("DETACH PARTITION … CONCURRENTLY {NOT_IN_TXN}")));
                        }
                    }
                }
            }
            T::T_AlterFunctionStmt => {
                if security_definer((*(node as *mut pg_sys::AlterFunctionStmt)).actions) {
                    out.push(Hit::new(Rule::BanGrant, DEFINER));
                }
            }
            T::T_CreatePolicyStmt | T::T_AlterPolicyStmt => out.push(Hit::new(Rule::BanGrant, "a row-level security policy changes who sees and changes which rows: a privilege change")),
            T::T_ListenStmt | T::T_UnlistenStmt => out.push(Hit::new(Rule::BanSessionState, "LISTEN/UNLISTEN changes the caller's session after the run")),
            T::T_GrantStmt | T::T_AlterDefaultPrivilegesStmt => out.push(Hit::of(Rule::BanGrant)),
            T::T_AlterOwnerStmt => out.push(Hit::new(Rule::BanGrant, "ALTER … OWNER TO changes who controls an object and its privileges")),
            T::T_RenameStmt | T::T_AlterObjectSchemaStmt => out.push(Hit::new(Rule::BanRename, format!("{} moves or renames an object: the application would see a missing or an empty replacement object", super::sqlparse::command_tag(NodeRef::new(node))))),
            T::T_AlterSystemStmt => out.push(Hit::of(Rule::BanAlterSystem)),
            T::T_TransactionStmt => out.push(Hit::of(Rule::BanTransactionControl)),
            T::T_VariableSetStmt => {
                let s = &*(node as *mut pg_sys::VariableSetStmt);
                let name = text(s.name).to_ascii_lowercase();
                if s.kind == pg_sys::VariableSetKind::VAR_SET_MULTI && name.starts_with("transaction") {
                    out.push(Hit::new(Rule::BanTransactionControl, "SET TRANSACTION changes the run's transaction; remove it"));
                } else if matches!(name.as_str(), "role" | "session_authorization") {
                    out.push(Hit::of(Rule::BanRoleChange));
                } else if s.kind == pg_sys::VariableSetKind::VAR_RESET_ALL {
                    out.push(Hit::new(Rule::BanSet, "RESET ALL resets the caller's session settings; remove it"));
                } else if !(s.is_local
                    && matches!(s.kind, pg_sys::VariableSetKind::VAR_SET_VALUE | pg_sys::VariableSetKind::VAR_SET_DEFAULT)
                    && matches!(name.as_str(), "lock_timeout" | "statement_timeout"))
                {
                    out.push(Hit::new(Rule::BanSet, format!("SET/RESET {name} changes the session; only SET LOCAL lock_timeout / statement_timeout are allowed (or use the lock-timeout / statement-timeout headers)")));
                }
            }
            T::T_CreateRoleStmt | T::T_AlterRoleStmt | T::T_AlterRoleSetStmt | T::T_DropRoleStmt | T::T_GrantRoleStmt
            | T::T_ReassignOwnedStmt => {
                out.push(Hit::of(Rule::BanRoleManagement));
                if t == T::T_DropRoleStmt {
                    out.push(Hit::new(Rule::BanDrop, "DROP ROLE removes a role"));
                }
            }
            T::T_CopyStmt => {
                let s = &*(node as *mut pg_sys::CopyStmt);
                if s.is_program {
                    out.push(Hit::of(Rule::BanCopyProgram));
                } else if !s.filename.is_null() {
                    out.push(Hit::new(Rule::BanCopyProgram, "COPY to or from a server file reads or writes the server's file system; never in a playbook"));
                }
                walk(s.query, depth + 1, out);
            }
            T::T_VacuumStmt => {
                if (*(node as *mut pg_sys::VacuumStmt)).is_vacuumcmd {
                    out.push(Hit::new(Rule::BanNonTransactional, format!("VACUUM {NOT_IN_TXN}; run it separately (ANALYZE is fine)")));
                }
            }
            T::T_IndexStmt => {
                let s = &*(node as *mut pg_sys::IndexStmt);
                if s.concurrent {
                    out.push(Hit::new(Rule::BanNonTransactional, format!("CREATE INDEX CONCURRENTLY {NOT_IN_TXN}; use CREATE INDEX IF NOT EXISTS, or an online playbook (-- mode: online)")));
                }
                if !s.if_not_exists {
                    let hint = if s.idxname.is_null() { "name the index and write CREATE INDEX IF NOT EXISTS name ON …" } else { "write CREATE INDEX IF NOT EXISTS" };
                    out.push(Hit::new(Rule::RequireIfNotExists, format!("CREATE INDEX fails or duplicates on a second run; {hint}")));
                }
            }
            T::T_ReindexStmt => {
                let s = &*(node as *mut pg_sys::ReindexStmt);
                if option_names(s.params).iter().any(|o| o == "concurrently") {
                    out.push(Hit::new(Rule::BanNonTransactional, format!("REINDEX CONCURRENTLY {NOT_IN_TXN}; use an online playbook (-- mode: online)")));
                } else if s.kind != pg_sys::ReindexObjectType::REINDEX_OBJECT_INDEX && s.kind != pg_sys::ReindexObjectType::REINDEX_OBJECT_TABLE {
                    out.push(Hit::new(Rule::BanNonTransactional, format!("REINDEX SCHEMA/DATABASE/SYSTEM {NOT_IN_TXN}")));
                }
            }
            T::T_ClusterStmt => {
                if (*(node as *mut pg_sys::ClusterStmt)).relation.is_null() {
                    out.push(Hit::new(Rule::BanNonTransactional, format!("CLUSTER without a table {NOT_IN_TXN}")));
                }
            }
            T::T_CreatedbStmt | T::T_CreateTableSpaceStmt | T::T_CreateSubscriptionStmt | T::T_AlterSubscriptionStmt => {
                out.push(Hit::new(Rule::BanNonTransactional, format!("{} {NOT_IN_TXN}; do it outside pg_repair", super::sqlparse::command_tag(NodeRef::new(node)))));
            }
            T::T_AlterDatabaseSetStmt | T::T_AlterDatabaseStmt | T::T_LoadStmt => {
                out.push(Hit::new(Rule::BanSet, format!("{} changes configuration beyond this run; not a playbook's job", super::sqlparse::command_tag(NodeRef::new(node)))));
            }
            T::T_DiscardStmt => {
                if (*(node as *mut pg_sys::DiscardStmt)).target == pg_sys::DiscardMode::DISCARD_ALL {
                    out.push(Hit::new(Rule::BanNonTransactional, format!("DISCARD ALL {NOT_IN_TXN}, and resets the caller's session")));
                } else {
                    out.push(Hit::new(Rule::BanSet, "DISCARD resets parts of the caller's session; remove it"));
                }
            }
            T::T_AlterDomainStmt => {
                let sub = (*(node as *mut pg_sys::AlterDomainStmt)).subtype as u8;
                if sub == b'X' || sub == b'N' {
                    out.push(Hit::new(Rule::BanDrop, "ALTER DOMAIN … DROP CONSTRAINT / DROP NOT NULL removes a rule the data relies on"));
                }
            }
            T::T_AlterExtensionContentsStmt => {
                if (*(node as *mut pg_sys::AlterExtensionContentsStmt)).action < 0 {
                    out.push(Hit::new(Rule::BanDrop, "ALTER EXTENSION … DROP detaches an object from its extension"));
                }
            }
            T::T_CreateForeignTableStmt => {
                if !(*(node as *mut pg_sys::CreateForeignTableStmt)).base.if_not_exists {
                    out.push(Hit::new(Rule::RequireIfNotExists, "CREATE FOREIGN TABLE fails on a second run; write CREATE FOREIGN TABLE IF NOT EXISTS"));
                }
            }
            T::T_CreateStmt => {
                if !(*(node as *mut pg_sys::CreateStmt)).if_not_exists {
                    out.push(Hit::of(Rule::RequireIfNotExists));
                }
            }
            T::T_CreateSchemaStmt => {
                let s = &*(node as *mut pg_sys::CreateSchemaStmt);
                if !s.if_not_exists {
                    out.push(Hit::new(Rule::RequireIfNotExists, "CREATE SCHEMA fails on a second run; write CREATE SCHEMA IF NOT EXISTS"));
                }
                for e in nodes(s.schemaElts) {
                    walk(e, depth + 1, out);
                }
            }
            T::T_CreateExtensionStmt => {
                let name = text((*(node as *mut pg_sys::CreateExtensionStmt)).extname).to_ascii_lowercase();
                if BANNED_EXTENSIONS.contains(&name.as_str()) {
                    out.push(Hit::new(Rule::BanExtension, format!("CREATE EXTENSION {name}: it reaches outside the transaction or the server's file system (remote sessions, files, untrusted code); never in a playbook")));
                }
                if !(*(node as *mut pg_sys::CreateExtensionStmt)).if_not_exists {
                    out.push(Hit::new(Rule::RequireIfNotExists, "CREATE EXTENSION fails on a second run; write CREATE EXTENSION IF NOT EXISTS"));
                }
            }
            T::T_CreateSeqStmt => {
                if !(*(node as *mut pg_sys::CreateSeqStmt)).if_not_exists {
                    out.push(Hit::new(Rule::RequireIfNotExists, "CREATE SEQUENCE fails on a second run; write CREATE SEQUENCE IF NOT EXISTS"));
                }
            }
            T::T_CreateTableAsStmt => {
                let s = &*(node as *mut pg_sys::CreateTableAsStmt);
                if !s.if_not_exists {
                    out.push(Hit::new(Rule::RequireIfNotExists, "CREATE TABLE/MATERIALIZED VIEW … AS fails on a second run; add IF NOT EXISTS"));
                }
                walk(s.query, depth + 1, out);
            }
            T::T_CreateFunctionStmt => {
                let s = &*(node as *mut pg_sys::CreateFunctionStmt);
                if !s.replace {
                    out.push(Hit::of(Rule::RequireOrReplace));
                }
                if security_definer(s.options) {
                    out.push(Hit::new(Rule::BanGrant, DEFINER));
                }
                if s.sql_body.is_null() {
                    out.push(Hit::new(Rule::WarnDynamicSql, "function body: its contents cannot be verified statically (runtime enforcement still applies while the playbook runs)"));
                } else {
                    // BEGIN ATOMIC … END: parsed already, so check its statements like any other.
                    let mut stack = vec![s.sql_body];
                    while let Some(n) = stack.pop() {
                        if tag(n) == Some(T::T_List) {
                            stack.extend(nodes(n as *mut pg_sys::List));
                        } else {
                            walk(n, depth + 1, out);
                        }
                    }
                }
            }
            T::T_ViewStmt => {
                if !(*(node as *mut pg_sys::ViewStmt)).replace {
                    out.push(Hit::new(Rule::RequireOrReplace, "CREATE VIEW fails on a second run; write CREATE OR REPLACE VIEW"));
                }
            }
            T::T_CreateTrigStmt => {
                if !(*(node as *mut pg_sys::CreateTrigStmt)).replace {
                    out.push(Hit::new(Rule::RequireOrReplace, "CREATE TRIGGER fails on a second run; write CREATE OR REPLACE TRIGGER"));
                }
            }
            T::T_CreateEventTrigStmt | T::T_AlterEventTrigStmt => {
                out.push(Hit::of(Rule::BanEventTrigger));
            }
            T::T_RuleStmt => {
                let s = &*(node as *mut pg_sys::RuleStmt);
                out.push(Hit::of(Rule::BanRule));
                for a in nodes(s.actions) {
                    walk(a, depth + 1, out);
                }
            }
            T::T_DoStmt => out.push(Hit::of(Rule::WarnDynamicSql)),
            T::T_CallStmt => out.push(Hit::new(Rule::WarnDynamicSql, "CALL runs a procedure whose contents cannot be verified statically")),
            T::T_ExecuteStmt => out.push(Hit::new(Rule::WarnDynamicSql, "EXECUTE runs a prepared statement whose contents are not in this file")),
            T::T_ExplainStmt => {
                let s = &*(node as *mut pg_sys::ExplainStmt);
                walk(s.query, depth + 1, out);
            }
            T::T_PrepareStmt => {
                out.push(Hit::of(Rule::BanSessionState));
                walk((*(node as *mut pg_sys::PrepareStmt)).query, depth + 1, out)
            }
            T::T_DeclareCursorStmt => {
                out.push(Hit::of(Rule::BanCursor));
                walk((*(node as *mut pg_sys::DeclareCursorStmt)).query, depth + 1, out)
            }
            _ => {}
        }
    }
}

/// A plain query: SELECT / VALUES / TABLE without INTO, row locks or data-modifying WITH.
pub fn is_read_only_query(node: NodeRef<'_>) -> bool {
    if node.tag() != Some(T::T_SelectStmt) {
        return false;
    }
    // SAFETY: a live node (NodeRef's contract) whose tag says it is a SelectStmt.
    unsafe {
        let s = &*(node.as_ptr() as *mut pg_sys::SelectStmt);
        s.intoClause.is_null() && s.lockingClause.is_null() && classify(node).is_empty()
    }
}

/// RESET ALL and DISCARD (session state that reverting settings cannot bring back), and
/// settings that persist beyond the session (ALTER DATABASE … SET, LOAD).
///
/// # Safety
/// `node` is null or a live node.
unsafe fn resets_session(node: *mut pg_sys::Node) -> bool {
    // SAFETY: null or live (caller's contract), cast to VariableSetStmt only on its tag.
    unsafe {
        match tag(node) {
            Some(
                T::T_DiscardStmt
                | T::T_AlterDatabaseSetStmt
                | T::T_AlterDatabaseStmt
                | T::T_LoadStmt,
            ) => true,
            Some(T::T_VariableSetStmt) => {
                (*(node as *mut pg_sys::VariableSetStmt)).kind
                    == pg_sys::VariableSetKind::VAR_RESET_ALL
            }
            _ => false,
        }
    }
}

/// PostgreSQL 18's ALTER CONSTRAINT can switch enforcement off (`NOT ENFORCED`: the constraint
/// stays in the catalog but checks nothing) or stop a NOT NULL constraint's inheritance (`NO
/// INHERIT`): both remove a guarantee as surely as DROP CONSTRAINT. Before 18, ALTER CONSTRAINT
/// only changes deferrability.
///
/// # Safety
/// `def` is null or a live node (AlterTableCmd.def).
#[cfg(feature = "pg18")]
unsafe fn weakened_constraint(def: *mut pg_sys::Node) -> Option<&'static str> {
    // SAFETY: read only when non-null, and then live (caller's contract).
    if def.is_null() || unsafe { (*def).type_ } != T::T_ATAlterConstraint {
        return None;
    }
    // SAFETY: checked to be an ATAlterConstraint node by its tag just above.
    let c = unsafe { &*(def as *mut pg_sys::ATAlterConstraint) };
    if c.alterEnforceability && !c.is_enforced {
        Some("ALTER CONSTRAINT … NOT ENFORCED")
    } else if c.alterInheritability && c.noinherit {
        Some("ALTER CONSTRAINT … NO INHERIT")
    } else {
        None
    }
}

/// # Safety
/// None needed (nothing is read); unsafe only to match the PostgreSQL 18 version.
#[cfg(not(feature = "pg18"))]
unsafe fn weakened_constraint(_def: *mut pg_sys::Node) -> Option<&'static str> {
    None
}

/// Rules whose statements are refused at runtime while a playbook runs, whatever path reached
/// them (DO, functions, EXECUTE, triggers).
pub fn runtime_refusal(node: NodeRef<'_>) -> Option<Hit> {
    let hits = classify_runtime(node);
    hits.into_iter().next()
}

/// The hits the runtime refuses in a utility statement, by each rule's [`Runtime`]: DELETE and
/// UPDATE are judged on the executor's plan instead (hooks.rs), so an EXPLAIN of one is not.
fn classify_runtime(tree: NodeRef<'_>) -> Vec<Hit> {
    let node = tree.as_ptr();
    let mut out: Vec<Hit> = classify(tree)
        .into_iter()
        .filter(|h| match h.rule.runtime() {
            Runtime::Always => true,
            Runtime::UnlessWaived => !crate::enforcement::runtime_allows(h.rule),
            // Only the session-wide resets: other SETs are undone when the run ends.
            // SAFETY: `node` is null or live for this call (NodeRef's contract).
            Runtime::SessionOnly => unsafe { resets_session(node) },
            Runtime::PlanUnlessWaived | Runtime::No => false,
        })
        .collect();
    // SAFETY: `node` is null or live for this call (NodeRef's contract), cast to
    // VariableSetStmt only on its tag; its name is a C string or null.
    unsafe {
        if tag(node) == Some(T::T_VariableSetStmt) {
            let name = text((*(node as *mut pg_sys::VariableSetStmt)).name).to_ascii_lowercase();
            if name == "session_replication_role" {
                out.push(Hit::new(
                    Rule::BanSet,
                    "changing session_replication_role would silence triggers",
                ));
            }
        }
    }
    out
}
