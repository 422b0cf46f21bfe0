//! The published test vector: the file, its canonical JSON and its hash must all agree. Any
//! change to parsing or canonicalisation that alters registered hashes fails here first.

use pg_repair_core::{parse, parse_playbook, sha256_hex, Source};

const SQL: &str = include_str!("vector/intent_issue_tables.sql");
const JSON: &str = include_str!("vector/intent_issue_tables.json");
const SHA256: &str = include_str!("vector/intent_issue_tables.sha256");

#[test]
fn vector_files_are_exact() {
    assert!(
        !JSON.ends_with('\n'),
        "the .json file must have no trailing newline"
    );
    assert_eq!(
        SHA256.len(),
        64,
        "the .sha256 file must be exactly 64 hex characters"
    );
    assert!(SHA256
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(sha256_hex(JSON.as_bytes()), SHA256);
}

#[test]
fn vector_parses_to_published_canonical_json_and_hash() {
    let playbook = parse_playbook(SQL).expect("vector parses");
    assert_eq!(playbook.canonical_json(), JSON);
    assert_eq!(playbook.hash(), SHA256);

    assert_eq!(playbook.id, "intent_issue_tables");
    assert_eq!(playbook.environments, vec!["staging"]);
    assert_eq!(playbook.lock_timeout_ms, Some(2_000));
    assert_eq!(playbook.statement_timeout_ms, Some(300_000));
    assert_eq!(playbook.requires_before, vec!["public.workspaces"]);
    assert_eq!(
        playbook.requires_after,
        vec!["public.intent_issue_drafts", "public.intent_issue_sets"]
    );
    assert_eq!(playbook.body_line, 11);
    assert!(playbook
        .sql
        .starts_with("CREATE TABLE IF NOT EXISTS public.intent_issue_sets ("));
    assert!(playbook
        .sql
        .ends_with("ON public.intent_issue_drafts (set_id);"));

    let source = parse(SQL).expect("vector parses");
    assert!(matches!(source, Source::Playbook(_)));
    assert_eq!(source.hash(), SHA256);
    assert_eq!(source.canonical_json(), JSON);
}

#[test]
fn vector_hash_survives_crlf_and_trailing_whitespace() {
    let messy: String = SQL.lines().map(|l| format!("{l} \t\r\n")).collect();
    let messy = format!("\u{feff}\r\n\r\n{messy}\r\n\r\n");
    assert_eq!(parse_playbook(&messy).unwrap().hash(), SHA256);
}
