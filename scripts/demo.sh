#!/usr/bin/env bash
# The main job end to end on a throwaway local cluster: install pg_repair (release build), start
# PostgreSQL 15 with the library preloaded and repair.db_role = staging, register the sample
# playbooks, preview one, execute it, and show the audit trail and its verification.
# The cluster lives in a temporary directory and is stopped and removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_REPAIR_MAJORS=15 bash scripts/setup.sh   # the demo needs PostgreSQL 15 only
export PATH="$HOME/.cargo/bin:$PATH"
PG_BIN=/usr/lib/postgresql/15/bin

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "build and install the extension and the CLI"
(cd extension && cargo pgrx install --release --pg-config "$PG_BIN/pg_config" >/dev/null)
cargo build --release -q -p pgrepair
PGREPAIR="$PWD/target/release/pgrepair"

say "start a throwaway cluster (pg_repair preloaded, repair.db_role = staging)"
DIR=$(mktemp -d /tmp/pg_repair_demo.XXXXXX)
source scripts/scratch-cluster.sh
cleanup() { scratch_cluster_stop "$PG_BIN" "$DIR"; rm -rf "$DIR"; }
trap cleanup EXIT
scratch_cluster_start "$PG_BIN" "$DIR"
export PGHOST="$DIR" PGPORT="$PORT" PGDATABASE=demo
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

say "create the database, the extension, roles and the application schema"
psql -U postgres -d postgres -c "CREATE DATABASE demo"
psql -U postgres <<'SQL'
CREATE EXTENSION pg_repair;
CREATE ROLE repair_operators NOLOGIN;
CREATE ROLE repair_authors NOLOGIN;
CREATE ROLE author LOGIN IN ROLE repair_authors;
CREATE ROLE operator LOGIN IN ROLE repair_operators;
GRANT USAGE ON SCHEMA repair TO repair_authors, repair_operators;
GRANT EXECUTE ON FUNCTION repair.register(text), repair.retire(text, text) TO repair_authors;
GRANT EXECUTE ON FUNCTION repair.preview(text), repair.execute(text, text, text, boolean, text) TO repair_operators;
GRANT EXECUTE ON FUNCTION repair.online_begin(text, text, text, boolean, text),
    repair.online_finish(uuid), repair.online_abort(uuid, text) TO repair_operators;
GRANT SELECT ON ALL TABLES IN SCHEMA repair TO repair_operators;
GRANT EXECUTE ON FUNCTION repair.verify_audit(), repair.audit_head() TO repair_operators;
CREATE TABLE public.workspaces (id bigint PRIMARY KEY);
CREATE TABLE public.customers (id bigint PRIMARY KEY);
CREATE TABLE public.orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES public.customers (id));
CREATE TABLE public.source_configs (id bigint PRIMARY KEY, workspace_id bigint, source_type text, status text);
ALTER TABLE public.workspaces OWNER TO operator;
ALTER TABLE public.orders OWNER TO operator;
INSERT INTO public.customers SELECT generate_series(1, 100);
INSERT INTO public.orders SELECT g, g % 100 + 1 FROM generate_series(1, 50000) g;
GRANT CREATE ON SCHEMA public TO operator;
SQL

say "pgrepair install playbooks/   (as an author)"
PGUSER=author "$PGREPAIR" install playbooks

say "pgrepair list"
PGUSER=operator "$PGREPAIR" list

say "pgrepair preview intent_issue_tables   (as an operator)"
PGUSER=operator "$PGREPAIR" preview intent_issue_tables

HASH=$("$PGREPAIR" hash playbooks/intent_issue_tables.sql | cut -d' ' -f1)
say "pgrepair execute intent_issue_tables --hash $HASH   (hash computed offline from the file)"
PGUSER=operator "$PGREPAIR" execute intent_issue_tables --hash "$HASH" --reason "DEMO-1: recreate the lost issue authoring tables"

say "a second run is a no-op (idempotent) and is audited too"
PGUSER=operator "$PGREPAIR" execute intent_issue_tables --hash "$HASH" --reason "DEMO-2: confirm idempotence" >/dev/null && echo "SUCCESS"

say "a run with a stale hash is refused"
PGUSER=operator "$PGREPAIR" execute intent_issue_tables --hash "${HASH%????}0000" --reason "DEMO-3" || echo "(exit $?: refused as expected)"

OHASH=$("$PGREPAIR" hash playbooks/fk_index_orders_customer_online.sql | cut -d' ' -f1)
say "an online playbook: CREATE INDEX CONCURRENTLY, one statement at a time (writers never blocked)"
PGUSER=operator "$PGREPAIR" execute fk_index_orders_customer_online --hash "$OHASH" --reason "DEMO-4: index orders.customer_id without blocking writers"

say "pgrepair runs"
PGUSER=operator "$PGREPAIR" runs

say "pgrepair audit verify"
PGUSER=operator "$PGREPAIR" audit verify
