-- pg_repair: SQL-level wrappers where a signature needs a type pgrx does not map.

-- tables regclass[] (NULL = every user table); the Rust body takes oid[].
CREATE FUNCTION repair.baseline_capture(label text, tables regclass[] DEFAULT NULL)
RETURNS TABLE (table_name text, row_count bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM repair._baseline_capture(label, tables::oid[]) $$;
