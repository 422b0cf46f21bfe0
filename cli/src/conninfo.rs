//! libpq connection-string syntax, parsed into `(keyword, value)` pairs: `key=value` conninfo
//! strings, `postgres://` / `postgresql://` URLs, and connection service files
//! (`~/.pg_service.conf`, `PGSERVICEFILE`).

use std::path::Path;

/// Keyword/value pairs in the order they were given (a later duplicate wins, like libpq).
pub type Params = Vec<(String, String)>;

/// Parses a connection string: a URL if it starts with `postgres://` or `postgresql://`,
/// `key=value` conninfo otherwise. Errors are libpq's wording where libpq has one.
pub fn parse(s: &str) -> Result<Params, String> {
    match s
        .strip_prefix("postgresql://")
        .or_else(|| s.strip_prefix("postgres://"))
    {
        Some(rest) => parse_url(rest),
        None => parse_kv(s),
    }
}

fn parse_kv(s: &str) -> Result<Params, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
    };
    loop {
        skip_ws(&mut chars);
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        skip_ws(&mut chars);
        if chars.next() != Some('=') {
            return Err(format!(
                "missing \"=\" after \"{key}\" in connection info string"
            ));
        }
        skip_ws(&mut chars);
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(
                            "unterminated quoted string in connection info string".to_string()
                        )
                    }
                    Some('\\') => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

/// `[user[:password]@][host[:port][,...]][/dbname][?param=value&...]`, percent-decoded.
fn parse_url(rest: &str) -> Result<Params, String> {
    let (main, query) = match rest.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let (authority, path) = match main.find('/') {
        Some(i) => (&main[..i], Some(&main[i + 1..])),
        None => (main, None),
    };
    let (userinfo, hostlist) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let mut out = Vec::new();
    if let Some(ui) = userinfo {
        let (user, password) = match ui.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (ui, None),
        };
        if !user.is_empty() {
            out.push(("user".to_string(), decode(user)?));
        }
        if let Some(p) = password {
            out.push(("password".to_string(), decode(p)?));
        }
    }
    if !hostlist.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for spec in hostlist.split(',') {
            let (host, port) = if let Some(r) = spec.strip_prefix('[') {
                let end = r.find(']').ok_or_else(|| {
                    format!("missing \"]\" in IPv6 host address in URI: \"{spec}\"")
                })?;
                let after = &r[end + 1..];
                let port = match after.strip_prefix(':') {
                    Some(p) => p,
                    None if after.is_empty() => "",
                    None => {
                        return Err(format!(
                            "unexpected character after IPv6 host address in URI: \"{spec}\""
                        ))
                    }
                };
                (&r[..end], port)
            } else {
                spec.rsplit_once(':').unwrap_or((spec, ""))
            };
            hosts.push(decode(host)?);
            ports.push(decode(port)?);
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            out.push(("host".to_string(), hosts.join(",")));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            out.push(("port".to_string(), ports.join(",")));
        }
    }
    if let Some(db) = path.filter(|d| !d.is_empty()) {
        out.push(("dbname".to_string(), decode(db)?));
    }
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            format!("missing key/value separator \"=\" in URI query parameter: \"{pair}\"")
        })?;
        let (k, v) = (decode(k)?, decode(v)?);
        // JDBC-style `ssl=true`, which libpq also accepts in URLs.
        if k == "ssl" && v == "true" {
            out.push(("sslmode".to_string(), "require".to_string()));
        } else {
            out.push((k, v));
        }
    }
    Ok(out)
}

fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoded token: \"{s}\""))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("percent-decoded value is not UTF-8: \"{s}\""))
}

/// The `[name]` section of a service file, or `None` when the file has no such section.
/// Lines are `key=value`; `#` starts a comment line. A nested `service=` is refused (libpq).
pub fn service_section(path: &Path, name: &str) -> Result<Option<Params>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read service file \"{}\": {e}", path.display()))?;
    let mut in_section = false;
    let mut found = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            let section = section.strip_suffix(']').ok_or_else(|| {
                format!(
                    "syntax error in service file \"{}\", line {}",
                    path.display(),
                    n + 1
                )
            })?;
            if in_section {
                break;
            }
            in_section = section == name;
            if in_section {
                found = Some(Vec::new());
            }
            continue;
        }
        if !in_section {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| {
            format!(
                "syntax error in service file \"{}\", line {}",
                path.display(),
                n + 1
            )
        })?;
        let key = key.trim();
        if key == "service" {
            return Err(format!(
                "nested service specifications not supported in service file \"{}\", line {}",
                path.display(),
                n + 1
            ));
        }
        if let Some(params) = found.as_mut() {
            params.push((key.to_string(), value.trim().to_string()));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[(&str, &str)]) -> Params {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn key_value_with_quotes_and_escapes() {
        assert_eq!(
            parse("host=h  port = 5433 password='a b\\'c' sslrootcert=/x\\ y").unwrap(),
            p(&[
                ("host", "h"),
                ("port", "5433"),
                ("password", "a b'c"),
                ("sslrootcert", "/x y")
            ])
        );
        assert!(parse("host").unwrap_err().contains("missing \"=\""));
        assert!(parse("password='x").unwrap_err().contains("unterminated"));
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse("postgresql://al%40ice:p%3Aw@db1:5433,[::1]:5434,db3/app?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.crt")
                .unwrap(),
            p(&[
                ("user", "al@ice"),
                ("password", "p:w"),
                ("host", "db1,::1,db3"),
                ("port", "5433,5434,"),
                ("dbname", "app"),
                ("sslmode", "verify-full"),
                ("sslrootcert", "/tmp/ca.crt"),
            ])
        );
        assert_eq!(
            parse("postgres:///app?host=%2Fvar%2Frun%2Fpostgresql&ssl=true").unwrap(),
            p(&[
                ("dbname", "app"),
                ("host", "/var/run/postgresql"),
                ("sslmode", "require")
            ])
        );
        assert_eq!(parse("postgres://").unwrap(), p(&[]));
        assert!(parse("postgres://h/db?sslmode").is_err());
        assert!(parse("postgres://h/%zz").is_err());
    }

    #[test]
    fn service_sections() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("svc");
        std::fs::write(
            &f,
            "# comment\n[other]\nhost=o\n\n[app]\nhost = db1\nsslmode=verify-full\n[next]\nhost=n\n",
        )
        .unwrap();
        assert_eq!(
            service_section(&f, "app").unwrap(),
            Some(p(&[("host", "db1"), ("sslmode", "verify-full")]))
        );
        assert_eq!(service_section(&f, "missing").unwrap(), None);
        std::fs::write(&f, "[app]\nservice=x\n").unwrap();
        assert!(service_section(&f, "app").unwrap_err().contains("nested"));
        std::fs::write(&f, "[app]\nnonsense\n").unwrap();
        assert!(service_section(&f, "app")
            .unwrap_err()
            .contains("syntax error"));
    }
}
