//! Every way a file can be rejected: each error names the right line and says what to write.

use pg_repair_core::{parse, parse_playbook, ParseError};

#[track_caller]
fn rejects(source: &str, line: u32, needle: &str) -> ParseError {
    let e = match parse(source) {
        Err(e) => e,
        Ok(ok) => panic!("expected an error containing {needle:?}, parsed {ok:?}"),
    };
    assert_eq!(e.line, line, "wrong line for {e}");
    assert!(
        e.message.contains(needle),
        "message {:?} lacks {needle:?}",
        e.message
    );
    e
}

/// A valid playbook header with `extra` header lines appended (starting on line 3).
fn playbook(extra: &str) -> String {
    format!("-- repair: fix_it\n-- title: Fix it\n{extra}SELECT 1;\n")
}

fn check(extra: &str) -> String {
    format!("-- check: no_orphans\n-- title: No orphans\n{extra}SELECT 1 WHERE false;\n")
}

#[test]
fn display_names_the_line() {
    let e = rejects("SELECT 1;", 1, "no header");
    assert!(e.to_string().starts_with("line 1: no header"));
}

#[test]
fn empty_and_headerless_files() {
    rejects("", 1, "the file is empty");
    rejects("\u{feff}", 1, "the file is empty");
    rejects("\n  \n\t\n", 3, "the file is empty");
    rejects("\n\nSELECT 1;\n", 3, "no header");
    rejects("-- just a note\n-- repair: x\n", 1, "`-- repair: <id>`");
    rejects("  -- repair: x\n-- title: t\nSELECT 1;", 1, "first column");
}

#[test]
fn first_key_must_be_repair_or_check() {
    rejects(
        "-- title: T\n-- repair: x\nSELECT 1;",
        1,
        "move `-- repair:` (line 2)",
    );
    rejects(
        "\n-- owner: me\nSELECT 1;",
        2,
        "must name the playbook or check, not `owner`",
    );
    rejects(
        "-- Repair: x\n-- title: T\nSELECT 1;",
        1,
        "not `Repair`: write `-- repair: <id>`",
    );
    rejects(
        "-- chek: x\n-- title: T\nSELECT 1;",
        1,
        "write `-- check: <id>`",
    );
}

#[test]
fn invalid_ids() {
    rejects(
        "-- repair: Fix-It\n-- title: T\nSELECT 1;",
        1,
        "write `fix_it`",
    );
    rejects("-- repair:\n-- title: T\nSELECT 1;", 1, "empty repair id");
    rejects(
        "-- repair: 1fix\n-- title: T\nSELECT 1;",
        1,
        "lowercase letter",
    );
    let long = format!("-- repair: a{}\n-- title: T\nSELECT 1;", "b".repeat(63));
    rejects(&long, 1, "1 to 63 characters");
    rejects(
        "-- check: Bad Id\n-- title: T\n-- severity: critical\nSELECT 1;",
        1,
        "invalid check id",
    );
}

#[test]
fn title_required_non_empty_and_bounded() {
    rejects(
        "\n\n-- repair: x\nSELECT 1;",
        3,
        "missing `-- title: <one-line summary>`",
    );
    rejects("-- repair: x\n-- title:   \nSELECT 1;", 2, "empty title");
    let long = playbook("").replace("Fix it", &"é".repeat(201));
    rejects(&long, 2, "201 characters");
    let ok = playbook("").replace("Fix it", &"é".repeat(200));
    assert!(parse(&ok).is_ok());
}

#[test]
fn empty_description_line() {
    rejects(
        &playbook("-- description: a\n-- description:\n"),
        4,
        "empty description",
    );
}

#[test]
fn environments() {
    rejects(
        &playbook("-- environments: replica\n"),
        3,
        "replica is never a valid environment",
    );
    rejects(
        &playbook("-- environments: staging, replica\n"),
        3,
        "replica is never",
    );
    rejects(
        &playbook("-- environments: dev\n"),
        3,
        "unknown environment `dev`",
    );
    rejects(&playbook("-- environments: Staging\n"), 3, "lowercase");
    rejects(
        &playbook("-- environments: production\n"),
        3,
        "write `prod`",
    );
    rejects(
        &playbook("-- environments: staging,,prod\n"),
        3,
        "empty item in environments",
    );
    rejects(
        &playbook("-- environments: staging,\n"),
        3,
        "empty item in environments",
    );
    rejects(&playbook("-- environments:\n"), 3, "empty environments");
}

#[test]
fn requires_must_be_schema_qualified() {
    let e = rejects(
        &playbook("-- requires-before: workspaces\n"),
        3,
        "not schema-qualified",
    );
    assert!(e.message.contains("`public.workspaces`"), "{e}");
    assert!(e.message.contains("requires-before"), "{e}");
    rejects(
        &playbook("-- requires-after: public.a, b\n"),
        3,
        "`b` in requires-after",
    );
    rejects(
        &playbook("-- requires-after: db.public.a\n"),
        3,
        "3 dot-separated parts",
    );
    rejects(
        &playbook("-- requires-after: public..a\n"),
        3,
        "`public..a`",
    );
    rejects(
        &playbook("-- requires-after: public.a-b\n"),
        3,
        "unexpected `-b`",
    );
    rejects(
        &playbook("-- requires-after: \"public.a\n"),
        3,
        "unterminated",
    );
    rejects(
        &playbook("-- requires-after: public.a,\n"),
        3,
        "empty item in requires-after",
    );
    rejects(
        &playbook("-- requires-before:\n"),
        3,
        "empty requires-before",
    );
    let long = format!("-- requires-before: public.{}\n", "t".repeat(64));
    rejects(&playbook(&long), 3, "more than PostgreSQL's 63");
}

#[test]
fn timeouts() {
    rejects(&playbook("-- lock-timeout: 0s\n"), 3, "greater than zero");
    rejects(&playbook("-- lock-timeout: -5s\n"), 3, "must be positive");
    rejects(
        &playbook("-- lock-timeout: 1.5s\n"),
        3,
        "fractions are not allowed",
    );
    rejects(
        &playbook("-- lock-timeout: 500\n"),
        3,
        "add a unit: `500ms`, `500s` or `500min`",
    );
    rejects(&playbook("-- lock-timeout: 5m\n"), 3, "`m` is ambiguous");
    rejects(&playbook("-- lock-timeout: 2h\n"), 3, "unknown unit `h`");
    rejects(
        &playbook("-- lock-timeout: soon\n"),
        3,
        "start with a number",
    );
    rejects(&playbook("-- lock-timeout:\n"), 3, "empty lock-timeout");
    rejects(
        &playbook("-- statement-timeout: 2147483648ms\n"),
        3,
        "longer than 2147483647 ms",
    );
    rejects(
        &playbook("-- statement-timeout: 35792min\n"),
        3,
        "invalid statement-timeout",
    );
}

#[test]
fn waivers() {
    let w = |v: &str| playbook(&format!("-- waive: {v}\n"));
    rejects(
        &w("ban-drops until 2030-01-01 because x"),
        3,
        "did you mean `ban-drop`?",
    );
    rejects(
        &w("BAN_DROP until 2030-01-01 because x"),
        3,
        "did you mean `ban-drop`?",
    );
    rejects(
        &w("no-such-thing until 2030-01-01 because x"),
        3,
        "see repair.lint rules",
    );
    rejects(
        &w("ban-drop until 2023-02-29 because x"),
        3,
        "2023 is not a leap year",
    );
    rejects(
        &w("ban-drop until 2030-04-31 because x"),
        3,
        "not a calendar date",
    );
    rejects(
        &w("ban-drop until 2030-13-01 because x"),
        3,
        "month must be 01 to 12",
    );
    rejects(&w("ban-drop until 31/12/2030 because x"), 3, "YYYY-MM-DD");
    rejects(
        &w("ban-drop until 2030-01-01 because   "),
        3,
        "gives no reason",
    );
    rejects(&w("ban-drop until 2030-01-01"), 3, "expected `because`");
    rejects(&w("ban-drop 2030-01-01 because x"), 3, "expected `until`");
    rejects(&w(""), 3, "empty waiver");
    let twice = playbook(
        "-- waive: ban-drop until 2030-01-01 because a\n\
         -- waive: ban-drop until 2031-01-01 because b\n",
    );
    rejects(&twice, 4, "already waived on line 3");
}

#[test]
fn unknown_keys_list_the_valid_ones() {
    let e = rejects(
        &playbook("-- owner: dba team\n"),
        3,
        "unknown header key `owner`",
    );
    assert!(
        e.message
            .contains("repair, title, description, environments"),
        "{e}"
    );
    assert!(e.message.contains("blank line"), "{e}");
    rejects(&playbook("-- tilte: x\n"), 3, "did you mean `title`?");
    rejects(
        &playbook("-- requires_before: public.a\n"),
        3,
        "did you mean `requires-before`?",
    );
    rejects(
        &playbook("-- severity: critical\n"),
        3,
        "in a playbook file",
    );
    rejects(
        &playbook("-- Note: this runs twice\n"),
        3,
        "unknown header key `Note`",
    );
    let e = rejects(&check("-- environments: prod\n"), 3, "in a check file");
    assert!(
        e.message
            .contains("check, title, description, severity, tags"),
        "{e}"
    );
    rejects(
        &check("-- waive: ban-drop until 2030-01-01 because x\n"),
        3,
        "`waive`",
    );
}

#[test]
fn non_repeatable_keys_once() {
    let e = rejects(
        &playbook("-- title: Again\n"),
        3,
        "duplicate `title` on lines 2 and 3",
    );
    assert!(e.message.contains("keep only one"));
    rejects(
        &playbook("-- lock-timeout: 1s\n-- description: x\n-- lock-timeout: 2s\n"),
        5,
        "duplicate `lock-timeout` on lines 3 and 5",
    );
    rejects(
        "-- repair: a\n-- repair: b\n-- title: t\nSELECT 1;",
        2,
        "duplicate `repair`",
    );
    rejects(
        &check("-- severity: critical\n-- severity: important\n"),
        4,
        "duplicate `severity` on lines 3 and 4",
    );
}

#[test]
fn first_error_in_file_order_wins() {
    rejects(
        &playbook("-- environments: dev\n-- owner: x\n"),
        3,
        "unknown environment",
    );
    rejects(
        &playbook("-- owner: x\n-- environments: dev\n"),
        3,
        "unknown header key",
    );
}

#[test]
fn empty_body_points_at_the_last_line() {
    rejects(
        "-- repair: x\n-- title: T\n",
        2,
        "empty body: put the SQL after the header",
    );
    rejects("-- repair: x\n-- title: T", 2, "empty body");
    rejects("-- repair: x\n-- title: T\n\n  \n\t\n", 5, "empty body");
    rejects("-- repair: x\r\n-- title: T\r\n\r\n", 3, "empty body");
    rejects(
        "-- check: x\n-- title: T\n-- severity: critical\n",
        3,
        "empty body",
    );
}

#[test]
fn check_file_errors() {
    rejects(
        "-- check: x\n-- title: T\nSELECT 1;",
        1,
        "missing `-- severity: critical|important`",
    );
    rejects(
        "-- check: x\nSELECT 1;",
        1,
        "missing `-- title: <one-line summary>` and `-- severity: critical|important`",
    );
    rejects(
        &check("-- severity: high\n"),
        3,
        "write `critical` or `important`",
    );
    rejects(
        &check("-- severity: critical\n-- tags: Orders\n"),
        4,
        "invalid tag `Orders`",
    );
    rejects(
        &check("-- severity: critical\n-- tags: a b\n"),
        4,
        "invalid tag `a b`",
    );
    rejects(
        &check("-- severity: critical\n-- tags: -a\n"),
        4,
        "invalid tag `-a`",
    );
    rejects(
        &check("-- severity: critical\n-- tags: a,,b\n"),
        4,
        "empty item in tags",
    );
}

#[test]
fn parse_playbook_refuses_check_files() {
    let e =
        parse_playbook("\n-- check: x\n-- title: T\n-- severity: critical\nSELECT 1;").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("check file"), "{e}");
    assert!(e.message.contains("`-- repair: <id>`"), "{e}");
}

#[test]
fn long_values_are_shortened_in_messages() {
    let huge = "x".repeat(100_000);
    let e = rejects(
        &playbook(&format!("-- environments: {huge}\n")),
        3,
        "unknown environment",
    );
    assert!(e.message.len() < 400, "{} bytes", e.message.len());
    let e = rejects(
        &playbook(&format!("-- {huge}: v\n")),
        3,
        "unknown header key",
    );
    assert!(e.message.len() < 800, "{} bytes", e.message.len());
}

/// PostgreSQL text cannot hold U+0000 (the server refuses it, 22021): neither may the parser,
/// so `pgrepair hash` never hashes a file the server would refuse.
#[test]
fn nul_byte_is_refused_with_its_line() {
    for (src, line) in [
        ("-- repair: a\0b\n-- title: T\nSELECT 1;\n", 1),
        ("-- repair: ab\n-- title: T\nSELECT '\0';\n", 3),
        ("-- repair: ab\r\n-- title: T\rSELECT 1;\n\0", 4),
        ("\0", 1),
    ] {
        let e = pg_repair_core::parse(src).expect_err("NUL refused");
        assert_eq!(e.line, line, "{src:?}");
        assert!(e.message.contains("NUL"), "{}", e.message);
        assert!(e.message.contains("22021"), "{}", e.message);
    }
}
#[test]
fn control_characters_in_header_values_are_refused_with_the_line_named() {
    // The reproduction: raw ESC and BEL in a title.
    let e = rejects(
        "-- repair: fix_it\n-- title: evil \u{1b}[31mRED\u{1b}[0m \u{1b}]0;pwned\u{7} title\nSELECT 1;\n",
        2,
        "title contains a control character U+001B (shown as \\x1b) at column 16",
    );
    assert!(!e.to_string().chars().any(|c| c.is_control() && c != '\n'));
    // every key, every C0 (tab inside the value included), DEL, C1
    for c in [
        '\u{0}', '\u{7}', '\t', '\u{b}', '\u{c}', '\u{1f}', '\u{7f}', '\u{85}', '\u{9b}',
    ] {
        let escaped = pg_repair_core::text_safety::escape_char(c);
        rejects(&playbook(&format!("-- description: a{c}b\n")), 3, &escaped);
        // NUL is refused for the whole file first (nul_byte_is_refused_with_its_line)
        let expected = if c == '\u{0}' {
            "NUL byte"
        } else {
            "title contains a control character"
        };
        rejects(
            &format!("-- repair: fix_it\n-- title: a{c}b\nSELECT 1;\n"),
            2,
            expected,
        );
    }
    rejects(
        &check("-- tags: a\u{1b}b\n"),
        3,
        "tags contains a control character",
    );
    rejects(
        &playbook(
            "-- waive: ban-drop until 2030-01-01 because \u{1b}]52;c;ZWNobyBwd25lZA==\u{7}\n",
        ),
        3,
        "waive contains a control character U+001B",
    );
    rejects(&playbook("-- environments: staging\u{7}\n"), 3, "U+0007");
    // trailing / leading C0 that `trim` would silently drop are refused too
    rejects(&playbook("-- description: ok\u{c}\n"), 3, "U+000C");
    rejects(&playbook("-- description: \u{85}ok\n"), 3, "U+0085");
    // the first key line too, before anything else is said about it
    rejects(
        "-- repair: fix\u{7}_it\n-- title: t\nSELECT 1;\n",
        1,
        "repair contains",
    );
    // an unknown key with a hostile value: the control character is what is reported
    rejects(
        &playbook("-- owner: \u{1b}[2J\n"),
        3,
        "owner contains a control character",
    );
}

#[test]
fn bidi_overrides_anywhere_in_the_header_are_refused() {
    for c in [
        '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}',
        '\u{2068}', '\u{2069}',
    ] {
        let escaped = format!("\\u{:04x}", c as u32);
        let e = rejects(
            &format!("-- repair: fix_it\n-- title: Add index {c}on orders\nSELECT 1;\n"),
            2,
            &format!(
                "a bidirectional override character U+{:04X} (shown as {escaped})",
                c as u32
            ),
        );
        assert!(!e.message.contains(c));
        rejects(&check(&format!("-- description: x{c}\n")), 3, &escaped);
    }
}

#[test]
fn spaces_and_tabs_around_a_value_stay_allowed() {
    // The format trims them; they were never part of a value, so existing files still parse
    // to the same hash.
    let a = parse("-- repair:\tfix_it\t\n--\ttitle \t: \t Fix it \t\nSELECT 1;\n").unwrap();
    let b = parse("-- repair: fix_it\n-- title: Fix it\nSELECT 1;\n").unwrap();
    assert_eq!(a.hash(), b.hash());
    // non-ASCII text is fine
    parse("-- repair: fix_it\n-- title: Ré-index 漢字 ✓\nSELECT 1;\n").unwrap();
}

#[test]
fn control_characters_in_the_body_do_not_fail_the_parse() {
    // The body is the lint's business (a finding with a position), not a parse error; its hash
    // is unchanged by this feature.
    let p = parse_playbook("-- repair: fix_it\n-- title: t\nSELECT '\u{7}';\n").unwrap();
    assert_eq!(p.sql, "SELECT '\u{7}';");
}

#[test]
fn a_waiver_cannot_name_the_control_character_rules() {
    rejects(
        &playbook("-- waive: control-character until 2030-01-01 because trust me\n"),
        3,
        "`control-character` cannot be waived",
    );
    rejects(
        &playbook("-- waive: control-character-in-literal until 2030-01-01 because x\n"),
        3,
        "cannot be waived",
    );
}
