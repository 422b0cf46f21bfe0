//! Terminal safety (issue 14): whatever the database, a file or the server hands the CLI, its
//! human output never carries a raw control or bidi character to the operator's terminal, and
//! `--json` keeps the exact text. Hostile strings are planted straight into the extension's
//! tables by the superuser (the table owner, whom the insert guard admits), as an older version
//! or a hand-written row would have left them, or produced at run time by SQL whose own text is
//! plain ASCII.

mod common;
use common::*;

use std::process::Output;

use pg_repair_tests::Cluster;
use postgres::Client;
use serde_json::{json, Value};

/// ESC CSI colour, OSC 0 window title, OSC 52 clipboard write, OSC 8 hyperlink, BEL, a CR that
/// overwrites the line, bidi override and isolate, an 8-bit CSI (C1) and DEL.
const HOSTILE: &str = "evil \u{1b}[31mRED\u{1b}[0m \u{1b}]0;pwned\u{7} \
                       \u{1b}]52;c;cHduZWQ=\u{7} \u{1b}]8;;http://evil.example/\u{7}link\u{1b}]8;;\u{7} \
                       fake ok\rOVERWRITE \u{202e}exe.txt\u{2066}x\u{2069} \u{9b}2J \u{7f}end";

/// The escapes every hostile string must show up as.
const ESCAPES: &[&str] = &[
    "\\x1b[31mRED",
    "\\x1b]52;c;cHduZWQ=\\x07",
    "\\x1b]8;;http://evil.example/\\x07link",
    "fake ok\\rOVERWRITE",
    "\\u202eexe.txt\\u2066x\\u2069",
    "\\u009b2J",
    "\\x7fend",
];

/// The raw characters a terminal could act on, as they appear in the output: any C0 byte but
/// line feed and tab, DEL, a C1 control (U+0080–U+009F) and the bidi embedding / override /
/// isolate characters U+202A–U+202E and U+2066–U+2069.
fn raw_dangers(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        if (*b < 0x20 && *b != b'\n' && *b != b'\t') || *b == 0x7f {
            found.push(format!("byte 0x{b:02x} at {i}"));
        }
    }
    for (i, c) in String::from_utf8_lossy(bytes).char_indices() {
        if matches!(c, '\u{80}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            found.push(format!("U+{:04X} at char offset {i}", c as u32));
        }
    }
    found
}

#[track_caller]
fn assert_safe(out: &Output) {
    assert_no_panic(out);
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let found = raw_dangers(bytes);
        assert!(
            found.is_empty(),
            "raw control/bidi characters on {name}: {found:?}\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout).escape_debug(),
            String::from_utf8_lossy(&out.stderr).escape_debug(),
        );
    }
}

/// Safe, and the hostile text is there, escaped, on stdout + stderr.
#[track_caller]
fn assert_escaped(out: &Output) {
    assert_safe(out);
    let all = format!("{}{}", stdout_of(out), stderr_of(out));
    for e in ESCAPES {
        assert!(all.contains(e), "escape {e} missing in:\n{all}");
    }
}

/// `--json` output: no raw danger either (C0 escaped by JSON, DEL/C1/bidi as \uXXXX), and the
/// document decodes to exactly the hostile text.
#[track_caller]
fn assert_exact_json(out: &Output) -> Value {
    assert_safe(out);
    let v = json_of(out);
    assert!(
        strings(&v).iter().any(|s| s.contains(HOSTILE)),
        "the exact hostile text is not in the JSON: {v}"
    );
    v
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Object(m) => m.values().flat_map(strings).collect(),
        _ => vec![],
    }
}

/// `'…'` SQL literal of the hostile text built from chr() calls, so the SQL text is plain ASCII.
fn sql_hostile() -> String {
    let mut parts = Vec::new();
    let mut plain = String::new();
    for c in HOSTILE.chars() {
        if c.is_ascii_graphic() || c == ' ' {
            if c == '\'' {
                plain.push('\'');
            }
            plain.push(c);
        } else {
            if !plain.is_empty() {
                parts.push(format!("'{plain}'"));
                plain.clear();
            }
            parts.push(format!("chr({})", c as u32));
        }
    }
    if !plain.is_empty() {
        parts.push(format!("'{plain}'"));
    }
    format!("({})", parts.join(" || "))
}

const UUID: &str = "00000000-0000-4000-8000-00000000000";

/// A playbook version written directly by the superuser, with the hostile text in its title,
/// description, environments, waiver and lint messages, and in string literals and a comment of
/// its body.
fn plant_playbook(su: &mut Client, id: &str) {
    let sql = format!("SELECT '{HOSTILE}' AS x; /* {HOSTILE} */");
    let doc = json!({
        "format": 1, "id": id, "title": HOSTILE, "description": format!("first\n{HOSTILE}"),
        "environments": ["staging", HOSTILE], "requires_before": [], "requires_after": [],
        "lock_timeout_ms": null, "statement_timeout_ms": null,
        "waivers": [{"rule": "ban-drop", "until": "2999-01-01", "because": HOSTILE}],
        "sql": sql,
    });
    let lint = json!([
        {"rule": "warn-dynamic-sql", "severity": "warning", "statement": 1, "line": 3, "col": 1,
         "message": HOSTILE},
    ]);
    su.execute(
        "INSERT INTO repair.playbook_versions (playbook_id, version, kind, hash, canonical, \
         source, body_line, lint, registered_at, registered_by) \
         VALUES ($1, 1, 'playbook', repeat('ab', 32), $2, $3, 3, $4, now(), $5)",
        &[&id, &doc.to_string(), &sql, &lint, &HOSTILE],
    )
    .expect("plant playbook version");
}

#[test]
fn list_escapes_planted_titles_and_json_stays_exact() {
    let c = Cluster::shared();
    let db = c.fresh_db("term_list");
    plant_playbook(&mut c.connect(&db, "postgres"), "planted");

    let out = run(cli(c, &db, "dave").arg("list"));
    expect_code(&out, 0);
    assert_safe(&out);
    // The table shortens titles to 60 characters: the start of the hostile text is there.
    let text = stdout_of(&out);
    assert!(
        text.contains("evil \\x1b[31mRED\\x1b[0m \\x1b]0;pwned\\x07"),
        "{text}"
    );
    assert!(text.contains("\\u202eexe.txt"), "environments: {text}");

    let out = run(cli(c, &db, "dave").args(["--json", "list"]));
    expect_code(&out, 0);
    let v = assert_exact_json(&out);
    assert_eq!(v[0]["title"], HOSTILE);
}

#[test]
fn preview_escapes_title_description_statements_waivers_and_lint() {
    let c = Cluster::shared();
    let db = c.fresh_db("term_preview");
    plant_playbook(&mut c.connect(&db, "postgres"), "planted");

    let out = run(cli(c, &db, "alice").args(["preview", "planted"]));
    expect_code(&out, 0);
    assert_escaped(&out);
    let text = stdout_of(&out);
    // every place the hostile text appears: title, description, statement, waiver, lint
    let n = text.matches("\\x1b]52;c;cHduZWQ=\\x07").count();
    assert!(n >= 5, "{n} escaped copies in:\n{text}");

    let out = run(cli(c, &db, "alice").args(["--json", "preview", "planted"]));
    expect_code(&out, 0);
    let v = assert_exact_json(&out);
    assert_eq!(v["title"], HOSTILE);
}

/// A run row written directly by the superuser with the hostile text in every text column the
/// `runs` table shows.
fn plant_run(su: &mut Client, n: u32) {
    su.execute(
        "INSERT INTO repair.runs (run_id, playbook_id, version, expected_hash, actual_hash, \
         started_at, finished_at, session_user_name, current_user_name, executed_as, \
         declared_role, confirm_prod, reason, request_id, status, error_code, error_message, \
         statements_total, statements_executed, duration_us, row_hash) \
         VALUES ($1::text::uuid, 'planted', 1, $2, $2, now(), now(), $2, $2, $2, $2, false, $2, \
         $2, 'FAILED', $2, $2, 1, 0, 5, 'x')",
        &[&format!("{UUID}{n}"), &HOSTILE],
    )
    .expect("plant run");
}

#[test]
fn runs_escapes_reasons_errors_and_users() {
    let c = Cluster::shared();
    let db = c.fresh_db("term_runs");
    let mut su = c.connect(&db, "postgres");
    plant_run(&mut su, 1);
    // the reason column is cut at 40 characters, the error at 60: a second row whose reason
    // starts with the later parts of the hostile text
    su.execute(
        "INSERT INTO repair.runs (run_id, playbook_id, version, expected_hash, actual_hash, \
         started_at, finished_at, session_user_name, current_user_name, executed_as, \
         declared_role, confirm_prod, reason, status, statements_total, statements_executed, \
         duration_us, row_hash) \
         VALUES ($1::text::uuid, 'planted', 1, 'h', 'h', now(), now(), 'u', 'u', 'u', 'staging', \
         false, $2, 'SUCCESS', 1, 1, 5, 'x')",
        &[
            &format!("{UUID}2"),
            &&HOSTILE[HOSTILE.find("fake").unwrap()..],
        ],
    )
    .expect("plant run 2");

    let out = run(cli(c, &db, "dave").arg("runs"));
    expect_code(&out, 0);
    assert_safe(&out);
    let text = stdout_of(&out);
    for e in [
        "evil \\x1b[31mRED",
        "fake ok\\rOVERWRITE",
        "\\u202eexe.txt\\u2066x\\u2069",
    ] {
        assert!(text.contains(e), "{e} missing in:\n{text}");
    }

    let out = run(cli(c, &db, "dave").args(["--json", "runs"]));
    expect_code(&out, 0);
    let v = assert_exact_json(&out);
    assert!(v.as_array().unwrap().iter().any(|r| r["reason"] == HOSTILE));
}

#[test]
fn audit_verify_escapes_what_it_relays() {
    let c = Cluster::shared();
    let db = c.fresh_db("term_audit");
    let mut su = c.connect(&db, "postgres");
    plant_run(&mut su, 1);

    // a broken chain (the planted row) and a hostile expected head: stdout and stderr
    let out = run(cli(c, &db, "dave").args(["audit", "verify", "--expect-head", HOSTILE]));
    assert!(out.status.code() != Some(0), "{out:?}");
    assert_escaped(&out);
    assert!(stdout_of(&out).contains("BROKEN"), "{}", stdout_of(&out));

    let out =
        run(cli(c, &db, "dave").args(["--json", "audit", "verify", "--expect-head", HOSTILE]));
    assert_exact_json(&out);
}

#[test]
fn execute_escapes_its_result_the_relayed_error_and_notices() {
    let c = Cluster::shared();
    let db = c.fresh_db("term_execute");
    let mut carol = c.connect(&db, "carol");
    // Plain ASCII SQL that produces the hostile text at run time: a notice, then an error.
    let h = sql_hostile();
    let body = format!("DO $$BEGIN RAISE NOTICE '%', {h}; RAISE EXCEPTION '%', {h}; END$$;");
    let (_, hash, _) =
        pg_repair_tests::register(&mut carol, &pg_repair_tests::playbook("hostile_run", &body));

    let out = run(cli(c, &db, "alice").args([
        "execute",
        "hostile_run",
        "--hash",
        &hash,
        "--reason",
        "terminal safety test",
    ]));
    expect_code(&out, 1);
    assert_escaped(&out);
    let (stdout, stderr) = (stdout_of(&out), stderr_of(&out));
    assert!(stdout.contains("FAILED"), "{stdout}");
    // the error in the result (stdout), its relay on stderr, and the notice on stderr
    assert!(stdout.contains("\\x1b]52;c;cHduZWQ=\\x07"), "{stdout}");
    assert!(
        stderr.matches("\\x1b]52;c;cHduZWQ=\\x07").count() >= 2,
        "{stderr}"
    );

    let out = run(cli(c, &db, "alice").args([
        "--json",
        "execute",
        "hostile_run",
        "--hash",
        &hash,
        "--reason",
        "terminal safety test",
    ]));
    expect_code(&out, 1);
    let v = assert_exact_json(&out);
    assert!(
        v["error_message"].as_str().unwrap().contains(HOSTILE),
        "{v}"
    );

    // A server error that echoes hostile input (guard 6 shows the hash given): stderr relay.
    let out = run(cli(c, &db, "alice").args([
        "execute",
        "hostile_run",
        "--hash",
        HOSTILE,
        "--reason",
        "terminal safety test",
    ]));
    expect_code(&out, 1);
    assert_safe(&out);
    assert!(
        stderr_of(&out).contains("HASH_MISMATCH"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        stderr_of(&out).contains("\\x1b[31mred"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn check_escapes_errors_and_json_keeps_samples_exact() {
    let c = Cluster::shared();
    let db = c.fresh_db("term_check");
    let mut su = c.connect(&db, "postgres");
    let h = sql_hostile();
    // One check whose query fails with the hostile text in its error (as a relation name: a data
    // value there would be redacted), one whose sample holds it.
    let ident: String = HOSTILE
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c.to_string()
            } else {
                format!("\\+{:06X}", c as u32)
            }
        })
        .collect();
    let failing = format!(
        "-- check: hostile_error\n-- title: fails\n-- severity: important\n\
         SELECT x FROM public.U&\"{ident}\" s;\n"
    );
    let sampling = format!(
        "-- check: hostile_sample\n-- title: samples\n-- severity: important\n\
         SELECT {h} AS v;\n"
    );
    pg_repair_tests::register(&mut su, &failing);
    pg_repair_tests::register(&mut su, &sampling);

    let out = run(cli(c, &db, "postgres").arg("check"));
    assert_safe(&out);
    let text = stdout_of(&out);
    assert!(text.contains("hostile_error"), "{text}");
    assert!(text.contains("evil \\x1b[31mRED"), "{text}");

    let out = run(cli(c, &db, "postgres").args(["--json", "check"]));
    let v = assert_exact_json(&out);
    let sample = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check_id"] == "hostile_sample")
        .map(|c| c["sample"].to_string())
        .unwrap_or_default();
    assert!(sample.contains("\\u001b]52;c;cHduZWQ=\\u0007"), "{sample}");
}

#[test]
fn baseline_verify_escapes_table_names_and_labels() {
    let c = Cluster::shared();
    let db = c.fresh_db("term_baseline");
    let mut su = c.connect(&db, "postgres");
    let table = format!("public.\"{}\"", HOSTILE.replace('"', "\"\""));
    su.batch_execute(&format!("CREATE TABLE {table} (id int)"))
        .expect("hostile table");
    let label = format!("label {HOSTILE}");
    let out = run(cli(c, &db, "postgres").args(["baseline", "capture", &label]));
    expect_code(&out, 0);
    assert_escaped(&out);
    su.batch_execute(&format!("INSERT INTO {table} VALUES (1)"))
        .expect("drift");

    let out = run(cli(c, &db, "postgres").args(["baseline", "verify", &label]));
    expect_code(&out, 3);
    assert_escaped(&out);

    let out = run(cli(c, &db, "postgres").args(["--json", "baseline", "verify", &label]));
    expect_code(&out, 3);
    assert_exact_json(&out);
}

#[test]
fn install_and_lint_escape_file_names_parse_errors_and_server_messages() {
    let c = Cluster::shared();
    let db = c.fresh_db("term_install");
    let dir = tempfile::tempdir().unwrap();
    // a file name carrying the hostile text (no '/' in it; NUL cannot be in a file name)
    let name = format!("{}.sql", HOSTILE.replace('/', "_"));
    write(
        dir.path(),
        &name,
        "-- repair: fine_one\n-- title: Fine\nCREATE TABLE IF NOT EXISTS public.t (id int);\n",
    );
    let out = run(cli(c, &db, "carol").args(["install", dir.path().to_str().unwrap()]));
    expect_code(&out, 0);
    assert_safe(&out);
    assert!(
        stdout_of(&out).contains("\\x1b[31mRED"),
        "{}",
        stdout_of(&out)
    );
    assert!(
        stdout_of(&out).contains("\\u202eexe.txt"),
        "{}",
        stdout_of(&out)
    );

    // a header with the hostile title: refused locally, line named, escaped
    let bad = write(
        dir.path(),
        "bad.sql",
        format!("-- repair: bad_one\n-- title: {HOSTILE}\nSELECT 1;\n"),
    );
    let out = run(cli(c, &db, "carol").args(["lint", &bad]));
    expect_code(&out, 1);
    assert_safe(&out);
    let all = format!("{}{}", stdout_of(&out), stderr_of(&out));
    assert!(all.contains(":2:"), "{all}");
    assert!(all.contains("U+001B (shown as \\x1b)"), "{all}");

    // NUL: the one place it can reach the CLI is a local file (PostgreSQL text cannot hold it)
    let nul = write(
        dir.path(),
        "nul.sql",
        "-- repair: nul_one\n-- title: a\u{0}b\nSELECT 1;\n",
    );
    for args in [vec!["lint", &nul], vec!["hash", &nul]] {
        let out = run(cli(c, &db, "carol").args(&args));
        expect_code(&out, 1);
        assert_safe(&out);
        let all = format!("{}{}", stdout_of(&out), stderr_of(&out));
        assert!(all.contains("\\x00"), "{all}");
    }

    // a body the server's parser rejects, echoing the hostile token in its message
    let body = write(
        dir.path(),
        "body.sql",
        format!("-- repair: body_one\n-- title: t\nSELECT 1 {HOSTILE};\n"),
    );
    let out = run(cli(c, &db, "carol").args(["lint", &body]));
    expect_code(&out, 1);
    assert_safe(&out);
    let out = run(cli(c, &db, "carol").args(["--json", "lint", &body]));
    assert_safe(&out);
    json_of(&out);
}

#[test]
fn usage_errors_escape_the_command_line_they_echo() {
    let out = run(pgrepair().args(["list", HOSTILE]));
    expect_code(&out, 2);
    assert_safe(&out);
    // (clap's plain rendering already drops ESC sequences; the rest is escaped by us)
    let err = stderr_of(&out);
    assert!(err.contains("unexpected argument"), "{err}");
    assert!(err.contains("fake ok\\rOVERWRITE \\u202eexe.txt"), "{err}");
    let out = run(pgrepair().args(["--json", "list", HOSTILE]));
    expect_code(&out, 2);
    assert_safe(&out);
}

#[test]
fn connection_errors_escape_what_they_echo() {
    let dsn = format!(
        "host=127.0.0.1 port=1 user=x dbname='{}' connect_timeout=2",
        HOSTILE
    );
    let out = run(pgrepair().args(["--dsn", &dsn, "list"]));
    expect_code(&out, 2);
    assert_safe(&out);
}

/// One output function owns escaping: no source file of the CLI prints any other way.
#[test]
fn every_print_goes_through_the_output_module() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.file_name().is_some_and(|n| n == "output.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for needle in [
                    "println!",
                    "print!(",
                    "eprint!(",
                    "output::emit(",
                    "io::stdout",
                    "io::stderr",
                    "e.exit()",
                ] {
                    if code.contains(needle) {
                        offenders.push(format!("{}:{}: {line}", path.display(), i + 1));
                    }
                }
            }
        }
    }
    // clap prints its own help and version (no outside text in them) with e.exit().
    offenders.retain(|o| !o.contains("main.rs") || !o.contains("e.exit()"));
    assert!(
        offenders.is_empty(),
        "prints outside cli/src/output.rs:\n{}",
        offenders.join("\n")
    );
}
