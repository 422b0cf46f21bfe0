//! Properties of the text-safety scanner and escaper on arbitrary text: every unsafe character
//! of a body is reported exactly once at its real position, and escaped text is safe and stable.

use pg_repair_core::text_safety::{is_unsafe, scan_body, visible, visible_line};
use proptest::prelude::*;

/// Text biased towards SQL quoting and the dangerous characters.
fn sqlish() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(
        &[
            "'", "''", "E'", "e'", "\\", "\\'", "$$", "$a$", "$1", "\"", "--", "/*", "*/", "\n",
            "\r\n", "\t", " ", "x", "SELECT ", "é", "\u{1b}", "\u{7}", "\u{0}", "\u{7f}", "\u{85}",
            "\u{9b}", "\u{202a}", "\u{202c}", "\u{202e}", "\u{2066}", "\u{2069}",
        ][..],
    );
    prop_oneof![
        prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat()),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn every_unsafe_body_character_is_reported_once_where_it_is(sql in sqlish()) {
        let hits = scan_body(&sql);
        // expected positions, counting lines the way the scanner does (\n, \r\n, lone \r)
        let chars: Vec<char> = sql.chars().collect();
        let mut expected = Vec::new();
        let (mut line, mut col) = (1u32, 1u32);
        for (i, &c) in chars.iter().enumerate() {
            if is_unsafe(c) && !matches!(c, '\t' | '\n' | '\r') {
                expected.push((line, col, c));
            }
            if c == '\n' || (c == '\r' && chars.get(i + 1) != Some(&'\n')) {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        let got: Vec<(u32, u32, char)> = hits.iter().map(|h| (h.line, h.col, h.ch)).collect();
        prop_assert_eq!(got, expected);
        for h in &hits {
            prop_assert!(!h.message().chars().any(is_unsafe));
        }
    }

    #[test]
    fn escaped_text_is_safe_and_stable(s in sqlish()) {
        let v = visible(&s);
        prop_assert!(!v.chars().any(|c| is_unsafe(c) && c != '\n' && c != '\t'));
        prop_assert_eq!(visible(&v), v.clone());
        let l = visible_line(&s);
        prop_assert!(!l.chars().any(is_unsafe));
        // text without unsafe characters is printed unchanged
        if !s.chars().any(|c| is_unsafe(c) && c != '\n' && c != '\t') {
            prop_assert_eq!(v, s.as_str());
        }
    }
}
