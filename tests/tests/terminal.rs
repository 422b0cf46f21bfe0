//! Terminal safety at the source (issue 14), against a real server: header values with control
//! or bidi characters do not register, hidden characters in a body are lint findings that guard 7
//! enforces (even on a row written without them), and a reason or request id must be plain,
//! visible text.

use pg_repair_core::Rule;
use pg_repair_tests::{db_error, execute, playbook, register, Cluster};
use postgres::Client;
use serde_json::Value;

#[derive(Debug)]
struct Finding {
    rule: String,
    severity: String,
    line: i32,
    col: i32,
    message: String,
}

fn lint(c: &mut Client, source: &str) -> Vec<Finding> {
    c.query(
        "SELECT rule, severity, line, col, message FROM repair.lint($1)",
        &[&source],
    )
    .expect("repair.lint")
    .iter()
    .map(|r| Finding {
        rule: r.get(0),
        severity: r.get(1),
        line: r.get(2),
        col: r.get(3),
        message: r.get(4),
    })
    .collect()
}

fn hidden(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.rule.starts_with(Rule::ControlCharacter.id()))
        .collect()
}

fn is_raw_danger(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[test]
fn a_hostile_header_value_does_not_register_and_the_line_is_named() {
    let c = Cluster::shared();
    let db = c.fresh_db("term_header");
    let mut carol = c.connect(&db, "carol");
    let source =
        "-- repair: evil\n-- title: evil \u{1b}[31mRED\u{1b}[0m \u{1b}]0;pwned\u{7} title\n\
                  CREATE TABLE IF NOT EXISTS public.t (id int);\n";
    let e = db_error(carol.query("SELECT * FROM repair.register($1)", &[&source]));
    assert_eq!(e.code().code(), "22023");
    assert!(
        e.message()
            .contains("line 2: title contains a control character U+001B (shown as \\x1b)"),
        "{}",
        e.message()
    );
    assert!(!e.message().chars().any(is_raw_danger), "{}", e.message());
    let bidi = "-- repair: evil\n-- title: ok\n-- description: admin\u{202e}txt\n\
                CREATE TABLE IF NOT EXISTS public.t (id int);\n";
    let e = db_error(carol.query("SELECT * FROM repair.register($1)", &[&bidi]));
    assert!(
        e.message()
            .contains("line 3: description contains a bidirectional override character U+202E"),
        "{}",
        e.message()
    );
    // nothing was stored
    let n: i64 = c
        .connect(&db, "postgres")
        .query_one("SELECT count(*) FROM repair.playbook_versions", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    // and no waiver can lift the rule
    let waived = "-- repair: evil\n-- title: ok\n\
                  -- waive: control-character until 2999-01-01 because trust me\nSELECT 1;\n";
    let e = db_error(carol.query("SELECT * FROM repair.register($1)", &[&waived]));
    assert!(e.message().contains("cannot be waived"), "{}", e.message());
}

#[test]
fn hidden_characters_in_the_body_are_findings_with_file_positions() {
    let c = Cluster::shared();
    let db = c.fresh_db("term_lint");
    let mut carol = c.connect(&db, "carol");
    // line 3: a bidi override in an identifier (code) at column 34
    // line 4: BEL inside a string literal; line 5: ESC inside a comment
    // line 6: an override opened in a comment and never closed (Trojan Source)
    let source = "-- repair: hidden\n-- title: hidden characters\n\
                  CREATE TABLE IF NOT EXISTS public.a\u{202e}b (id int);\n\
                  SELECT 'ding\u{7}' AS x;\n\
                  SELECT 1 AS y; -- \u{1b}[2J\n\
                  SELECT 1 /* \u{2067} */ + 1 AS z;\n";
    let f = lint(&mut carol, source);
    let h = hidden(&f);
    let got: Vec<(&str, &str, i32, i32)> = h
        .iter()
        .map(|f| (f.rule.as_str(), f.severity.as_str(), f.line, f.col))
        .collect();
    assert_eq!(
        got,
        vec![
            (Rule::ControlCharacter.id(), "error", 3, 36),
            (Rule::ControlCharacterInLiteral.id(), "warning", 4, 13),
            (Rule::ControlCharacterInLiteral.id(), "warning", 5, 19),
            (Rule::ControlCharacter.id(), "error", 6, 13),
        ],
        "{f:?}"
    );
    assert!(
        h[0].message.contains("U+202E (shown as \\u202e)"),
        "{}",
        h[0].message
    );
    assert!(h[1].message.contains("E'\\x07'"), "{}", h[1].message);
    assert!(h[3].message.contains("not closed"), "{}", h[3].message);
    for f in &f {
        assert!(!f.message.chars().any(is_raw_danger), "{f:?}");
    }
    // double-quoted identifiers are code, too
    let quoted = "-- repair: hidden\n-- title: t\nSELECT 1 AS \"a\u{2066}b\";\n";
    let f = lint(&mut carol, quoted);
    assert_eq!(hidden(&f)[0].severity, "error", "{f:?}");
    // a clean body has none
    let clean = "-- repair: clean\n-- title: t\nSELECT 'é漢\tx' AS x; -- fine\n";
    assert!(hidden(&lint(&mut carol, clean)).is_empty());
}

#[test]
fn guard_7_refuses_a_body_with_a_hidden_character_in_code_and_a_literal_warning_runs() {
    let c = Cluster::shared();
    let db = c.fresh_db("term_guard7");
    let mut carol = c.connect(&db, "carol");
    let (_, hash, _) = register(
        &mut carol,
        &playbook(
            "trojan",
            "CREATE TABLE IF NOT EXISTS public.acc\u{202e}ounts (id int);",
        ),
    );
    let stored: Value = c
        .connect(&db, "postgres")
        .query_one(
            "SELECT lint FROM repair.playbook_versions WHERE playbook_id = 'trojan'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        stored.to_string().contains(Rule::ControlCharacter.id()),
        "{stored}"
    );
    let mut alice = c.connect(&db, "alice");
    let e = db_error(execute(&mut alice, "trojan", &hash, "ticket 1"));
    assert_eq!(e.code().code(), "RP007", "{}", e.message());
    assert!(
        e.message().contains(Rule::ControlCharacter.id()),
        "{}",
        e.message()
    );

    let (_, hash, _) = register(&mut carol, &playbook("bell", "SELECT 'ding\u{7}' AS x;"));
    let r = execute(&mut alice, "bell", &hash, "ticket 2").expect("a warning does not block");
    assert_eq!(r["status"], "SUCCESS", "{r}");
}

#[test]
fn guard_7_rescans_a_row_written_without_the_findings() {
    let c = Cluster::shared();
    let db = c.fresh_db("term_rescan");
    let mut carol = c.connect(&db, "carol");
    // Register a clean playbook, then write a newer version by hand (as an older pg_repair or a
    // superuser would) whose body has an override in code and whose stored lint is empty.
    register(&mut carol, &playbook("rescan", "SELECT 1 AS a;"));
    let mut su = c.connect(&db, "postgres");
    // A consistent row (source, canonical JSON and hash agree, as the shared parser makes them)
    // whose only defect is the missing finding.
    let source = playbook("rescan", "SELECT 1 AS a\u{202e}b;");
    let parsed = pg_repair_core::parse(&source).expect("a body character is no parse error");
    let (canonical, hash) = (parsed.canonical_json(), parsed.hash());
    su.execute(
        "INSERT INTO repair.playbook_versions (playbook_id, version, kind, hash, canonical, \
         source, body_line, lint, registered_at, registered_by) \
         VALUES ('rescan', 2, 'playbook', $1, $2, $3, $4, '[]', now(), 'postgres')",
        &[&hash, &canonical, &source, &(parsed.body_line() as i32)],
    )
    .expect("plant version 2");
    let e = db_error(execute(
        &mut c.connect(&db, "alice"),
        "rescan",
        &hash,
        "ticket 3",
    ));
    assert_eq!(e.code().code(), "RP007", "{}", e.message());
    let p: Value = c
        .connect(&db, "alice")
        .query_one("SELECT repair.preview('rescan')", &[])
        .unwrap()
        .get(0);
    let g7 = p["guards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["guard"] == 7)
        .cloned()
        .unwrap();
    assert_eq!(g7["verdict"], "fail", "{p}");
}

#[test]
fn a_reason_or_request_id_with_hidden_characters_is_refused() {
    let c = Cluster::shared();
    let db = c.fresh_db("term_reason");
    let (_, hash, _) = register(
        &mut c.connect(&db, "carol"),
        &playbook("plain", "SELECT 1 AS a;"),
    );
    let mut alice = c.connect(&db, "alice");
    for reason in [
        "fix \u{1b}[31morders",
        "ticket\u{7}",
        "over\rwrite",
        "tab\tinside",
        "two\nlines",
        "admin\u{202e}txt",
        "\u{2066}x",
        "c1 \u{9b}2J",
        "del\u{7f}",
        "nul is impossible in text, so: \u{1}",
    ] {
        let e = db_error(execute(&mut alice, "plain", &hash, reason));
        assert_eq!(e.code().code(), "RP004", "{reason:?}: {}", e.message());
        assert!(
            e.message()
                .starts_with("REASON_REQUIRED: the reason contains"),
            "{}",
            e.message()
        );
        assert!(!e.message().chars().any(is_raw_danger), "{}", e.message());
    }
    // only invisible characters: refused like an empty reason
    for reason in [
        "\u{200b}",
        " \u{200c}\u{200d} ",
        "\u{2060}\u{feff}",
        "\u{3000}",
    ] {
        let e = db_error(execute(&mut alice, "plain", &hash, reason));
        assert_eq!(e.code().code(), "RP004", "{reason:?}");
        assert!(
            e.message().contains("a reason is required"),
            "{}",
            e.message()
        );
    }
    // retire applies the same rule
    let e = db_error(
        c.connect(&db, "carol")
            .batch_execute("SELECT repair.retire('plain', 'bye' || chr(27) || '[2J')"),
    );
    assert_eq!(e.code().code(), "RP004");

    // request_id: 22023 for hidden characters, a plain one is recorded
    for id in ["CHG-1\u{1b}]52;c;eA==\u{7}", "CHG\u{202e}1", "a\nb"] {
        let e = db_error(alice.query_one(
            "SELECT repair.execute('plain', $1, 'ticket 4', false, $2)",
            &[&hash, &id],
        ));
        assert_eq!(e.code().code(), "22023", "{id:?}: {}", e.message());
        assert!(
            e.message().contains("request_id contains"),
            "{}",
            e.message()
        );
    }
    let r: Value = alice
        .query_one(
            "SELECT repair.execute('plain', $1, '  ticket 5 ', false, 'CHG-42')",
            &[&hash],
        )
        .unwrap()
        .get(0);
    assert_eq!(r["status"], "SUCCESS", "{r}");
    // nothing hostile reached the audit trail
    let n: i64 = c
        .connect(&db, "postgres")
        .query_one(
            "SELECT count(*) FROM repair.runs WHERE reason ~ '[[:cntrl:]]' \
             OR request_id ~ '[[:cntrl:]]'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    // the refusal log line escapes what JSON alone would leave raw (bidi, C1)
    let log = c.log();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("pg_repair refusal") && l.contains("\"plain\""))
        .collect();
    assert!(!refusals.is_empty(), "no refusal lines in the server log");
    for l in refusals {
        assert!(!l.chars().any(is_raw_danger), "{l:?}");
    }
}
