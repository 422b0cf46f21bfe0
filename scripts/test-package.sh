#!/usr/bin/env bash
# The Debian packages as a user gets them, against this machine's PostgreSQL 15 (run as root):
#   1. builds postgresql-15-pg-repair and pgrepair (scripts/package.sh 15)
#   2. removes the extension from the system PostgreSQL 15 tree (what `cargo pgrx install` put
#      there), so everything the test uses comes from the packages
#   3. `apt-get install ./…deb` both; checks `dpkg -L`, the versions, man page and completions
#   4. a scratch cluster (as the pgtest user): CREATE EXTENSION, every released version upgraded
#      with ALTER EXTENSION UPDATE, then one playbook through the packaged /usr/bin/pgrepair
#      (install / preview / execute / audit verify), run as an unprivileged OS user
#   5. `apt-get remove` both: nothing they installed is left, and the cluster is stopped
# Exits non-zero on the first failed check. Whatever happens, it ends with the cluster stopped and
# the system tree without the extension's files (scripts/test.sh reinstalls with cargo pgrx when
# it needs them). Called by scripts/test.sh; works standalone too.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "test-package: run as root (apt-get, dpkg)" >&2; exit 2; }
PG_REPAIR_MAJORS=15 bash scripts/setup.sh   # the package test needs PostgreSQL 15 only
export PATH="$HOME/.cargo/bin:$PATH"

PG_BIN=/usr/lib/postgresql/15/bin
LIBDIR=$("$PG_BIN/pg_config" --pkglibdir)
EXTDIR=$("$PG_BIN/pg_config" --sharedir)/extension
PKG=postgresql-15-pg-repair
PACKAGES=("$PKG" pgrepair)
DIR=/tmp/pg_repair_pkg
DEB_DIR=${PG_REPAIR_DEB_DIR:-$PWD/target/debian}
export PG_REPAIR_DEB_DIR=$DEB_DIR
VERSION=$(cargo pkgid -p pgrepair | sed 's/.*[#@]//')
ARCH=$(dpkg --print-architecture)
PGREPAIR=/usr/bin/pgrepair

n=0
step() { printf '\n== %s\n' "$*"; }
ok() { n=$((n + 1)); printf '  ok %2d  %s\n' "$n" "$*"; }
fail() { printf '  FAILED  %s\n' "$*" >&2; exit 1; }
# check DESCRIPTION COMMAND...: the command must succeed
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
# equal DESCRIPTION ACTUAL EXPECTED
equal() { if [[ "$2" == "$3" ]]; then ok "$1: $2"; else fail "$1: got '$2', expected '$3'"; fi; }

installed() { [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]; }
apt() {
    # waits for the dpkg lock instead of failing when another apt run holds it
    DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=600 "$@" >"$DIR.apt.log" 2>&1 \
        || { cat "$DIR.apt.log" >&2; return 1; }
}
extension_files() { compgen -G "$LIBDIR/pg_repair*" || true; compgen -G "$EXTDIR/pg_repair*" || true; }
source scripts/scratch-cluster.sh
stop_cluster() { scratch_cluster_stop "$PG_BIN" "$DIR"; }
cleanup() {
    local rc=$?
    stop_cluster
    for p in "${PACKAGES[@]}"; do
        if installed "$p"; then apt remove "$p" || true; fi
    done
    rm -rf "$DIR" "$DIR.apt.log"
    if ((rc == 0)); then printf '\ntest-package: all %d checks passed\n' "$n"; else
        printf '\ntest-package: FAILED (exit %d) after %d checks\n' "$rc" "$n" >&2; fi
}
trap cleanup EXIT

# A cluster left by an interrupted earlier run of this script (its own directory only).
stop_cluster
rm -rf "$DIR"

step "build the packages (scripts/package.sh 15)"
bash scripts/package.sh 15
EXT_DEB=$DEB_DIR/${PKG}_${VERSION}_${ARCH}.deb
CLI_DEB=$DEB_DIR/pgrepair_${VERSION}_${ARCH}.deb
check "built $EXT_DEB ($(du -h "$EXT_DEB" | cut -f1))" test -s "$EXT_DEB"
check "built $CLI_DEB ($(du -h "$CLI_DEB" | cut -f1))" test -s "$CLI_DEB"

step "remove the extension from the system PostgreSQL 15 tree"
for p in "${PACKAGES[@]}"; do
    if installed "$p"; then apt remove "$p"; fi
done
for f in $(extension_files) "$PGREPAIR"; do
    [[ -e $f ]] || continue
    # only files no package owns (a `cargo pgrx install`): dpkg's own files are apt's business
    if dpkg -S "$f" >/dev/null 2>&1; then fail "$f belongs to $(dpkg -S "$f" | cut -d: -f1)"; fi
    rm -f "$f"
done
equal "pg_repair files in $LIBDIR and $EXTDIR" "$(extension_files | wc -l)" 0
check "no $PGREPAIR" test ! -e "$PGREPAIR"

# Every path the packages hold, and which of them exist before the install (shared directories
# such as /usr/share/man/man1): after the removal exactly those may remain.
paths=$(for deb in "$EXT_DEB" "$CLI_DEB"; do dpkg-deb --fsys-tarfile "$deb" | tar -t; done \
    | sed 's|^\./|/|; s|/$||' | grep -v '^/\?$' | sort -u)
existed_before=$(for p in $paths; do [[ -e $p ]] && echo "$p"; done || true)

step "apt-get install ./${EXT_DEB##*/} ./${CLI_DEB##*/}"
apt install --no-install-recommends "$EXT_DEB" "$CLI_DEB"
for p in "${PACKAGES[@]}"; do
    check "$p is installed" installed "$p"
    equal "$p version (dpkg-query)" "$(dpkg-query -W -f='${Version}' "$p")" "$VERSION"
done
equal "pgrepair --version" "$("$PGREPAIR" --version)" "pgrepair $VERSION"
check "dpkg --verify: installed files match the packages' md5sums" dpkg --verify "${PACKAGES[@]}"
listed=$(dpkg -L "${PACKAGES[@]}" | sort -u)
printf '  dpkg -L %s:\n' "${PACKAGES[*]}"
for f in $listed; do [[ -f $f ]] && printf '           %s\n' "$f"; done
expected=("$LIBDIR/pg_repair.so" "$EXTDIR/pg_repair.control" "$EXTDIR/pg_repair--$VERSION.sql")
for f in extension/sql/pg_repair--*.sql; do expected+=("$EXTDIR/${f##*/}"); done
expected+=("$PGREPAIR" /usr/share/man/man1/pgrepair.1.gz
    /usr/share/bash-completion/completions/pgrepair
    /usr/share/zsh/vendor-completions/_pgrepair
    /usr/share/fish/vendor_completions.d/pgrepair.fish)
for f in "${expected[@]}"; do
    check "listed and present: $f" bash -c '[[ -f $2 ]] && grep -qxF "$2" <<<"$1"' _ "$listed" "$f"
done
equal "pg_repair.control default_version" \
    "$(sed -n "s/^default_version = '\(.*\)'$/\1/p" "$EXTDIR/pg_repair.control")" "$VERSION"
check "man page pgrepair(1) is a gzipped page listing the subcommands" \
    bash -c 'zcat /usr/share/man/man1/pgrepair.1.gz | grep -q "^\.TH pgrepair 1" \
        && zcat /usr/share/man/man1/pgrepair.1.gz | grep -q "pgrepair\\\\-execute(1)"'
check "man page pgrepair-execute(1) documents --reason" \
    bash -c 'zcat /usr/share/man/man1/pgrepair-execute.1.gz | grep -q "reason"'
equal "bash completion of 'pgrepair pre'" "$(bash -c 'source /usr/share/bash-completion/completions/pgrepair
    COMP_WORDS=(pgrepair pre); COMP_CWORD=1; _pgrepair pgrepair pre pgrepair; echo "${COMPREPLY[*]}"')" preview
check "zsh completion is a #compdef pgrepair file" \
    grep -qx '#compdef pgrepair' /usr/share/zsh/vendor-completions/_pgrepair
check "fish completion defines completions for pgrepair" \
    grep -q '^complete -c pgrepair' /usr/share/fish/vendor_completions.d/pgrepair.fish
# The shells themselves are optional here: when installed, they must parse their file.
command -v zsh >/dev/null && check "zsh -n _pgrepair" zsh -n /usr/share/zsh/vendor-completions/_pgrepair
command -v fish >/dev/null && check "fish -n pgrepair.fish" fish -n /usr/share/fish/vendor_completions.d/pgrepair.fish

step "scratch cluster $DIR (pgtest, pg_repair preloaded, repair.db_role = staging)"
scratch_cluster_start "$PG_BIN" "$DIR"
ok "cluster started on port $PORT with the packaged library preloaded"
export PGHOST=$DIR PGPORT=$PORT
sql() { "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -U postgres "$@"; }

sql -d postgres -c "CREATE DATABASE app"
sql -d app <<'SQL'
CREATE EXTENSION pg_repair;
CREATE ROLE repair_operators NOLOGIN;
CREATE ROLE repair_authors NOLOGIN;
CREATE ROLE author LOGIN IN ROLE repair_authors;
CREATE ROLE operator LOGIN IN ROLE repair_operators;
GRANT USAGE ON SCHEMA repair TO repair_authors, repair_operators;
GRANT EXECUTE ON FUNCTION repair.register(text) TO repair_authors;
GRANT EXECUTE ON FUNCTION repair.preview(text), repair.execute(text, text, text, boolean, text) TO repair_operators;
GRANT SELECT ON ALL TABLES IN SCHEMA repair TO repair_operators;
GRANT EXECUTE ON FUNCTION repair.verify_audit(), repair.audit_head() TO repair_operators;
CREATE TABLE public.workspaces (id bigint PRIMARY KEY);
ALTER TABLE public.workspaces OWNER TO operator;
GRANT CREATE ON SCHEMA public TO operator;
SQL
ok "CREATE EXTENSION pg_repair in database app"
equal "extversion after CREATE EXTENSION" "$(sql -d app -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_repair'")" "$VERSION"

# Every earlier release the package ships an install script for: created as that release did,
# then brought to the current version by the packaged upgrade scripts.
for f in "$EXTDIR"/pg_repair--*.sql; do
    old=${f##*/pg_repair--}; old=${old%.sql}
    [[ $old == *--* || $old == "$VERSION" ]] && continue
    db="upgrade_${old//./_}"
    sql -d postgres -c "CREATE DATABASE $db"
    sql -d "$db" -c "CREATE EXTENSION pg_repair VERSION '$old'"
    sql -d "$db" -c "ALTER EXTENSION pg_repair UPDATE"
    equal "extversion after CREATE EXTENSION VERSION '$old' + ALTER EXTENSION UPDATE" \
        "$(sql -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_repair'")" "$VERSION"
    equal "verify_audit() after the upgrade from $old" "$(sql -d "$db" -c "SELECT ok FROM repair.verify_audit()")" t
done

step "one playbook through the packaged $PGREPAIR, as the OS user pgtest"
install -d -o pgtest -g pgtest "$DIR/playbooks"
install -o pgtest -g pgtest -m 644 playbooks/intent_issue_tables.sql "$DIR/playbooks/"
cli() { as_pg env PGHOST="$DIR" PGPORT="$PORT" PGDATABASE=app "$@"; }
check "pgrepair install (register) as author" cli PGUSER=author "$PGREPAIR" install "$DIR/playbooks"
preview=$(cli PGUSER=operator "$PGREPAIR" preview intent_issue_tables) || fail "pgrepair preview"
HASH=$(cli "$PGREPAIR" hash "$DIR/playbooks/intent_issue_tables.sql" | cut -d' ' -f1)
check "pgrepair preview shows the hash computed offline by pgrepair hash ($HASH)" grep -q "$HASH" <<<"$preview"
check "pgrepair execute as operator" cli PGUSER=operator "$PGREPAIR" execute intent_issue_tables \
    --hash "$HASH" --reason "PKG-TEST: the packaged CLI runs a playbook"
equal "the playbook's tables exist" "$(sql -d app -c "SELECT count(to_regclass(t)) FROM unnest(
    ARRAY['public.intent_issue_sets', 'public.intent_issue_drafts', 'public.intent_issue_history']) t")" 3
equal "the run is audited as SUCCESS" \
    "$(cli PGUSER=operator "$PGREPAIR" --json runs --playbook intent_issue_tables \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["status"])')" SUCCESS
check "pgrepair audit verify" cli PGUSER=operator "$PGREPAIR" audit verify

step "stop the cluster"
stop_cluster
check "cluster stopped" test ! -f "$DIR/data/postmaster.pid"

step "apt-get remove ${PACKAGES[*]}"
apt remove "${PACKAGES[@]}"
for p in "${PACKAGES[@]}"; do
    if installed "$p"; then fail "$p is still installed"; else ok "$p is no longer installed"; fi
done
left=()
for p in $paths; do
    [[ -e $p ]] || continue
    grep -qxF "$p" <<<"$existed_before" || left+=("$p")
done
equal "of the $(wc -w <<<"$paths") paths in the packages ($(wc -w <<<"$existed_before") existed before), left behind" \
    "${left[*]:-none}" none
equal "pg_repair files in $LIBDIR and $EXTDIR" "$(extension_files | wc -l)" 0
check "no $PGREPAIR" test ! -e "$PGREPAIR"
