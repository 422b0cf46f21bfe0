//! Parsers for individual header values. Each returns the message for a `ParseError`; the caller
//! knows the line. Messages say what was wrong and what to write instead.

use super::Waiver;
use crate::rules::{Class, Rule};
use crate::suggest::close_matches;

/// Echoed input is shortened so a pathological line cannot produce a megabyte-long message.
pub(super) fn shown(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

pub(super) fn id(key: &str, value: &str) -> Result<String, String> {
    if is_valid_id(value) {
        return Ok(value.to_string());
    }
    let rule =
        "an id is 1 to 63 characters: a lowercase letter, then lowercase letters, digits or `_`";
    if value.is_empty() {
        return Err(format!(
            "empty {key} id: write `-- {key}: <id>`; {rule} (e.g. `fix_orders_index`)"
        ));
    }
    let fixed: String = value
        .trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' | '.' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    let hint = if is_valid_id(&fixed) {
        format!("write `{fixed}`")
    } else {
        "e.g. `fix_orders_index`".to_string()
    };
    Err(format!(
        "invalid {key} id `{}`: {rule}; {hint}",
        shown(value)
    ))
}

fn is_valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

pub(super) fn title(value: &str) -> Result<String, String> {
    const MAX: usize = 200;
    if value.is_empty() {
        return Err("empty title: write a one-line summary after `title:`".to_string());
    }
    let n = value.chars().count();
    if n > MAX {
        return Err(format!(
            "title is {n} characters long: keep it to {MAX} or fewer and move the detail to \
             `-- description:` lines"
        ));
    }
    Ok(value.to_string())
}

pub(super) fn description_line(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err(
            "empty description: write text after `description:` or remove the line".to_string(),
        );
    }
    Ok(value.to_string())
}

/// Comma-separated items, trimmed; an empty item (`a,,b`, a trailing comma, an empty value) is
/// an error rather than silently dropped, since it usually means something was deleted by
/// mistake.
fn items<'a>(key: &str, value: &'a str, example: &str) -> Result<Vec<&'a str>, String> {
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err(empty_item(key, value, example));
    }
    Ok(items)
}

fn empty_item(key: &str, value: &str, example: &str) -> String {
    if value.is_empty() {
        format!("empty {key}: write a comma-separated list, e.g. `-- {key}: {example}`, or remove the line")
    } else {
        format!(
            "empty item in {key} `{}`: write a comma-separated list without empty items, e.g. \
             `-- {key}: {example}`",
            shown(value)
        )
    }
}

fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    v.sort_unstable();
    v.dedup();
    v
}

pub(super) fn environments(value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in items("environments", value, "staging, prod")? {
        match item {
            "staging" | "prod" => out.push(item.to_string()),
            "replica" => {
                return Err(
                    "replica is never a valid environment: playbooks never run on a \
                            replica; write `staging` and/or `prod`"
                        .to_string(),
                )
            }
            other => {
                let hint = match other.to_ascii_lowercase().as_str() {
                    "staging" | "prod" | "replica" => " (environment names are lowercase)",
                    "production" => " (write `prod`)",
                    _ => "",
                };
                return Err(format!(
                    "unknown environment `{}`{hint}: write `staging` and/or `prod`, \
                     comma-separated",
                    shown(other)
                ));
            }
        }
    }
    Ok(sorted_unique(out))
}

/// Schema-qualified relation names, kept as written: the extension resolves them with the
/// server's own rules, so quoting and case stay exactly what the author typed.
pub(super) fn relations(key: &str, value: &str) -> Result<Vec<String>, String> {
    let example = "public.orders, public.customers";
    let mut out = Vec::new();
    for item in split_outside_quotes(value).into_iter().map(str::trim) {
        if item.is_empty() {
            return Err(empty_item(key, value, example));
        }
        if let Err(problem) = qualified_name(item) {
            return Err(format!("`{}` in {key}: {problem}", shown(item)));
        }
        out.push(item.to_string());
    }
    Ok(sorted_unique(out))
}

/// Splits on commas that are not inside a double-quoted identifier (`"a,b".t` is one name).
fn split_outside_quotes(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in value.char_indices() {
        match c {
            // `""` inside quotes toggles twice, which is exactly the escape's meaning.
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

fn qualified_name(item: &str) -> Result<(), String> {
    let write = "write schema.relation, each part an identifier (letters, digits, `_`, `$`) or a \
                 double-quoted name";
    let mut rest = item;
    let mut parts = 0;
    loop {
        let len = identifier(rest).map_err(|why| format!("{why}; {write}"))?;
        parts += 1;
        rest = &rest[len..];
        if rest.is_empty() {
            break;
        }
        match rest.strip_prefix('.') {
            Some(after) => rest = after,
            None => {
                return Err(format!(
                    "unexpected `{}` after a name part; {write}",
                    shown(rest)
                ))
            }
        }
    }
    match parts {
        2 => Ok(()),
        1 => Err(format!(
            "not schema-qualified: write `public.{}` (or the relation's own schema)",
            shown(item)
        )),
        n => Err(format!(
            "has {n} dot-separated parts: write exactly schema.relation (no database name)"
        )),
    }
}

/// Byte length of the identifier at the start of `s`.
fn identifier(s: &str) -> Result<usize, String> {
    // PostgreSQL truncates longer names (with only a NOTICE), so `requires` would silently
    // check a different relation than the one written.
    const MAX_BYTES: usize = 63;
    let (len, name_bytes) = if let Some(inner) = s.strip_prefix('"') {
        let bytes = inner.as_bytes();
        let mut i = 0;
        let mut name_bytes = 0;
        loop {
            match bytes.get(i) {
                None => return Err("unterminated double-quoted name".to_string()),
                Some(b'"') if bytes.get(i + 1) == Some(&b'"') => {
                    i += 2;
                    name_bytes += 1;
                }
                Some(b'"') => break,
                Some(_) => {
                    i += 1;
                    name_bytes += 1;
                }
            }
        }
        if i == 0 {
            return Err("empty double-quoted name `\"\"`".to_string());
        }
        (i + 2, name_bytes)
    } else {
        let b = s.as_bytes();
        match b.first() {
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
            Some(_) => {
                return Err(format!(
                    "a name part cannot start with `{}`",
                    s.chars().next().unwrap_or(' ')
                ))
            }
            None => return Err("missing name part".to_string()),
        }
        let len = b
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'$')
            .count();
        (len, len)
    };
    if name_bytes > MAX_BYTES {
        return Err(format!(
            "a name part is {name_bytes} bytes long, more than PostgreSQL's {MAX_BYTES}"
        ));
    }
    Ok(len)
}

pub(super) fn timeout_ms(key: &str, value: &str) -> Result<i32, String> {
    let write = "write a positive whole number and a unit ms, s or min, e.g. `500ms`, `2s` or \
                 `5min`";
    let fail = |why: String| Err(format!("invalid {key} `{}`: {why}; {write}", shown(value)));
    if value.is_empty() {
        return Err(format!("empty {key}: {write}, or remove the line"));
    }
    if value.starts_with('-') {
        return fail("it must be positive".to_string());
    }
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return fail("it must start with a number".to_string());
    }
    let (number, rest) = value.split_at(digits);
    if rest.starts_with(['.', ',']) {
        return fail("fractions are not allowed (use a smaller unit, e.g. `1500ms`)".to_string());
    }
    let unit = rest.trim_start_matches([' ', '\t']);
    let scale: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "" => {
            return fail(format!(
                "add a unit: `{number}ms`, `{number}s` or `{number}min`"
            ))
        }
        "m" => return fail("`m` is ambiguous: write `min` or `ms`".to_string()),
        other => return fail(format!("unknown unit `{}`", shown(other))),
    };
    // Saturating keeps absurdly long digit strings from overflowing; they are "too large" anyway.
    let n = number.bytes().fold(0u64, |acc, d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    if n == 0 {
        return fail("it must be greater than zero".to_string());
    }
    match i32::try_from(n.saturating_mul(scale)) {
        Ok(ms) => Ok(ms),
        Err(_) => fail(format!(
            "it is longer than {} ms (about 24.8 days), the most PostgreSQL accepts",
            i32::MAX
        )),
    }
}

pub(super) fn mode(value: &str) -> Result<super::Mode, String> {
    match value {
        "transactional" => Ok(super::Mode::Transactional),
        "online" => Ok(super::Mode::Online),
        other => Err(format!(
            "unknown mode `{}`: write `transactional` (the default) or `online`",
            shown(other)
        )),
    }
}

/// A pause: like a timeout, but zero is allowed (`0ms`, or a bare `0`).
pub(super) fn pause_ms(key: &str, value: &str) -> Result<i32, String> {
    let zero = value.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == ' ' || c == '\t');
    if !zero.is_empty() && zero.bytes().all(|b| b == b'0') {
        let unit = value[zero.len()..].trim_start_matches([' ', '\t']);
        if matches!(unit, "" | "ms" | "s" | "min") {
            return Ok(0);
        }
    }
    timeout_ms(key, value)
}

pub(super) fn waiver(value: &str) -> Result<Waiver, String> {
    let template = "write `-- waive: RULE until YYYY-MM-DD because TEXT`";
    let (rule, rest) = token(value);
    if rule.is_empty() {
        return Err(format!("empty waiver: {template}"));
    }
    let rule = check_rule(rule)?;
    let (keyword, rest) = token(rest);
    if keyword != "until" {
        return Err(format!(
            "expected `until` after the rule, found `{}`: {template}",
            shown(keyword)
        ));
    }
    let (until, rest) = token(rest);
    date(until)?;
    let (keyword, rest) = token(rest);
    if keyword != "because" {
        return Err(format!(
            "expected `because` after the date, found `{}`: {template}",
            shown(keyword)
        ));
    }
    let because = rest.trim();
    if because.is_empty() {
        return Err(format!(
            "the waiver gives no reason: write why after `because` ({template})"
        ));
    }
    Ok(Waiver {
        rule,
        until: until.to_string(),
        because: because.to_string(),
    })
}

/// The next whitespace-separated word and what follows it.
fn token(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    s.split_at(s.find(char::is_whitespace).unwrap_or(s.len()))
}

fn check_rule(rule: &str) -> Result<Rule, String> {
    match Rule::from_id(rule) {
        Some(known) if known.waivable() => return Ok(known),
        Some(known) if known.class() == Class::Unwaivable => {
            return Err(format!(
                "`{rule}` cannot be waived: remove the hidden character, or write it as an escape \
                 inside a string literal (E'\\u202e', chr(8238))"
            ))
        }
        // A runtime-only rule is no lint rule: unknown to a waiver.
        _ => {}
    }
    let ids: Vec<&str> = Rule::ALL
        .iter()
        .filter(|r| r.waivable())
        .map(|r| r.id())
        .collect();
    let close = close_matches(rule, &ids);
    let advice = if close.is_empty() {
        "see repair.lint rules for the rules a waiver can name".to_string()
    } else {
        format!("did you mean {}?", crate::suggest::or_list(&close))
    };
    Err(format!(
        "unknown lint rule `{}` in waiver: {advice}",
        shown(rule)
    ))
}

/// `YYYY-MM-DD`, a real date in the proleptic Gregorian calendar, year 1 to 9999 (PostgreSQL
/// rejects year 0).
pub(super) fn date(s: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "`{}` {why}: write the date as YYYY-MM-DD, e.g. `2030-01-31`",
            shown(s)
        ))
    };
    let b = s.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return bad("is not a date");
    }
    let num = |r: std::ops::Range<usize>| {
        b[r].iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    if year == 0 {
        return bad("is not a calendar date (there is no year 0)");
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return bad("is not a calendar date (month must be 01 to 12)"),
    };
    if day == 0 || day > days {
        if month == 2 && day == 29 {
            return bad(&format!(
                "is not a calendar date ({year} is not a leap year)"
            ));
        }
        return bad(&format!(
            "is not a calendar date (that month has {days} days)"
        ));
    }
    Ok(())
}

pub(super) fn severity(value: &str) -> Result<super::CheckSeverity, String> {
    match value {
        "critical" => Ok(super::CheckSeverity::Critical),
        "important" => Ok(super::CheckSeverity::Important),
        other => Err(format!(
            "invalid severity `{}`: write `critical` or `important`",
            shown(other)
        )),
    }
}

pub(super) fn tags(value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for tag in items("tags", value, "schema, orders")? {
        let b = tag.as_bytes();
        let ok = (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-');
        if !ok {
            return Err(format!(
                "invalid tag `{}`: a tag is lowercase letters, digits, `_` and `-`, starting \
                 with a letter or digit (e.g. `pre-deploy`)",
                shown(tag)
            ));
        }
        out.push(tag.to_string());
    }
    Ok(sorted_unique(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(id("repair", "a").is_ok());
        assert!(id("repair", &format!("a{}", "b".repeat(62))).is_ok());
        assert!(id("repair", &format!("a{}", "b".repeat(63))).is_err());
        assert!(id("repair", "1abc").is_err());
        assert!(id("repair", "_abc").is_err());
        let e = id("repair", "Fix-Orders").unwrap_err();
        assert!(e.contains("write `fix_orders`"), "{e}");
    }

    #[test]
    fn relation_names() {
        let ok = |v: &str| relations("requires-before", v);
        assert_eq!(
            ok("public.b, public.a,public.b").unwrap(),
            vec!["public.a", "public.b"]
        );
        assert_eq!(
            ok(r#""My Schema"."a,b", s$._x$1, "q""uote"."t""#).unwrap(),
            vec![r#""My Schema"."a,b""#, r#""q""uote"."t""#, "s$._x$1"]
        );
        for bad in [
            "orders",
            "a.b.c",
            "a..b",
            ".a",
            "a.",
            "1a.b",
            "a.b c",
            "a . b",
            r#""".b"#,
            r#""unterminated.b"#,
            "a.b,",
            "é.b",
        ] {
            assert!(ok(bad).is_err(), "{bad}");
        }
        assert!(identifier(&"a".repeat(63)).is_ok());
        assert!(identifier(&"a".repeat(64)).is_err());
        assert!(identifier(&format!("\"{}\"", "\"\"".repeat(63))).is_ok());
    }

    #[test]
    fn timeouts() {
        let t = |v: &str| timeout_ms("lock-timeout", v);
        assert_eq!(t("250ms"), Ok(250));
        assert_eq!(t("2s"), Ok(2_000));
        assert_eq!(t("2 s"), Ok(2_000));
        assert_eq!(t("5min"), Ok(300_000));
        assert_eq!(t("007s"), Ok(7_000));
        assert_eq!(t("2147483647ms"), Ok(i32::MAX));
        assert_eq!(t("2147483s"), Ok(2_147_483_000));
        assert_eq!(t("35791min"), Ok(2_147_460_000));
        for bad in [
            "",
            "0s",
            "-1s",
            "1.5s",
            "1,5s",
            "5",
            "5m",
            "5h",
            "5 sec",
            "s",
            "+5s",
            "5MS",
            "2147483648ms",
            "2147484s",
            "35792min",
            "99999999999999999999999999999min",
        ] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates() {
        for good in [
            "2024-02-29",
            "2000-02-29",
            "2025-12-31",
            "0001-01-01",
            "9999-12-31",
        ] {
            assert!(date(good).is_ok(), "{good}");
        }
        for bad in [
            "2023-02-29",
            "1900-02-29",
            "2025-04-31",
            "2025-13-01",
            "2025-00-10",
            "2025-01-00",
            "0000-01-01",
            "2025-1-01",
            "25-01-01",
            "2025/01/01",
            "2025-01-01x",
            "２０２５-01-01",
        ] {
            assert!(date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shown_truncates_on_char_boundaries() {
        assert_eq!(shown("abc"), "abc");
        let long = "é".repeat(100);
        assert_eq!(shown(&long).chars().count(), 61);
    }
}
