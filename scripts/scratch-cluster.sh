# Sourced by every script that needs a throwaway PostgreSQL cluster (scripts/demo.sh,
# scripts/test-package.sh, sql/test_checks.sh, bench/*.sh): unix socket only, trust
# authentication for the `postgres` superuser, run by the unprivileged SCRATCH_USER (default
# `pgtest`) when the script runs as root (initdb refuses root), by the caller otherwise.
#   scratch_cluster_start PG_BIN DIR [SETTING...]
#       initdb DIR/data, append the SETTING lines (e.g. "fsync = off") to its postgresql.conf
#       and start it (log DIR/server.log); sets PORT. Unless SCRATCH_PRELOAD=no, pg_repair is
#       preloaded with repair.db_role = staging and repair.executors = repair_operators.
#       SCRATCH_PORT: the port (default: a free one); SCRATCH_INITDB_ARGS (array): more initdb
#       options. On failure it prints the initdb output or the server log and returns 1.
#   scratch_cluster_stop PG_BIN DIR    stop it if it runs (fast, then immediate)
#   as_pg COMMAND...                   run a command as the cluster user

SCRATCH_USER=${SCRATCH_USER:-pgtest}

if [[ $(id -u) -eq 0 ]]; then
    as_pg() { runuser -u "$SCRATCH_USER" -- env -u RUST_BACKTRACE "$@"; }
else
    as_pg() { env -u RUST_BACKTRACE "$@"; }
fi

scratch_cluster_start() {
    local bin=$1 dir=$2
    shift 2
    if [[ $(id -u) -eq 0 ]]; then
        install -d -o "$SCRATCH_USER" -g "$(id -gn "$SCRATCH_USER")" "$dir"
    else
        mkdir -p "$dir"
    fi
    PORT=${SCRATCH_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust \
        ${SCRATCH_INITDB_ARGS[@]+"${SCRATCH_INITDB_ARGS[@]}"} >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; return 1; }
    {
        echo "port = $PORT"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$dir'"
        if [[ ${SCRATCH_PRELOAD:-yes} != no ]]; then
            echo "shared_preload_libraries = 'pg_repair'"
            echo "repair.db_role = 'staging'"
            echo "repair.executors = 'repair_operators'"
        fi
        local setting
        for setting in "$@"; do
            echo "$setting"
        done
    } >>"$dir/data/postgresql.conf"
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null \
        || { cat "$dir/server.log" >&2; return 1; }
}

scratch_cluster_stop() {
    local bin=$1 dir=$2
    [[ -f $dir/data/postmaster.pid ]] || return 0
    as_pg "$bin/pg_ctl" -D "$dir/data" stop -m fast >/dev/null 2>&1 \
        || as_pg "$bin/pg_ctl" -D "$dir/data" stop -m immediate >/dev/null 2>&1 || true
}
