//! Shared by the CLI test binaries: running the real `pgrepair` hermetically and judging its output.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use pg_repair_tests::Cluster;
use serde_json::Value;

/// A connection string to a closed port: any attempt to connect fails at once.
pub const CLOSED_DSN: &str = "host=127.0.0.1 port=1 user=x dbname=x connect_timeout=2";

/// The real binary with no ambient connection settings, password file or pgrepair defaults.
pub fn pgrepair() -> Command {
    let mut cmd = Command::cargo_bin("pgrepair").expect("binary built");
    for var in [
        "DATABASE_URL",
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGSERVICE",
        "PGSSLMODE",
        "PGOPTIONS",
        "PGREPAIR_BACKUP_DIR",
        "PGREPAIR_EXPECT_HEAD",
        "PGREPAIR_REQUEST_ID",
        "PGREPAIR_PG_DUMP",
        "RUST_BACKTRACE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// `pgrepair --dsn <url of db as user>`.
pub fn cli(c: &Cluster, db: &str, user: &str) -> Command {
    let mut cmd = pgrepair();
    cmd.arg("--dsn").arg(c.url(db, user));
    cmd
}

/// `pgrepair` reaching db as user only through the libpq environment variables.
pub fn cli_env(c: &Cluster, db: &str, user: &str) -> Command {
    let mut cmd = pgrepair();
    cmd.env("PGHOST", "127.0.0.1")
        .env("PGPORT", c.port.to_string())
        .env("PGUSER", user)
        .env("PGDATABASE", db);
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run pgrepair")
}

pub fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path.to_string_lossy().into_owned()
}

pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// No panic, backtrace hint or internal error in a piece of output.
#[track_caller]
pub fn assert_clean_text(text: &str) {
    assert!(!text.contains("panicked"), "panic text in: {text}");
    assert!(
        !text.contains("RUST_BACKTRACE"),
        "backtrace hint in: {text}"
    );
    assert!(
        !text.contains("internal error"),
        "internal error in: {text}"
    );
}

#[track_caller]
pub fn assert_no_panic(out: &Output) {
    assert_clean_text(&stdout_of(out));
    assert_clean_text(&stderr_of(out));
}

/// Asserts the exit code, showing both streams when it is wrong.
#[track_caller]
pub fn expect_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code\n--- stdout\n{}\n--- stderr\n{}",
        stdout_of(out),
        stderr_of(out)
    );
    assert_no_panic(out);
}

#[track_caller]
pub fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
            stdout_of(out),
            stderr_of(out)
        )
    })
}
