-- pg_repair 0.2.0 -> 0.3.0 (issue 11: online playbooks). Keeps every audit row: columns are only
-- added (NULL in every earlier row, and row documents leave NULLs out, so those rows still verify)
-- and the status constraint only widens.
\echo Use "ALTER EXTENSION pg_repair UPDATE TO '0.3.0'" to load this file. \quit

-- Online runs: a STARTED row, then a closing row naming it.
ALTER TABLE repair.runs DROP CONSTRAINT runs_status_check;
ALTER TABLE repair.runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('SUCCESS', 'FAILED', 'STARTED', 'ABORTED'));
ALTER TABLE repair.runs
    ADD COLUMN mode text CHECK (mode = 'online'),
    ADD COLUMN online_run uuid,
    ADD COLUMN batches integer,
    ADD COLUMN rows_affected bigint;

-- The playbooks view shows each playbook's mode.
CREATE OR REPLACE VIEW repair.playbooks AS
SELECT v.playbook_id                                   AS id,
       v.version,
       v.kind,
       v.hash,
       c.doc ->> 'title'                               AS title,
       c.doc ->> 'description'                         AS description,
       CASE WHEN e.action = 'retired' THEN 'retired' ELSE 'active' END AS status,
       ARRAY(SELECT pg_catalog.jsonb_array_elements_text(
                 COALESCE(c.doc -> 'environments', '[]')))            AS environments,
       ARRAY(SELECT pg_catalog.jsonb_array_elements_text(
                 COALESCE(c.doc -> 'requires_before', '[]')))         AS requires_before,
       ARRAY(SELECT pg_catalog.jsonb_array_elements_text(
                 COALESCE(c.doc -> 'requires_after', '[]')))          AS requires_after,
       (c.doc ->> 'lock_timeout_ms')::integer          AS lock_timeout_ms,
       (c.doc ->> 'statement_timeout_ms')::integer     AS statement_timeout_ms,
       (SELECT count(*) FROM pg_catalog.jsonb_array_elements(v.lint) f
         WHERE f ->> 'severity' = 'error')::integer    AS lint_errors,
       (SELECT count(*) FROM pg_catalog.jsonb_array_elements(v.lint) f
         WHERE f ->> 'severity' = 'warning')::integer  AS lint_warnings,
       COALESCE(c.doc -> 'waivers', '[]')              AS waivers,
       v.registered_at,
       v.registered_by,
       COALESCE(c.doc ->> 'mode', 'transactional')     AS mode
  FROM repair.playbook_versions v
  CROSS JOIN LATERAL (SELECT v.canonical::jsonb AS doc) c
  LEFT JOIN LATERAL (SELECT ev.action FROM repair.registry_events ev
                      WHERE ev.playbook_id = v.playbook_id
                      ORDER BY ev.seq DESC LIMIT 1) e ON true
 WHERE v.version = (SELECT max(v2.version) FROM repair.playbook_versions v2
                     WHERE v2.playbook_id = v.playbook_id)
 ORDER BY v.playbook_id;

CREATE FUNCTION repair."online_begin"(
	"id" TEXT,
	"expected_hash" TEXT,
	"reason" TEXT,
	"confirm_prod" bool DEFAULT false,
	"request_id" TEXT DEFAULT NULL
) RETURNS jsonb
SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'online_begin_wrapper';

CREATE FUNCTION repair."online_finish"(
	"run_id" uuid
) RETURNS jsonb
SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'online_finish_wrapper';

CREATE FUNCTION repair."online_abort"(
	"run_id" uuid,
	"reason" TEXT
) RETURNS jsonb
SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'online_abort_wrapper';

REVOKE ALL ON FUNCTION repair.online_begin(text, text, text, boolean, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION repair.online_finish(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION repair.online_abort(uuid, text) FROM PUBLIC;

COMMENT ON TABLE repair.runs IS
    'Audit trail: one row per repair.execute() run and two per online run (STARTED, then SUCCESS/FAILED/ABORTED), hash-chained per playbook (append-only; checked by repair.verify_audit())';
COMMENT ON COLUMN repair.runs.mode IS 'online for both rows of an online run (STARTED, then SUCCESS/FAILED/ABORTED); NULL for a transactional run';
COMMENT ON COLUMN repair.runs.online_run IS 'the online run this row belongs to: the run_id of its STARTED row (a STARTED row no other row names is an INCOMPLETE run)';
COMMENT ON COLUMN repair.runs.batches IS 'online runs'' closing rows: batches of the batch statements that ran';
COMMENT ON COLUMN repair.runs.rows_affected IS 'online runs'' closing rows: rows the statements affected';
COMMENT ON FUNCTION repair.online_begin(text, text, text, boolean, text) IS
    'Begin an online run (mode: online): guards, requires-before, the playbook lock for the whole run, a STARTED row; the session may then send only the returned statements, in order';
COMMENT ON FUNCTION repair.online_finish(uuid) IS
    'Finish this session''s online run: requires-after, the closing row (SUCCESS or FAILED, with batches and rows affected); releases the playbook lock';
COMMENT ON FUNCTION repair.online_abort(uuid, text) IS
    'Abort this session''s online run with a reason: the closing row (ABORTED); releases the playbook lock';
