//! repair.redact against a real server: a FAILED run stores (and returns) PostgreSQL's error with
//! the data values removed — unique, check and not-null violations, a RAISE with a quoted literal
//! — and keeps them with repair.redact = off. Settings are cluster-wide: CONF lock.

use pg_repair_tests::{execute, one, playbook, register, Conf};
use serde_json::Value;

const SECRETS: &[&str] = &[
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "dave@example.com",
];

fn setup(conf: &Conf, label: &str) -> String {
    let c = conf.cluster;
    let db = c.fresh_db(label);
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE TABLE public.people (email text UNIQUE, age int CHECK (age > 0), name text NOT NULL DEFAULT 'x');
             INSERT INTO public.people VALUES ('alice@example.com', 30, 'Alice');
             GRANT ALL ON public.people TO repair_operators;
             CREATE FUNCTION public.refuse_email(e text) RETURNS void LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'refusing email %', quote_literal(e); END $$;
             GRANT EXECUTE ON FUNCTION public.refuse_email(text) TO repair_operators;",
        )
        .unwrap();
    db
}

/// (id, body) of playbooks that fail with a data value in the error.
const FAILING: &[(&str, &str)] = &[
    (
        "dup_email",
        "INSERT INTO public.people (email, age) VALUES ('alice@example.com', 31) ON CONFLICT DO NOTHING;\nINSERT INTO public.people (email, age) VALUES ('alice@example.com', 32);",
    ),
    (
        "bad_age",
        "INSERT INTO public.people (email, age) VALUES ('bob@example.com', -5) ON CONFLICT DO NOTHING;",
    ),
    (
        "no_name",
        "INSERT INTO public.people (email, age, name) VALUES ('carol@example.com', 40, NULL) ON CONFLICT DO NOTHING;",
    ),
    (
        "raised",
        "SELECT public.refuse_email('dave@example.com');",
    ),
];

fn failed_runs(conf: &Conf, db: &str) -> Vec<(String, Value, String)> {
    let c = conf.cluster;
    let mut carol = c.connect(db, "carol");
    let mut out = vec![];
    for (id, body) in FAILING {
        let (_, hash, _) = register(&mut carol, &playbook(id, body));
        let r = execute(&mut c.connect(db, "alice"), id, &hash, "redaction").unwrap();
        assert_eq!(r["status"], "FAILED", "{id}: {r}");
        let stored: String = one(
            &mut c.connect(db, "postgres"),
            &format!(
                "SELECT error_message FROM repair.runs WHERE run_id = '{}'",
                r["run_id"].as_str().unwrap()
            ),
        );
        out.push((id.to_string(), r, stored));
    }
    out
}

#[test]
fn stored_and_returned_errors_carry_no_data_values() {
    let conf = Conf::take();
    let db = setup(&conf, "redact_on");
    for (id, returned, stored) in failed_runs(&conf, &db) {
        let returned = returned["error_message"].as_str().unwrap_or("").to_string();
        for text in [&returned, &stored] {
            for secret in SECRETS {
                assert!(!text.contains(secret), "{id}: {secret} in {text:?}");
            }
            assert!(text.contains("<redacted>"), "{id}: {text:?}");
        }
        // still useful: what failed is named
        let named = match id.as_str() {
            "dup_email" => "people_email_key",
            "bad_age" => "people_age_check",
            "no_name" => "\"name\"",
            _ => "refusing email",
        };
        assert!(stored.contains(named), "{id}: {stored:?}");
        if id == "dup_email" {
            assert!(stored.contains("Key (email)=(<redacted>)"), "{stored:?}");
        }
    }
    let c = conf.cluster;
    assert!(one::<bool>(
        &mut c.connect(&db, "postgres"),
        "SELECT ok FROM repair.verify_audit()"
    ));
}

#[test]
fn redact_off_keeps_the_values() {
    let conf = Conf::take();
    conf.cluster.set_conf(&[("repair.redact", Some("off"))]);
    let db = setup(&conf, "redact_off");
    let runs = failed_runs(&conf, &db);
    for ((id, _, stored), secret) in runs.iter().zip(SECRETS) {
        assert!(stored.contains(secret), "{id}: {stored:?}");
        assert!(!stored.contains("<redacted>"), "{id}: {stored:?}");
    }
}
