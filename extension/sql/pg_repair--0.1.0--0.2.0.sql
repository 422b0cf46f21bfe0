-- pg_repair 0.1.0 -> 0.2.0 (issue 7: bypasses closed). Keeps every audit row: columns are only
-- added, and rows written by 0.1.0 stay valid (their new columns are NULL, which verify_audit()
-- reads as "written before 0.2.0").
\echo Use "ALTER EXTENSION pg_repair UPDATE TO '0.2.0'" to load this file. \quit

-- Registry events pin the digest of the whole version row they record.
ALTER TABLE repair.registry_events ADD COLUMN version_digest text;
COMMENT ON COLUMN repair.registry_events.version_digest IS
    'SHA-256 of the canonical JSON of the version row this event records (every column: source, lint, registered_by, ...), so the chain covers playbook_versions';

-- Baseline captures are hash-chained per label, with a digest of their counts.
ALTER TABLE repair.baseline_captures
    ADD COLUMN counts_digest text,
    ADD COLUMN prev_hash text,
    ADD COLUMN row_hash text,
    ADD CONSTRAINT baseline_captures_check CHECK ((counts_digest IS NULL) = (row_hash IS NULL));
COMMENT ON COLUMN repair.baseline_captures.counts_digest IS
    'SHA-256 of the canonical JSON {table: row_count} of this capture''s repair.baseline_counts rows';
COMMENT ON TABLE repair.baseline_captures IS 'Row-count baselines by label (append-only, hash-chained per label; verify compares against the first capture unless one is named)';

-- verify_audit() returns every problem too: its result type changes, so it is recreated with
-- the grants it had.
DO $$
DECLARE
    grantees text[];
    g text;
    initial aclitem[];
BEGIN
    SELECT array_agg(DISTINCT pg_catalog.quote_ident(r.rolname))
      INTO grantees
      FROM pg_catalog.pg_proc p,
           LATERAL pg_catalog.aclexplode(p.proacl) a
      JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
     WHERE p.oid = 'repair.verify_audit()'::pg_catalog.regprocedure
       AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner;
    DROP FUNCTION repair.verify_audit();
    CREATE FUNCTION repair."verify_audit"() RETURNS TABLE (
        "ok" bool,
        "rows_checked" bigint,
        "first_bad_run" uuid,
        "first_bad_table" TEXT,
        "problem" TEXT,
        "problems" jsonb
    )
    STRICT SECURITY DEFINER
    SET search_path TO pg_catalog, pg_temp
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'verify_audit_wrapper';
    REVOKE ALL ON FUNCTION repair.verify_audit() FROM PUBLIC;
    SELECT proacl INTO initial FROM pg_catalog.pg_proc
     WHERE oid = 'repair.verify_audit()'::pg_catalog.regprocedure;
    FOREACH g IN ARRAY COALESCE(grantees, '{}') LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION repair.verify_audit() TO %s', g);
    END LOOP;
    -- Grants made inside an extension script count as the extension's initial privileges, which
    -- pg_dump leaves out: record the initial state a fresh install has, so the administrator's
    -- grants stay theirs (dumped and restored).
    UPDATE pg_catalog.pg_init_privs SET initprivs = initial
     WHERE objoid = 'repair.verify_audit()'::pg_catalog.regprocedure
       AND classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND objsubid = 0;
END $$;
COMMENT ON FUNCTION repair.verify_audit() IS
    'Recompute every hash chain (runs, registry events, checks, baselines), every stored version and baseline count; ok, the first bad row, and problems: every broken link';

-- baseline_verify against a named capture.
CREATE FUNCTION repair."baseline_verify"(
    "label" TEXT,
    "capture_id" uuid
) RETURNS TABLE (
    "table_name" TEXT,
    "status" TEXT,
    "before" bigint,
    "after" bigint
)
STRICT SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'baseline_verify_capture_wrapper';
REVOKE ALL ON FUNCTION repair.baseline_verify(text, uuid) FROM PUBLIC;
COMMENT ON FUNCTION repair.baseline_verify(text) IS
    'Tables whose row count changed since the first capture of a label, plus tables added or missing; counted as the session user';
COMMENT ON FUNCTION repair.baseline_verify(text, uuid) IS
    'Tables whose row count changed since the named capture of a label, plus tables added or missing; counted as the session user';
