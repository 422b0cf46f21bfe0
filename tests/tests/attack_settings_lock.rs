//! Issue 7, items 5–6: guards and row hashing that must not depend on the caller's session
//! settings (DateStyle, TimeZone, IntervalStyle, extra_float_digits, search_path), and the
//! per-playbook lock that no SQL login can take. These tests change cluster settings, so every
//! test of this binary holds the CONF lock (executes of other tests must not see them).

mod attack_common;

use attack_common::*;
use pg_repair_core::chain::lock_key;
use pg_repair_core::Rule;
use pg_repair_tests::{one, playbook, Cluster, Conf};
use postgres::{Client, NoTls};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The settings guard (pg_repair_tests::Conf), with backtraces asked for: the harness strips
/// RUST_BACKTRACE from the server's environment; RUST_LIB_BACKTRACE is not stripped and is
/// inherited through runuser/pg_ctl, so std should capture backtraces in the backend as on a
/// server started with backtraces on. No message may carry one.
fn take_conf() -> Conf {
    std::env::set_var("RUST_LIB_BACKTRACE", "1");
    Conf::take()
}

fn utc_date(c: &Cluster, db: &str, offset_days: i32) -> String {
    let mut su = c.connect(db, "postgres");
    su.batch_execute("SET DateStyle = 'ISO'").unwrap();
    su.query_one(
        "SELECT ((now() AT TIME ZONE 'UTC')::date + $1::int)::text",
        &[&offset_days],
    )
    .unwrap()
    .get(0)
}

fn rows_db(c: &Cluster, label: &str) -> String {
    let db = c.fresh_db(label);
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE TABLE public.victim (id int PRIMARY KEY, note text);
             INSERT INTO public.victim SELECT g, 'n' || g FROM generate_series(1, 10) g;
             ALTER TABLE public.victim OWNER TO alice;",
        )
        .unwrap();
    db
}

fn victim_count(c: &Cluster, db: &str) -> i64 {
    one(
        &mut c.connect(db, "postgres"),
        "SELECT count(*) FROM public.victim",
    )
}

// ---------------------------------------------------------------------------------------------
// 5. Caller settings

const DATESTYLES: &[&str] = &[
    "German",
    "German, DMY",
    "SQL, DMY",
    "SQL, MDY",
    "Postgres, MDY",
    "Postgres, DMY",
];

#[test]
fn an_expired_waiver_stays_expired_under_any_datestyle() {
    let _conf = take_conf();
    let c = Cluster::shared();
    let db = rows_db(c, "atk_datestyle");
    let yesterday = utc_date(c, &db, -1);
    let waiver = format!("waive: ban-delete until {yesterday} because expired yesterday");
    // registered under the default settings
    let src = playbook_with(
        "expired",
        &[&waiver],
        "DELETE FROM public.victim WHERE id = 1;",
    );
    let hash = reg(c, &db, &src);
    for ds in DATESTYLES {
        let mut a = c.connect(&db, "alice");
        a.batch_execute(&format!("SET DateStyle = '{ds}'")).unwrap();
        let e = clean_error(exec_as(&mut a, "expired", &hash));
        assert_eq!(e.code().code(), "RP007", "DateStyle {ds}: {}", e.message());
        // lint under the same settings does not call the waiver current
        let mut carol = c.connect(&db, "carol");
        carol
            .batch_execute(&format!("SET DateStyle = '{ds}'"))
            .unwrap();
        let findings: Vec<(String, String)> = carol
            .query("SELECT rule, severity FROM repair.lint($1)", &[&src])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert!(
            findings
                .iter()
                .any(|(r, s)| r == Rule::BanDelete.id() && s == "error"),
            "DateStyle {ds}: {findings:?}"
        );
    }
    // registered under a hostile DateStyle, executed under another one
    for (i, ds) in DATESTYLES.iter().enumerate() {
        let id = format!("expired_reg_{i}");
        let src = playbook_with(&id, &[&waiver], "DELETE FROM public.victim WHERE id = 2;");
        let mut carol = c.connect(&db, "carol");
        carol
            .batch_execute(&format!("SET DateStyle = '{ds}'"))
            .unwrap();
        let hash = pg_repair_tests::register(&mut carol, &src).1;
        let mut a = c.connect(&db, "alice");
        a.batch_execute("SET DateStyle = 'German'").unwrap();
        let e = clean_error(exec_as(&mut a, &id, &hash));
        assert_eq!(
            e.code().code(),
            "RP007",
            "registered under {ds}: {}",
            e.message()
        );
        let e = clean_error(exec_as(&mut c.connect(&db, "alice"), &id, &hash));
        assert_eq!(
            e.code().code(),
            "RP007",
            "registered under {ds}: {}",
            e.message()
        );
    }
    assert_eq!(
        victim_count(c, &db),
        10,
        "an expired waiver let a DELETE run"
    );
}

#[test]
fn waiver_dates_compare_in_utc_whatever_the_callers_timezone() {
    let _conf = take_conf();
    let c = Cluster::shared();
    let db = rows_db(c, "atk_timezone");
    let today = utc_date(c, &db, 0);
    let yesterday = utc_date(c, &db, -1);
    // valid through today (UTC): runs, even where the caller's local date is already tomorrow
    for (i, tz) in [
        "Pacific/Kiritimati",
        "Etc/GMT-14",
        "Asia/Tokyo",
        "Etc/GMT+12",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("today_{i}");
        let src = playbook_with(
            &id,
            &[&format!(
                "waive: ban-delete until {today} because valid today"
            )],
            &format!("DELETE FROM public.victim WHERE id = {};", i + 1),
        );
        let mut carol = c.connect(&db, "carol");
        carol
            .batch_execute(&format!("SET TimeZone = '{tz}'"))
            .unwrap();
        let hash = pg_repair_tests::register(&mut carol, &src).1;
        let mut a = c.connect(&db, "alice");
        a.batch_execute(&format!("SET TimeZone = '{tz}'")).unwrap();
        let r = exec_as(&mut a, &id, &hash).unwrap_or_else(|e| panic!("{tz}: {e:?}"));
        assert_eq!(r["status"], "SUCCESS", "{tz}: {r}");
    }
    assert_eq!(victim_count(c, &db), 6);
    // expired yesterday (UTC): refused, even where the caller's local date is still yesterday
    for (i, tz) in [
        "Etc/GMT+12",
        "Pacific/Pago_Pago",
        "America/Adak",
        "Pacific/Kiritimati",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("yesterday_{i}");
        let src = playbook_with(
            &id,
            &[&format!(
                "waive: ban-delete until {yesterday} because expired"
            )],
            "DELETE FROM public.victim;",
        );
        let mut carol = c.connect(&db, "carol");
        carol
            .batch_execute(&format!("SET TimeZone = '{tz}'"))
            .unwrap();
        let hash = pg_repair_tests::register(&mut carol, &src).1;
        let mut a = c.connect(&db, "alice");
        a.batch_execute(&format!("SET TimeZone = '{tz}'")).unwrap();
        let e = clean_error(exec_as(&mut a, &id, &hash));
        assert_eq!(e.code().code(), "RP007", "{tz}: {}", e.message());
    }
    assert_eq!(victim_count(c, &db), 6);
}

/// Plants functions and operators in schema evil that shadow pg_catalog for a caller whose
/// search_path puts evil first. Each one raises a WARNING with a marker (works in read-only
/// transactions too) so the server log shows whether extension code ever called it.
fn plant(c: &Cluster, db: &str) -> String {
    let marker = format!("PLANTED-CALLED-{db}");
    let mut sql = String::from(
        "CREATE SCHEMA evil; GRANT USAGE ON SCHEMA evil TO PUBLIC;
         ALTER DEFAULT PRIVILEGES IN SCHEMA evil GRANT EXECUTE ON FUNCTIONS TO PUBLIC;\n",
    );
    let fns: &[(&str, &str, &str, &str)] = &[
        ("now", "", "timestamptz", "pg_catalog.now()"),
        (
            "clock_timestamp",
            "",
            "timestamptz",
            "pg_catalog.clock_timestamp()",
        ),
        (
            "statement_timestamp",
            "",
            "timestamptz",
            "pg_catalog.statement_timestamp()",
        ),
        ("sha256", "bytea", "bytea", "pg_catalog.sha256($1)"),
        ("encode", "bytea, text", "text", "pg_catalog.encode($1, $2)"),
        ("md5", "text", "text", "pg_catalog.md5($1)"),
        ("length", "text", "int", "pg_catalog.length($1)"),
        ("lower", "text", "text", "pg_catalog.lower($1)"),
        ("upper", "text", "text", "pg_catalog.upper($1)"),
        ("btrim", "text", "text", "pg_catalog.btrim($1)"),
        (
            "current_setting",
            "text",
            "text",
            "pg_catalog.current_setting($1)",
        ),
        (
            "current_setting",
            "text, boolean",
            "text",
            "pg_catalog.current_setting($1, $2)",
        ),
        (
            "set_config",
            "text, text, boolean",
            "text",
            "pg_catalog.set_config($1, $2, $3)",
        ),
        (
            "pg_advisory_xact_lock",
            "bigint",
            "void",
            "pg_catalog.pg_advisory_xact_lock($1)",
        ),
        (
            "gen_random_uuid",
            "",
            "uuid",
            "pg_catalog.gen_random_uuid()",
        ),
        (
            "to_char",
            "timestamptz, text",
            "text",
            "pg_catalog.to_char($1, $2)",
        ),
        (
            "pg_has_role",
            "name, name, text",
            "boolean",
            "pg_catalog.pg_has_role($1, $2, $3)",
        ),
        (
            "has_table_privilege",
            "name, oid, text",
            "boolean",
            "pg_catalog.has_table_privilege($1, $2, $3)",
        ),
        (
            "texteq_planted",
            "text, text",
            "boolean",
            "pg_catalog.texteq($1, $2)",
        ),
        (
            "textcat_planted",
            "text, text",
            "text",
            "pg_catalog.textcat($1, $2)",
        ),
        (
            "int8eq_planted",
            "bigint, bigint",
            "boolean",
            "pg_catalog.int8eq($1, $2)",
        ),
    ];
    for (name, args, ret, body) in fns {
        let call = if *ret == "void" {
            format!("PERFORM {body}; RETURN;")
        } else {
            format!("RETURN {body};")
        };
        sql.push_str(&format!(
            "CREATE FUNCTION evil.{name}({args}) RETURNS {ret} LANGUAGE plpgsql AS $f$
               BEGIN RAISE WARNING '{marker} {name}'; {call} END $f$;\n"
        ));
    }
    sql.push_str(
        "CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq_planted);
         CREATE OPERATOR evil.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.textcat_planted);
         CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8eq_planted);",
    );
    c.connect(db, "postgres").batch_execute(&sql).unwrap();
    marker
}

const HOSTILE: &str = "SET DateStyle = 'German, DMY'; SET TimeZone = 'Pacific/Kiritimati';
    SET IntervalStyle = 'sql_standard'; SET extra_float_digits = -15;
    SET lc_time = 'C'; SET lc_numeric = 'C'; SET bytea_output = 'escape';
    SET search_path = evil, pg_catalog, public";

fn hostile(c: &Cluster, db: &str, user: &str) -> Client {
    let mut k = c.connect(db, user);
    k.batch_execute(HOSTILE).unwrap();
    // temp relations shadow unqualified relation names even with pg_temp last in the path
    k.batch_execute(
        "CREATE TEMP TABLE runs (x int); CREATE TEMP TABLE playbook_versions (x int);
         CREATE TEMP TABLE registry_events (x int); CREATE TEMP TABLE playbooks (x int);
         CREATE TEMP TABLE check_runs (x int); CREATE TEMP TABLE baseline_captures (x int);
         CREATE TEMP TABLE baseline_counts (x int); CREATE TEMP TABLE check_results (x int);",
    )
    .unwrap();
    k
}

#[test]
fn every_guard_and_the_row_hashing_ignore_hostile_settings() {
    let _conf = take_conf();
    let c = Cluster::shared();
    let db = rows_db(c, "atk_hostile");
    grant_validation(c, &db);
    c.connect(&db, "postgres")
        .batch_execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO repair_operators")
        .unwrap();
    let marker = plant(c, &db);
    // a normal session's view first
    let mut su = c.connect(&db, "postgres");
    // register, update, retire under hostile settings
    let mut carol = hostile(c, &db, "carol");
    let body = "CREATE TABLE IF NOT EXISTS public.hostile_t (id int, at timestamptz, d interval, f float8);\n\
                INSERT INTO public.hostile_t VALUES (1, '2020-01-01 12:00:00+00', '1 day 02:03:04.5', 0.1);";
    let hash = pg_repair_tests::register(&mut carol, &playbook("hostile", body)).1;
    let h_fail =
        pg_repair_tests::register(&mut carol, &playbook("hostile_fail", "SELECT 1 / 0;")).1;
    pg_repair_tests::register(&mut carol, &playbook("hostile_retire", "SELECT 1;"));
    carol
        .batch_execute("SELECT repair.retire('hostile_retire', 'retired under hostile settings')")
        .unwrap();
    pg_repair_tests::register(
        &mut carol,
        "-- check: hostile_check\n-- title: t\n-- severity: important\n-- tags: h\nSELECT id FROM public.victim WHERE id < 0;\n",
    );
    // execute (SUCCESS and FAILED), preview, checks, baselines under hostile settings
    let mut a = hostile(c, &db, "alice");
    let r = exec_as(&mut a, "hostile", &hash).expect("execute");
    assert_eq!(r["status"], "SUCCESS", "{r}");
    let r = exec_as(&mut a, "hostile", &hash).expect("execute again");
    assert_eq!(r["status"], "SUCCESS", "{r}");
    let r = exec_as(&mut a, "hostile_fail", &h_fail).expect("execute");
    assert_eq!(r["status"], "FAILED", "{r}");
    a.batch_execute("SELECT repair.preview('hostile')").unwrap();
    a.batch_execute("SELECT * FROM repair.run_checks(NULL)")
        .unwrap();
    a.batch_execute("SELECT * FROM repair.baseline_capture('hostile-label')")
        .unwrap();
    let drift: i64 = one(
        &mut a,
        "SELECT count(*) FROM repair.baseline_verify('hostile-label')",
    );
    assert_eq!(drift, 0, "nothing changed since the capture");
    // guards under hostile settings still refuse what they must
    let e = clean_error(exec_as(&mut a, "hostile", "0000"));
    assert_eq!(e.code().code(), "RP006");
    let e = clean_error(exec_as(&mut a, "hostile_retire", "0000"));
    assert_eq!(e.code().code(), "RP005");

    // the audit verifies in a normal session, and in a hostile one
    assert!(
        verify_ok(&mut su),
        "rows written under hostile settings do not verify"
    );
    let mut dave = hostile(c, &db, "dave");
    assert!(verify_ok(&mut dave), "verify_audit under hostile settings");
    let head_normal: String = one(&mut su, "SELECT repair.audit_head()");
    let head_hostile: String = one(&mut dave, "SELECT repair.audit_head()");
    assert_eq!(
        head_normal, head_hostile,
        "audit_head depends on the reader's settings"
    );
    let mut dave2 = c.connect(&db, "dave");
    dave2
        .batch_execute("SET TimeZone = 'America/Adak'; SET DateStyle = 'Postgres, MDY'; SET IntervalStyle = 'iso_8601'; SET extra_float_digits = 3")
        .unwrap();
    let head_other: String = one(&mut dave2, "SELECT repair.audit_head()");
    assert_eq!(head_normal, head_other);
    // timestamps were stored as instants, not re-parsed local text
    let skew: f64 = one(
        &mut su,
        "SELECT extract(epoch FROM max(abs(extract(epoch FROM now() - started_at)) * interval '1 second'))::float8 FROM repair.runs",
    );
    assert!(skew < 600.0, "runs.started_at is {skew}s away from now");
    // and extension code never called a planted function or operator
    let log = c.log();
    let called: Vec<&str> = log.lines().filter(|l| l.contains(&marker)).collect();
    assert!(called.is_empty(), "planted objects were called: {called:?}");
    // positive control: the plant works for unqualified calls in the hostile session itself
    a.batch_execute("SELECT now(); SELECT 'a'::text = 'b'::text")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let log = c.log();
    assert!(
        log.contains(&format!("{marker} now")),
        "the planted now() is not reachable: the test proves nothing"
    );
    assert!(
        log.contains(&format!("{marker} texteq_planted")),
        "the planted = is not reachable"
    );
}

// ---------------------------------------------------------------------------------------------
// 1 (as the caller): deferred events the caller queued before execute fire as the caller

#[test]
fn the_callers_own_deferred_events_fire_as_the_caller_not_as_run_as() {
    let _conf = take_conf();
    let c = Cluster::shared();
    let db = rows_db(c, "atk_caller_deferred");
    c.connect(&db, "postgres")
        .batch_execute(
            "CREATE TABLE public.journal (who text);
             CREATE TABLE public.queue (id int);
             GRANT INSERT ON public.journal, public.queue TO alice;
             CREATE FUNCTION public.on_queue() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN INSERT INTO public.journal VALUES (current_user); DELETE FROM public.victim WHERE id = 10; RETURN NULL; END $$;
             CREATE CONSTRAINT TRIGGER queue_deferred AFTER INSERT ON public.queue
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.on_queue();",
        )
        .unwrap();
    c.set_conf(&[("repair.run_as", Some("fixer"))]);
    let hash = reg(c, &db, &playbook("benign", "SELECT 1;"));
    let mut a = c.connect(&db, "alice");
    a.batch_execute("BEGIN; INSERT INTO public.queue VALUES (1)")
        .unwrap();
    let r = exec_as(&mut a, "benign", &hash).expect("execute");
    // the caller's DELETE is the caller's business: it must neither run as fixer nor fail the run
    assert_eq!(r["status"], "SUCCESS", "{r}");
    a.batch_execute("COMMIT").unwrap();
    let who: Vec<String> = c
        .connect(&db, "postgres")
        .query("SELECT who FROM public.journal", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(who, vec!["alice".to_string()]);
    assert_eq!(victim_count(c, &db), 9);
}

// ---------------------------------------------------------------------------------------------
// 6. The per-playbook lock

fn wait_until_sleeping(c: &Cluster, db: &str, pid: i32) {
    let mut su = c.connect(db, "postgres");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ok: bool = su
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep')",
                &[&pid],
            )
            .unwrap()
            .get(0);
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "pid {pid} never slept");
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// Starts `id` in a thread as alice; returns (pid, handle) once it is inside pg_sleep.
fn start_sleeper(
    c: &Cluster,
    db: &str,
    id: &str,
    hash: &str,
) -> (i32, std::thread::JoinHandle<Result<Value, postgres::Error>>) {
    let mut a = Client::connect(&c.conninfo(db, "alice"), NoTls).unwrap();
    let pid: i32 = one(&mut a, "SELECT pg_backend_pid()");
    let (id, hash) = (id.to_string(), hash.to_string());
    let h = std::thread::spawn(move || exec_as(&mut a, &id, &hash));
    wait_until_sleeping(c, db, pid);
    (pid, h)
}

#[test]
fn a_plain_login_holding_advisory_locks_never_blocks_execute() {
    let _conf = take_conf();
    let c = Cluster::shared();
    let db = c.fresh_db("atk_lock_dos");
    let ids = ["lock_target", "intent_issue_tables", "x"];
    let mut hashes = Vec::new();
    for id in ids {
        hashes.push(reg(c, &db, &playbook(id, "SELECT 1;")));
    }
    // bob has no repair privileges at all
    let mut bob = c.connect(&db, "bob");
    let mut bob_xact = c.connect(&db, "bob");
    bob_xact.batch_execute("BEGIN").unwrap();
    for id in ids {
        let k = lock_key(id);
        let (hi, lo) = ((k >> 32) as i32, k as i32);
        for sql in [
            format!("SELECT pg_advisory_lock({k})"),
            format!("SELECT pg_advisory_lock({hi}, {lo})"),
            format!("SELECT pg_advisory_lock({lo}, {hi})"),
            format!("SELECT pg_advisory_lock(hashtext('{id}'))"),
            format!("SELECT pg_advisory_lock(hashtextextended('{id}', 0))"),
        ] {
            bob.batch_execute(&sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        for sql in [
            format!("SELECT pg_advisory_xact_lock({})", k.wrapping_add(1)),
            format!("SELECT pg_advisory_xact_lock({})", k.wrapping_neg()),
            format!("SELECT pg_advisory_xact_lock(hashtext('pg_repair/playbook/{id}'))"),
        ] {
            bob_xact
                .batch_execute(&sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
    bob.batch_execute("SELECT pg_advisory_lock(g) FROM generate_series(0, 300) g")
        .unwrap();
    bob.batch_execute("SELECT pg_advisory_lock(0, g) FROM generate_series(0, 300) g")
        .unwrap();
    for (id, hash) in ids.iter().zip(&hashes) {
        let mut a = c.connect(&db, "alice");
        a.batch_execute("SET statement_timeout = '8s'").unwrap();
        let t0 = Instant::now();
        let r = exec_as(&mut a, id, hash)
            .unwrap_or_else(|e| panic!("{id}: bob's advisory locks blocked execute: {e:?}"));
        assert_eq!(r["status"], "SUCCESS", "{id}: {r}");
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{id}: waited {:?}",
            t0.elapsed()
        );
    }
    bob_xact.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn a_second_execute_of_the_same_playbook_times_out_cleanly() {
    let _conf = take_conf();
    let c = Cluster::shared();
    c.set_conf(&[("repair.lock_timeout", Some("500ms"))]);
    let db = c.fresh_db("atk_lock_timeout");
    let id = "busy_playbook";
    let hash = reg(c, &db, &playbook(id, "SELECT pg_sleep(4);"));
    let (_pid, first) = start_sleeper(c, &db, id, &hash);
    // while the first run holds the playbook lock, no advisory key is taken
    let k = lock_key(id);
    let mut bob = c.connect(&db, "bob");
    assert!(
        one::<bool>(&mut bob, &format!("SELECT pg_try_advisory_lock({k})")),
        "the playbook lock is the advisory key bob can take"
    );
    assert!(one::<bool>(
        &mut bob,
        &format!(
            "SELECT pg_try_advisory_lock({}, {})",
            (k >> 32) as i32,
            k as i32
        )
    ));
    bob.batch_execute("SELECT pg_advisory_unlock_all()")
        .unwrap();
    // the second execute waits at most repair.lock_timeout
    let mut second = c.connect(&db, "alice");
    second
        .batch_execute("SET statement_timeout = '10s'")
        .unwrap();
    let t0 = Instant::now();
    let e = clean_error(exec_as(&mut second, id, &hash));
    let waited = t0.elapsed();
    assert_eq!(e.code().code(), "55P03", "{}", e.message());
    assert!(e.message().starts_with("LOCK_TIMEOUT:"), "{}", e.message());
    assert!(e.message().contains(id), "{}", e.message());
    assert!(e.hint().is_some_and(|h| !h.is_empty()), "no hint");
    assert!(
        waited < Duration::from_millis(2500),
        "waited {waited:?} with lock_timeout 500ms"
    );
    let r = first.join().unwrap().expect("first run");
    assert_eq!(r["status"], "SUCCESS", "{r}");
    // and once the first run is over, the playbook runs again
    let r = exec_as(&mut second, id, &hash).expect("third run");
    assert_eq!(r["status"], "SUCCESS");
}

#[test]
fn a_cancel_while_waiting_for_the_playbook_lock_is_a_clean_57014() {
    let _conf = take_conf();
    let c = Cluster::shared();
    c.set_conf(&[("repair.lock_timeout", Some("20s"))]);
    let db = c.fresh_db("atk_lock_cancel");
    let id = "busy_cancel";
    let hash = reg(c, &db, &playbook(id, "SELECT pg_sleep(5);"));
    let (first_pid, first) = start_sleeper(c, &db, id, &hash);
    let mut b = Client::connect(&c.conninfo(&db, "alice"), NoTls).unwrap();
    let b_pid: i32 = one(&mut b, "SELECT pg_backend_pid()");
    let h2 = hash.clone();
    let t0 = Instant::now();
    let waiter = std::thread::spawn(move || exec_as(&mut b, "busy_cancel", &h2));
    // wait until the second backend is active and waiting on something (not the client)
    let mut su = c.connect(&db, "postgres");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: bool = su
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND state = 'active'
                   AND wait_event_type IS NOT NULL AND wait_event_type <> 'Client')",
                &[&b_pid],
            )
            .unwrap()
            .get(0);
        if waiting && t0.elapsed() > Duration::from_millis(300) {
            break;
        }
        assert!(Instant::now() < deadline, "second execute never waited");
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_ne!(b_pid, first_pid);
    assert!(one::<bool>(
        &mut su,
        &format!("SELECT pg_cancel_backend({b_pid})")
    ));
    let e = clean_error(waiter.join().unwrap());
    assert_eq!(e.code().code(), "57014", "{}", e.message());
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "cancel took {:?}",
        t0.elapsed()
    );
    assert_eq!(first.join().unwrap().expect("first")["status"], "SUCCESS");
}

#[test]
fn different_playbooks_never_wait_on_each_other() {
    let _conf = take_conf();
    let c = Cluster::shared();
    let db = c.fresh_db("atk_lock_indep");
    let h1 = reg(c, &db, &playbook("slow_one", "SELECT pg_sleep(3);"));
    let h2 = reg(c, &db, &playbook("fast_two", "SELECT 1;"));
    let (_pid, first) = start_sleeper(c, &db, "slow_one", &h1);
    let mut a = c.connect(&db, "alice");
    let t0 = Instant::now();
    let r = exec_as(&mut a, "fast_two", &h2).expect("independent playbook");
    assert_eq!(r["status"], "SUCCESS");
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "waited {:?}",
        t0.elapsed()
    );
    assert_eq!(first.join().unwrap().expect("first")["status"], "SUCCESS");
}

/// An auditor (SELECT on every repair table) tries every lock it can take on the extension's
/// tables in an open transaction; execute still finishes promptly.
#[test]
fn an_auditor_holding_locks_on_repair_tables_never_blocks_execute() {
    let _conf = take_conf();
    let c = Cluster::shared();
    c.set_conf(&[("repair.lock_timeout", Some("500ms"))]);
    let db = c.fresh_db("atk_lock_auditor");
    let hash = reg(c, &db, &playbook("audited_dos", "SELECT 1;"));
    let mut dave = c.connect(&db, "dave");
    // whatever the auditor's own functions lock stays locked while the transaction is open
    dave.batch_execute("BEGIN; SELECT * FROM repair.verify_audit(); SELECT repair.audit_head();")
        .unwrap();
    let tables: Vec<String> = dave
        .query(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'repair'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!tables.is_empty());
    let mut held = Vec::new();
    for t in &tables {
        for sql in [
            format!("LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE NOWAIT"),
            format!("LOCK TABLE {t} IN EXCLUSIVE MODE NOWAIT"),
            format!("LOCK TABLE {t} IN SHARE ROW EXCLUSIVE MODE NOWAIT"),
            format!("LOCK TABLE {t} IN SHARE MODE NOWAIT"),
            format!("SELECT 1 FROM {t} FOR UPDATE NOWAIT"),
            format!("SELECT 1 FROM {t} FOR KEY SHARE NOWAIT"),
            format!("LOCK TABLE {t} IN ACCESS SHARE MODE"),
        ] {
            dave.batch_execute("SAVEPOINT s").unwrap();
            match dave.batch_execute(&sql) {
                Ok(()) => {
                    held.push(sql);
                    dave.batch_execute("RELEASE SAVEPOINT s").unwrap();
                }
                Err(_) => dave.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap(),
            }
        }
    }
    let mut a = c.connect(&db, "alice");
    a.batch_execute("SET statement_timeout = '8s'").unwrap();
    let t0 = Instant::now();
    let r = exec_as(&mut a, "audited_dos", &hash)
        .unwrap_or_else(|e| panic!("blocked by the auditor's locks {held:?}: {e:?}"));
    assert_eq!(r["status"], "SUCCESS", "{r}");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "waited {:?} behind {held:?}",
        t0.elapsed()
    );
    dave.batch_execute("ROLLBACK").unwrap();
}

/// repair.lock_timeout is suset: a superuser executor may shorten it for its own session.
#[test]
fn a_superuser_sets_lock_timeout_for_its_session() {
    let _conf = take_conf();
    let c = Cluster::shared();
    superuser_executor(c);
    let db = c.fresh_db("atk_lock_su");
    let id = "busy_su";
    let hash = reg(c, &db, &playbook(id, "SELECT pg_sleep(4);"));
    let (_pid, first) = start_sleeper(c, &db, id, &hash);
    let mut admin = c.connect(&db, "admin2");
    admin
        .batch_execute("SET repair.lock_timeout = '200ms'")
        .expect("a superuser may set repair.lock_timeout");
    let t0 = Instant::now();
    let e = clean_error(exec_as(&mut admin, id, &hash));
    assert_eq!(e.code().code(), "55P03", "{}", e.message());
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "waited {:?}",
        t0.elapsed()
    );
    // an ordinary operator cannot
    let e = clean_error(
        c.connect(&db, "alice")
            .batch_execute("SET repair.lock_timeout = '1h'"),
    );
    assert_eq!(e.code().code(), "42501");
    assert_eq!(first.join().unwrap().expect("first")["status"], "SUCCESS");
}
