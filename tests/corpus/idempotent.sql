-- Idempotent statements: each case must produce NO finding at all from repair.lint (no error,
-- no warning). Same format as destructive.sql: `-- case: ok <short name>`, then the body up to
-- the next `-- case:` line. DO blocks, CALL and CREATE OR REPLACE FUNCTION/PROCEDURE do not
-- belong here: they always give a warn-dynamic-sql warning. Comments inside a body must not
-- look like header lines (`-- word: value`).

-- case: ok create_table_if_not_exists_constraints
CREATE TABLE IF NOT EXISTS public.orders (
    id bigint PRIMARY KEY,
    email text NOT NULL UNIQUE,
    total numeric(12, 2) NOT NULL DEFAULT 0 CHECK (total >= 0),
    customer_id bigint REFERENCES public.customers (id) ON DELETE RESTRICT
);

-- case: ok create_table_if_not_exists_partitioned
CREATE TABLE IF NOT EXISTS public.events (id bigint, at timestamptz NOT NULL) PARTITION BY RANGE (at);

-- case: ok create_table_if_not_exists_partition_of
CREATE TABLE IF NOT EXISTS public.events_2024 PARTITION OF public.events
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');

-- case: ok create_table_quoted_identity_lowercase
create table if not exists "Mixed"."Case Table" ("Id" int generated always as identity, "On Delete" text);

-- case: ok create_table_comments_between_keywords
CREATE /* guarded */ TABLE -- next line has the guard
  IF NOT EXISTS public.t2 (id int);

-- case: ok create_index_if_not_exists_expression
CREATE INDEX IF NOT EXISTS orders_email_lower_idx ON public.orders (lower(email));

-- case: ok create_unique_index_if_not_exists_partial
CREATE UNIQUE INDEX IF NOT EXISTS users_email_uq ON public.users (lower(email)) WHERE deleted_at IS NULL;

-- case: ok create_index_if_not_exists_gin_mixed_case
CrEaTe InDeX iF nOt ExIsTs docs_body_gin ON public.docs USING gin (to_tsvector('simple', body));

-- case: ok create_schema_if_not_exists
CREATE SCHEMA IF NOT EXISTS app;

-- case: ok create_schema_if_not_exists_authorization
CREATE SCHEMA IF NOT EXISTS reporting AUTHORIZATION alice;

-- case: ok create_extension_if_not_exists
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;

-- case: ok create_sequence_if_not_exists
CREATE SEQUENCE IF NOT EXISTS public.order_seq START 1000 INCREMENT 1;

-- case: ok add_column_if_not_exists
ALTER TABLE public.orders ADD COLUMN IF NOT EXISTS note text;

-- case: ok add_two_columns_if_not_exists
alter table if exists public.orders add column if not exists a int, add if not exists b int default 0;

-- case: ok create_or_replace_view
CREATE OR REPLACE VIEW public.big_orders AS SELECT id, total FROM public.orders WHERE total > 1000;

-- case: ok create_or_replace_trigger
CREATE OR REPLACE TRIGGER orders_audit AFTER INSERT ON public.orders
    FOR EACH ROW EXECUTE FUNCTION public.audit_row();

-- case: ok comment_on_table
COMMENT ON TABLE public.orders IS 'Customer orders';

-- case: ok comment_on_column_dollar_decoy
COMMENT ON COLUMN public.orders.note IS $doc$Free text; never DROP TABLE or DELETE FROM here$doc$;

-- case: ok insert_on_conflict_do_nothing
INSERT INTO public.settings (k, v) VALUES ('mode', 'safe') ON CONFLICT (k) DO NOTHING;

-- case: ok insert_where_not_exists
INSERT INTO public.settings (k, v)
SELECT 'x', 'y' WHERE NOT EXISTS (SELECT 1 FROM public.settings WHERE k = 'x');

-- case: ok plain_insert_lowercase
insert into public.log values (1, 'repaired');

-- case: ok cte_select_insert_on_conflict_do_nothing
WITH s AS (SELECT 1 AS id) INSERT INTO public.t SELECT id FROM s ON CONFLICT DO NOTHING;

-- case: ok select_count
SELECT count(*) FROM public.orders;

-- case: ok select_string_decoys
SELECT 'DROP TABLE x; DELETE FROM y' AS harmless, $q$TRUNCATE t; UPDATE t SET x = 1$q$ AS also_harmless;

-- case: ok select_with_cte
WITH recent AS (SELECT * FROM public.orders WHERE id > 10) SELECT count(*) FROM recent;

-- case: ok set_local_lock_timeout
SET LOCAL lock_timeout = '1s';

-- case: ok set_local_statement_timeout
SET LOCAL statement_timeout TO 5000;

-- case: ok set_local_upper_case_name
set local LOCK_TIMEOUT = '2s'; SET LOCAL "statement_timeout" = '30s';

-- case: ok analyze_table
ANALYZE public.orders;

-- case: ok analyze_everything_verbose
analyze verbose;

-- case: ok add_constraint_not_valid
ALTER TABLE public.orders ADD CONSTRAINT orders_total_chk CHECK (total >= 0) NOT VALID;

-- case: ok validate_constraint
ALTER TABLE public.orders VALIDATE CONSTRAINT orders_total_chk;

-- case: ok alter_column_set_default
ALTER TABLE public.orders ALTER COLUMN total SET DEFAULT 0;

-- case: ok alter_column_set_not_null
ALTER TABLE public.orders ALTER COLUMN email SET NOT NULL;

-- case: ok enable_trigger
ALTER TABLE public.orders ENABLE TRIGGER orders_audit;

-- case: ok create_table_if_not_exists_as
CREATE TABLE IF NOT EXISTS public.orders_snapshot AS SELECT * FROM public.orders WITH NO DATA;

-- case: ok create_materialized_view_if_not_exists
CREATE MATERIALIZED VIEW IF NOT EXISTS public.order_totals AS
    SELECT customer_id, sum(total) AS total FROM public.orders GROUP BY customer_id;

-- case: ok lock_table
LOCK TABLE public.orders IN SHARE ROW EXCLUSIVE MODE;

-- case: ok refresh_materialized_view
REFRESH MATERIALIZED VIEW public.order_totals;

-- case: ok several_statements_one_line
CREATE SCHEMA IF NOT EXISTS a; CREATE TABLE IF NOT EXISTS a.t (id int); SELECT 1;

-- case: ok explain_select
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM public.orders;

-- case: ok advisory_xact_lock
SELECT pg_advisory_xact_lock(42);

-- case: ok values_list
VALUES (1, 'a'), (2, 'b');

-- case: ok reindex_table
REINDEX TABLE public.orders;

-- case: ok create_statistics_if_not_exists
CREATE STATISTICS IF NOT EXISTS public.orders_stats (dependencies) ON customer_id, total FROM public.orders;

-- case: ok alter_table_set_storage_parameter
ALTER TABLE public.orders SET (fillfactor = 90);

-- case: ok create_view_or_replace_quoted_with_comments
CREATE OR REPLACE /* keep in sync */ VIEW "Reporting"."Open Orders" AS
    -- only the open ones
    SELECT * FROM public.orders WHERE note IS DISTINCT FROM 'closed';
