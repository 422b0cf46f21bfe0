//! `pgrepair execute` driving online playbooks with the real binary and a real server: progress
//! and the JSON result, Ctrl-C (online_abort, exit 1), and SIGKILL mid-build and mid-backfill
//! (an INCOMPLETE run, a verifying chain, the INVALID index reported, a re-run that completes).

mod common;
use common::*;

use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use pg_repair_tests::{register, Cluster};
use postgres::Client;
use serde_json::Value;

fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("pgrepair")
}

fn spawn_execute(c: &Cluster, db: &str, id: &str, hash: &str, extra: &[&str]) -> Child {
    StdCommand::new(bin())
        .args(["--dsn", &c.url(db, "alice"), "execute", id])
        .args(["--hash", hash, "--reason", "TICKET-9 online"])
        .args(extra)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pgrepair")
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn count(su: &mut Client, sql: &str) -> i64 {
    su.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

fn verify_ok(su: &mut Client) {
    let ok: bool = su
        .query_one("SELECT ok FROM repair.verify_audit()", &[])
        .unwrap()
        .get(0);
    assert!(ok, "verify_audit");
}

fn sample(name: &str) -> String {
    std::fs::read_to_string(pg_repair_tests::repo_root().join("playbooks").join(name)).unwrap()
}

const ORDERS: &str = "
    CREATE TABLE public.customers (id bigint PRIMARY KEY);
    INSERT INTO public.customers SELECT generate_series(0, 99);
    CREATE TABLE public.orders (id bigserial PRIMARY KEY, customer_id bigint, created_at timestamptz DEFAULT now(), placed_on date);
    INSERT INTO public.orders (customer_id, created_at) SELECT g % 100, now() - g * interval '1 minute' FROM generate_series(1, 20000) g;
    ALTER TABLE public.customers OWNER TO alice;
    ALTER TABLE public.orders OWNER TO alice;";

#[test]
fn execute_drives_the_online_samples_with_progress_and_a_json_result() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_cli");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(ORDERS).unwrap();
    let mut carol = c.connect(&db, "carol");
    let (_, ix, _) = register(&mut carol, &sample("fk_index_orders_customer_online.sql"));
    let (_, fk, _) = register(
        &mut carol,
        &sample("fk_orders_customer_validate_online.sql"),
    );
    let (_, fill, _) = register(&mut carol, &sample("backfill_orders_placed_on.sql"));

    let out = run(cli(c, &db, "alice").args([
        "execute",
        "fk_index_orders_customer_online",
        "--hash",
        &ix,
        "--reason",
        "TICKET-9",
        "--json",
    ]));
    expect_code(&out, 0);
    let result: Value = serde_json::from_str(&stdout_of(&out)).expect("one JSON document");
    assert_eq!(result["status"], "SUCCESS");
    assert_eq!(result["mode"], "online");
    assert_eq!(result["statements_executed"], 2);
    let err = stderr_of(&out);
    assert!(err.contains("[1/2]") && err.contains("[2/2]"), "{err}");
    assert!(err.contains("CREATE INDEX CONCURRENTLY"), "{err}");
    assert_clean_text(&err);

    let out = run(cli(c, &db, "alice").args([
        "execute",
        "fk_orders_customer_validate_online",
        "--hash",
        &fk,
        "--reason",
        "TICKET-9",
    ]));
    expect_code(&out, 0);
    assert!(stdout_of(&out).contains("SUCCESS"), "{}", stdout_of(&out));
    let validated: bool = su
        .query_one(
            "SELECT convalidated FROM pg_constraint WHERE conname = 'orders_customer_id_fkey'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(validated);

    let out = run(cli(c, &db, "alice").args([
        "execute",
        "backfill_orders_placed_on",
        "--hash",
        &fill,
        "--reason",
        "TICKET-4711",
        "--json",
    ]));
    expect_code(&out, 0);
    let result: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(result["rows_affected"], 20000);
    assert_eq!(result["batches"], 5, "4 batches of 5000 and the empty one");
    let err = stderr_of(&out);
    assert!(err.contains("batch 4: 5000 rows (20000 so far)"), "{err}");
    assert_eq!(
        count(
            &mut su,
            "SELECT count(*) FROM public.orders WHERE placed_on IS NULL"
        ),
        0
    );

    // preview marks the mode and the batch statement
    let out = run(cli(c, &db, "alice").args(["preview", "backfill_orders_placed_on"]));
    expect_code(&out, 0);
    let text = stdout_of(&out);
    assert!(
        text.contains("online") && text.contains("[batch]"),
        "{text}"
    );
    // runs shows one line per online run
    let out = run(cli(c, &db, "postgres").args(["runs", "--json"]));
    expect_code(&out, 0);
    let runs: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 3, "{runs}");
    verify_ok(&mut su);
}

#[test]
fn ctrl_c_aborts_the_online_run_and_exits_1() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_cli_sigint");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(ORDERS).unwrap();
    let mut src = sample("backfill_orders_placed_on.sql")
        .replace("LIMIT 5000", "LIMIT 100")
        .replace("batch-pause: 100ms", "batch-pause: 200ms");
    src = src.replace("backfill_orders_placed_on", "backfill_slow");
    let (_, hash, _) = register(&mut c.connect(&db, "carol"), &src);
    let child = spawn_execute(c, &db, "backfill_slow", &hash, &["--json"]);
    wait_for("a few batches", Duration::from_secs(20), || {
        count(
            &mut su,
            "SELECT count(*) FROM public.orders WHERE placed_on IS NOT NULL",
        ) >= 300
    });
    // SAFETY: SIGINT to the pgrepair process this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    expect_code(&out, 1);
    let result: Value = serde_json::from_str(&stdout_of(&out)).expect("the ABORTED result");
    assert_eq!(result["status"], "ABORTED", "{result}");
    let done = count(
        &mut su,
        "SELECT count(*) FROM public.orders WHERE placed_on IS NOT NULL",
    );
    assert!(done < 20000, "stopped early");
    assert_eq!(result["rows_affected"].as_i64(), Some(done));
    let closing: String = su
        .query_one(
            "SELECT status FROM repair.runs WHERE playbook_id = 'backfill_slow' ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(closing, "ABORTED");
    verify_ok(&mut su);
}

/// SIGKILLs the CLI: its session is noticed gone (client_connection_check_interval) while it
/// waits inside CREATE INDEX CONCURRENTLY, which leaves the index INVALID.
#[test]
fn sigkill_mid_build_and_mid_backfill_leaves_incomplete_runs_that_a_rerun_completes() {
    let c = Cluster::shared();
    let db = c.fresh_db("online_cli_kill");
    let mut su = c.connect(&db, "postgres");
    su.batch_execute(ORDERS).unwrap();
    su.batch_execute(&format!(
        "ALTER DATABASE {db} SET client_connection_check_interval = '100ms'"
    ))
    .unwrap();
    let src = sample("fk_index_orders_customer_online.sql")
        .replace("lock-timeout: 2s", "lock-timeout: 60s");
    let (_, hash, _) = register(&mut c.connect(&db, "carol"), &src);
    let id = "fk_index_orders_customer_online";

    // A writer's open transaction: CREATE INDEX CONCURRENTLY waits for it after creating the index.
    let mut writer = c.connect(&db, "postgres");
    writer
        .batch_execute("BEGIN; INSERT INTO public.orders (customer_id) VALUES (1)")
        .unwrap();
    let mut child = spawn_execute(c, &db, id, &hash, &[]);
    wait_for(
        "the build waiting for the writer",
        Duration::from_secs(20),
        || {
            count(
            &mut su,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'",
        ) == 1
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for(
        "the killed client's session to end",
        Duration::from_secs(20),
        || {
            count(
            &mut su,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%'",
        ) == 0
        },
    );
    writer.batch_execute("COMMIT").unwrap();
    let invalid = count(
        &mut su,
        "SELECT count(*) FROM repair.check_invalid_index() WHERE index_name::text LIKE '%orders_customer_id_idx%'",
    );
    assert_eq!(
        invalid, 1,
        "the interrupted build left an INVALID index, and the check names it"
    );
    let incomplete = count(
        &mut su,
        "SELECT count(*) FROM repair.runs r WHERE playbook_id = 'fk_index_orders_customer_online' AND status = 'STARTED'
            AND NOT EXISTS (SELECT 1 FROM repair.runs x WHERE x.online_run = r.run_id AND x.status <> 'STARTED')",
    );
    assert_eq!(incomplete, 1);
    verify_ok(&mut su);
    let out = run(cli(c, &db, "postgres").args(["runs", "--playbook", id]));
    expect_code(&out, 0);
    assert!(
        stdout_of(&out).contains("INCOMPLETE"),
        "{}",
        stdout_of(&out)
    );

    // the re-run reports the incomplete run and repairs the leftover (REINDEX CONCURRENTLY)
    let out = run(cli(c, &db, "alice").args([
        "execute",
        id,
        "--hash",
        &hash,
        "--reason",
        "TICKET-9 again",
    ]));
    expect_code(&out, 0);
    assert!(
        stderr_of(&out).to_lowercase().contains("incomplete"),
        "{}",
        stderr_of(&out)
    );
    let valid: bool = su
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.orders_customer_id_idx'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(valid, "the re-run rebuilt the index");
    assert_eq!(
        count(&mut su, "SELECT count(*) FROM repair.check_invalid_index()"),
        0
    );

    // mid-backfill
    let src = sample("backfill_orders_placed_on.sql").replace("LIMIT 5000", "LIMIT 200");
    let (_, fill, _) = register(&mut c.connect(&db, "carol"), &src);
    let mut child = spawn_execute(c, &db, "backfill_orders_placed_on", &fill, &[]);
    wait_for("some batches", Duration::from_secs(20), || {
        count(
            &mut su,
            "SELECT count(*) FROM public.orders WHERE placed_on IS NOT NULL",
        ) >= 1000
    });
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for(
        "the killed client's session to end",
        Duration::from_secs(20),
        || {
            count(&mut su, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'UPDATE public.orders%' AND state = 'active'") == 0
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let done = count(
        &mut su,
        "SELECT count(*) FROM public.orders WHERE placed_on IS NOT NULL",
    );
    assert!(done > 0 && done < 20001, "partly backfilled: {done}");
    verify_ok(&mut su);
    let out = run(cli(c, &db, "alice").args([
        "execute",
        "backfill_orders_placed_on",
        "--hash",
        &fill,
        "--reason",
        "TICKET-4711 again",
        "--json",
    ]));
    expect_code(&out, 0);
    let result: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(result["status"], "SUCCESS");
    let total = count(
        &mut su,
        "SELECT count(*) FROM public.orders WHERE created_at IS NOT NULL",
    );
    assert_eq!(result["rows_affected"].as_i64(), Some(total - done));
    assert_eq!(
        count(
            &mut su,
            "SELECT count(*) FROM public.orders WHERE placed_on IS NULL"
        ),
        0
    );
    verify_ok(&mut su);
}
