//! Durations and points in time given on the command line: `approve --valid-for 1h30m`,
//! `refusals --since 2h` or `--since 2026-05-01 14:00`. Parsed here, before anything connects,
//! so that garbage is a usage error (exit 2); what the server makes of a well-formed value (an
//! approval longer than 24 hours) is the server's decision.
//!
//! No dependency on the rest of the CLI: cli.rs uses these as clap value parsers, and cli.rs is
//! compiled into `pgrepair-gen-assets` too.

/// A whole number of seconds, from `90s`, `30m`, `2h`, `1d` or a sequence of them (`1h30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub seconds: u64,
}

/// The longest span accepted (100 years): far beyond anything meaningful, and well inside
/// what a PostgreSQL interval holds.
const MAX_SECONDS: u64 = 36_500 * 86_400;

const DURATION_FORM: &str = "write a number and a unit s, m, h or d, e.g. `90s`, `30m`, `2h`, \
                             `1d`, or several in that order, e.g. `1h30m`";

impl Span {
    /// The interval literal the server is given, e.g. `5400 seconds`.
    pub fn interval(&self) -> String {
        format!("{} seconds", self.seconds)
    }
}

impl std::fmt::Display for Span {
    /// The shortest `1d2h3m4s` form (`0s` for zero).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.seconds == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.seconds;
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

/// Parses `90s`, `30m`, `2h`, `1d`, `1h30m`, `1d12h`: one or more `<number><unit>` parts, units
/// s, m, h, d, each at most once and from the largest down. No sign, no fraction, no spaces.
pub fn parse_span(text: &str) -> Result<Span, String> {
    if text.is_empty() {
        return Err(format!("empty duration: {DURATION_FORM}"));
    }
    let mut total: u64 = 0;
    let mut rest = text;
    // the rank of the last unit seen: each following unit must be smaller
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "`{}` is not a duration: {DURATION_FORM}",
                shown(text)
            ));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(unit_len);
        let (rank, size) = match unit {
            "d" => (0, 86_400),
            "h" => (1, 3_600),
            "m" => (2, 60),
            "s" => (3, 1),
            "" => {
                return Err(format!(
                    "`{}` needs a unit after {number}: {DURATION_FORM}",
                    shown(text)
                ))
            }
            other => {
                return Err(format!(
                    "`{}`: unknown unit `{}`: {DURATION_FORM}",
                    shown(text),
                    shown(other)
                ))
            }
        };
        if last_rank != usize::MAX && rank <= last_rank {
            return Err(format!(
                "`{}`: units go from the largest down, each once (e.g. `1d2h30m`)",
                shown(text)
            ));
        }
        last_rank = rank;
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{}` is too long", shown(text)))?;
        total = n
            .checked_mul(size)
            .and_then(|s| total.checked_add(s))
            .filter(|t| *t <= MAX_SECONDS)
            .ok_or_else(|| format!("`{}` is too long (at most 36500d)", shown(text)))?;
        rest = after;
    }
    Ok(Span { seconds: total })
}

/// `--since`: that long ago, or from a point in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// A span back from the server's `now()`.
    Ago(Span),
    /// A timestamp, given to the server as `timestamptz` text exactly as written (without a zone
    /// it is read in the session's time zone).
    At(String),
}

/// Parses `10m`, `2h`, `1d` (a duration: that long ago) or a timestamp: RFC 3339
/// (`2026-05-01T14:00:00Z`, `2026-05-01T14:00:00.5+02:00`) or `YYYY-MM-DD[ HH:MM[:SS]]`
/// (a `T` may stand for the space, and a zone may follow).
pub fn parse_since(text: &str) -> Result<Since, String> {
    let trimmed = text.trim();
    if trimmed.bytes().next().is_some_and(|b| b.is_ascii_digit()) && !trimmed.contains('-') {
        return parse_span(trimmed).map(Since::Ago);
    }
    if timestamp_ok(trimmed) {
        return Ok(Since::At(trimmed.to_string()));
    }
    Err(format!(
        "`{}` is neither a duration (`10m`, `2h`, `1d`: that long ago) nor a timestamp \
         (`2026-05-01`, `2026-05-01 14:00`, `2026-05-01T14:00:00Z`)",
        shown(text)
    ))
}

/// `YYYY-MM-DD`, then optionally `( |T)HH:MM[:SS[.fraction]]` and a zone (`Z`, `+HH`,
/// `+HH:MM`, `-HHMM`), all fields in range.
fn timestamp_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    // date
    let (Some(year), Some(month), Some(day)) = (num(0, 4), num(5, 2), num(8, 2)) else {
        return false;
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return false;
    }
    if year == 0 || !(1..=12).contains(&month) || day == 0 || day > days_in(year, month) {
        return false;
    }
    if b.len() == 10 {
        return true;
    }
    // time
    if !matches!(b.get(10), Some(b' ' | b'T' | b't')) {
        return false;
    }
    let (Some(hour), Some(minute)) = (num(11, 2), num(14, 2)) else {
        return false;
    };
    if b.get(13) != Some(&b':') || hour > 23 || minute > 59 {
        return false;
    }
    let mut i = 16;
    if b.get(i) == Some(&b':') {
        match num(17, 2) {
            Some(sec) if sec <= 60 => i = 19,
            _ => return false,
        }
        if b.get(i) == Some(&b'.') {
            let frac = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if frac == 0 {
                return false;
            }
            i += 1 + frac;
        }
    }
    // zone
    match &b[i..] {
        [] | [b'Z' | b'z'] => true,
        [b'+' | b'-', zone @ ..] => {
            let zone = std::str::from_utf8(zone).unwrap_or("");
            let (h, m) = match zone.len() {
                2 => (zone, "00"),
                4 => zone.split_at(2),
                5 if zone.as_bytes()[2] == b':' => (&zone[..2], &zone[3..]),
                _ => return false,
            };
            let ok = |p: &str| p.bytes().all(|c| c.is_ascii_digit());
            ok(h)
                && ok(m)
                && h.parse::<u32>().is_ok_and(|h| h <= 15)
                && m.parse::<u32>().is_ok_and(|m| m <= 59)
        }
        _ => false,
    }
}

fn days_in(year: u32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A value echoed in a message, kept short; escaping for the terminal happens where the
/// message is printed.
fn shown(s: &str) -> String {
    if s.chars().count() > 40 {
        let mut out: String = s.chars().take(39).collect();
        out.push('…');
        out
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> u64 {
        parse_span(s).unwrap_or_else(|e| panic!("{s}: {e}")).seconds
    }

    #[test]
    fn durations() {
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("30m"), 1_800);
        assert_eq!(secs("2h"), 7_200);
        assert_eq!(secs("1d"), 86_400);
        assert_eq!(secs("1h30m"), 5_400);
        assert_eq!(secs("1d2h3m4s"), 93_784);
        assert_eq!(secs("25h"), 90_000);
        assert_eq!(secs("0s"), 0);
        assert_eq!(secs("007m"), 420);
        assert_eq!(parse_span("1h30m").unwrap().interval(), "5400 seconds");
    }

    #[test]
    fn duration_garbage_is_refused() {
        for bad in [
            "",
            "nonsense",
            "h",
            "10",
            "1.5h",
            "-1h",
            "+1h",
            "1 h",
            " 1h",
            "1h ",
            "1hour",
            "1ms",
            "1w",
            "30m1h",
            "1h1h",
            "1h30",
            "2H",
            "1h-",
            "1d\u{1b}",
            "99999999999999999999s",
            "36501d",
        ] {
            assert!(parse_span(bad).is_err(), "{bad:?} was accepted");
        }
        let e = parse_span("nonsense").unwrap_err();
        assert!(e.contains("`30m`") && e.contains("nonsense"), "{e}");
        assert!(parse_span("10").unwrap_err().contains("needs a unit"));
        assert!(parse_span("30m1h").unwrap_err().contains("largest down"));
        assert!(parse_span("36500d").is_ok());
    }

    #[test]
    fn spans_display_shortest() {
        for (s, shown) in [
            ("90s", "1m30s"),
            ("1d", "1d"),
            ("0s", "0s"),
            ("1h30m", "1h30m"),
        ] {
            assert_eq!(parse_span(s).unwrap().to_string(), shown);
        }
    }

    #[test]
    fn since_durations_and_timestamps() {
        assert_eq!(parse_since("10m"), Ok(Since::Ago(Span { seconds: 600 })));
        assert_eq!(parse_since("1d"), Ok(Since::Ago(Span { seconds: 86_400 })));
        for ts in [
            "2026-05-01",
            "2026-05-01 14:00",
            "2026-05-01 14:00:59",
            "2026-05-01T14:00:00Z",
            "2026-05-01t14:00:00z",
            "2026-05-01T14:00:00.123456+02:00",
            "2026-05-01 14:00:00-0530",
            "2026-05-01 14:00+01",
            "2024-02-29",
            "2026-12-31T23:59:60Z",
        ] {
            assert_eq!(parse_since(ts), Ok(Since::At(ts.to_string())), "{ts}");
        }
        assert_eq!(
            parse_since(" 2026-05-01 "),
            Ok(Since::At("2026-05-01".to_string()))
        );
    }

    #[test]
    fn since_garbage_is_refused() {
        for bad in [
            "",
            "yesterday",
            "now",
            "10",
            "2026-5-1",
            "2026-13-01",
            "2026-02-30",
            "2025-02-29",
            "0000-01-01",
            "2026-05-01 24:00",
            "2026-05-01 14:60",
            "2026-05-01 14",
            "2026-05-01 14:00:",
            "2026-05-01T14:00:00.",
            "2026-05-01T14:00:00+2",
            "2026-05-01T14:00:00+02:0",
            "2026-05-01T14:00:00 UTC",
            "2026-05-01x",
            "2026-05-01; DROP TABLE x",
            "1h ago",
            "2026-05-01T14:00:00+99:00",
            "２０２６-05-01",
        ] {
            assert!(parse_since(bad).is_err(), "{bad:?} was accepted");
        }
        let e = parse_since("yesterday").unwrap_err();
        assert!(
            e.contains("neither a duration") && e.contains("`2h`"),
            "{e}"
        );
    }
}
