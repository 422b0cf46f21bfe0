# Sourced by demo.sh and test-package.sh: a throwaway PostgreSQL cluster run by the unprivileged
# `pgtest` user (initdb refuses root), unix socket only, pg_repair preloaded with
# repair.db_role = staging and repair.executors = repair_operators.
#   scratch_cluster_start PG_BIN DIR   initdb DIR/data, start it (log DIR/server.log); sets PORT
#   scratch_cluster_stop PG_BIN DIR    stop it if it runs (fast, then immediate)
#   as_pg COMMAND...                   run a command as the cluster user

as_pg() { runuser -u pgtest -- env -u RUST_BACKTRACE "$@"; }

scratch_cluster_start() {
    local bin=$1 dir=$2
    install -d -o pgtest -g pgtest "$dir"
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
    cat >>"$dir/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$dir'
shared_preload_libraries = 'pg_repair'
repair.db_role = 'staging'
repair.executors = 'repair_operators'
CONF
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
}

scratch_cluster_stop() {
    local bin=$1 dir=$2
    [[ -f $dir/data/postmaster.pid ]] || return 0
    as_pg "$bin/pg_ctl" -D "$dir/data" stop -m fast >/dev/null 2>&1 \
        || as_pg "$bin/pg_ctl" -D "$dir/data" stop -m immediate >/dev/null 2>&1 || true
}
