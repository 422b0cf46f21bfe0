//! `pgrepair` over TLS against a real server: every sslmode against the right CA, the wrong CA,
//! a matching and a mismatching host name, no root certificate, a server without SSL, a
//! `hostnossl … reject` role and a `hostssl … cert` role; through a key=value DSN, a URL, the
//! PG* environment variables and a service file (all four must agree). Then the defaults from
//! `~/.postgresql/`, and a representative round trip (install, list, preview, execute with a
//! pg_dump backup, runs, audit verify) over sslmode=verify-full.
//!
//! Certificates are made here with the `openssl` command line: a CA, a server certificate naming
//! only DNS:localhost, client certificates, and a second, unrelated CA.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use assert_cmd::Command;
use pg_repair_tests::{repo_root, Cluster, PG_BIN, ROOT};

const MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];
/// The database every matrix probe connects to: it has one table, so `assert-not-empty` exits 0.
const PROBE_DB: &str = "tls_probe";

struct Fixture {
    /// Client-side certificate files (owned by the test user, keys 0600).
    certs: PathBuf,
    /// The server-side copies (owned by the cluster's OS user).
    server: PathBuf,
    /// ssl = on, with the test CA as ssl_ca_file, and our pg_hba.conf.
    ssl: Cluster,
    /// An empty HOME: no ~/.postgresql, no ~/.pg_service.conf.
    home: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = StdCommand::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A CA: `<name>.crt`, `<name>.key`.
fn make_ca(dir: &Path, name: &str, cn: &str) {
    let cnf = format!(
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {cn}\n[v3_ca]\n\
         basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n"
    );
    std::fs::write(dir.join(format!("{name}.cnf")), cnf).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "3",
            "-config",
            &format!("{name}.cnf"),
            "-extensions",
            "v3_ca",
        ],
    );
}

/// A leaf certificate signed by `ca`: `<name>.crt`, `<name>.key` (0600).
fn make_leaf(dir: &Path, ca: &str, name: &str, cn: &str, ext: &str, serial: u32) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            &serial.to_string(),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "3",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
    chmod(&dir.join(format!("{name}.key")), 0o600);
}

const CLIENT_EXT: &str = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                          extendedKeyUsage=clientAuth\n";

/// Removes certificate directories left by earlier test processes that are gone.
fn remove_stale(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(ROOT) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|p| p.parse::<u32>().ok())
        {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        std::fs::create_dir_all(ROOT).unwrap();
        remove_stale("tlscerts-");
        let base = Path::new(ROOT).join(format!("tlscerts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let certs = base.join("client");
        let server = base.join("server");
        let home = base.join("home");
        for d in [&certs, &server, &home] {
            std::fs::create_dir_all(d).unwrap();
        }
        chmod(&base, 0o755);

        make_ca(&certs, "ca", "pg_repair test CA");
        make_ca(&certs, "ca2", "unrelated test CA");
        make_leaf(
            &certs,
            "ca",
            "server",
            "pg_repair test server",
            "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
            2,
        );
        // for the IP subjectAltName case: a certificate naming only IP:127.0.0.1
        make_leaf(
            &certs,
            "ca",
            "server_ip",
            "pg_repair test server by address",
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
            6,
        );
        make_leaf(&certs, "ca", "certuser", "certuser", CLIENT_EXT, 3);
        make_leaf(&certs, "ca2", "certuser_ca2", "certuser", CLIENT_EXT, 4);
        make_leaf(&certs, "ca", "bob", "bob", CLIENT_EXT, 5);

        // The server's copies belong to the cluster's OS user, the key mode 0600.
        for f in [
            "server.crt",
            "server.key",
            "server_ip.crt",
            "server_ip.key",
            "ca.crt",
        ] {
            std::fs::copy(certs.join(f), server.join(f)).unwrap();
        }
        chmod(&server.join("server.key"), 0o600);
        chmod(&server.join("server_ip.key"), 0o600);
        if is_root() {
            let ok = StdCommand::new("chown")
                .args(["-R", "pgtest:pgtest", server.to_str().unwrap()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the server's certificate files to pgtest");
        }
        let cert_line = format!("ssl_cert_file = '{}'", server.join("server.crt").display());
        let key_line = format!("ssl_key_file = '{}'", server.join("server.key").display());
        let ca_line = format!("ssl_ca_file = '{}'", server.join("ca.crt").display());
        let ssl = Cluster::start(
            &[
                "ssl = on",
                &cert_line,
                &key_line,
                &ca_line,
                "log_connections = on",
            ],
            true,
        );
        ssl.write_hba(
            "local all all trust\n\
             hostnossl all certuser 127.0.0.1/32 reject\n\
             hostssl   all certuser 127.0.0.1/32 cert\n\
             hostnossl all sslonly,alice,carol,dave 127.0.0.1/32 reject\n\
             host      all all 127.0.0.1/32 trust\n",
        );
        let mut su = ssl.connect("postgres", "postgres");
        su.batch_execute("CREATE ROLE certuser LOGIN; CREATE ROLE sslonly LOGIN")
            .expect("roles");
        su.batch_execute(&format!("CREATE DATABASE {PROBE_DB}"))
            .expect("probe database");
        ssl.connect(PROBE_DB, "postgres")
            .batch_execute("CREATE TABLE probe (id int)")
            .expect("probe table");
        // the cluster without SSL: the shared one (ssl is off by default)
        let plain = Cluster::shared();
        plain
            .connect("postgres", "postgres")
            .batch_execute(&format!("CREATE DATABASE {PROBE_DB}"))
            .expect("probe database without SSL");
        plain
            .connect(PROBE_DB, "postgres")
            .batch_execute("CREATE TABLE probe (id int)")
            .expect("probe table");
        Fixture {
            certs,
            server,
            ssl,
            home,
        }
    })
}

/// The real binary with no ambient connection or TLS settings and an empty HOME.
fn pgrepair_tls(home: &Path) -> Command {
    let mut cmd = pgrepair();
    for var in [
        "PGSSLROOTCERT",
        "PGSSLCERT",
        "PGSSLKEY",
        "PGSSLSNI",
        "PGSERVICEFILE",
        "PGSYSCONFDIR",
        "PGAPPNAME",
        "PGCONNECT_TIMEOUT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", home);
    cmd
}

// ---------------------------------------------------------------------------------------------
// The matrix
// ---------------------------------------------------------------------------------------------

/// One column of the matrix: who connects where, trusting what, with which client certificate.
struct Scenario {
    name: &'static str,
    ssl_server: bool,
    host: &'static str,
    user: &'static str,
    root: Option<&'static str>,
    cert: Option<&'static str>,
    /// Expected outcome per mode, in MODES order.
    expect: [&'static str; 6],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "right CA, host localhost",
        ssl_server: true,
        host: "localhost",
        user: "bob",
        root: Some("ca"),
        cert: None,
        expect: ["plain", "plain", "TLS", "TLS", "TLS", "TLS"],
    },
    Scenario {
        name: "right CA, host 127.0.0.1",
        ssl_server: true,
        host: "127.0.0.1",
        user: "bob",
        root: Some("ca"),
        cert: None,
        expect: ["plain", "plain", "TLS", "TLS", "TLS", "hostname"],
    },
    Scenario {
        name: "wrong CA",
        ssl_server: true,
        host: "localhost",
        user: "bob",
        root: Some("ca2"),
        cert: None,
        expect: [
            "plain",
            "plain",
            "TLS",
            "untrusted",
            "untrusted",
            "untrusted",
        ],
    },
    Scenario {
        name: "no root certificate",
        ssl_server: true,
        host: "localhost",
        user: "bob",
        root: None,
        cert: None,
        expect: ["plain", "plain", "TLS", "TLS", "no-root", "no-root"],
    },
    Scenario {
        name: "server without SSL",
        ssl_server: false,
        host: "localhost",
        user: "bob",
        root: Some("ca"),
        cert: None,
        expect: ["plain", "plain", "plain", "no-ssl", "no-ssl", "no-ssl"],
    },
    Scenario {
        name: "hostnossl reject role",
        ssl_server: true,
        host: "localhost",
        user: "sslonly",
        root: Some("ca"),
        cert: None,
        expect: ["hba-reject", "TLS", "TLS", "TLS", "TLS", "TLS"],
    },
    Scenario {
        name: "cert role, its certificate",
        ssl_server: true,
        host: "localhost",
        user: "certuser",
        root: Some("ca"),
        cert: Some("certuser"),
        expect: ["hba-reject", "TLS", "TLS", "TLS", "TLS", "TLS"],
    },
    Scenario {
        name: "cert role, no certificate",
        ssl_server: true,
        host: "localhost",
        user: "certuser",
        root: Some("ca"),
        cert: None,
        expect: [
            "hba-reject",
            "cert-missing",
            "cert-missing",
            "cert-missing",
            "cert-missing",
            "cert-missing",
        ],
    },
    Scenario {
        name: "cert role, cert of other CA",
        ssl_server: true,
        host: "localhost",
        user: "certuser",
        root: Some("ca"),
        cert: Some("certuser_ca2"),
        expect: [
            "hba-reject",
            "cert-refused",
            "cert-refused",
            "cert-refused",
            "cert-refused",
            "cert-refused",
        ],
    },
    Scenario {
        name: "cert role, bob's certificate",
        ssl_server: true,
        host: "localhost",
        user: "certuser",
        root: Some("ca"),
        cert: Some("bob"),
        expect: [
            "hba-reject",
            "cert-refused",
            "cert-refused",
            "cert-refused",
            "cert-refused",
            "cert-refused",
        ],
    },
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channel {
    KeyValue,
    Url,
    Env,
    Service,
}

const CHANNELS: [Channel; 4] = [
    Channel::KeyValue,
    Channel::Url,
    Channel::Env,
    Channel::Service,
];

static APP: AtomicUsize = AtomicUsize::new(0);

/// What the server log says about the session with this application_name: "TLS" or "plain".
fn session_kind(c: &Cluster, app: &str) -> String {
    let needle = format!("application_name={app} ");
    let log = c.log();
    let line = log
        .lines()
        .find(|l| {
            l.contains("connection authorized")
                && (l.contains(&needle) || l.ends_with(&format!("application_name={app}")))
        })
        .unwrap_or_else(|| panic!("no 'connection authorized' line for {app} in the server log"));
    if line.contains("SSL enabled") {
        "TLS".to_string()
    } else {
        "plain".to_string()
    }
}

/// The cause named by a failed connection's one stderr line.
fn failure_kind(out: &Output) -> String {
    expect_code(out, 2);
    let err = stderr_of(out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("pgrepair: cannot connect to "), "{err}");
    for (kind, needle) in [
        ("no-ssl", "server does not support SSL"),
        ("untrusted", "untrusted certificate"),
        ("hostname", "host name mismatch"),
        ("no-root", "root certificate file"),
        ("cert-missing", "client certificate missing"),
        ("cert-refused", "client certificate refused"),
        ("hba-reject", "pg_hba.conf rejects connection"),
    ] {
        if err.contains(needle) {
            return kind.to_string();
        }
    }
    format!("other: {}", err.trim())
}

/// Runs `assert-not-empty` for one cell through one channel; returns the outcome and stderr.
fn probe(f: &Fixture, s: &Scenario, mode: &str, channel: Channel) -> (String, String) {
    let cluster = if s.ssl_server {
        &f.ssl
    } else {
        Cluster::shared()
    };
    let app = format!("tlsm{}", APP.fetch_add(1, Ordering::SeqCst));
    let root = s
        .root
        .map(|r| f.certs.join(format!("{r}.crt")).display().to_string());
    let cert = s.cert.map(|c| {
        (
            f.certs.join(format!("{c}.crt")).display().to_string(),
            f.certs.join(format!("{c}.key")).display().to_string(),
        )
    });
    let mut ssl_params: Vec<(&str, String)> = vec![("sslmode", mode.to_string())];
    if let Some(r) = &root {
        ssl_params.push(("sslrootcert", r.clone()));
    }
    if let Some((c, k)) = &cert {
        ssl_params.push(("sslcert", c.clone()));
        ssl_params.push(("sslkey", k.clone()));
    }
    let mut cmd = pgrepair_tls(&f.home);
    cmd.env("PGAPPNAME", &app).env("PGCONNECT_TIMEOUT", "10");
    match channel {
        Channel::KeyValue => {
            let mut dsn = format!(
                "host={} port={} user={} dbname={PROBE_DB}",
                s.host, cluster.port, s.user
            );
            for (k, v) in &ssl_params {
                dsn.push_str(&format!(" {k}='{v}'"));
            }
            cmd.arg("--dsn").arg(dsn);
        }
        Channel::Url => {
            let query: Vec<String> = ssl_params
                .iter()
                .map(|(k, v)| format!("{k}={}", v.replace('/', "%2F")))
                .collect();
            cmd.arg("--dsn").arg(format!(
                "postgresql://{}@{}:{}/{PROBE_DB}?{}",
                s.user,
                s.host,
                cluster.port,
                query.join("&")
            ));
        }
        Channel::Env => {
            cmd.env("PGHOST", s.host)
                .env("PGPORT", cluster.port.to_string())
                .env("PGUSER", s.user)
                .env("PGDATABASE", PROBE_DB);
            for (k, v) in &ssl_params {
                let var = match *k {
                    "sslmode" => "PGSSLMODE",
                    "sslrootcert" => "PGSSLROOTCERT",
                    "sslcert" => "PGSSLCERT",
                    _ => "PGSSLKEY",
                };
                cmd.env(var, v);
            }
        }
        Channel::Service => {
            let mut text = format!(
                "# written by tls.rs\n[{app}]\nhost={}\nport={}\nuser={}\ndbname={PROBE_DB}\n",
                s.host, cluster.port, s.user
            );
            for (k, v) in &ssl_params {
                text.push_str(&format!("{k}={v}\n"));
            }
            let file = f.home.parent().unwrap().join(format!("{app}.conf"));
            std::fs::write(&file, text).unwrap();
            cmd.env("PGSERVICEFILE", &file).env("PGSERVICE", &app);
        }
    }
    cmd.arg("assert-not-empty");
    let out = run(&mut cmd);
    let outcome = if out.status.code() == Some(0) {
        assert_no_panic(&out);
        assert!(
            stdout_of(&out).contains("has 1 user table"),
            "{}",
            stdout_of(&out)
        );
        if s.ssl_server {
            session_kind(cluster, &app)
        } else {
            "plain".to_string()
        }
    } else {
        failure_kind(&out)
    };
    (outcome, stderr_of(&out).trim().to_string())
}

#[test]
fn sslmode_matrix() {
    let f = fixture();
    let mut table = String::new();
    let width = SCENARIOS.iter().map(|s| s.name.len()).max().unwrap_or(10);
    table.push_str(&format!("{:width$}", "scenario \\ sslmode"));
    for m in MODES {
        table.push_str(&format!(" | {m:<12}"));
    }
    table.push('\n');
    let mut failures = Vec::new();
    let mut samples: BTreeMap<String, String> = BTreeMap::new();
    let mut cells = 0;
    for s in SCENARIOS {
        table.push_str(&format!("{:width$}", s.name));
        for (i, mode) in MODES.iter().enumerate() {
            let mut seen = Vec::new();
            for channel in CHANNELS {
                let (got, err) = probe(f, s, mode, channel);
                cells += 1;
                if got != s.expect[i] {
                    failures.push(format!(
                        "{} / sslmode={mode} / {channel:?}: expected {}, got {got} ({err})",
                        s.name, s.expect[i]
                    ));
                }
                if !err.is_empty() {
                    samples.entry(got.clone()).or_insert(err);
                }
                seen.push(got);
            }
            let first = seen[0].clone();
            let cell = if seen.iter().all(|g| *g == first) {
                first
            } else {
                format!("{seen:?}")
            };
            table.push_str(&format!(" | {cell:<12}"));
        }
        table.push('\n');
    }
    println!(
        "\nTLS matrix ({cells} runs of `pgrepair assert-not-empty`; each cell agreed across \
         key=value DSN, URL DSN, PGSSL* environment and service file):\n{table}"
    );
    println!("one example line per failure cause:");
    for (kind, line) in &samples {
        println!("  {kind:<12} {line}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // every failure cause was met and named
    for kind in [
        "no-ssl",
        "untrusted",
        "hostname",
        "no-root",
        "cert-missing",
        "cert-refused",
        "hba-reject",
    ] {
        assert!(samples.contains_key(kind), "{kind} never seen");
    }
}

// ---------------------------------------------------------------------------------------------
// libpq defaults: ~/.postgresql/root.crt, postgresql.crt/.key, sslmode prefer
// ---------------------------------------------------------------------------------------------

fn home_with(f: &Fixture, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let home = f.home.parent().unwrap().join(name);
    let dot = home.join(".postgresql");
    std::fs::create_dir_all(&dot).unwrap();
    for (from, to) in files {
        std::fs::copy(f.certs.join(from), dot.join(to)).unwrap();
        if to.ends_with(".key") {
            chmod(&dot.join(to), 0o600);
        }
    }
    home
}

fn probe_dsn(c: &Cluster, host: &str, user: &str, extra: &str) -> String {
    format!(
        "host={host} port={} user={user} dbname={PROBE_DB} connect_timeout=10 {extra}",
        c.port
    )
}

#[test]
fn defaults_from_the_home_directory() {
    let f = fixture();
    // ~/.postgresql/root.crt + postgresql.crt/.key: verify-full client-certificate login with
    // nothing but the sslmode
    let home = home_with(
        f,
        "home_cert",
        &[
            ("ca.crt", "root.crt"),
            ("certuser.crt", "postgresql.crt"),
            ("certuser.key", "postgresql.key"),
        ],
    );
    let out = run(pgrepair_tls(&home)
        .env("PGAPPNAME", "tlsdefault1")
        .args([
            "--dsn",
            &probe_dsn(&f.ssl, "localhost", "certuser", "sslmode=verify-full"),
        ])
        .arg("assert-not-empty"));
    expect_code(&out, 0);
    assert_eq!(session_kind(&f.ssl, "tlsdefault1"), "TLS");

    // no sslmode at all: prefer, so TLS with an SSL server and plain without
    let out = run(pgrepair_tls(&f.home)
        .env("PGAPPNAME", "tlsdefault2")
        .args(["--dsn", &probe_dsn(&f.ssl, "localhost", "bob", "")])
        .arg("assert-not-empty"));
    expect_code(&out, 0);
    assert_eq!(session_kind(&f.ssl, "tlsdefault2"), "TLS");
    let out = run(pgrepair_tls(&f.home)
        .args([
            "--dsn",
            &probe_dsn(Cluster::shared(), "localhost", "bob", ""),
        ])
        .arg("assert-not-empty"));
    expect_code(&out, 0);

    // require with a ~/.postgresql/root.crt of another CA verifies the chain (libpq's rule)
    let home = home_with(f, "home_ca2", &[("ca2.crt", "root.crt")]);
    let out = run(pgrepair_tls(&home)
        .args([
            "--dsn",
            &probe_dsn(&f.ssl, "localhost", "bob", "sslmode=require"),
        ])
        .arg("assert-not-empty"));
    assert_eq!(failure_kind(&out), "untrusted");
    // ... and the same file with verify-full, through the environment only
    let out = run(pgrepair_tls(&home)
        .env("PGHOST", "localhost")
        .env("PGPORT", f.ssl.port.to_string())
        .env("PGUSER", "bob")
        .env("PGDATABASE", PROBE_DB)
        .env("PGSSLMODE", "verify-full")
        .arg("assert-not-empty"));
    assert_eq!(failure_kind(&out), "untrusted");

    // a client key others can read is refused before anything is sent (libpq's rule)
    let home = home_with(
        f,
        "home_open_key",
        &[
            ("ca.crt", "root.crt"),
            ("certuser.crt", "postgresql.crt"),
            ("certuser.key", "postgresql.key"),
        ],
    );
    chmod(&home.join(".postgresql/postgresql.key"), 0o644);
    let out = run(pgrepair_tls(&home)
        .args([
            "--dsn",
            &probe_dsn(&f.ssl, "localhost", "certuser", "sslmode=verify-full"),
        ])
        .arg("assert-not-empty"));
    expect_code(&out, 2);
    let err = stderr_of(&out);
    assert!(err.contains("has group or world access"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // an explicit client certificate that does not exist is named
    let out = run(pgrepair_tls(&f.home)
        .args([
            "--dsn",
            &probe_dsn(
                &f.ssl,
                "localhost",
                "certuser",
                "sslmode=require sslcert=/nonexistent/c.crt",
            ),
        ])
        .arg("assert-not-empty"));
    expect_code(&out, 2);
    assert!(
        stderr_of(&out).contains("client certificate file \"/nonexistent/c.crt\" does not exist"),
        "{}",
        stderr_of(&out)
    );

    // allow against a server without SSL that turns the plain session down: its own reason is
    // reported, not "no SSL" from the TLS retry
    let out = run(pgrepair_tls(&f.home)
        .args([
            "--dsn",
            &format!(
                "host=localhost port={} user=bob dbname=no_such_db sslmode=allow",
                Cluster::shared().port
            ),
        ])
        .arg("assert-not-empty"));
    expect_code(&out, 2);
    assert!(
        stderr_of(&out).contains("database \"no_such_db\" does not exist"),
        "{}",
        stderr_of(&out)
    );

    // hostaddr only (no host name, so no SNI): require works, verify-full is refused
    let out = run(pgrepair_tls(&f.home)
        .env("PGAPPNAME", "tlsdefault3")
        .args([
            "--dsn",
            &format!(
                "hostaddr=127.0.0.1 port={} user=bob dbname={PROBE_DB} sslmode=require",
                f.ssl.port
            ),
        ])
        .arg("assert-not-empty"));
    expect_code(&out, 0);
    assert_eq!(session_kind(&f.ssl, "tlsdefault3"), "TLS");
    let out = run(pgrepair_tls(&f.home)
        .args([
            "--dsn",
            &format!(
                "hostaddr=127.0.0.1 port={} user=bob dbname={PROBE_DB} sslmode=verify-full \
                 sslrootcert={}",
                f.ssl.port,
                f.certs.join("ca.crt").display()
            ),
        ])
        .arg("assert-not-empty"));
    expect_code(&out, 2);
    assert!(
        stderr_of(&out).contains("host name must be specified"),
        "{}",
        stderr_of(&out)
    );

    // sslrootcert=system: verify-full against the system store, which does not know our CA
    let out = run(pgrepair_tls(&f.home)
        .args([
            "--dsn",
            &probe_dsn(&f.ssl, "localhost", "bob", "sslrootcert=system"),
        ])
        .arg("assert-not-empty"));
    assert_eq!(failure_kind(&out), "untrusted");
    assert!(
        stderr_of(&out).contains("sslmode=verify-full, trusted roots: the system trust store"),
        "{}",
        stderr_of(&out)
    );
    let out = run(pgrepair_tls(&f.home)
        .args([
            "--dsn",
            &probe_dsn(
                &f.ssl,
                "localhost",
                "bob",
                "sslrootcert=system sslmode=require",
            ),
        ])
        .arg("assert-not-empty"));
    expect_code(&out, 2);
    assert!(
        stderr_of(&out)
            .contains("weak sslmode \"require\" may not be used with sslrootcert=system"),
        "{}",
        stderr_of(&out)
    );

    // --json: the connection error is JSON with the cause in the message
    let root = f.certs.join("ca.crt");
    let out = run(pgrepair_tls(&f.home)
        .args([
            "--json",
            "--dsn",
            &probe_dsn(
                &f.ssl,
                "127.0.0.1",
                "bob",
                &format!("sslmode=verify-full sslrootcert={}", root.display()),
            ),
        ])
        .arg("assert-not-empty"));
    expect_code(&out, 2);
    let v = json_of(&out);
    assert_eq!(v["error"]["kind"], "connection", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("host name mismatch"), "{msg}");
    assert!(msg.contains("DNS:localhost"), "{msg}");
}

#[test]
fn verify_full_matches_an_ip_subject_alt_name() {
    let f = fixture();
    // a second SSL cluster whose certificate names only IP:127.0.0.1
    let cert_line = format!(
        "ssl_cert_file = '{}'",
        f.server.join("server_ip.crt").display()
    );
    let key_line = format!(
        "ssl_key_file = '{}'",
        f.server.join("server_ip.key").display()
    );
    let c = Cluster::start(&["ssl = on", &cert_line, &key_line], false);
    let root = f.certs.join("ca.crt");
    let dsn = |host: &str| {
        format!(
            "host={host} port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={}",
            c.port,
            root.display()
        )
    };
    // exit 99: the postgres database of a fresh cluster has no user tables, so we got in
    let out = run(pgrepair_tls(&f.home)
        .args(["--dsn", &dsn("127.0.0.1")])
        .arg("assert-not-empty"));
    expect_code(&out, 99);
    let out = run(pgrepair_tls(&f.home)
        .args(["--dsn", &dsn("localhost")])
        .arg("assert-not-empty"));
    assert_eq!(failure_kind(&out), "hostname");
    assert!(
        stderr_of(&out).contains("IP:127.0.0.1, not \"localhost\""),
        "{}",
        stderr_of(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// Round trip over verify-full, with the pg_dump backup over TLS too
// ---------------------------------------------------------------------------------------------

const SAMPLE_TABLES_SQL: &str = "
    CREATE TABLE public.workspaces (id bigint PRIMARY KEY);
    CREATE TABLE public.source_configs (workspace_id bigint, source_type text, status text);
    CREATE TABLE public.orders (customer_id bigint);
    CREATE TABLE public.customers (id bigint PRIMARY KEY);
    ALTER TABLE public.workspaces OWNER TO alice;
    ALTER TABLE public.source_configs OWNER TO alice;
    ALTER TABLE public.orders OWNER TO alice;
    ALTER TABLE public.customers OWNER TO alice;
    GRANT SELECT ON ALL TABLES IN SCHEMA repair TO alice;
    GRANT SELECT ON ALL SEQUENCES IN SCHEMA repair TO alice;
";

#[test]
fn round_trip_over_verify_full() {
    let f = fixture();
    let c = &f.ssl;
    let db = c.fresh_db("tls_roundtrip");
    c.connect(&db, "postgres")
        .batch_execute(SAMPLE_TABLES_SQL)
        .expect("sample tables");
    let root = f.certs.join("ca.crt");
    // alice, carol and dave are `hostnossl … reject`: every session below, pg_dump's included,
    // must be TLS, verified against the test CA with the host name checked.
    let tls_cli = |user: &str| {
        let mut cmd = pgrepair_tls(&f.home);
        cmd.arg("--dsn").arg(format!(
            "postgresql://{user}@localhost:{}/{db}?sslmode=verify-full&sslrootcert={}",
            c.port,
            root.display()
        ));
        cmd
    };
    let plain = run(cli(c, &db, "carol").env("PGSSLMODE", "disable").arg("list"));
    assert!(
        failure_kind(&plain) == "hba-reject",
        "carol must not get in without TLS: {}",
        stderr_of(&plain)
    );

    let out = run(tls_cli("carol")
        .arg("install")
        .arg(repo_root().join("playbooks")));
    expect_code(&out, 0);
    let samples = std::fs::read_dir(repo_root().join("playbooks"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count();
    assert!(
        stdout_of(&out).contains(&format!("{samples} files registered: {samples} new")),
        "{}",
        stdout_of(&out)
    );

    let out = run(tls_cli("dave").arg("list"));
    expect_code(&out, 0);
    assert!(
        stdout_of(&out).contains(&format!("{samples} playbooks")),
        "{}",
        stdout_of(&out)
    );

    let id = "intent_issue_tables";
    let out = run(tls_cli("alice").args(["--json", "preview", id]));
    expect_code(&out, 0);
    let preview = json_of(&out);
    let hash = preview["hash"]
        .as_str()
        .expect("hash in preview")
        .to_string();
    assert_eq!(hash.len(), 64, "{preview}");

    let backups = tempfile::tempdir().unwrap();
    let pg_dump = format!("{PG_BIN}/pg_dump");
    let out = run(tls_cli("alice")
        .args(["execute", id, "--hash", &hash, "--reason", "TLS round trip"])
        .arg("--backup-dir")
        .arg(backups.path())
        .args(["--pg-dump", &pg_dump]));
    expect_code(&out, 0);
    let stdout = stdout_of(&out);
    assert!(stdout.starts_with(&format!("SUCCESS  {id} v1")), "{stdout}");
    let dumps: Vec<_> = std::fs::read_dir(backups.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    assert!(std::fs::read(&dumps[0]).unwrap().starts_with(b"PGDMP"));
    // pg_dump (alice, hostnossl reject) reached the server over TLS
    let log = c.log();
    assert!(
        log.lines()
            .any(|l| l.contains("connection authorized: user=alice")
                && l.contains("application_name=pg_dump")
                && l.contains("SSL enabled")),
        "no TLS session of pg_dump in the server log"
    );

    let out = run(tls_cli("dave").arg("runs"));
    expect_code(&out, 0);
    assert!(
        stdout_of(&out).contains("TLS round trip"),
        "{}",
        stdout_of(&out)
    );
    let out = run(tls_cli("dave").args(["audit", "verify"]));
    expect_code(&out, 0);
    assert!(
        stdout_of(&out).contains("audit   ok"),
        "{}",
        stdout_of(&out)
    );

    // with the wrong CA, execute stops at pgrepair's own session: exit 2, nothing dumped or run
    let wrong = f.certs.join("ca2.crt");
    let out = run(pgrepair_tls(&f.home)
        .arg("--dsn")
        .arg(format!(
            "host=localhost port={} dbname={db} user=alice sslmode=verify-full sslrootcert={}",
            c.port,
            wrong.display()
        ))
        .args(["execute", id, "--hash", &hash, "--reason", "x"])
        .arg("--backup-dir")
        .arg(backups.path())
        .args(["--pg-dump", &pg_dump]));
    assert_eq!(failure_kind(&out), "untrusted");
    assert_eq!(std::fs::read_dir(backups.path()).unwrap().count(), 1);
}
