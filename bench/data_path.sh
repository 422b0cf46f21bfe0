#!/usr/bin/env bash
# The data-path benchmark (issue 10): repair.execute and verify_audit() against baselines measured
# in the same run, on throwaway clusters. Variants alternate within each round; every figure is
# the median of ROUNDS rounds. Nothing here asserts a time: it prints numbers and ratios.
#
#   bash bench/data_path.sh                       # the build installed into PG_BIN
#   BEFORE_PG_BIN=/opt/x/usr/lib/postgresql/15/bin bash bench/data_path.sh
#                                                 # also an earlier build (a copy of the same
#                                                 # PostgreSQL with that build installed)
# Settings (environment): PG_BIN (default /usr/lib/postgresql/15/bin), BEFORE_PG_BIN, ROUNDS (3),
# SECS (10 seconds per pgbench), CLIENTS (8), AUDIT_ROWS (1000000), PARTS (all: "throughput
# latency audit long idle").
#
# The clusters run with synchronous_commit = off, so the figures measure the server's CPU work
# (what this extension adds), not the disk's flush latency (which every variant that writes
# would share).
set -euo pipefail
cd "$(dirname "$0")/.."
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
BEFORE_PG_BIN=${BEFORE_PG_BIN:-}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-10}
CLIENTS=${CLIENTS:-8}
AUDIT_ROWS=${AUDIT_ROWS:-1000000}
PARTS=${PARTS:-throughput latency audit long idle}
source scripts/scratch-cluster.sh

WORK=$(mktemp -d /tmp/pg_repair_bench.XXXXXX)
chmod 755 "$WORK"
declare -A BIN PORTS
CLUSTERS=()
cleanup() {
    for name in "${CLUSTERS[@]}"; do scratch_cluster_stop "${BIN[$name]}" "$WORK/$name"; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# start NAME BIN [preload]: a cluster tuned alike for every variant.
start() {
    local name=$1 bin=$2 preload=${3:-yes}
    SCRATCH_PRELOAD=$preload scratch_cluster_start "$bin" "$WORK/$name" \
        "synchronous_commit = off" "shared_buffers = '1GB'" "max_connections = 50"
    BIN[$name]=$bin PORTS[$name]=$PORT
    CLUSTERS+=("$name")
}
sql() { local name=$1; shift; "${BIN[$name]}/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$WORK/$name" -p "${PORTS[$name]}" -U postgres -d bench "$@"; }

# The playbooks and the grants every execute cluster gets.
prepare_execute() {
    local name=$1
    "${BIN[$name]}/psql" -X -q -h "$WORK/$name" -p "${PORTS[$name]}" -U postgres -d postgres -c "CREATE DATABASE bench"
    sql "$name" <<'SQL'
CREATE EXTENSION pg_repair;
CREATE ROLE repair_operators NOLOGIN;
CREATE ROLE bencher LOGIN IN ROLE repair_operators;
GRANT USAGE ON SCHEMA repair TO repair_operators;
GRANT EXECUTE ON FUNCTION repair.execute(text, text, text, boolean, text) TO repair_operators;
GRANT CREATE, USAGE ON SCHEMA public TO repair_operators;
CREATE TABLE public.t (x int);
ALTER TABLE public.t OWNER TO bencher;
-- The baseline: one row into an append-only table guarded by a deny trigger.
CREATE TABLE public.append_only (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), note text NOT NULL);
CREATE FUNCTION public.deny() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'append-only'; END$$;
CREATE TRIGGER append_only_deny BEFORE UPDATE OR DELETE ON public.append_only FOR EACH ROW EXECUTE FUNCTION public.deny();
GRANT INSERT ON public.append_only TO bencher; GRANT USAGE ON SEQUENCE public.append_only_id_seq TO bencher;
SQL
    for i in 0 1 2 3; do
        sql "$name" -c "SELECT repair.register(\$pb\$-- repair: bench_$i
-- title: trivial playbook $i
CREATE TABLE IF NOT EXISTS public.t (x int);
\$pb\$)" >/dev/null
    done
    local body
    body=$(for i in $(seq 1 100); do
        echo "CREATE TABLE IF NOT EXISTS public.long_$i (id int PRIMARY KEY, note text);"
        echo "INSERT INTO public.long_$i (id, note) VALUES (1, 'x') ON CONFLICT DO NOTHING;"
    done)
    sql "$name" -c "SELECT repair.register(\$pb\$-- repair: bench_long
-- title: 100 creates and 100 inserts
$body
\$pb\$)" >/dev/null
    sql "$name" -c "ALTER TABLE public.t OWNER TO bencher" \
        -c "DO \$\$BEGIN FOR i IN 1..100 LOOP EXECUTE format('ALTER TABLE IF EXISTS public.long_%s OWNER TO bencher', i); END LOOP; END\$\$"
    for i in 0 1 2 3; do
        echo "SELECT repair.execute('bench_$i', '$(sql "$name" -c "SELECT hash FROM repair.playbooks WHERE id = 'bench_$i'")', 'bench', false, NULL);" >"$WORK/$name.exec_$i.sql"
    done
    echo "SELECT repair.execute('bench_long', '$(sql "$name" -c "SELECT hash FROM repair.playbooks WHERE id = 'bench_long'")', 'bench', false, NULL);" >"$WORK/$name.exec_long.sql"
}

# pgbench NAME COUNTER ARGS...: adds the processed transactions to $WORK/COUNTER and prints the
# output; tps / latency pick one figure out of it.
pgb() {
    local name=$1 counter=$2; shift 2
    local out
    out=$("${BIN[$name]}/pgbench" -n -h "$WORK/$name" -p "${PORTS[$name]}" -U bencher "$@" bench 2>&1) || { echo "$out" >&2; return 1; }
    awk '/number of transactions actually processed/ {split($0, a, ": "); split(a[2], b, "/"); print b[1]}' <<<"$out" >>"$WORK/$counter"
    echo "$out"
}
bench() { pgb "$@" | awk '/^tps = / {print $3}'; }
latency() { pgb "$@" | awk '/latency average/ {print $4}'; }
total() { [[ -f $WORK/$1 ]] && awk '{s += $1} END {print s}' "$WORK/$1" || echo 0; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
spread() { sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%s..%s", lo, hi}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo "== pg_repair data-path benchmark: $(nproc) cores, PostgreSQL $("$PG_BIN/pg_config" --version), $ROUNDS rounds of ${SECS}s, $CLIENTS clients"
start new "$PG_BIN"
prepare_execute new
NAMES=(new)
if [[ -n $BEFORE_PG_BIN ]]; then
    start before "$BEFORE_PG_BIN"
    prepare_execute before
    NAMES+=(before)
fi
echo "CREATE TABLE IF NOT EXISTS public.t (x int);" >"$WORK/bare.sql"
echo "INSERT INTO public.append_only (note) VALUES ('an audit row of about this size');" >"$WORK/insert.sql"
declare -A R

if [[ " $PARTS " == *" throughput "* ]]; then
    echo "-- throughput (pgbench -M prepared -c $CLIENTS -j 2, TPS)"
    for round in $(seq 1 "$ROUNDS"); do
        R[bare]+="$(bench new base -M prepared -c "$CLIENTS" -j 2 -T "$SECS" -f "$WORK/bare.sql") "
        R[insert]+="$(bench new base -M prepared -c "$CLIENTS" -j 2 -T "$SECS" -f "$WORK/insert.sql") "
        for name in "${NAMES[@]}"; do
            R[$name.exec4]+="$(bench "$name" "$name.runs" -M prepared -c "$CLIENTS" -j 2 -T "$SECS" \
                -f "$WORK/$name.exec_0.sql" -f "$WORK/$name.exec_1.sql" -f "$WORK/$name.exec_2.sql" -f "$WORK/$name.exec_3.sql") "
            R[$name.exec1]+="$(bench "$name" "$name.runs" -M prepared -c "$CLIENTS" -j 2 -T "$SECS" -f "$WORK/$name.exec_0.sql") "
        done
        echo "   round $round done"
    done
    m() { tr ' ' '\n' <<<"${R[$1]}" | grep . | median; }
    printf '%-58s %10s %s\n' "variant" "TPS" "(rounds)"
    printf '%-58s %10s %s\n' "the same statement bare" "$(m bare)" "${R[bare]}"
    printf '%-58s %10s %s\n' "one INSERT into an append-only table (deny trigger)" "$(m insert)" "${R[insert]}"
    for name in "${NAMES[@]}"; do
        printf '%-58s %10s %s\n' "repair.execute, 4 playbooks over $CLIENTS clients [$name]" "$(m "$name.exec4")" "${R[$name.exec4]}"
        printf '%-58s %10s %s\n' "repair.execute, 1 playbook, $CLIENTS clients [$name]" "$(m "$name.exec1")" "${R[$name.exec1]}"
    done
    echo "ratio execute(4 playbooks) / append-only INSERT: $(ratio "$(m new.exec4)" "$(m insert)")   (target >= 0.40)"
    if [[ -n $BEFORE_PG_BIN ]]; then
        echo "ratio execute(4 playbooks) new / before:         $(ratio "$(m new.exec4)" "$(m before.exec4)")   (target >= 4)"
        echo "ratio execute(1 playbook) new / before:          $(ratio "$(m new.exec1)" "$(m before.exec1)")"
    fi
fi

if [[ " $PARTS " == *" latency "* ]]; then
    echo "-- one client (pgbench -M prepared -c 1, average latency in ms)"
    for name in "${NAMES[@]}"; do
        l=$(for round in $(seq 1 "$ROUNDS"); do latency "$name" "$name.runs" -M prepared -c 1 -T "$SECS" -f "$WORK/$name.exec_0.sql"; done | median)
        echo "repair.execute, trivial playbook [$name]: $l ms   (target <= 0.30)"
    done
fi

if [[ " $PARTS " == *" long "* ]]; then
    echo "-- a 200-statement playbook (100 CREATE TABLE IF NOT EXISTS + 100 INSERT ... ON CONFLICT DO NOTHING), one client"
    # The same SQL as one simple query: pgbench joins lines ending in \; into one query.
    for i in $(seq 1 100); do
        echo "CREATE TABLE IF NOT EXISTS public.long_$i (id int PRIMARY KEY, note text)\\;"
        echo "INSERT INTO public.long_$i (id, note) VALUES (1, 'x') ON CONFLICT DO NOTHING\\;"
    done | sed '$ s/\\;$/;/' >"$WORK/long_simple.sql"
    for name in "${NAMES[@]}"; do
        for round in $(seq 1 "$ROUNDS"); do
            R[$name.simple]+="$(latency "$name" base -M simple -c 1 -T "$SECS" -f "$WORK/long_simple.sql") "
            R[$name.long]+="$(latency "$name" "$name.runs" -M prepared -c 1 -T "$SECS" -f "$WORK/$name.exec_long.sql") "
        done
        s=$(tr ' ' '\n' <<<"${R[$name.simple]}" | grep . | median)
        l=$(tr ' ' '\n' <<<"${R[$name.long]}" | grep . | median)
        echo "[$name] as one simple query: $s ms; through repair.execute: $l ms; ratio $(ratio "$l" "$s")   (target <= 1.30)"
    done
fi

if [[ " $PARTS " == *" throughput "* || " $PARTS " == *" latency "* || " $PARTS " == *" long "* ]]; then
    echo "-- the audit chain after the load"
    for name in "${NAMES[@]}"; do
        runs=$(sql "$name" -c "SELECT count(*) FROM repair.runs")
        ok=$(sql "$name" -c "SELECT ok FROM repair.verify_audit()")
        echo "[$name] verify_audit() = $ok; repair.runs rows = $runs; repair.execute transactions pgbench reported = $(total "$name.runs")"
    done
fi

if [[ " $PARTS " == *" audit "* ]]; then
    echo "-- verify_audit() on $AUDIT_ROWS runs rows"
    have=$(sql new -c "SELECT count(*) FROM repair.runs")
    if (( have < AUDIT_ROWS )); then
        need=$(( AUDIT_ROWS - have ))
        per=$(( (need + CLIENTS - 1) / CLIENTS ))
        echo "   filling: $((per * CLIENTS)) more runs through repair.execute ..."
        bench new new.runs -M prepared -c "$CLIENTS" -j 2 -t "$per" \
            -f "$WORK/new.exec_0.sql" -f "$WORK/new.exec_1.sql" -f "$WORK/new.exec_2.sql" -f "$WORK/new.exec_3.sql" >/dev/null
    fi
    sql new -c "VACUUM ANALYZE repair.runs" -c "SELECT count(*) FROM repair.runs" >/dev/null
    verify_rate() {
        local name=$1
        for round in $(seq 1 "$ROUNDS"); do
            local t0 t1 r
            t0=$(date +%s.%N)
            r=$(sql "$name" -c "SELECT rows_checked || ' ' || ok FROM repair.verify_audit()")
            t1=$(date +%s.%N)
            echo "$r $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')"
        done
    }
    for name in new ${BEFORE_PG_BIN:+before}; do
        if [[ $name == before ]]; then
            # the same data, verified by the earlier build: restart the data directory on its binaries
            as_pg "${BIN[new]}/pg_ctl" -D "$WORK/new/data" -w stop -m fast >/dev/null
            as_pg "$BEFORE_PG_BIN/pg_ctl" -D "$WORK/new/data" -l "$WORK/new/server.log" -w start >/dev/null
        fi
        out=$(verify_rate new)
        rows=$(head -1 <<<"$out" | cut -d' ' -f1)
        oks=$(cut -d' ' -f2 <<<"$out" | sort -u | tr '\n' ' ')
        secs=$(cut -d' ' -f3 <<<"$out" | median)
        echo "[$name build] verify_audit(): $rows rows in $secs s (median) = $(awk -v r="$rows" -v s="$secs" 'BEGIN {printf "%d", r / s}') rows/s; ok = $oks  (target >= 300000 rows/s)"
        if [[ $name == before ]]; then
            as_pg "$BEFORE_PG_BIN/pg_ctl" -D "$WORK/new/data" -w stop -m fast >/dev/null
            as_pg "${BIN[new]}/pg_ctl" -D "$WORK/new/data" -l "$WORK/new/server.log" -w start >/dev/null
        fi
    done
fi

if [[ " $PARTS " == *" idle "* ]]; then
    echo "-- idle cost of the preloaded library: pgbench TPC-B and select-only, preloaded vs not"
    # Two fresh clusters alike but for shared_preload_libraries (not the one the parts above
    # filled: its autovacuum would still be at work).
    start idle_pre "$PG_BIN" yes
    start idle_plain "$PG_BIN" no
    for name in idle_pre idle_plain; do
        "${BIN[$name]}/psql" -X -q -h "$WORK/$name" -p "${PORTS[$name]}" -U postgres -d postgres -c "CREATE DATABASE idle"
        "${BIN[$name]}/pgbench" -q -i -s 10 -h "$WORK/$name" -p "${PORTS[$name]}" -U postgres idle >/dev/null 2>&1
        "${BIN[$name]}/psql" -X -q -h "$WORK/$name" -p "${PORTS[$name]}" -U postgres -d idle -c "VACUUM ANALYZE" -c "CHECKPOINT"
    done
    idle() {
        local name=$1; shift
        "${BIN[$name]}/pgbench" -n -h "$WORK/$name" -p "${PORTS[$name]}" -U postgres -M prepared -c "$CLIENTS" -j 2 -T "$SECS" "$@" idle 2>&1 | awk '/^tps = / {print $3}'
    }
    for mode in tpcb select; do
        flag=""; [[ $mode == select ]] && flag="-S"
        ratios=""
        for round in $(seq 1 "$ROUNDS"); do
            # the order alternates, so drift on a shared machine favours neither side
            if (( round % 2 )); then
                a=$(idle idle_pre $flag); b=$(idle idle_plain $flag)
            else
                b=$(idle idle_plain $flag); a=$(idle idle_pre $flag)
            fi
            ratios+="$(ratio "$a" "$b") "
        done
        echo "$mode: preloaded / not preloaded = $(tr ' ' '\n' <<<"$ratios" | grep . | median) (median; spread $(tr ' ' '\n' <<<"$ratios" | grep . | spread); rounds: $ratios)  (target >= 0.98)"
    done
fi
