#!/usr/bin/env bash
# Installs everything pg_repair needs to build and test on a fresh Debian machine, skipping what
# is already there so a warm rerun takes a second or two. Idempotent; run as root.
#   Debian packages: PostgreSQL 15 server + headers (bindgen needs clang, pulled in by -server-dev),
#                    sudo (cargo pgrx test --runas), python3-venv (migration-tool tests),
#                    libssl-dev (pgrepair's TLS: the openssl crate links the system OpenSSL)
#                    dpkg-dev (scripts/package.sh: dpkg-shlibdeps, strip via binutils)
#   cargo-pgrx at exactly $PGRX_VERSION, `cargo pgrx init` for PG 15, the unprivileged test user.
set -euo pipefail

PGRX_VERSION=0.18.1
PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
TEST_USER=pgtest

log() { printf 'setup: %s\n' "$*" >&2; }

packages=(postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-client-$PG_MAJOR
          sudo clang libclang-dev pkg-config python3-venv libssl-dev openssl dpkg-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "Debian packages present"
fi

export PATH="$HOME/.cargo/bin:$PATH"
have=$(cargo pgrx --version 2>/dev/null | awk '{print $2}' || true)
if [[ "$have" != "$PGRX_VERSION" ]]; then
    log "installing cargo-pgrx $PGRX_VERSION (had: ${have:-none}); takes about 5 minutes"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --force --quiet
else
    log "cargo-pgrx $PGRX_VERSION present"
fi

if ! grep -qs "pg$PG_MAJOR = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    log "cargo pgrx init --pg$PG_MAJOR"
    cargo pgrx init --pg$PG_MAJOR "$PG_CONFIG" >/dev/null
fi

id "$TEST_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$TEST_USER"
log "ready"
