//! Test harness: a scratch PostgreSQL cluster per test process, with pg_repair preloaded,
//! a fixed set of roles, and a fresh database (with the extension) per test.
//!
//! The server comes from one setting: `PG_REPAIR_PG_BIN`, the bin directory of the PostgreSQL
//! major under test (default: Debian's PostgreSQL 15, `/usr/lib/postgresql/15/bin`). The extension
//! must already be installed into that server (scripts/test.sh does `cargo pgrx install --release`
//! first). Clusters run as the unprivileged `pgtest` user when the
//! tests run as root (initdb refuses root), live under /tmp/pg_repair_it, and are stopped by an
//! atexit handler when the test process ends.

// Every unsafe block says why it is sound (`// SAFETY:`).
#![warn(clippy::undocumented_unsafe_blocks)]

use postgres::{Client, NoTls};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The bin directory of the server under test; `format!("{PG_BIN}/pg_dump")` names a program.
pub static PG_BIN: PgBin = PgBin;
pub const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Reads `PG_REPAIR_PG_BIN` once (the one setting that chooses the PostgreSQL major).
pub struct PgBin;

impl PgBin {
    pub fn path(&self) -> &'static str {
        static DIR: OnceLock<String> = OnceLock::new();
        DIR.get_or_init(|| {
            std::env::var("PG_REPAIR_PG_BIN")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.trim_end_matches('/').to_string())
                .unwrap_or_else(|| DEFAULT_PG_BIN.to_string())
        })
    }

    /// One `pg_config` answer (`--sharedir`, `--pkglibdir`, `--version`) for the server under test.
    pub fn config(&self, flag: &str) -> String {
        let out = Command::new(format!("{}/pg_config", self.path()))
            .arg(flag)
            .output()
            .unwrap_or_else(|e| panic!("{}/pg_config {flag}: {e}", self.path()));
        assert!(out.status.success(), "pg_config {flag} failed");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The server's major version number (15, 17, 18).
    pub fn major(&self) -> u32 {
        static MAJOR: OnceLock<u32> = OnceLock::new();
        *MAJOR.get_or_init(|| {
            let v = self.config("--version");
            v.trim_start_matches("PostgreSQL ")
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or_else(|| panic!("cannot read the major from {v:?}"))
        })
    }
}

impl std::fmt::Display for PgBin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path())
    }
}
pub const ROOT: &str = "/tmp/pg_repair_it";
const RUN_USER: &str = "pgtest";

/// Roles every cluster has. Group roles are NOLOGIN; people are LOGIN.
pub const ROLES_SQL: &str = "
    CREATE ROLE repair_operators NOLOGIN;
    CREATE ROLE repair_authors NOLOGIN;
    CREATE ROLE repair_auditors NOLOGIN;
    CREATE ROLE alice LOGIN IN ROLE repair_operators;   -- operator
    CREATE ROLE bob LOGIN;                              -- nobody in particular
    CREATE ROLE carol LOGIN IN ROLE repair_authors;     -- author
    CREATE ROLE dave LOGIN IN ROLE repair_auditors;     -- auditor
    CREATE ROLE admin2 LOGIN SUPERUSER;                 -- a second superuser
    CREATE ROLE fixer NOLOGIN;                          -- a run_as target
    CREATE ROLE repair_approvers NOLOGIN;
    CREATE ROLE erin LOGIN IN ROLE repair_approvers;    -- approver (four eyes)
";

/// Grants a superuser gives in each database, per duty.
pub const GRANTS_SQL: &str = "
    GRANT USAGE ON SCHEMA repair TO repair_operators, repair_authors, repair_auditors;
    GRANT EXECUTE ON FUNCTION repair.register(text), repair.retire(text, text), repair.hash(text),
        repair.lint(text) TO repair_authors;
    GRANT EXECUTE ON FUNCTION repair.preview(text), repair.execute(text, text, text, boolean, text),
        repair.hash(text), repair.lint(text) TO repair_operators;
    GRANT SELECT ON ALL TABLES IN SCHEMA repair TO repair_auditors;
    GRANT EXECUTE ON FUNCTION repair.verify_audit(), repair.audit_head() TO repair_auditors;
    GRANT CREATE, USAGE ON SCHEMA public TO repair_operators, fixer;
";

/// Grants on the online-run API (0.3.0 on): an operator who may execute may run online playbooks.
pub const ONLINE_GRANTS_SQL: &str = "
    GRANT EXECUTE ON FUNCTION repair.online_begin(text, text, text, boolean, text),
        repair.online_finish(uuid), repair.online_abort(uuid, text) TO repair_operators;
";

/// Grants on approvals and refusals (0.4.0 on): approvers approve and revoke, and see approvals;
/// auditors read the queue's state.
pub const APPROVAL_GRANTS_SQL: &str = "
    GRANT USAGE ON SCHEMA repair TO repair_approvers;
    GRANT EXECUTE ON FUNCTION repair.approve(text, text, text, interval),
        repair.revoke_approval(uuid, text), repair.preview(text) TO repair_approvers;
    GRANT SELECT ON repair.approval_status, repair.approvals, repair.playbooks TO repair_approvers;
    GRANT EXECUTE ON FUNCTION repair.refusal_queue() TO repair_auditors;
";

pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
}

static STARTED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static DB_COUNTER: AtomicUsize = AtomicUsize::new(0);

extern "C" fn stop_all_clusters() {
    let dirs = STARTED.lock().map(|v| v.clone()).unwrap_or_default();
    for dir in dirs {
        let _ = pg_ctl(&dir, &["stop", "-m", "immediate", "-w"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a PostgreSQL binary as the cluster user.
fn as_run_user(program: &str, args: &[&str]) -> Command {
    let path = format!("{PG_BIN}/{program}");
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", RUN_USER, "--", "env", "-u", "RUST_BACKTRACE", &path]);
        c
    } else {
        let mut c = Command::new(&path);
        c.env_remove("RUST_BACKTRACE");
        c
    };
    cmd.args(args);
    cmd
}

fn pg_ctl(dir: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    let data = dir.join("data");
    let log = dir.join("server.log");
    let mut all = vec!["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap()];
    all.extend_from_slice(args);
    as_run_user("pg_ctl", &all).output()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn extension_installed() -> bool {
    let share = PG_BIN.config("--sharedir");
    let lib = PG_BIN.config("--pkglibdir");
    Path::new(&format!("{share}/extension/pg_repair.control")).exists()
        && Path::new(&format!("{lib}/pg_repair.so")).exists()
}

impl Cluster {
    /// The cluster of this test process, started on first use with the default settings:
    /// db_role = staging, executors = repair_operators.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(|| Cluster::start(&[], true))
    }

    /// A new cluster with extra postgresql.conf lines; `preload` = pg_repair in
    /// shared_preload_libraries plus the default repair.* settings.
    pub fn start(extra_conf: &[&str], preload: bool) -> Cluster {
        assert!(
            extension_installed(),
            "pg_repair is not installed into the PostgreSQL of {PG_BIN}: run scripts/test.sh (it runs `cargo pgrx install --release`)"
        );
        let name = format!(
            "{}-{}-{}",
            std::env::current_exe()
                .ok()
                .and_then(|p| p.file_stem().map(|s| s
                    .to_string_lossy()
                    .chars()
                    .take(12)
                    .collect::<String>()))
                .unwrap_or_else(|| "t".into()),
            std::process::id(),
            DB_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let dir = Path::new(ROOT).join(name);
        std::fs::create_dir_all(&dir).expect("cluster dir");
        if is_root() {
            // Only our own directory recursively: other test processes' clusters live beside it.
            let owner = format!("{RUN_USER}:{RUN_USER}");
            let chown = |args: &[&str]| {
                Command::new("chown")
                    .args(args)
                    .status()
                    .is_ok_and(|s| s.success())
            };
            let ok = chown(&[&owner, ROOT]) && chown(&["-R", &owner, dir.to_str().unwrap()]);
            assert!(
                ok,
                "chown {ROOT} to {RUN_USER} (run scripts/setup.sh to create the user)"
            );
        }
        let data = dir.join("data");
        let out = as_run_user(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        .output()
        .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = on\nmax_connections = 60\nlog_line_prefix = '%m [%p] '\n\
             max_worker_processes = 32\n",
            dir.display()
        );
        if preload {
            conf.push_str("shared_preload_libraries = 'pg_repair'\n");
            // In postgresql.auto.conf, so that ALTER SYSTEM RESET really unsets them.
            let auto = data.join("postgresql.auto.conf");
            let mut text = std::fs::read_to_string(&auto).unwrap_or_default();
            text.push_str("repair.db_role = 'staging'\nrepair.executors = 'repair_operators'\n");
            std::fs::write(&auto, text).expect("postgresql.auto.conf");
        }
        for line in extra_conf {
            conf.push_str(line);
            conf.push('\n');
        }
        let conf_path = data.join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).expect("write postgresql.conf");
        STARTED.lock().unwrap().push(dir.clone());
        if STARTED.lock().unwrap().len() == 1 {
            // SAFETY: registers a plain `extern "C" fn()` once (only the first cluster does);
            // it runs at exit on one thread and only stops clusters and removes directories.
            unsafe { libc::atexit(stop_all_clusters) };
        }
        let out = pg_ctl(&dir, &["start", "-w", "-t", "60"]).expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        let cluster = Cluster { dir, port };
        cluster
            .connect("postgres", "postgres")
            .batch_execute(ROLES_SQL)
            .expect("roles");
        cluster
    }

    pub fn conninfo(&self, db: &str, user: &str) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={db} user={user} connect_timeout=10",
            self.port
        )
    }

    pub fn url(&self, db: &str, user: &str) -> String {
        format!("postgresql://{user}@127.0.0.1:{}/{db}", self.port)
    }

    pub fn connect(&self, db: &str, user: &str) -> Client {
        Client::connect(&self.conninfo(db, user), NoTls)
            .unwrap_or_else(|e| panic!("connect {user}@{db}: {e}"))
    }

    /// A new database with the extension and the standard grants.
    pub fn fresh_db(&self, label: &str) -> String {
        let n = DB_COUNTER.fetch_add(1, Ordering::SeqCst);
        let db = format!(
            "t_{}_{n}",
            label
                .to_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
        let mut su = self.connect("postgres", "postgres");
        su.batch_execute(&format!("CREATE DATABASE {db}"))
            .expect("create database");
        let mut c = self.connect(&db, "postgres");
        c.batch_execute("CREATE EXTENSION pg_repair")
            .expect("create extension");
        c.batch_execute(GRANTS_SQL).expect("grants");
        c.batch_execute(ONLINE_GRANTS_SQL).expect("online grants");
        c.batch_execute(APPROVAL_GRANTS_SQL)
            .expect("approval grants");
        db
    }

    /// `pg_dump -Fc` of `db` restored with `pg_restore --exit-on-error` into a new database
    /// `{db}_restored` (what a DBA's backup does); returns its name.
    pub fn dump_restore(&self, db: &str) -> String {
        let dump = self.dir.join(format!("{db}.dump"));
        let port = self.port.to_string();
        let conn = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "postgres"];
        let out = Command::new(format!("{PG_BIN}/pg_dump"))
            .args(conn)
            .args(["-Fc", "-f", dump.to_str().unwrap(), db])
            .output()
            .expect("pg_dump");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let restored = format!("{db}_restored");
        self.connect("postgres", "postgres")
            .batch_execute(&format!("CREATE DATABASE {restored}"))
            .expect("CREATE DATABASE");
        let out = Command::new(format!("{PG_BIN}/pg_restore"))
            .args(conn)
            .args(["--exit-on-error", "-d", &restored, dump.to_str().unwrap()])
            .output()
            .expect("pg_restore");
        assert!(
            out.status.success(),
            "pg_restore: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        restored
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// ALTER SYSTEM SET (or RESET with None) and reload, then wait until new sessions see it.
    pub fn set_conf(&self, settings: &[(&str, Option<&str>)]) {
        if let Err(e) = self.try_set_conf(settings) {
            panic!("{e}");
        }
    }

    /// `set_conf` that reports a failure instead of panicking (for destructors).
    fn try_set_conf(&self, settings: &[(&str, Option<&str>)]) -> Result<(), String> {
        let connect = || {
            Client::connect(&self.conninfo("postgres", "postgres"), NoTls)
                .map_err(|e| format!("connect postgres@postgres: {e}"))
        };
        let mut su = connect()?;
        for (name, value) in settings {
            let sql = match value {
                Some(v) => format!("ALTER SYSTEM SET {name} = '{}'", v.replace('\'', "''")),
                None => format!("ALTER SYSTEM RESET {name}"),
            };
            su.batch_execute(&sql).map_err(|e| format!("{sql}: {e}"))?;
        }
        su.batch_execute("SELECT pg_reload_conf()")
            .map_err(|e| format!("reload: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut c = connect()?;
            let all = settings.iter().all(|(name, value)| {
                let got: Option<String> = c
                    .query_one(&format!("SELECT current_setting('{name}', true)"), &[])
                    .ok()
                    .and_then(|r| r.get(0));
                let want = value.map(str::to_string);
                got.filter(|s| !s.is_empty()) == want.filter(|s| !s.is_empty())
            });
            if all {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("settings not visible after reload: {settings:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Replaces pg_hba.conf with `text`, reloads, and waits until new sessions are authenticated
    /// by it. The harness's own sessions (`connect`: postgres over TCP to 127.0.0.1, no TLS) must
    /// still be allowed, e.g. by `host all postgres 127.0.0.1/32 trust`. Panics if the server
    /// reports an error in the file.
    pub fn write_hba(&self, text: &str) {
        let load_time = |c: &mut Client| -> String {
            c.query_one("SELECT pg_conf_load_time()::text", &[])
                .expect("pg_conf_load_time")
                .get(0)
        };
        let mut su = self.connect("postgres", "postgres");
        let before = load_time(&mut su);
        let path = self.dir.join("data").join("pg_hba.conf");
        std::fs::write(&path, text).expect("write pg_hba.conf");
        let errors: Vec<String> = su
            .query(
                "SELECT line_number || ': ' || error FROM pg_hba_file_rules WHERE error IS NOT NULL",
                &[],
            )
            .expect("pg_hba_file_rules")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(errors.is_empty(), "pg_hba.conf errors: {errors:?}");
        // pg_conf_load_time() changes in the postmaster, before it forks the next backend
        std::thread::sleep(Duration::from_millis(10));
        su.batch_execute("SELECT pg_reload_conf()").expect("reload");
        let deadline = Instant::now() + Duration::from_secs(10);
        while load_time(&mut self.connect("postgres", "postgres")) == before {
            assert!(Instant::now() < deadline, "pg_hba.conf not reloaded");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The default repair.* settings of a preloaded cluster.
    pub fn reset_conf(&self) {
        self.set_conf(DEFAULT_CONF);
    }
}

/// What `reset_conf` restores.
const DEFAULT_CONF: &[(&str, Option<&str>)] = &[
    ("repair.db_role", Some("staging")),
    ("repair.allow_prod", Some("off")),
    ("repair.executors", Some("repair_operators")),
    ("repair.run_as", Some("")),
    ("repair.approvers", Some("")),
    ("repair.require_approval", Some("prod")),
    ("repair.redact", Some("on")),
    ("repair.record_refusals", Some("on")),
];

/// Cluster-wide settings (ALTER SYSTEM) are seen by every test of a test binary, which share one
/// cluster: the tests that change them hold this lock, so they run one at a time.
static CONF: Mutex<()> = Mutex::new(());

/// Takes this test binary's settings lock (a test that failed while holding it does not stop
/// the others).
pub fn conf_lock() -> MutexGuard<'static, ()> {
    CONF.lock().unwrap_or_else(|p| p.into_inner())
}

/// While alive, the test may change the shared cluster's settings: it holds the settings lock,
/// starts from the default repair.* settings, and those (and `repair.lock_timeout`) are restored
/// when it is dropped, also when the test fails.
pub struct Conf {
    _lock: MutexGuard<'static, ()>,
    pub cluster: &'static Cluster,
}

impl Conf {
    pub fn take() -> Conf {
        let lock = conf_lock();
        let cluster = Cluster::shared();
        cluster.reset_conf();
        Conf {
            _lock: lock,
            cluster,
        }
    }
}

impl Drop for Conf {
    fn drop(&mut self) {
        // Never panic in a destructor (a failed assertion may be unwinding through it already,
        // and a second panic aborts the test binary): restoring is best effort, and the next
        // `take` resets again anyway.
        if let Ok(mut su) = Client::connect(&self.cluster.conninfo("postgres", "postgres"), NoTls) {
            let _ = su.batch_execute("ALTER SYSTEM RESET repair.lock_timeout");
        }
        let _ = self.cluster.try_set_conf(DEFAULT_CONF);
    }
}

/// The one value a one-row, one-column query returns; panics with the query on an error.
pub fn one<T: for<'a> postgres::types::FromSql<'a>>(c: &mut Client, sql: &str) -> T {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The error a statement raised, as the server sent it.
pub fn db_error<T: std::fmt::Debug>(r: Result<T, postgres::Error>) -> postgres::error::DbError {
    let e = r.expect_err("expected an ERROR");
    e.as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {e}"))
        .clone()
}

/// Registers a playbook source as `user`; returns (version, hash, status).
pub fn register(c: &mut Client, source: &str) -> (i32, String, String) {
    let row = c
        .query_one(
            "SELECT version, hash, status FROM repair.register($1)",
            &[&source],
        )
        .expect("register");
    (row.get(0), row.get(1), row.get(2))
}

/// Executes a playbook; returns the jsonb result.
pub fn execute(
    c: &mut Client,
    id: &str,
    hash: &str,
    reason: &str,
) -> Result<serde_json::Value, postgres::Error> {
    c.query_one("SELECT repair.execute($1, $2, $3)", &[&id, &hash, &reason])
        .map(|r| r.get(0))
}

/// A minimal staging playbook with the given body.
pub fn playbook(id: &str, body: &str) -> String {
    format!(
        "-- repair: {id}\n-- title: test playbook {id}\n-- environments: staging, prod\n{body}\n"
    )
}

/// Path of the repository root (for playbooks/ and the CLI binary).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}
