#!/usr/bin/env bash
# Runs every test, on a fresh machine too: installs what is missing (scripts/setup.sh), then
#   1. formatting and clippy (warnings are errors)
#   2. pure unit tests of the core crate (parser, canonical JSON, hashes)
#      and the built-in check SQL against a bare PostgreSQL (sql/test_checks.sh)
#   3. #[pg_test]s inside a pgrx-managed PostgreSQL 15
#   4. installs the release build into the system PostgreSQL 15
#   5. integration tests: scratch clusters with pg_repair preloaded, several roles, the real CLI
#   6. the Debian packages (scripts/test-package.sh): built, installed with apt-get into the system
#      PostgreSQL 15 in place of step 4's install, used, removed; leaves the extension uninstalled
# Clusters are started as the unprivileged `pgtest` user and stopped when the tests end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PGRX_PGDATA=/tmp/pg_repair_pgtest

stop_leftover_clusters() {
    for data in /tmp/pg_repair_it/*/data; do
        [[ -f "$data/postmaster.pid" ]] || continue
        runuser -u pgtest -- /usr/lib/postgresql/15/bin/pg_ctl -D "$data" stop -m immediate >/dev/null 2>&1 || true
    done
}
trap stop_leftover_clusters EXIT
stop_leftover_clusters
rm -rf /tmp/pg_repair_it

step() { printf '\n== %s\n' "$*"; }

step "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "core unit tests"
cargo test -p pg_repair_core

step "pgrx tests (in-server)"
install -d -o pgtest -g pgtest "$PGRX_PGDATA"
(cd extension && env -u RUST_BACKTRACE cargo pgrx test pg15 --runas pgtest --pgdata "$PGRX_PGDATA")

step "built-in check SQL, standalone (sql/test_checks.sh)"
bash sql/test_checks.sh

step "install the release build"
(cd extension && cargo pgrx install --release --pg-config "$PG_CONFIG")
# Released install scripts (cargo pgrx installs only the current one and the upgrade scripts), so
# the upgrade tests can create a database exactly as an earlier release did.
install -m 644 extension/sql/pg_repair--0.1.0.sql "$("$PG_CONFIG" --sharedir)/extension/"

step "integration tests (scratch clusters, roles, the CLI binary)"
env -u RUST_BACKTRACE cargo test -p pg_repair_tests -p pgrepair

step "Debian packages: build, apt-get install, use, apt-get remove (scripts/test-package.sh)"
bash scripts/test-package.sh
