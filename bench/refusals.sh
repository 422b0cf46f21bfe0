#!/usr/bin/env bash
# Refusals on record (issue 12): what recording a refusal costs the caller. pgbench makes
# refused repair.execute calls (wrong hash: guard 6, HASH_MISMATCH), each caught by a DO block so
# pgbench goes on, with repair.record_refusals on and off alternately within each round. Every
# figure is the median of ROUNDS rounds. Nothing here asserts a time: it prints numbers and
# ratios (the issue's target: the callers' latency with recording on within 1.2x of off).
# After every `on` variant it waits for the refusal recorder to write the queue out, then checks
# that rows recorded + refusals counted as dropped = refusals pgbench made, and verify_audit();
# a MISMATCH or a broken chain makes the script exit 1 at the end.
#
#   bash bench/refusals.sh                 # the build installed into PG_BIN
#   ROUNDS=1 CLIENTS=4 EACH=1000 bash bench/refusals.sh
#
# Settings (environment): PG_BIN (default /usr/lib/postgresql/15/bin), ROUNDS (3), CLIENTS (8),
# EACH (2500 refusals per client per variant: 20,000 with 8 clients), JOBS (2 pgbench threads),
# DRAIN_TIMEOUT (120 seconds for the recorder to empty the queue).
#
# One throwaway cluster (scripts/scratch-cluster.sh) with synchronous_commit = off, so the
# figures measure CPU work, not the disk's flush latency.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-8}
EACH=${EACH:-2500}
JOBS=${JOBS:-2}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-120}
source scripts/scratch-cluster.sh

WORK=$(mktemp -d /tmp/pg_repair_bench_refusals.XXXXXX)
chmod 755 "$WORK"
STARTED=no
cleanup() {
    [[ $STARTED == yes ]] && scratch_cluster_stop "$PG_BIN" "$WORK/c"
    rm -rf "$WORK"
}
trap cleanup EXIT

sql() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$WORK/c" -p "$PORT" -U postgres -d bench "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
now() { date +%s.%N; }

echo "== pg_repair refusals benchmark: $(nproc) cores, $("$PG_BIN/pg_config" --version), $ROUNDS rounds, $CLIENTS clients x $EACH refusals per variant"
STARTED=yes
scratch_cluster_start "$PG_BIN" "$WORK/c" "synchronous_commit = off" "max_connections = 40"
"$PG_BIN/psql" -X -q -h "$WORK/c" -p "$PORT" -U postgres -d postgres -c "CREATE DATABASE bench"
sql <<'SQL'
CREATE EXTENSION pg_repair;
CREATE ROLE repair_operators NOLOGIN;
CREATE ROLE op LOGIN IN ROLE repair_operators;
GRANT USAGE ON SCHEMA repair TO repair_operators;
GRANT EXECUTE ON FUNCTION repair.execute(text, text, text, boolean, text) TO repair_operators;
SQL
sql -c "SELECT repair.register(\$pb\$-- repair: bench_pb
-- title: trivial playbook for the refusals benchmark
CREATE TABLE IF NOT EXISTS public.bench_t (x int);
\$pb\$)" >/dev/null
# Every transaction: one refused call (a hash that is never the registered one), caught so that
# pgbench goes on. The refusal is queued before the error reaches the DO block.
cat >"$WORK/refuse.sql" <<'SQL'
DO $$ BEGIN PERFORM repair.execute('bench_pb', repeat('0', 64), 'bench refusal'); EXCEPTION WHEN others THEN NULL; END $$;
SQL
# The call is refused and the refusal is recorded: a smoke test before measuring.
sql -c "ALTER SYSTEM SET repair.record_refusals = on" -c "SELECT pg_reload_conf()" >/dev/null
"$PG_BIN/psql" -X -q -At -h "$WORK/c" -p "$PORT" -U op -d bench \
    -c "SELECT repair.execute('bench_pb', repeat('0', 64), 'bench smoke')" >/dev/null 2>"$WORK/smoke.err" \
    && { echo "the call was not refused" >&2; exit 1; }
grep -q HASH_MISMATCH "$WORK/smoke.err" || { cat "$WORK/smoke.err" >&2; exit 1; }

# set_recording on|off: ALTER SYSTEM + reload, then wait until a new session sees it.
set_recording() {
    local want=$1
    sql -c "ALTER SYSTEM SET repair.record_refusals = $want" -c "SELECT pg_reload_conf()" >/dev/null
    local i
    for i in $(seq 1 100); do
        [[ $(sql -c "SHOW repair.record_refusals") == "$want" ]] && return 0
        sleep 0.1
    done
    echo "repair.record_refusals did not become $want" >&2
    return 1
}

# drain: waits until this database's queue is written out; prints the seconds it took.
drain() {
    local t0 state
    t0=$(now)
    while :; do
        state=$(sql -c "SELECT (q->>'queued')::bigint = 0 AND (q->>'dropped_pending')::bigint = 0 FROM (SELECT repair.refusal_queue() AS q) s")
        [[ $state == t ]] && break
        if awk -v a="$t0" -v b="$(now)" -v t="$DRAIN_TIMEOUT" 'BEGIN {exit !(b - a > t)}'; then
            echo "the refusal queue was not written out within ${DRAIN_TIMEOUT}s: $(sql -c "SELECT repair.refusal_queue()")" >&2
            return 1
        fi
        sleep 0.05
    done
    awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'
}

# totals: "recorded dropped" so far (the smoke test's refusal has another reason).
totals() {
    sql -F ' ' -c "SELECT count(*) FILTER (WHERE dropped IS NULL AND reason = 'bench refusal'), coalesce(sum(dropped), 0) FROM repair.refusals"
}

# run VARIANT: one pgbench run; appends latency and tps to R[VARIANT.*], sets MADE.
declare -A R
run() {
    local variant=$1 out
    out=$("$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$JOBS" -t "$EACH" \
        -h "$WORK/c" -p "$PORT" -U op -f "$WORK/refuse.sql" bench 2>&1) || { echo "$out" >&2; return 1; }
    local lat tps
    lat=$(awk '/latency average/ {print $4}' <<<"$out")
    tps=$(awk '/^tps = / {print $3}' <<<"$out")
    MADE=$(awk '/number of transactions actually processed/ {split($0, a, ": "); split(a[2], b, "/"); print b[1]}' <<<"$out")
    R[$variant.lat]+="$lat "
    R[$variant.tps]+="$tps "
    printf '   %-14s latency %8s ms  tps %10s  refusals %s\n' "$variant" "$lat" "$tps" "$MADE"
}

drain >/dev/null
read -r prev_rec prev_drop <<<"$(totals)"
FAILED=0
for round in $(seq 1 "$ROUNDS"); do
    echo "-- round $round"
    if (( round % 2 )); then order=(on off); else order=(off on); fi
    for variant in "${order[@]}"; do
        set_recording "$variant"
        run "recording_$variant"
        if [[ $variant == on ]]; then
            secs=$(drain)
            read -r rec drop <<<"$(totals)"
            got=$(( rec - prev_rec + drop - prev_drop ))
            verdict=MISMATCH
            (( got == MADE )) && verdict=MATCH
            ok=$(sql -c "SELECT ok FROM repair.verify_audit()")
            printf '   queue written out %s s after pgbench ended; recorded %d + dropped %d = %d, pgbench made %d: %s; verify_audit() = %s\n' \
                "$secs" $(( rec - prev_rec )) $(( drop - prev_drop )) "$got" "$MADE" "$verdict" "$ok"
            [[ $verdict == MATCH && $ok == t ]] || FAILED=1
            prev_rec=$rec prev_drop=$drop
        fi
    done
done

m() { tr ' ' '\n' <<<"${R[$1]}" | grep . | median; }
echo "-- medians of $ROUNDS round(s), pgbench -M prepared -c $CLIENTS -j $JOBS -t $EACH"
printf '%-16s %12s %12s   %s\n' "variant" "latency ms" "tps" "(rounds: latency / tps)"
for v in recording_on recording_off; do
    printf '%-16s %12s %12s   %s/ %s\n' "$v" "$(m "$v.lat")" "$(m "$v.tps")" "${R[$v.lat]}" "${R[$v.tps]}"
done
echo "latency on / off: $(ratio "$(m recording_on.lat)" "$(m recording_off.lat)")   (target <= 1.20)"
echo "tps on / off:     $(ratio "$(m recording_on.tps)" "$(m recording_off.tps)")"
echo "refusal queue now: $(sql -c "SELECT repair.refusal_queue()")"
if (( FAILED )); then
    echo "FAILED: refusals were lost or the audit chain does not verify (see above)" >&2
    exit 1
fi
