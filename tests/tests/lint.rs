//! repair.lint against a real server: a corpus of destructive / non-idempotent statements that
//! must each be an error and of idempotent ones that must be clean, file positions, syntax
//! errors, findings stored at registration and enforced by guard 7, waivers (and what they never
//! lift), and robustness: huge bodies, deep nesting, a few hundred random and garbage inputs to
//! repair.lint and repair.register, and invalid UTF-8 — never a crashed backend.

use pg_repair_core::Rule;
use pg_repair_tests::{db_error, execute, one, register, Cluster};
use postgres::Client;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const DESTRUCTIVE: &str = include_str!("../corpus/destructive.sql");
const IDEMPOTENT: &str = include_str!("../corpus/idempotent.sql");

/// One row of repair.lint.
#[derive(Debug, Clone)]
struct Finding {
    rule: String,
    severity: String,
    statement: Option<i32>,
    line: i32,
    col: i32,
    message: String,
}

fn lint(c: &mut Client, source: &str) -> Result<Vec<Finding>, postgres::Error> {
    let rows = c.query(
        "SELECT rule, severity, statement, line, col, message FROM repair.lint($1)",
        &[&source],
    )?;
    Ok(rows
        .iter()
        .map(|r| Finding {
            rule: r.get(0),
            severity: r.get(1),
            statement: r.get(2),
            line: r.get(3),
            col: r.get(4),
            message: r.get(5),
        })
        .collect())
}

fn summary(findings: &[Finding]) -> String {
    let parts: Vec<String> = findings
        .iter()
        .map(|f| format!("{}/{}", f.rule, f.severity))
        .collect();
    format!("[{}]", parts.join(", "))
}

// ------------------------------------------------------------------------------------ corpus

/// One corpus case: `-- case: <rule> <name>` and the lines up to the next case.
#[derive(Debug)]
struct Case {
    rule: String,
    name: String,
    /// 1-based line of the `-- case:` marker in the corpus file.
    line: usize,
    body: String,
}

fn parse_corpus(text: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("-- case:") {
            let mut words = rest.split_whitespace();
            let rule = words.next().expect("a rule after `-- case:`").to_string();
            let name = words.collect::<Vec<_>>().join(" ");
            assert!(!name.is_empty(), "case on line {} has no name", i + 1);
            cases.push(Case {
                rule,
                name,
                line: i + 1,
                body: String::new(),
            });
        } else if let Some(case) = cases.last_mut() {
            case.body.push_str(line);
            case.body.push('\n');
        }
    }
    for case in &mut cases {
        case.body = case.body.trim_end().to_string();
        assert!(
            !case.body.trim().is_empty(),
            "case {} (line {}) has an empty body",
            case.name,
            case.line
        );
    }
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "corpus case names must be unique");
    cases
}

fn corpus_source(body: &str) -> String {
    format!("-- repair: corpus_case\n-- title: t\n{body}\n")
}

const ERROR_RULES: &[&str] = &[
    Rule::BanDrop.id(),
    Rule::BanTruncate.id(),
    Rule::BanDelete.id(),
    Rule::BanUpdate.id(),
    Rule::BanDataModifyingCte.id(),
    Rule::BanAlterTableDrop.id(),
    Rule::BanAlterSystem.id(),
    Rule::BanTransactionControl.id(),
    Rule::BanSet.id(),
    Rule::BanRoleChange.id(),
    Rule::BanRoleManagement.id(),
    Rule::BanCopyProgram.id(),
    Rule::BanNonTransactional.id(),
    Rule::RequireIfNotExists.id(),
    Rule::RequireOrReplace.id(),
    Rule::BanRule.id(),
    Rule::BanGrant.id(),
    Rule::BanAlterType.id(),
    Rule::BanRename.id(),
    Rule::BanCursor.id(),
    Rule::BanSessionState.id(),
    Rule::BanExtension.id(),
    Rule::BanEventTrigger.id(),
    Rule::SyntaxError.id(),
    Rule::EmptyBody.id(),
];

/// The corpus covers every error-level lint rule a playbook can break (ban-non-select-check is
/// for checks only, batch-statement for online playbooks only (online_lint below); the
/// control-character rules have their own tests in terminal.rs).
#[test]
fn error_rules_are_every_playbook_error_rule_of_the_catalogue() {
    let mut catalogue: Vec<&str> = Rule::ALL
        .iter()
        .filter(|r| r.class() == pg_repair_core::rules::Class::Lint)
        .filter(|r| r.severity() == pg_repair_core::Severity::Error)
        .filter(|r| **r != Rule::BanNonSelectCheck && **r != Rule::BatchStatement)
        .map(|r| r.id())
        .collect();
    let mut listed = ERROR_RULES.to_vec();
    catalogue.sort_unstable();
    listed.sort_unstable();
    assert_eq!(listed, catalogue);
}

#[test]
fn destructive_corpus_cases_are_each_an_error_with_the_expected_rule() {
    let cases = parse_corpus(DESTRUCTIVE);
    assert!(
        cases.len() >= 60,
        "the destructive corpus needs at least 60 cases, has {}",
        cases.len()
    );
    // every error rule is covered, several times where a rule has several spellings
    let mut per_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for case in &cases {
        assert!(
            ERROR_RULES.contains(&case.rule.as_str()),
            "case {} (line {}) expects unknown rule {}",
            case.name,
            case.line,
            case.rule
        );
        *per_rule.entry(case.rule.as_str()).or_default() += 1;
    }
    for rule in ERROR_RULES {
        let min = if *rule == Rule::EmptyBody.id() { 2 } else { 3 };
        let n = per_rule.get(rule).copied().unwrap_or(0);
        assert!(
            n >= min,
            "rule {rule} has {n} corpus case(s), want >= {min}"
        );
    }
    println!(
        "destructive corpus: {} cases, per rule {per_rule:?}",
        cases.len()
    );

    let c = Cluster::shared();
    let db = c.fresh_db("lint_destructive");
    let mut carol = c.connect(&db, "carol");
    let mut failures = Vec::new();
    for case in &cases {
        let src = corpus_source(&case.body);
        match lint(&mut carol, &src) {
            Err(e) => failures.push(format!(
                "{} (line {}): expected {}, got an SQL error: {e}",
                case.name, case.line, case.rule
            )),
            Ok(findings) => {
                let has_error = findings.iter().any(|f| f.severity == "error");
                let has_rule = findings.iter().any(|f| f.rule == case.rule);
                let expected_severity_ok = findings
                    .iter()
                    .filter(|f| f.rule == case.rule)
                    .all(|f| f.severity == "error");
                if !(has_error && has_rule && expected_severity_ok) {
                    failures.push(format!(
                        "{} (line {}): expected {} (error), got {}",
                        case.name,
                        case.line,
                        case.rule,
                        summary(&findings)
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} destructive corpus case(s) failed:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}

#[test]
fn idempotent_corpus_cases_have_no_finding_at_all() {
    let cases = parse_corpus(IDEMPOTENT);
    assert!(
        cases.len() >= 30,
        "the idempotent corpus needs at least 30 cases, has {}",
        cases.len()
    );
    for case in &cases {
        assert_eq!(
            case.rule, "ok",
            "idempotent case {} (line {}) must be `-- case: ok <name>`",
            case.name, case.line
        );
    }
    let c = Cluster::shared();
    let db = c.fresh_db("lint_idempotent");
    let mut carol = c.connect(&db, "carol");
    let mut failures = Vec::new();
    for case in &cases {
        match lint(&mut carol, &corpus_source(&case.body)) {
            Err(e) => failures.push(format!(
                "{} (line {}): expected no finding, got an SQL error: {e}",
                case.name, case.line
            )),
            Ok(findings) if !findings.is_empty() => failures.push(format!(
                "{} (line {}): expected no finding, got {} — {}",
                case.name,
                case.line,
                summary(&findings),
                findings
                    .iter()
                    .map(|f| f.message.as_str())
                    .collect::<Vec<_>>()
                    .join(" | ")
            )),
            Ok(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} idempotent corpus case(s) failed:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}

// --------------------------------------------------------------------------------- positions

#[test]
fn positions_are_file_lines_and_columns() {
    let c = Cluster::shared();
    let db = c.fresh_db("lint_positions");
    let mut carol = c.connect(&db, "carol");
    // header lines 1-3, blank lines 4-6, the first DROP at line 7 column 5
    let src = "-- repair: positions\n-- title: Positions\n-- description: a header of three lines\n\
               \n\n\n    DROP TABLE public.a; DROP TABLE public.b;\n\
               /* lead */ TRUNCATE public.c;\n\tDELETE FROM public.é_table WHERE x = 'ü'; UPDATE public.d SET x = 1;\n";
    let f = lint(&mut carol, src).unwrap();
    let got: Vec<(&str, Option<i32>, i32, i32)> = f
        .iter()
        .map(|f| (f.rule.as_str(), f.statement, f.line, f.col))
        .collect();
    // "    DROP TABLE public.a; " is 25 characters: the second DROP starts at column 26
    // the DELETE line starts with a tab (column 2); "\tDELETE FROM public.é_table WHERE x = 'ü'; "
    // is 43 characters, so UPDATE starts at column 44 (columns count characters, not bytes)
    assert_eq!(
        got,
        vec![
            (Rule::BanDrop.id(), Some(1), 7, 5),
            (Rule::BanDrop.id(), Some(2), 7, 26),
            (Rule::BanTruncate.id(), Some(3), 8, 12),
            (Rule::BanDelete.id(), Some(4), 9, 2),
            (Rule::BanUpdate.id(), Some(5), 9, 44),
        ],
        "{f:#?}"
    );
    assert!(f.iter().all(|f| f.severity == "error"));
}

#[test]
fn a_syntax_error_is_one_finding_with_the_parsers_message_and_position() {
    let c = Cluster::shared();
    let db = c.fresh_db("lint_syntax");
    let mut carol = c.connect(&db, "carol");
    let src = "-- repair: syn\n-- title: t\nCREATE TABLE IF NOT EXISTS public.ok (id int);\n\
               SELECT 1 FROM WHERE x;\n";
    let f = lint(&mut carol, src).unwrap();
    assert_eq!(f.len(), 1, "{f:#?}");
    let s = &f[0];
    assert_eq!(
        (s.rule.as_str(), s.severity.as_str(), s.line, s.col),
        (Rule::SyntaxError.id(), "error", 4, 15),
        "{s:#?}"
    );
    assert!(
        s.message.contains("syntax error at or near \"WHERE\""),
        "{}",
        s.message
    );
    // columns count characters: 'é' is two bytes but one column
    let src = "-- repair: syn\n-- title: t\n\nSELECT 'é' FROM WHERE;\n";
    let f = lint(&mut carol, src).unwrap();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        (f[0].rule.as_str(), f[0].line, f[0].col),
        (Rule::SyntaxError.id(), 4, 17),
        "{f:#?}"
    );
    // an unterminated dollar quote reports where it starts
    let src = "-- repair: syn\n-- title: t\nSELECT 1;\n  SELECT $body$ never closed;\n";
    let f = lint(&mut carol, src).unwrap();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        (f[0].rule.as_str(), f[0].line, f[0].col),
        (Rule::SyntaxError.id(), 4, 10),
        "{f:#?}"
    );
    assert!(
        f[0].message.contains("unterminated dollar-quoted string"),
        "{}",
        f[0].message
    );
}

// ------------------------------------------------------------------- registration and guard 7

#[test]
fn register_stores_findings_and_execute_refuses_lint_errors() {
    let c = Cluster::shared();
    let db = c.fresh_db("lint_register");
    let mut carol = c.connect(&db, "carol");
    let src = "-- repair: dropper\n-- title: drops and a DO block\n\
               DROP TABLE IF EXISTS public.gone;\nDO $$ BEGIN NULL; END $$;\nTRUNCATE public.t;\n";
    let (_, hash, status) = register(&mut carol, src);
    assert_eq!(status, "new");
    let mut su = c.connect(&db, "postgres");
    let row = su
        .query_one(
            "SELECT lint_errors, lint_warnings FROM repair.playbooks WHERE id = 'dropper'",
            &[],
        )
        .unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, i32>(1)), (2, 1));
    let stored: Value = one(
        &mut su,
        "SELECT lint FROM repair.playbook_versions WHERE playbook_id = 'dropper'",
    );
    let rules: Vec<(&str, i64)> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["rule"].as_str().unwrap(), f["line"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        rules,
        vec![
            (Rule::BanDrop.id(), 3),
            (Rule::WarnDynamicSql.id(), 4),
            (Rule::BanTruncate.id(), 5)
        ]
    );
    let mut alice = c.connect(&db, "alice");
    let e = db_error(execute(&mut alice, "dropper", &hash, "TICKET-1 try it"));
    assert_eq!(e.code().code(), "RP007");
    assert!(e.message().starts_with("LINT_REJECTED:"), "{}", e.message());
    // a playbook with only a warning is not refused
    let warn_only = "-- repair: warn_only\n-- title: t\nDO $$ BEGIN NULL; END $$;\n";
    let (_, h2, _) = register(&mut carol, warn_only);
    let r = execute(&mut alice, "warn_only", &h2, "TICKET-2").unwrap();
    assert_eq!(r["status"], "SUCCESS", "{r}");
}

#[test]
fn a_current_waiver_lets_a_delete_run_and_an_expired_one_does_not() {
    let c = Cluster::shared();
    let db = c.fresh_db("lint_waiver");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(
        "CREATE TABLE public.dups (id int); INSERT INTO public.dups VALUES (1), (2), (3);
         GRANT SELECT, DELETE ON public.dups TO alice;",
    )
    .unwrap();
    let mut carol = c.connect(&db, "carol");
    let mut alice = c.connect(&db, "alice");
    let waived = "-- repair: dedupe\n-- title: Remove known duplicates\n\
                  -- waive: ban-delete until 2999-12-31 because TICKET-9 cleanup of known duplicates\n\
                  DELETE FROM public.dups WHERE id > 1;\n";
    // still reported, as `waived` (never `error`): the file's own current waiver lifts it
    let f = lint(&mut carol, waived).unwrap();
    assert_eq!(summary(&f), "[ban-delete/waived]");
    let (_, hash, _) = register(&mut carol, waived);
    let r = execute(&mut alice, "dedupe", &hash, "TICKET-9 remove duplicates").unwrap();
    assert_eq!(r["status"], "SUCCESS", "{r}");
    assert_eq!(one::<i64>(&mut su, "SELECT count(*) FROM public.dups"), 1);
    let want = json!({"rule": Rule::BanDelete.id(), "until": "2999-12-31",
                      "because": "TICKET-9 cleanup of known duplicates"});
    assert_eq!(r["waivers"], json!([want.clone()]), "{r}");
    let audit: Value = su
        .query_one(
            "SELECT waivers FROM repair.runs WHERE run_id::text = $1",
            &[&r["run_id"].as_str().unwrap()],
        )
        .unwrap()
        .get(0);
    assert_eq!(audit, json!([want]));

    // the same playbook with an expired waiver: refused again
    let expired = waived.replace("2999-12-31", "2000-01-01");
    let (version, hash2, status) = register(&mut carol, &expired);
    assert_eq!((version, status.as_str()), (2, "updated"));
    assert_ne!(hash, hash2);
    let e = db_error(execute(&mut alice, "dedupe", &hash2, "TICKET-9 again"));
    assert_eq!(e.code().code(), "RP007");
    assert!(e.message().starts_with("LINT_REJECTED:"), "{}", e.message());
    assert_eq!(one::<i64>(&mut su, "SELECT count(*) FROM repair.runs"), 1);
}

#[test]
fn a_drop_waiver_passes_guard_7_but_the_runtime_still_refuses_the_drop() {
    let c = Cluster::shared();
    let db = c.fresh_db("lint_drop_waiver");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(
        "CREATE TABLE public.victim (id int); ALTER TABLE public.victim OWNER TO alice",
    )
    .unwrap();
    let src = "-- repair: drop_victim\n-- title: t\n\
               -- waive: ban-drop until 2999-12-31 because TICKET-10 the table is obsolete\n\
               DROP TABLE public.victim;\n";
    let (_, hash, _) = register(&mut c.connect(&db, "carol"), src);
    let mut alice = c.connect(&db, "alice");
    let r = execute(&mut alice, "drop_victim", &hash, "TICKET-10").expect("guards pass");
    assert_eq!(r["status"], "FAILED", "{r}");
    let msg = r["error_message"].as_str().unwrap_or_default();
    assert!(msg.contains("RUNTIME_BLOCKED"), "{r}");
    assert!(one::<bool>(
        &mut su,
        "SELECT to_regclass('public.victim') IS NOT NULL"
    ));
    let (status, message): (String, String) = su
        .query_one(
            "SELECT status, error_message FROM repair.runs WHERE playbook_id = 'drop_victim'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(status, "FAILED");
    assert!(message.contains("RUNTIME_BLOCKED"), "{message}");
}

#[test]
fn a_waiver_is_part_of_the_hash() {
    let c = Cluster::shared();
    let db = c.fresh_db("lint_waiver_hash");
    let mut carol = c.connect(&db, "carol");
    let plain = "-- repair: hashed\n-- title: t\nDELETE FROM public.x WHERE id < 0;\n";
    let waived = "-- repair: hashed\n-- title: t\n\
                  -- waive: ban-delete until 2999-12-31 because TICKET-3 bad rows\n\
                  DELETE FROM public.x WHERE id < 0;\n";
    let (v1, h1, s1) = register(&mut carol, plain);
    let (v2, h2, s2) = register(&mut carol, waived);
    assert_eq!((v1, s1.as_str(), v2, s2.as_str()), (1, "new", 2, "updated"));
    assert_ne!(h1, h2);
    let offline: String = carol
        .query_one("SELECT repair.hash($1)", &[&waived])
        .unwrap()
        .get(0);
    assert_eq!(offline, h2);
    // another date or another reason is another hash too
    let later = waived.replace("2999-12-31", "2999-12-30");
    let h3: String = carol
        .query_one("SELECT repair.hash($1)", &[&later])
        .unwrap()
        .get(0);
    assert_ne!(h3, h2);
}

#[test]
fn preview_shows_lint_findings_with_waived_until_and_the_waivers() {
    let c = Cluster::shared();
    let db = c.fresh_db("lint_preview");
    let src = "-- repair: previewed\n-- title: t\n\
               -- waive: ban-delete until 2999-12-31 because TICKET-4 bad rows\n\
               DELETE FROM public.x WHERE id < 0;\nDO $$ BEGIN NULL; END $$;\nTRUNCATE public.y;\n";
    register(&mut c.connect(&db, "carol"), src);
    let mut alice = c.connect(&db, "alice");
    let p: Value = alice
        .query_one("SELECT repair.preview('previewed')", &[])
        .unwrap()
        .get(0);
    let lint = p["lint"].as_array().expect("lint array");
    let by_rule = |rule: &str| {
        lint.iter()
            .find(|f| f["rule"] == rule)
            .unwrap_or_else(|| panic!("no {rule} in {p}"))
            .clone()
    };
    let delete = by_rule(Rule::BanDelete.id());
    assert_eq!(delete["waived_until"], "2999-12-31", "{p}");
    assert_eq!(
        (delete["line"].as_i64(), delete["statement"].as_i64()),
        (Some(4), Some(1))
    );
    assert_eq!(
        by_rule(Rule::BanTruncate.id())["waived_until"],
        Value::Null,
        "{p}"
    );
    assert_eq!(
        by_rule(Rule::WarnDynamicSql.id())["severity"],
        "warning",
        "{p}"
    );
    assert_eq!(
        p["waivers"],
        json!([{"rule": Rule::BanDelete.id(), "until": "2999-12-31", "because": "TICKET-4 bad rows"}])
    );
    let g7 = p["guards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["guard"] == 7)
        .unwrap()
        .clone();
    assert_eq!(g7["verdict"], "fail", "{p}");
    assert_eq!(p["would_run"], false);
}

// -------------------------------------------------------------------------------- robustness

#[test]
fn ten_thousand_statements_lint_clean_in_reasonable_time() {
    let c = Cluster::shared();
    let db = c.fresh_db("lint_huge");
    let mut carol = c.connect(&db, "carol");
    let mut src = String::from("-- repair: huge\n-- title: ten thousand tables\n");
    for i in 0..10_000 {
        src.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS public.t{i} (id int);\n"
        ));
    }
    let t = Instant::now();
    let f = lint(&mut carol, &src).unwrap();
    let took = t.elapsed();
    println!(
        "repair.lint of 10,000 statements ({} bytes): {took:?}",
        src.len()
    );
    assert!(f.is_empty(), "{}", summary(&f[..f.len().min(20)]));
    assert!(took < Duration::from_secs(60), "took {took:?}");
    // and one destructive statement in the middle is found at its line
    let mut lines: Vec<String> = src.lines().map(str::to_string).collect();
    lines[5002] = "DROP TABLE public.t5000;".into();
    let f = lint(&mut carol, &lines.join("\n")).unwrap();
    assert_eq!(
        f.iter()
            .map(|f| (f.rule.as_str(), f.statement, f.line))
            .collect::<Vec<_>>(),
        vec![(Rule::BanDrop.id(), Some(5001), 5003)]
    );
}

/// Outcome of one call that may fail: Ok(None) for success, Ok(Some(code)) for a clean SQL
/// error; panics when the connection is gone (the backend crashed).
fn sql_outcome<T>(c: &mut Client, r: Result<T, postgres::Error>, what: &str) -> Option<String> {
    match r {
        Ok(_) => None,
        Err(e) => {
            let code = e
                .as_db_error()
                .map(|d| d.code().code().to_string())
                .unwrap_or_else(|| panic!("{what}: not a server error (crash?): {e}"));
            c.batch_execute("SELECT 1")
                .unwrap_or_else(|e| panic!("{what}: session unusable after {code}: {e}"));
            Some(code)
        }
    }
}

#[test]
fn deep_nesting_gives_a_finding_or_a_clean_error() {
    let c = Cluster::shared();
    let db = c.fresh_db("lint_deep");
    let mut carol = c.connect(&db, "carol");
    let header = "-- repair: deep\n-- title: t\n";
    let parens = format!(
        "{header}SELECT {}1{};\n",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    let r = lint(&mut carol, &parens);
    match &r {
        Ok(f) => println!("5000 parentheses: {}", summary(f)),
        Err(e) => println!("5000 parentheses: {e}"),
    }
    sql_outcome(&mut carol, r, "5000 parentheses");
    // deeper than the parser's stack: a syntax-error finding or a clean error
    let deeper = format!(
        "{header}SELECT {}1{};\n",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let r = lint(&mut carol, &deeper);
    match &r {
        Ok(f) => {
            println!("100,000 parentheses: {}", summary(f));
            assert!(
                f.iter().all(|f| f.rule == Rule::SyntaxError.id()),
                "{}",
                summary(f)
            );
        }
        Err(e) => println!("100,000 parentheses: {e}"),
    }
    sql_outcome(&mut carol, r, "100,000 parentheses");

    // 2,000 nested CTEs, harmless, then with a DELETE at the bottom: that one must never
    // come back clean
    let nest = |inner: &str| {
        let mut s = inner.to_string();
        for i in (0..2000).rev() {
            s = format!("WITH c{i} AS ({s}) SELECT * FROM c{i}");
        }
        format!("{header}{s};\n")
    };
    let harmless = nest("SELECT 1");
    let r = lint(&mut carol, &harmless);
    match &r {
        Ok(f) => println!("2000 nested CTEs: {}", summary(&f[..f.len().min(5)])),
        Err(e) => println!("2000 nested CTEs: {e}"),
    }
    sql_outcome(&mut carol, r, "2000 nested CTEs");
    let hidden = nest("DELETE FROM public.t RETURNING 1");
    let r = lint(&mut carol, &hidden);
    if let Ok(f) = &r {
        println!(
            "2000 nested CTEs over a DELETE: {}",
            summary(&f[..f.len().min(5)])
        );
        assert!(
            f.iter().any(|f| f.severity == "error"),
            "a DELETE under 2000 CTEs linted clean: {}",
            summary(f)
        );
    }
    sql_outcome(&mut carol, r, "2000 nested CTEs over a DELETE");
    // registration of the same: stored with an error finding, or refused cleanly
    match carol.query_one("SELECT hash FROM repair.register($1)", &[&hidden]) {
        Ok(row) => {
            let hash: String = row.get(0);
            let mut su = c.connect(&db, "postgres");
            let errors: i32 = one(
                &mut su,
                "SELECT lint_errors FROM repair.playbooks WHERE id = 'deep'",
            );
            assert!(errors > 0, "registered without lint errors");
            let e = db_error(execute(&mut c.connect(&db, "alice"), "deep", &hash, "r"));
            assert_eq!(e.code().code(), "RP007");
        }
        Err(e) => {
            println!("register of 2000 nested CTEs: {e}");
            sql_outcome::<()>(&mut carol, Err(e), "register deep");
        }
    }
    carol.batch_execute("SELECT 1").expect("session usable");
}

/// xorshift64: deterministic, so a failing input can be reproduced from its index.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

const WORDS: &[&str] = &[
    "SELECT",
    "DROP",
    "TABLE",
    "DELETE",
    "FROM",
    "UPDATE",
    "SET",
    "INSERT",
    "INTO",
    "VALUES",
    "WITH",
    "AS",
    "ON",
    "CONFLICT",
    "DO",
    "NOTHING",
    "CREATE",
    "IF",
    "NOT",
    "EXISTS",
    "RULE",
    "INSTEAD",
    "EXPLAIN",
    "ANALYZE",
    "PREPARE",
    "EXECUTE",
    "MERGE",
    "USING",
    "WHEN",
    "MATCHED",
    "THEN",
    "COPY",
    "PROGRAM",
    "TO",
    "VACUUM",
    "CONCURRENTLY",
    "INDEX",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "ROLE",
    "GRANT",
    "ALTER",
    "SYSTEM",
    "TRUNCATE",
    "ONLY",
    "CASCADE",
    "RESET",
    "ALL",
    "LOCAL",
    "SESSION",
    "AUTHORIZATION",
    "FUNCTION",
    "RETURNS",
    "LANGUAGE",
    "TRIGGER",
    "VIEW",
    "OR",
    "REPLACE",
    "DECLARE",
    "CURSOR",
    "FOR",
    "(",
    ")",
    "(",
    ")",
    ",",
    ";",
    ";",
    "*",
    "=",
    "1",
    "42",
    "'x'",
    "'it''s'",
    "$$",
    "$$",
    "$a$",
    "$a$",
    "$1",
    "\"Q\"",
    "\"q\"\"q\"",
    "public.t",
    "t",
    "x",
    "/*",
    "*/",
    "--",
    "\n",
    "E'\\\\'",
    "U&\"\\0061\"",
    "B'101'",
    "X'FF'",
    "::int",
    "[1]",
    "%",
    "^",
    "||",
    "->>",
    "?",
    "@",
    "#",
    "\\",
    "\t",
];

const UNICODE: &[char] = &[
    'é',
    'ß',
    '漢',
    '𝄞',
    '😀',
    '\u{200b}',
    '\u{feff}',
    '\u{fffd}',
    '\u{7f}',
    '\u{85}',
    '\u{2028}',
    '\u{a0}',
    '\u{ffff}',
    '\u{10ffff}',
    '\u{301}',
];

fn random_text(rng: &mut Rng, max_len: usize) -> String {
    let len = rng.below(max_len + 1);
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        let b = rng.next() as u8;
        let ch = match b {
            0 => '\u{1}',
            1..=0x1f => b as char,
            0x20..=0x7e => b as char,
            0x7f..=0xbf => UNICODE[rng.below(UNICODE.len())],
            _ => char::from_u32(1 + (rng.next() % 0x10_fffe) as u32).unwrap_or('\u{fffd}'),
        };
        s.push(ch);
    }
    s
}

fn keyword_soup(rng: &mut Rng) -> String {
    let n = 1 + rng.below(60);
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(rng.pick(WORDS));
        s.push(if rng.chance(8) { '\n' } else { ' ' });
    }
    s
}

const HEADER_KEYS: &[&str] = &[
    "repair",
    "title",
    "description",
    "environments",
    "requires-before",
    "requires-after",
    "lock-timeout",
    "statement-timeout",
    "waive",
    "check",
    "severity",
    "tags",
    "repiar",
    "Repair",
    "x",
];
const HEADER_VALUES: &[&str] = &[
    "fuzz",
    "Fuzz title",
    "staging",
    "prod",
    "replica",
    "staging, prod",
    "public.t",
    "t",
    "\"Q\".\"t\"",
    "2s",
    "5min",
    "10ms",
    "-1s",
    "99999999999min",
    "ban-delete until 2999-12-31 because x",
    "ban-drop until 2000-02-30 because y",
    "nope until 2999-12-31 because z",
    "critical",
    "important",
    "a, b",
    "",
    " ",
    "é漢😀",
];

fn header_like(rng: &mut Rng) -> String {
    let n = rng.below(8);
    let mut s = String::new();
    for _ in 0..n {
        let key = rng.pick(HEADER_KEYS);
        let value = if rng.chance(4) {
            random_text(rng, 30).replace(['\n', '\r'], " ")
        } else {
            rng.pick(HEADER_VALUES).to_string()
        };
        let sep = rng.pick(&["-- ", "--", "--  ", "- ", " -- ", "--\t"]);
        s.push_str(&format!("{sep}{key}:{value}\n"));
    }
    s.push_str(&keyword_soup(rng));
    s
}

const TRUNCATED: &[&str] = &[
    "SELECT $tag$ never closed",
    "SELECT $$",
    "SELECT $",
    "SELECT $a",
    "SELECT $a$ x $b$",
    "/* unterminated",
    "/* /* nested */ still open",
    "SELECT 'unterminated",
    "SELECT E'\\",
    "SELECT \"unterminated",
    "SELECT U&'\\D800'",
    "SELECT U&\"\\+110000\"",
    "SELECT E'\\xff'",
    "SELECT E'\\u0000'",
    "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1",
    "DO $$ BEGIN",
    "WITH x AS (",
    "COPY t FROM STDIN;\n1\n\\.",
    "SELECT 1e999999999999",
    "SELECT 99999999999999999999999999999999999999::int",
];

fn truncated_tokens(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..1 + rng.below(3) {
        s.push_str(rng.pick(TRUNCATED));
        s.push_str(rng.pick(&[" ", "\n", ";", "; "]));
    }
    s
}

const VALID: &str = "-- repair: mutant\n-- title: A valid playbook\n-- environments: staging\n\
                     -- waive: ban-delete until 2999-12-31 because TICKET-1 x\n\
                     CREATE TABLE IF NOT EXISTS public.t (id int, note text DEFAULT $$x$$);\n\
                     DELETE FROM public.t WHERE id < 0; /* c */ SELECT 'q' -- e\n;\n";

fn mutated(rng: &mut Rng) -> String {
    let mut chars: Vec<char> = VALID.chars().collect();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(chars.len() + 1);
        match rng.below(3) {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 if at < chars.len() => {
                chars[at] = random_text(rng, 1).chars().next().unwrap_or('$');
            }
            _ => {
                let insert = rng.pick(WORDS);
                for (k, ch) in insert.chars().enumerate() {
                    chars.insert(at + k, ch);
                }
            }
        }
    }
    chars.into_iter().collect()
}

/// The i-th garbage input: raw garbage, or a valid header (playbook id `fuzz_{i}` for register)
/// in front of garbage so that it reaches the SQL parser and the classifier.
fn garbage(rng: &mut Rng, i: usize) -> String {
    let body = match i % 5 {
        0 => random_text(rng, 400),
        1 => keyword_soup(rng),
        2 => header_like(rng),
        3 => truncated_tokens(rng),
        _ => mutated(rng),
    };
    let s = if i % 5 != 2 && i % 5 != 4 && rng.chance(2) {
        format!("-- repair: fuzz_{i}\n-- title: fuzz {i}\n{body}")
    } else {
        body
    };
    assert!(!s.contains('\0'));
    s
}

#[test]
fn hundreds_of_garbage_inputs_never_crash_the_backend() {
    let c = Cluster::shared();
    let db = c.fresh_db("lint_fuzz");
    let mut su = c.connect(&db, "postgres");
    let started: String = one(&mut su, "SELECT pg_postmaster_start_time()::text");
    let mut carol = c.connect(&db, "carol");
    const N: usize = 400;
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut bad = Vec::new();
    for (function, seed) in [
        ("lint", 0x9e37_79b9_7f4a_7c15_u64),
        ("register", 0x2545_f491_4f6c_dd1d),
    ] {
        let mut rng = Rng(seed);
        for i in 0..N {
            let input = garbage(&mut rng, i);
            let r = match function {
                "lint" => carol
                    .query("SELECT count(*) FROM repair.lint($1)", &[&input])
                    .map(|_| ()),
                _ => carol
                    .query("SELECT * FROM repair.register($1)", &[&input])
                    .map(|_| ()),
            };
            let what = format!("{function} input #{i} {input:?}");
            let outcome = sql_outcome(&mut carol, r, &what);
            let key = format!("{function}: {}", outcome.as_deref().unwrap_or("ok"));
            *outcomes.entry(key).or_default() += 1;
            if let Some(code) = outcome {
                // internal errors (XX…) mean a bug reached the client as a panic or elog
                if code.starts_with("XX") {
                    bad.push(format!("{what}: {code}"));
                }
            }
        }
    }
    println!("garbage outcomes: {outcomes:?}");
    let mut su = c.connect(&db, "postgres");
    let now: String = one(&mut su, "SELECT pg_postmaster_start_time()::text");
    assert_eq!(started, now, "the postmaster restarted: a backend crashed");
    let log = c.log();
    for needle in ["terminated by signal", "server process (PID"] {
        assert!(
            !log.contains(needle),
            "server log has a crash line ({needle}):\n{}",
            log.lines()
                .filter(|l| l.contains(needle))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(bad.is_empty(), "internal errors:\n{}", bad.join("\n"));
}

#[test]
fn invalid_utf8_and_nul_are_rejected_before_lint() {
    let c = Cluster::shared();
    let db = c.fresh_db("lint_utf8");
    let mut carol = c.connect(&db, "carol");
    // 0xFF is never valid UTF-8: convert_from rejects it before repair.lint sees anything
    let e = db_error(carol.query(
        "SELECT * FROM repair.lint(convert_from('\\x2d2d207265706169723a20780aff'::bytea, 'UTF8'))",
        &[],
    ));
    assert_eq!(e.code().code(), "22021", "{}", e.message());
    let e = db_error(carol.query(
        "SELECT * FROM repair.register(convert_from('\\xff'::bytea, 'UTF8'))",
        &[],
    ));
    assert_eq!(e.code().code(), "22021", "{}", e.message());
    carol.batch_execute("SELECT 1").expect("session usable");
    // A NUL cannot be part of a PostgreSQL text value at all: chr(0) is refused, and a text
    // parameter holding one is rejected by the server's input checks (repair.lint never sees
    // it; sqlparse's own NUL check is a second line of defence that SQL cannot reach).
    let e = db_error(carol.query(
        "SELECT * FROM repair.lint('-- repair: x' || chr(10) || '-- title: t' || chr(10) || 'SELECT 1' || chr(0))",
        &[],
    ));
    assert_eq!(e.code().code(), "54000", "{}", e.message());
    let with_nul = "-- repair: x\n-- title: t\nSELECT 1;\0DROP TABLE t;\n";
    let e = db_error(lint(&mut carol, with_nul));
    assert_eq!(e.code().code(), "22021", "{}", e.message());
    carol.batch_execute("SELECT 1").expect("session usable");
}

#[test]
fn repair_lint_applies_the_files_own_waivers() {
    let c = Cluster::shared();
    let db = c.fresh_db("lint_waived");
    let mut a = c.connect(&db, "alice");
    let body = "CREATE TABLE public.t_waived (id int);";
    let current = format!(
        "-- repair: waived_ok\n-- title: t\n-- waive: require-if-not-exists until 2099-12-31 because legacy table\n{body}\n"
    );
    let findings = lint(&mut a, &current).unwrap();
    let f = findings
        .iter()
        .find(|f| f.rule == Rule::RequireIfNotExists.id())
        .expect("the finding is still reported");
    assert_eq!(f.severity, "waived", "{}", summary(&findings));
    assert!(
        f.message.contains("2099-12-31") && f.message.contains("legacy table"),
        "{}",
        f.message
    );
    assert!(
        findings.iter().all(|f| f.severity != "error"),
        "{}",
        summary(&findings)
    );

    let expired = current.replace("2099-12-31", "2001-01-01");
    let findings = lint(&mut a, &expired).unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f.rule == Rule::RequireIfNotExists.id() && f.severity == "error"),
        "an expired waiver lifts nothing: {}",
        summary(&findings)
    );

    // A waiver of another rule lifts nothing here either.
    let other = current.replace("require-if-not-exists until", "ban-delete until");
    let findings = lint(&mut a, &other).unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f.rule == Rule::RequireIfNotExists.id() && f.severity == "error"),
        "{}",
        summary(&findings)
    );
}

/// Online playbooks: the online forms pass, every other rule stands, and `-- batch` lines must
/// mark a statement that can run again until it affects no rows.
#[test]
fn online_lint_allows_only_the_online_forms() {
    let c = Cluster::shared();
    let db = c.fresh_db("lint_online");
    let mut carol = c.connect(&db, "carol");
    let online = |body: &str| format!("-- repair: o\n-- title: t\n-- mode: online\n{body}\n");
    let errors = |carol: &mut Client, src: &str| -> Vec<String> {
        lint(carol, src)
            .unwrap()
            .into_iter()
            .filter(|f| f.severity == "error")
            .map(|f| format!("{}@{}", f.rule, f.line))
            .collect()
    };
    let clean: &[&str] = &[
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON public.t (x);",
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON public.t (x) WHERE x > 0;",
        "REINDEX INDEX CONCURRENTLY public.i;",
        "REINDEX (VERBOSE) TABLE CONCURRENTLY public.t;",
        "ALTER TABLE public.t ADD CONSTRAINT t_fk FOREIGN KEY (x) REFERENCES public.p (id) NOT VALID;\nALTER TABLE public.t VALIDATE CONSTRAINT t_fk;",
        "-- batch\nINSERT INTO public.t SELECT 1 WHERE false;",
    ];
    for body in clean {
        assert_eq!(
            errors(&mut carol, &online(body)),
            Vec::<String>::new(),
            "{body}"
        );
    }
    let refused: &[(&str, &str)] = &[
        (
            "CREATE INDEX CONCURRENTLY i ON public.t (x);",
            "require-if-not-exists@4",
        ),
        ("DROP INDEX CONCURRENTLY IF EXISTS public.i;", "ban-drop@4"),
        ("VACUUM public.t;", "ban-non-transactional@4"),
        ("REINDEX SCHEMA public;", "ban-non-transactional@4"),
        ("BEGIN;", "ban-transaction-control@4"),
        ("SET ROLE bob;", "ban-role-change@4"),
        ("TRUNCATE public.t;", "ban-truncate@4"),
        (
            "-- batch\nUPDATE public.t SET x = 1 WHERE false;",
            "ban-update@5",
        ),
        ("SELECT 1;\n-- batch", "batch-statement@5"),
        (
            "-- batch\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON public.t (x);",
            "batch-statement@5",
        ),
        ("SELECT 1 +\n-- batch\n2;", "batch-statement@5"),
    ];
    for (body, want) in refused {
        let got = errors(&mut carol, &online(body));
        assert!(
            got.contains(&want.to_string()),
            "{body}: want {want}, got {got:?}"
        );
    }
    // a transactional playbook still refuses the online forms, and points at the online mode
    let tx = lint(
        &mut carol,
        "-- repair: t\n-- title: t\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON public.t (x);\n",
    )
    .unwrap();
    let f = tx
        .iter()
        .find(|f| f.rule == "ban-non-transactional")
        .expect("refused");
    assert!(f.message.contains("mode: online"), "{}", f.message);
    // and a batch line or pause without the online mode is a parse error naming the line
    let e = carol
        .query(
            "SELECT * FROM repair.lint($1)",
            &[&"-- repair: t\n-- title: t\nSELECT 1;\n-- batch\nSELECT 2;\n"],
        )
        .unwrap_err();
    let message = e
        .as_db_error()
        .expect("a server error")
        .message()
        .to_string();
    assert!(message.contains("line 4"), "{message}");
}
