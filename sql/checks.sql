-- pg_repair: built-in validation checks (read-only, set-returning).
--
-- Every check returns the VIOLATING rows: zero rows = PASS. They are set-based catalog queries
-- (fast on catalogs with thousands of tables and constraints); only check_orphans reads data.
--
-- Scope, common to every check: user objects only. Skipped are
--   * system schemas: pg_catalog, information_schema, pg_toast and every other schema whose
--     name starts with "pg_" (pg_temp_N, pg_toast_temp_N; users cannot create "pg_" schemas),
--   * the extension's own schema "repair",
--   * relations that belong to an extension (pg_depend deptype 'e').
-- Names are returned schema-qualified and quoted as needed: format('%I.%I', nspname, relname).
--
-- Partitioning: a foreign key, primary key or index declared on a partitioned table is
-- checked once, on the partitioned table (the copies PostgreSQL clones onto each partition,
-- pg_constraint.conparentid <> 0, are not reported again).

-- 1. Foreign keys whose column type differs from the referenced column's ------------------------
--
-- Compared: the type OID and the type modifier, after resolving domains to their base type
-- (a domain over integer referencing an integer column is NOT a mismatch; the reported
-- column_type is still the declared type). So text vs uuid, integer vs bigint, varchar(10) vs
-- varchar(20), numeric(10,2) vs numeric(12,2) and varchar vs text are all mismatches.
-- Multi-column foreign keys: one row per mismatching column pair.
CREATE FUNCTION repair.check_fk_type_mismatch()
RETURNS TABLE(constraint_name text, table_name text, column_name text, column_type text,
              referenced_table text, referenced_column text, referenced_type text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH RECURSIVE base_type(typid, basetypid, basetypmod) AS (
    -- every domain, resolved step by step down to its non-domain base type
    SELECT t.oid, t.typbasetype, t.typtypmod
      FROM pg_catalog.pg_type t
     WHERE t.typtype = 'd'
    UNION ALL
    SELECT b.typid, t.typbasetype,
           CASE WHEN b.basetypmod <> -1 THEN b.basetypmod ELSE t.typtypmod END
      FROM base_type b
      JOIN pg_catalog.pg_type t ON t.oid = b.basetypid AND t.typtype = 'd'
),
resolved AS (
    SELECT b.typid, b.basetypid, b.basetypmod
      FROM base_type b
      JOIN pg_catalog.pg_type t ON t.oid = b.basetypid AND t.typtype <> 'd'
),
fk AS (
    SELECT con.oid, con.conname, con.conrelid, con.confrelid, k.attnum, k.fattnum, k.pos
      FROM pg_catalog.pg_constraint con
      JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(con.conkey), pg_catalog.unnest(con.confkey))
                        WITH ORDINALITY AS k(attnum, fattnum, pos)
     WHERE con.contype = 'f'
       AND con.conparentid = 0
       AND n.nspname !~ '^pg_'
       AND n.nspname NOT IN ('information_schema', 'repair')
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
)
SELECT fk.conname::text,
       pg_catalog.format('%I.%I', n.nspname, c.relname),
       a.attname::text,
       pg_catalog.format_type(a.atttypid, a.atttypmod),
       pg_catalog.format('%I.%I', fn.nspname, fc.relname),
       fa.attname::text,
       pg_catalog.format_type(fa.atttypid, fa.atttypmod)
  FROM fk
  JOIN pg_catalog.pg_class c      ON c.oid = fk.conrelid
  JOIN pg_catalog.pg_namespace n  ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a  ON a.attrelid = fk.conrelid AND a.attnum = fk.attnum
  JOIN pg_catalog.pg_class fc     ON fc.oid = fk.confrelid
  JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
  JOIN pg_catalog.pg_attribute fa ON fa.attrelid = fk.confrelid AND fa.attnum = fk.fattnum
  LEFT JOIN resolved ra  ON ra.typid = a.atttypid
  LEFT JOIN resolved rfa ON rfa.typid = fa.atttypid
 WHERE COALESCE(ra.basetypid, a.atttypid) <> COALESCE(rfa.basetypid, fa.atttypid)
    OR CASE WHEN ra.typid IS NULL OR a.atttypmod <> -1 THEN a.atttypmod ELSE ra.basetypmod END
       <> CASE WHEN rfa.typid IS NULL OR fa.atttypmod <> -1 THEN fa.atttypmod ELSE rfa.basetypmod END
 ORDER BY 2, 1, fk.pos
$$;

COMMENT ON FUNCTION repair.check_fk_type_mismatch() IS
'Built-in check builtin.fk_type_mismatch: one row per foreign-key column whose type (type OID '
'and typmod, domains resolved to their base type) differs from the referenced column''s '
'(text vs uuid, integer vs bigint, varchar(10) vs varchar(20)). Zero rows = PASS.';

-- 2. Foreign keys without a supporting index on the referencing side ----------------------------
--
-- A foreign key is supported when some index on the referencing table is valid and live
-- (indisvalid, indislive), not partial, not BRIN, and its first N key columns (N = number of FK
-- columns; INCLUDE columns do not count) are exactly the FK columns, in any order among those N.
-- Expression index columns never count. For a foreign key declared on a partitioned table the
-- index must be declared on the partitioned table too (a partitioned index is valid only when
-- every partition has its own).
CREATE FUNCTION repair.check_fk_missing_index()
RETURNS TABLE(constraint_name text, table_name text, columns text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT con.conname::text,
       pg_catalog.format('%I.%I', n.nspname, c.relname),
       (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY k.pos)
          FROM pg_catalog.unnest(con.conkey) WITH ORDINALITY AS k(attnum, pos)
          JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum)
  FROM pg_catalog.pg_constraint con
  JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE con.contype = 'f'
   AND con.conparentid = 0
   AND n.nspname !~ '^pg_'
   AND n.nspname NOT IN ('information_schema', 'repair')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
   AND NOT EXISTS (
        SELECT 1
          FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
          JOIN pg_catalog.pg_am am ON am.oid = ic.relam
         WHERE i.indrelid = con.conrelid
           AND i.indisvalid AND i.indislive
           AND i.indpred IS NULL
           AND am.amname <> 'brin'
           AND i.indnkeyatts >= pg_catalog.cardinality(con.conkey)
           -- first N key columns, as a set, equal the FK columns (conkey has no duplicates)
           AND (i.indkey::pg_catalog.int2[])[0:pg_catalog.cardinality(con.conkey) - 1] @> con.conkey
           AND (i.indkey::pg_catalog.int2[])[0:pg_catalog.cardinality(con.conkey) - 1] <@ con.conkey)
 ORDER BY 2, 1
$$;

COMMENT ON FUNCTION repair.check_fk_missing_index() IS
'Built-in check builtin.fk_missing_index: foreign keys whose referencing columns are not the '
'leading columns (any order among them) of a valid, non-partial index on the referencing table, '
'so every DELETE/UPDATE on the referenced table scans it. Zero rows = PASS.';

-- 3. Invalid or not-ready indexes ----------------------------------------------------------------
--
-- indisvalid = false (a failed CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY, or a
-- partitioned index some partition lacks) or indisready = false (never receives inserts).
-- Indexes of the TOAST table of a user table (left by a failed REINDEX ... CONCURRENTLY) are
-- reported too, against the user table, although they live in schema pg_toast.
CREATE FUNCTION repair.check_invalid_index()
RETURNS TABLE(index_name text, table_name text, reason text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH owner_rel AS (
    -- the user relation itself, and its TOAST table (whose indexes are attributed to it)
    SELECT c.oid AS relid, c.oid AS owner_id FROM pg_catalog.pg_class c
     WHERE c.relkind IN ('r', 'p', 'm')
    UNION ALL
    SELECT c.reltoastrelid, c.oid FROM pg_catalog.pg_class c
     WHERE c.relkind IN ('r', 'p', 'm') AND c.reltoastrelid <> 0
)
SELECT pg_catalog.format('%I.%I', ixn.nspname, ix.relname),
       pg_catalog.format('%I.%I', n.nspname, c.relname),
       pg_catalog.concat_ws('; ',
           CASE WHEN NOT i.indisvalid THEN
               CASE WHEN ix.relkind = 'I'
                    THEN 'invalid (indisvalid = false): a partition has no attached index'
                    ELSE 'invalid (indisvalid = false): left by a failed CREATE INDEX CONCURRENTLY'
                         ' or REINDEX CONCURRENTLY; never used by queries, drop and recreate it'
               END
           END,
           CASE WHEN NOT i.indisready THEN
               'not ready (indisready = false): not maintained on insert/update'
           END,
           CASE WHEN NOT i.indislive THEN
               'not live (indislive = false): left by a failed DROP INDEX CONCURRENTLY'
           END)
  FROM pg_catalog.pg_index i
  JOIN owner_rel o ON o.relid = i.indrelid
  JOIN pg_catalog.pg_class c ON c.oid = o.owner_id
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_class ix ON ix.oid = i.indexrelid
  JOIN pg_catalog.pg_namespace ixn ON ixn.oid = ix.relnamespace
 WHERE (NOT i.indisvalid OR NOT i.indisready)
   AND n.nspname !~ '^pg_'
   AND n.nspname NOT IN ('information_schema', 'repair')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 2, 1
$$;

COMMENT ON FUNCTION repair.check_invalid_index() IS
'Built-in check builtin.invalid_index: indexes with indisvalid = false (e.g. left by a failed '
'CREATE INDEX CONCURRENTLY) or indisready = false, with the reason. Zero rows = PASS.';

-- 4. Tables without a primary key ----------------------------------------------------------------
--
-- Ordinary (r) and partitioned (p) tables. Partitions are skipped: their partitioned parent is
-- checked (a primary key on the parent exists on every partition).
CREATE FUNCTION repair.check_table_without_pk()
RETURNS TABLE(table_name text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND NOT c.relispartition
   AND n.nspname !~ '^pg_'
   AND n.nspname NOT IN ('information_schema', 'repair')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint con
                    WHERE con.conrelid = c.oid AND con.contype = 'p')
 ORDER BY 1
$$;

COMMENT ON FUNCTION repair.check_table_without_pk() IS
'Built-in check builtin.table_without_pk: ordinary and partitioned tables without a primary key '
'(partitions are skipped; their parent is checked). Zero rows = PASS.';

-- 5. Tables a role can DELETE from or TRUNCATE ---------------------------------------------------
--
-- Counted: privileges held directly, through PUBLIC, through inherited membership
-- (has_table_privilege), and through any role the given role may SET ROLE to (membership
-- without INHERIT), as well as ownership and superuser. Relations: ordinary and partitioned
-- tables (partitions included), foreign tables, and views that accept DELETE (auto-updatable,
-- INSTEAD OF trigger or rule) for the DELETE privilege. privilege is 'DELETE' or 'TRUNCATE'.
CREATE FUNCTION repair.check_role_cannot_delete(role_name name)
RETURNS TABLE(table_name text, privilege text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target oid;
BEGIN
    SELECT r.oid INTO target FROM pg_catalog.pg_roles r WHERE r.rolname = role_name;
    IF target IS NULL THEN
        RAISE EXCEPTION 'role "%" does not exist', role_name
            USING ERRCODE = 'undefined_object',
                  HINT = 'repair.check_role_cannot_delete() needs the name of an existing role.';
    END IF;

    RETURN QUERY
    WITH reach AS (
        -- the role itself and every role it can SET ROLE to (directly or indirectly)
        SELECT r.oid FROM pg_catalog.pg_roles r
         WHERE r.oid = target OR pg_catalog.pg_has_role(target, r.oid, 'MEMBER')
    ),
    rel AS (
        SELECT c.oid, c.relkind, pg_catalog.format('%I.%I', n.nspname, c.relname) AS name
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'f', 'v')
           AND n.nspname !~ '^pg_'
           AND n.nspname NOT IN ('information_schema', 'repair')
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND d.objid = c.oid AND d.deptype = 'e')
    ),
    priv(privilege) AS (VALUES ('DELETE'::text), ('TRUNCATE'::text))
    SELECT rel.name, p.privilege
      FROM rel
     CROSS JOIN priv p
     WHERE (rel.relkind <> 'v'
            OR (p.privilege = 'DELETE'
                -- bit (1 << CMD_DELETE): the view accepts DELETE
                AND (pg_catalog.pg_relation_is_updatable(rel.oid, true) & 16) <> 0))
       AND EXISTS (SELECT 1 FROM reach
                    WHERE pg_catalog.has_table_privilege(reach.oid, rel.oid, p.privilege))
     ORDER BY 1, 2;
END
$$;

COMMENT ON FUNCTION repair.check_role_cannot_delete(name) IS
'Parameterised check: tables on which the role can DELETE or TRUNCATE (directly, via PUBLIC, '
'via role membership or SET ROLE, ownership or superuser). Zero rows = PASS. '
'An unknown role raises SQLSTATE 42704.';

-- 6. A (partial) unique index exists ------------------------------------------------------------
--
-- Zero rows when tbl has a valid UNIQUE index whose key columns are exactly cols (same order;
-- INCLUDE columns ignored) and whose predicate matches predicate. NULL or empty predicate means
-- the index must NOT be partial. Otherwise exactly one row saying what is wrong with the closest
-- candidate (no index on those columns / not unique / not partial / predicate differs, both
-- shown / invalid).
--
-- Predicates are compared after normalising both sides (the index side is
-- pg_get_expr(indpred, indrelid)): outside single-quoted literals, text is lowercased and casts
-- ::text, ::character varying[(n)], ::varchar[(n)], ::bpchar are removed, then whitespace and
-- parentheses are removed; literals such as 'ACTIVE' are kept byte for byte (case matters).
-- So "status = 'ACTIVE'" matches "((status)::text = 'ACTIVE'::text)" but not
-- "status = 'active'".
CREATE FUNCTION repair._normalize_predicate(expr text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT pg_catalog.string_agg(
           CASE WHEN pg_catalog.left(m.seg[1], 1) = ''''
                THEN m.seg[1]
                ELSE pg_catalog.regexp_replace(
                         pg_catalog.regexp_replace(
                             pg_catalog.lower(m.seg[1]),
                             -- E'' strings: independent of standard_conforming_strings at call time
                             E'::\\s*(text|character\\s+varying(\\s*\\(\\s*\\d+\\s*\\))?|varchar(\\s*\\(\\s*\\d+\\s*\\))?|bpchar)(?![a-z0-9_$])',
                             '', 'g'),
                         E'[\\s()]', '', 'g')
           END, '' ORDER BY m.ord)
  FROM pg_catalog.regexp_matches(COALESCE(expr, ''), '''(?:[^'']|'''')*''?|[^'']+', 'g')
       WITH ORDINALITY AS m(seg, ord)
$$;

COMMENT ON FUNCTION repair._normalize_predicate(text) IS
'Internal: normalises an index predicate for repair.check_partial_unique_index (lowercase and '
'without whitespace, parentheses and ::text / ::character varying casts outside string literals).';

CREATE FUNCTION repair.check_partial_unique_index(tbl regclass, cols text[], predicate text)
RETURNS TABLE(problem text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tname    text;
    missing  text;
    want     text := NULLIF(pg_catalog.btrim(COALESCE(predicate, '')), '');
    want_n   text;
    best     record;
    problems text[] := '{}';
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'repair.check_partial_unique_index: tbl must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF cols IS NULL OR pg_catalog.cardinality(cols) = 0 THEN
        RAISE EXCEPTION 'repair.check_partial_unique_index: cols must name at least one column'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) INTO tname
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl;

    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x.col), ', ') INTO missing
      FROM pg_catalog.unnest(cols) AS x(col)
     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                        WHERE a.attrelid = tbl AND a.attname = x.col
                          AND a.attnum > 0 AND NOT a.attisdropped);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'column(s) % of relation % do not exist', missing, tname
            USING ERRCODE = 'undefined_column';
    END IF;

    want_n := repair._normalize_predicate(want);

    -- candidates: indexes whose key columns are exactly cols, in order; best one first
    SELECT pg_catalog.format('%I.%I', ixn.nspname, ix.relname) AS name,
           i.indisunique AS is_unique,
           (i.indisvalid AND i.indisready AND i.indislive) AS is_valid,
           (i.indpred IS NOT NULL) AS is_partial,
           pg_catalog.pg_get_expr(i.indpred, i.indrelid) AS pred,
           repair._normalize_predicate(pg_catalog.pg_get_expr(i.indpred, i.indrelid))
               IS NOT DISTINCT FROM want_n AS pred_ok
      INTO best
      FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_class ix ON ix.oid = i.indexrelid
      JOIN pg_catalog.pg_namespace ixn ON ixn.oid = ix.relnamespace
     WHERE i.indrelid = tbl
       AND i.indnkeyatts = pg_catalog.cardinality(cols)
       AND ARRAY(SELECT a.attname::text
                   FROM pg_catalog.unnest((i.indkey::pg_catalog.int2[])[0:i.indnkeyatts - 1])
                        WITH ORDINALITY AS k(attnum, pos)
                   LEFT JOIN pg_catalog.pg_attribute a
                          ON a.attrelid = i.indrelid AND a.attnum = k.attnum AND k.attnum <> 0
                  ORDER BY k.pos) IS NOT DISTINCT FROM cols
     ORDER BY (repair._normalize_predicate(pg_catalog.pg_get_expr(i.indpred, i.indrelid))
                   IS NOT DISTINCT FROM want_n) DESC,
              i.indisunique DESC,
              (i.indisvalid AND i.indisready AND i.indislive) DESC,
              ix.relname
     LIMIT 1;

    IF NOT FOUND THEN
        problem := pg_catalog.format('no index on %s (%s)%s', tname,
                       (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x), ', ') FROM pg_catalog.unnest(cols) x),
                       CASE WHEN want IS NULL THEN '' ELSE pg_catalog.format(' WHERE %s', want) END);
        RETURN NEXT;
        RETURN;
    END IF;

    IF best.is_unique AND best.is_valid AND best.pred_ok THEN
        RETURN;  -- PASS
    END IF;

    IF NOT best.is_unique THEN
        problems := problems || pg_catalog.format('index %s is not unique', best.name);
    END IF;
    IF NOT best.pred_ok THEN
        IF want IS NOT NULL AND NOT best.is_partial THEN
            problems := problems || pg_catalog.format(
                'index %s is not partial (expected WHERE %s)', best.name, want);
        ELSIF want IS NULL THEN
            problems := problems || pg_catalog.format(
                'index %s is partial (WHERE %s) but a non-partial index was expected', best.name, best.pred);
        ELSE
            problems := problems || pg_catalog.format(
                'index %s predicate differs: expected WHERE %s, found WHERE %s', best.name, want, best.pred);
        END IF;
    END IF;
    IF NOT best.is_valid THEN
        problems := problems || pg_catalog.format(
            'index %s is invalid (e.g. a failed CREATE INDEX CONCURRENTLY)', best.name);
    END IF;
    problem := pg_catalog.array_to_string(problems, '; ');
    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION repair.check_partial_unique_index(regclass, text[], text) IS
'Parameterised check: zero rows when tbl has a valid UNIQUE index on exactly cols (same order) '
'whose predicate matches predicate (normalised: case, whitespace, parentheses and ::text / '
'::character varying casts ignored outside literals; NULL = must not be partial); otherwise one '
'row saying what is missing or wrong.';

-- 7. Orphan rows -----------------------------------------------------------------------------------
--
-- Child rows whose non-null child_col has no parent row with parent_col equal to it, grouped by
-- value (most frequent first). Equality uses the columns' own operator; when none exists for the
-- two types (e.g. text vs uuid) both sides are compared as text.
CREATE FUNCTION repair.check_orphans(child regclass, child_col name, parent regclass, parent_col name)
RETURNS TABLE(child_value text, orphan_rows bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q text;
BEGIN
    IF child IS NULL OR parent IS NULL OR child_col IS NULL OR parent_col IS NULL THEN
        RAISE EXCEPTION 'repair.check_orphans: no argument may be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = child AND a.attname = child_col
                      AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', child_col, child
            USING ERRCODE = 'undefined_column';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = parent AND a.attname = parent_col
                      AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', parent_col, parent
            USING ERRCODE = 'undefined_column';
    END IF;

    q := pg_catalog.format(
        'SELECT c.%1$I::pg_catalog.text, pg_catalog.count(*)::pg_catalog.int8
           FROM %2$s c
          WHERE c.%1$I IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM %3$s p WHERE p.%4$I = c.%1$I)
          GROUP BY c.%1$I
          ORDER BY 2 DESC, 1',
        child_col, child, parent, parent_col);
    BEGIN
        RETURN QUERY EXECUTE q;
    EXCEPTION WHEN undefined_function THEN
        -- no equality operator between the two types: compare their text forms
        q := pg_catalog.format(
            'SELECT c.%1$I::pg_catalog.text, pg_catalog.count(*)::pg_catalog.int8
               FROM %2$s c
              WHERE c.%1$I IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM %3$s p
                                 WHERE p.%4$I::pg_catalog.text = c.%1$I::pg_catalog.text)
              GROUP BY c.%1$I
              ORDER BY 2 DESC, 1',
            child_col, child, parent, parent_col);
        RETURN QUERY EXECUTE q;
    END;
END
$$;

COMMENT ON FUNCTION repair.check_orphans(regclass, name, regclass, name) IS
'Parameterised check: values of child.child_col (non-null) with no parent row where '
'parent.parent_col equals them, with the number of child rows per value. Zero rows = PASS. '
'Unknown columns raise SQLSTATE 42703.';

-- 8. User tables -------------------------------------------------------------------------------
--
-- Every ordinary and partitioned table (partitions included) in user schemas, not belonging to
-- an extension, ordered by name. Used by baselines and `pgrepair assert-not-empty`.
CREATE FUNCTION repair.user_tables()
RETURNS TABLE(relid oid, table_name text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname)
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname !~ '^pg_'
   AND n.nspname NOT IN ('information_schema', 'repair')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 2
$$;

COMMENT ON FUNCTION repair.user_tables() IS
'Every user table (ordinary and partitioned, partitions included; system schemas, schema repair '
'and extension members excluded), ordered by name. Used by baselines and assert-not-empty.';
