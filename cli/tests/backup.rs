//! `execute --backup-dir` under attack and under load, with the real binary, the real pg_dump
//! and a real server: hostile files and symlinks planted by another user in a shared sticky
//! directory, unsafe directories, concurrent runs with `--keep`, ids that try to escape, and
//! the order of work (no dump for a run that would be refused).
//!
//! The tests run as root; "another user" is `pgtest` (files chowned to it).

mod common;
use common::*;

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use pg_repair_tests::{playbook, register, Cluster, PG_BIN};
use serde_json::Value;

fn pg_dump() -> String {
    format!("{PG_BIN}/pg_dump")
}

/// uid and gid of the `pgtest` user (the "other local user").
fn other_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = StdCommand::new("id")
            .args([flag, "pgtest"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_other(p: &Path) {
    let (uid, gid) = other_user();
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

/// A database where alice (operator) can run pg_dump, and a playbook `id` that succeeds.
fn backup_db(c: &Cluster, label: &str, id: &str, body: &str) -> (String, String) {
    let db = c.fresh_db(label);
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(
        "GRANT SELECT ON ALL TABLES IN SCHEMA repair TO alice;
         GRANT SELECT ON ALL SEQUENCES IN SCHEMA repair TO alice;
         GRANT CREATE ON SCHEMA public TO alice;",
    )
    .unwrap();
    let (_, hash, _) = register(&mut c.connect(&db, "carol"), &playbook(id, body));
    (db, hash)
}

fn runs(c: &Cluster, db: &str) -> i64 {
    c.connect(db, "postgres")
        .query_one("SELECT count(*) FROM repair.runs", &[])
        .unwrap()
        .get(0)
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `pgrepair --json execute … --backup-dir dir --keep keep` as alice.
fn execute_with_backup(
    c: &Cluster,
    db: &str,
    id: &str,
    hash: &str,
    dir: &Path,
    keep: u32,
) -> std::process::Output {
    run(cli(c, db, "alice")
        .args(["--json", "execute", id, "--hash", hash])
        .args(["--reason", "backup test"])
        .arg("--backup-dir")
        .arg(dir)
        .args(["--keep", &keep.to_string(), "--pg-dump", &pg_dump()]))
}

#[track_caller]
fn assert_private_dump(p: &Path) {
    let m = std::fs::symlink_metadata(p).unwrap();
    assert!(m.file_type().is_file(), "{} is a regular file", p.display());
    assert_eq!(
        m.mode() & 0o7777,
        0o600,
        "{} mode {:o}",
        p.display(),
        m.mode()
    );
    assert_eq!(
        m.uid(),
        0,
        "{} owned by the user who ran pgrepair",
        p.display()
    );
    assert_eq!(m.nlink(), 1, "{} has no second name", p.display());
    let head = std::fs::read(p).unwrap();
    assert!(
        head.starts_with(b"PGDMP"),
        "{} is a custom-format dump",
        p.display()
    );
}

/// `yyyymmddThhmmssZ` of a Unix time, computed with date(1) rather than the CLI's code.
fn stamp_of(t: u64) -> String {
    let out = StdCommand::new("date")
        .args(["-u", "-d", &format!("@{t}"), "+%Y%m%dT%H%M%SZ"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn hostile_files_in_a_sticky_shared_directory_are_never_used() {
    let c = Cluster::shared();
    let id = "shared_dir_pb";
    let (db, hash) = backup_db(
        c,
        "bk_hostile",
        id,
        "CREATE TABLE IF NOT EXISTS public.shared_dir_t (id int);",
    );
    let (uid, _) = other_user();
    let tmp = tempfile::tempdir_in("/tmp").unwrap();
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o1777); // like /tmp: everyone may write, only owners may delete

    // A root-owned file the attacker would like us to overwrite.
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    chmod(&victim, 0o644);

    // The attacker (pgtest) pre-creates every name the old pgrepair would have used in the
    // next 90 seconds: the .partial as a symlink to the victim, the .dump as a world-writable
    // file waiting to receive the dump.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut planted = Vec::new();
    for s in 0..90u64 {
        let stamp = stamp_of(now + s);
        let link = shared.join(format!("{db}-{id}-{stamp}.dump.partial"));
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let file = shared.join(format!("{db}-{id}-{stamp}.dump"));
        std::fs::write(&file, b"").unwrap();
        chmod(&file, 0o666);
        for p in [link, file] {
            chown_other(&p);
            planted.push(p);
        }
    }

    // Two runs with --keep 1: both succeed, each writes its own fresh private dump.
    let mut made = Vec::new();
    for _ in 0..2 {
        let out = execute_with_backup(c, &db, id, &hash, &shared, 1);
        expect_code(&out, 0);
        let v = json_of(&out);
        assert_eq!(v["status"], "SUCCESS", "{v}");
        let file = PathBuf::from(v["backup_file"].as_str().expect("backup_file"));
        assert!(file.starts_with(&shared));
        assert_private_dump(&file);
        assert!(
            !planted.contains(&file),
            "a planted name was used: {}",
            file.display()
        );
        made.push(file);
    }
    assert_ne!(made[0], made[1]);
    // --keep 1: the first run's backup was rotated away, the second kept
    assert!(!made[0].exists());
    assert!(made[1].exists());

    // Nothing the attacker planted was written, followed, replaced or deleted.
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(std::fs::metadata(&victim).unwrap().mode() & 0o777, 0o644);
    for p in &planted {
        let m =
            std::fs::symlink_metadata(p).unwrap_or_else(|_| panic!("{} was deleted", p.display()));
        assert_eq!(m.uid(), uid, "{}", p.display());
        if m.file_type().is_file() {
            assert_eq!(m.len(), 0, "{} received data", p.display());
        } else {
            assert!(m.file_type().is_symlink(), "{}", p.display());
        }
    }
    // no temporary file of ours left behind
    let planted_names: BTreeSet<String> = planted
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let ours: Vec<String> = names_in(&shared)
        .into_iter()
        .filter(|n| !planted_names.contains(n))
        .collect();
    assert_eq!(
        ours,
        vec![made[1].file_name().unwrap().to_string_lossy().into_owned()]
    );
}

/// A planted symlink (or another user's file) named exactly like the newest backup of this
/// database and playbook is neither counted by rotation nor touched.
#[test]
fn rotation_ignores_planted_names_that_look_like_backups() {
    let c = Cluster::shared();
    let id = "planted_pb";
    let (db, hash) = backup_db(
        c,
        "bk_planted",
        id,
        "CREATE TABLE IF NOT EXISTS public.planted_t (id int);",
    );
    let tmp = tempfile::tempdir_in("/tmp").unwrap();
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o1777);

    // the first run shows the real prefix of this db and playbook
    let out = execute_with_backup(c, &db, id, &hash, &shared, 2);
    expect_code(&out, 0);
    let first = PathBuf::from(json_of(&out)["backup_file"].as_str().unwrap());
    let name = first.file_name().unwrap().to_string_lossy().into_owned();
    let prefix = &name[..name.len() - "20240101T000000Z-0123456789abcdef.dump".len()];
    // "newer" than anything real: a symlink and another user's regular file
    let fake_link = shared.join(format!("{prefix}20991231T235959Z-ffffffffffffffff.dump"));
    let fake_file = shared.join(format!("{prefix}20991231T235958Z-fffffffffffffffe.dump"));
    std::os::unix::fs::symlink("/etc/hostname", &fake_link).unwrap();
    chown_other(&fake_link);
    std::fs::write(&fake_file, b"").unwrap();
    chown_other(&fake_file);

    let out = execute_with_backup(c, &db, id, &hash, &shared, 2);
    expect_code(&out, 0);
    let second = PathBuf::from(json_of(&out)["backup_file"].as_str().unwrap());
    // two real backups and --keep 2: none deleted, the fakes did not push one out
    assert!(first.exists() && second.exists());
    assert_eq!(json_of(&out)["backups_removed"], serde_json::json!([]));
    let err = stderr_of(&out);
    assert!(err.contains("not a regular file owned by you"), "{err}");
    assert!(std::fs::symlink_metadata(&fake_link).is_ok());
    assert!(fake_file.exists());
}

#[test]
fn unsafe_backup_directories_are_refused_before_anything_runs() {
    let c = Cluster::shared();
    let id = "unsafe_dir_pb";
    let (db, hash) = backup_db(
        c,
        "bk_unsafe",
        id,
        "CREATE TABLE IF NOT EXISTS public.unsafe_dir_t (id int);",
    );
    let tmp = tempfile::tempdir_in("/tmp").unwrap();

    // world-writable without the sticky bit
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    // group-writable
    let group = tmp.path().join("group");
    std::fs::create_dir(&group).unwrap();
    chmod(&group, 0o770);
    // owned by another user (even if not writable by others)
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chmod(&theirs, 0o755);
    chown_other(&theirs);
    // a symlink owned by another user, pointing at a directory of ours
    let ours = tmp.path().join("ours");
    std::fs::create_dir(&ours).unwrap();
    chmod(&ours, 0o700);
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&ours, &link).unwrap();
    chown_other(&link);

    for (dir, needle) in [
        (&open, "chmod go-w"),
        (&group, "writable by its group"),
        (&theirs, "belongs to another user"),
        (&link, "symbolic link owned by another user"),
    ] {
        let out = run(cli(c, &db, "alice")
            .args(["execute", id, "--hash", &hash, "--reason", "unsafe dir"])
            .arg("--backup-dir")
            .arg(dir)
            .args(["--pg-dump", &pg_dump()]));
        expect_code(&out, 2);
        let err = stderr_of(&out);
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(err.contains("nothing was executed"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_eq!(runs(c, &db), 0, "nothing ran");
    for d in [&open, &group, &theirs, &ours] {
        assert!(names_in(d).is_empty(), "{} stays empty", d.display());
    }
    // --json: the same refusal as a JSON error
    let out = run(cli(c, &db, "alice")
        .args(["--json", "execute", id, "--hash", &hash, "--reason", "x"])
        .arg("--backup-dir")
        .arg(&open));
    expect_code(&out, 2);
    assert_eq!(json_of(&out)["error"]["kind"], "usage");
}

/// A fake pg_dump that records each call (and its PGHOST/PGPORT), then runs the real one.
fn recording_pg_dump(dir: &Path) -> (PathBuf, PathBuf) {
    let log = dir.join("pg_dump.calls");
    let script = dir.join("pg_dump.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"PGHOST=$PGHOST PGPORT=$PGPORT\" >> {}\nexec {} \"$@\"\n",
            log.display(),
            pg_dump()
        ),
    )
    .unwrap();
    chmod(&script, 0o755);
    (script, log)
}

#[test]
fn no_dump_for_a_run_that_would_be_refused_and_no_path_from_the_id() {
    let c = Cluster::shared();
    let id = "order_pb";
    let (db, hash) = backup_db(
        c,
        "bk_order",
        id,
        "CREATE TABLE IF NOT EXISTS public.order_t (id int);",
    );
    let tmp = tempfile::tempdir().unwrap();
    let (script, log) = recording_pg_dump(tmp.path());
    let dir = tmp.path().join("a/b/backups");
    let calls = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let attempt = |user: &str, id: &str, hash: &str| {
        run(cli(c, &db, user)
            .args(["execute", id, "--hash", hash, "--reason", "order"])
            .arg("--backup-dir")
            .arg(&dir)
            .arg("--pg-dump")
            .arg(&script))
    };

    // unknown ids, one trying to climb out of the directory: refused before any dump
    for bad in ["x/../../escaped", "no_such_playbook"] {
        let out = attempt("alice", bad, &hash);
        expect_code(&out, 1);
        let err = stderr_of(&out);
        assert!(err.contains("no backup was taken"), "{err}");
    }
    // a guard that fails (bob is no executor): no dump
    let out = attempt("bob", id, &hash);
    expect_code(&out, 1);
    let err = stderr_of(&out);
    assert!(err.contains("no backup was taken"), "{err}");
    assert!(err.contains("42501"), "{err}");
    // a wrong hash: no dump
    let out = attempt("alice", id, &"0".repeat(64));
    expect_code(&out, 1);
    let err = stderr_of(&out);
    assert!(
        err.contains("HASH_MISMATCH") && err.contains("RP006"),
        "{err}"
    );

    assert_eq!(calls(), 0, "pg_dump never ran");
    assert_eq!(runs(c, &db), 0);
    // nothing escaped the backup directory
    assert!(!tmp.path().join("escaped").exists());
    assert!(!tmp.path().join("a/escaped").exists());
    assert!(names_in(&dir).is_empty(), "{:?}", names_in(&dir));

    // everything right: one dump, one run
    let out = attempt("alice", id, &hash);
    expect_code(&out, 0);
    assert_eq!(calls(), 1);
    assert_eq!(runs(c, &db), 1);
}

#[test]
fn several_pghosts_pg_dump_gets_the_host_actually_connected_to() {
    let c = Cluster::shared();
    let id = "multihost_pb";
    let (db, hash) = backup_db(
        c,
        "bk_multihost",
        id,
        "CREATE TABLE IF NOT EXISTS public.multihost_t (id int);",
    );
    let tmp = tempfile::tempdir().unwrap();
    let (script, log) = recording_pg_dump(tmp.path());
    // the first host has no server (a socket directory that does not exist); libpq order
    // makes the second one answer
    let out = run(cli_env(c, &db, "alice")
        .env("PGHOST", "/nonexistent/pg_socket_dir,127.0.0.1")
        .args(["execute", id, "--hash", &hash, "--reason", "multihost"])
        .arg("--backup-dir")
        .arg(tmp.path().join("backups"))
        .arg("--pg-dump")
        .arg(&script));
    expect_code(&out, 0);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls.trim(),
        format!("PGHOST=127.0.0.1 PGPORT={}", c.port),
        "{calls}"
    );
}

#[test]
fn databases_whose_names_collide_after_sanitising_never_share_backups() {
    let c = Cluster::shared();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("backups");
    let id = "collide_pb";
    let body = "CREATE TABLE IF NOT EXISTS public.collide_t (id int);";
    let mut su = c.connect("postgres", "postgres");
    let dbs = ["rot/db", "rot_db"];
    let mut files = Vec::new();
    for db in dbs {
        su.batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
            .unwrap();
        su.batch_execute(&format!("CREATE DATABASE \"{db}\""))
            .unwrap();
        let mut d = c.connect(db, "postgres");
        d.batch_execute("CREATE EXTENSION pg_repair").unwrap();
        d.batch_execute(pg_repair_tests::GRANTS_SQL).unwrap();
        d.batch_execute(
            "GRANT SELECT ON ALL TABLES IN SCHEMA repair TO alice;
             GRANT SELECT ON ALL SEQUENCES IN SCHEMA repair TO alice;
             GRANT CREATE ON SCHEMA public TO alice;",
        )
        .unwrap();
        let (_, hash, _) = register(&mut c.connect(db, "carol"), &playbook(id, body));
        let dsn = format!("host=127.0.0.1 port={} user=alice dbname='{db}'", c.port);
        let out = run(pgrepair()
            .args(["--dsn", &dsn, "--json", "execute", id, "--hash", &hash])
            .args(["--reason", "collide", "--keep", "1"])
            .arg("--backup-dir")
            .arg(&dir)
            .args(["--pg-dump", &pg_dump()]));
        expect_code(&out, 0);
        let v: Value = json_of(&out);
        assert_eq!(v["backups_removed"], serde_json::json!([]), "{v}");
        files.push(PathBuf::from(v["backup_file"].as_str().unwrap()));
    }
    // --keep 1 for each database: the second run did not rotate away the first's backup
    assert!(files[0].exists() && files[1].exists(), "{files:?}");
    let n: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        n.iter().all(|n| n.starts_with("rot_db-collide_pb-")),
        "{n:?}"
    );
    let tail = "-20240101T000000Z-0123456789abcdef.dump".len();
    assert_ne!(
        n[0][..n[0].len() - tail],
        n[1][..n[1].len() - tail],
        "distinct prefixes"
    );
    for db in dbs {
        su.batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
            .unwrap();
    }
}

#[test]
fn four_concurrent_executes_with_keep_2() {
    let c = Cluster::shared();
    let id = "concurrent_pb";
    // long enough that all four runs are inside repair.execute at the same time
    let (db, hash) = backup_db(
        c,
        "bk_concurrent",
        id,
        "SELECT pg_sleep(3);\nCREATE TABLE IF NOT EXISTS public.concurrent_t (id int);",
    );
    // runs of one playbook are serialized on the server: let the waiting ones wait 3 x 3 s
    c.connect(&db, "postgres")
        .batch_execute(&format!(
            "ALTER DATABASE {db} SET repair.lock_timeout = '60s'"
        ))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("backups");
    let bin = assert_cmd::cargo::cargo_bin("pgrepair");
    let mut children = Vec::new();
    for n in 0..4 {
        let child = StdCommand::new(&bin)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(["--dsn", &c.url(&db, "alice"), "--json", "execute", id])
            .args(["--hash", &hash, "--reason", &format!("concurrent {n}")])
            .arg("--backup-dir")
            .arg(&dir)
            .args(["--keep", "2", "--pg-dump", &pg_dump()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        children.push(child);
    }

    // While every run is inside repair.execute (its statements running or waiting), every
    // run's own backup is on disk: rotation never deletes the backup of a run in progress.
    let mut su = c.connect(&db, "postgres");
    let start = Instant::now();
    let mut seen_all = false;
    while start.elapsed() < Duration::from_secs(30) {
        let n: i64 = su
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state = 'active' AND query LIKE '%repair.execute%' \
                 AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0);
        if n == 4 {
            let dumps: Vec<String> = names_in(&dir)
                .into_iter()
                .filter(|n| n.ends_with(".dump"))
                .collect();
            assert_eq!(
                dumps.len(),
                4,
                "all four in-progress backups exist: {dumps:?}"
            );
            seen_all = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen_all, "never saw the four runs inside execute at once");

    let mut files = BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        expect_code(&out, 0);
        let v = json_of(&out);
        assert_eq!(v["status"], "SUCCESS", "{v}");
        let f = v["backup_file"].as_str().unwrap().to_string();
        assert!(files.insert(f.clone()), "backup name shared: {f}");
    }
    assert_eq!(files.len(), 4);

    // a fifth run's rotation sees no run in progress any more: exactly 2 kept
    let out = execute_with_backup(c, &db, id, &hash, &dir, 2);
    expect_code(&out, 0);
    let left = names_in(&dir);
    assert!(!left.iter().any(|n| n.ends_with(".partial")), "{left:?}");
    assert_eq!(left.len(), 2, "{left:?}");
    for n in &left {
        assert_private_dump(&dir.join(n));
    }
    assert_eq!(runs(c, &db), 5);
}

#[test]
fn stale_partial_of_a_killed_run_is_cleaned_by_the_next_rotation() {
    let c = Cluster::shared();
    let id = "killed_pb";
    let (db, hash) = backup_db(
        c,
        "bk_killed",
        id,
        "CREATE TABLE IF NOT EXISTS public.killed_t (id int);",
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("backups");
    // a pg_dump that hangs after writing a little: the run is killed mid-dump
    let slow = tmp.path().join("slow_pg_dump.sh");
    let pid_file = tmp.path().join("slow.pid");
    std::fs::write(
        &slow,
        format!(
            "#!/bin/sh\necho $$ > {}\necho partial-data\nexec sleep 30\n",
            pid_file.display()
        ),
    )
    .unwrap();
    chmod(&slow, 0o755);
    let bin = assert_cmd::cargo::cargo_bin("pgrepair");
    let mut child = StdCommand::new(&bin)
        .args(["--dsn", &c.url(&db, "alice"), "execute", id])
        .args(["--hash", &hash, "--reason", "killed"])
        .arg("--backup-dir")
        .arg(&dir)
        .arg("--pg-dump")
        .arg(&slow)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let partial = loop {
        let found = names_in(&dir).into_iter().find(|n| n.ends_with(".partial"));
        if let (Some(n), true) = (found, pid_file.exists()) {
            break dir.join(n);
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no partial file appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        std::fs::metadata(&partial).unwrap().mode() & 0o777,
        0o600,
        "private from the first byte"
    );
    // kill -9 the run, then the fake pg_dump it started (by the pid the script wrote down)
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) on the helper script this test started (through pgrepair).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(200));
    assert!(partial.exists());

    let out = execute_with_backup(c, &db, id, &hash, &dir, 2);
    expect_code(&out, 0);
    assert!(
        !partial.exists(),
        "stale partial removed by the next rotation"
    );
    let left = names_in(&dir);
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
fn ctrl_c_during_the_dump_stops_pg_dump_and_executes_nothing() {
    let c = Cluster::shared();
    let id = "dump_sigint_pb";
    let (db, hash) = backup_db(
        c,
        "bk_dump_sigint",
        id,
        "CREATE TABLE IF NOT EXISTS public.dump_sigint_t (id int);",
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("backups");
    let slow = tmp.path().join("slow_pg_dump.sh");
    let pid_file = tmp.path().join("slow.pid");
    std::fs::write(
        &slow,
        format!(
            "#!/bin/sh\necho $$ > {}\necho partial-data\nexec sleep 30\n",
            pid_file.display()
        ),
    )
    .unwrap();
    chmod(&slow, 0o755);
    let start = Instant::now();
    let child = StdCommand::new(assert_cmd::cargo::cargo_bin("pgrepair"))
        .args(["--dsn", &c.url(&db, "alice"), "execute", id])
        .args(["--hash", &hash, "--reason", "interrupted dump"])
        .arg("--backup-dir")
        .arg(&dir)
        .arg("--pg-dump")
        .arg(&slow)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while !(pid_file.exists() && names_in(&dir).iter().any(|n| n.ends_with(".partial"))) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "dump never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: SIGINT to the pgrepair process this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    expect_code(&out, 130);
    let err = stderr_of(&out);
    assert!(
        err.contains("cancelled") && err.contains("nothing was executed"),
        "{err}"
    );
    assert!(names_in(&dir).is_empty(), "{:?}", names_in(&dir));
    assert_eq!(runs(c, &db), 0);
    // pg_dump was stopped, not left running
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signal 0 only probes whether the helper we started still exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    if alive {
        // SAFETY: clean up the helper this test started before failing.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(!alive, "pg_dump still running after Ctrl-C");
}
