#!/usr/bin/env bash
# Builds one PostgreSQL major (17 or 18) from the pristine upstream tarball inside Debian's source
# package, the way `cargo pgrx init` builds a version it downloads itself, and installs it under
# $PG_PREFIX_ROOT/<major>. Idempotent: a version already built (pg_config answers with the same
# upstream version) is skipped in well under a second.
#
#   bash scripts/build-postgres.sh 18
#
# Where the source comes from: a private apt configuration under $APT_ROOT with `deb-src` lines for
# trixie (postgresql-17) and sid (postgresql-18). The machine's own /etc/apt sources are untouched:
# every apt-get call gets its own sources list, lists and cache directories through -o options.
#
# configure choices (build dependencies come from Debian's packages, see setup.sh):
#   --with-openssl   the integration suite's TLS tests (pgrepair's sslmode matrix) need an SSL server
#   --with-icu       Debian's own postgresql-15 is built with ICU; keeping the three majors alike
#                    means a collation-dependent result cannot differ between them
#   readline         psql for a DBA's interactive session (libreadline-dev, small)
#   contrib          built and installed too: the attack tests create dblink, postgres_fdw, file_fdw
#                    and citext, which Debian ships in postgresql-NN itself
set -euo pipefail

major=${1:?usage: build-postgres.sh 17|18}
PG_PREFIX_ROOT=${PG_PREFIX_ROOT:-/opt/pg_repair/postgresql}
APT_ROOT=${APT_ROOT:-/var/cache/pg_repair/apt}
BUILD_ROOT=${BUILD_ROOT:-/var/cache/pg_repair/build}
prefix=$PG_PREFIX_ROOT/$major

log() { printf 'build-postgres %s: %s\n' "$major" "$*" >&2; }

case $major in
    17) suite=trixie ;;
    18) suite=sid ;;
    *) log "unsupported major (17 or 18; 15 comes from Debian's binary packages)"; exit 2 ;;
esac

# The private apt configuration: deb-src only, its own state and cache.
mkdir -p "$APT_ROOT"/{lists/partial,cache/archives/partial,etc/sources.list.d,etc/preferences.d}
cat >"$APT_ROOT/etc/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main
EOF
apt_private=(-o "Dir::Etc::SourceList=$APT_ROOT/etc/sources.list"
             -o "Dir::Etc::SourceParts=$APT_ROOT/etc/sources.list.d"
             -o "Dir::Etc::PreferencesParts=$APT_ROOT/etc/preferences.d"
             -o "Dir::State::Lists=$APT_ROOT/lists"
             -o "Dir::Cache=$APT_ROOT/cache"
             -o "APT::Get::Only-Source=true"
             -o "Debug::NoLocking=true")

# Which upstream version Debian's source package carries today (cached lists if fresh).
lists_age=$(( $(date +%s) - $(stat -c %Y "$APT_ROOT/lists" 2>/dev/null || echo 0) ))
if [[ -z $(ls "$APT_ROOT/lists" | grep -v partial || true) ]] || (( lists_age > 86400 )); then
    log "apt-get update (private deb-src lists: trixie, sid)"
    apt-get "${apt_private[@]}" update -qq
    touch "$APT_ROOT/lists"
fi
debver=$(apt-cache "${apt_private[@]}" showsrc "postgresql-$major" \
    | awk '/^Version:/ {print $2}' | sort -V | tail -1)
[[ -n $debver ]] || { log "no source package postgresql-$major in trixie/sid"; exit 1; }
upstream=${debver%%-*}
upstream=${upstream#*:}

if [[ -x $prefix/bin/pg_config ]] \
    && [[ "$("$prefix/bin/pg_config" --version)" == "PostgreSQL $upstream" ]] \
    && [[ -f $prefix/.pg_repair-built ]]; then
    log "PostgreSQL $upstream already built in $prefix"
    exit 0
fi

work=$BUILD_ROOT/$major
rm -rf "$work"
mkdir -p "$work"
cd "$work"
log "apt-get source --download-only postgresql-$major=$debver"
apt-get "${apt_private[@]}" source --download-only -qq "postgresql-$major=$debver" >/dev/null
orig=$(ls postgresql-"$major"_"$upstream".orig.tar.* | head -1)
log "unpacking the pristine upstream tarball $orig"
tar xf "$orig"
src=$(ls -d postgresql-"$upstream"*/ | head -1)
cd "$src"

jobs=$(nproc)
log "configure --prefix=$prefix"
./configure --prefix="$prefix" --with-openssl --with-icu --enable-debug >"$work/configure.log" 2>&1 \
    || { tail -30 "$work/configure.log"; exit 1; }
log "make -j$jobs (server, clients, contrib)"
make -j"$jobs" -s world-bin >"$work/make.log" 2>&1 || { tail -40 "$work/make.log"; exit 1; }
make -s install-world-bin >"$work/install.log" 2>&1 || { tail -40 "$work/install.log"; exit 1; }
touch "$prefix/.pg_repair-built"
cd /
rm -rf "$work"
log "installed PostgreSQL $upstream in $prefix"
