#!/usr/bin/env bash
# Builds one PostgreSQL major (17 or 18) from the pristine upstream tarball inside Debian's source
# package, the way `cargo pgrx init` builds a version it downloads itself, and installs it under
# $PG_PREFIX_ROOT/<major>. Idempotent: a version already built (pg_config answers with the same
# upstream version) is skipped in well under a second.
#
#   bash scripts/build-postgres.sh 18
#
# Where the source comes from: a private apt configuration under $APT_ROOT with `deb-src` lines for
# trixie and trixie-security (postgresql-17) and sid (postgresql-18). The machine's own /etc/apt sources are untouched:
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
    17 | 18) ;;
    *) log "unsupported major (17 or 18; 15 comes from Debian's binary packages)"; exit 2 ;;
esac

# The private apt configuration: deb-src only, its own state and cache.
mkdir -p "$APT_ROOT"/{lists/partial,cache/archives/partial,etc/sources.list.d,etc/preferences.d}
cat >"$APT_ROOT/etc/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security trixie-security main
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
if ! cmp -s "$APT_ROOT/etc/sources.list" "$APT_ROOT/lists/.sources.list" || ((lists_age > 86400)); then
    log "apt-get update (private deb-src lists: trixie, trixie-security, sid)"
    apt-get "${apt_private[@]}" update -qq
    cp "$APT_ROOT/etc/sources.list" "$APT_ROOT/lists/.sources.list"
    touch "$APT_ROOT/lists"
fi
debver=$(apt-cache "${apt_private[@]}" showsrc "postgresql-$major" \
    | awk '/^Version:/ {print $2}' | sort -V | tail -1)
[[ -n $debver ]] || { log "no source package postgresql-$major in trixie/sid"; exit 1; }
upstream=${debver%%-*}
upstream=${upstream#*:}

# Skip when this exact source package version was built before (the marker records it).
marker=$prefix/.pg_repair-built
if [[ -x $prefix/bin/pg_config && -f $marker ]] && grep -qx "source=$debver" "$marker"; then
    log "$("$prefix/bin/pg_config" --version) already built in $prefix (from $debver)"
    exit 0
fi

work=$BUILD_ROOT/$major
rm -rf "$work"
mkdir -p "$work"
cd "$work"
log "apt-get source --download-only postgresql-$major=$debver"
if ! apt-get "${apt_private[@]}" source --download-only -qq "postgresql-$major=$debver" >"$work/apt.log" 2>&1; then
    # Seen on this workplace's mirror: the index names a point release whose files the pool does
    # not have yet. Fall back to the newest earlier point release the pool has, with the same
    # Debian revision, and verify it the way dpkg-source would: the .dsc's OpenPGP signature
    # against debian-keyring (the uploading maintainer), then the tarball's SHA-256 from the .dsc.
    grep -E '^(E|W):' "$work/apt.log" | grep -v unsandboxed | head -3 >&2 || true
    pool=http://deb.debian.org/debian/pool/main/p/postgresql-$major
    revision=${debver#*-}
    minor=${upstream#*.}
    found=
    for ((m = minor - 1; m >= 0 && m >= minor - 6; m--)); do
        candidate=$major.$m
        dsc=postgresql-${major}_$candidate-$revision.dsc
        curl -fsS -o "$dsc" "$pool/$dsc" 2>/dev/null || { rm -f "$dsc"; continue; }
        gpgv --keyring /usr/share/keyrings/debian-keyring.gpg "$dsc" 2>"$work/gpgv.log" \
            || { cat "$work/gpgv.log" >&2; log "bad signature on $dsc"; exit 1; }
        read -r sum _ orig < <(sed -n '/^Checksums-Sha256:/,/^[A-Z]/p' "$dsc" | grep '\.orig\.tar\.')
        curl -fsS -o "$orig" "$pool/$orig" || { log "cannot fetch $orig"; exit 1; }
        echo "$sum  $orig" | sha256sum -c --quiet - || { log "checksum mismatch on $orig"; exit 1; }
        log "the mirror has no files for $debver; using $candidate-$revision (signature and checksum verified)"
        upstream=$candidate
        found=1
        break
    done
    [[ -n $found ]] || { log "no earlier postgresql-$major point release on the mirror either"; exit 1; }
fi
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
printf 'source=%s\nbuilt=%s\n' "$debver" "$upstream" >"$marker"
cd /
rm -rf "$work"
log "installed PostgreSQL $upstream in $prefix"
