#!/usr/bin/env bash
# Runs every test, on a fresh machine too: installs what is missing (scripts/setup.sh, which also
# builds PostgreSQL 17 and 18), then
#   1. formatting and clippy (warnings are errors)
#   2. pure unit tests of the core crate (parser, canonical JSON, hashes)
#   then for each PostgreSQL major (15, 17, 18):
#   3. the built-in check SQL against a bare server (sql/test_checks.sh)
#   4. #[pg_test]s inside a pgrx-managed server of that major
#   5. installs the release build into that server
#   6. integration tests: scratch clusters with pg_repair preloaded, several roles, the real CLI
#   and once, after PostgreSQL 15: the Debian packages (scripts/test-package.sh): built, installed
#   with apt-get into the system PostgreSQL 15 in place of step 5's install, used, removed; leaves
#   the extension uninstalled there
# Clusters are started as the unprivileged `pgtest` user and stopped when the tests end.
# The wall time of every part is printed, and a summary at the end.
#
# Environment: PG_REPAIR_MAJORS="17" runs the per-major parts for PostgreSQL 17 only
# (default "15 17 18").
set -euo pipefail
cd "$(dirname "$0")/.."
export PG_REPAIR_MAJORS=${PG_REPAIR_MAJORS:-15 17 18}
export PATH="$HOME/.cargo/bin:$PATH"

timings=()
part_start=0
part_name=
step() {
    end_part
    part_name="$*"
    part_start=$SECONDS
    printf '\n== %s\n' "$*"
}
end_part() {
    if [[ -n $part_name ]]; then
        local took=$((SECONDS - part_start))
        timings+=("$(printf '%5d s  %s' "$took" "$part_name")")
        printf -- '-- %s: %d s\n' "$part_name" "$took"
        part_name=
    fi
}
summary() {
    local rc=$?
    end_part
    stop_leftover_clusters
    printf '\n== wall time per part\n'
    printf '%s\n' "${timings[@]}"
    printf '%5d s  total (exit %d)\n' "$SECONDS" "$rc"
}

stop_leftover_clusters() {
    for data in /tmp/pg_repair_it/*/data; do
        [[ -f "$data/postmaster.pid" ]] || continue
        for bin in /usr/lib/postgresql/*/bin /opt/pg_repair/postgresql/*/bin; do
            [[ -x $bin/pg_ctl ]] || continue
            runuser -u pgtest -- "$bin/pg_ctl" -D "$data" stop -m immediate >/dev/null 2>&1 && break
        done
    done
}
trap summary EXIT
stop_leftover_clusters
rm -rf /tmp/pg_repair_it

step "setup (Debian packages, PostgreSQL ${PG_REPAIR_MAJORS// /, }, cargo-pgrx)"
bash scripts/setup.sh

step "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "core unit tests"
cargo test -p pg_repair_core

for major in $PG_REPAIR_MAJORS; do
    PG_CONFIG=$(bash scripts/pg-config-path.sh "$major")
    PG_BIN=$("$PG_CONFIG" --bindir)
    PGRX_PGDATA=/tmp/pg_repair_pgtest-$major

    step "PostgreSQL $major: built-in check SQL, standalone (sql/test_checks.sh)"
    PG_BIN=$PG_BIN bash sql/test_checks.sh

    step "PostgreSQL $major: pgrx tests (in-server)"
    install -d -o pgtest -g pgtest "$PGRX_PGDATA"
    (cd extension && env -u RUST_BACKTRACE cargo pgrx test "pg$major" --runas pgtest --pgdata "$PGRX_PGDATA")

    step "PostgreSQL $major: install the release build"
    (cd extension && cargo pgrx install --release --pg-config "$PG_CONFIG")
    # Released install scripts (cargo pgrx installs only the current one and the upgrade scripts),
    # so the upgrade tests can create a database exactly as an earlier release did.
    install -m 644 extension/sql/pg_repair--*.sql "$("$PG_CONFIG" --sharedir)/extension/"

    step "PostgreSQL $major: integration tests (scratch clusters, roles, the CLI binary)"
    PG_REPAIR_PG_BIN=$PG_BIN PG_REPAIR_EXPECT_MAJOR=$major env -u RUST_BACKTRACE \
        cargo test -p pg_repair_tests -p pgrepair
    stop_leftover_clusters
    rm -rf /tmp/pg_repair_it

    if [[ $major == 15 && -f scripts/test-package.sh ]]; then
        step "PostgreSQL 15: Debian packages (build, apt-get install, run, apt-get remove)"
        bash scripts/test-package.sh
    fi
done
