//! `parse` is total (any input: a value or an error on a real line, never a panic), and a parsed
//! file's hash ignores line-ending style and trailing whitespace.

use pg_repair_core::{parse, text_safety, Source};
use proptest::prelude::*;

/// Lines as the parser counts them: `\r\n`, `\r` and `\n` end a line; a final one adds none.
fn lines(text: &str) -> Vec<&str> {
    let mut out: Vec<&str> = text
        .split("\r\n")
        .flat_map(|l| l.split(['\r', '\n']))
        .collect();
    if out.last() == Some(&"") {
        out.pop();
    }
    out
}

/// The same file saved by a Windows editor that also leaves trailing blanks everywhere.
fn messy_copy(text: &str) -> String {
    lines(text).iter().map(|l| format!("{l} \t \r\n")).collect()
}

fn check_total(text: &str) -> Result<(), TestCaseError> {
    match parse(text) {
        Ok(source) => {
            let again = parse(&messy_copy(text));
            prop_assert_eq!(again.as_ref().map(Source::hash), Ok(source.hash()));
            prop_assert_eq!(again, Ok(source.clone()));
            prop_assert!(source.body_line() >= 1);
            prop_assert!(!source.sql().is_empty());
            // No header field of a parsed file holds a control or bidi character: the canonical
            // JSON minus the body is all header values.
            let mut fields: serde_json::Value =
                serde_json::from_str(&source.canonical_json()).unwrap();
            fields.as_object_mut().unwrap().remove("sql");
            prop_assert!(
                !strings(&fields)
                    .iter()
                    // line feeds join repeated description lines
                    .any(|s| s.chars().any(|c| c != '\n' && text_safety::is_unsafe(c))),
                "unsafe character in a header field: {}",
                fields
            );
        }
        Err(e) => {
            let last = text
                .strip_prefix('\u{feff}')
                .map_or(lines(text).len(), |t| lines(t).len());
            prop_assert!(e.line >= 1, "line 0 for {}", e);
            prop_assert!(
                e.line as usize <= last.max(1),
                "line {} beyond the file: {}",
                e.line,
                e
            );
            prop_assert!(!e.message.is_empty());
        }
    }
    Ok(())
}

/// Every string in a JSON document (serde_json's own text would escape C0 characters).
fn strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a.iter().flat_map(strings).collect(),
        serde_json::Value::Object(m) => m.values().flat_map(strings).collect(),
        _ => vec![],
    }
}

const KEYS: &[&str] = &[
    "repair",
    "check",
    "title",
    "description",
    "environments",
    "requires-before",
    "requires-after",
    "lock-timeout",
    "statement-timeout",
    "waive",
    "severity",
    "tags",
    "Title",
    "owner",
    "x",
];

const VALUES: &[&str] = &[
    "",
    "fix_it",
    "Fix-It",
    "A title",
    "staging",
    "prod",
    "staging, prod",
    "replica",
    "staging,,",
    "public.a",
    "public.b, public.a",
    "\"A,b\".\"c\"\"d\"",
    "orders",
    "a.b.c",
    "2s",
    "5 min",
    "250ms",
    "0s",
    "1.5s",
    "9999999999min",
    "critical",
    "important",
    "x, y",
    "Bad Tag",
    "ban-drop until 2030-01-01 because needed",
    "ban-drop until 2023-02-29 because x",
    "warn-dynamic-sql until 2031-12-31 because DO",
    "nope until 2030-01-01 because x",
    "é漢😀",
    "\u{0}\u{1}\t",
    "a\tb",
    "evil \u{1b}[31mRED\u{1b}[0m \u{1b}]0;pwned\u{7} title",
    "x\u{202e}y",
    "fix_it\u{2066}",
    "\u{85}staging",
    "staging\u{c}",
];

fn header_line() -> impl Strategy<Value = String> {
    (
        prop::sample::select(KEYS),
        prop::sample::select(VALUES),
        "[ \t]{0,2}",
        "[ \t]{0,2}",
    )
        .prop_map(|(k, v, a, b)| format!("--{a}{k}{b}:{a}{v}{b}"))
}

fn any_line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => header_line(),
        1 => Just(String::new()),
        1 => "[ \t]{1,3}",
        2 => prop::sample::select(&["SELECT 1;", "CREATE TABLE IF NOT EXISTS public.t (id int);", "-- just a note", "-- Note: x", "  -- repair: indented", "\u{feff}"][..]).prop_map(str::to_string),
        1 => "[^\r\n]{0,40}",
        1 => any::<String>(),
    ]
}

fn line_ending() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["\n", "\r\n", "\r"][..])
}

fn soup() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((any_line(), line_ending()), 0..24),
        any::<bool>(),
    )
        .prop_map(|(lines, bom)| {
            let body: String = lines.into_iter().map(|(l, e)| l + e).collect();
            if bom {
                format!("\u{feff}{body}")
            } else {
                body
            }
        })
}

/// Headers that always start like a real playbook or check, so most cases reach the field
/// parsers and the body rather than stopping at "no header".
fn plausible() -> impl Strategy<Value = String> {
    (
        prop::sample::select(&["-- repair: fix_it", "-- check: c\n-- severity: critical"][..]),
        "-- title: [A-Za-z é]{1,20}",
        soup(),
    )
        .prop_map(|(first, title, rest)| format!("{first}\n{title}\n{rest}"))
}

/// 512 cases by default; `PROPTEST_CASES=100000` for a long soak.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_strings(text in any::<String>()) {
        check_total(&text)?;
    }

    #[test]
    fn arbitrary_line_soups(text in soup()) {
        check_total(&text)?;
    }

    #[test]
    fn plausible_files(text in plausible()) {
        check_total(&text)?;
    }
}

#[test]
fn plausible_files_often_parse() {
    // Guards the generator: if it stopped producing valid files the hash property above would
    // be tested on nothing.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let parsed = (0..500)
        .filter(|_| {
            let text = plausible().new_tree(&mut runner).unwrap().current();
            parse(&text).is_ok()
        })
        .count();
    assert!(parsed >= 25, "only {parsed} of 500 generated files parsed");
}
