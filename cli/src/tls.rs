//! TLS the way libpq does it, with OpenSSL (`postgres-openssl`): the six `sslmode`s,
//! `sslrootcert` (default `~/.postgresql/root.crt`, or `system`), client certificates
//! (`sslcert`/`sslkey`, default `~/.postgresql/postgresql.crt`/`.key`), and one clear reason per
//! failure cause.

use std::error::Error as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use postgres_openssl::MakeTlsConnector;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "disable" => Mode::Disable,
            "allow" => Mode::Allow,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Allow => "allow",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

/// What the server certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    /// `sslrootcert=system`: OpenSSL's default trust store (libpq 16+).
    System,
}

/// The resolved TLS settings of one connection.
#[derive(Debug, Clone)]
pub struct Tls {
    pub mode: Mode,
    /// The trusted roots, if any were found (explicit `sslrootcert`, or `~/.postgresql/root.crt`
    /// when it exists).
    pub rootcert: Option<RootCert>,
    /// The file the verify modes looked for and did not find (reported at connect time).
    pub rootcert_missing: Option<PathBuf>,
    /// Client certificate and key, if one is used.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// Send the host name as SNI (`sslsni`, default on).
    pub sni: bool,
}

/// The settings as given (DSN, service file or environment), before files are looked up.
#[derive(Debug, Default, Clone)]
pub struct Given {
    pub mode: Option<String>,
    pub rootcert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub sni: Option<String>,
}

impl Tls {
    /// Applies libpq's defaults: sslmode `prefer` (`verify-full` with `sslrootcert=system`),
    /// `~/.postgresql/root.crt` when no root is given, `~/.postgresql/postgresql.crt`/`.key` when
    /// no client certificate is given and that file exists.
    pub fn resolve(given: &Given, home: Option<&Path>) -> Result<Tls, String> {
        let system_root = given.rootcert.as_deref() == Some("system");
        let mode = match given.mode.as_deref() {
            Some(m) => Mode::parse(m).ok_or_else(|| {
                format!(
                    "invalid sslmode value: \"{m}\" (use disable, allow, prefer, require, \
                     verify-ca or verify-full)"
                )
            })?,
            None if system_root => Mode::VerifyFull,
            None => Mode::Prefer,
        };
        if system_root && mode != Mode::VerifyFull {
            return Err(format!(
                "weak sslmode \"{}\" may not be used with sslrootcert=system (use \"verify-full\")",
                mode.as_str()
            ));
        }
        let sni = match given.sni.as_deref() {
            None | Some("1") => true,
            Some("0") => false,
            Some(v) => return Err(format!("invalid sslsni value: \"{v}\" (use 0 or 1)")),
        };
        let dot_pg = home.map(|h| h.join(".postgresql"));

        let mut rootcert = None;
        let mut rootcert_missing = None;
        match given.rootcert.as_deref() {
            Some("system") => rootcert = Some(RootCert::System),
            Some(path) => {
                let path = PathBuf::from(path);
                if path.is_file() {
                    rootcert = Some(RootCert::File(path));
                } else if matches!(mode, Mode::Require | Mode::VerifyCa | Mode::VerifyFull) {
                    rootcert_missing = Some(path);
                }
            }
            None => {
                let default = dot_pg.as_ref().map(|d| d.join("root.crt"));
                match default {
                    Some(p) if p.is_file() => rootcert = Some(RootCert::File(p)),
                    Some(p) if matches!(mode, Mode::VerifyCa | Mode::VerifyFull) => {
                        rootcert_missing = Some(p)
                    }
                    None if matches!(mode, Mode::VerifyCa | Mode::VerifyFull) => {
                        rootcert_missing = Some(PathBuf::from("~/.postgresql/root.crt"))
                    }
                    _ => {}
                }
            }
        }

        let cert = match given.cert.as_deref() {
            Some(c) => Some(PathBuf::from(c)),
            None => dot_pg
                .as_ref()
                .map(|d| d.join("postgresql.crt"))
                .filter(|p| p.is_file()),
        };
        let cert = match cert {
            Some(c) => {
                let key = match given.key.as_deref() {
                    Some(k) => PathBuf::from(k),
                    None => dot_pg
                        .as_ref()
                        .map(|d| d.join("postgresql.key"))
                        .unwrap_or_else(|| PathBuf::from("~/.postgresql/postgresql.key")),
                };
                Some((c, key))
            }
            None => None,
        };
        Ok(Tls {
            mode,
            rootcert,
            rootcert_missing,
            cert,
            sni,
        })
    }

    /// True when the server's certificate chain must be signed by a trusted root: the verify
    /// modes, and `require` when a root certificate file exists (libpq's rule).
    pub fn verifies_chain(&self) -> bool {
        match self.mode {
            Mode::VerifyCa | Mode::VerifyFull => true,
            Mode::Require => self.rootcert.is_some(),
            _ => false,
        }
    }

    /// Where the trusted roots come from, for messages.
    pub fn roots_display(&self) -> String {
        match &self.rootcert {
            Some(RootCert::File(p)) => p.display().to_string(),
            Some(RootCert::System) => "the system trust store".to_string(),
            None => "none".to_string(),
        }
    }

    /// An OpenSSL connector for these settings. Verification problems seen during the
    /// handshake are written to `seen`, so that a failure can name its cause.
    pub fn connector(
        &self,
        seen: Arc<Mutex<Option<VerifyFailure>>>,
    ) -> Result<MakeTlsConnector, String> {
        let mut make = MakeTlsConnector::new(self.ssl_connector()?);
        let verify = self.verifies_chain();
        let full = self.mode == Mode::VerifyFull;
        let sni = self.sni;
        make.set_callback(move |cfg, domain| {
            cfg.set_verify_hostname(full);
            // no host name (hostaddr only): nothing to send as SNI
            cfg.set_use_server_name_indication(sni && !domain.is_empty());
            if verify {
                let seen = seen.clone();
                cfg.set_verify_callback(SslVerifyMode::PEER, move |ok, ctx| {
                    if !ok {
                        if let Ok(mut slot) = seen.lock() {
                            if slot.is_none() {
                                let names = ctx.current_cert().map(cert_names).unwrap_or_default();
                                *slot = Some(VerifyFailure {
                                    code: ctx.error().as_raw(),
                                    text: ctx.error().error_string().to_string(),
                                    names,
                                });
                            }
                        }
                    }
                    ok
                });
            }
            Ok(())
        });
        Ok(make)
    }

    /// The OpenSSL context: trusted roots, verify mode, client certificate.
    fn ssl_connector(&self) -> Result<SslConnector, String> {
        if self.mode != Mode::Disable && self.mode != Mode::Allow && self.mode != Mode::Prefer {
            if let Some(p) = &self.rootcert_missing {
                return Err(format!(
                    "root certificate file \"{}\" does not exist: sslmode={} needs the CA that \
                     signed the server certificate (set sslrootcert or PGSSLROOTCERT, or use \
                     sslmode=require to skip server verification)",
                    p.display(),
                    self.mode.as_str()
                ));
            }
        }
        let ssl =
            |what: &str, e: openssl::error::ErrorStack| format!("{what}: {}", first_ssl_reason(&e));
        let mut b = SslConnector::builder(SslMethod::tls_client())
            .map_err(|e| ssl("cannot initialise OpenSSL", e))?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(|e| ssl("cannot initialise OpenSSL", e))?;
        // ALPN "postgresql", as libpq 17 sends it (needed for sslnegotiation=direct)
        postgres_openssl::set_postgresql_alpn(&mut b)
            .map_err(|e| ssl("cannot initialise OpenSSL", e))?;
        // Trust exactly the given roots: SslConnector::builder loaded the system store.
        let mut store = X509StoreBuilder::new().map_err(|e| ssl("cannot initialise OpenSSL", e))?;
        match &self.rootcert {
            Some(RootCert::File(path)) if self.verifies_chain() => {
                let pem = std::fs::read(path).map_err(|e| {
                    format!(
                        "cannot read root certificate file \"{}\": {e}",
                        path.display()
                    )
                })?;
                let certs = X509::stack_from_pem(&pem).map_err(|e| {
                    ssl(
                        &format!("cannot read root certificate file \"{}\"", path.display()),
                        e,
                    )
                })?;
                if certs.is_empty() {
                    return Err(format!(
                        "root certificate file \"{}\" holds no PEM certificate",
                        path.display()
                    ));
                }
                for c in certs {
                    store.add_cert(c).map_err(|e| {
                        ssl(
                            &format!("cannot load root certificate file \"{}\"", path.display()),
                            e,
                        )
                    })?;
                }
            }
            Some(RootCert::System) => store
                .set_default_paths()
                .map_err(|e| ssl("cannot load the system trust store", e))?,
            _ => {}
        }
        b.set_cert_store(store.build());
        let verify = self.verifies_chain();
        b.set_verify(if verify {
            SslVerifyMode::PEER
        } else {
            SslVerifyMode::NONE
        });

        if let Some((cert, key)) = &self.cert {
            if !cert.is_file() {
                return Err(format!(
                    "client certificate file \"{}\" does not exist (sslcert / PGSSLCERT)",
                    cert.display()
                ));
            }
            b.set_certificate_chain_file(cert).map_err(|e| {
                ssl(
                    &format!("cannot read client certificate file \"{}\"", cert.display()),
                    e,
                )
            })?;
            let pkey = load_private_key(key)?;
            b.set_private_key(&pkey).map_err(|e| {
                ssl(
                    &format!("cannot use private key file \"{}\"", key.display()),
                    e,
                )
            })?;
            b.check_private_key().map_err(|_| {
                format!(
                    "client certificate \"{}\" does not match private key file \"{}\"",
                    cert.display(),
                    key.display()
                )
            })?;
        }

        Ok(b.build())
    }

    /// With TLS 1.3 the server checks a client certificate after the handshake has completed
    /// on the client's side: its alert may be lost when the connection is reset while the
    /// startup message is in flight. This repeats the handshake on a fresh connection and only
    /// listens, so that the alert arrives. Returns the alert, or `None` if the server accepted
    /// the certificate (or could not be asked).
    pub fn client_cert_alert(&self, host: &str, port: u16) -> Option<String> {
        use std::io::{Read, Write};
        use std::net::{TcpStream, ToSocketAddrs};
        use std::time::Duration;

        self.cert.as_ref()?;
        let connector = self.ssl_connector().ok()?;
        let wait = Duration::from_secs(5);
        let mut stream = (host, port)
            .to_socket_addrs()
            .ok()?
            .find_map(|a| TcpStream::connect_timeout(&a, wait).ok())?;
        stream.set_read_timeout(Some(wait)).ok()?;
        stream.set_write_timeout(Some(wait)).ok()?;
        // SSLRequest: length 8, code 80877103
        stream
            .write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
            .ok()?;
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).ok()?;
        if answer[0] != b'S' {
            return None;
        }
        let mut cfg = connector.configure().ok()?;
        cfg.set_verify_hostname(false);
        cfg.set_verify(SslVerifyMode::NONE);
        match cfg.connect(host, stream) {
            Ok(mut tls) => match tls.read(&mut answer) {
                Ok(_) => None,
                Err(e) => alert_in(&format!("{e} {e:?}")),
            },
            Err(e) => alert_in(&format!("{e} {e:?}")),
        }
    }

    /// The `PGSSL*` variables that give a libpq child (`pg_dump`) the same TLS behaviour.
    pub fn libpq_env(&self) -> Vec<(String, String)> {
        let mut vars = vec![("PGSSLMODE".to_string(), self.mode.as_str().to_string())];
        match &self.rootcert {
            Some(RootCert::File(p)) => vars.push(("PGSSLROOTCERT".into(), abs(p))),
            Some(RootCert::System) => vars.push(("PGSSLROOTCERT".into(), "system".into())),
            None => {}
        }
        if let Some((cert, key)) = &self.cert {
            vars.push(("PGSSLCERT".into(), abs(cert)));
            vars.push(("PGSSLKEY".into(), abs(key)));
        }
        if !self.sni {
            vars.push(("PGSSLSNI".into(), "0".into()));
        }
        vars
    }
}

fn abs(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// A certificate verification failure seen during the handshake.
#[derive(Debug, Clone)]
pub struct VerifyFailure {
    pub code: i32,
    pub text: String,
    /// The subjectAltNames (or CN) of the certificate that failed.
    pub names: Vec<String>,
}

const X509_V_ERR_HOSTNAME_MISMATCH: i32 = 62;
const X509_V_ERR_IP_ADDRESS_MISMATCH: i32 = 64;

fn cert_names(cert: &openssl::x509::X509Ref) -> Vec<String> {
    let mut names: Vec<String> = cert
        .subject_alt_names()
        .map(|sans| {
            sans.iter()
                .filter_map(|n| {
                    if let Some(d) = n.dnsname() {
                        Some(format!("DNS:{d}"))
                    } else {
                        n.ipaddress().and_then(|b| match b.len() {
                            4 => Some(format!("IP:{}", IpAddr::from(<[u8; 4]>::try_from(b).ok()?))),
                            16 => Some(format!(
                                "IP:{}",
                                IpAddr::from(<[u8; 16]>::try_from(b).ok()?)
                            )),
                            _ => None,
                        })
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names = cert
            .subject_name()
            .entries_by_nid(openssl::nid::Nid::COMMONNAME)
            .filter_map(|e| e.data().to_string().ok().map(|s| format!("CN={s}")))
            .collect();
    }
    names
}

/// Reads a PEM private key the way libpq does, refusing a key file others can read; an
/// encrypted key is refused rather than prompting on the terminal.
fn load_private_key(key: &Path) -> Result<PKey<openssl::pkey::Private>, String> {
    let meta = std::fs::metadata(key).map_err(|_| {
        format!(
            "certificate present, but not private key file \"{}\" (sslkey / PGSSLKEY)",
            key.display()
        )
    })?;
    if !meta.is_file() {
        return Err(format!(
            "private key file \"{}\" is not a regular file",
            key.display()
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = meta.permissions().mode();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        let too_open =
            (meta.uid() == euid && mode & 0o077 != 0) || (meta.uid() == 0 && mode & 0o037 != 0);
        if too_open {
            return Err(format!(
                "private key file \"{}\" has group or world access; file must have permissions \
                 u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) \
                 or less if owned by root",
                key.display()
            ));
        }
    }
    let pem = std::fs::read(key)
        .map_err(|e| format!("cannot read private key file \"{}\": {e}", key.display()))?;
    if String::from_utf8_lossy(&pem).contains("ENCRYPTED") {
        return Err(format!(
            "private key file \"{}\" is encrypted; pgrepair does not prompt for a passphrase \
             (decrypt it with `openssl pkey -in KEY -out KEY.plain`, mode 0600)",
            key.display()
        ));
    }
    PKey::private_key_from_pem_callback(&pem, |_| Ok(0)).map_err(|e| {
        format!(
            "cannot read private key file \"{}\": {}",
            key.display(),
            first_ssl_reason(&e)
        )
    })
}

fn first_ssl_reason(e: &openssl::error::ErrorStack) -> String {
    e.errors()
        .first()
        .and_then(|x| x.reason().map(str::to_string))
        .unwrap_or_else(|| e.to_string())
}

/// The TLS alert named in an OpenSSL error text ("tlsv1 alert unknown ca").
fn alert_in(text: &str) -> Option<String> {
    text.split([':', '"', ','])
        .find(|p| p.contains(" alert "))
        .map(|p| p.trim().to_string())
}

/// The whole error chain as one string, for recognising causes.
fn chain(e: &postgres::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// The server answered the SSLRequest with "no".
pub fn server_has_no_ssl(e: &postgres::Error) -> bool {
    chain(e).contains("server does not support TLS")
}

/// One line naming the cause of a failed TLS connection, or `None` when it is not a TLS
/// problem (the caller then reports the driver's or the server's message).
pub fn failure_reason(
    e: &postgres::Error,
    tls: &Tls,
    host: &str,
    seen: Option<VerifyFailure>,
    probe: &dyn Fn() -> Option<String>,
) -> Option<String> {
    if let Some(v) = seen {
        if v.code == X509_V_ERR_HOSTNAME_MISMATCH || v.code == X509_V_ERR_IP_ADDRESS_MISMATCH {
            let names = if v.names.is_empty() {
                "no names".to_string()
            } else {
                v.names.join(", ")
            };
            return Some(format!(
                "host name mismatch: the server certificate is for {names}, not \"{host}\" \
                 (sslmode=verify-full)"
            ));
        }
        return Some(format!(
            "untrusted certificate: {} (sslmode={}, trusted roots: {})",
            v.text,
            tls.mode.as_str(),
            tls.roots_display()
        ));
    }
    if let Some(db) = e.as_db_error() {
        let msg = db.message();
        if msg.contains("requires a valid client certificate") {
            return Some(format!(
                "client certificate missing: the server requires one ({msg}); set sslcert and \
                 sslkey (PGSSLCERT, PGSSLKEY) or use ~/.postgresql/postgresql.crt and .key"
            ));
        }
        if msg.contains("certificate authentication failed")
            || msg.contains("certificate validation (clientcert=verify-full) failed")
        {
            return Some(format!("client certificate refused: {msg}"));
        }
        return None;
    }
    let text = chain(e);
    if server_has_no_ssl(e) {
        return Some(format!(
            "server does not support SSL, but sslmode={} requires it",
            tls.mode.as_str()
        ));
    }
    let lower = text.to_ascii_lowercase();
    let mut alert = None;
    if lower.contains("alert") && (lower.contains("certificate") || lower.contains("unknown ca")) {
        alert = alert_in(&text);
    } else if tls.cert.is_some()
        && (lower.contains("reset by peer")
            || lower.contains("unexpected eof")
            || lower.contains("broken pipe")
            || lower.contains("connection closed"))
    {
        // a TLS 1.3 refusal whose alert was lost: ask again, listening only
        alert = probe();
    }
    if let Some(alert) = alert {
        return Some(match &tls.cert {
            Some((cert, _)) => format!(
                "client certificate refused by the server (TLS {alert}; certificate \"{}\")",
                cert.display()
            ),
            None => format!("client certificate missing: the server requires one (TLS {alert})"),
        });
    }
    if lower.contains("tls") || lower.contains("ssl") {
        return Some(format!("TLS error (sslmode={}): {text}", tls.mode.as_str()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(mode: Option<&str>, root: Option<&str>) -> Given {
        Given {
            mode: mode.map(str::to_string),
            rootcert: root.map(str::to_string),
            ..Given::default()
        }
    }

    #[test]
    fn modes_and_defaults() {
        let home = tempfile::tempdir().unwrap();
        let t = Tls::resolve(&given(None, None), Some(home.path())).unwrap();
        assert_eq!(t.mode, Mode::Prefer);
        assert!(!t.verifies_chain());
        assert!(t.rootcert.is_none() && t.cert.is_none());
        let e = Tls::resolve(&given(Some("verify"), None), Some(home.path())).unwrap_err();
        assert!(e.contains("invalid sslmode value"), "{e}");

        // verify modes need a root: the default file is reported when missing
        let t = Tls::resolve(&given(Some("verify-ca"), None), Some(home.path())).unwrap();
        let want = home.path().join(".postgresql/root.crt");
        assert_eq!(t.rootcert_missing.as_deref(), Some(want.as_path()));
        let e = t.connector(Arc::default()).err().unwrap();
        assert!(e.contains("does not exist"), "{e}");

        // require without a root: no verification; with ~/.postgresql/root.crt: verify-ca
        let t = Tls::resolve(&given(Some("require"), None), Some(home.path())).unwrap();
        assert!(!t.verifies_chain() && t.rootcert_missing.is_none());
        std::fs::create_dir(home.path().join(".postgresql")).unwrap();
        std::fs::write(&want, "x").unwrap();
        let t = Tls::resolve(&given(Some("require"), None), Some(home.path())).unwrap();
        assert!(t.verifies_chain());
        assert_eq!(t.rootcert, Some(RootCert::File(want.clone())));
        // prefer never verifies, even with a root file
        let t = Tls::resolve(&given(None, None), Some(home.path())).unwrap();
        assert!(!t.verifies_chain());
    }

    #[test]
    fn system_roots_need_verify_full() {
        let t = Tls::resolve(&given(None, Some("system")), None).unwrap();
        assert_eq!(t.mode, Mode::VerifyFull);
        let e = Tls::resolve(&given(Some("require"), Some("system")), None).unwrap_err();
        assert!(e.contains("weak sslmode"), "{e}");
    }

    #[test]
    fn default_client_certificate_and_env_for_pg_dump() {
        let home = tempfile::tempdir().unwrap();
        let dot = home.path().join(".postgresql");
        std::fs::create_dir(&dot).unwrap();
        std::fs::write(dot.join("postgresql.crt"), "x").unwrap();
        std::fs::write(dot.join("root.crt"), "x").unwrap();
        let t = Tls::resolve(&given(Some("verify-full"), None), Some(home.path())).unwrap();
        assert_eq!(
            t.cert,
            Some((dot.join("postgresql.crt"), dot.join("postgresql.key")))
        );
        let env: std::collections::HashMap<_, _> = t.libpq_env().into_iter().collect();
        assert_eq!(env["PGSSLMODE"], "verify-full");
        assert_eq!(
            env["PGSSLROOTCERT"],
            dot.join("root.crt").display().to_string()
        );
        assert_eq!(
            env["PGSSLKEY"],
            dot.join("postgresql.key").display().to_string()
        );
    }

    #[cfg(unix)]
    #[test]
    fn readable_private_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_private_key(&key).err().unwrap();
        assert!(e.contains("group or world access"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load_private_key(&key).err().unwrap();
        assert!(e.contains("cannot read private key"), "{e}");
    }
}
