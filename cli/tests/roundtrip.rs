//! End-to-end tests of the real `pgrepair` binary against a real PostgreSQL 15 server with
//! pg_repair preloaded (the scratch cluster of `pg_repair_tests`). Every test gets its own
//! database. Roles: alice = operator (executor), bob = nobody, carol = author, dave = auditor.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pg_repair_tests::{playbook, register, repo_root, Cluster, PG_BIN};
use serde_json::Value;

/// The sample playbooks shipped in the repository, by id.
const SAMPLES: [&str; 6] = [
    "backfill_orders_placed_on",
    "fk_index_orders_customer",
    "fk_index_orders_customer_online",
    "fk_orders_customer_validate_online",
    "intent_issue_tables",
    "source_config_single_active",
];

/// The tables the sample playbooks' requires-before lists need, owned by alice (the operator)
/// so her playbook runs may add indexes and references.
const SAMPLE_TABLES_SQL: &str = "
    CREATE TABLE public.workspaces (id bigint PRIMARY KEY);
    CREATE TABLE public.source_configs (workspace_id bigint, source_type text, status text);
    CREATE TABLE public.orders (id bigint PRIMARY KEY, customer_id bigint, created_at timestamptz, placed_on date);
    CREATE TABLE public.customers (id bigint PRIMARY KEY);
    ALTER TABLE public.workspaces OWNER TO alice;
    ALTER TABLE public.source_configs OWNER TO alice;
    ALTER TABLE public.orders OWNER TO alice;
    ALTER TABLE public.customers OWNER TO alice;
";

#[track_caller]
fn assert_keys(v: &Value, keys: &[&str]) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    for k in keys {
        assert!(obj.contains_key(*k), "key {k:?} missing in {v}");
    }
}

fn samples_dir() -> PathBuf {
    repo_root().join("playbooks")
}

fn sample_file(id: &str) -> PathBuf {
    samples_dir().join(format!("{id}.sql"))
}

/// A fresh database with the sample playbooks' prerequisite tables.
fn sample_db(c: &Cluster, label: &str) -> String {
    let db = c.fresh_db(label);
    c.connect(&db, "postgres")
        .batch_execute(SAMPLE_TABLES_SQL)
        .expect("sample tables");
    db
}

fn registered_hash(c: &Cluster, db: &str, id: &str) -> String {
    c.connect(db, "postgres")
        .query_one("SELECT hash FROM repair.playbooks WHERE id = $1", &[&id])
        .expect("registered hash")
        .get(0)
}

fn audit_head(c: &Cluster, db: &str) -> String {
    c.connect(db, "postgres")
        .query_one("SELECT repair.audit_head()", &[])
        .expect("audit head")
        .get(0)
}

/// What `verify_audit()` checks: every run, every registry event, every playbook version.
fn audit_rows(c: &Cluster, db: &str) -> i64 {
    c.connect(db, "postgres")
        .query_one(
            "SELECT (SELECT count(*) FROM repair.runs) + (SELECT count(*) FROM repair.registry_events) \
                  + (SELECT count(*) FROM repair.playbook_versions)",
            &[],
        )
        .expect("audit row count")
        .get(0)
}

fn relation_exists(c: &Cluster, db: &str, name: &str) -> bool {
    c.connect(db, "postgres")
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .expect("to_regclass")
        .get(0)
}

/// Registers a playbook as carol (author) through SQL; returns its hash.
fn register_as_carol(c: &Cluster, db: &str, source: &str) -> String {
    let (_, hash, status) = register(&mut c.connect(db, "carol"), source);
    assert_eq!(status, "new");
    hash
}

/// Offline `pgrepair hash FILE`: (hash, id) from `<hash>  <id>  <file>`.
fn offline_hash(file: &Path) -> (String, String) {
    let out = run(pgrepair().arg("hash").arg(file));
    expect_code(&out, 0);
    let text = stdout_of(&out);
    let line = text.lines().next().expect("one line");
    let parts: Vec<&str> = line.split("  ").collect();
    assert_eq!(parts.len(), 3, "{line}");
    assert_eq!(parts[2], file.display().to_string());
    (parts[0].to_string(), parts[1].to_string())
}

/// Lines of the install table: (id, version, status, hash) per file row.
fn install_rows(stdout: &str) -> Vec<(String, String, String, String)> {
    stdout
        .lines()
        .filter(|l| l.contains(".sql"))
        .map(|l| {
            let cells: Vec<String> = l
                .split(['│', '┆'])
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect();
            assert_eq!(cells.len(), 5, "install row: {l}");
            (
                cells[1].clone(),
                cells[2].clone(),
                cells[3].clone(),
                cells[4].clone(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Round trip with the repository's sample playbooks
// ---------------------------------------------------------------------------------------------

#[test]
fn round_trip_with_sample_playbooks() {
    let c = Cluster::shared();
    let db = sample_db(c, "cli_roundtrip");
    let dir = samples_dir();

    // install as the author: every file new
    let out = run(cli(c, &db, "carol").arg("install").arg(&dir));
    expect_code(&out, 0);
    let stdout = stdout_of(&out);
    let rows = install_rows(&stdout);
    assert_eq!(rows.len(), SAMPLES.len(), "{stdout}");
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids, SAMPLES, "sorted by file name: {stdout}");
    for (id, version, status, hash) in &rows {
        assert_eq!(status, "new", "{id}: {stdout}");
        assert_eq!(version, "1", "{id}: {stdout}");
        assert_eq!(hash.len(), 64, "{id}: {stdout}");
    }
    assert!(
        stdout.contains("6 files registered: 6 new, 0 updated, 0 unchanged"),
        "{stdout}"
    );
    assert!(
        !stderr_of(&out).contains("differs from local hash"),
        "{}",
        stderr_of(&out)
    );

    // again: every file unchanged, same hashes
    let out = run(cli(c, &db, "carol").arg("install").arg(&dir));
    expect_code(&out, 0);
    let stdout = stdout_of(&out);
    let again = install_rows(&stdout);
    assert_eq!(again.len(), SAMPLES.len(), "{stdout}");
    for ((id, version, status, hash), first) in again.iter().zip(&rows) {
        assert_eq!(status, "unchanged", "{id}: {stdout}");
        assert_eq!(version, "1", "{id}: {stdout}");
        assert_eq!(hash, &first.3, "{id}");
    }
    assert!(
        stdout.contains("6 files registered: 0 new, 0 updated, 6 unchanged"),
        "{stdout}"
    );

    // the offline hash equals the one install reported and the one the server stored
    for (id, _, _, installed_hash) in &rows {
        let (offline, offline_id) = offline_hash(&sample_file(id));
        assert_eq!(&offline_id, id);
        assert_eq!(&offline, installed_hash, "{id}: offline vs install");
        assert_eq!(
            offline,
            registered_hash(c, &db, id),
            "{id}: offline vs repair.playbooks"
        );
    }

    // list (as the auditor, who may read repair.playbooks)
    let out = run(cli(c, &db, "dave").arg("list"));
    expect_code(&out, 0);
    let stdout = stdout_of(&out);
    for (id, _, _, hash) in &rows {
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!(" {id} ")))
            .unwrap_or_else(|| panic!("{id} not listed: {stdout}"));
        assert!(line.contains(&hash[..16]), "{id} hash prefix: {line}");
        assert!(line.contains("active"), "{line}");
    }
    assert!(stdout.contains("6 playbooks"), "{stdout}");

    // preview as the operator: the hash and the guard verdicts
    let id = "intent_issue_tables";
    let hash = registered_hash(c, &db, id);
    let out = run(cli(c, &db, "alice").args(["preview", id]));
    expect_code(&out, 0);
    let stdout = stdout_of(&out);
    assert!(
        stdout.contains(&format!("hash           {hash}")),
        "{stdout}"
    );
    assert!(stdout.contains("declared role  staging"), "{stdout}");
    assert!(stdout.contains("Guards"), "{stdout}");
    // every guard with this caller's verdict: the ones that need execute's input say so
    for (guard, verdict) in [
        ("ROLE_UNDECLARED", "pass"),
        ("ENV_DISABLED", "pass"),
        ("NOT_AUTHORIZED", "pass"),
        ("REASON_REQUIRED", "needs input"),
        ("UNKNOWN_PLAYBOOK", "pass"),
        ("HASH_MISMATCH", "needs input"),
        ("LINT_REJECTED", "pass"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.contains(guard))
            .unwrap_or_else(|| panic!("guard {guard} not shown: {stdout}"));
        let cells: Vec<&str> = line.split(['│', '┆']).map(str::trim).collect();
        assert_eq!(cells.get(4), Some(&verdict), "{guard}: {line}");
    }
    assert!(
        stdout.contains("would run      yes: every guard passes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("public.workspaces -- all present"),
        "{stdout}"
    );
    assert!(stdout.contains("not there yet"), "{stdout}");
    assert!(!relation_exists(c, &db, "public.intent_issue_drafts"));

    // execute as the operator
    let out = run(cli(c, &db, "alice").args([
        "execute",
        id,
        "--hash",
        &hash,
        "--reason",
        "INC-1: tables lost in restore",
    ]));
    expect_code(&out, 0);
    let stdout = stdout_of(&out);
    assert!(
        stdout.starts_with(&format!("SUCCESS  {id} v1\n")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("hash        {hash}")), "{stdout}");
    assert!(stdout.contains("statements  8 of 8 executed"), "{stdout}");
    assert!(
        stdout.contains("role        staging, executed as alice"),
        "{stdout}"
    );
    for rel in [
        "public.intent_issue_drafts",
        "public.intent_issue_sets",
        "public.intent_issue_history",
    ] {
        assert!(relation_exists(c, &db, rel), "{rel} after the run");
    }
    let run_id: String = c
        .connect(&db, "postgres")
        .query_one(
            "SELECT run_id::text FROM repair.runs WHERE playbook_id = $1 AND status = 'SUCCESS'",
            &[&id],
        )
        .expect("one SUCCESS run recorded")
        .get(0);
    assert!(
        stdout.contains(&format!("run         {run_id}")),
        "{stdout}"
    );

    // runs (auditor)
    let out = run(cli(c, &db, "dave").arg("runs"));
    expect_code(&out, 0);
    let stdout = stdout_of(&out);
    let line = stdout
        .lines()
        .find(|l| l.contains(&run_id))
        .unwrap_or_else(|| panic!("run {run_id} not shown: {stdout}"));
    for want in [
        id,
        "SUCCESS",
        "alice",
        "staging",
        "INC-1: tables lost in restore",
    ] {
        assert!(line.contains(want), "{want}: {line}");
    }
    assert!(stdout.contains("1 run shown, newest first"), "{stdout}");

    // audit verify, with and without a pinned head
    let head = audit_head(c, &db);
    assert_eq!(head.len(), 64);
    let out = run(cli(c, &db, "dave").args(["audit", "verify"]));
    expect_code(&out, 0);
    let stdout = stdout_of(&out);
    // 1 run + 6 registry events + 6 playbook versions
    assert_eq!(audit_rows(c, &db), 13);
    assert!(stdout.contains("audit   ok (13 rows checked)"), "{stdout}");
    assert!(stdout.contains(&format!("head    {head}")), "{stdout}");

    let wrong = "0".repeat(64);
    let out = run(cli(c, &db, "dave").args(["audit", "verify", "--expect-head", &wrong]));
    expect_code(&out, 1);
    assert!(
        stdout_of(&out).contains(&format!("expected head {wrong}: MISMATCH")),
        "{}",
        stdout_of(&out)
    );
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "audit head mismatch: expected {wrong}, current {head}"
        )),
        "{err}"
    );

    let out = run(cli(c, &db, "dave").args(["audit", "verify", "--expect-head", &head]));
    expect_code(&out, 0);
    assert!(
        stdout_of(&out).contains("expected head matches"),
        "{}",
        stdout_of(&out)
    );
    // the pinned head also comes from the environment
    let out = run(cli(c, &db, "dave")
        .env("PGREPAIR_EXPECT_HEAD", &wrong)
        .args(["audit", "verify"]));
    expect_code(&out, 1);

    // a second run of the idempotent playbook succeeds and moves the head
    let out = run(cli(c, &db, "alice").args([
        "execute",
        id,
        "--hash",
        &hash,
        "--reason",
        "INC-1: rerun is harmless",
    ]));
    expect_code(&out, 0);
    let out = run(cli(c, &db, "dave").args(["audit", "verify", "--expect-head", &head]));
    expect_code(&out, 1);
    let new_head = audit_head(c, &db);
    assert_ne!(new_head, head);
    let out = run(cli(c, &db, "dave").args(["audit", "verify", "--expect-head", &new_head]));
    expect_code(&out, 0);
}

/// The connection only through PGHOST/PGPORT/PGUSER/PGDATABASE (no --dsn, no DATABASE_URL).
#[test]
fn libpq_environment_only() {
    let c = Cluster::shared();
    let db = sample_db(c, "cli_env");
    let id = "source_config_single_active";

    let out = run(cli_env(c, &db, "carol").arg("install").arg(samples_dir()));
    expect_code(&out, 0);
    assert_eq!(install_rows(&stdout_of(&out)).len(), SAMPLES.len());

    let hash = registered_hash(c, &db, id);
    assert_eq!(offline_hash(&sample_file(id)).0, hash);

    let out = run(cli_env(c, &db, "alice").args(["preview", id]));
    expect_code(&out, 0);
    assert!(stdout_of(&out).contains(&hash), "{}", stdout_of(&out));

    let out = run(cli_env(c, &db, "alice")
        .env("PGREPAIR_REQUEST_ID", "CHG-42")
        .args(["execute", id, "--hash", &hash, "--reason", "env only"]));
    expect_code(&out, 0);
    assert!(stdout_of(&out).starts_with(&format!("SUCCESS  {id} v1\n")));
    assert!(relation_exists(
        c,
        &db,
        "public.source_configs_one_active_uidx"
    ));
    let (user, request): (String, Option<String>) = {
        let row = c
            .connect(&db, "postgres")
            .query_one(
                "SELECT session_user_name, request_id FROM repair.runs WHERE playbook_id = $1",
                &[&id],
            )
            .expect("run row");
        (row.get(0), row.get(1))
    };
    assert_eq!(user, "alice");
    assert_eq!(request.as_deref(), Some("CHG-42"));

    let out = run(cli_env(c, &db, "dave").arg("list"));
    expect_code(&out, 0);
    assert!(stdout_of(&out).contains(id));
    let out = run(cli_env(c, &db, "dave").args(["runs", "--playbook", id]));
    expect_code(&out, 0);
    assert!(stdout_of(&out).contains("SUCCESS"), "{}", stdout_of(&out));
    let out = run(cli_env(c, &db, "dave").args(["audit", "verify"]));
    expect_code(&out, 0);

    // the environment names the database: the wrong one is a connection error, exit 2
    let out = run(cli_env(c, "no_such_database", "dave").arg("list"));
    expect_code(&out, 2);
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "pgrepair: cannot connect to 127.0.0.1:{}/no_such_database as dave: ",
            c.port
        )),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Refusals
// ---------------------------------------------------------------------------------------------

#[test]
fn refusals_exit_1_with_the_guard_sqlstate() {
    let c = Cluster::shared();
    let db = sample_db(c, "cli_refusals");
    let id = "fk_index_orders_customer";
    let out = run(cli(c, &db, "carol").arg("install").arg(samples_dir()));
    expect_code(&out, 0);
    let hash = registered_hash(c, &db, id);

    // wrong hash
    let wrong = "ab".repeat(32);
    let out = run(cli(c, &db, "alice").args(["execute", id, "--hash", &wrong, "--reason", "r"]));
    expect_code(&out, 1);
    let err = stderr_of(&out);
    assert!(err.starts_with("pgrepair: HASH_MISMATCH"), "{err}");
    assert!(err.contains(&wrong), "expected hash shown: {err}");
    assert!(err.contains(&hash), "registered hash shown: {err}");
    assert!(err.contains("[SQLSTATE RP006]"), "{err}");
    assert!(out.stdout.is_empty(), "{}", stdout_of(&out));

    // bob has no EXECUTE on repair.execute at all: permission denied, 42501
    let out = run(cli(c, &db, "bob").args(["execute", id, "--hash", &hash, "--reason", "r"]));
    expect_code(&out, 1);
    let err = stderr_of(&out);
    assert!(err.contains("[SQLSTATE 42501]"), "{err}");

    // with EXECUTE granted he reaches the executor guard: NOT_AUTHORIZED, 42501
    c.connect(&db, "postgres")
        .batch_execute(
            "GRANT USAGE ON SCHEMA repair TO bob;
             GRANT EXECUTE ON FUNCTION repair.execute(text, text, text, boolean, text) TO bob;",
        )
        .expect("grant bob");
    let out = run(cli(c, &db, "bob").args(["execute", id, "--hash", &hash, "--reason", "r"]));
    expect_code(&out, 1);
    let err = stderr_of(&out);
    assert!(err.starts_with("pgrepair: NOT_AUTHORIZED"), "{err}");
    assert!(err.contains("[SQLSTATE 42501]"), "{err}");
    let out =
        run(cli(c, &db, "bob").args(["--json", "execute", id, "--hash", &hash, "--reason", "r"]));
    expect_code(&out, 1);
    let v = json_of(&out);
    assert_eq!(v["error"]["kind"], "server");
    assert_eq!(v["error"]["sqlstate"], "42501");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("NOT_AUTHORIZED"));

    // no --reason at all: usage error, nothing sent
    let out = run(cli(c, &db, "alice").args(["execute", id, "--hash", &hash]));
    expect_code(&out, 2);
    assert!(stderr_of(&out).contains("--reason"), "{}", stderr_of(&out));

    // an empty reason reaches the server: REASON_REQUIRED
    let out = run(cli(c, &db, "alice").args(["execute", id, "--hash", &hash, "--reason", ""]));
    expect_code(&out, 1);
    let err = stderr_of(&out);
    assert!(err.starts_with("pgrepair: REASON_REQUIRED"), "{err}");
    assert!(err.contains("[SQLSTATE RP004]"), "{err}");

    // a reason over 500 characters: REASON_REQUIRED too
    let long = "x".repeat(501);
    let out = run(cli(c, &db, "alice").args(["execute", id, "--hash", &hash, "--reason", &long]));
    expect_code(&out, 1);
    assert!(
        stderr_of(&out).contains("[SQLSTATE RP004]"),
        "{}",
        stderr_of(&out)
    );

    // unknown playbook
    let out = run(cli(c, &db, "alice").args([
        "execute",
        "no_such_playbook",
        "--hash",
        &hash,
        "--reason",
        "r",
    ]));
    expect_code(&out, 1);
    let err = stderr_of(&out);
    assert!(err.starts_with("pgrepair: UNKNOWN_PLAYBOOK"), "{err}");
    assert!(err.contains("[SQLSTATE RP005]"), "{err}");

    // nothing ran, nothing was recorded
    assert!(!relation_exists(c, &db, "public.orders_customer_id_idx"));
    let runs: i64 = c
        .connect(&db, "postgres")
        .query_one("SELECT count(*) FROM repair.runs", &[])
        .unwrap()
        .get(0);
    assert_eq!(runs, 0);
}

// ---------------------------------------------------------------------------------------------
// 3. A FAILED run
// ---------------------------------------------------------------------------------------------

#[test]
fn failed_run_exits_1_and_is_recorded() {
    let c = Cluster::shared();
    let db = c.fresh_db("cli_failed");
    let id = "second_statement_fails";
    let source = playbook(
        id,
        "CREATE TABLE IF NOT EXISTS public.first_ok (id int);\n\
         CREATE INDEX IF NOT EXISTS missing_idx ON public.no_such_table (id);",
    );
    let hash = register_as_carol(c, &db, &source);

    let out = run(cli(c, &db, "alice").args(["execute", id, "--hash", &hash, "--reason", "try"]));
    expect_code(&out, 1);
    let stdout = stdout_of(&out);
    let err = stderr_of(&out);
    assert!(
        stdout.starts_with(&format!("FAILED  {id} v1\n")),
        "{stdout}"
    );
    assert!(stdout.contains("[SQLSTATE 42P01]"), "{stdout}");
    assert!(stdout.contains("no_such_table"), "{stdout}");
    assert!(stdout.contains("rolled back"), "{stdout}");
    assert!(
        err.starts_with(&format!("pgrepair: {id}: run FAILED")),
        "{err}"
    );
    assert!(err.contains("[SQLSTATE 42P01]"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // the first statement was rolled back with the second
    assert!(!relation_exists(c, &db, "public.first_ok"));

    // --json: the execute document, status FAILED, still exit 1
    let out = run(cli(c, &db, "alice").args([
        "--json",
        "execute",
        id,
        "--hash",
        &hash,
        "--reason",
        "try again",
    ]));
    expect_code(&out, 1);
    let v = json_of(&out);
    assert_eq!(v["status"], "FAILED", "{v}");
    assert_eq!(v["error_code"], "42P01", "{v}");
    assert_eq!(v["playbook"], id);
    assert_eq!(v["hash"], hash.as_str());
    assert_eq!(v["statements_total"], 2, "{v}");
    assert!(v["run_id"].as_str().is_some_and(|s| s.len() == 36), "{v}");

    // both runs are in the audit trail, which still verifies
    let out = run(cli(c, &db, "dave").args(["runs", "--playbook", id]));
    expect_code(&out, 0);
    let stdout = stdout_of(&out);
    assert_eq!(
        stdout.lines().filter(|l| l.contains("FAILED")).count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("42P01"), "{stdout}");
    let out = run(cli(c, &db, "dave").args(["audit", "verify"]));
    expect_code(&out, 0);
    // 2 runs + 1 registry event + 1 playbook version
    assert_eq!(audit_rows(c, &db), 4);
    assert!(
        stdout_of(&out).contains("audit   ok (4 rows checked)"),
        "{}",
        stdout_of(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// 4. --json everywhere
// ---------------------------------------------------------------------------------------------

#[test]
fn json_output_of_every_command() {
    let c = Cluster::shared();
    let db = sample_db(c, "cli_json");
    let id = "fk_index_orders_customer";

    // install
    let out = run(cli(c, &db, "carol")
        .arg("--json")
        .arg("install")
        .arg(samples_dir()));
    expect_code(&out, 0);
    let v = json_of(&out);
    let items = v.as_array().expect("install: array");
    assert_eq!(items.len(), SAMPLES.len());
    for (item, want_id) in items.iter().zip(SAMPLES) {
        assert_keys(item, &["file", "id", "kind", "version", "status", "hash"]);
        assert_eq!(item["id"], want_id);
        assert_eq!(item["kind"], "playbook");
        assert_eq!(item["version"], 1);
        assert_eq!(item["status"], "new");
        assert_eq!(item["hash"], registered_hash(c, &db, want_id).as_str());
        assert_eq!(
            item["file"],
            sample_file(want_id).display().to_string().as_str()
        );
    }
    // the flag also works after the subcommand
    let out = run(cli(c, &db, "carol")
        .arg("install")
        .arg(samples_dir())
        .arg("--json"));
    expect_code(&out, 0);
    let v = json_of(&out);
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "unchanged"));

    // hash (offline)
    let out = run(pgrepair().args(["--json", "hash"]).arg(sample_file(id)));
    expect_code(&out, 0);
    let v = json_of(&out);
    assert_keys(&v[0], &["file", "id", "kind", "hash", "canonical"]);
    assert_eq!(v[0]["hash"], registered_hash(c, &db, id).as_str());

    // list
    let out = run(cli(c, &db, "dave").args(["--json", "list"]));
    expect_code(&out, 0);
    let v = json_of(&out);
    let items = v.as_array().expect("list: array");
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, SAMPLES);
    for item in items {
        assert_keys(
            item,
            &[
                "id",
                "version",
                "kind",
                "hash",
                "title",
                "status",
                "environments",
                "requires_before",
                "requires_after",
                "lint_errors",
                "lint_warnings",
                "waivers",
                "registered_at",
            ],
        );
        assert_eq!(item["status"], "active");
        // findings before waivers: the backfill's UPDATE is an error its waiver lifts
        let waived = item["waivers"].as_array().map_or(0, Vec::len);
        assert_eq!(item["lint_errors"], waived, "{item}");
        // ISO 8601 timestamp
        let at = item["registered_at"].as_str().unwrap();
        assert_eq!(at.as_bytes()[10], b'T', "{at}");
    }
    let item = items.iter().find(|i| i["id"] == id).expect("listed");
    let hash = item["hash"].as_str().unwrap().to_string();
    assert_eq!(hash, registered_hash(c, &db, id));
    assert_eq!(item["requires_after"][0], "public.orders_customer_id_idx");

    // preview
    let out = run(cli(c, &db, "alice").args(["preview", id, "--json"]));
    expect_code(&out, 0);
    let p = json_of(&out);
    assert_keys(
        &p,
        &[
            "id",
            "version",
            "hash",
            "guards",
            "would_run",
            "requires_before",
            "requires_after",
            "missing_before",
            "missing_after",
            "statements",
            "lint",
            "waivers",
        ],
    );
    assert_eq!(p["id"], id);
    assert_eq!(p["hash"], hash.as_str());
    assert_eq!(p["missing_before"], serde_json::json!([]));
    assert_eq!(
        p["missing_after"],
        serde_json::json!(["public.orders_customer_id_idx"])
    );
    let guards = p["guards"].as_array().expect("guards");
    assert_eq!(guards.len(), 8, "{p}");
    for g in guards {
        assert_keys(g, &["guard", "name", "verdict", "sqlstate"]);
        assert_ne!(g["verdict"], "fail", "{g}");
    }
    assert_eq!(p["statements"].as_array().unwrap().len(), 1);

    // execute
    let out = run(cli(c, &db, "alice").args([
        "--json", "execute", id, "--hash", &hash, "--reason", "json run",
    ]));
    expect_code(&out, 0);
    let e = json_of(&out);
    assert_keys(
        &e,
        &[
            "run_id",
            "playbook",
            "version",
            "hash",
            "status",
            "statements_total",
            "statements_executed",
            "missing_before",
            "missing_after",
            "duration_ms",
            "error_code",
            "error_message",
        ],
    );
    assert_eq!(e["status"], "SUCCESS");
    assert_eq!(e["statements_executed"], 1);
    assert_eq!(e["missing_after"], serde_json::json!([]));
    assert!(e["error_code"].is_null(), "{e}");
    assert!(e.get("backup_file").is_none(), "{e}");
    let run_id = e["run_id"].as_str().unwrap().to_string();
    assert!(relation_exists(c, &db, "public.orders_customer_id_idx"));

    // runs
    let out = run(cli(c, &db, "dave").args(["--json", "runs"]));
    expect_code(&out, 0);
    let v = json_of(&out);
    let runs = v.as_array().expect("runs: array");
    assert_eq!(runs.len(), 1, "{v}");
    assert_keys(
        &runs[0],
        &[
            "run_id",
            "playbook_id",
            "version",
            "status",
            "started_at",
            "duration_ms",
            "session_user_name",
            "declared_role",
            "reason",
            "error_code",
            "error_message",
            "row_hash",
        ],
    );
    assert_eq!(runs[0]["run_id"], run_id.as_str());
    assert_eq!(runs[0]["playbook_id"], id);
    assert_eq!(runs[0]["status"], "SUCCESS");
    assert_eq!(runs[0]["session_user_name"], "alice");
    assert_eq!(runs[0]["reason"], "json run");
    assert!(runs[0]["duration_ms"].is_number(), "{}", runs[0]);

    // audit verify
    let head = audit_head(c, &db);
    let out = run(cli(c, &db, "dave").args(["--json", "audit", "verify"]));
    expect_code(&out, 0);
    let a = json_of(&out);
    assert_keys(
        &a,
        &[
            "ok",
            "rows_checked",
            "first_bad_run",
            "head",
            "expected_head",
            "head_matches",
        ],
    );
    assert_eq!(a["ok"], true);
    assert_eq!(a["rows_checked"], audit_rows(c, &db));
    assert_eq!(a["head"], head.as_str());
    assert!(a["expected_head"].is_null());
    assert!(a["head_matches"].is_null());
    assert!(a["first_bad_run"].is_null());

    let out = run(cli(c, &db, "dave").args(["--json", "audit", "verify", "--expect-head", "00"]));
    expect_code(&out, 1);
    let a = json_of(&out);
    assert_eq!(a["ok"], true);
    assert_eq!(a["head_matches"], false);
    assert_eq!(a["expected_head"], "00");

    // errors with --json are one JSON document on stdout
    let out = run(cli(c, &db, "alice").args(["--json", "preview", "no_such_playbook"]));
    expect_code(&out, 1);
    let v = json_of(&out);
    assert_keys(
        &v["error"],
        &["kind", "sqlstate", "message", "detail", "hint"],
    );
    assert_eq!(v["error"]["kind"], "server", "{v}");
    assert_eq!(v["error"]["sqlstate"], "RP005", "{v}");
    assert_eq!(
        v["error"]["message"],
        "UNKNOWN_PLAYBOOK: no playbook no_such_playbook"
    );
    let out = run(cli(c, &db, "alice").args([
        "--json",
        "execute",
        "no_such_playbook",
        "--hash",
        &hash,
        "--reason",
        "r",
    ]));
    expect_code(&out, 1);
    let v = json_of(&out);
    assert_eq!(v["error"]["kind"], "server", "{v}");
    assert_eq!(v["error"]["sqlstate"], "RP005", "{v}");
    assert!(out.stderr.is_empty(), "{}", stderr_of(&out));
}

/// `preview` of an id that is not registered: the server's RP005, exit 1, nothing on stdout.
#[test]
fn preview_of_unknown_playbook_is_exit_1() {
    let c = Cluster::shared();
    let db = c.fresh_db("cli_preview_unknown");
    let out = run(cli(c, &db, "alice").args(["preview", "no_such_playbook"]));
    expect_code(&out, 1);
    assert!(out.stdout.is_empty(), "{}", stdout_of(&out));
    let err = stderr_of(&out);
    assert_eq!(
        err.lines().next().unwrap(),
        "pgrepair: UNKNOWN_PLAYBOOK: no playbook no_such_playbook [SQLSTATE RP005]",
        "{err}"
    );
    assert!(
        err.lines().skip(1).all(|l| l.starts_with("  hint: ")),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Connection errors
// ---------------------------------------------------------------------------------------------

#[test]
fn closed_port_is_exit_2_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let dsn = format!("host=127.0.0.1 port={port} user=alice dbname=x connect_timeout=5");
    for args in [
        vec!["list"],
        vec!["install", "PLAYBOOKS"],
        vec!["preview", "x"],
        vec!["execute", "x", "--hash", "h", "--reason", "r"],
        vec!["runs"],
        vec!["audit", "verify"],
    ] {
        let dir = samples_dir().display().to_string();
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "PLAYBOOKS" { dir.as_str() } else { a })
            .collect();
        let out = run(pgrepair().arg("--dsn").arg(&dsn).args(&args));
        expect_code(&out, 2);
        let err = stderr_of(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with(&format!(
                "pgrepair: cannot connect to 127.0.0.1:{port}/x as alice: "
            )),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");

        let out = run(pgrepair().arg("--json").arg("--dsn").arg(&dsn).args(&args));
        expect_code(&out, 2);
        let v = json_of(&out);
        assert_eq!(v["error"]["kind"], "connection", "{args:?}");
        assert_eq!(v["error"]["sqlstate"], "08001", "{args:?}");
    }

    // the same through the environment only
    let out = run(pgrepair()
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", port.to_string())
        .env("PGUSER", "alice")
        .env("PGDATABASE", "x")
        .arg("list"));
    expect_code(&out, 2);
    assert_eq!(stderr_of(&out).lines().count(), 1, "{}", stderr_of(&out));
}

#[test]
fn server_refused_login_is_exit_2_with_its_sqlstate() {
    let c = Cluster::shared();
    let out = run(cli(c, "no_such_database", "alice").args(["--json", "list"]));
    expect_code(&out, 2);
    let v = json_of(&out);
    assert_eq!(v["error"]["kind"], "connection");
    assert_eq!(v["error"]["sqlstate"], "3D000", "{v}");
}

// ---------------------------------------------------------------------------------------------
// 6. Backups
// ---------------------------------------------------------------------------------------------

#[test]
fn backups_before_execute_keep_the_newest_n() {
    let c = Cluster::shared();
    let db = sample_db(c, "cli_backup");
    // pg_dump as the operator reads every table of the database
    c.connect(&db, "postgres")
        .batch_execute(
            "GRANT SELECT ON ALL TABLES IN SCHEMA repair TO alice;
                       GRANT SELECT ON ALL SEQUENCES IN SCHEMA repair TO alice;",
        )
        .expect("grant");
    let id = "fk_index_orders_customer";
    let out = run(cli(c, &db, "carol").arg("install").arg(samples_dir()));
    expect_code(&out, 0);
    let hash = registered_hash(c, &db, id);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("backups");
    // a backup of another playbook in the same directory is left alone
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let other = dir.join(format!(
        "{db}-intent_issue_tables-000000000000-20200101T000000Z-0000000000000000.dump"
    ));
    std::fs::write(&other, b"x").unwrap();
    let pg_dump = format!("{PG_BIN}/pg_dump");

    let mut made = Vec::new();
    for n in 1..=3 {
        let out = run(cli(c, &db, "alice")
            .args(["execute", id, "--hash", &hash])
            .args(["--reason", &format!("backup run {n}")])
            .arg("--backup-dir")
            .arg(&dir)
            .args(["--keep", "2", "--pg-dump", &pg_dump]));
        expect_code(&out, 0);
        let stdout = stdout_of(&out);
        assert!(stdout.starts_with("SUCCESS"), "{stdout}");
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with("backup"))
            .unwrap_or_else(|| panic!("no backup line: {stdout}"));
        let file = line
            .trim_start()
            .strip_prefix("backup")
            .unwrap()
            .trim()
            .split(" (")
            .next()
            .unwrap()
            .to_string();
        assert!(
            file.starts_with(&format!("{}/{db}-{id}-", dir.display())),
            "{file}"
        );
        // <db>-<id>-<12 hex>-<yyyymmddThhmmssZ>-<16 hex nonce>.dump
        let tail = file.strip_suffix(".dump").expect("ends with .dump");
        let (stamp_part, nonce) = tail.rsplit_once('-').expect("nonce");
        assert_eq!(nonce.len(), 16, "{file}");
        assert!(stamp_part.ends_with('Z'), "{file}");
        if n == 3 {
            assert!(line.contains("(removed 1 older backup)"), "{line}");
        }
        made.push(PathBuf::from(file));
    }

    let ours: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{db}-{id}-")))
        .collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert!(!made[0].exists(), "the oldest backup is removed");
    assert!(made[1].exists() && made[2].exists());
    assert!(other.exists(), "other playbook's backup kept");
    assert!(
        !std::fs::read_dir(&dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".partial")),
        "no partial files left"
    );
    // a real custom-format dump
    let head = std::fs::read(&made[2]).unwrap();
    assert!(head.starts_with(b"PGDMP"), "custom-format dump");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&made[2]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "dump mode {mode:o}");
    }

    // --json: backup_file and backups_removed
    let out = run(cli(c, &db, "alice")
        .args([
            "--json",
            "execute",
            id,
            "--hash",
            &hash,
            "--reason",
            "json backup",
        ])
        .arg("--backup-dir")
        .arg(&dir)
        .args(["--keep", "2", "--pg-dump", &pg_dump]));
    expect_code(&out, 0);
    let v = json_of(&out);
    assert_eq!(v["status"], "SUCCESS");
    let file = v["backup_file"].as_str().expect("backup_file");
    assert!(Path::new(file).exists());
    assert_eq!(
        v["backups_removed"],
        serde_json::json!([made[1].display().to_string()])
    );

    // a failing pg_dump: exit 1, nothing executed, nothing left behind
    let before: i64 = c
        .connect(&db, "postgres")
        .query_one("SELECT count(*) FROM repair.runs", &[])
        .unwrap()
        .get(0);
    let out = run(cli(c, &db, "alice")
        .args(["execute", id, "--hash", &hash, "--reason", "bad dump"])
        .arg("--backup-dir")
        .arg(&dir)
        .args(["--pg-dump", "/bin/false"]));
    expect_code(&out, 1);
    let err = stderr_of(&out);
    assert!(err.contains("backup failed"), "{err}");
    assert!(err.contains("nothing was executed"), "{err}");
    let after: i64 = c
        .connect(&db, "postgres")
        .query_one("SELECT count(*) FROM repair.runs", &[])
        .unwrap()
        .get(0);
    assert_eq!(before, after, "no run after a failed backup");
}
