//! Properties of `redact` on PostgreSQL message shapes filled with hostile values: no character
//! of a value survives, whatever the value contains (parentheses, quotes, newlines, the words
//! that end the shape), and redacting again changes nothing.

use pg_repair_core::redact::redact;
use proptest::prelude::*;

/// Characters that only a value contains: none of them may appear in the output.
const SECRET: [char; 5] = ['Q', 'Z', 'J', 'ü', '😀'];

/// Values built from the secret characters and everything that could confuse the scanner.
fn value() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(
        &[
            "Q",
            "Z",
            "J",
            "ü",
            "😀",
            "(",
            ")",
            ",",
            "'",
            "''",
            "\"",
            "\n",
            "\r",
            " ",
            "=",
            ".",
            ")=(",
            ") already exists.",
            ") is not present in table \"",
            ") is still referenced from table \"",
            ") is duplicated.",
            ") conflicts with existing key (",
            ") conflicts with key (",
            "Failing row contains (",
            ").",
            ") = (",
            "Key (",
            "\\",
            "E'",
            "\" is out of range",
            "\" is invalid",
            "\".",
            ": \"",
            "input syntax",
            "can't",
            "<redacted>",
            "null",
        ][..],
    );
    prop::collection::vec(pieces, 1..12).prop_map(|v| v.concat())
}

/// PostgreSQL's quote_literal.
fn quote_literal(v: &str) -> String {
    let doubled = v.replace('\'', "''");
    if v.contains('\\') {
        format!("E'{}'", doubled.replace('\\', "\\\\"))
    } else {
        format!("'{doubled}'")
    }
}

/// One message or detail with the values `a` and `b` in it.
fn message(shape: usize, a: &str, b: &str) -> String {
    match shape {
        0 => format!("Key (email)=({a}) already exists."),
        1 => format!("Key (a, b)=({a}, {b}) is not present in table \"t\"."),
        2 => format!("Key (id)=({a}) is still referenced from table \"orders\"."),
        3 => format!("Key (c, d)=({a}) conflicts with existing key (c, d)=({b})."),
        4 => format!("Key (c)=({a}) conflicts with key (c)=({b})."),
        5 => format!("Key (lower(email::text))=({a}) is duplicated."),
        6 => format!("Failing row contains (1, {a}, null, {b})."),
        7 => format!("Partition key of the failing row contains (logdate) = ({a})."),
        8 => format!("bad email {}", quote_literal(a)),
        9 => format!("can't accept {} or {}", quote_literal(a), quote_literal(b)),
        10 => format!("invalid input syntax for type integer: \"{a}\""),
        11 => format!("invalid input value for enum mood: \"{a}\""),
        12 => format!("value \"{a}\" is out of range for type integer"),
        13 => format!("\"{a}\" is out of range for type double precision"),
        14 => format!("malformed array literal: \"{a}\""),
        15 => format!("Token \"{a}\" is invalid."),
        _ => format!("Expected \",\" or \"}}\", but found \"{a}\"."),
    }
}

const SHAPES: usize = 17;
const PREFIXES: [&str; 3] = [
    "",
    "DETAIL:  ",
    "ERROR:  duplicate key value violates unique constraint \"t_email_key\"\nDETAIL:  ",
];
const SUFFIXES: [&str; 3] = [
    "",
    "\nHINT:  check the data.",
    "\nCONTEXT:  function f() line 3 at RAISE",
];

#[test]
fn shapes_hold_no_secret_of_their_own() {
    for shape in 0..SHAPES {
        let m = message(shape, "", "") + PREFIXES.concat().as_str() + SUFFIXES.concat().as_str();
        assert!(!m.contains(SECRET), "{m:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn no_part_of_a_value_survives(
        shape in 0..SHAPES,
        prefix in 0..PREFIXES.len(),
        suffix in 0..SUFFIXES.len(),
        a in value(),
        b in value(),
    ) {
        let text = format!("{}{}{}", PREFIXES[prefix], message(shape, &a, &b), SUFFIXES[suffix]);
        let out = redact(&text);
        prop_assert!(!out.contains(SECRET), "leak: {text:?} -> {out:?}");
        prop_assert_eq!(redact(&out), out.clone(), "not idempotent on {:?}", text);
        prop_assert!(out.contains("<redacted>"));
    }

    #[test]
    fn empty_values_are_still_marked(shape in 0..SHAPES) {
        let out = redact(&message(shape, "", ""));
        prop_assert!(out.contains("<redacted>"), "{out:?}");
    }

    #[test]
    fn any_text_is_stable(s in any::<String>()) {
        let out = redact(&s);
        prop_assert_eq!(redact(&out), out);
    }
}
