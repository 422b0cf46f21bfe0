#!/usr/bin/env bash
# Prints the pg_config of one supported PostgreSQL major: 15 from Debian's packages, 17 and 18
# built by scripts/build-postgres.sh. The one place that knows where each major lives.
set -euo pipefail
case ${1:?usage: pg-config-path.sh 15|17|18} in
    15) echo /usr/lib/postgresql/15/bin/pg_config ;;
    17 | 18) echo "${PG_PREFIX_ROOT:-/opt/pg_repair/postgresql}/$1/bin/pg_config" ;;
    *) echo "pg-config-path.sh: unsupported PostgreSQL major $1 (15, 17, 18)" >&2; exit 2 ;;
esac
