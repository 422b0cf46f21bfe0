#!/usr/bin/env bash
# Lint benchmark and hook overhead, on throwaway local PostgreSQL 15 clusters (see README.md):
#   1. speed:   a generated 10,000-statement playbook through repair.lint and through squawk
#   2. corpus:  each case of bench/destructive_corpus.sql through both; what each one flagged
#   3. pgbench: TPS with pg_repair preloaded vs a plain cluster (select-only and tpcb-like)
# Assumes scripts/setup.sh ran and the extension (with repair.lint) is installed into the
# system PostgreSQL 15 (`cargo pgrx install --release`). Run as root (clusters run as pgtest)
# or as any user initdb accepts. Clusters live in a temp dir and are removed on exit.
#
# Environment:
#   BENCH_PARTS   which parts to run (default "speed corpus pgbench")
#   REPS          timed repetitions for the speed part (default 5; median reported)
#   STATEMENTS    size of the generated playbook (default 10000)
#   PGBENCH_T     seconds per pgbench run (default 20)
#   PGBENCH_ROUNDS rounds per mode, each running both clusters, order alternating (default 2)
#   PGREPAIR      a pgrepair binary to time end to end too (default: target/release/pgrepair
#                 under $CARGO_TARGET_DIR or ./target, when it exists)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
PG_BIN=/usr/lib/postgresql/15/bin
PARTS=${BENCH_PARTS:-speed corpus pgbench}
REPS=${REPS:-5}
STATEMENTS=${STATEMENTS:-10000}
PGBENCH_T=${PGBENCH_T:-20}
PGBENCH_ROUNDS=${PGBENCH_ROUNDS:-2}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
has_part() { [[ " $PARTS " == *" $1 "* ]]; }
die() { echo "bench: $*" >&2; exit 2; }

[[ -f /usr/share/postgresql/15/extension/pg_repair.control ]] ||
    die "pg_repair is not installed into PostgreSQL 15 (run scripts/setup.sh, then cargo pgrx install --release in extension/)"

# A debug build (what `cargo pgrx test` installs) is several times slower than the release build:
# its timings say nothing about the product.
SO=/usr/lib/postgresql/15/lib/pg_repair.so
if [[ -f $SO ]] && { readelf -S "$SO" 2>/dev/null | grep -q '\.debug_info' || (( $(stat -c %s "$SO") > 20000000 )); }; then
    echo "bench: WARNING: $SO looks like a debug build ($(( $(stat -c %s "$SO") / 1000000 )) MB, with debug info);" \
         "install the release build (cargo pgrx install --release) for representative numbers" >&2
fi

# --- squawk from PyPI, in a private venv -------------------------------------------------------
SQUAWK=$BENCH/.venv/bin/squawk
if has_part speed || has_part corpus; then
    if [[ ! -x $SQUAWK ]]; then
        say "installing squawk-cli from PyPI into bench/.venv"
        python3 -m venv "$BENCH/.venv"
        "$BENCH/.venv/bin/pip" install -q squawk-cli
    fi
    SQUAWK_VERSION=$("$SQUAWK" --version)
    echo "bench: using $SQUAWK_VERSION"
fi

# --- throwaway clusters --------------------------------------------------------------------------
source scripts/scratch-cluster.sh
WORK=$(mktemp -d /tmp/pg_repair_bench.XXXXXX)
if [[ $(id -u) -eq 0 ]]; then
    chown "$SCRATCH_USER:$SCRATCH_USER" "$WORK"
fi
CLUSTERS=()
cleanup() {
    for d in "${CLUSTERS[@]}"; do
        scratch_cluster_stop "$PG_BIN" "$d"
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# start_cluster NAME PRELOAD(yes|no) → sets $DIR and $PORT; the server is reachable on the
# Unix socket in $DIR as postgres (trust).
start_cluster() {
    local name=$1
    local SCRATCH_PRELOAD=$2
    local -a SCRATCH_INITDB_ARGS=(-E UTF8 --no-sync)
    DIR=$WORK/$name
    # CPU-bound comparisons: no disk flushes in either cluster
    scratch_cluster_start "$PG_BIN" "$DIR" "fsync = off" "synchronous_commit = off" \
        "full_page_writes = off" "shared_buffers = 256MB"
    CLUSTERS+=("$DIR")
}

psql_on() { # DIR PORT DB args...
    local dir=$1 port=$2 db=$3
    shift 3
    psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d "$db" "$@"
}

# --- 1 + 2: lint speed and the destructive corpus ----------------------------------------------
if has_part speed || has_part corpus; then
    say "cluster with pg_repair preloaded, for repair.lint"
    start_cluster lint yes
    LINT_DIR=$DIR LINT_PORT=$PORT
    psql_on "$DIR" "$PORT" postgres -c "CREATE DATABASE bench" >/dev/null
    psql_on "$DIR" "$PORT" bench -c "CREATE EXTENSION pg_repair" >/dev/null
    has_lint=$(psql_on "$DIR" "$PORT" bench -At -c "SELECT to_regprocedure('repair.lint(text)') IS NOT NULL")
    [[ $has_lint == t ]] || die "the installed pg_repair has no repair.lint(text) yet: reinstall the extension"
    export PGHOST=$DIR PGPORT=$PORT PGUSER=postgres PGDATABASE=bench
    echo "bench: PostgreSQL $(psql_on "$DIR" "$PORT" bench -At -c 'SHOW server_version'), socket $DIR port $PORT"

    if has_part speed; then
        say "speed: a generated $STATEMENTS-statement playbook, repair.lint vs squawk"
        python3 "$BENCH/lint_bench.py" generate "$WORK/generated.sql" "$STATEMENTS"
        if [[ -z ${PGREPAIR:-} ]]; then
            PGREPAIR=${CARGO_TARGET_DIR:-$ROOT/target}/release/pgrepair
        fi
        python3 "$BENCH/lint_bench.py" speed --file "$WORK/generated.sql" --reps "$REPS" \
            --squawk "$SQUAWK" --squawk-version "$SQUAWK_VERSION" \
            --pgrepair "$PGREPAIR" --dsn "host=$DIR port=$PORT user=postgres dbname=bench"
    fi

    if has_part corpus; then
        say "destructive corpus: bench/destructive_corpus.sql, one case at a time"
        python3 "$BENCH/lint_bench.py" corpus --corpus "$BENCH/destructive_corpus.sql" --squawk "$SQUAWK"
    fi
    unset PGHOST PGPORT PGUSER PGDATABASE
fi

# --- 3: pgbench, hooks loaded vs not ---------------------------------------------------------------
if has_part pgbench; then
    say "pgbench: pg_repair preloaded (CREATE EXTENSION done) vs a plain cluster, same settings"
    start_cluster pgb_repair yes
    A_DIR=$DIR A_PORT=$PORT
    start_cluster pgb_plain no
    B_DIR=$DIR B_PORT=$PORT
    for side in A B; do
        dir_var=${side}_DIR port_var=${side}_PORT
        psql_on "${!dir_var}" "${!port_var}" postgres -c "CREATE DATABASE pgb" >/dev/null
        "$PG_BIN/pgbench" -q -i -s 5 -h "${!dir_var}" -p "${!port_var}" -U postgres pgb >/dev/null 2>&1
    done
    psql_on "$A_DIR" "$A_PORT" pgb -c "CREATE EXTENSION pg_repair" >/dev/null
    echo "bench: preloaded: $(psql_on "$A_DIR" "$A_PORT" pgb -At -c 'SHOW shared_preload_libraries'), plain: '$(psql_on "$B_DIR" "$B_PORT" pgb -At -c 'SHOW shared_preload_libraries')'"

    tps() { # DIR PORT extra-args... → TPS (excluding connection time)
        local dir=$1 port=$2
        shift 2
        "$PG_BIN/pgbench" -n -c 2 -j 2 -T "$PGBENCH_T" -h "$dir" -p "$port" -U postgres "$@" pgb 2>/dev/null |
            sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | tail -1
    }
    # Each round runs both sides back to back, the order alternating between rounds (and
    # between modes), so drift on a shared machine does not always favour the same side.
    results=()
    for mode in select tpcb; do
        args=()
        [[ $mode == select ]] && args=(-S)
        for ((round = 1; round <= PGBENCH_ROUNDS; round++)); do
            off=0
            [[ $mode == tpcb ]] && off=1
            if (( (round + off) % 2 == 1 )); then order=(A B); else order=(B A); fi
            for side in "${order[@]}"; do
                dir_var=${side}_DIR port_var=${side}_PORT
                t=$(tps "${!dir_var}" "${!port_var}" "${args[@]}")
                [[ -n $t ]] || die "pgbench ($mode, side $side) printed no tps"
                results+=("$mode $side $t")
                echo "  $mode round $round $([[ $side == A ]] && echo preloaded || echo plain): $t tps"
            done
        done
    done
    echo
    printf '%s\n' "${results[@]}" | python3 "$BENCH/lint_bench.py" pgbench-summary
fi
say "done"
