//! The migration gate from a real Alembic project (tests/alembic): env.py calls
//! repair.assert_migrations_allowed() before context.run_migrations(). On staging an executor
//! migrates; a replica (ENV_DISABLED) and an undeclared role (ROLE_UNDECLARED) stop Alembic
//! before anything is created.
//!
//! Needs Python 3 with venv (scripts/setup.sh installs python3-venv) and PyPI: the venv with
//! alembic and psycopg2-binary is created once at /tmp/pg_repair_alembic_venv.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pg_repair_tests::{repo_root, Cluster, Conf};

const VENV: &str = "/tmp/pg_repair_alembic_venv";

const GRANTS_SQL: &str = "
    GRANT EXECUTE ON FUNCTION repair.assert_migrations_allowed(boolean), repair.authority()
        TO repair_operators;
";

fn alembic_bin() -> PathBuf {
    Path::new(VENV).join("bin/alembic")
}

fn alembic_works() -> bool {
    Command::new(alembic_bin())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The venv with alembic and psycopg2-binary; created on first use. Panics when it cannot be.
fn ensure_venv() {
    if alembic_works() {
        return;
    }
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e} (is python3 installed?)"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed (python3-venv from scripts/setup.sh and PyPI access are \
             needed for the Alembic test):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("python3", &["-m", "venv", VENV]);
    let pip = format!("{VENV}/bin/pip");
    run(&pip, &["install", "--quiet", "alembic", "psycopg2-binary"]);
    assert!(
        alembic_works(),
        "{} --version still fails after pip install",
        alembic_bin().display()
    );
}

/// `alembic upgrade head` on db as user; prints and returns the output.
fn upgrade(c: &Cluster, db: &str, user: &str, what: &str) -> Output {
    let project = repo_root().join("tests/alembic");
    let out = Command::new(alembic_bin())
        .arg("-c")
        .arg(project.join("alembic.ini"))
        .args(["upgrade", "head"])
        .current_dir(&project)
        .env("DATABASE_URL", c.url(db, user))
        .env("REPAIR_CONFIRM_PROD", "0")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run alembic");
    println!(
        "===== alembic upgrade head ({what}): {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn combined(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn table_exists(c: &Cluster, db: &str) -> bool {
    c.connect(db, "postgres")
        .query_one("SELECT to_regclass('public.alembic_made') IS NOT NULL", &[])
        .expect("to_regclass")
        .get(0)
}

fn gated_db(c: &Cluster, label: &str) -> String {
    let db = c.fresh_db(label);
    c.connect(&db, "postgres")
        .batch_execute(GRANTS_SQL)
        .expect("grants");
    db
}

#[test]
fn alembic_upgrade_goes_through_the_gate() {
    ensure_venv();
    // restores the default repair.* settings even when an assert fails
    let conf = Conf::take();
    let c = conf.cluster;

    // staging, alice is an executor: migrated
    let db = gated_db(c, "alembic_ok");
    let out = upgrade(c, &db, "alice", "staging, alice");
    assert!(out.status.success(), "{}", combined(&out));
    assert!(table_exists(c, &db), "public.alembic_made not created");
    assert!(
        combined(&out).contains("Running upgrade  -> 0001"),
        "{}",
        combined(&out)
    );

    // declared replica: refused before anything runs
    c.set_conf(&[("repair.db_role", Some("replica"))]);
    let db = gated_db(c, "alembic_replica");
    let out = upgrade(c, &db, "alice", "replica, alice");
    assert!(!out.status.success(), "{}", combined(&out));
    assert!(
        combined(&out).contains("ENV_DISABLED"),
        "{}",
        combined(&out)
    );
    assert!(!table_exists(c, &db), "table created on a replica");

    // no declared role: refused
    c.set_conf(&[("repair.db_role", None)]);
    let db = gated_db(c, "alembic_undeclared");
    let out = upgrade(c, &db, "alice", "db_role unset, alice");
    assert!(!out.status.success(), "{}", combined(&out));
    assert!(
        combined(&out).contains("ROLE_UNDECLARED"),
        "{}",
        combined(&out)
    );
    assert!(
        !table_exists(c, &db),
        "table created without a declared role"
    );
}
