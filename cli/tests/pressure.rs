//! The CLI under pressure, with the real binary and a real server: exit codes that survive a
//! closed stdout or stderr (`| true` under pipefail, `| head -1`, `2>&-`, broken pipes),
//! Ctrl-C during a running statement, NUL-byte parity between `hash` and the server, JSON
//! errors for a missing subcommand, `install` reporting what it skips, and the human execute
//! output.

mod common;
use common::*;

use std::ffi::OsString;
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

use pg_repair_tests::{playbook, register, Cluster};

fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("pgrepair")
}

/// `bash -c 'set -o pipefail; pgrepair ARGS <redirect>'`: the shell's exit status is the
/// pipeline's, so under pipefail it is pgrepair's own whenever pgrepair fails.
fn shell(args: &[OsString], tail: &str) -> Output {
    let mut cmd = StdCommand::new("bash");
    cmd.arg("-c")
        .arg(format!("set -o pipefail; \"$0\" \"$@\" {tail}"))
        .arg(bin())
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_BACKTRACE");
    cmd.output().expect("bash")
}

/// pgrepair with stdout and stderr both connected to pipes whose reading ends are already
/// closed: every write is EPIPE.
fn broken_pipes(args: &[OsString]) -> Output {
    let (out_w, err_w) = (closed_pipe(), closed_pipe());
    let status = StdCommand::new(bin())
        .args(args)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w))
        .status()
        .unwrap();
    Output {
        status,
        stdout: Vec::new(),
        stderr: Vec::new(),
    }
}

/// The writing end of a pipe whose reading end is already closed.
fn closed_pipe() -> std::fs::File {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two new descriptors; we close one and own the other.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        libc::close(fds[0]);
        std::fs::File::from_raw_fd(fds[1])
    }
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// The exit code of one command is the same however its output streams are treated.
#[track_caller]
fn same_code_everywhere(label: &str, args: &[OsString], code: i32) {
    let normal = StdCommand::new(bin()).args(args).output().unwrap();
    expect_code(&normal, code);
    assert!(
        !normal.stdout.is_empty() || !normal.stderr.is_empty(),
        "{label}: says something"
    );
    for (how, out) in [
        ("| true", shell(args, "| true")),
        ("| head -1", shell(args, "| head -1")),
        ("2>&-", shell(args, "2>&-")),
        ("| true 2>&-", shell(args, "2>&- | true")),
        ("broken stdout and stderr pipes", broken_pipes(args)),
    ] {
        assert_eq!(
            out.status.code(),
            Some(code),
            "{label} {how}: exit code\n--- stderr\n{}",
            stderr_of(&out)
        );
        assert_no_panic(&out);
    }
}

/// A database with: a playbook that fails, a critical check that fails, alice allowed to read
/// everything pg_dump needs.
fn pressure_db(c: &Cluster, label: &str) -> (String, String) {
    let db = c.fresh_db(label);
    let mut su = c.connect(&db, "postgres");
    // run_checks for the operator (as in validation_cli.rs)
    su.batch_execute("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA repair TO repair_operators")
        .unwrap();
    register(
        &mut su,
        "-- check: always_bad\n-- title: always fails\n-- severity: critical\n-- tags: t\n\
         SELECT 1 AS bad;\n",
    );
    let (_, hash, _) = register(
        &mut c.connect(&db, "carol"),
        &playbook(
            "failing",
            "CREATE INDEX IF NOT EXISTS missing_idx ON public.no_such_table (id);",
        ),
    );
    (db, hash)
}

#[test]
fn exit_codes_survive_closed_pipes_and_a_closed_stderr() {
    let c = Cluster::shared();
    let (db, hash) = pressure_db(c, "pressure_exit");
    let url = c.url(&db, "alice");
    let tmp = tempfile::tempdir().unwrap();
    // a lint file with thousands of findings: far more output than a pipe buffer holds
    let mut body = String::new();
    for i in 0..4000 {
        body.push_str(&format!("DELETE FROM public.t{i};\n"));
    }
    let bad = write(tmp.path(), "bad.sql", playbook("lint_bad", &body));
    let broken = write(tmp.path(), "broken.sql", "-- repair: x\n-- colour: blue\n");

    let cases: Vec<(&str, Vec<OsString>, i32)> = vec![
        (
            "execute failing",
            os(&[
                "--dsn", &url, "execute", "failing", "--hash", &hash, "--reason", "pipe",
            ]),
            1,
        ),
        (
            "--json execute failing",
            os(&[
                "--dsn", &url, "--json", "execute", "failing", "--hash", &hash, "--reason", "pipe",
            ]),
            1,
        ),
        (
            "check NO-GO",
            os(&["--dsn", &url, "check", "--tag", "t"]),
            3,
        ),
        (
            "--json check NO-GO",
            os(&["--dsn", &url, "--json", "check", "--tag", "t"]),
            3,
        ),
        (
            "audit verify --expect-head WRONG",
            os(&["--dsn", &url, "audit", "verify", "--expect-head", "WRONG"]),
            1,
        ),
        ("lint bad.sql", os(&["--dsn", &url, "lint", &bad]), 1),
        (
            "--json lint bad.sql",
            os(&["--dsn", &url, "--json", "lint", &bad]),
            1,
        ),
        ("lint broken header", os(&["lint", &broken]), 1),
        ("hash broken", os(&["hash", &broken]), 1),
        (
            "assert-not-empty on an empty database",
            os(&["--dsn", &url, "assert-not-empty"]),
            99,
        ),
        ("connection refused", os(&["--dsn", CLOSED_DSN, "list"]), 2),
    ];
    for (label, args, code) in &cases {
        same_code_everywhere(label, args, *code);
    }
    // the lint output really was cut short by `head -1` (so EPIPE did happen)
    let out = shell(&os(&["--dsn", &url, "lint", &bad]), "| head -1");
    assert_eq!(stdout_of(&out).lines().count(), 1);
}

#[test]
fn ctrl_c_cancels_the_running_statement_and_exits_130() {
    let c = Cluster::shared();
    let db = c.fresh_db("pressure_sigint");
    c.connect(&db, "postgres")
        .batch_execute("GRANT CREATE ON SCHEMA public TO alice")
        .unwrap();
    let id = "sleepy";
    let (_, hash, _) = register(
        &mut c.connect(&db, "carol"),
        &playbook(
            id,
            "SELECT pg_sleep(6);\nCREATE TABLE IF NOT EXISTS public.never_created (x int);",
        ),
    );
    let start = Instant::now();
    let child = StdCommand::new(bin())
        .args(["--dsn", &c.url(&db, "alice"), "execute", id])
        .args(["--hash", &hash, "--reason", "will be cancelled"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the statement is running on the server
    let mut su = c.connect(&db, "postgres");
    loop {
        let n: i64 = su
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state = 'active' AND query LIKE '%repair.execute%' \
                 AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0);
        if n == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "execute never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1200));
    // SAFETY: SIGINT to the pgrepair process this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let elapsed = start.elapsed();
    expect_code(&out, 130);
    assert!(
        elapsed < Duration::from_secs(5),
        "cancelled, not waited out: {elapsed:?}"
    );
    let err = stderr_of(&out);
    assert!(err.contains("cancel"), "{err}");
    assert!(!err.contains("backtrace"), "{err}");
    // the statement after the sleep never ran
    let exists: bool = su
        .query_one(
            "SELECT to_regclass('public.never_created') IS NOT NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!exists, "the cancelled run's table must not exist");
    // nothing still running on the server
    let n: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state = 'active' AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0);

    // NEEDS THE LEAD'S SERVER CHANGE (issue 15, item 5, server side): a cancelled execute
    // leaves a FAILED audit row with error_code 57014. Until the extension records it, this
    // one assertion fails; everything above is the CLI's part and passes on its own.
    let row = su
        .query_opt(
            "SELECT status::text, error_code FROM repair.runs WHERE playbook_id = $1 \
             ORDER BY started_at DESC LIMIT 1",
            &[&id],
        )
        .unwrap();
    let (status, code): (String, Option<String>) = row
        .map(|r| (r.get(0), r.get(1)))
        .unwrap_or_else(|| ("(no row)".to_string(), None));
    assert_eq!(
        (status.as_str(), code.as_deref()),
        ("FAILED", Some("57014")),
        "the audit shows the cancelled run (needs the server change)"
    );
}

#[test]
fn nul_byte_parity_between_hash_and_the_server() {
    let c = Cluster::shared();
    let db = c.fresh_db("pressure_nul");
    let tmp = tempfile::tempdir().unwrap();
    let mut su = c.connect(&db, "postgres");
    for (name, text) in [
        (
            "header.sql",
            "-- repair: nul_\0one\n-- title: T\nSELECT 1;\n",
        ),
        (
            "body.sql",
            "-- repair: nul_two\n-- title: T\nSELECT 'a\0b';\n",
        ),
    ] {
        let file = write(tmp.path(), name, text);
        // offline: refused, exit 1, says why
        let out = run(pgrepair().args(["hash", &file]));
        expect_code(&out, 1);
        let err = stderr_of(&out);
        assert!(err.contains("NUL") && err.contains("22021"), "{err}");
        let out = run(pgrepair().args(["--json", "hash", &file]));
        expect_code(&out, 1);
        // the server: refused too (PostgreSQL text cannot carry it)
        let e = su
            .query_one("SELECT repair.hash($1)", &[&text])
            .expect_err("server refuses NUL");
        let code = e.code().map(|c| c.code().to_string());
        assert_eq!(code.as_deref(), Some("22021"), "{e}");
        // without the NUL both agree on the hash
        let clean = text.replace('\0', "");
        let file = write(tmp.path(), &format!("clean_{name}"), &clean);
        let out = run(pgrepair().args(["hash", &file]));
        expect_code(&out, 0);
        let local = stdout_of(&out)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        let server: String = su
            .query_one("SELECT repair.hash($1)", &[&clean])
            .unwrap()
            .get(0);
        assert_eq!(local, server);
    }
}

#[test]
fn json_audit_or_baseline_without_subcommand_is_a_json_error() {
    for group in ["audit", "baseline"] {
        let out = run(pgrepair().args(["--json", group]));
        expect_code(&out, 2);
        let v = json_of(&out);
        assert_eq!(v["error"]["kind"], "usage", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(group) && msg.contains("verify"), "{msg}");
        // without --json: help text, still exit 2
        let out = run(pgrepair().arg(group));
        expect_code(&out, 2);
    }
    let out = run(pgrepair().arg("--json"));
    expect_code(&out, 2);
    assert_eq!(json_of(&out)["error"]["kind"], "usage");
    // --help is still help
    let out = run(pgrepair().args(["--json", "audit", "--help"]));
    expect_code(&out, 0);
}

#[test]
fn install_reports_every_skipped_entry() {
    let c = Cluster::shared();
    let db = c.fresh_db("pressure_install");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        dir,
        "good.sql",
        playbook(
            "skip_ok",
            "CREATE TABLE IF NOT EXISTS public.skip_ok (id int);",
        ),
    );
    std::os::unix::fs::symlink(dir.join("gone.sql.txt"), dir.join("dangling.sql")).unwrap();
    let fifo = std::ffi::CString::new(dir.join("fifo.sql").to_string_lossy().as_bytes()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    std::fs::create_dir(dir.join("folder.sql")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a playbook").unwrap();

    let out = run(cli(c, &db, "carol")
        .arg("install")
        .arg(dir)
        .timeout(Duration::from_secs(30)));
    expect_code(&out, 0);
    let err = stderr_of(&out);
    for (name, why) in [
        ("dangling.sql", "dangling symbolic link"),
        ("fifo.sql", "a FIFO"),
        ("folder.sql", "a directory"),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not reported: {err}"));
        assert!(line.starts_with("pgrepair: warning: skipped"), "{line}");
        assert!(line.contains(why), "{line}");
    }
    assert!(!err.contains("notes.txt"), "{err}");
    assert!(
        stdout_of(&out).contains("1 file registered"),
        "{}",
        stdout_of(&out)
    );
}

#[test]
fn human_execute_output_separates_labels_from_values() {
    let c = Cluster::shared();
    let db = c.fresh_db("pressure_labels");
    let id = "needs_absent";
    let source = format!(
        "-- repair: {id}\n-- title: needs a table\n-- environments: staging\n\
         -- requires-before: public.absent_table\n\
         CREATE TABLE IF NOT EXISTS public.labels_t (id int);\n"
    );
    let (_, hash, _) = register(&mut c.connect(&db, "carol"), &source);
    let out =
        run(cli(c, &db, "alice").args(["execute", id, "--hash", &hash, "--reason", "labels"]));
    let stdout = stdout_of(&out);
    assert!(
        stdout.contains("  missing before: public.absent_table"),
        "{stdout}\n{}",
        stderr_of(&out)
    );
    // every label line: two spaces, a label, then at least one space before the value
    for l in stdout.lines().skip(1) {
        let t = l.trim_start();
        let label_end = t.find("  ").or_else(|| t.find(": ")).unwrap_or(0);
        assert!(label_end > 0, "label runs into its value: {l:?}");
    }
}

/// Peak RSS of `lint` on a ~50 MB file with ~1.7 M findings (issue 15: it took 1.1 GB when
/// findings were collected). Slow (the server parses 50 MB), so ignored by default:
///   cargo test -p pgrepair --test pressure lint_streams -- --ignored --nocapture
/// Set PGREPAIR_COMPARE_BIN to another pgrepair binary to print its numbers too.
#[test]
#[ignore]
fn lint_streams_findings_in_bounded_memory() {
    let c = Cluster::shared();
    let db = c.fresh_db("pressure_lint_rss");
    let tmp = tempfile::tempdir().unwrap();
    let lines: usize = std::env::var("PGREPAIR_LINT_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_700_000);
    let mut body = String::with_capacity(lines * 31);
    for i in 0..lines {
        body.push_str(&format!("DELETE FROM public.tbl_{i:09};\n"));
    }
    let file = write(tmp.path(), "huge.sql", playbook("huge", &body));
    let size = std::fs::metadata(&file).unwrap().len();
    let measure = |bin: &std::ffi::OsStr| -> (u64, usize, f64) {
        let out_path = tmp.path().join("out.txt");
        let start = Instant::now();
        let out = StdCommand::new("/usr/bin/time")
            .arg("-v")
            .arg(bin)
            .args(["--dsn", &c.url(&db, "carol"), "lint", &file])
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
        let err = stderr_of(&out);
        let kb: u64 = err
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Maximum resident set size (kbytes): ")
            })
            .and_then(|v| v.trim().parse().ok())
            .expect("time -v output");
        let n = std::fs::read_to_string(&out_path).unwrap().lines().count();
        (kb, n, secs)
    };
    let (kb, n, secs) = measure(bin().as_os_str());
    println!(
        "pgrepair lint: {size} bytes, {} findings lines, peak RSS {} MB, {secs:.1} s",
        n - 1,
        kb / 1024
    );
    if let Some(other) = std::env::var_os("PGREPAIR_COMPARE_BIN") {
        let (kb2, n2, secs2) = measure(&other);
        println!(
            "compare binary: {} findings lines, peak RSS {} MB, {secs2:.1} s",
            n2 - 1,
            kb2 / 1024
        );
    }
    assert!(n > lines, "every finding printed");
    // the file itself is held once (plus the parameter buffer); findings are not collected
    assert!(
        kb * 1024 < 4 * size + 64 * 1024 * 1024,
        "peak RSS {kb} kB for a {size}-byte file"
    );
}
