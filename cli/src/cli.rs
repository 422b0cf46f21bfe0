//! Command-line syntax (clap derive). Each subcommand's doc comment is its `--help` text, with
//! an example.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

pub const ABOUT: &str =
    "Lint, install, preview and execute pg_repair playbooks; read and verify the audit \
     trail; run validation checks, baselines and the migration gate";

pub const LONG_ABOUT: &str = "\
pgrepair is the command-line client of the pg_repair PostgreSQL extension. It registers repair
playbooks (reviewed, idempotent SQL files), shows what a playbook would do and which guards would
pass, executes it when every guard passes, and reads the tamper-evident audit trail.

Connection: --dsn / DATABASE_URL (a postgres:// URL or key=value conninfo), then the service
entry (service= or PGSERVICE, in PGSERVICEFILE or ~/.pg_service.conf), then the libpq
environment: PGHOST (a host name or a socket directory; default /var/run/postgresql if it exists,
else localhost), PGPORT (5432), PGUSER ($USER), PGDATABASE (the user name), PGPASSWORD or
~/.pgpass, PGCONNECT_TIMEOUT. TLS as in libpq: sslmode disable, allow, prefer (default), require,
verify-ca, verify-full; sslrootcert (default ~/.postgresql/root.crt), sslcert/sslkey (default
~/.postgresql/postgresql.crt/.key); PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY.

Errors are one line on stderr: `pgrepair: <message> [SQLSTATE <code>]`, then indented `detail:`
and `hint:` lines when the server gave them. With --json, results and errors alike are JSON on
stdout; an error is {\"error\": {\"sqlstate\", \"message\", \"detail\", \"hint\", ...}}.";

/// The full `pgrepair` command as `--help` shows it: the derived syntax plus the exit-code table
/// in the long description. The man page and shell completions (bin/pgrepair-gen-assets.rs) are
/// generated from this same value, so they cannot drift from the binary.
pub fn command() -> clap::Command {
    Cli::command().long_about(format!(
        "{}\n\n{}",
        LONG_ABOUT,
        crate::exit::help_section().trim_end()
    ))
}

#[derive(Debug, Parser)]
#[command(name = "pgrepair", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Connection string: a URL (postgres://user@host:5432/db) or key=value conninfo
    /// ("host=db1 dbname=app sslmode=verify-full"). Fields it leaves out come
    /// from the service file entry and PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSSLMODE,
    /// PGSSLROOTCERT, PGSSLCERT, PGSSLKEY like libpq.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "DSN"
    )]
    pub dsn: Option<String>,

    /// Print machine-readable JSON on stdout, for results and for errors.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the canonical hash of playbook/check files (offline, no connection).
    ///
    /// The hash is the SHA-256 of the file's canonical JSON; it is the value `execute --hash`
    /// expects and equals what the server computes on `install`.
    ///
    /// Output: `<hash>  <id>  <file>` per file. With --json: [{file, id, kind, hash, canonical}].
    ///
    /// Example:
    ///   pgrepair hash playbooks/intent_issue_tables.sql
    #[command(verbatim_doc_comment)]
    Hash {
        /// Playbook or check files (.sql).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },

    /// Lint playbook/check files with the server's own parser (repair.lint), like a compiler.
    ///
    /// Each file's header is parsed locally first: a header problem is reported as
    /// `FILE:LINE: parse error: message` and that file is not sent. The others go through
    /// repair.lint() (needs EXECUTE on it), which parses the body with PostgreSQL's parser and
    /// applies the lint rules (DROP, TRUNCATE, DELETE, UPDATE, non-idempotent CREATE, ...).
    ///
    /// Output: one `FILE:LINE:COL: severity[rule] message` line per finding (line and column
    /// count from the top of the file, header included), then `N errors, M warnings in K files`.
    /// With --json: [{file, findings: [{rule, severity, statement, line, col, message}],
    /// parse_error: null | {line, message}}].
    ///
    /// Exit 1 if any file has an error finding, a parse error or cannot be read; warnings alone
    /// exit 0.
    ///
    /// Example:
    ///   pgrepair lint playbooks/*.sql
    ///   pgrepair --json lint playbooks/intent_issue_tables.sql | jq '.[].findings[]'
    #[command(verbatim_doc_comment)]
    Lint {
        /// Playbook or check files (.sql).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },

    /// Register every *.sql file of a directory in one transaction.
    ///
    /// All files (sorted by name, not recursive) are parsed locally first; any parse error is
    /// reported as FILE:LINE: message and nothing is sent. Then each file goes through
    /// repair.register() in a single transaction: one server error rolls everything back.
    /// Reports each file as new, unchanged or updated.
    ///
    /// Example:
    ///   pgrepair install playbooks/
    ///   PGHOST=db1 PGDATABASE=app pgrepair install --json
    #[command(verbatim_doc_comment)]
    Install {
        /// Directory holding the playbook and check files.
        #[arg(default_value = "playbooks", value_name = "DIR")]
        dir: PathBuf,
    },

    /// List the registered playbooks (repair.playbooks).
    ///
    /// Example:
    ///   pgrepair list
    ///   pgrepair --json list | jq -r '.[].id'
    #[command(verbatim_doc_comment)]
    List,

    /// Show what a playbook would do, and which guards would pass for you, without running it.
    ///
    /// Shows the registered hash (the value `execute --hash` needs), each guard's verdict, the
    /// requires-before/after objects that are missing now, the statements, lint findings and
    /// waivers. Writes nothing.
    ///
    /// Example:
    ///   pgrepair preview intent_issue_tables
    #[command(verbatim_doc_comment)]
    Preview {
        /// Playbook id.
        id: String,
    },

    /// Execute a registered playbook when every guard passes.
    ///
    /// --hash must equal the registered hash (see `preview` or `hash FILE`), so you run exactly
    /// the SQL you reviewed. With --backup-dir, pg_dump -Fc writes
    /// DIR/<db>-<ID>-<UTC yyyymmddThhmmssZ>.dump first (nothing runs if it fails) and only the
    /// newest --keep backups of that database and playbook are kept.
    ///
    /// Exit 0 on SUCCESS; 1 when the run came back FAILED or a guard refused it.
    ///
    /// An online playbook (`-- mode: online`) runs one statement at a time, each in its own
    /// transaction (repair.online_begin, the statements, repair.online_finish); a `-- batch`
    /// statement runs again and again until it affects no row. Progress goes to stderr, one
    /// line per statement and batch (a status line on a terminal); stdout gets the result only.
    /// A failed statement stops the run: the statements before it stay in effect (exit 1).
    /// Ctrl-C cancels the running statement and aborts the run (ABORTED, exit 1); a second
    /// Ctrl-C exits 130 at once. A lost connection leaves the run INCOMPLETE in the audit
    /// (exit 2). Every statement is idempotent: run the playbook again.
    ///
    /// Example:
    ///   pgrepair execute intent_issue_tables \
    ///     --hash 3f6c…e1 --reason "INC-1234: tables lost in restore" \
    ///     --backup-dir /var/backups/pgrepair --keep 5
    #[command(verbatim_doc_comment)]
    Execute(ExecuteArgs),

    /// Show recent runs from the audit trail (repair.runs), newest first.
    ///
    /// An online run is one line, with its closing status (SUCCESS, FAILED, ABORTED) or
    /// INCOMPLETE when nothing closed it yet (still running, or its session ended), and its
    /// mode, batches and rows affected. A run that consumed an approval shows its id (first 8
    /// characters; `approval_id` in --json).
    ///
    /// Example:
    ///   pgrepair runs --playbook intent_issue_tables --limit 5
    #[command(verbatim_doc_comment)]
    Runs {
        /// Only runs of this playbook.
        #[arg(long, value_name = "ID")]
        playbook: Option<String>,
        /// How many runs to show.
        #[arg(long, default_value_t = 20, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
    },

    /// Approve a playbook at its current hash, for someone else to execute (four eyes).
    ///
    /// Calls repair.approve(). You must be a member of a role listed in repair.approvers. The
    /// approval is of this exact hash: a new version of the playbook needs a new approval.
    /// Where repair.require_approval asks for one (`prod`: runs on a database declared prod;
    /// `always`), execute and online runs are refused unless an unexpired, unused approval of
    /// the current hash exists, given by a session user other than the executor's. A run
    /// consumes the approval it uses.
    ///
    /// --valid-for is how long the approval stays usable: `30m`, `2h`, `90s`, `1d`, `1h30m`
    /// (default: the server's, 4 hours; at most 24 hours).
    ///
    /// Output: the approval id and until when it is valid. With --json: {approval_id,
    /// playbook_id, hash, valid_until}.
    ///
    /// Exit 0 when recorded; 1 when refused (42501 not an approver, RP006 HASH_MISMATCH: not
    /// the current hash, RP005 unknown or retired playbook, RP004 reason, 22023 --valid-for
    /// out of range); 2 on a usage or connection error.
    ///
    /// Example:
    ///   pgrepair approve intent_issue_tables --hash 3f6c…e1 \
    ///     --reason "CHG-88: reviewed with alice" --valid-for 2h
    #[command(verbatim_doc_comment)]
    Approve(ApproveArgs),

    /// List approvals (repair.approval_status), newest first.
    ///
    /// State: usable (may be consumed by a run), used (consumed by the run shown), expired,
    /// revoked, or stale (the playbook's current hash is no longer the approved one).
    ///
    /// Output: approval id (first 8 characters), playbook, version, hash (12 characters),
    /// approved by, valid until, state, used by run (8 characters). With --json: the rows with
    /// full values: [{approval_id, playbook_id, version, hash, approved_by, approved_at,
    /// valid_until, reason, state, used_by_run, revoked_by, revoked_at, revoke_reason}].
    ///
    /// Example:
    ///   pgrepair approvals intent_issue_tables
    ///   pgrepair --json approvals | jq '.[] | select(.state == "usable")'
    #[command(verbatim_doc_comment)]
    Approvals {
        /// Only approvals of this playbook.
        #[arg(value_name = "ID")]
        playbook: Option<String>,
        /// How many approvals to show.
        #[arg(long, default_value_t = 50, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
    },

    /// Revoke an approval so that no run can use it.
    ///
    /// Calls repair.revoke_approval() (approvers only); the revocation is appended to the
    /// approvals' audit chain. APPROVAL_ID is the full id, or a unique prefix of at least 8 hex
    /// digits as `pgrepair approvals` shows it (looked up in repair.approval_status).
    ///
    /// Exit 0 when revoked; 1 when refused (42501 not an approver, RP004 reason, 42704 no such
    /// approval); 2 on a usage or connection error.
    ///
    /// Example:
    ///   pgrepair revoke-approval 0f8fad5b --reason "CHG-88 postponed"
    #[command(verbatim_doc_comment)]
    RevokeApproval {
        /// The approval's id (full, or a unique prefix of 8 or more hex digits).
        #[arg(value_name = "APPROVAL_ID")]
        approval_id: String,
        /// Why it is revoked; recorded with the revocation.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },

    /// Show refused calls on record (repair.refusals), newest first.
    ///
    /// Every guard refusal (execute, online runs, approve, revoke-approval, the migration gate,
    /// retire) is recorded with its time, session user, playbook, guard, SQLSTATE, the reason
    /// given, application_name and client address, even when the caller rolled back. Recording
    /// is asynchronous: a refusal appears within about a second. When refusals came too fast to
    /// record, a row says how many were dropped.
    ///
    /// --since is a duration (`10m`, `2h`, `1d`: that long ago) or a timestamp (`2026-05-01`,
    /// `2026-05-01 14:00`, RFC 3339 `2026-05-01T14:00:00Z`; without a zone it is read in the
    /// session's time zone).
    ///
    /// Output: time, session user, function, playbook, guard, sqlstate, reason, client
    /// address, application. With --json: every column of repair.refusals (refusal_id, seq,
    /// chain_key, refused_at, function, session_user_name, playbook_id, guard, sqlstate,
    /// message, reason, request_id, application_name, client_addr, dropped, prev_hash,
    /// row_hash).
    ///
    /// Example:
    ///   pgrepair refusals --since 2h
    ///   pgrepair --json refusals --playbook intent_issue_tables --limit 10
    #[command(verbatim_doc_comment)]
    Refusals {
        /// Only refusals at or after WHEN: a duration ago (`10m`, `2h`, `1d`) or a timestamp.
        #[arg(long, value_name = "WHEN", value_parser = crate::duration::parse_since)]
        since: Option<crate::duration::Since>,
        /// Only refusals naming this playbook.
        #[arg(long, value_name = "ID")]
        playbook: Option<String>,
        /// How many refusals to show.
        #[arg(long, default_value_t = 100, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
    },

    /// Audit trail commands.
    ///
    /// Example:
    ///   pgrepair audit verify --expect-head "$(cat last-head.txt)"
    #[command(verbatim_doc_comment)]
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },

    /// Run the validation checks and print the GO / HOLD / NO-GO decision.
    ///
    /// Calls repair.run_checks(): without --tag every check runs, the built-ins
    /// (builtin.fk_type_mismatch, builtin.fk_missing_index, builtin.invalid_index,
    /// builtin.table_without_pk) and every registered check file. With --tag only the checks
    /// carrying one of the tags run; the built-ins carry `builtin` plus a category (`fk`,
    /// `index`, `schema`), so `--tag builtin` or `--tag fk` selects them. The run is
    /// recorded; repair.decision() gives GO (all pass), HOLD (only 1-2 important failures) or
    /// NO-GO (any critical failure, or 3+ important), and the score passed/total.
    ///
    /// Output: a check / severity / status / violations / error table, then
    /// `decision: GO  score: 5/5`. With --json: {run_id, decision, score, passed, total,
    /// failed_critical, failed_important, checks: [{check_id, severity, status,
    /// violation_count, sample, error}]}.
    ///
    /// Exit 0 on GO, 4 on HOLD, 3 on NO-GO.
    ///
    /// Example:
    ///   pgrepair check --tag restore --tag billing
    ///   pgrepair --json check | jq '.checks[] | select(.status == "FAIL")'
    #[command(verbatim_doc_comment)]
    Check {
        /// Run only the checks with this tag (repeatable); built-ins: `builtin`, `fk`, `index`, `schema`.
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
    },

    /// Row-count baselines: capture exact counts under a label, verify the drift since.
    ///
    /// Example:
    ///   pgrepair baseline capture before-restore
    ///   pgrepair baseline verify before-restore || echo "row counts changed"
    #[command(verbatim_doc_comment)]
    Baseline {
        #[command(subcommand)]
        command: BaselineCommand,
    },

    /// The migration gate: may migrations run on this database, as this user?
    ///
    /// Calls repair.assert_migrations_allowed() (guards 1-3: the declared role must be valid,
    /// a replica is always refused, prod needs repair.allow_prod = on and --confirm-prod, and
    /// the session user must be an executor), then repair.authority() for mismatch warnings
    /// (skipped if unavailable). Run it before Alembic, Flyway, Sqitch or any migration script.
    ///
    /// Output: `allowed on <role> (session user <user>)` and one `warning:` line per authority
    /// warning. With --json: {allowed, gate, authority, warnings}.
    ///
    /// Exit 0 when allowed; 1 when refused (one line with the SQLSTATE: RP001 ROLE_UNDECLARED,
    /// RP002 ENV_DISABLED, 42501 NOT_AUTHORIZED).
    ///
    /// Example:
    ///   pgrepair gate && alembic upgrade head
    ///   pgrepair gate --confirm-prod
    #[command(verbatim_doc_comment)]
    Gate {
        /// Confirm migrations on a database declared `prod` (also needs repair.allow_prod = on).
        #[arg(long)]
        confirm_prod: bool,
    },

    /// Exit 99 when the database has no user tables (e.g. a restore that produced nothing).
    ///
    /// Counts user tables in the catalog directly (ordinary and partitioned tables outside
    /// pg_catalog, information_schema, pg_toast, the schema repair, and not owned by an
    /// extension), so it works with or without the extension and needs only CONNECT.
    /// Exit 0 when there is at least one, 99 when there is none.
    ///
    /// Example:
    ///   pg_restore -d app app.dump && pgrepair assert-not-empty
    #[command(verbatim_doc_comment)]
    AssertNotEmpty,
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Store the exact row count of every user table (or of the --table list) under LABEL.
    ///
    /// Counting is exact (count(*)), so it can take a while on big tables: the server reports
    /// progress as NOTICE lines on stderr at most once a second. Prints the number of tables
    /// and the total rows. With --json: {label, tables, total_rows, counts: [{table_name,
    /// row_count}]}.
    ///
    /// Example:
    ///   pgrepair baseline capture pre-migration
    ///   pgrepair baseline capture pre-fix --table public.orders --table billing.invoices
    #[command(verbatim_doc_comment)]
    Capture {
        /// Baseline label; the newest capture of a label is the one verified.
        label: String,
        /// Only this table (a regclass name such as public.orders; repeatable).
        #[arg(long = "table", value_name = "TABLE")]
        tables: Vec<String>,
    },

    /// Compare the current row counts with the newest capture of LABEL.
    ///
    /// No drift: prints `no drift`, exit 0. Drift: a table / status (changed, added, missing)
    /// / before / after table, exit 3. An unknown label is an error (exit 1, SQLSTATE 22023).
    /// With --json: {label, drift, tables: [{table_name, status, before, after}]}.
    ///
    /// Example:
    ///   pgrepair baseline verify pre-migration
    #[command(verbatim_doc_comment)]
    Verify {
        /// Baseline label.
        label: String,
    },
}

#[derive(Debug, Args)]
pub struct ExecuteArgs {
    /// Playbook id.
    pub id: String,

    /// The hash you reviewed; must equal the registered hash.
    #[arg(long, value_name = "HASH")]
    pub hash: String,

    /// Why this run is needed (ticket, incident); recorded in the audit trail (1-500 chars).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,

    /// Confirm a run on a database declared `prod` (also needs repair.allow_prod = on).
    #[arg(long)]
    pub confirm_prod: bool,

    /// Caller's correlation id (CI job, change request), recorded with the run.
    #[arg(long, env = "PGREPAIR_REQUEST_ID", value_name = "ID")]
    pub request_id: Option<String>,

    /// Take a pg_dump -Fc backup into this directory before running (created if missing).
    #[arg(long, env = "PGREPAIR_BACKUP_DIR", value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,

    /// With --backup-dir: how many backups of this database and playbook to keep.
    #[arg(long, default_value_t = 5, value_name = "N", requires = "backup_dir",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,

    /// The pg_dump program to use for --backup-dir.
    #[arg(
        long,
        env = "PGREPAIR_PG_DUMP",
        default_value = "pg_dump",
        value_name = "PATH"
    )]
    pub pg_dump: PathBuf,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Playbook id.
    pub id: String,

    /// The hash you reviewed; must be the playbook's current hash.
    #[arg(long, value_name = "HASH")]
    pub hash: String,

    /// Why this approval is given (ticket, change request); recorded with it.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,

    /// How long the approval stays usable: `30m`, `2h`, `90s`, `1d`, `1h30m` (default: the
    /// server's, 4 hours; at most 24 hours).
    #[arg(long, value_name = "DUR", value_parser = crate::duration::parse_span)]
    pub valid_for: Option<crate::duration::Span>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute every hash chain of the audit trail and print the audit head.
    ///
    /// Exit 1 when a chain is broken, or when --expect-head is given and differs from the
    /// current head (pin the head outside the database to detect deleted newest rows).
    ///
    /// Example:
    ///   pgrepair audit verify
    ///   pgrepair audit verify --expect-head 9b1d…c4
    ///   pgrepair audit verify --expect-head pinned-head.txt
    #[command(verbatim_doc_comment)]
    Verify {
        /// The audit head you pinned earlier: the 64 hex digits, or a file holding them.
        #[arg(long, env = "PGREPAIR_EXPECT_HEAD", value_name = "HASH|FILE")]
        expect_head: Option<String>,
    },
}
