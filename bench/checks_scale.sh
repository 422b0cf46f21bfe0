#!/usr/bin/env bash
# Validation checks at scale, on a throwaway local PostgreSQL 15 cluster with pg_repair
# preloaded: N tables (default 2,000), each with a primary key and one foreign key to the next
# table (N FKs): half of the FK columns without an index, every 10th FK column `integer`
# referencing a `bigint` key (a type mismatch). Then it times, median of REPS runs each:
#   SELECT count(*) FROM pg_class                   (the baseline, same run, same method)
#   SELECT * FROM repair.run_checks()                (all built-ins, recorded as a check run)
#   SELECT * FROM repair.check_<builtin>()           (each built-in on its own)
# and prints each median and its ratio to the baseline.
#
# Assumes scripts/setup.sh ran and the extension is installed into the system PostgreSQL 15.
# Run as root (the cluster runs as pgtest) or as a user initdb accepts. The cluster lives in
# a temp dir and is removed on exit.
#
# Environment: TABLES (default 2000), REPS (default 5).
set -euo pipefail
PG_BIN=/usr/lib/postgresql/15/bin
TABLES=${TABLES:-2000}
REPS=${REPS:-5}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

source "$(dirname "${BASH_SOURCE[0]}")/../scripts/scratch-cluster.sh"

DIR=$(mktemp -d /tmp/pg_repair_checks_scale.XXXXXX)
cleanup() {
    scratch_cluster_stop "$PG_BIN" "$DIR"
    rm -rf "$DIR"
}
trap cleanup EXIT

SCRATCH_INITDB_ARGS=(--no-sync)
scratch_cluster_start "$PG_BIN" "$DIR" "fsync = off" "max_locks_per_transaction = 512"
export PGHOST="$DIR" PGPORT="$PORT" PGUSER=postgres PGDATABASE=bench
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

say "schema: $TABLES tables, $TABLES foreign keys"
psql -d postgres -c "CREATE DATABASE bench"
psql -c "CREATE EXTENSION pg_repair"
start=$(date +%s.%N)
psql -v n="$TABLES" <<'SQL'
SELECT set_config('bench.n', :'n', false) AS n \gset
DO $$
DECLARE n int := current_setting('bench.n')::int;
BEGIN
    FOR i IN 1..n LOOP
        -- every 10th FK column is integer while every key is bigint: a type mismatch
        EXECUTE format('CREATE TABLE public.t_%s (id bigint PRIMARY KEY, ref %s, payload text)',
                       i, CASE WHEN i % 10 = 0 THEN 'integer' ELSE 'bigint' END);
    END LOOP;
    FOR i IN 1..n LOOP
        EXECUTE format('ALTER TABLE public.t_%s ADD CONSTRAINT t_%s_ref_fk FOREIGN KEY (ref) '
                       'REFERENCES public.t_%s (id)', i, i, i % n + 1);
        -- half of the FK columns are indexed
        IF i % 2 = 0 THEN
            EXECUTE format('CREATE INDEX t_%s_ref ON public.t_%s (ref)', i, i);
        END IF;
    END LOOP;
END $$;
ANALYZE;
SQL
printf 'created in %.1f s\n' "$(echo "$(date +%s.%N) - $start" | bc)"
psql -At -c "SELECT 'user tables: ' || count(*) FROM repair.user_tables()"
psql -At -c "SELECT 'foreign keys: ' || count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace"

# median_ms SQL: runs `SELECT count(*) FROM (SQL) q` REPS times (after one warm-up) with psql
# \timing and prints the median in ms.
median_ms() {
    local sql=$1 times=()
    psql -c "SELECT count(*) FROM ($sql) q" >/dev/null # warm-up (catalog caches)
    for _ in $(seq "$REPS"); do
        times+=("$(psql -c '\timing on' -c "SELECT count(*) FROM ($sql) q" \
            | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')")
    done
    printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

say "timings (median of $REPS, ms)"
base=$(median_ms "SELECT * FROM pg_class")
printf '%-48s %10s %8s\n' "query" "median ms" "x base"
printf '%-48s %10.2f %8s\n' "SELECT count(*) FROM pg_class (baseline)" "$base" "1.0"
for q in \
    "SELECT * FROM repair.run_checks()" \
    "SELECT * FROM repair.check_fk_type_mismatch()" \
    "SELECT * FROM repair.check_fk_missing_index()" \
    "SELECT * FROM repair.check_invalid_index()" \
    "SELECT * FROM repair.check_table_without_pk()"; do
    ms=$(median_ms "$q")
    printf '%-48s %10.2f %8.1f\n' "$q" "$ms" "$(echo "$ms / $base" | bc -l)"
done

say "what run_checks() found"
psql -c "SELECT check_id, status, violation_count FROM repair.run_checks() ORDER BY check_id"
