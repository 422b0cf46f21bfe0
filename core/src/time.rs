//! UTC timestamps as the audit trail writes them, from PostgreSQL's clock value (microseconds
//! since 2000-01-01 00:00:00 UTC, `TimestampTz`), without asking the server to format them.

/// Seconds from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_UNIX_SECS: i64 = 946_684_800;

/// A `TimestampTz` split into calendar fields, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
}

impl Utc {
    pub fn from_pg(ts: i64) -> Utc {
        let unix_us = ts + PG_EPOCH_UNIX_SECS * 1_000_000;
        let secs = unix_us.div_euclid(1_000_000);
        let micros = unix_us.rem_euclid(1_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Utc {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            micros,
        }
    }

    /// `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`: what the API returns (and `::timestamptz` reads back exactly).
    pub fn text(&self) -> String {
        format!(
            "{}T{:02}:{:02}:{:02}.{:06}Z",
            self.date(),
            self.hour,
            self.minute,
            self.second,
            self.micros
        )
    }

    /// What `to_jsonb(timestamptz)` gives with TimeZone = UTC: ISO 8601 with trailing zeros of
    /// the fraction dropped (no fraction when it is zero) and a `+00:00` offset.
    pub fn jsonb_text(&self) -> String {
        let mut out = format!(
            "{}T{:02}:{:02}:{:02}",
            self.date(),
            self.hour,
            self.minute,
            self.second
        );
        if self.micros != 0 {
            let frac = format!("{:06}", self.micros);
            out.push('.');
            out.push_str(frac.trim_end_matches('0'));
        }
        out.push_str("+00:00");
        out
    }
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian; Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A random (version 4) UUID in its text form, from 16 bytes of the server's strong random
/// source.
pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid_text(&bytes)
}

/// A UUID's 16 bytes in its canonical text form (lowercase, 8-4-4-4-12).
pub fn uuid_text(bytes: &[u8; 16]) -> String {
    let hex = crate::canonical::hex(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_epoch_is_2000_01_01() {
        let t = Utc::from_pg(0);
        assert_eq!(t.text(), "2000-01-01T00:00:00.000000Z");
        assert_eq!(t.jsonb_text(), "2000-01-01T00:00:00+00:00");
    }

    #[test]
    fn known_instants() {
        // 2026-12-02 02:27:05.123450 UTC = 1796178425.12345 unix seconds
        let unix_us: i64 = 1_796_178_425_123_450;
        let t = Utc::from_pg(unix_us - PG_EPOCH_UNIX_SECS * 1_000_000);
        assert_eq!(t.text(), "2026-12-02T02:27:05.123450Z");
        assert_eq!(t.jsonb_text(), "2026-12-02T02:27:05.12345+00:00");
        assert_eq!(t.date(), "2026-12-02");
        // leap day, and before the PostgreSQL epoch
        let t = Utc::from_pg(-(PG_EPOCH_UNIX_SECS - 951_782_400) * 1_000_000 - 1);
        assert_eq!(t.text(), "2000-02-28T23:59:59.999999Z");
        let t = Utc::from_pg((951_868_800 - PG_EPOCH_UNIX_SECS) * 1_000_000 + 500_000);
        assert_eq!(t.jsonb_text(), "2000-03-01T00:00:00.5+00:00");
        let t = Utc::from_pg((1_709_164_800 - PG_EPOCH_UNIX_SECS) * 1_000_000);
        assert_eq!(t.date(), "2024-02-29");
        let t = Utc::from_pg(-PG_EPOCH_UNIX_SECS * 1_000_000 - 1);
        assert_eq!(t.text(), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        let mut prev: Option<(i64, u32, u32)> = None;
        for d in -146_097 * 2..146_097 * 2 {
            let ymd = civil_from_days(d);
            if let Some(p) = prev {
                assert!(ymd > p, "{d}: {ymd:?} after {p:?}");
                assert!(ymd.2 == p.2 + 1 || ymd.2 == 1, "{d}: {ymd:?} after {p:?}");
            }
            prev = Some(ymd);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
    }

    #[test]
    fn uuid_v4_sets_version_and_variant() {
        let u = uuid_v4([0xff; 16]);
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let u = uuid_v4([0; 16]);
        assert_eq!(u, "00000000-0000-4000-8000-000000000000");
    }
}
