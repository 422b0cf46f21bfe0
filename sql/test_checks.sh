#!/usr/bin/env bash
# Standalone test of sql/checks.sql (the pg_repair built-in checks), without the extension:
# starts a throwaway PostgreSQL cluster (unix socket only), loads checks.sql into fresh databases
# after `CREATE SCHEMA repair`, builds fixtures that violate / do not violate each check
# (test_checks_fixture.sql), asserts exact results, then times the four parameterless checks on
# 2,000 tables with 2,000 foreign keys. Prints PASS/FAIL per assertion; exits 1 on any failure.
#
# Environment: PG_BIN (default /usr/lib/postgresql/15/bin), CHK_PORT (default 55871),
# CHK_DIR (default: a new /tmp/chk.XXXXXX), CHK_OS_USER (cluster owner when run as root,
# default pgtest), CHK_KEEP=1 keeps the directory (data + server log) afterwards.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHECKS_SQL="$HERE/checks.sql"
FIXTURE_SQL="$HERE/test_checks_fixture.sql"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PORT="${CHK_PORT:-55871}"
OS_USER="${CHK_OS_USER:-pgtest}"
DIR="${CHK_DIR:-$(mktemp -d /tmp/chk.XXXXXX)}"
SCALE_LIMIT_MS=2000

FAILS=0
PASSES=0

SCRATCH_USER=$OS_USER
source "$HERE/../scripts/scratch-cluster.sh"

cleanup() {
    scratch_cluster_stop "$PG_BIN" "$DIR"
    if [ "${CHK_KEEP:-0}" = 1 ] || [ "$FAILS" -gt 0 ]; then
        echo "kept $DIR (server log: $DIR/server.log)"
    else
        rm -rf "$DIR"
    fi
}
trap cleanup EXIT

echo "== starting throwaway cluster in $DIR (port $PORT, unix socket only)"
# checks.sql alone, without the extension: nothing preloaded
SCRATCH_PRELOAD=no SCRATCH_PORT=$PORT SCRATCH_INITDB_ARGS=(--locale=C -E UTF8)
scratch_cluster_start "$PG_BIN" "$DIR" "max_locks_per_transaction = 256" "fsync = off" || exit 1

PSQL=("$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres)

# q DB SQL: run SQL (may be several statements; output of each), stdout+stderr
q() { local db="$1"; shift; "${PSQL[@]}" -d "$db" -c "$*" 2>&1; }
# sqlstate DB SQL: the SQLSTATE the statement fails with (empty when it succeeds)
sqlstate() {
    local db="$1"; shift
    printf '\\set VERBOSITY sqlstate\n%s\n' "$*" | "${PSQL[@]}" -d "$db" -q 2>&1 >/dev/null \
        | sed -n 's/^.*ERROR: *\([0-9A-Z]\{5\}\).*$/\1/p' | head -1
}

check() {   # check NAME EXPECTED ACTUAL
    if [ "$2" == "$3" ]; then
        echo "PASS  $1"; PASSES=$((PASSES + 1))
    else
        echo "FAIL  $1"; FAILS=$((FAILS + 1))
        echo "  expected:"; printf '%s\n' "$2" | sed 's/^/    | /'
        echo "  actual:";   printf '%s\n' "$3" | sed 's/^/    | /'
    fi
}

check_true() {   # check_true NAME CONDITION-OUTPUT (expects "t")
    check "$1" "t" "$2"
}

new_db() {   # new_db NAME: fresh database with schema repair and checks.sql loaded
    q postgres "CREATE DATABASE \"$1\"" >/dev/null || { echo "cannot create database $1"; exit 1; }
    local out
    # loaded in a single transaction, as inside CREATE EXTENSION
    if ! out=$("${PSQL[@]}" -d "$1" -q -1 -c "CREATE SCHEMA repair" -f "$CHECKS_SQL" 2>&1); then
        echo "FAIL  load checks.sql into $1"; echo "$out"; FAILS=$((FAILS + 1)); exit 1
    fi
    echo "PASS  load checks.sql into $1 (one transaction, no errors)"; PASSES=$((PASSES + 1))
}

# ================================================================================================
echo "== functional fixtures"
DB=checks
new_db "$DB"
out=$("${PSQL[@]}" -d "$DB" -q -f "$FIXTURE_SQL" 2>&1) || { echo "$out"; echo "fixture failed"; FAILS=1; exit 1; }

# A unique index built CONCURRENTLY on duplicate data fails and stays behind, invalid.
out=$(q "$DB" "CREATE UNIQUE INDEX CONCURRENTLY dups_cust_uq ON app.dups (customer_id) WHERE customer_id > 0")
check "CREATE UNIQUE INDEX CONCURRENTLY on duplicates fails" "t" \
    "$(grep -q 'could not create unique index' <<<"$out" && echo t || echo "$out")"
check "the failed index is left behind" "app.dups_cust_uq" \
    "$(q "$DB" "SELECT 'app.dups_cust_uq'::regclass")"

# Definitions, as required by the rest of the extension ---------------------------------------
check "every function: STABLE (or IMMUTABLE helper), search_path pinned, commented" "" \
    "$(q "$DB" "SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'repair'::regnamespace
                 AND (p.provolatile NOT IN ('s','i') OR p.proconfig IS DISTINCT FROM '{\"search_path=pg_catalog, pg_temp\"}'
                      OR obj_description(p.oid, 'pg_proc') IS NULL
                      OR p.prolang NOT IN (SELECT oid FROM pg_language WHERE lanname IN ('sql','plpgsql')))")"
check "signatures and result columns" \
"check_fk_missing_index()|TABLE(constraint_name text, table_name text, columns text)
check_fk_type_mismatch()|TABLE(constraint_name text, table_name text, column_name text, column_type text, referenced_table text, referenced_column text, referenced_type text)
check_invalid_index()|TABLE(index_name text, table_name text, reason text)
check_orphans(child regclass, child_col name, parent regclass, parent_col name)|TABLE(child_value text, orphan_rows bigint)
check_partial_unique_index(tbl regclass, cols text[], predicate text)|TABLE(problem text)
check_role_cannot_delete(role_name name)|TABLE(table_name text, privilege text)
check_table_without_pk()|TABLE(table_name text)
user_tables()|TABLE(relid oid, table_name text)" \
    "$(q "$DB" "SELECT proname || '(' || pg_get_function_arguments(oid) || ')|' || pg_get_function_result(oid)
                 FROM pg_proc WHERE pronamespace = 'repair'::regnamespace AND proname !~ '^_' ORDER BY proname")"

# 1. check_fk_type_mismatch ---------------------------------------------------------------------
check "fk_type_mismatch: bytea vs uuid, bigint vs integer (incl. partitioned, once), varchar(10) vs varchar(20), multi-column pair; domain/matching not reported" \
"account_notes_account_id_fkey|app.account_notes|account_id|bytea|app.accounts|id|uuid
code_uses_code_fkey|app.code_uses|code|character varying(10)|app.codes|code|character varying(20)
events_customer_id_fkey|app.events|customer_id|bigint|app.customers|id|integer
orders_customer_id_fkey|app.orders|customer_id|bigint|app.customers|id|integer
pair_refs_pair_fkey|app.pair_refs|b|bigint|app.pairs|b|integer" \
    "$(q "$DB" "SELECT * FROM repair.check_fk_type_mismatch()")"

# 2. check_fk_missing_index ---------------------------------------------------------------------
check "fk_missing_index: none / other leading column / partial / only invalid index; indexed, any-order, partitioned not reported" \
"code_uses_code_fkey|app.code_uses|code
dups_customer_id_fkey|app.dups|customer_id
order_lines_order_id_fkey|app.order_lines|order_id
orders_customer_id_fkey|app.orders|customer_id
readings_m_id_m_at_fkey|app.readings|m_id, m_at" \
    "$(q "$DB" "SELECT * FROM repair.check_fk_missing_index()")"
q "$DB" "CREATE INDEX orders_customer_id_idx ON app.orders (customer_id)" >/dev/null
check "fk_missing_index: fixed by an index" \
"code_uses_code_fkey|app.code_uses|code
dups_customer_id_fkey|app.dups|customer_id
order_lines_order_id_fkey|app.order_lines|order_id
readings_m_id_m_at_fkey|app.readings|m_id, m_at" \
    "$(q "$DB" "SELECT * FROM repair.check_fk_missing_index()")"
q "$DB" "CREATE TABLE app.mc_parent (a int, b int, PRIMARY KEY (a, b));
         CREATE TABLE app.mc_child (id int PRIMARY KEY, a int, b int, c int,
             CONSTRAINT mc_fk FOREIGN KEY (b, a) REFERENCES app.mc_parent (b, a));
         CREATE INDEX mc_child_a_c_b ON app.mc_child (a, c, b)" >/dev/null
check "fk_missing_index: multi-column FK, index (a, c, b) does not lead with {a, b}" \
    "mc_fk|app.mc_child|b, a" "$(q "$DB" "SELECT * FROM repair.check_fk_missing_index() WHERE table_name = 'app.mc_child'")"
q "$DB" "CREATE INDEX mc_child_a_b_incl ON app.mc_child (a) INCLUDE (b)" >/dev/null
check "fk_missing_index: INCLUDE columns do not count" \
    "mc_fk|app.mc_child|b, a" "$(q "$DB" "SELECT * FROM repair.check_fk_missing_index() WHERE table_name = 'app.mc_child'")"
q "$DB" "CREATE INDEX mc_child_a_b ON app.mc_child (a, b, c)" >/dev/null
check "fk_missing_index: multi-column FK (b, a) covered by index (a, b, c)" \
    "" "$(q "$DB" "SELECT * FROM repair.check_fk_missing_index() WHERE table_name = 'app.mc_child'")"
q "$DB" "DROP TABLE app.mc_child, app.mc_parent" >/dev/null

# 3. check_invalid_index ------------------------------------------------------------------------
check "invalid_index: failed CREATE INDEX CONCURRENTLY, unattached partitioned index" \
"app.dups_cust_uq|app.dups|invalid (indisvalid = false): left by a failed CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY; never used by queries, drop and recreate it; not ready (indisready = false): not maintained on insert/update
app.events_tenant_idx|app.events|invalid (indisvalid = false): a partition has no attached index" \
    "$(q "$DB" "SELECT * FROM repair.check_invalid_index()")"
q "$DB" "CREATE TABLE repair.internal_bad (x int); INSERT INTO repair.internal_bad VALUES (1), (1)" >/dev/null
q "$DB" "CREATE UNIQUE INDEX CONCURRENTLY internal_bad_uq ON repair.internal_bad (x)" >/dev/null
check "invalid_index: schema repair excluded" "0" \
    "$(q "$DB" "SELECT count(*) FROM repair.check_invalid_index() WHERE table_name LIKE 'repair.%'")"

# A REINDEX TABLE CONCURRENTLY that fails (here: lock_timeout while it waits for a writer) leaves
# invalid "_ccnew" indexes behind, including one on the table's TOAST table in schema pg_toast:
# reported against the user table.
"${PSQL[@]}" -d "$DB" -c "BEGIN" -c "LOCK TABLE app.legacy_text IN ROW EXCLUSIVE MODE" \
    -c "SELECT pg_sleep(4)" -c "COMMIT" >/dev/null 2>&1 &
HOLDER=$!
for _ in $(seq 50); do
    [ "$(q "$DB" "SELECT count(*) FROM pg_locks WHERE relation = 'app.legacy_text'::regclass AND pid <> pg_backend_pid()")" = 1 ] && break
    sleep 0.1
done
out=$(PGOPTIONS="-c lock_timeout=500" q "$DB" "REINDEX TABLE CONCURRENTLY app.legacy_text")
check "REINDEX TABLE CONCURRENTLY interrupted by lock_timeout" "t" \
    "$(grep -q 'lock timeout' <<<"$out" && echo t || echo "$out")"
wait "$HOLDER"
check "invalid_index: leftovers of a failed REINDEX CONCURRENTLY, TOAST index attributed to the table" \
"app.legacy_text_pkey_ccnew|app.legacy_text|invalid (indisvalid = false): left by a failed CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY; never used by queries, drop and recreate it; not ready (indisready = false): not maintained on insert/update
pg_toast.pg_toast_N_index_ccnew|app.legacy_text|invalid (indisvalid = false): left by a failed CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY; never used by queries, drop and recreate it; not ready (indisready = false): not maintained on insert/update" \
    "$(q "$DB" "SELECT regexp_replace(index_name, '[0-9]+', 'N'), table_name, reason FROM repair.check_invalid_index()
                 WHERE table_name = 'app.legacy_text'")"

# 4. check_table_without_pk ---------------------------------------------------------------------
check "table_without_pk: plain, quoted, partitioned parent (partitions, repair, extension member skipped)" \
"\"Odd Schema\".\"Mixed Case\"
app.events
app.no_pk" \
    "$(q "$DB" "SELECT * FROM repair.check_table_without_pk()")"
q "$DB" "ALTER TABLE app.no_pk ADD PRIMARY KEY (x)" >/dev/null
check "table_without_pk: fixed by adding a PK" \
"\"Odd Schema\".\"Mixed Case\"
app.events" "$(q "$DB" "SELECT * FROM repair.check_table_without_pk()")"
check "table_without_pk: temporary tables skipped" \
"\"Odd Schema\".\"Mixed Case\"
app.events" "$(q "$DB" "CREATE TEMP TABLE tmp_no_pk (x int); SELECT * FROM repair.check_table_without_pk()")"

# 5. check_role_cannot_delete -------------------------------------------------------------------
check "role_cannot_delete: direct grant (+ updatable view; non-updatable view skipped)" \
"app.customer_emails|DELETE
app.customers|DELETE" "$(q "$DB" "SELECT * FROM repair.check_role_cannot_delete('chk_grant')")"
check "role_cannot_delete: via group membership" \
"app.orders|DELETE
app.orders|TRUNCATE" "$(q "$DB" "SELECT * FROM repair.check_role_cannot_delete('chk_member')")"
check "role_cannot_delete: NOINHERIT member can still SET ROLE to the group" \
"app.orders|DELETE
app.orders|TRUNCATE" "$(q "$DB" "SELECT * FROM repair.check_role_cannot_delete('chk_noinherit')")"
check "role_cannot_delete: read-only role passes" "" \
    "$(q "$DB" "SELECT * FROM repair.check_role_cannot_delete('chk_readonly')")"
q "$DB" "GRANT TRUNCATE ON app.products TO PUBLIC" >/dev/null
check "role_cannot_delete: via PUBLIC" "app.products|TRUNCATE" \
    "$(q "$DB" "SELECT * FROM repair.check_role_cannot_delete('chk_readonly')")"
q "$DB" "REVOKE TRUNCATE ON app.products FROM PUBLIC" >/dev/null
check "role_cannot_delete: PUBLIC revoked, read-only again" "" \
    "$(q "$DB" "SELECT * FROM repair.check_role_cannot_delete('chk_readonly')")"
check "role_cannot_delete: superuser can delete everywhere (extension member, repair excluded)" "t" \
    "$(q "$DB" "SELECT count(*) = 2 * (SELECT count(*) FROM repair.user_tables()) + 1
                     AND count(*) FILTER (WHERE table_name IN ('app.ext_owned') OR table_name LIKE 'repair.%') = 0
                 FROM repair.check_role_cannot_delete('postgres')")"
check "role_cannot_delete: unknown role -> SQLSTATE 42704" "42704" \
    "$(sqlstate "$DB" "SELECT * FROM repair.check_role_cannot_delete('no_such_role')")"
check "role_cannot_delete: unknown role -> clear message" "t" \
    "$(out=$(q "$DB" "SELECT 1 FROM repair.check_role_cannot_delete('no_such_role')"); grep -q 'ERROR:  role "no_such_role" does not exist' <<<"$out" && echo t || echo "$out")"

# 6. check_partial_unique_index -----------------------------------------------------------------
pui() { q "$DB" "SELECT * FROM repair.check_partial_unique_index($1)"; }
check "partial_unique_index: present (given as written)" "" \
    "$(pui "'app.subscriptions', '{user_id,plan}', 'status = ''ACTIVE'''")"
check "partial_unique_index: present (given as pg_get_expr prints it, other spacing/case)" "" \
    "$(pui "'app.subscriptions', ARRAY['user_id','plan'], '((STATUS)::text   =  ''ACTIVE''::text)'")"
check "partial_unique_index: present, with standard_conforming_strings = off in the session" "" \
    "$(PGOPTIONS="-c standard_conforming_strings=off -c escape_string_warning=off" \
       q "$DB" "SELECT * FROM repair.check_partial_unique_index('app.subscriptions', '{user_id,plan}', E' status=''ACTIVE'' ')")"
check "partial_unique_index: literal case matters" \
"index app.subscriptions_active_uq predicate differs: expected WHERE status = 'active', found WHERE ((status)::text = 'ACTIVE'::text)" \
    "$(pui "'app.subscriptions', '{user_id,plan}', 'status = ''active'''")"
check "partial_unique_index: wrong predicate" \
"index app.subscriptions_active_uq predicate differs: expected WHERE status = 'CANCELLED', found WHERE ((status)::text = 'ACTIVE'::text)" \
    "$(pui "'app.subscriptions', '{user_id,plan}', 'status = ''CANCELLED'''")"
check "partial_unique_index: absent (column order matters)" \
"no index on app.subscriptions (plan, user_id) WHERE status = 'ACTIVE'" \
    "$(pui "'app.subscriptions', '{plan,user_id}', 'status = ''ACTIVE'''")"
check "partial_unique_index: not unique" \
"index app.subscriptions_user_live_idx is not unique" \
    "$(pui "'app.subscriptions', '{user_id}', 'deleted_at IS NULL'")"
check "partial_unique_index: not partial" \
"index app.subscriptions_email_uq is not partial (expected WHERE deleted_at IS NULL)" \
    "$(pui "'app.subscriptions', '{email}', 'deleted_at IS NULL'")"
check "partial_unique_index: NULL predicate = plain unique index expected" "" \
    "$(pui "'app.subscriptions', '{email}', NULL")"
check "partial_unique_index: invalid (failed CONCURRENTLY)" \
"index app.dups_cust_uq is invalid (e.g. a failed CREATE INDEX CONCURRENTLY)" \
    "$(pui "'app.dups', '{customer_id}', 'customer_id > 0'")"
check "partial_unique_index: unknown column -> SQLSTATE 42703" "42703" \
    "$(sqlstate "$DB" "SELECT * FROM repair.check_partial_unique_index('app.subscriptions', '{user_id,nope}', 'x')")"

# 7. check_orphans ------------------------------------------------------------------------------
check "orphans: present, grouped by value, NULLs ignored" "9|2
7|1" "$(q "$DB" "SELECT * FROM repair.check_orphans('app.legacy_orders', 'customer_ref', 'app.customers', 'id')")"
check "orphans: absent" "" \
    "$(q "$DB" "SELECT * FROM repair.check_orphans('app.legacy_ok', 'customer_ref', 'app.customers', 'id')")"
check "orphans: text child vs integer parent (compared as text)" "42|2" \
    "$(q "$DB" "SELECT * FROM repair.check_orphans('app.legacy_text', 'customer_ref', 'app.customers', 'id')")"
check "orphans: quoted identifiers" "" \
    "$(q "$DB" "CREATE TABLE \"Odd Schema\".\"Par ent\" (\"Key\" int); INSERT INTO \"Odd Schema\".\"Par ent\" VALUES (1);
                CREATE TABLE \"Odd Schema\".\"Chi ld\" (\"Ref Col\" int); INSERT INTO \"Odd Schema\".\"Chi ld\" VALUES (1), (NULL);
                SELECT * FROM repair.check_orphans('\"Odd Schema\".\"Chi ld\"', 'Ref Col', '\"Odd Schema\".\"Par ent\"', 'Key')")"
q "$DB" "DROP TABLE \"Odd Schema\".\"Par ent\", \"Odd Schema\".\"Chi ld\"" >/dev/null
check "orphans: unknown child column -> SQLSTATE 42703" "42703" \
    "$(sqlstate "$DB" "SELECT * FROM repair.check_orphans('app.legacy_orders', 'nope', 'app.customers', 'id')")"
check "orphans: unknown parent column -> SQLSTATE 42703" "42703" \
    "$(sqlstate "$DB" "SELECT * FROM repair.check_orphans('app.legacy_orders', 'customer_ref', 'app.customers', 'nope')")"
check "orphans: injection-looking column name is just an unknown column" "42703" \
    "$(sqlstate "$DB" "SELECT * FROM repair.check_orphans('app.legacy_orders', 'x; DROP TABLE app.customers', 'app.customers', 'id')")"

# 8. user_tables -------------------------------------------------------------------------------
check "user_tables: user tables incl. partitions, ordered; repair, pg_catalog, extension members, temp excluded" \
"\"Odd Schema\".\"Mixed Case\"
app.account_notes
app.accounts
app.code_uses
app.codes
app.customers
app.dups
app.events
app.events_t1
app.events_t2
app.invoices
app.legacy_ok
app.legacy_orders
app.legacy_text
app.measurements
app.measurements_2024
app.no_pk
app.order_lines
app.orders
app.pair_refs
app.pairs
app.products
app.readings
app.subscriptions" \
    "$(q "$DB" "CREATE TEMP TABLE tmp_t (x int); SELECT table_name FROM repair.user_tables()")"
check "user_tables: relid matches table_name" "t" \
    "$(q "$DB" "SELECT bool_and(relid::regclass::text = table_name) FROM repair.user_tables()")"
new_db empty
check "user_tables: empty database -> no rows" "0" "$(q empty "SELECT count(*) FROM repair.user_tables()")"
check "no-parameter checks: empty database -> no rows" "0|0|0|0" \
    "$(q empty "SELECT (SELECT count(*) FROM repair.check_fk_type_mismatch()), (SELECT count(*) FROM repair.check_fk_missing_index()),
                       (SELECT count(*) FROM repair.check_invalid_index()), (SELECT count(*) FROM repair.check_table_without_pk())")"

# ================================================================================================
echo "== scale: 2,000 tables, 2,000 foreign keys"
DB=scale
new_db "$DB"
# s0001..s2000, each references the previous one (s0001 -> s2000). Every 4th FK column is bigint
# (type mismatch, 500), every 2nd FK column is indexed (1,000 missing), every table has a PK.
out=$(q "$DB" "
DO \$\$
BEGIN
  FOR i IN 1..2000 LOOP
    EXECUTE format('CREATE TABLE public.%I (id integer PRIMARY KEY, ref %s, payload text)',
                   'big_' || lpad(i::text, 4, '0'), CASE WHEN i % 4 = 0 THEN 'bigint' ELSE 'integer' END);
    IF i % 2 = 0 THEN
      EXECUTE format('CREATE INDEX ON public.%I (ref)', 'big_' || lpad(i::text, 4, '0'));
    END IF;
  END LOOP;
END \$\$;
DO \$\$
BEGIN
  FOR i IN 1..2000 LOOP
    EXECUTE format('ALTER TABLE public.%I ADD CONSTRAINT %I FOREIGN KEY (ref) REFERENCES public.%I (id)',
                   'big_' || lpad(i::text, 4, '0'), 'big_fk_' || i,
                   'big_' || lpad((CASE WHEN i = 1 THEN 2000 ELSE i - 1 END)::text, 4, '0'));
  END LOOP;
END \$\$;
ANALYZE;
SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace")
check "scale fixture: 2,000 foreign keys" "2000" "$(tail -1 <<<"$out")"

check "scale: check_fk_type_mismatch finds 500" "500" \
    "$(q "$DB" "SELECT count(*) FROM repair.check_fk_type_mismatch()")"
check "scale: check_fk_missing_index finds 1000" "1000" \
    "$(q "$DB" "SELECT count(*) FROM repair.check_fk_missing_index()")"
check "scale: check_invalid_index finds 0" "0" \
    "$(q "$DB" "SELECT count(*) FROM repair.check_invalid_index()")"
check "scale: check_table_without_pk finds 0" "0" \
    "$(q "$DB" "SELECT count(*) FROM repair.check_table_without_pk()")"
check "scale: user_tables lists 2000" "2000" \
    "$(q "$DB" "SELECT count(*) FROM repair.user_tables()")"

# Server-side timing, each check in a fresh session (cold catalog caches) and then warm.
q "$DB" "CREATE ROLE scale_reader; GRANT SELECT ON ALL TABLES IN SCHEMA public TO scale_reader" >/dev/null
for fn in "check_fk_type_mismatch()" "check_fk_missing_index()" "check_invalid_index()" "check_table_without_pk()" \
          "user_tables()" "check_role_cannot_delete('postgres')" "check_role_cannot_delete('scale_reader')"; do
    ms=$(q "$DB" "
CREATE TEMP TABLE t(run int, ms numeric);
DO \$\$
DECLARE t0 timestamptz; n bigint;
BEGIN
  FOR r IN 1..2 LOOP
    t0 := clock_timestamp();
    EXECUTE \$q\$SELECT count(*) FROM repair.$fn\$q\$ INTO n;
    INSERT INTO t VALUES (r, round(extract(epoch FROM clock_timestamp() - t0) * 1000, 1));
  END LOOP;
END \$\$;
SELECT string_agg(ms::text, ' ' ORDER BY run) FROM t" | tail -1)
    cold=${ms%% *}; warm=${ms##* }
    echo "      timing repair.$fn: cold ${cold} ms, warm ${warm} ms"
    check "scale: repair.$fn < ${SCALE_LIMIT_MS} ms" "t" \
        "$(awk -v c="$cold" -v w="$warm" -v l="$SCALE_LIMIT_MS" 'BEGIN { print (c + 0 < l && w + 0 < l && c != "") ? "t" : "f (" c ", " w ")" }')"
done

echo "== $PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
