//! Canonical JSON (RFC 8785 style) and SHA-256 hex.
//!
//! Written by hand rather than with `serde_json::to_string` because key order must not depend on
//! cargo feature unification: if any crate in a build enables serde_json's `preserve_order`, its
//! `Map` keeps insertion order and the extension and the CLI could disagree on a hash.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// RFC 8785-style canonical JSON: object keys sorted (byte order; keys are ASCII), no
/// insignificant whitespace, strings escaped like serde_json does (control chars as `\u00xx`
/// lowercase, non-ASCII literal).
///
/// Integers are written exactly (a JCS implementation would round those beyond 2^53 through a
/// double); other numbers use the ECMAScript shortest form JCS prescribes (`5.0` → `5`,
/// `1e21` → `1e+21`).
pub fn to_canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, value);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        write_ecmascript_double(out, f);
    } else {
        // Only reachable with serde_json's arbitrary_precision and a value no f64 can hold;
        // its own text is the most faithful thing left to write.
        out.push_str(&n.to_string());
    }
}

/// ECMAScript `Number.prototype.toString` (ECMA-262 §6.1.6.1.20), which RFC 8785 adopts.
fn write_ecmascript_double(out: &mut String, f: f64) {
    if !f.is_finite() {
        // JSON cannot carry these; serde_json never builds them, so this is only defensive.
        out.push_str("null");
        return;
    }
    if f == 0.0 {
        out.push('0'); // also -0
        return;
    }
    if f < 0.0 {
        out.push('-');
    }
    // Rust's `{:e}` is the shortest round-tripping representation: `d[.ddd]e[-]x`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let k = digits.len() as i32;
    let n = exp + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exponent = n - 1;
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        let _ = write!(out, "{}", exponent.abs());
    }
}

/// Same escaping as serde_json, so canonical text matches what serde_json users expect.
/// Runs of bytes that need no escape are copied whole (the audit verifier writes every stored
/// row through here).
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices end on char boundaries.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_sorted_recursively_without_whitespace() {
        let v = json!({"b": 1, "a": {"z": [true, null], "y": "x"}, "A": false});
        assert_eq!(
            to_canonical_json(&v),
            r#"{"A":false,"a":{"y":"x","z":[true,null]},"b":1}"#
        );
    }

    #[test]
    fn string_escaping_matches_serde_json() {
        let mut s: String = (0u32..0x80).filter_map(char::from_u32).collect();
        s.push_str("é漢字😀\u{2028}\u{7f}");
        let v = Value::String(s.clone());
        assert_eq!(to_canonical_json(&v), serde_json::to_string(&s).unwrap());
        assert_eq!(to_canonical_json(&json!("\u{1}")), r#""\u0001""#);
        assert_eq!(to_canonical_json(&json!("\u{1f}")), r#""\u001f""#);
        assert_eq!(to_canonical_json(&json!("é")), "\"é\"");
    }

    #[test]
    fn integers_exact() {
        assert_eq!(to_canonical_json(&json!(0)), "0");
        assert_eq!(to_canonical_json(&json!(-42)), "-42");
        assert_eq!(to_canonical_json(&json!(u64::MAX)), "18446744073709551615");
        assert_eq!(to_canonical_json(&json!(i64::MIN)), "-9223372036854775808");
    }

    #[test]
    fn doubles_follow_ecmascript() {
        let cases: &[(f64, &str)] = &[
            (5.0, "5"),
            (-0.0, "0"),
            (0.5, "0.5"),
            (-1.25, "-1.25"),
            (123.456, "123.456"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (1.234e-7, "1.234e-7"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ];
        for (f, want) in cases {
            assert_eq!(to_canonical_json(&json!(f)), *want, "{f:?}");
        }
    }

    #[test]
    fn sha256_known_answers() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
