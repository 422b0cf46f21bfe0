//! `pgrepair lint FILE…`: offline behaviour (local parse errors, unreadable files: the server
//! is never contacted) and end-to-end against a real PostgreSQL 15 server with pg_repair
//! preloaded (the `pg_repair_tests` scratch cluster). The linting runs as carol (an author).

mod common;
use common::*;
use pg_repair_core::Rule;

use assert_cmd::Command;
use pg_repair_tests::{playbook, Cluster};
use serde_json::Value;

const CLEAN_BODY: &str = "\
CREATE TABLE IF NOT EXISTS public.x (id bigint PRIMARY KEY);
CREATE INDEX IF NOT EXISTS x_id_idx ON public.x (id);
COMMENT ON TABLE public.x IS 'repaired';";

/// Line 3 is a header key the format does not know.
const BAD_HEADER: &str = "\
-- repair: broken_one
-- title: Broken
-- colour: blue
CREATE TABLE IF NOT EXISTS public.t (id int);
";

/// A fresh database where carol (author) may call repair.lint.
fn lint_db(c: &Cluster, label: &str) -> String {
    let db = c.fresh_db(label);
    c.connect(&db, "postgres")
        .batch_execute("GRANT EXECUTE ON FUNCTION repair.lint(text) TO repair_authors")
        .expect("grant repair.lint (is the lint installed?)");
    db
}

/// `pgrepair --dsn <carol on db> lint …`.
fn lint_as_carol(c: &Cluster, db: &str) -> Command {
    let mut cmd = pgrepair();
    cmd.arg("--dsn").arg(c.url(db, "carol")).arg("lint");
    cmd
}

// ---------------------------------------------------------------------------------------------
// Offline: no server involved
// ---------------------------------------------------------------------------------------------

#[test]
fn header_parse_error_fails_without_contacting_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.sql", BAD_HEADER.as_bytes());
    let out = pgrepair()
        .args(["--dsn", CLOSED_DSN, "lint", &file])
        .output()
        .unwrap();
    // exit 2 would mean it tried to connect
    expect_code(&out, 1);
    let text = stdout_of(&out);
    assert!(
        text.starts_with(&format!("{file}:3: parse error: ")),
        "{text}"
    );
    assert!(text.contains("1 error, 0 warnings in 1 file"), "{text}");
    assert!(!stderr_of(&out).contains("cannot connect"));
}

#[test]
fn header_parse_error_json_without_contacting_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.sql", BAD_HEADER.as_bytes());
    let out = pgrepair()
        .args(["--json", "--dsn", CLOSED_DSN, "lint", &file])
        .output()
        .unwrap();
    expect_code(&out, 1);
    let v = json_of(&out);
    let entry = &v.as_array().expect("an array")[0];
    assert_eq!(entry["file"], file.as_str());
    assert_eq!(entry["findings"], Value::Array(vec![]));
    assert_eq!(entry["parse_error"]["line"], 3);
    assert!(entry["parse_error"]["message"].is_string(), "{entry}");
}

#[test]
fn unreadable_and_non_utf8_files_fail_offline() {
    let dir = tempfile::tempdir().unwrap();
    let latin1 = write(
        dir.path(),
        "latin1.sql",
        b"-- repair: p\n-- title: caf\xe9\nSELECT 1;\n",
    );
    let missing = dir.path().join("missing.sql").display().to_string();
    let out = pgrepair()
        .args(["--dsn", CLOSED_DSN, "lint", &latin1, &missing])
        .output()
        .unwrap();
    expect_code(&out, 1);
    let text = stdout_of(&out);
    assert!(
        text.contains(&format!("{latin1}:2: file is not valid UTF-8\n")),
        "{text}"
    );
    assert!(text.contains(&format!("{missing}: cannot read")), "{text}");
    assert!(text.contains("2 errors, 0 warnings in 2 files"), "{text}");
}

#[test]
fn a_parsable_file_needs_the_server() {
    // the local parse passes, so it must connect: closed port = exit 2, one clear line
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "ok.sql",
        playbook("clean_one", CLEAN_BODY).as_bytes(),
    );
    let out = pgrepair()
        .args(["--dsn", CLOSED_DSN, "lint", &file])
        .output()
        .unwrap();
    expect_code(&out, 2);
    assert!(stderr_of(&out).starts_with("pgrepair: cannot connect to 127.0.0.1:1/"));
}

#[test]
fn lint_requires_a_file() {
    pgrepair().arg("lint").assert().code(2);
}

// ---------------------------------------------------------------------------------------------
// Against the server (need repair.lint installed)
// ---------------------------------------------------------------------------------------------

#[test]
fn clean_playbook_exits_0() {
    let c = Cluster::shared();
    let db = lint_db(c, "lint_clean");
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "clean.sql",
        playbook("clean_one", CLEAN_BODY).as_bytes(),
    );
    let out = lint_as_carol(c, &db).arg(&file).output().unwrap();
    expect_code(&out, 0);
    assert_eq!(
        stdout_of(&out),
        "0 errors, 0 warnings in 1 file\n",
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn drop_on_line_5_is_an_error_at_5_1() {
    let c = Cluster::shared();
    let db = lint_db(c, "lint_drop");
    let dir = tempfile::tempdir().unwrap();
    // 3 header lines, then line 4 and the DROP on line 5
    let source = playbook(
        "drops_it",
        "CREATE TABLE IF NOT EXISTS public.x (id int);\nDROP TABLE public.x;",
    );
    assert_eq!(source.lines().nth(4), Some("DROP TABLE public.x;"));
    let file = write(dir.path(), "drop.sql", source.as_bytes());
    let out = lint_as_carol(c, &db).arg(&file).output().unwrap();
    expect_code(&out, 1);
    let text = stdout_of(&out);
    assert!(
        text.contains(&format!("{file}:5:1: error[ban-drop] ")),
        "{text}"
    );
    assert!(text.contains("in 1 file"), "{text}");
    assert!(!text.contains("0 errors"), "{text}");
}

#[test]
fn warning_only_playbook_exits_0() {
    let c = Cluster::shared();
    let db = lint_db(c, "lint_warn");
    let dir = tempfile::tempdir().unwrap();
    let source = playbook(
        "dynamic",
        "DO $$ BEGIN RAISE NOTICE 'hello'; END $$;\nCREATE TABLE IF NOT EXISTS public.y (id int);",
    );
    let file = write(dir.path(), "warn.sql", source.as_bytes());
    let out = lint_as_carol(c, &db).arg(&file).output().unwrap();
    expect_code(&out, 0);
    let text = stdout_of(&out);
    assert!(
        text.contains(&format!("{file}:4:1: warning[warn-dynamic-sql] ")),
        "{text}"
    );
    assert!(text.contains("0 errors, 1 warning in 1 file"), "{text}");
}

#[test]
fn json_output_parses_and_covers_every_file() {
    let c = Cluster::shared();
    let db = lint_db(c, "lint_json");
    let dir = tempfile::tempdir().unwrap();
    let clean = write(
        dir.path(),
        "a_clean.sql",
        playbook("clean_one", CLEAN_BODY).as_bytes(),
    );
    let drop = write(
        dir.path(),
        "b_drop.sql",
        playbook(
            "drops_it",
            "CREATE TABLE IF NOT EXISTS public.x (id int);\nDROP TABLE public.x;",
        )
        .as_bytes(),
    );
    let bad = write(dir.path(), "c_bad.sql", BAD_HEADER.as_bytes());
    let out = lint_as_carol(c, &db)
        .args([&clean, &drop, &bad])
        .arg("--json")
        .output()
        .unwrap();
    expect_code(&out, 1);
    let v = json_of(&out);
    let files = v.as_array().expect("an array");
    assert_eq!(files.len(), 3, "{v}");

    assert_eq!(files[0]["file"], clean.as_str());
    assert_eq!(files[0]["findings"], Value::Array(vec![]));
    assert_eq!(files[0]["parse_error"], Value::Null);

    assert_eq!(files[1]["file"], drop.as_str());
    assert_eq!(files[1]["parse_error"], Value::Null);
    let findings = files[1]["findings"].as_array().expect("findings");
    let f = findings
        .iter()
        .find(|f| f["rule"] == Rule::BanDrop.id())
        .unwrap_or_else(|| panic!("no ban-drop in {v}"));
    assert_eq!(f["severity"], "error");
    assert_eq!(f["statement"], 2);
    assert_eq!(f["line"], 5);
    assert_eq!(f["col"], 1);
    assert!(f["message"].is_string());
    for key in ["rule", "severity", "statement", "line", "col", "message"] {
        assert!(f.get(key).is_some(), "{key} missing in {f}");
    }

    assert_eq!(files[2]["file"], bad.as_str());
    assert_eq!(files[2]["parse_error"]["line"], 3);
}

#[test]
fn syntax_error_is_a_lint_error_with_position() {
    let c = Cluster::shared();
    let db = lint_db(c, "lint_syntax");
    let dir = tempfile::tempdir().unwrap();
    let source = playbook(
        "typo",
        "CREATE TABLE IF NOT EXISTS public.x (id int);\nCREAT TABLE public.y (id int);",
    );
    let file = write(dir.path(), "typo.sql", source.as_bytes());
    let out = lint_as_carol(c, &db).arg(&file).output().unwrap();
    expect_code(&out, 1);
    let text = stdout_of(&out);
    assert!(
        text.contains(&format!("{file}:5:")) && text.contains("error[syntax-error]"),
        "{text}"
    );
}

#[test]
fn without_execute_on_lint_it_is_a_server_error() {
    let c = Cluster::shared();
    let db = c.fresh_db("lint_noperm");
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "clean.sql",
        playbook("clean_one", CLEAN_BODY).as_bytes(),
    );
    // bob has no grant at all
    let out = pgrepair()
        .arg("--dsn")
        .arg(c.url(&db, "bob"))
        .arg("lint")
        .arg(&file)
        .output()
        .unwrap();
    expect_code(&out, 1);
    let err = stderr_of(&out);
    assert!(err.starts_with(&format!("pgrepair: {file}: ")), "{err}");
    assert!(err.contains("[SQLSTATE 42501]"), "{err}");
}

#[test]
fn waived_findings_are_shown_as_waived_and_exit_0_expired_ones_are_errors() {
    let c = Cluster::shared();
    let db = lint_db(c, "lint_waived");
    let dir = tempfile::tempdir().unwrap();
    let src = "-- repair: waived_one\n-- title: t\n\
               -- waive: require-if-not-exists until 2099-12-31 because legacy table, TICKET-7\n\
               CREATE TABLE public.legacy (id int);\n";
    let file = write(dir.path(), "waived.sql", src.as_bytes());
    let out = lint_as_carol(c, &db).arg(&file).output().unwrap();
    expect_code(&out, 0);
    let text = stdout_of(&out);
    assert!(text.contains("waived[require-if-not-exists]"), "{text}");
    assert!(text.contains("TICKET-7"), "{text}");
    assert!(!text.contains("error[require-if-not-exists]"), "{text}");

    let expired = write(
        dir.path(),
        "expired.sql",
        src.replace("2099-12-31", "2001-01-01").as_bytes(),
    );
    let out = lint_as_carol(c, &db).arg(&expired).output().unwrap();
    expect_code(&out, 1);
    assert!(
        stdout_of(&out).contains("error[require-if-not-exists]"),
        "{}",
        stdout_of(&out)
    );

    let out = pgrepair()
        .arg("--dsn")
        .arg(c.url(&db, "carol"))
        .args(["--json", "lint", &file])
        .output()
        .unwrap();
    expect_code(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["findings"][0]["severity"], "waived", "{v}");
}
