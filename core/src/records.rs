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

/// SUCCESS or FAILED (the table's CHECK constraint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunStatus {
    Success,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Success => "SUCCESS",
            RunStatus::Failed => "FAILED",
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
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

impl RunRow {
    /// The row's chained document with its sequence number: every column but `prev_hash` and
    /// `row_hash`, NULLs left out, timestamps as `to_jsonb` writes them in UTC.
    pub fn document(&self, seq: i64) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        put("run_id", self.run_id.clone().into());
        put("seq", seq.into());
        put("playbook_id", self.playbook_id.clone().into());
        put("version", self.version.into());
        put("expected_hash", self.expected_hash.clone().into());
        put("actual_hash", self.actual_hash.clone().into());
        put(
            "started_at",
            Utc::from_pg(self.started_at).jsonb_text().into(),
        );
        put(
            "finished_at",
            Utc::from_pg(self.finished_at).jsonb_text().into(),
        );
        put("session_user_name", self.session_user_name.clone().into());
        put("current_user_name", self.current_user_name.clone().into());
        put("executed_as", self.executed_as.clone().into());
        put("declared_role", self.declared_role.clone().into());
        put("confirm_prod", self.confirm_prod.into());
        put("reason", self.reason.clone().into());
        if let Some(r) = &self.request_id {
            put("request_id", r.clone().into());
        }
        put("status", self.status.as_str().into());
        if let Some(c) = &self.error_code {
            put("error_code", c.clone().into());
        }
        if let Some(e) = &self.error_message {
            put("error_message", e.clone().into());
        }
        put("missing_before", strings(&self.missing_before));
        put("missing_after", strings(&self.missing_after));
        put("statements_total", self.statements_total.into());
        put("statements_executed", self.statements_executed.into());
        put("duration_us", self.duration_us.into());
        put(
            "waivers",
            serde_json::to_value(&self.waivers).unwrap_or(Value::Array(vec![])),
        );
        Value::Object(m)
    }

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
