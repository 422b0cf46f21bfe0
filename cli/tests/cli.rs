//! Black-box tests of the `pgrepair` binary that need no PostgreSQL server: offline hashing,
//! local parse errors, usage errors and connection failures (against a closed port).

mod common;
use common::*;

use std::fs;
use std::path::Path;

use predicates::prelude::*;
use serde_json::Value;

const PLAYBOOK: &str = "\
-- repair: intent_issue_tables
-- title: Recreate the INTENT issue authoring tables
-- environments: staging
-- requires-before: public.workspaces
-- requires-after: public.intent_issue_drafts
-- lock-timeout: 2s
-- statement-timeout: 5min
CREATE TABLE IF NOT EXISTS public.intent_issue_drafts (
    id bigint PRIMARY KEY
);
";

const CHECK: &str = "\
-- check: orders_have_customers
-- title: Every order has a customer
-- severity: critical
SELECT o.id FROM public.orders o LEFT JOIN public.customers c ON c.id = o.customer_id WHERE c.id IS NULL;
";

/// Line 3 has a header key the format does not know.
const BAD_PLAYBOOK: &str = "\
-- repair: broken_one
-- title: Broken
-- colour: blue
CREATE TABLE IF NOT EXISTS public.t (id int);
";

#[test]
fn hash_matches_core() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "intent.sql", PLAYBOOK);
    let expected = pg_repair_core::parse(PLAYBOOK).expect("test playbook parses");

    let out = pgrepair().args(["hash", &file]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    assert_eq!(
        stdout_of(&out),
        format!("{}  intent_issue_tables  {file}\n", expected.hash())
    );
    assert_eq!(expected.hash().len(), 64);
}

#[test]
fn hash_of_several_files_including_a_check() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.sql", PLAYBOOK);
    let c = write(dir.path(), "c.sql", CHECK);
    let out = pgrepair().args(["hash", &a, &c]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let check_hash = pg_repair_core::parse(CHECK).unwrap().hash();
    assert_eq!(
        lines[1],
        format!("{check_hash}  orders_have_customers  {c}")
    );
}

#[test]
fn hash_json_is_json_with_canonical_form() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "intent.sql", PLAYBOOK);
    let src = pg_repair_core::parse(PLAYBOOK).unwrap();

    // --json is global: valid before or after the subcommand
    for args in [
        vec!["--json", "hash", file.as_str()],
        vec!["hash", file.as_str(), "--json"],
    ] {
        let out = pgrepair().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
        let entry = &v.as_array().expect("an array")[0];
        assert_eq!(entry["file"], file.as_str());
        assert_eq!(entry["id"], "intent_issue_tables");
        assert_eq!(entry["kind"], "playbook");
        assert_eq!(entry["hash"], src.hash().as_str());
        assert_eq!(entry["canonical"], src.canonical_json().as_str());
        // the canonical form is itself JSON
        let canonical: Value = serde_json::from_str(entry["canonical"].as_str().unwrap()).unwrap();
        assert_eq!(canonical["id"], "intent_issue_tables");
    }
}

#[test]
fn hash_of_malformed_file_reports_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.sql", BAD_PLAYBOOK);
    let out = pgrepair().args(["hash", &file]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.starts_with(&format!("{file}:3: ")), "stderr: {err}");
    assert!(out.stdout.is_empty());
    assert_clean_text(&err);
}

#[test]
fn hash_json_error_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.sql", BAD_PLAYBOOK);
    let out = pgrepair().args(["--json", "hash", &file]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert!(v["error"]["message"].is_string());
    assert_eq!(v["error"]["files"][0]["file"], file.as_str());
    assert_eq!(v["error"]["files"][0]["line"], 3);
}

#[test]
fn hash_of_missing_file_fails_cleanly() {
    let out = pgrepair()
        .args(["hash", "/nonexistent/pgrepair/x.sql"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("/nonexistent/pgrepair/x.sql: cannot read"),
        "{err}"
    );
    assert_clean_text(&err);
}

#[test]
fn good_files_still_hash_when_another_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "a.sql", PLAYBOOK);
    let bad = write(dir.path(), "b.sql", BAD_PLAYBOOK);
    let out = pgrepair().args(["hash", &good, &bad]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout_of(&out).contains("intent_issue_tables"));
    assert!(stderr_of(&out).contains(&format!("{bad}:3:")));
}

#[test]
fn usage_errors_exit_2() {
    pgrepair().arg("frobnicate").assert().code(2);
    pgrepair().assert().code(2);
    pgrepair().arg("hash").assert().code(2);
    pgrepair().arg("preview").assert().code(2);
    pgrepair()
        .args(["execute", "some_playbook"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--hash"));
    pgrepair()
        .args(["execute", "p", "--hash", "h"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--reason"));
    // --keep only makes sense with --backup-dir
    pgrepair()
        .args([
            "execute", "p", "--hash", "h", "--reason", "r", "--keep", "3",
        ])
        .assert()
        .code(2);
    pgrepair().args(["runs", "--limit", "0"]).assert().code(2);
    pgrepair().args(["audit"]).assert().code(2);
}

#[test]
fn usage_error_with_json_is_json() {
    let out = pgrepair().args(["--json", "frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("frobnicate"));
}

#[test]
fn help_documents_exit_codes_and_examples() {
    let out = pgrepair().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = stdout_of(&out);
    for needle in [
        "Exit codes:",
        "  99 ",
        "HOLD",
        "NO-GO",
        "DATABASE_URL",
        "PGHOST",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    for sub in ["hash", "install", "list", "preview", "execute", "runs"] {
        let out = pgrepair().args([sub, "--help"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(
            stdout_of(&out).contains("Example"),
            "{sub} --help has no example"
        );
    }
    let out = pgrepair()
        .args(["audit", "verify", "--help"])
        .output()
        .unwrap();
    assert!(stdout_of(&out).contains("Example"));
    pgrepair().arg("--version").assert().code(0);
}

#[test]
fn closed_port_is_a_one_line_connection_error() {
    for args in [
        vec!["list"],
        vec!["preview", "x"],
        vec!["runs"],
        vec!["audit", "verify"],
        vec!["execute", "x", "--hash", "h", "--reason", "r"],
    ] {
        let out = pgrepair()
            .arg("--dsn")
            .arg(CLOSED_DSN)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr_of(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("pgrepair: cannot connect to 127.0.0.1:1/x as x: "),
            "{args:?}: {err}"
        );
        assert_clean_text(&err);
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn closed_port_via_database_url_env() {
    let out = pgrepair()
        .env(
            "DATABASE_URL",
            "postgres://u@127.0.0.1:1/db?connect_timeout=2",
        )
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).starts_with("pgrepair: cannot connect to 127.0.0.1:1/db as u: "));
}

#[test]
fn closed_port_with_libpq_env() {
    let out = pgrepair()
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", "1")
        .env("PGUSER", "envuser")
        .env("PGCONNECT_TIMEOUT", "2")
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.starts_with("pgrepair: cannot connect to 127.0.0.1:1/envuser as envuser: "),
        "{err}"
    );
}

#[test]
fn connection_error_with_json_is_json() {
    let out = pgrepair()
        .args(["--json", "--dsn", CLOSED_DSN, "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["error"]["sqlstate"], "08001");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("cannot connect to 127.0.0.1:1/x as x"));
}

#[test]
fn invalid_sslmode_is_a_usage_error() {
    for (dsn, var) in [
        ("host=127.0.0.1 port=1 user=x sslmode=verify", None),
        ("host=127.0.0.1 port=1 user=x", Some("on")),
    ] {
        let mut cmd = pgrepair();
        cmd.args(["--dsn", dsn, "list"]);
        if let Some(v) = var {
            cmd.env("PGSSLMODE", v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = stderr_of(&out);
        assert!(err.contains("invalid sslmode value"), "{err}");
        assert!(err.contains("verify-full"), "{err}");
        assert_eq!(err.lines().count(), 1);
    }
}

#[test]
fn invalid_dsn_is_a_usage_error() {
    let out = pgrepair()
        .args(["--dsn", "host=h port=notaport", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.starts_with("pgrepair: invalid connection string"),
        "{err}"
    );
    assert_clean_text(&err);
}

#[test]
fn install_reports_every_parse_error_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a_good.sql", PLAYBOOK);
    let bad = write(dir.path(), "b_bad.sql", BAD_PLAYBOOK);
    let bad2 = write(dir.path(), "c_bad.sql", "-- repair: x\nSELECT 1;\n");
    write(dir.path(), "notes.txt", "not a playbook");

    let out = pgrepair()
        .args(["--dsn", CLOSED_DSN, "install"])
        .arg(dir.path())
        .output()
        .unwrap();
    // exit 1 (parse errors), not 2 (connection): nothing was sent
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains(&format!("{bad}:3: ")), "{err}");
    assert!(err.contains(&format!("{bad2}:")), "{err}");
    assert!(!err.contains("cannot connect"), "{err}");
    assert!(err.contains("nothing was installed"), "{err}");
    assert!(!err.contains("notes.txt"));
    assert_clean_text(&err);
}

#[test]
fn install_rejects_duplicate_ids_locally() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.sql", PLAYBOOK);
    let dup = write(dir.path(), "b.sql", PLAYBOOK);
    let out = pgrepair()
        .args(["--dsn", CLOSED_DSN, "install"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "{dup}:1: duplicate playbook id `intent_issue_tables`"
        )),
        "{err}"
    );
}

#[test]
fn install_json_parse_error_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.sql", BAD_PLAYBOOK);
    let out = pgrepair()
        .args(["--json", "--dsn", CLOSED_DSN, "install"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["error"]["files"][0]["file"], bad.as_str());
    assert_eq!(v["error"]["files"][0]["line"], 3);
}

#[test]
fn install_with_valid_files_then_connects() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.sql", PLAYBOOK);
    write(dir.path(), "c.sql", CHECK);
    let out = pgrepair()
        .args(["--dsn", CLOSED_DSN, "install"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).starts_with("pgrepair: cannot connect to "));
}

#[test]
fn install_of_missing_or_empty_directory_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = pgrepair()
        .args(["--dsn", CLOSED_DSN, "install"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("no *.sql files"));

    let out = pgrepair()
        .args(["--dsn", CLOSED_DSN, "install"])
        .arg(dir.path().join("absent"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("cannot read directory"));
}

#[test]
fn readme_documents_every_exit_code() {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("cli/README.md exists");
    for code in [
        "| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 99 |", "| 130 |",
    ] {
        assert!(readme.contains(code), "README lacks exit code row {code}");
    }
}
