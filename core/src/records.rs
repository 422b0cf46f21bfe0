//! The rows pg_repair chains into its audit trail, and what `repair.execute` returns, as types.
//!
//! A chained row's document is what `jsonb_strip_nulls(to_jsonb(row)) - 'prev_hash' - 'row_hash'`
//! gives for the stored row (TimeZone UTC); `RunRow::document` builds the same value from the typed
//! fields, so the server hashes a run without asking PostgreSQL to build it, and
//! `repair.verify_audit()` (which reads the stored rows) proves the two agree.

use crate::time::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A waiver a run relied on, as the run's `waivers` column records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaiverUsed {
    pub rule: String,
    pub until: String,
    pub because: String,
}

/// A run's status (the table's CHECK constraint). STARTED and ABORTED only occur in online runs:
/// the STARTED row opens the run, a SUCCESS, FAILED or ABORTED row naming it closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunStatus {
    Success,
    Failed,
    Started,
    Aborted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Success => "SUCCESS",
            RunStatus::Failed => "FAILED",
            RunStatus::Started => "STARTED",
            RunStatus::Aborted => "ABORTED",
        }
    }
}

/// One row of `repair.runs`, less the chain columns (`seq`, `prev_hash`, `row_hash`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub run_id: String,
    pub playbook_id: String,
    pub version: i32,
    pub expected_hash: String,
    pub actual_hash: String,
    /// PostgreSQL `TimestampTz` (microseconds since 2000-01-01 UTC).
    pub started_at: i64,
    pub finished_at: i64,
    pub session_user_name: String,
    pub current_user_name: String,
    pub executed_as: String,
    pub declared_role: String,
    pub confirm_prod: bool,
    pub reason: String,
    pub request_id: Option<String>,
    pub status: RunStatus,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub missing_before: Vec<String>,
    pub missing_after: Vec<String>,
    pub statements_total: i32,
    pub statements_executed: i32,
    pub duration_us: i64,
    pub waivers: Vec<WaiverUsed>,
    /// `Some("online")` for the rows of an online run; None (NULL) for a transactional run.
    pub mode: Option<String>,
    /// The online run this row belongs to: the STARTED row's run_id, in it and in its closing row.
    pub online_run: Option<String>,
    /// Online runs' closing rows: batches run and rows the statements affected.
    pub batches: Option<i32>,
    pub rows_affected: Option<i64>,
    /// The approval this run consumed (guard 8); None when none was required. Since 0.4.0.
    pub approval_id: Option<String>,
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

/// One column value of a chained row, typed as its column is.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(Option<String>),
    Int(Option<i32>),
    BigInt(Option<i64>),
    Bool(bool),
    Uuid(String),
    NullableUuid(Option<String>),
    /// PostgreSQL `TimestampTz`.
    Timestamp(i64),
    Json(Value),
    TextArray(Option<Vec<String>>),
}

impl Cell {
    pub fn text(s: &str) -> Cell {
        Cell::Text(Some(s.to_string()))
    }

    /// The value as `to_jsonb` writes it (TimeZone UTC); Null for SQL NULL.
    pub fn to_json(&self) -> Value {
        match self {
            Cell::Text(v) => v.clone().map_or(Value::Null, Value::String),
            Cell::Int(v) => v.map_or(Value::Null, Value::from),
            Cell::BigInt(v) => v.map_or(Value::Null, Value::from),
            Cell::Bool(b) => Value::Bool(*b),
            Cell::Uuid(u) => Value::String(u.clone()),
            Cell::NullableUuid(u) => u.clone().map_or(Value::Null, Value::String),
            Cell::Timestamp(t) => Value::String(Utc::from_pg(*t).jsonb_text()),
            Cell::Json(v) => v.clone(),
            Cell::TextArray(v) => v.as_ref().map_or(Value::Null, |a| {
                Value::Array(a.iter().cloned().map(Value::String).collect())
            }),
        }
    }

    /// SQL NULL (without building the JSON value).
    pub fn is_null(&self) -> bool {
        match self {
            Cell::Text(v) => v.is_none(),
            Cell::Int(v) => v.is_none(),
            Cell::BigInt(v) => v.is_none(),
            Cell::NullableUuid(v) => v.is_none(),
            Cell::TextArray(v) => v.is_none(),
            Cell::Json(v) => v.is_null(),
            Cell::Bool(_) | Cell::Uuid(_) | Cell::Timestamp(_) => false,
        }
    }

    /// The SQL type a parameter of this cell is cast to.
    pub fn sql_type(&self) -> &'static str {
        match self {
            Cell::Text(_) => "text",
            Cell::Int(_) => "integer",
            Cell::BigInt(_) => "bigint",
            Cell::Bool(_) => "boolean",
            Cell::Uuid(_) | Cell::NullableUuid(_) => "uuid",
            Cell::Timestamp(_) => "timestamptz",
            Cell::Json(_) => "jsonb",
            Cell::TextArray(_) => "text[]",
        }
    }
}

/// A row of a hash-chained table, less its chain columns (`seq`, `prev_hash`, `row_hash`).
pub trait Chained {
    /// `(column, value)` for every other column, in the table's order.
    fn cells(&self) -> Vec<(&'static str, Cell)>;

    /// The row's chained document with its sequence number: what
    /// `jsonb_strip_nulls(to_jsonb(row)) - 'prev_hash' - 'row_hash'` gives for the stored row.
    fn document(&self, seq: i64) -> Value {
        let mut m: Map<String, Value> = self
            .cells()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_json()))
            .collect();
        m.insert("seq".into(), Value::from(seq));
        let mut doc = Value::Object(m);
        strip_nulls(&mut doc);
        doc
    }
}

/// `jsonb_strip_nulls`: object fields whose value is null go, at every depth; array elements stay.
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

impl Chained for RunRow {
    fn cells(&self) -> Vec<(&'static str, Cell)> {
        vec![
            ("run_id", Cell::Uuid(self.run_id.clone())),
            ("playbook_id", Cell::text(&self.playbook_id)),
            ("version", Cell::Int(Some(self.version))),
            ("expected_hash", Cell::text(&self.expected_hash)),
            ("actual_hash", Cell::text(&self.actual_hash)),
            ("started_at", Cell::Timestamp(self.started_at)),
            ("finished_at", Cell::Timestamp(self.finished_at)),
            ("session_user_name", Cell::text(&self.session_user_name)),
            ("current_user_name", Cell::text(&self.current_user_name)),
            ("executed_as", Cell::text(&self.executed_as)),
            ("declared_role", Cell::text(&self.declared_role)),
            ("confirm_prod", Cell::Bool(self.confirm_prod)),
            ("reason", Cell::text(&self.reason)),
            ("request_id", Cell::Text(self.request_id.clone())),
            ("status", Cell::text(self.status.as_str())),
            ("error_code", Cell::Text(self.error_code.clone())),
            ("error_message", Cell::Text(self.error_message.clone())),
            ("missing_before", Cell::Json(strings(&self.missing_before))),
            ("missing_after", Cell::Json(strings(&self.missing_after))),
            ("statements_total", Cell::Int(Some(self.statements_total))),
            (
                "statements_executed",
                Cell::Int(Some(self.statements_executed)),
            ),
            ("duration_us", Cell::BigInt(Some(self.duration_us))),
            (
                "waivers",
                Cell::Json(serde_json::to_value(&self.waivers).unwrap_or(Value::Array(vec![]))),
            ),
            ("mode", Cell::Text(self.mode.clone())),
            ("online_run", Cell::NullableUuid(self.online_run.clone())),
            ("batches", Cell::Int(self.batches)),
            ("rows_affected", Cell::BigInt(self.rows_affected)),
            ("approval_id", Cell::NullableUuid(self.approval_id.clone())),
        ]
    }
}

/// A row of `repair.registry_events`: a version registered, updated or retired.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryEvent {
    pub event_id: String,
    pub playbook_id: String,
    pub version: i32,
    /// new, updated or retired
    pub action: &'static str,
    pub hash: String,
    pub reason: Option<String>,
    pub at: i64,
    pub session_user_name: String,
    pub current_user_name: String,
    /// None on a 0.1.0 schema (no such column; its events pin the hash only).
    pub version_digest: Option<Option<String>>,
}

impl Chained for RegistryEvent {
    fn cells(&self) -> Vec<(&'static str, Cell)> {
        let mut c = vec![
            ("event_id", Cell::Uuid(self.event_id.clone())),
            ("playbook_id", Cell::text(&self.playbook_id)),
            ("version", Cell::Int(Some(self.version))),
            ("action", Cell::text(self.action)),
            ("hash", Cell::text(&self.hash)),
            ("reason", Cell::Text(self.reason.clone())),
            ("at", Cell::Timestamp(self.at)),
            ("session_user_name", Cell::text(&self.session_user_name)),
            ("current_user_name", Cell::text(&self.current_user_name)),
        ];
        if let Some(d) = &self.version_digest {
            c.push(("version_digest", Cell::Text(d.clone())));
        }
        c
    }
}

/// A row of `repair.check_runs`: one repair.run_checks() call, in the single chain `check_runs`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRunRow {
    pub run_id: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub session_user_name: String,
    pub tags: Option<Vec<String>>,
    pub total: i32,
    pub passed: i32,
    pub failed_critical: i32,
    pub failed_important: i32,
    pub decision: String,
    pub score: String,
}

impl CheckRunRow {
    /// The one chain every check run is in.
    pub const CHAIN: &'static str = "check_runs";
}

impl Chained for CheckRunRow {
    fn cells(&self) -> Vec<(&'static str, Cell)> {
        vec![
            ("run_id", Cell::Uuid(self.run_id.clone())),
            ("chain_key", Cell::text(Self::CHAIN)),
            ("started_at", Cell::Timestamp(self.started_at)),
            ("finished_at", Cell::Timestamp(self.finished_at)),
            ("session_user_name", Cell::text(&self.session_user_name)),
            ("tags", Cell::TextArray(self.tags.clone())),
            ("total", Cell::Int(Some(self.total))),
            ("passed", Cell::Int(Some(self.passed))),
            ("failed_critical", Cell::Int(Some(self.failed_critical))),
            ("failed_important", Cell::Int(Some(self.failed_important))),
            ("decision", Cell::text(&self.decision)),
            ("score", Cell::text(&self.score)),
        ]
    }
}

/// A row of `repair.check_results`: one check of a run, chained per check id.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResultRow {
    pub result_id: String,
    pub run_id: String,
    pub check_id: String,
    pub check_version: Option<i32>,
    pub check_hash: Option<String>,
    pub severity: String,
    pub status: String,
    pub violation_count: i64,
    pub sample: Value,
    pub error: Option<String>,
    pub duration_us: i64,
}

impl Chained for CheckResultRow {
    fn cells(&self) -> Vec<(&'static str, Cell)> {
        vec![
            ("result_id", Cell::Uuid(self.result_id.clone())),
            ("run_id", Cell::Uuid(self.run_id.clone())),
            ("check_id", Cell::text(&self.check_id)),
            ("check_version", Cell::Int(self.check_version)),
            ("check_hash", Cell::Text(self.check_hash.clone())),
            ("severity", Cell::text(&self.severity)),
            ("status", Cell::text(&self.status)),
            ("violation_count", Cell::BigInt(Some(self.violation_count))),
            ("sample", Cell::Json(self.sample.clone())),
            ("error", Cell::Text(self.error.clone())),
            ("duration_us", Cell::BigInt(Some(self.duration_us))),
        ]
    }
}

/// A row of `repair.baseline_captures`, chained per label (since 0.2.0).
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineCaptureRow {
    pub capture_id: String,
    pub label: String,
    /// all or listed
    pub scope: &'static str,
    pub captured_at: i64,
    pub session_user_name: String,
    pub table_count: i32,
    /// SHA-256 of the capture's counts document.
    pub counts_digest: String,
}

impl Chained for BaselineCaptureRow {
    fn cells(&self) -> Vec<(&'static str, Cell)> {
        vec![
            ("capture_id", Cell::Uuid(self.capture_id.clone())),
            ("label", Cell::text(&self.label)),
            ("scope", Cell::text(self.scope)),
            ("captured_at", Cell::Timestamp(self.captured_at)),
            ("session_user_name", Cell::text(&self.session_user_name)),
            ("table_count", Cell::Int(Some(self.table_count))),
            ("counts_digest", Cell::text(&self.counts_digest)),
        ]
    }
}

/// A row of `repair.approvals`: an approval of one playbook version (by hash), or the revocation
/// of one. One chain for the whole table (`chain_key` = `approvals`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRow {
    pub event_id: String,
    /// approve or revoke
    pub action: &'static str,
    /// The approval: this row's event_id for an approval, the revoked approval's for a revocation.
    pub approval_id: String,
    pub playbook_id: String,
    pub version: i32,
    pub hash: String,
    pub at: i64,
    /// Approvals only.
    pub valid_until: Option<i64>,
    pub session_user_name: String,
    pub reason: String,
}

impl ApprovalRow {
    pub const CHAIN: &'static str = "approvals";
}

impl Chained for ApprovalRow {
    fn cells(&self) -> Vec<(&'static str, Cell)> {
        let mut c = vec![
            ("event_id", Cell::Uuid(self.event_id.clone())),
            ("chain_key", Cell::text(Self::CHAIN)),
            ("action", Cell::text(self.action)),
            ("approval_id", Cell::Uuid(self.approval_id.clone())),
            ("playbook_id", Cell::text(&self.playbook_id)),
            ("version", Cell::Int(Some(self.version))),
            ("hash", Cell::text(&self.hash)),
            ("at", Cell::Timestamp(self.at)),
        ];
        if let Some(t) = self.valid_until {
            c.push(("valid_until", Cell::Timestamp(t)));
        }
        c.push(("session_user_name", Cell::text(&self.session_user_name)));
        c.push(("reason", Cell::text(&self.reason)));
        c
    }
}

/// A row of `repair.refusals`: one refused call, or a marker recording how many refusals were
/// dropped because the queue was full (`dropped`). One chain (`chain_key` = `refusals`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RefusalRow {
    pub refusal_id: String,
    pub refused_at: i64,
    pub function: String,
    pub session_user_name: Option<String>,
    pub playbook_id: Option<String>,
    pub guard: Option<String>,
    pub sqlstate: Option<String>,
    pub message: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub dropped: Option<i64>,
}

impl RefusalRow {
    pub const CHAIN: &'static str = "refusals";
}

impl Chained for RefusalRow {
    fn cells(&self) -> Vec<(&'static str, Cell)> {
        vec![
            ("refusal_id", Cell::Uuid(self.refusal_id.clone())),
            ("chain_key", Cell::text(Self::CHAIN)),
            ("refused_at", Cell::Timestamp(self.refused_at)),
            ("function", Cell::text(&self.function)),
            (
                "session_user_name",
                Cell::Text(self.session_user_name.clone()),
            ),
            ("playbook_id", Cell::Text(self.playbook_id.clone())),
            ("guard", Cell::Text(self.guard.clone())),
            ("sqlstate", Cell::Text(self.sqlstate.clone())),
            ("message", Cell::Text(self.message.clone())),
            ("reason", Cell::Text(self.reason.clone())),
            ("request_id", Cell::Text(self.request_id.clone())),
            (
                "application_name",
                Cell::Text(self.application_name.clone()),
            ),
            ("client_addr", Cell::Text(self.client_addr.clone())),
            ("dropped", Cell::BigInt(self.dropped)),
        ]
    }
}

impl RunRow {
    /// What `repair.execute` returns for this run, once it is chained under `row_hash`.
    pub fn result(&self, row_hash: &str) -> RunResult {
        RunResult {
            run_id: self.run_id.clone(),
            playbook: self.playbook_id.clone(),
            version: self.version,
            hash: self.actual_hash.clone(),
            status: self.status,
            statements_total: self.statements_total,
            statements_executed: self.statements_executed,
            missing_before: self.missing_before.clone(),
            missing_after: self.missing_after.clone(),
            duration_ms: self.duration_us as f64 / 1000.0,
            error_code: self.error_code.clone(),
            error_message: self.error_message.clone(),
            declared_role: self.declared_role.clone(),
            executed_as: self.executed_as.clone(),
            waivers: self.waivers.clone(),
            started_at: Utc::from_pg(self.started_at).text(),
            finished_at: Utc::from_pg(self.finished_at).text(),
            row_hash: row_hash.to_string(),
            mode: self.mode.clone(),
            online_run: self.online_run.clone(),
            batches: self.batches,
            rows_affected: self.rows_affected,
            approval_id: self.approval_id.clone(),
        }
    }
}

/// What `repair.execute` returns (jsonb) and `pgrepair execute --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub run_id: String,
    pub playbook: String,
    pub version: i32,
    pub hash: String,
    pub status: RunStatus,
    pub statements_total: i32,
    pub statements_executed: i32,
    pub missing_before: Vec<String>,
    pub missing_after: Vec<String>,
    pub duration_ms: f64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub declared_role: String,
    pub executed_as: String,
    pub waivers: Vec<WaiverUsed>,
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`
    pub started_at: String,
    pub finished_at: String,
    pub row_hash: String,
    /// Online runs only (absent for a transactional run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_affected: Option<i64>,
    /// The approval the run consumed (absent when none was required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
}

/// One statement of an online run, as `repair.online_begin` hands it to the client: the client
/// sends `sql` exactly, alone, as a top-level statement (a batch statement until it affects 0
/// rows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineStatement {
    pub n: i32,
    /// File line of the statement's first line.
    pub line: i32,
    pub sql: String,
    pub batch: bool,
}

/// What `repair.online_begin` returns when the run started (`status` = STARTED). When the run
/// could not start (requires-before missing) it returns a [`RunResult`] with status FAILED
/// instead: read `status` first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineStart {
    pub run_id: String,
    pub status: RunStatus,
    pub playbook: String,
    pub version: i32,
    pub hash: String,
    pub declared_role: String,
    pub executed_as: String,
    pub lock_timeout_ms: i32,
    pub statement_timeout_ms: i32,
    pub batch_pause_ms: i32,
    pub statements: Vec<OnlineStatement>,
    /// Earlier online runs of this playbook whose session ended before they finished.
    pub incomplete_runs: Vec<String>,
    pub started_at: String,
    pub row_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> RunRow {
        RunRow {
            run_id: "00000000-0000-4000-8000-000000000001".into(),
            playbook_id: "p".into(),
            version: 2,
            expected_hash: "ab".into(),
            actual_hash: "ab".into(),
            started_at: 0,
            finished_at: 1_500_000,
            session_user_name: "alice".into(),
            current_user_name: "alice".into(),
            executed_as: "alice".into(),
            declared_role: "staging".into(),
            confirm_prod: false,
            reason: "TICKET-1".into(),
            request_id: None,
            status: RunStatus::Failed,
            error_code: Some("57014".into()),
            error_message: None,
            missing_before: vec![],
            missing_after: vec!["public.t".into()],
            statements_total: 3,
            statements_executed: 1,
            duration_us: 1500,
            waivers: vec![WaiverUsed {
                rule: "ban-update".into(),
                until: "2099-01-01".into(),
                because: "x".into(),
            }],
            mode: None,
            online_run: None,
            batches: None,
            rows_affected: None,
            approval_id: None,
        }
    }

    #[test]
    fn document_leaves_nulls_out_and_writes_timestamps_like_to_jsonb() {
        let d = row().document(7);
        assert_eq!(d["seq"], 7);
        assert_eq!(d["started_at"], "2000-01-01T00:00:00+00:00");
        assert_eq!(d["finished_at"], "2000-01-01T00:00:01.5+00:00");
        assert!(d.get("request_id").is_none());
        assert!(d.get("error_message").is_none());
        assert!(d.get("prev_hash").is_none() && d.get("row_hash").is_none());
        assert_eq!(d["waivers"][0]["rule"], "ban-update");
        assert_eq!(d.as_object().unwrap().len(), 22);
    }

    #[test]
    fn result_round_trips_through_json() {
        let r = row().result("ff");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "FAILED");
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["started_at"], "2000-01-01T00:00:00.000000Z");
        let back: RunResult = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}

#[cfg(test)]
mod chained_tests {
    use super::*;

    #[test]
    fn an_event_of_a_0_1_0_schema_has_no_digest_column_and_null_digests_are_left_out() {
        let mut e = RegistryEvent {
            event_id: "00000000-0000-4000-8000-000000000002".into(),
            playbook_id: "p".into(),
            version: 1,
            action: "new",
            hash: "ab".into(),
            reason: None,
            at: 0,
            session_user_name: "carol".into(),
            current_user_name: "carol".into(),
            version_digest: None,
        };
        assert!(!e.cells().iter().any(|(c, _)| *c == "version_digest"));
        e.version_digest = Some(None);
        let d = e.document(3);
        assert!(d.get("version_digest").is_none() && d.get("reason").is_none());
        assert_eq!(d["at"], "2000-01-01T00:00:00+00:00");
        e.version_digest = Some(Some("cd".into()));
        assert_eq!(e.document(3)["version_digest"], "cd");
    }

    #[test]
    fn nulls_inside_a_sample_are_stripped_like_jsonb_strip_nulls() {
        let r = CheckResultRow {
            result_id: "00000000-0000-4000-8000-000000000003".into(),
            run_id: "00000000-0000-4000-8000-000000000004".into(),
            check_id: "c".into(),
            check_version: None,
            check_hash: None,
            severity: "critical".into(),
            status: "FAIL".into(),
            violation_count: 1,
            sample: serde_json::json!([{"id": 1, "name": null}, null]),
            error: None,
            duration_us: 5,
        };
        let d = r.document(9);
        assert_eq!(d["sample"], serde_json::json!([{"id": 1}, null]));
        assert!(d.get("check_version").is_none());
        let runs = CheckRunRow {
            run_id: "00000000-0000-4000-8000-000000000004".into(),
            started_at: 0,
            finished_at: 0,
            session_user_name: "dave".into(),
            tags: None,
            total: 1,
            passed: 0,
            failed_critical: 1,
            failed_important: 0,
            decision: "NO-GO".into(),
            score: "0/1".into(),
        };
        let d = runs.document(1);
        assert_eq!(d["chain_key"], CheckRunRow::CHAIN);
        assert!(d.get("tags").is_none());
    }
}
