//! End-to-end tests of `pgrepair check`, `baseline`, `gate` and `assert-not-empty` against the
//! scratch cluster of `pg_repair_tests` (db_role = staging, executors = repair_operators).
//! Roles: alice = operator (executor), bob = nobody.

mod common;
use common::*;

use pg_repair_tests::{register, Cluster};
use serde_json::Value;

/// The harness does not grant the validation and gate functions: the tests do, as postgres.
const GRANTS_SQL: &str = "
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA repair TO repair_operators;
";

/// A schema every built-in check passes on: primary keys, FK columns indexed, same types.
const CLEAN_SCHEMA_SQL: &str = "
    CREATE TABLE public.customers (id bigint PRIMARY KEY, name text);
    CREATE TABLE public.orders (
        id bigint PRIMARY KEY,
        customer_id bigint NOT NULL REFERENCES public.customers (id)
    );
    CREATE INDEX orders_customer_id ON public.orders (customer_id);
    INSERT INTO public.customers VALUES (1, 'a'), (2, 'b');
    INSERT INTO public.orders VALUES (10, 1), (11, 2), (12, 2);
    -- baselines count as the session user: the operators may read what they count
    GRANT SELECT ON public.customers, public.orders TO repair_operators;
";

/// A fresh database with the clean schema and the grants.
fn clean_db(c: &Cluster, label: &str) -> String {
    let db = c.fresh_db(label);
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(GRANTS_SQL).expect("grants");
    su.batch_execute(CLEAN_SCHEMA_SQL).expect("clean schema");
    db
}

fn check_file(id: &str, severity: &str, tag: &str) -> String {
    format!(
        "-- check: {id}\n-- title: always fails ({severity})\n-- severity: {severity}\n\
         -- tags: {tag}\nSELECT 1 AS bad;\n"
    )
}

const BUILTINS: [&str; 4] = [
    "builtin.fk_type_mismatch",
    "builtin.fk_missing_index",
    "builtin.invalid_index",
    "builtin.table_without_pk",
];

#[test]
fn check_go_on_a_clean_schema() {
    let c = Cluster::shared();
    let db = clean_db(c, "check_go");

    let out = run(cli(c, &db, "alice").arg("check"));
    expect_code(&out, 0);
    let text = stdout_of(&out);
    for id in BUILTINS {
        assert!(text.contains(id), "{id} missing in:\n{text}");
    }
    assert!(text.contains("decision: GO  score: 4/4"), "{text}");

    let out = run(cli(c, &db, "alice").args(["--json", "check"]));
    expect_code(&out, 0);
    let v = json_of(&out);
    assert_eq!(v["decision"], "GO", "{v}");
    assert_eq!(v["score"], "4/4", "{v}");
    assert!(v["run_id"].as_str().is_some_and(|s| s.len() == 36), "{v}");
    let checks = v["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 4, "{v}");
    assert!(checks.iter().all(|c| c["status"] == "PASS"), "{v}");
}

#[test]
fn check_hold_on_one_important_failure() {
    let c = Cluster::shared();
    let db = clean_db(c, "check_hold");
    let mut su = c.connect(&db, "postgres");
    register(&mut su, &check_file("x", "important", "t"));

    // built-ins run only when one of their tags is named
    let out = run(cli(c, &db, "alice").args(["check", "--tag", "t"]));
    expect_code(&out, 4);
    let text = stdout_of(&out);
    assert!(text.contains("decision: HOLD  score: 0/1"), "{text}");
    assert!(!text.contains("builtin."), "{text}");
    let out = run(cli(c, &db, "alice").args(["check", "--tag", "t", "--tag", "builtin"]));
    expect_code(&out, 4);
    let text = stdout_of(&out);
    assert!(text.contains("decision: HOLD  score: 4/5"), "{text}");
    assert!(text.contains("FAIL"), "{text}");

    let out = run(cli(c, &db, "alice").args(["--json", "check", "--tag", "t"]));
    expect_code(&out, 4);
    let v = json_of(&out);
    assert_eq!(v["decision"], "HOLD", "{v}");
    let failed: Vec<&Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "FAIL")
        .collect();
    assert_eq!(failed.len(), 1, "{v}");
    assert_eq!(failed[0]["check_id"], "x", "{v}");
    assert_eq!(failed[0]["violation_count"], 1, "{v}");

    // A category tag: only that built-in category runs, and passes.
    let out = run(cli(c, &db, "alice").args(["check", "--tag", "fk"]));
    expect_code(&out, 0);
    let text = stdout_of(&out);
    assert!(text.contains("builtin.fk_missing_index"), "{text}");
    assert!(!text.contains("builtin.invalid_index"), "{text}");
}

#[test]
fn check_no_go_on_a_critical_failure() {
    let c = Cluster::shared();
    let db = clean_db(c, "check_nogo");
    let mut su = c.connect(&db, "postgres");
    register(&mut su, &check_file("crit", "critical", "t"));

    let out = run(cli(c, &db, "alice").args(["check", "--tag", "t"]));
    expect_code(&out, 3);
    assert!(
        stdout_of(&out).contains("decision: NO-GO  score: 0/1"),
        "{}",
        stdout_of(&out)
    );
    let out = run(cli(c, &db, "alice").args(["--json", "check", "--tag", "t"]));
    expect_code(&out, 3);
    assert_eq!(json_of(&out)["decision"], "NO-GO");
}

#[test]
fn baseline_capture_verify_and_drift() {
    let c = Cluster::shared();
    let db = clean_db(c, "baseline");

    let out = run(cli(c, &db, "alice").args(["baseline", "capture", "pre"]));
    expect_code(&out, 0);
    let text = stdout_of(&out);
    assert!(text.contains("2 tables, 5 rows"), "{text}");

    let out = run(cli(c, &db, "alice").args(["baseline", "verify", "pre"]));
    expect_code(&out, 0);
    assert!(stdout_of(&out).contains("no drift"), "{}", stdout_of(&out));

    c.connect(&db, "postgres")
        .batch_execute("INSERT INTO public.orders VALUES (13, 1)")
        .expect("insert");
    let out = run(cli(c, &db, "alice").args(["baseline", "verify", "pre"]));
    expect_code(&out, 3);
    let text = stdout_of(&out);
    assert!(text.contains("public.orders"), "{text}");
    assert!(!text.contains("public.customers"), "{text}");
    assert!(text.contains("changed"), "{text}");

    let out = run(cli(c, &db, "alice").args(["--json", "baseline", "verify", "pre"]));
    expect_code(&out, 3);
    let v = json_of(&out);
    let tables = v["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), 1, "{v}");
    assert_eq!(tables[0]["table_name"], "public.orders", "{v}");
    assert_eq!(tables[0]["before"], 3, "{v}");
    assert_eq!(tables[0]["after"], 4, "{v}");

    // A capture of a chosen table only.
    let out = run(cli(c, &db, "alice").args([
        "--json",
        "baseline",
        "capture",
        "only",
        "--table",
        "public.customers",
    ]));
    expect_code(&out, 0);
    let v = json_of(&out);
    assert_eq!(v["tables"], 1, "{v}");
    assert_eq!(v["total_rows"], 2, "{v}");

    // An unknown label is an error, not "no drift".
    let out = run(cli(c, &db, "alice").args(["baseline", "verify", "never-captured"]));
    expect_code(&out, 1);
    assert!(stderr_of(&out).contains("22023"), "{}", stderr_of(&out));
}

#[test]
fn assert_not_empty_exits_99_on_an_empty_database() {
    let c = Cluster::shared();
    let db = c.fresh_db("empty");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(GRANTS_SQL).expect("grants");

    let out = run(cli(c, &db, "alice").arg("assert-not-empty"));
    expect_code(&out, 99);
    assert!(
        stderr_of(&out).contains(&format!("database {db} has no user tables")),
        "{}",
        stderr_of(&out)
    );

    su.batch_execute("CREATE TABLE public.t (id int)")
        .expect("create table");
    let out = run(cli(c, &db, "alice").arg("assert-not-empty"));
    expect_code(&out, 0);
    assert!(
        stdout_of(&out).contains("1 user table"),
        "{}",
        stdout_of(&out)
    );
}

#[test]
fn gate_allows_an_executor_and_refuses_anyone_else() {
    let c = Cluster::shared();
    let db = c.fresh_db("gate");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(GRANTS_SQL).expect("grants");
    su.batch_execute(
        "GRANT USAGE ON SCHEMA repair TO bob;
         GRANT EXECUTE ON FUNCTION repair.assert_migrations_allowed(boolean),
             repair.authority() TO bob;",
    )
    .expect("grants for bob");

    let out = run(cli(c, &db, "alice").arg("gate"));
    expect_code(&out, 0);
    assert!(
        stdout_of(&out).contains("allowed on staging"),
        "{}",
        stdout_of(&out)
    );
    let out = run(cli(c, &db, "alice").args(["--json", "gate"]));
    expect_code(&out, 0);
    let v = json_of(&out);
    assert_eq!(v["allowed"], true, "{v}");
    assert_eq!(v["gate"]["declared_role"], "staging", "{v}");

    let out = run(cli(c, &db, "bob").arg("gate"));
    expect_code(&out, 1);
    let err = stderr_of(&out);
    assert!(err.contains("NOT_AUTHORIZED"), "{err}");
    assert!(err.contains("42501"), "{err}");
    assert!(stdout_of(&out).is_empty(), "{}", stdout_of(&out));
}

/// A database made with CREATE DATABASE only (no extension), that only `bob` may connect to and
/// where he may do nothing else: no CONNECT for PUBLIC, no USAGE on schema public.
fn bare_db(c: &Cluster, label: &str) -> String {
    let db = format!("bare_{label}_{}", std::process::id());
    let mut su = c.connect("postgres", "postgres");
    su.batch_execute(&format!("CREATE DATABASE {db}"))
        .expect("create bare database");
    su.batch_execute(&format!(
        "REVOKE ALL ON DATABASE {db} FROM PUBLIC; GRANT CONNECT ON DATABASE {db} TO bob;"
    ))
    .expect("database privileges");
    c.connect(&db, "postgres")
        .batch_execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        .expect("revoke public schema");
    db
}

#[test]
fn assert_not_empty_needs_neither_the_extension_nor_more_than_connect() {
    let c = Cluster::shared();
    let db = bare_db(c, "noext");
    let mut su = c.connect(&db, "postgres");
    let no_ext: bool = su
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_repair')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(no_ext);

    // a fresh empty database, as a role with nothing but CONNECT: 99
    let out = run(cli(c, &db, "bob").arg("assert-not-empty"));
    expect_code(&out, 99);
    assert!(
        stderr_of(&out).contains(&format!("database {db} has no user tables")),
        "{}",
        stderr_of(&out)
    );
    let out = run(cli(c, &db, "bob").args(["--json", "assert-not-empty"]));
    expect_code(&out, 99);
    let v = json_of(&out);
    assert_eq!(v["user_tables"], 0, "{v}");
    assert_eq!(v["empty"], true, "{v}");

    // views, sequences, materialized views and temp tables are not user tables
    su.batch_execute(
        "CREATE VIEW public.v AS SELECT 1 AS x; CREATE SEQUENCE public.s;
         CREATE MATERIALIZED VIEW public.mv AS SELECT 1 AS x;",
    )
    .unwrap();
    let out = run(cli(c, &db, "bob").arg("assert-not-empty"));
    expect_code(&out, 99);

    // one table in a schema bob cannot even use: he still sees it in the catalog, exit 0
    su.batch_execute(
        "CREATE SCHEMA hidden; CREATE TABLE hidden.t (id int, note text);
         REVOKE ALL ON SCHEMA hidden FROM PUBLIC;",
    )
    .unwrap();
    let out = run(cli(c, &db, "bob").arg("assert-not-empty"));
    expect_code(&out, 0);
    assert!(
        stdout_of(&out).contains(&format!("database {db} has 1 user table")),
        "{}",
        stdout_of(&out)
    );
    // a partitioned table and its partition count too (the TOAST table of hidden.t does not)
    su.batch_execute(
        "CREATE TABLE hidden.p (id int) PARTITION BY RANGE (id);
         CREATE TABLE hidden.p1 PARTITION OF hidden.p FOR VALUES FROM (0) TO (10);",
    )
    .unwrap();
    let out = run(cli(c, &db, "bob").args(["--json", "assert-not-empty"]));
    expect_code(&out, 0);
    assert_eq!(json_of(&out)["user_tables"], 3);
}

#[test]
fn assert_not_empty_with_the_extension_but_no_user_tables_is_99() {
    let c = Cluster::shared();
    let db = c.fresh_db("ext_only");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(&format!(
        "REVOKE ALL ON DATABASE {db} FROM PUBLIC; GRANT CONNECT ON DATABASE {db} TO bob;
         REVOKE ALL ON SCHEMA public FROM PUBLIC;"
    ))
    .unwrap();
    let repair_tables: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'repair' AND c.relkind = 'r'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(repair_tables > 0, "the extension has tables of its own");
    // bob has no USAGE on schema repair and no EXECUTE on repair.user_tables()
    let out = run(cli(c, &db, "bob").arg("assert-not-empty"));
    expect_code(&out, 99);
    su.batch_execute("CREATE TABLE public.t (id int)").unwrap();
    let out = run(cli(c, &db, "bob").arg("assert-not-empty"));
    expect_code(&out, 0);
}

#[test]
fn assert_not_empty_ignores_objects_planted_in_the_search_path() {
    let c = Cluster::shared();
    let db = bare_db(c, "planted");
    let mut su = c.connect(&db, "postgres");
    // a same-named operator earlier in bob's search_path that would say "no table is a system
    // table" and shout when called
    su.batch_execute(&format!(
        "CREATE SCHEMA planted;
         CREATE FUNCTION planted.trap(name, text) RETURNS boolean LANGUAGE plpgsql AS
           $$BEGIN RAISE EXCEPTION 'planted operator called'; END$$;
         CREATE OPERATOR planted.!~ (LEFTARG = name, RIGHTARG = text, FUNCTION = planted.trap);
         GRANT USAGE ON SCHEMA planted TO bob;
         ALTER ROLE bob IN DATABASE {db} SET search_path = planted, pg_catalog, public;"
    ))
    .unwrap();
    let out = run(cli(c, &db, "bob").arg("assert-not-empty"));
    expect_code(&out, 99);
    assert!(
        !stderr_of(&out).contains("planted operator called"),
        "{}",
        stderr_of(&out)
    );
}
