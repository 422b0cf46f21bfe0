//! Opening a session the way libpq would: `--dsn` / `DATABASE_URL` (URL or `key=value`
//! conninfo) first, then the service file entry (`service=` / `PGSERVICE`), then the `PG*`
//! environment variables and `~/.pgpass` for anything still missing. TLS per libpq's `sslmode`
//! rules (see `tls.rs`).

use std::env;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::{Client, Config, NoTls};

use crate::conninfo;
use crate::error::CliError;
use crate::pg_error::error_reason;
use crate::tls::{self, Mode, Tls};

/// Debian's (and most packagers') socket directory, used when `PGHOST` is unset and it exists.
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
const DEFAULT_PORT: u16 = 5432;
/// Where Debian's libpq looks for the system-wide service file when `PGSYSCONFDIR` is unset.
const DEFAULT_SYSCONFDIR: &str = "/etc/postgresql-common";

/// Keywords the driver takes as they are.
const DRIVER_KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "tcp_user_timeout",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
    "sslnegotiation",
];
/// Keywords pgrepair handles itself.
const OWN_KEYS: &[&str] = &[
    "connect_timeout",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslsni",
    "service",
    "gssencmode",
];

/// The libpq environment variables, by keyword.
const ENV_VARS: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("port", "PGPORT"),
    ("user", "PGUSER"),
    ("dbname", "PGDATABASE"),
    ("password", "PGPASSWORD"),
    ("options", "PGOPTIONS"),
    ("application_name", "PGAPPNAME"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("sslsni", "PGSSLSNI"),
    ("gssencmode", "PGGSSENCMODE"),
];

/// Where a connection parameter came from, for error messages.
#[derive(Debug, Clone)]
enum Source {
    Dsn,
    Service(PathBuf),
    Env(&'static str),
}

impl Source {
    fn invalid(&self, what: &str) -> CliError {
        CliError::Usage(match self {
            Source::Dsn => format!("invalid connection string (--dsn / DATABASE_URL): {what}"),
            Source::Service(f) => {
                format!("invalid entry in service file \"{}\": {what}", f.display())
            }
            Source::Env(v) => format!("invalid {v}: {what}"),
        })
    }
}

/// A resolved connection: the driver config, the TLS settings, plus what the user should see in
/// messages and what `pg_dump` needs to reach the same database.
pub struct Target {
    pub config: Config,
    pub tls: Tls,
    /// With several hosts (`PGHOST=a,b`): the index of the one `connect` reached, so `pg_dump`
    /// and messages use that host, not the first.
    connected: std::cell::Cell<Option<usize>>,
}

impl Target {
    /// Resolves the connection from `--dsn` (or `DATABASE_URL`, which clap maps onto it), the
    /// service file and the libpq environment. Nothing is sent to the server yet.
    pub fn resolve(dsn: Option<&str>) -> Result<Target, CliError> {
        resolve_with(dsn, &|k| env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// `host:port/db as user`, for messages.
    pub fn describe(&self) -> String {
        let hosts = self.config.get_hosts();
        let host = if self.connected.get().is_none() && hosts.len() > 1 {
            // not connected (yet): name every host that is tried, in order
            hosts
                .iter()
                .map(|h| match h {
                    Host::Tcp(h) => h.clone(),
                    Host::Unix(p) => p.display().to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        } else {
            self.host_display()
        };
        format!(
            "{}:{}/{} as {}",
            host,
            self.port(),
            self.config.get_dbname().unwrap_or("?"),
            self.config.get_user().unwrap_or("?")
        )
    }

    pub fn host_display(&self) -> String {
        let i = self.connected.get().unwrap_or(0);
        match self.config.get_hosts().get(i) {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => self
                .config
                .get_hostaddrs()
                .first()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "?".to_string()),
        }
    }

    pub fn port(&self) -> u16 {
        let ports = self.config.get_ports();
        let i = self.connected.get().unwrap_or(0);
        // libpq: one port for all hosts, or one per host
        ports
            .get(i)
            .or(ports.first())
            .copied()
            .unwrap_or(DEFAULT_PORT)
    }

    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or("postgres")
    }

    /// Every host is a Unix-domain socket: libpq ignores sslmode there.
    fn only_sockets(&self) -> bool {
        let hosts = self.config.get_hosts();
        !hosts.is_empty()
            && hosts.iter().all(|h| matches!(h, Host::Unix(_)))
            && self.config.get_hostaddrs().is_empty()
    }

    /// Environment for a libpq child process (`pg_dump`) so it reaches the same database with
    /// the same TLS settings.
    pub fn libpq_env(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("PGHOST".to_string(), self.host_display()),
            ("PGPORT".to_string(), self.port().to_string()),
            ("PGDATABASE".to_string(), self.dbname().to_string()),
        ];
        vars.extend(self.tls.libpq_env());
        if let Some(u) = self.config.get_user() {
            vars.push(("PGUSER".to_string(), u.to_string()));
        }
        if let Some(p) = self.config.get_password() {
            vars.push((
                "PGPASSWORD".to_string(),
                String::from_utf8_lossy(p).into_owned(),
            ));
        }
        if let Some(t) = self.config.get_connect_timeout() {
            vars.push((
                "PGCONNECT_TIMEOUT".to_string(),
                t.as_secs().max(1).to_string(),
            ));
        }
        vars
    }

    /// Opens the session. Failure is a `Connect` error (exit 2) naming the target and, for TLS
    /// problems, the cause.
    pub fn connect(&self) -> Result<Client, CliError> {
        let hosts = self.config.get_hosts().len();
        if hosts <= 1 {
            return self.connect_config(self.config.clone());
        }
        // Several hosts: try them in order like libpq, and remember which one answered.
        let mut last = None;
        for i in 0..hosts {
            self.connected.set(Some(i));
            match self.connect_config(single_host(&self.config, i)) {
                Ok(client) => return Ok(client),
                Err(e) => last = Some(e),
            }
        }
        self.connected.set(None);
        Err(last.unwrap_or_else(|| CliError::Usage("no host to connect to".to_string())))
    }

    fn connect_config(&self, mut config: Config) -> Result<Client, CliError> {
        config.notice_callback(|notice| {
            // Notices relay server text (RAISE NOTICE in a playbook, for one): escaped.
            crate::output::eprint_human(&format!(
                "pgrepair: {}: {}",
                notice.severity(),
                notice.message()
            ));
        });
        if self.tls.mode == Mode::Disable || self.only_sockets() {
            config.ssl_mode(SslMode::Disable);
            return config.connect(NoTls).map_err(|e| {
                let sqlstate = e.as_db_error().map(|db| db.code().code().to_string());
                self.failure_text(error_reason(&e), sqlstate)
            });
        }
        if self.tls.mode == Mode::VerifyFull
            && (self.config.get_hosts().is_empty()
                || self
                    .config
                    .get_hosts()
                    .iter()
                    .any(|h| !matches!(h, Host::Tcp(_))))
        {
            return Err(self.failure_text(
                "host name must be specified for a verified SSL connection (sslmode=verify-full)"
                    .to_string(),
                None,
            ));
        }
        if config.get_hosts().is_empty() {
            // hostaddr only: the driver wants a name for TLS; the address stands in (it is never
            // sent as SNI, and verify-full was refused above)
            for addr in self.config.get_hostaddrs() {
                config.host(&addr.to_string());
            }
        }
        let seen = Arc::new(Mutex::new(None));
        let make = self
            .tls
            .connector(seen.clone())
            .map_err(|reason| self.failure_text(reason, None))?;
        let result = match self.tls.mode {
            Mode::Allow => {
                // plain first; TLS only if the server turned the plain session down
                config.ssl_mode(SslMode::Disable);
                match config.connect(make.clone()) {
                    Err(plain) if plain.as_db_error().is_some() => {
                        config.ssl_mode(SslMode::Require);
                        match config.connect(make) {
                            // a server without SSL: its answer to the plain session is the news
                            Err(e) if tls::server_has_no_ssl(&e) => Err(plain),
                            other => other,
                        }
                    }
                    other => other,
                }
            }
            // falls back to plain only when the server answers that it has no SSL
            Mode::Prefer => {
                config.ssl_mode(SslMode::Prefer);
                config.connect(make)
            }
            _ => {
                config.ssl_mode(SslMode::Require);
                config.connect(make)
            }
        };
        result.map_err(|e| {
            let seen = seen.lock().ok().and_then(|s| s.clone());
            self.failure(&e, seen)
        })
    }

    fn failure(&self, e: &postgres::Error, seen: Option<tls::VerifyFailure>) -> CliError {
        let sqlstate = e.as_db_error().map(|db| db.code().code().to_string());
        let probe = || match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => self.tls.client_cert_alert(h, self.port()),
            _ => None,
        };
        let reason = tls::failure_reason(e, &self.tls, &self.host_display(), seen, &probe)
            .unwrap_or_else(|| error_reason(e));
        self.failure_text(reason, sqlstate)
    }

    fn failure_text(&self, reason: String, sqlstate: Option<String>) -> CliError {
        CliError::Connect {
            target: self.describe(),
            reason,
            sqlstate,
        }
    }
}

/// `config` with only its `i`-th host (and that host's hostaddr and port).
fn single_host(config: &Config, i: usize) -> Config {
    let mut c = Config::new();
    if let Some(u) = config.get_user() {
        c.user(u);
    }
    if let Some(p) = config.get_password() {
        c.password(p);
    }
    if let Some(d) = config.get_dbname() {
        c.dbname(d);
    }
    if let Some(o) = config.get_options() {
        c.options(o);
    }
    if let Some(a) = config.get_application_name() {
        c.application_name(a);
    }
    c.ssl_mode(config.get_ssl_mode());
    c.ssl_negotiation(config.get_ssl_negotiation());
    match &config.get_hosts()[i] {
        Host::Tcp(h) => c.host(h),
        Host::Unix(p) => c.host_path(p),
    };
    if let Some(a) = config.get_hostaddrs().get(i) {
        c.hostaddr(*a);
    }
    let ports = config.get_ports();
    if let Some(p) = ports.get(i).or(ports.first()) {
        c.port(*p);
    }
    if let Some(t) = config.get_connect_timeout() {
        c.connect_timeout(*t);
    }
    if let Some(t) = config.get_tcp_user_timeout() {
        c.tcp_user_timeout(*t);
    }
    c.keepalives(config.get_keepalives());
    c.keepalives_idle(config.get_keepalives_idle());
    if let Some(t) = config.get_keepalives_interval() {
        c.keepalives_interval(t);
    }
    if let Some(n) = config.get_keepalives_retries() {
        c.keepalives_retries(n);
    }
    c.target_session_attrs(config.get_target_session_attrs());
    c.channel_binding(config.get_channel_binding());
    c
}

/// Connection parameters with their source; the first source to set a keyword wins, except
/// that within the DSN a later duplicate replaces an earlier one (libpq).
#[derive(Default)]
struct Gathered(Vec<(String, String, Source)>);

impl Gathered {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, _)| v.as_str())
    }

    fn entry(&self, key: &str) -> Option<(&str, &Source)> {
        self.0
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, s)| (v.as_str(), s))
    }

    fn set_if_absent(&mut self, key: &str, value: String, source: Source) {
        if self.get(key).is_none() {
            self.0.push((key.to_string(), value, source));
        }
    }

    fn replace(&mut self, key: &str, value: String, source: Source) {
        self.0.retain(|(k, _, _)| k != key);
        self.0.push((key.to_string(), value, source));
    }
}

fn known_key(key: &str) -> bool {
    DRIVER_KEYS.contains(&key) || OWN_KEYS.contains(&key)
}

/// Finds the `[name]` section: `PGSERVICEFILE` or `~/.pg_service.conf`, then the system-wide
/// `pg_service.conf` in `PGSYSCONFDIR` (Debian: /etc/postgresql-common).
fn service_entry(
    name: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<(PathBuf, conninfo::Params), CliError> {
    let mut candidates = Vec::new();
    match var("PGSERVICEFILE") {
        Some(f) => {
            let f = PathBuf::from(f);
            if !f.is_file() {
                return Err(CliError::Usage(format!(
                    "service file \"{}\" not found (PGSERVICEFILE)",
                    f.display()
                )));
            }
            candidates.push(f);
        }
        None => {
            if let Some(home) = var("HOME") {
                candidates.push(Path::new(&home).join(".pg_service.conf"));
            }
        }
    }
    let sysconf = var("PGSYSCONFDIR").unwrap_or_else(|| DEFAULT_SYSCONFDIR.to_string());
    candidates.push(Path::new(&sysconf).join("pg_service.conf"));
    for file in candidates.into_iter().filter(|f| f.is_file()) {
        if let Some(params) = conninfo::service_section(&file, name).map_err(CliError::Usage)? {
            return Ok((file, params));
        }
    }
    Err(CliError::Usage(format!(
        "definition of service \"{name}\" not found (looked in {})",
        match var("PGSERVICEFILE") {
            Some(f) => format!("{f} and {sysconf}/pg_service.conf"),
            None => format!("~/.pg_service.conf and {sysconf}/pg_service.conf"),
        }
    )))
}

/// libpq's quoting for a conninfo value.
fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn resolve_with(
    dsn: Option<&str>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Target, CliError> {
    let mut params = Gathered::default();

    // 1. the connection string
    if let Some(s) = dsn.map(str::trim).filter(|s| !s.is_empty()) {
        for (key, value) in conninfo::parse(s).map_err(|e| Source::Dsn.invalid(&e))? {
            if !known_key(&key) {
                return Err(Source::Dsn.invalid(&format!("invalid connection option \"{key}\"")));
            }
            params.replace(&key, value, Source::Dsn);
        }
    }

    // 2. the service file entry
    let service = params
        .get("service")
        .map(str::to_string)
        .or_else(|| var("PGSERVICE"));
    if let Some(name) = service {
        let (file, entries) = service_entry(&name, var)?;
        for (key, value) in entries {
            let source = Source::Service(file.clone());
            if !known_key(&key) {
                return Err(source.invalid(&format!("invalid connection option \"{key}\"")));
            }
            params.set_if_absent(&key, value, source);
        }
    }

    // 3. the environment
    for (key, name) in ENV_VARS {
        if let Some(v) = var(name) {
            params.set_if_absent(key, v, Source::Env(name));
        }
    }

    // values pgrepair checks itself, naming where they came from
    if let Some((ports, source)) = params.entry("port") {
        for p in ports.split(',').map(str::trim) {
            if !p.is_empty() && p.parse::<u16>().is_err() {
                return Err(source.invalid(&format!("invalid port number: \"{p}\"")));
            }
        }
    }
    let mut timeout = None;
    if let Some((t, source)) = params.entry("connect_timeout") {
        let secs = t
            .trim()
            .parse::<i64>()
            .map_err(|_| source.invalid(&format!("invalid connect_timeout: \"{t}\"")))?;
        if secs > 0 {
            // libpq: anything below 2 seconds is 2 seconds
            timeout = Some(Duration::from_secs(secs.max(2) as u64));
        }
    }
    if let Some((g, source)) = params.entry("gssencmode") {
        match g {
            "disable" | "prefer" => {}
            "require" => {
                return Err(source.invalid(
                    "gssencmode=require is not supported: pgrepair does not use GSSAPI \
                     encryption (use sslmode)",
                ))
            }
            other => return Err(source.invalid(&format!("invalid gssencmode value: \"{other}\""))),
        }
    }

    // TLS settings
    let given = tls::Given {
        mode: params.get("sslmode").map(str::to_string),
        rootcert: params.get("sslrootcert").map(str::to_string),
        cert: params.get("sslcert").map(str::to_string),
        key: params.get("sslkey").map(str::to_string),
        sni: params.get("sslsni").map(str::to_string),
    };
    let home = var("HOME").map(PathBuf::from);
    let tls = Tls::resolve(&given, home.as_deref()).map_err(|e| {
        let source = params
            .entry("sslmode")
            .or_else(|| params.entry("sslrootcert"))
            .map(|(_, s)| s.clone())
            .unwrap_or(Source::Dsn);
        source.invalid(&e)
    })?;

    // 4. the driver config
    let conninfo: Vec<String> = params
        .0
        .iter()
        .filter(|(k, _, _)| DRIVER_KEYS.contains(&k.as_str()))
        .map(|(k, v, _)| format!("{k}={}", quote(v)))
        .collect();
    let mut config = Config::from_str(&conninfo.join(" ")).map_err(|e| {
        CliError::Usage(format!(
            "invalid connection parameters: {}",
            error_reason(&e)
        ))
    })?;
    if let Some(t) = timeout {
        config.connect_timeout(t);
    }

    // 5. defaults
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        if Path::new(DEFAULT_SOCKET_DIR).is_dir() {
            config.host_path(DEFAULT_SOCKET_DIR);
        } else {
            config.host("localhost");
        }
    }
    if config.get_ports().is_empty() {
        config.port(DEFAULT_PORT);
    }
    if config.get_user().is_none() {
        let user = var("USER").or_else(|| var("LOGNAME")).ok_or_else(|| {
            CliError::Usage("no database user: set PGUSER or pass --dsn".to_string())
        })?;
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        let db = config.get_user().unwrap_or("postgres").to_string();
        config.dbname(&db);
    }
    if config.get_application_name().is_none() {
        config.application_name("pgrepair");
    }

    let mut target = Target {
        config,
        tls,
        connected: std::cell::Cell::new(None),
    };
    if target.config.get_password().is_none() {
        if let Some(p) = pgpass_lookup(&target, var) {
            target.config.password(p);
        }
    }
    Ok(target)
}

/// Looks the password up in `PGPASSFILE` or `~/.pgpass` (`host:port:db:user:password`, `*`
/// wildcards, `\:` and `\\` escapes), as libpq does. Files readable by group or others are
/// ignored with a warning, like libpq.
fn pgpass_lookup(target: &Target, var: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let path = match var("PGPASSFILE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(var("HOME")?).join(".pgpass"),
    };
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            crate::output::eprint_human(&format!(
                "pgrepair: warning: password file {} has group or world access; permissions \
                 should be u=rw (0600) or less",
                path.display()
            ));
            return None;
        }
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match target.config.get_hosts().first() {
        Some(Host::Unix(p)) if p == Path::new(DEFAULT_SOCKET_DIR) => "localhost".to_string(),
        _ => target.host_display(),
    };
    let port = target.port().to_string();
    let want = [
        host.as_str(),
        port.as_str(),
        target.dbname(),
        target.config.get_user().unwrap_or(""),
    ];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .find_map(|line| {
            let fields = split_pgpass(line);
            if fields.len() < 5 {
                return None;
            }
            let matches = want.iter().zip(&fields).all(|(w, f)| f == "*" || f == w);
            matches.then(|| fields[4].clone())
        })
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if let Some(last) = fields.last_mut() {
                        last.push(n);
                    }
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => {
                if let Some(last) = fields.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(dsn: Option<&str>, vars: &[(&str, &str)]) -> Result<Target, CliError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve_with(dsn, &move |k| map.get(k).cloned())
    }

    #[test]
    fn env_fills_what_is_missing() {
        let t = resolve(
            None,
            &[
                ("PGHOST", "db.example"),
                ("PGPORT", "6543"),
                ("PGUSER", "alice"),
                ("PGPASSWORD", "s3cret"),
            ],
        )
        .unwrap_or_else(|e| panic!("{:?}", e.human_lines()));
        assert_eq!(t.describe(), "db.example:6543/alice as alice");
        assert_eq!(t.config.get_application_name(), Some("pgrepair"));
        assert_eq!(t.config.get_password(), Some(&b"s3cret"[..]));
        let env: HashMap<_, _> = t.libpq_env().into_iter().collect();
        assert_eq!(env["PGDATABASE"], "alice");
        assert_eq!(env["PGPASSWORD"], "s3cret");
    }

    #[test]
    fn several_hosts_each_alone() {
        let t = resolve(
            None,
            &[
                ("PGHOST", "h1,/tmp/sock"),
                ("PGPORT", "6000"),
                ("USER", "u"),
            ],
        )
        .unwrap();
        assert_eq!(t.config.get_hosts().len(), 2);
        let second = single_host(&t.config, 1);
        assert_eq!(second.get_hosts().len(), 1);
        assert!(matches!(&second.get_hosts()[0], Host::Unix(p) if p == Path::new("/tmp/sock")));
        assert_eq!(second.get_ports(), &[6000]);
        assert_eq!(second.get_user(), Some("u"));
        // before connecting: the first host (every host in messages); after reaching the
        // second: the second
        assert_eq!(t.host_display(), "h1");
        assert_eq!(t.describe(), "h1,/tmp/sock:6000/u as u");
        t.connected.set(Some(1));
        let env: HashMap<_, _> = t.libpq_env().into_iter().collect();
        assert_eq!(env["PGHOST"], "/tmp/sock");
        assert_eq!(env["PGPORT"], "6000");
    }

    #[test]
    fn socket_directory_host() {
        let t = resolve(None, &[("PGHOST", "/tmp/sock"), ("USER", "bob")]).unwrap();
        assert!(matches!(t.config.get_hosts()[0], Host::Unix(_)));
        assert_eq!(t.describe(), "/tmp/sock:5432/bob as bob");
    }

    #[test]
    fn dsn_wins_over_env() {
        let t = resolve(
            Some("postgres://carol@h1:5433/app"),
            &[("PGHOST", "other"), ("PGDATABASE", "x"), ("PGUSER", "y")],
        )
        .unwrap();
        assert_eq!(t.describe(), "h1:5433/app as carol");
        let t = resolve(Some("host=h2 dbname=d"), &[("PGUSER", "dave")]).unwrap();
        assert_eq!(t.describe(), "h2:5432/d as dave");
    }

    #[test]
    fn tls_settings_from_dsn_url_and_env() {
        let t = resolve(
            Some("host=h sslmode=verify-full sslrootcert=/nonexistent/ca.crt user=u"),
            &[],
        )
        .unwrap();
        assert_eq!(t.tls.mode, Mode::VerifyFull);
        assert_eq!(
            t.tls.rootcert_missing.as_deref(),
            Some(Path::new("/nonexistent/ca.crt"))
        );
        let t = resolve(
            Some("postgresql://u@h/db?sslmode=require&sslcert=/c.crt&sslkey=/c.key"),
            &[("PGSSLMODE", "disable")],
        )
        .unwrap();
        assert_eq!(t.tls.mode, Mode::Require, "the DSN wins over PGSSLMODE");
        assert_eq!(
            t.tls.cert,
            Some((PathBuf::from("/c.crt"), PathBuf::from("/c.key")))
        );
        let t = resolve(
            None,
            &[
                ("PGSSLMODE", "verify-ca"),
                ("PGSSLCERT", "/e.crt"),
                ("USER", "u"),
            ],
        )
        .unwrap();
        assert_eq!(t.tls.mode, Mode::VerifyCa);
        let env: HashMap<_, _> = t.libpq_env().into_iter().collect();
        assert_eq!(env["PGSSLMODE"], "verify-ca");
        assert_eq!(env["PGSSLCERT"], "/e.crt");

        for (dsn, vars, want) in [
            (
                Some("host=h sslmode=verify"),
                vec![],
                "invalid connection string",
            ),
            (
                None,
                vec![("PGSSLMODE", "on"), ("USER", "u")],
                "invalid PGSSLMODE",
            ),
            (
                Some("host=h sslcrl=/x"),
                vec![],
                "invalid connection option \"sslcrl\"",
            ),
            (Some("host=h gssencmode=require"), vec![], "not supported"),
        ] {
            let e = resolve(dsn, &vars).err().unwrap();
            assert_eq!(e.exit_code(), 2);
            assert!(e.human_lines()[0].contains(want), "{:?}", e.human_lines());
        }
    }

    #[test]
    fn service_file_entries() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("svc.conf");
        std::fs::write(
            &file,
            "[app]\nhost=db.example\nport=6000\ndbname=appdb\nsslmode=verify-full\n",
        )
        .unwrap();
        let f = file.to_string_lossy().into_owned();
        // PGSERVICE names the entry; the DSN still wins over it, and it wins over the env
        let t = resolve(
            Some("dbname=other"),
            &[
                ("PGSERVICEFILE", &f),
                ("PGSERVICE", "app"),
                ("PGHOST", "ignored"),
                ("PGSSLMODE", "disable"),
                ("USER", "u"),
            ],
        )
        .unwrap();
        assert_eq!(t.describe(), "db.example:6000/other as u");
        assert_eq!(t.tls.mode, Mode::VerifyFull);
        // service= in the DSN
        let t = resolve(Some("service=app user=v"), &[("PGSERVICEFILE", &f)]).unwrap();
        assert_eq!(t.describe(), "db.example:6000/appdb as v");
        // ~/.pg_service.conf by default
        std::fs::copy(&file, dir.path().join(".pg_service.conf")).unwrap();
        let home = dir.path().to_string_lossy().into_owned();
        let t = resolve(Some("service=app user=v"), &[("HOME", &home)]).unwrap();
        assert_eq!(t.describe(), "db.example:6000/appdb as v");
        let e = resolve(Some("service=nope user=v"), &[("PGSERVICEFILE", &f)])
            .err()
            .unwrap();
        assert!(e.human_lines()[0].contains("definition of service \"nope\" not found"));
        let e = resolve(Some("service=app"), &[("PGSERVICEFILE", "/nonexistent")])
            .err()
            .unwrap();
        assert!(e.human_lines()[0].contains("not found"));
    }

    #[test]
    fn sockets_ignore_sslmode_and_verify_full_needs_a_host_name() {
        let t = resolve(Some("host=/tmp sslmode=require user=u"), &[]).unwrap();
        assert!(t.only_sockets());
        let t = resolve(
            Some("hostaddr=127.0.0.1 port=1 sslmode=verify-full user=u"),
            &[],
        )
        .unwrap();
        let e = t.connect().err().unwrap();
        assert!(e.human_lines()[0].contains("host name must be specified"));
    }

    #[test]
    fn bad_port_is_usage_error() {
        let e = resolve(None, &[("PGPORT", "x"), ("USER", "u")])
            .err()
            .unwrap();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn pgpass_is_consulted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:*:*:*:no\ndb.example:5432:*:alice:pa\\:ss\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let f = file.to_string_lossy().into_owned();
        let t = resolve(
            None,
            &[
                ("PGHOST", "db.example"),
                ("PGUSER", "alice"),
                ("PGPASSFILE", &f),
            ],
        )
        .unwrap();
        assert_eq!(t.config.get_password(), Some(&b"pa:ss"[..]));
    }
}
