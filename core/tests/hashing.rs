//! What must and must not change a hash: formatting noise never does, content always does.

use pg_repair_core::{
    parse, parse_playbook, sha256_hex, Check, CheckSeverity, Playbook, Rule, Source, Waiver,
};

fn pb(source: &str) -> Playbook {
    parse_playbook(source).unwrap_or_else(|e| panic!("{e}\n{source}"))
}

fn hash(source: &str) -> String {
    pb(source).hash()
}

const BASE: &str = "-- repair: fix_it\n-- title: Fix it\nCREATE TABLE IF NOT EXISTS public.t (id int);\nCREATE INDEX IF NOT EXISTS t_id ON public.t (id);\n";

#[test]
fn minimal_playbook_canonical_json_is_exact() {
    let p = pb(BASE);
    let expected = concat!(
        r#"{"description":null,"environments":["staging"],"format":1,"id":"fix_it","#,
        r#""lock_timeout_ms":null,"requires_after":[],"requires_before":[],"#,
        r#""sql":"CREATE TABLE IF NOT EXISTS public.t (id int);\nCREATE INDEX IF NOT EXISTS t_id ON public.t (id);","#,
        r#""statement_timeout_ms":null,"title":"Fix it","waivers":[]}"#
    );
    assert_eq!(p.canonical_json(), expected);
    assert_eq!(p.hash(), sha256_hex(expected.as_bytes()));
    assert_eq!(p.hash().len(), 64);
    assert!(p
        .hash()
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
}

#[test]
fn line_endings_do_not_matter() {
    let lf = BASE.to_string();
    let crlf = BASE.replace('\n', "\r\n");
    let cr = BASE.replace('\n', "\r");
    let mixed = "-- repair: fix_it\r\n-- title: Fix it\rCREATE TABLE IF NOT EXISTS public.t (id int);\nCREATE INDEX IF NOT EXISTS t_id ON public.t (id);";
    let h = hash(&lf);
    assert_eq!(hash(&crlf), h);
    assert_eq!(hash(&cr), h);
    assert_eq!(hash(mixed), h);
    assert_eq!(pb(&crlf), pb(&lf));
    assert_eq!(pb(&cr), pb(&lf));
}

#[test]
fn trailing_whitespace_is_stripped() {
    let messy = "-- repair: fix_it  \n-- title: Fix it\t\nCREATE TABLE IF NOT EXISTS public.t (id int); \t \nCREATE INDEX IF NOT EXISTS t_id ON public.t (id);\t\n";
    assert_eq!(hash(messy), hash(BASE));
    assert!(pb(messy)
        .sql
        .lines()
        .all(|l| !l.ends_with(' ') && !l.ends_with('\t')));
    assert_eq!(pb(messy).sql, pb(BASE).sql);
}

#[test]
fn leading_spaces_and_inner_blank_lines_are_kept() {
    let p = pb("-- repair: x\n-- title: T\nSELECT 1\n\n\n    FROM t;\n");
    assert_eq!(p.sql, "SELECT 1\n\n\n    FROM t;");
    assert_ne!(
        p.hash(),
        pb("-- repair: x\n-- title: T\nSELECT 1\n    FROM t;\n").hash()
    );
}

#[test]
fn leading_and_trailing_blank_lines_are_trimmed_and_body_line_tracks_them() {
    let p = pb("\n\n \n-- repair: fix_it\n-- title: Fix it\n\n\t\n \nCREATE TABLE IF NOT EXISTS public.t (id int);\nCREATE INDEX IF NOT EXISTS t_id ON public.t (id);\n\n \n\t\n");
    assert_eq!(p.body_line, 9);
    assert_eq!(p.hash(), hash(BASE));
    assert_eq!(pb(BASE).body_line, 3);
    let crlf = "\r\n\r\n-- repair: x\r\n-- title: T\r\n\r\nSELECT 1;\r\n";
    assert_eq!(pb(crlf).body_line, 6);
    let cr = "\r\r-- repair: x\r-- title: T\r\rSELECT 1;\r";
    assert_eq!(pb(cr).body_line, 6);
    let bom = "\u{feff}-- repair: x\n-- title: T\nSELECT 1;";
    assert_eq!(pb(bom).body_line, 3);
}

#[test]
fn comments_after_a_blank_line_belong_to_the_body() {
    let p = pb("-- repair: x\n-- title: T\n\n-- Note: recreate the table\nSELECT 1;\n");
    assert_eq!(p.sql, "-- Note: recreate the table\nSELECT 1;");
    assert_eq!(p.body_line, 4);
    let p = pb("-- repair: x\n-- title: T\n-- just a note\nSELECT 1;\n");
    assert_eq!(p.sql, "-- just a note\nSELECT 1;");
    assert_eq!(p.body_line, 3);
}

#[test]
fn repeated_descriptions_join_with_newlines() {
    let p = pb("-- repair: x\n-- title: T\n-- description: first line\n-- environments: staging\n-- description:   second line  \nSELECT 1;");
    assert_eq!(p.description.as_deref(), Some("first line\nsecond line"));
    assert!(p
        .canonical_json()
        .contains(r#""description":"first line\nsecond line""#));
    assert_eq!(pb(BASE).description, None);
}

#[test]
fn header_values_and_keys_are_trimmed() {
    let tidy = "-- repair: fix_it\n-- title: Fix it now\n-- environments: staging, prod\n-- requires-before: public.a\n-- lock-timeout: 2s\nSELECT 1;";
    let loose = "--repair:fix_it   \n--   title   :    Fix it now\t\n--environments:staging,prod\n-- requires-before :\tpublic.a \n--lock-timeout:2 s\nSELECT 1;";
    assert_eq!(pb(loose), pb(tidy));
    assert_eq!(pb(loose).title, "Fix it now");
}

#[test]
fn unsorted_and_duplicate_lists_hash_like_sorted_ones() {
    let sorted = "-- repair: x\n-- title: T\n-- environments: prod, staging\n-- requires-before: public.a, public.b\n-- requires-after: \"S\".t, public.z\nSELECT 1;";
    let messy = "-- repair: x\n-- title: T\n-- environments: staging, prod, staging\n-- requires-before: public.b,public.a , public.b\n-- requires-after: public.z, \"S\".t, public.z\nSELECT 1;";
    assert_eq!(hash(messy), hash(sorted));
    let p = pb(messy);
    assert_eq!(p.environments, vec!["prod", "staging"]);
    assert_eq!(p.requires_before, vec!["public.a", "public.b"]);
    assert_eq!(p.requires_after, vec!["\"S\".t", "public.z"]);
}

#[test]
fn requires_are_kept_as_written() {
    let p = pb("-- repair: x\n-- title: T\n-- requires-before: Public.Orders, \"public\".\"orders\", \"a,b\".\"c\"\"d\"\nSELECT 1;");
    assert_eq!(
        p.requires_before,
        vec![
            "\"a,b\".\"c\"\"d\"",
            "\"public\".\"orders\"",
            "Public.Orders"
        ]
    );
}

#[test]
fn missing_environments_hash_like_staging() {
    let explicit = BASE.replace(
        "-- title: Fix it\n",
        "-- title: Fix it\n-- environments: staging\n",
    );
    assert_eq!(hash(&explicit), hash(BASE));
    assert_eq!(pb(BASE).environments, vec!["staging"]);
    let prod = BASE.replace(
        "-- title: Fix it\n",
        "-- title: Fix it\n-- environments: prod\n",
    );
    assert_ne!(hash(&prod), hash(BASE));
}

#[test]
fn unicode_is_literal_and_control_characters_are_escaped() {
    let p = pb("-- repair: x\n-- title: Réparer 漢字 😀\nSELECT 'ß\u{1}\u{7f}' AS \"naïve\",\t'\u{2028}';\n");
    let json = p.canonical_json();
    assert!(json.contains(r#""title":"Réparer 漢字 😀""#), "{json}");
    assert!(
        json.contains("\"sql\":\"SELECT 'ß\\u0001\u{7f}' AS \\\"naïve\\\",\\t'\u{2028}';\""),
        "{json}"
    );
    assert_eq!(p.hash(), sha256_hex(json.as_bytes()));
}

#[test]
fn waivers_are_sorted_and_hashed() {
    let p = pb("-- repair: x\n-- title: T\n-- waive: warn-dynamic-sql until 2030-06-30 because DO block checks the catalog\n-- waive:   ban-drop   until 2029-02-28   because  replaces a broken   view  \nSELECT 1;");
    assert_eq!(
        p.waivers,
        vec![
            Waiver {
                rule: Rule::BanDrop,
                until: "2029-02-28".into(),
                because: "replaces a broken   view".into()
            },
            Waiver {
                rule: Rule::WarnDynamicSql,
                until: "2030-06-30".into(),
                because: "DO block checks the catalog".into()
            },
        ]
    );
    assert!(p.canonical_json().ends_with(
        r#""waivers":[{"because":"replaces a broken   view","rule":"ban-drop","until":"2029-02-28"},{"because":"DO block checks the catalog","rule":"warn-dynamic-sql","until":"2030-06-30"}]}"#
    ));
    let swapped = pb("-- repair: x\n-- title: T\n-- waive: ban-drop until 2029-02-28 because replaces a broken   view\n-- waive: warn-dynamic-sql until 2030-06-30 because DO block checks the catalog\nSELECT 1;");
    assert_eq!(swapped.hash(), p.hash());
    let without = pb("-- repair: x\n-- title: T\nSELECT 1;");
    assert_ne!(without.hash(), p.hash());
    let later = pb("-- repair: x\n-- title: T\n-- waive: ban-drop until 2029-03-01 because replaces a broken   view\n-- waive: warn-dynamic-sql until 2030-06-30 because DO block checks the catalog\nSELECT 1;");
    assert_ne!(later.hash(), p.hash());
    assert!(pb("-- repair: x\n-- title: T\n-- waive: ban-set until 2028-02-29 because leap day\nSELECT 1;").waivers.len() == 1);
}

#[test]
fn hand_built_playbook_hashes_like_its_file() {
    let parsed = pb("-- repair: x\n-- title: T\n-- environments: prod, staging\n-- waive: ban-drop until 2029-02-28 because a\n-- waive: ban-delete until 2029-02-28 because b\nSELECT 1;");
    let mut built = parsed.clone();
    built.environments = vec!["staging".into(), "prod".into(), "prod".into()];
    built.waivers.reverse();
    assert_eq!(built.hash(), parsed.hash());
}

#[test]
fn timeout_units() {
    let t = |v: &str| {
        pb(&format!(
            "-- repair: x\n-- title: T\n-- lock-timeout: {v}\n-- statement-timeout: {v}\nSELECT 1;"
        ))
    };
    assert_eq!(t("250ms").lock_timeout_ms, Some(250));
    assert_eq!(t("250 ms").statement_timeout_ms, Some(250));
    assert_eq!(t("2s").lock_timeout_ms, Some(2_000));
    assert_eq!(t("5min").statement_timeout_ms, Some(300_000));
    assert_eq!(t("35791min").lock_timeout_ms, Some(2_147_460_000));
    assert_eq!(t("2000ms").hash(), t("2s").hash());
    assert_eq!(t("120s").hash(), t("2min").hash());
    assert!(t("2s")
        .canonical_json()
        .contains(r#""lock_timeout_ms":2000"#));
    assert!(t("2s")
        .canonical_json()
        .contains(r#""statement_timeout_ms":2000"#));
    assert_ne!(
        t("2s").hash(),
        pb("-- repair: x\n-- title: T\nSELECT 1;").hash()
    );
}

#[test]
fn every_field_changes_the_hash() {
    let base = "-- repair: x\n-- title: T\n-- description: d\n-- environments: staging\n-- requires-before: public.a\n-- requires-after: public.b\n-- lock-timeout: 1s\n-- statement-timeout: 1min\nSELECT 1;";
    let h = hash(base);
    for (from, to) in [
        ("repair: x", "repair: y"),
        ("title: T", "title: U"),
        ("description: d", "description: e"),
        ("staging", "staging, prod"),
        ("public.a", "public.c"),
        ("public.b", "public.c"),
        ("1s", "2s"),
        ("1min", "2min"),
        ("SELECT 1;", "SELECT 2;"),
        ("SELECT 1;", "SELECT  1;"),
    ] {
        assert_ne!(hash(&base.replace(from, to)), h, "{from} -> {to}");
    }
}

#[test]
fn check_files() {
    let src = "\n-- check: orders_have_customers\n-- title: Every order has a customer\n-- description: Orphans break invoicing.\n-- severity: critical\n-- tags: orders, billing,orders\n\nSELECT o.id FROM public.orders o\nWHERE NOT EXISTS (SELECT 1 FROM public.customers c WHERE c.id = o.customer_id);  \n";
    let source = parse(src).unwrap();
    assert_eq!(source.kind(), "check");
    assert_eq!(source.id(), "orders_have_customers");
    assert_eq!(source.body_line(), 8);
    let Source::Check(check) = &source else {
        panic!("not a check: {source:?}")
    };
    assert_eq!(check.severity, CheckSeverity::Critical);
    assert_eq!(check.severity.as_str(), "critical");
    assert_eq!(check.tags, vec!["billing", "orders"]);
    let expected = concat!(
        r#"{"description":"Orphans break invoicing.","format":1,"id":"orders_have_customers","kind":"check","severity":"critical","#,
        r#""sql":"SELECT o.id FROM public.orders o\nWHERE NOT EXISTS (SELECT 1 FROM public.customers c WHERE c.id = o.customer_id);","#,
        r#""tags":["billing","orders"],"title":"Every order has a customer"}"#
    );
    assert_eq!(source.canonical_json(), expected);
    assert_eq!(source.hash(), sha256_hex(expected.as_bytes()));
    assert_eq!(source.sql(), check.sql);

    let minimal =
        parse("-- check: c\n-- title: T\n-- severity: important\nSELECT 1 WHERE false;").unwrap();
    let Source::Check(Check {
        tags,
        description,
        severity,
        ..
    }) = &minimal
    else {
        panic!()
    };
    assert!(tags.is_empty());
    assert_eq!(*description, None);
    assert_eq!(*severity, CheckSeverity::Important);
    assert!(minimal
        .canonical_json()
        .contains(r#""severity":"important""#));
    assert!(minimal.canonical_json().contains(r#""tags":[]"#));
}

#[test]
fn playbook_source_accessors() {
    let source = parse(BASE).unwrap();
    let p = pb(BASE);
    assert_eq!(source.kind(), "playbook");
    assert_eq!(source.id(), "fix_it");
    assert_eq!(source.sql(), p.sql);
    assert_eq!(source.body_line(), 3);
    assert_eq!(source.hash(), p.hash());
    assert_eq!(source.canonical_json(), p.canonical_json());
    assert_eq!(source, Source::Playbook(p));
    let json = serde_json::to_value(&source).unwrap();
    assert_eq!(json["kind"], "playbook");
    assert_eq!(json["id"], "fix_it");
}

#[test]
fn huge_inputs_do_not_panic() {
    let many_lines: String = (0..100_000).map(|i| format!("SELECT {i};\n")).collect();
    let p = pb(&format!("-- repair: x\n-- title: T\n{many_lines}"));
    assert_eq!(p.sql.lines().count(), 100_000);

    let many_headers: String = (0..100_000)
        .map(|i| format!("-- description: line {i}\n"))
        .collect();
    let p = pb(&format!(
        "-- repair: x\n-- title: T\n{many_headers}SELECT 1;"
    ));
    assert_eq!(p.body_line, 100_003);

    let long_line = "x".repeat(5_000_000);
    assert_eq!(
        pb(&format!("-- repair: x\n-- title: T\n{long_line}"))
            .sql
            .len(),
        5_000_000
    );
    assert!(parse(&format!("-- repair: {long_line}\n-- title: T\nSELECT 1;")).is_err());
    assert!(parse(&format!(
        "-- repair: x\n-- title: T\n-- waive: {long_line}\nSELECT 1;"
    ))
    .is_err());
    assert!(parse(&"\n".repeat(100_000)).is_err());
    assert!(parse(&"\r".repeat(100_000)).is_err());
}

#[test]
fn an_online_playbook_hashes_with_its_mode_and_pause() {
    let base = "-- repair: online_ix\n-- title: Index, online\n";
    let body = "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON public.t (x);\n";
    let tx = pb(&format!("{base}{body}"));
    assert!(
        !tx.canonical_json().contains("\"mode\""),
        "transactional: no mode key"
    );
    let online = pb(&format!("{base}-- mode: online\n{body}"));
    assert_eq!(
        online.canonical_json(),
        tx.canonical_json()
            .replacen(
                "\"lock_timeout_ms\"",
                "\"lock_timeout_ms\":null,\"mode\":\"online\",\"x\"",
                1
            )
            .replace(",\"x\":null", "")
    );
    assert_ne!(online.hash(), tx.hash());
    // an explicit transactional mode hashes as no header at all
    assert_eq!(
        pb(&format!("{base}-- mode: transactional\n{body}")).hash(),
        tx.hash()
    );
    let paused = pb(&format!(
        "{base}-- mode: online\n-- batch-pause: 100ms\n{body}"
    ));
    assert!(paused.canonical_json().contains("\"batch_pause_ms\":100"));
    assert_eq!(
        pb(&format!("{base}-- mode: online\n-- batch-pause: 0\n{body}")).batch_pause_ms,
        Some(0)
    );
}

#[test]
fn batch_lines_and_pauses_need_online_mode() {
    let e = pg_repair_core::parse("-- repair: p\n-- title: t\n-- batch-pause: 1s\nSELECT 1;\n")
        .unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.message.contains("mode: online"), "{e}");
    let e = pg_repair_core::parse(
        "-- repair: p\n-- title: t\nSELECT 1;\n-- batch\nUPDATE public.t SET x = 1 WHERE false;\n",
    )
    .unwrap_err();
    assert_eq!(e.line, 4);
    let e =
        pg_repair_core::parse("-- repair: p\n-- title: t\n-- mode: fast\nSELECT 1;\n").unwrap_err();
    assert!(e.message.contains("unknown mode"), "{e}");
    let p = pb("-- repair: p\n-- title: t\n-- mode: online\nSELECT 1;\n  -- batch  \nUPDATE public.t SET x = 1 WHERE false;\n");
    assert_eq!(p.batch_marker_lines(), vec![2]);
}
