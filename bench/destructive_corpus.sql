-- Destructive or non-idempotent statements a repair playbook must not contain.
-- One case per `-- case: NAME` marker; the statement(s) up to the next marker are the case.
-- bench/lint_bench.py lints each case on its own, with repair.lint (under a minimal playbook
-- header) and with squawk (the bare SQL), and reports whether each tool flagged it.
--
-- `[warning]` after the name: repair.lint is expected to report a warning, not an error (the
-- SPEC makes DO blocks and function bodies warnings: their contents cannot be verified
-- statically; the runtime enforcement then refuses the DROP/DELETE when the block runs).
-- For those cases a warning counts as "flagged"; for every other case only an error does.
-- Statements refer to objects that need not exist: nothing here is ever executed.

-- case: delete_all
DELETE FROM a;

-- case: update_all
UPDATE a SET x = 1;

-- case: truncate
TRUNCATE a;

-- case: do_execute_drop [warning]
DO $$ BEGIN EXECUTE 'DROP TABLE a'; END $$;

-- case: do_delete [warning]
DO $$ BEGIN DELETE FROM a WHERE x > 0; END $$;

-- case: delete_where
DELETE FROM a WHERE created_at < now() - interval '30 days';

-- case: update_where
UPDATE a SET status = 'archived' WHERE id = 42;

-- case: truncate_cascade
TRUNCATE TABLE a, b RESTART IDENTITY CASCADE;

-- case: drop_table
DROP TABLE a;

-- case: drop_table_if_exists_cascade
DROP TABLE IF EXISTS a CASCADE;

-- case: drop_index
DROP INDEX IF EXISTS a_x_idx;

-- case: drop_view
DROP VIEW IF EXISTS a_view;

-- case: drop_function
DROP FUNCTION IF EXISTS a_fn(bigint);

-- case: drop_schema_cascade
DROP SCHEMA app CASCADE;

-- case: drop_database
DROP DATABASE app;

-- case: drop_owned
DROP OWNED BY app_user;

-- case: alter_table_drop_column
ALTER TABLE a DROP COLUMN x;

-- case: alter_table_drop_constraint
ALTER TABLE a DROP CONSTRAINT IF EXISTS a_x_check;

-- case: alter_table_drop_default
ALTER TABLE a ALTER COLUMN x DROP DEFAULT;

-- case: cte_delete
WITH d AS (DELETE FROM a RETURNING *) SELECT count(*) FROM d;

-- case: cte_update_insert
WITH u AS (UPDATE a SET x = x + 1 RETURNING id) INSERT INTO a_log (id) SELECT id FROM u;

-- case: merge_delete
MERGE INTO a USING b ON a.id = b.id WHEN MATCHED THEN DELETE;

-- case: insert_on_conflict_do_update
INSERT INTO a (id, x) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET x = EXCLUDED.x;

-- case: create_table_plain
CREATE TABLE a (id bigint PRIMARY KEY);

-- case: create_index_plain
CREATE INDEX a_x_idx ON a (x);

-- case: create_index_concurrently
CREATE INDEX CONCURRENTLY IF NOT EXISTS a_x_idx ON a (x);

-- case: create_schema_plain
CREATE SCHEMA app;

-- case: create_extension_plain
CREATE EXTENSION pgcrypto;

-- case: create_function_plain
CREATE FUNCTION a_fn() RETURNS bigint LANGUAGE sql AS 'SELECT 1::bigint';

-- case: create_view_plain
CREATE VIEW a_view AS SELECT 1 AS one;

-- case: create_trigger_plain
CREATE TRIGGER a_trg BEFORE INSERT ON a FOR EACH ROW EXECUTE FUNCTION a_fn();

-- case: create_rule
CREATE RULE a_rule AS ON INSERT TO a DO INSTEAD NOTHING;

-- case: alter_system
ALTER SYSTEM SET work_mem = '1GB';

-- case: set_role
SET ROLE postgres;

-- case: set_session_authorization
SET SESSION AUTHORIZATION postgres;

-- case: set_search_path
SET search_path = evil, public;

-- case: reset_all
RESET ALL;

-- case: copy_from_program
COPY a FROM PROGRAM 'curl -s http://example.invalid/x.csv';

-- case: copy_to_program
COPY a TO PROGRAM 'gzip > /tmp/a.csv.gz';

-- case: begin
BEGIN;

-- case: commit
COMMIT;

-- case: rollback
ROLLBACK;

-- case: savepoint
SAVEPOINT s1;

-- case: vacuum_full
VACUUM FULL a;

-- case: reindex_concurrently
REINDEX TABLE CONCURRENTLY a;

-- case: create_database
CREATE DATABASE app2;

-- case: grant_role_membership
GRANT pg_read_server_files TO app_user;

-- case: create_role
CREATE ROLE intruder LOGIN SUPERUSER;

-- case: alter_role
ALTER ROLE app_user SUPERUSER;

-- case: revoke_role_membership
REVOKE pg_monitor FROM app_user;
