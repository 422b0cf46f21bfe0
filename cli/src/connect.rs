//! Opening a session the way libpq would: `--dsn` / `DATABASE_URL` (URL or `key=value`
//! conninfo) first, then the `PG*` environment variables and `~/.pgpass` for anything the
//! connection string leaves out. Plain connections only (no TLS).

use std::env;
use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::{Client, Config, NoTls};

use crate::error::CliError;

/// Debian's (and most packagers') socket directory, used when `PGHOST` is unset and it exists.
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
const DEFAULT_PORT: u16 = 5432;

/// A resolved connection: the driver config plus what the user should see in messages and what
/// `pg_dump` needs to reach the same database.
pub struct Target {
    pub config: Config,
}

impl Target {
    /// Resolves the connection from `--dsn` (or `DATABASE_URL`, which clap maps onto it) and the
    /// libpq environment. Nothing is sent to the server yet.
    pub fn resolve(dsn: Option<&str>) -> Result<Target, CliError> {
        resolve_with(dsn, &|k| env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// `host:port/db as user`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{}:{}/{} as {}",
            self.host_display(),
            self.port(),
            self.config.get_dbname().unwrap_or("?"),
            self.config.get_user().unwrap_or("?")
        )
    }

    pub fn host_display(&self) -> String {
        match self.config.get_hosts().first() {
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
        self.config
            .get_ports()
            .first()
            .copied()
            .unwrap_or(DEFAULT_PORT)
    }

    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or("postgres")
    }

    /// Environment for a libpq child process (`pg_dump`) so it reaches the same database.
    pub fn libpq_env(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("PGHOST".to_string(), self.host_display()),
            ("PGPORT".to_string(), self.port().to_string()),
            ("PGDATABASE".to_string(), self.dbname().to_string()),
            ("PGSSLMODE".to_string(), "disable".to_string()),
        ];
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

    /// Opens the session. Failure is a `Connect` error (exit 2) naming the target.
    pub fn connect(&self) -> Result<Client, CliError> {
        let mut config = self.config.clone();
        config.notice_callback(|notice| {
            // Notices relay server text (RAISE NOTICE in a playbook, for one): escaped.
            crate::output::eprint_human(&format!(
                "pgrepair: {}: {}",
                notice.severity(),
                notice.message()
            ));
        });
        config.connect(NoTls).map_err(|e| CliError::Connect {
            target: self.describe(),
            reason: error_reason(&e),
            sqlstate: e.as_db_error().map(|db| db.code().code().to_string()),
        })
    }
}

/// The useful part of a driver error: the server's message, or the underlying I/O error.
pub fn error_reason(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let top = e.to_string();
    match e.source() {
        Some(src) if top == "error connecting to server" => src.to_string(),
        Some(src) => format!("{top}: {src}"),
        None => top,
    }
}

fn tls_unsupported(mode: &str) -> CliError {
    CliError::Usage(format!(
        "sslmode={mode} is not supported: pgrepair connects without TLS (use a local socket, \
         an SSH tunnel, or sslmode=disable/prefer)"
    ))
}

fn resolve_with(
    dsn: Option<&str>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Target, CliError> {
    let dsn = dsn.map(str::trim).filter(|s| !s.is_empty());
    let mut config = match dsn {
        Some(s) => Config::from_str(s).map_err(|e| {
            for mode in ["verify-ca", "verify-full"] {
                if s.contains(mode) {
                    return tls_unsupported(mode);
                }
            }
            CliError::Usage(format!(
                "invalid connection string (--dsn / DATABASE_URL): {}",
                error_reason(&e)
            ))
        })?,
        None => Config::new(),
    };

    if matches!(config.get_ssl_mode(), SslMode::Require) {
        return Err(tls_unsupported("require"));
    }
    if dsn.is_none_or(|s| !s.contains("sslmode")) {
        if let Some(mode) = var("PGSSLMODE") {
            match mode.as_str() {
                "disable" | "allow" | "prefer" => {}
                other => return Err(tls_unsupported(other)),
            }
        }
    }
    config.ssl_mode(SslMode::Disable);

    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        match var("PGHOST") {
            Some(hosts) => {
                for h in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                    if h.starts_with('/') {
                        config.host_path(h);
                    } else {
                        config.host(h);
                    }
                }
            }
            None => {
                if Path::new(DEFAULT_SOCKET_DIR).is_dir() {
                    config.host_path(DEFAULT_SOCKET_DIR);
                } else {
                    config.host("localhost");
                }
            }
        }
    }
    if config.get_ports().is_empty() {
        let port = match var("PGPORT") {
            Some(p) => p
                .trim()
                .parse::<u16>()
                .map_err(|_| CliError::Usage(format!("invalid PGPORT: {p:?}")))?,
            None => DEFAULT_PORT,
        };
        config.port(port);
    }
    if config.get_user().is_none() {
        let user = var("PGUSER")
            .or_else(|| var("USER"))
            .or_else(|| var("LOGNAME"))
            .ok_or_else(|| {
                CliError::Usage("no database user: set PGUSER or pass --dsn".to_string())
            })?;
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        let db = var("PGDATABASE")
            .or_else(|| config.get_user().map(str::to_string))
            .unwrap_or_else(|| "postgres".to_string());
        config.dbname(&db);
    }
    if config.get_application_name().is_none() {
        config.application_name(&var("PGAPPNAME").unwrap_or_else(|| "pgrepair".to_string()));
    }
    if config.get_connect_timeout().is_none() {
        if let Some(t) = var("PGCONNECT_TIMEOUT") {
            let secs = t
                .trim()
                .parse::<u64>()
                .map_err(|_| CliError::Usage(format!("invalid PGCONNECT_TIMEOUT: {t:?}")))?;
            if secs > 0 {
                config.connect_timeout(Duration::from_secs(secs.max(2)));
            }
        }
    }
    if config.get_options().is_none() {
        if let Some(o) = var("PGOPTIONS") {
            config.options(&o);
        }
    }

    let mut target = Target { config };
    if target.config.get_password().is_none() {
        if let Some(p) = var("PGPASSWORD") {
            target.config.password(p);
        } else if let Some(p) = pgpass_lookup(&target, var) {
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
    fn tls_is_refused_clearly() {
        for dsn in [
            "host=h sslmode=require user=u",
            "postgres://u@h/db?sslmode=verify-full",
        ] {
            let e = resolve(Some(dsn), &[]).err().unwrap();
            assert_eq!(e.exit_code(), 2);
            assert!(e.human_lines()[0].contains("not supported"), "{dsn}");
        }
        let e = resolve(None, &[("PGSSLMODE", "require"), ("USER", "u")])
            .err()
            .unwrap();
        assert!(e.human_lines()[0].contains("sslmode=require"));
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
