-- pg_repair 0.3.0 -> 0.4.0 (issue 12: approvals, refusals on record, redaction). Keeps every
-- audit row: runs gains one column (NULL in every earlier row, and row documents leave NULLs out,
-- so those rows still verify); approvals and refusals are new tables.
\echo Use "ALTER EXTENSION pg_repair UPDATE TO '0.4.0'" to load this file. \quit

-- Four eyes: the approval a run consumed.
ALTER TABLE repair.runs ADD COLUMN approval_id uuid;
CREATE INDEX runs_approval ON repair.runs (approval_id) WHERE approval_id IS NOT NULL;

CREATE TABLE repair.approvals (
    event_id          uuid        PRIMARY KEY,
    seq               bigserial   NOT NULL UNIQUE,
    chain_key         text        NOT NULL CHECK (chain_key = 'approvals'),
    action            text        NOT NULL CHECK (action IN ('approve', 'revoke')),
    approval_id       uuid        NOT NULL,
    playbook_id       text        NOT NULL,
    version           integer     NOT NULL,
    hash              text        NOT NULL,
    at                timestamptz NOT NULL,
    valid_until       timestamptz,
    session_user_name text        NOT NULL,
    reason            text        NOT NULL,
    prev_hash         text,
    row_hash          text        NOT NULL,
    CHECK ((action = 'approve') = (valid_until IS NOT NULL)),
    CHECK (action = 'revoke' OR approval_id = event_id)
);
CREATE INDEX approvals_chain ON repair.approvals (chain_key, seq);
CREATE INDEX approvals_playbook ON repair.approvals (playbook_id, hash);
CREATE INDEX approvals_approval ON repair.approvals (approval_id);

CREATE TABLE repair.refusals (
    refusal_id        uuid        PRIMARY KEY,
    seq               bigserial   NOT NULL UNIQUE,
    chain_key         text        NOT NULL CHECK (chain_key = 'refusals'),
    refused_at        timestamptz NOT NULL,
    function          text        NOT NULL,
    session_user_name text,
    playbook_id       text,
    guard             text,
    sqlstate          text,
    message           text CHECK (length(message) <= 1000),
    reason            text,
    request_id        text,
    application_name  text,
    client_addr       text,
    dropped           bigint      CHECK (dropped > 0),
    prev_hash         text,
    row_hash          text        NOT NULL,
    CHECK (dropped IS NOT NULL OR (session_user_name IS NOT NULL AND sqlstate IS NOT NULL))
);
CREATE INDEX refusals_chain ON repair.refusals (chain_key, seq);
CREATE INDEX refusals_at ON repair.refusals (refused_at);

SELECT pg_catalog.pg_extension_config_dump('repair.approvals', '');
SELECT pg_catalog.pg_extension_config_dump('repair.approvals_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('repair.refusals', '');
SELECT pg_catalog.pg_extension_config_dump('repair.refusals_seq_seq', '');

CREATE VIEW repair.approval_status AS
SELECT a.approval_id,
       a.playbook_id,
       a.version,
       a.hash,
       a.session_user_name AS approved_by,
       a.at                AS approved_at,
       a.valid_until,
       a.reason,
       CASE WHEN rv.event_id IS NOT NULL THEN 'revoked'
            WHEN u.run_id IS NOT NULL THEN 'used'
            WHEN a.valid_until <= pg_catalog.clock_timestamp() THEN 'expired'
            WHEN cur.hash IS DISTINCT FROM a.hash THEN 'stale'
            ELSE 'usable' END AS state,
       u.run_id            AS used_by_run,
       rv.session_user_name AS revoked_by,
       rv.at               AS revoked_at,
       rv.reason           AS revoke_reason
  FROM repair.approvals a
  LEFT JOIN LATERAL (SELECT r.event_id, r.session_user_name, r.at, r.reason FROM repair.approvals r
                      WHERE r.action = 'revoke' AND r.approval_id = a.approval_id
                      ORDER BY r.seq LIMIT 1) rv ON true
  LEFT JOIN LATERAL (SELECT x.run_id FROM repair.runs x WHERE x.approval_id = a.approval_id
                      ORDER BY x.seq LIMIT 1) u ON true
  LEFT JOIN LATERAL (SELECT v.hash FROM repair.playbook_versions v
                      WHERE v.playbook_id = a.playbook_id
                      ORDER BY v.version DESC LIMIT 1) cur ON true
 WHERE a.action = 'approve';

-- Append-only, like every other table (protect.sql).
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['approvals', 'refusals'] LOOP
        EXECUTE format('CREATE TRIGGER insert_guard BEFORE INSERT ON repair.%I
                        FOR EACH ROW EXECUTE FUNCTION repair._insert_guard()', t);
        EXECUTE format('CREATE TRIGGER deny_update_delete BEFORE UPDATE OR DELETE ON repair.%I
                        FOR EACH ROW EXECUTE FUNCTION repair._deny_modification()', t);
        EXECUTE format('CREATE TRIGGER deny_truncate BEFORE TRUNCATE ON repair.%I
                        FOR EACH STATEMENT EXECUTE FUNCTION repair._deny_modification()', t);
        EXECUTE format('ALTER TABLE repair.%I ENABLE ALWAYS TRIGGER insert_guard,
                        ENABLE ALWAYS TRIGGER deny_update_delete, ENABLE ALWAYS TRIGGER deny_truncate', t);
    END LOOP;
END $$;

CREATE FUNCTION repair."approve"(
	"id" TEXT,
	"expected_hash" TEXT,
	"reason" TEXT,
	"valid_for" interval DEFAULT '4 hours'
) RETURNS uuid
SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'approve_wrapper';

CREATE FUNCTION repair."revoke_approval"(
	"approval_id" uuid,
	"reason" TEXT
) RETURNS uuid
SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'revoke_approval_wrapper';

CREATE FUNCTION repair."_record_refusals"(
	"entries" jsonb
) RETURNS bigint
STRICT SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'record_refusals_wrapper';

CREATE FUNCTION repair."refusal_queue"() RETURNS jsonb
STRICT SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'refusal_queue_wrapper';

REVOKE ALL ON TABLE repair.approvals, repair.refusals, repair.approval_status FROM PUBLIC;
REVOKE ALL ON SEQUENCE repair.approvals_seq_seq, repair.refusals_seq_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION repair.approve(text, text, text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION repair.revoke_approval(uuid, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION repair._record_refusals(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION repair.refusal_queue() FROM PUBLIC;

COMMENT ON FUNCTION repair.verify_audit() IS
    'Recompute every hash chain (runs, registry events, checks, baselines, approvals, refusals), every stored version and baseline count; ok, the first bad row, and problems: every broken link';
COMMENT ON COLUMN repair.runs.approval_id IS
    'the approval this run consumed (guard 8, four eyes); NULL when no approval was required';
COMMENT ON TABLE repair.approvals IS
    'Four eyes: approvals of a playbook version (by hash) and their revocations, one hash chain (append-only; checked by repair.verify_audit()). An approval is used once a run names it';
COMMENT ON COLUMN repair.approvals.approval_id IS
    'the approval: this row''s event_id for action approve, the revoked approval for action revoke';
COMMENT ON COLUMN repair.approvals.valid_until IS 'approvals only: the approval cannot be used from this time on';
COMMENT ON VIEW repair.approval_status IS
    'One row per approval with its state: usable, used (used_by_run), expired, revoked, or stale (the playbook has another hash now)';
COMMENT ON TABLE repair.refusals IS
    'Every refused gated call (execute, online_begin, approve, revoke_approval, the migration gate, retire), recorded by a background worker so the caller''s rollback keeps it; one hash chain (append-only; checked by repair.verify_audit())';
COMMENT ON COLUMN repair.refusals.guard IS 'the refusal''s NAME (HASH_MISMATCH, APPROVAL_REQUIRED, ...)';
COMMENT ON COLUMN repair.refusals.dropped IS
    'marker rows only: this many refusals were not recorded because the queue was full (they are in the server log)';
COMMENT ON FUNCTION repair.approve(text, text, text, interval) IS
    'Approve one playbook version (by hash) for one run by another person, valid for at most 24 hours; approvers (repair.approvers) only; returns the approval id';
COMMENT ON FUNCTION repair.revoke_approval(uuid, text) IS
    'Revoke an approval (approvers only), with a reason; recorded in repair.approvals';
COMMENT ON FUNCTION repair._record_refusals(jsonb) IS
    'Internal: the refusal recorder (background worker) appends queued refusals to repair.refusals';
COMMENT ON FUNCTION repair.refusal_queue() IS
    'The refusal queue of this database: entries waiting, the queue''s capacity, refusals dropped since the last marker row, the recorder''s pid';
