//! `pgrepair approve`, `approvals`, `revoke-approval`, `refusals` and the approval column of
//! `runs`, with the real binary and a real server (schema 0.4.0): an approver approves and
//! revokes, the refusals of the server come back as exit 1 with their SQLSTATE, a run consumes
//! an approval and the audit names it, and a refused execute shows up in `refusals`.
//!
//! The approver is dave (an auditor, member of repair_auditors): repair.approvers names that
//! role. Role memberships are cluster-wide, so none is granted here; EXECUTE on the approval
//! functions is granted per database.

mod common;
use common::*;

use std::time::{Duration, Instant};

use pg_repair_tests::{playbook, register, Cluster, Conf};
use postgres::Client;
use serde_json::Value;

/// The group whose members may approve in these tests (dave is one).
const APPROVERS: &str = "repair_auditors";

const APPROVAL_GRANTS_SQL: &str = "
    GRANT EXECUTE ON FUNCTION repair.approve(text, text, text, interval),
        repair.revoke_approval(uuid, text) TO repair_auditors;
    GRANT SELECT ON repair.approval_status, repair.refusals TO repair_auditors;
";

/// The approval settings of a test; `Conf` (held alongside) resets them when it is dropped.
#[allow(dead_code)]
struct ApprovalSettings(&'static Cluster);

impl ApprovalSettings {
    fn set(c: &'static Cluster, require: &str) -> ApprovalSettings {
        c.set_conf(&[
            ("repair.approvers", Some(APPROVERS)),
            ("repair.require_approval", Some(require)),
        ]);
        ApprovalSettings(c)
    }
}

fn db_with_approvals(c: &Cluster, label: &str) -> String {
    let db = c.fresh_db(label);
    c.connect(&db, "postgres")
        .batch_execute(APPROVAL_GRANTS_SQL)
        .expect("approval grants");
    db
}

fn json_array(out: &std::process::Output) -> Vec<Value> {
    match json_of(out) {
        Value::Array(a) => a,
        other => panic!("expected a JSON array, got {other}"),
    }
}

fn approvals(c: &Cluster, db: &str, playbook: &str) -> Vec<Value> {
    let out = run(cli(c, db, "dave").args(["approvals", playbook, "--json"]));
    expect_code(&out, 0);
    json_array(&out)
}

fn approval<'a>(rows: &'a [Value], id: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["approval_id"] == id)
        .unwrap_or_else(|| panic!("approval {id} not listed: {rows:?}"))
}

/// Whether the approval's validity as the server recorded it is `seconds` (to the second).
#[track_caller]
fn assert_valid_for(su: &mut Client, id: &str, seconds: f64) {
    let got: f64 = su
        .query_one(
            "SELECT extract(epoch FROM valid_until - approved_at)::float8 \
         FROM repair.approval_status WHERE approval_id = $1::text::uuid",
            &[&id],
        )
        .expect("approval_status")
        .get(0);
    assert!(
        (got - seconds).abs() < 1.0,
        "valid for {got} s, expected {seconds} s"
    );
}

fn approve_json(c: &Cluster, db: &str, id: &str, hash: &str, extra: &[&str]) -> Value {
    let out = run(cli(c, db, "dave")
        .args(["approve", id, "--hash", hash, "--reason", "CHG-88 reviewed"])
        .args(extra)
        .arg("--json"));
    expect_code(&out, 0);
    json_of(&out)
}

#[test]
fn an_approver_approves_lists_and_revokes() {
    let conf = Conf::take();
    let c = conf.cluster;
    let _settings = ApprovalSettings::set(c, "prod");
    let db = db_with_approvals(c, "approvals_cli");
    let mut su = c.connect(&db, "postgres");
    let id = "appr_one";
    let (_, hash, _) = register(
        &mut c.connect(&db, "carol"),
        &playbook(id, "CREATE TABLE IF NOT EXISTS public.appr_one (id int);"),
    );

    // approve, --json: the id, the playbook, the hash and the validity read back
    let a = approve_json(c, &db, id, &hash, &["--valid-for", "1h30m"]);
    let first = a["approval_id"].as_str().expect("approval_id").to_string();
    assert_eq!(first.len(), 36, "{a}");
    assert_eq!(a["playbook_id"], id, "{a}");
    assert_eq!(a["hash"], hash.as_str(), "{a}");
    assert!(a["valid_until"].is_string(), "{a}");
    assert_valid_for(&mut su, &first, 5400.0);

    // approve, human: the whole id and the validity; without --valid-for the server's 4 hours
    let out = run(cli(c, &db, "dave").args([
        "approve",
        id,
        "--hash",
        &hash,
        "--reason",
        "CHG-89 reviewed",
    ]));
    expect_code(&out, 0);
    let text = stdout_of(&out);
    assert!(
        text.contains("approval ") && text.contains("valid until"),
        "{text}"
    );
    let rows = approvals(c, &db, id);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let second = rows
        .iter()
        .map(|r| r["approval_id"].as_str().unwrap().to_string())
        .find(|a| *a != first)
        .unwrap();
    assert!(text.contains(&second), "{text}");
    assert_valid_for(&mut su, &second, 4.0 * 3600.0); // the server's default

    // listed, newest first, usable
    assert_eq!(rows[0]["approval_id"], second.as_str(), "newest first");
    let row = approval(&rows, &first);
    assert_eq!(row["state"], "usable", "{row}");
    assert_eq!(row["approved_by"], "dave", "{row}");
    assert_eq!(row["hash"], hash.as_str(), "{row}");
    assert_eq!(row["playbook_id"], id, "{row}");
    assert!(row["used_by_run"].is_null(), "{row}");
    let out = run(cli(c, &db, "dave").arg("approvals"));
    expect_code(&out, 0);
    let text = stdout_of(&out);
    assert!(
        text.contains(&first[..8]) && !text.contains(&first) && text.contains("usable"),
        "{text}"
    );
    assert!(text.contains("2 approvals shown"), "{text}");

    // revoke by the full id, then by the 8-digit prefix the table shows
    let out =
        run(cli(c, &db, "dave").args(["revoke-approval", &first, "--reason", "CHG-88 withdrawn"]));
    expect_code(&out, 0);
    let text = stdout_of(&out);
    assert!(text.contains(&first) && text.contains("revoked"), "{text}");
    let out = run(cli(c, &db, "dave").args([
        "revoke-approval",
        &second[..8],
        "--reason",
        "CHG-89 withdrawn",
        "--json",
    ]));
    expect_code(&out, 0);
    let r = json_of(&out);
    assert_eq!(r["approval_id"], second.as_str(), "{r}");
    assert!(r["revocation_id"].is_string(), "{r}");
    let rows = approvals(c, &db, id);
    let row = approval(&rows, &first);
    assert_eq!(row["state"], "revoked", "{row}");
    assert_eq!(row["revoked_by"], "dave", "{row}");
    assert_eq!(row["revoke_reason"], "CHG-88 withdrawn", "{row}");
    assert_eq!(approval(&rows, &second)["state"], "revoked");

    // revoking what does not exist: the server's 42704, exit 1
    let out = run(cli(c, &db, "dave").args([
        "revoke-approval",
        "00000000-0000-4000-8000-000000000000",
        "--reason",
        "nothing",
    ]));
    expect_code(&out, 1);
    assert!(stderr_of(&out).contains("42704"), "{}", stderr_of(&out));

    // a new version makes a usable approval stale, and the old hash is refused (HASH_MISMATCH)
    let third = approve_json(c, &db, id, &hash, &[])["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (v2, hash2, status) = register(
        &mut c.connect(&db, "carol"),
        &playbook(
            id,
            "CREATE TABLE IF NOT EXISTS public.appr_one_v2 (id int);",
        ),
    );
    assert_eq!((v2, status.as_str()), (2, "updated"));
    assert_ne!(hash, hash2);
    assert_eq!(approval(&approvals(c, &db, id), &third)["state"], "stale");
    let out = run(cli(c, &db, "dave").args([
        "approve",
        id,
        "--hash",
        &hash,
        "--reason",
        "CHG-90 the old version",
    ]));
    expect_code(&out, 1);
    let err = stderr_of(&out);
    assert!(
        err.contains("HASH_MISMATCH") && err.contains("RP006"),
        "{err}"
    );
    assert!(err.starts_with("pgrepair: "), "{err}");

    // longer than 24 hours: the server's 22023, exit 1
    let out = run(cli(c, &db, "dave").args([
        "approve",
        id,
        "--hash",
        &hash2,
        "--reason",
        "CHG-91",
        "--valid-for",
        "25h",
    ]));
    expect_code(&out, 1);
    assert!(stderr_of(&out).contains("22023"), "{}", stderr_of(&out));

    // not an approver: 42501, exit 1
    let out = run(cli(c, &db, "bob").args(["approve", id, "--hash", &hash2, "--reason", "CHG-92"]));
    expect_code(&out, 1);
    assert!(stderr_of(&out).contains("42501"), "{}", stderr_of(&out));

    // a --valid-for that is no duration: a usage error before any connection
    let out = run(pgrepair().args([
        "--dsn",
        CLOSED_DSN,
        "approve",
        id,
        "--hash",
        &hash2,
        "--reason",
        "CHG-93",
        "--valid-for",
        "nonsense",
    ]));
    expect_code(&out, 2);
    let err = stderr_of(&out);
    assert!(
        err.contains("--valid-for") && err.contains("nonsense"),
        "{err}"
    );
    assert!(!err.contains("cannot connect"), "{err}");
    // an approval id that is none: the same
    let out = run(pgrepair().args([
        "--dsn",
        CLOSED_DSN,
        "revoke-approval",
        "not-an-id",
        "--reason",
        "x",
    ]));
    expect_code(&out, 2);
    assert!(
        !stderr_of(&out).contains("cannot connect"),
        "{}",
        stderr_of(&out)
    );
    // well-formed, but the database cannot be reached: exit 2 as well
    let out = run(pgrepair().args([
        "--dsn", CLOSED_DSN, "approve", id, "--hash", &hash2, "--reason", "CHG-94",
    ]));
    expect_code(&out, 2);
    assert!(
        stderr_of(&out).contains("cannot connect"),
        "{}",
        stderr_of(&out)
    );

    // nothing above added an approval: the three approvals of hash 1 only
    assert_eq!(approvals(c, &db, id).len(), 3);
}

#[test]
fn a_run_consumes_an_approval_and_runs_shows_it() {
    let conf = Conf::take();
    let c = conf.cluster;
    let _settings = ApprovalSettings::set(c, "always");
    let db = db_with_approvals(c, "approvals_cli_run");
    let id = "appr_run";
    let (_, hash, _) = register(
        &mut c.connect(&db, "carol"),
        &playbook(id, "CREATE TABLE IF NOT EXISTS public.appr_run (id int);"),
    );
    let execute = || {
        run(cli(c, &db, "alice").args([
            "execute", id, "--hash", &hash, "--reason", "CHG-100", "--json",
        ]))
    };
    // no approval yet: refused
    expect_code(&execute(), 1);

    let approval_id = approve_json(c, &db, id, &hash, &["--valid-for", "30m"])["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = execute();
    expect_code(&out, 0);
    let result = json_of(&out);
    assert_eq!(result["status"], "SUCCESS", "{result}");
    let run_id = result["run_id"].as_str().expect("run_id").to_string();

    // used, by that run
    let row = approvals(c, &db, id);
    let row = approval(&row, &approval_id);
    assert_eq!(row["state"], "used", "{row}");
    assert_eq!(row["used_by_run"], run_id.as_str(), "{row}");

    // runs names it: whole in --json, short in the table
    let out = run(cli(c, &db, "dave").args(["runs", "--playbook", id, "--json"]));
    expect_code(&out, 0);
    let runs = json_array(&out);
    let r = runs
        .iter()
        .find(|r| r["run_id"] == run_id.as_str())
        .unwrap_or_else(|| panic!("run {run_id} not listed: {runs:?}"));
    assert_eq!(r["approval_id"], approval_id.as_str(), "{r}");
    let out = run(cli(c, &db, "dave").args(["runs", "--playbook", id]));
    expect_code(&out, 0);
    let text = stdout_of(&out);
    assert!(
        text.contains("approval") && text.contains(&approval_id[..8]),
        "{text}"
    );

    // used once: the next run is refused again
    expect_code(&execute(), 1);
}

#[test]
fn a_refused_execute_is_listed_by_refusals() {
    let conf = Conf::take();
    let c = conf.cluster;
    let db = db_with_approvals(c, "refusals_cli");
    let id = "refused_one";
    let (_, hash, _) = register(
        &mut c.connect(&db, "carol"),
        &playbook(
            id,
            "CREATE TABLE IF NOT EXISTS public.refused_one (id int);",
        ),
    );
    let wrong = "0".repeat(64);
    assert_ne!(wrong, hash);
    let reason = "INC-77 wrong hash on purpose";
    let out = run(cli(c, &db, "alice").args(["execute", id, "--hash", &wrong, "--reason", reason]));
    expect_code(&out, 1);
    assert!(
        stderr_of(&out).contains("HASH_MISMATCH"),
        "{}",
        stderr_of(&out)
    );

    // the recording is asynchronous: visible within a short while
    let is_ours = |r: &Value| {
        r["guard"] == "HASH_MISMATCH"
            && r["sqlstate"] == "RP006"
            && r["reason"] == reason
            && r["playbook_id"] == id
    };
    let start = Instant::now();
    let row = loop {
        let out = run(cli(c, &db, "dave").args(["refusals", "--playbook", id, "--json"]));
        expect_code(&out, 0);
        if let Some(r) = json_array(&out).into_iter().find(is_ours) {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "no HASH_MISMATCH refusal listed within 2 s: {}",
            stdout_of(&out)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(row["session_user_name"], "alice", "{row}");
    assert_eq!(row["function"], "execute", "{row}");
    assert_eq!(row["application_name"], "pgrepair", "{row}");
    assert!(row["row_hash"].is_string(), "{row}");

    // the table
    let out = run(cli(c, &db, "dave").args(["refusals", "--since", "10m"]));
    expect_code(&out, 0);
    let text = stdout_of(&out);
    for cell in ["alice", "execute", id, "HASH_MISMATCH", "RP006", "INC-77"] {
        assert!(text.contains(cell), "{cell}: {text}");
    }
    // --since: a timestamp after it leaves it out; one before keeps it
    let out = run(cli(c, &db, "dave").args(["refusals", "--since", "2999-01-01", "--json"]));
    expect_code(&out, 0);
    assert!(json_array(&out).is_empty(), "{}", stdout_of(&out));
    let out =
        run(cli(c, &db, "dave").args(["refusals", "--since", "2000-01-01T00:00:00Z", "--json"]));
    expect_code(&out, 0);
    assert!(json_array(&out).iter().any(is_ours), "{}", stdout_of(&out));
    // another playbook's refusals leave it out
    let out = run(cli(c, &db, "dave").args(["refusals", "--playbook", "other", "--json"]));
    expect_code(&out, 0);
    assert!(!json_array(&out).iter().any(is_ours), "{}", stdout_of(&out));
    // a --since that is neither: usage error, before connecting
    let out = run(pgrepair().args(["--dsn", CLOSED_DSN, "refusals", "--since", "yesterday"]));
    expect_code(&out, 2);
    assert!(
        !stderr_of(&out).contains("cannot connect"),
        "{}",
        stderr_of(&out)
    );
}

/// No server needed: help, the syntax checked before connecting, and the connection error.
#[test]
fn help_usage_errors_and_an_unreachable_database() {
    for sub in ["approve", "approvals", "revoke-approval", "refusals"] {
        let out = run(pgrepair().args([sub, "--help"]));
        expect_code(&out, 0);
        assert!(stdout_of(&out).contains("Example"), "{sub} --help");
    }
    let out = run(pgrepair().arg("--help"));
    for sub in ["approve", "approvals", "revoke-approval", "refusals"] {
        assert!(stdout_of(&out).contains(sub), "--help lacks {sub}");
    }

    // malformed values: exit 2 before connecting, also as JSON
    for args in [
        vec![
            "approve",
            "p",
            "--hash",
            "h",
            "--reason",
            "r",
            "--valid-for",
            "nonsense",
        ],
        vec![
            "approve",
            "p",
            "--hash",
            "h",
            "--reason",
            "r",
            "--valid-for",
            "1.5h",
        ],
        vec![
            "approve",
            "p",
            "--hash",
            "h",
            "--reason",
            "r",
            "--valid-for",
            "30m1h",
        ],
        vec!["approve", "p", "--reason", "r"],
        vec!["revoke-approval", "xyz", "--reason", "r"],
        vec!["revoke-approval", "0f8fad5", "--reason", "r"],
        vec!["revoke-approval", "0f8fad5b"],
        vec!["refusals", "--since", "yesterday"],
        vec!["refusals", "--since", "2026-02-30"],
        vec!["refusals", "--limit", "0"],
        vec!["approvals", "--limit", "0"],
    ] {
        let out = run(pgrepair().args(["--dsn", CLOSED_DSN]).args(&args));
        expect_code(&out, 2);
        let err = stderr_of(&out);
        assert!(!err.contains("cannot connect"), "{args:?}: {err}");
        let out = run(pgrepair().args(["--dsn", CLOSED_DSN, "--json"]).args(&args));
        expect_code(&out, 2);
        assert_eq!(json_of(&out)["error"]["kind"], "usage", "{args:?}");
    }

    // well-formed: the database cannot be reached, one line, exit 2
    for args in [
        vec![
            "approve",
            "p",
            "--hash",
            "h",
            "--reason",
            "r",
            "--valid-for",
            "1h30m",
        ],
        vec!["approvals", "p"],
        vec!["revoke-approval", "0f8fad5b", "--reason", "r"],
        vec![
            "revoke-approval",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "--reason",
            "r",
        ],
        vec!["refusals", "--since", "2h", "--playbook", "p"],
        vec!["refusals", "--since", "2026-05-01 14:00"],
    ] {
        let out = run(pgrepair().args(["--dsn", CLOSED_DSN]).args(&args));
        expect_code(&out, 2);
        let err = stderr_of(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("pgrepair: cannot connect to "),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
