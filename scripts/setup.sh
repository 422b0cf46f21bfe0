#!/usr/bin/env bash
# Installs everything pg_repair needs to build and test on a fresh Debian machine, skipping what
# is already there so a warm rerun takes a second or two. Idempotent; run as root.
#   Debian packages: PostgreSQL 15 server + headers (bindgen needs clang, pulled in by -server-dev),
#                    sudo (cargo pgrx test --runas), python3-venv (migration-tool tests),
#                    libssl-dev (pgrepair's TLS: the openssl crate links the system OpenSSL)
#                    bison, flex, zlib, readline, ICU, OpenSSL headers: building PostgreSQL 17 and 18
#                    curl, gpgv, debian-keyring: verifying a source package fetched outside apt
#                    dpkg-dev (scripts/package.sh: dpkg-shlibdeps, strip via binutils)
#   PostgreSQL 17 and 18 built from Debian's source packages (scripts/build-postgres.sh; a built
#   version is skipped), cargo-pgrx at exactly $PGRX_VERSION, `cargo pgrx init` registering every
#   major, the unprivileged test user.
#
# Environment: PG_REPAIR_MAJORS (default "15 17 18") chooses the majors to prepare.
set -euo pipefail
cd "$(dirname "$0")/.."

PGRX_VERSION=0.18.1
MAJORS=${PG_REPAIR_MAJORS:-15 17 18}
TEST_USER=pgtest

log() { printf 'setup: %s\n' "$*" >&2; }

packages=(postgresql-15 postgresql-server-dev-15 postgresql-client-15
          sudo clang libclang-dev pkg-config python3-venv libssl-dev openssl
          gcc make bison flex zlib1g-dev libreadline-dev libicu-dev
          curl gpgv debian-keyring dpkg-dev)
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

# Every major's pg_config, registered with cargo pgrx in one `init`. init rewrites its config, so
# it also names every other major already built here: preparing only 15 must not unregister 17/18.
missing_init=0
for major in $MAJORS; do
    pg_config=$(bash scripts/pg-config-path.sh "$major")
    if [[ $major != 15 ]]; then
        start=$SECONDS
        bash scripts/build-postgres.sh "$major"
        log "PostgreSQL $major ready ($((SECONDS - start)) s)"
    fi
    grep -qs "pg$major = \"$pg_config\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml" || missing_init=1
done
init_args=()
for major in 15 17 18; do
    pg_config=$(bash scripts/pg-config-path.sh "$major")
    if [[ $major == 15 || -f $(dirname "$(dirname "$pg_config")")/.pg_repair-built ]]; then
        init_args+=("--pg$major" "$pg_config")
    fi
done
if ((missing_init)); then
    log "cargo pgrx init ${init_args[*]}"
    cargo pgrx init "${init_args[@]}" >/dev/null
fi

id "$TEST_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$TEST_USER"
log "ready"
