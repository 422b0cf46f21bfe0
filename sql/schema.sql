-- pg_repair: tables and views. Runs first in the extension script (bootstrap).
-- Every table here is append-only (see protect.sql). Rows are complete when inserted: ids,
-- timestamps, prev_hash and row_hash are computed by the inserting function, never by a trigger,
-- so pg_dump/pg_restore brings rows back byte-identical and verify_audit() still passes.

-- One row per registered version of a playbook or check. Old versions are kept; the newest runs.
CREATE TABLE repair.playbook_versions (
    playbook_id   text        NOT NULL CHECK (playbook_id ~ '^[a-z][a-z0-9_]{0,62}$'),
    version       integer     NOT NULL CHECK (version > 0),
    kind          text        NOT NULL CHECK (kind IN ('playbook', 'check')),
    hash          text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    canonical     text        NOT NULL,   -- the exact canonical JSON the hash was computed over
    source        text        NOT NULL,   -- the file as registered
    body_line     integer     NOT NULL,   -- file line of the body's first line (for positions)
    lint          jsonb       NOT NULL DEFAULT '[]',  -- findings before waivers
    registered_at timestamptz NOT NULL,
    registered_by text        NOT NULL,
    PRIMARY KEY (playbook_id, version)
);

-- Register / update / retire events, hash-chained per playbook.
CREATE TABLE repair.registry_events (
    event_id          uuid        PRIMARY KEY,
    seq               bigserial   NOT NULL UNIQUE,
    playbook_id       text        NOT NULL,
    version           integer     NOT NULL,
    action            text        NOT NULL CHECK (action IN ('new', 'updated', 'retired')),
    hash              text        NOT NULL,
    reason            text,
    at                timestamptz NOT NULL,
    session_user_name text        NOT NULL,
    current_user_name text        NOT NULL,
    prev_hash         text,
    row_hash          text        NOT NULL,
    -- SHA-256 of the version row (every column) this event records; NULL only in events
    -- written before 0.2.0
    version_digest    text
);
CREATE INDEX registry_events_chain ON repair.registry_events (playbook_id, seq);

-- The audit trail of executions, hash-chained per playbook.
CREATE TABLE repair.runs (
    run_id              uuid        PRIMARY KEY,
    seq                 bigserial   NOT NULL UNIQUE,
    playbook_id         text        NOT NULL,
    version             integer     NOT NULL,
    expected_hash       text        NOT NULL,
    actual_hash         text        NOT NULL,
    started_at          timestamptz NOT NULL,
    finished_at         timestamptz NOT NULL,
    session_user_name   text        NOT NULL,
    current_user_name   text        NOT NULL,
    executed_as         text        NOT NULL,
    declared_role       text        NOT NULL,
    confirm_prod        boolean     NOT NULL,
    reason              text        NOT NULL,
    request_id          text,
    status              text        NOT NULL CHECK (status IN ('SUCCESS', 'FAILED', 'STARTED', 'ABORTED')),
    error_code          text,
    error_message       text CHECK (length(error_message) <= 1000),
    missing_before      jsonb       NOT NULL DEFAULT '[]',
    missing_after       jsonb       NOT NULL DEFAULT '[]',
    statements_total    integer     NOT NULL,
    statements_executed integer     NOT NULL,
    duration_us         bigint      NOT NULL,
    waivers             jsonb       NOT NULL DEFAULT '[]',
    prev_hash           text,
    row_hash            text        NOT NULL,
    -- Online runs (0.3.0): 'online' in both rows of an online run; the STARTED row's run_id in
    -- both; batches and rows affected in the closing row. NULL in transactional runs.
    mode                text        CHECK (mode = 'online'),
    online_run          uuid,
    batches             integer,
    rows_affected       bigint,
    -- Four eyes (0.4.0): the approval this run consumed (guard 8); NULL when none was required.
    approval_id         uuid
);
CREATE INDEX runs_chain ON repair.runs (playbook_id, seq);
CREATE INDEX runs_started ON repair.runs (started_at);
CREATE INDEX runs_approval ON repair.runs (approval_id) WHERE approval_id IS NOT NULL;

-- Four eyes (0.4.0): approvals of one playbook version (by hash) and their revocations, in one
-- hash chain. An approval is used once a run names it (repair.runs.approval_id).
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

-- Refusals on record (0.4.0): every refused gated call, written by a background worker from a
-- shared-memory queue (so the caller's rollback does not take it away), in one hash chain. A row
-- with `dropped` records how many refusals the full queue could not take.
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

-- Registered rows are data to keep: pg_dump dumps them (and the sequence positions).
SELECT pg_catalog.pg_extension_config_dump('repair.playbook_versions', '');
SELECT pg_catalog.pg_extension_config_dump('repair.registry_events', '');
SELECT pg_catalog.pg_extension_config_dump('repair.registry_events_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('repair.runs', '');
SELECT pg_catalog.pg_extension_config_dump('repair.runs_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('repair.approvals', '');
SELECT pg_catalog.pg_extension_config_dump('repair.approvals_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('repair.refusals', '');
SELECT pg_catalog.pg_extension_config_dump('repair.refusals_seq_seq', '');

-- The current version of every playbook and check, with its lifecycle state.
CREATE VIEW repair.playbooks AS
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

-- One row per approval with what became of it: usable, used (a run names it), expired, revoked,
-- or stale (the playbook's current hash is another one).
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

-- Validation: one row per run_checks() call (hash-chained in the single chain 'check_runs') and
-- one row per check in it (hash-chained per check id).
CREATE TABLE repair.check_runs (
    run_id            uuid        PRIMARY KEY,
    seq               bigserial   NOT NULL UNIQUE,
    chain_key         text        NOT NULL CHECK (chain_key = 'check_runs'),
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL,
    session_user_name text        NOT NULL,
    tags              text[],
    total             integer     NOT NULL,
    passed            integer     NOT NULL,
    failed_critical   integer     NOT NULL,
    failed_important  integer     NOT NULL,
    decision          text        NOT NULL CHECK (decision IN ('GO', 'HOLD', 'NO-GO')),
    score             text        NOT NULL,
    prev_hash         text,
    row_hash          text        NOT NULL
);

CREATE TABLE repair.check_results (
    result_id       uuid        PRIMARY KEY,
    seq             bigserial   NOT NULL UNIQUE,
    run_id          uuid        NOT NULL,
    check_id        text        NOT NULL,
    check_version   integer,                 -- NULL for built-ins
    check_hash      text,
    severity        text        NOT NULL CHECK (severity IN ('critical', 'important')),
    status          text        NOT NULL CHECK (status IN ('PASS', 'FAIL')),
    violation_count bigint      NOT NULL,
    sample          jsonb       NOT NULL DEFAULT '[]',
    error           text,
    duration_us     bigint      NOT NULL,
    prev_hash       text,
    row_hash        text        NOT NULL
);
CREATE INDEX check_results_run ON repair.check_results (run_id);
CREATE INDEX check_results_chain ON repair.check_results (check_id, seq);

-- Baselines: exact row counts per table under a label, append-only and hash-chained per label.
-- A re-capture is a new capture; verification compares against the first capture of a label
-- unless the caller names another.
CREATE TABLE repair.baseline_captures (
    capture_id        uuid        PRIMARY KEY,
    seq               bigserial   NOT NULL UNIQUE,
    label             text        NOT NULL CHECK (label <> ''),
    scope             text        NOT NULL CHECK (scope IN ('all', 'listed')),
    captured_at       timestamptz NOT NULL,
    session_user_name text        NOT NULL,
    table_count       integer     NOT NULL,
    -- Since 0.2.0: SHA-256 of this capture's counts, and the chain. NULL only in captures made
    -- before 0.2.0, which were never chained.
    counts_digest     text,
    prev_hash         text,
    row_hash          text,
    CHECK ((counts_digest IS NULL) = (row_hash IS NULL))
);
CREATE INDEX baseline_captures_label ON repair.baseline_captures (label, seq);

CREATE TABLE repair.baseline_counts (
    capture_id uuid   NOT NULL REFERENCES repair.baseline_captures (capture_id),
    table_name text   NOT NULL,
    row_count  bigint NOT NULL,
    PRIMARY KEY (capture_id, table_name)
);

SELECT pg_catalog.pg_extension_config_dump('repair.check_runs', '');
SELECT pg_catalog.pg_extension_config_dump('repair.check_runs_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('repair.check_results', '');
SELECT pg_catalog.pg_extension_config_dump('repair.check_results_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('repair.baseline_captures', '');
SELECT pg_catalog.pg_extension_config_dump('repair.baseline_captures_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('repair.baseline_counts', '');
