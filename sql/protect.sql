-- pg_repair: append-only protection, object protection, grants and comments.
-- Runs last in the extension script (finalize), after the Rust functions exist.

-- Append-only tables -------------------------------------------------------------------------

CREATE FUNCTION repair._deny_modification() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    RAISE EXCEPTION 'APPEND_ONLY: % on repair.% is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = 'pg_repair tables are an append-only, hash-chained record.',
              HINT = 'Nothing may change or remove recorded rows; repair.verify_audit() detects any edit.';
END $$;

-- Only the table owner may insert: that is the extension's SECURITY DEFINER functions, and the
-- role that recreates the extension during pg_restore. The trigger only checks; it never rewrites.
CREATE FUNCTION repair._insert_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID)
       IS DISTINCT FROM (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user) THEN
        RAISE EXCEPTION 'APPEND_ONLY: INSERT into repair.% is only possible through pg_repair functions', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('current_user %I is not the owner of repair.%I.', current_user, TG_TABLE_NAME),
                  HINT = 'Use repair.register(), repair.retire() or repair.execute().';
    END IF;
    RETURN NEW;
END $$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['playbook_versions', 'registry_events', 'runs', 'check_runs', 'check_results',
                             'baseline_captures', 'baseline_counts', 'approvals', 'refusals'] LOOP
        EXECUTE format('CREATE TRIGGER insert_guard BEFORE INSERT ON repair.%I
                        FOR EACH ROW EXECUTE FUNCTION repair._insert_guard()', t);
        EXECUTE format('CREATE TRIGGER deny_update_delete BEFORE UPDATE OR DELETE ON repair.%I
                        FOR EACH ROW EXECUTE FUNCTION repair._deny_modification()', t);
        EXECUTE format('CREATE TRIGGER deny_truncate BEFORE TRUNCATE ON repair.%I
                        FOR EACH STATEMENT EXECUTE FUNCTION repair._deny_modification()', t);
        -- ALWAYS: session_replication_role = replica must not silence them.
        EXECUTE format('ALTER TABLE repair.%I ENABLE ALWAYS TRIGGER insert_guard,
                        ENABLE ALWAYS TRIGGER deny_update_delete, ENABLE ALWAYS TRIGGER deny_truncate', t);
    END LOOP;
END $$;

-- Object protection --------------------------------------------------------------------------
-- Refuses ALTER/DROP/CREATE of anything in schema repair (tables, triggers, functions, ...)
-- outside CREATE/ALTER EXTENSION. What event triggers cannot see (ALTER EVENT TRIGGER,
-- ALTER EXTENSION ADD/DROP, DROP SCHEMA repair) is refused by the preloaded utility hook.
CREATE FUNCTION repair._protect_objects() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
    IF TG_EVENT = 'sql_drop' THEN
        IF TG_TAG = 'DROP EXTENSION' THEN RETURN; END IF;
        FOR r IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
            IF (r.schema_name = 'repair'
                OR (r.object_type IN ('trigger', 'rule', 'policy', 'schema') AND r.address_names[1] = 'repair'))
               AND NOT repair._in_extension_script() THEN
                RAISE EXCEPTION 'PROTECTED: % of % % is refused', TG_TAG, r.object_type, r.object_identity
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = 'pg_repair objects change only through ALTER EXTENSION pg_repair UPDATE.';
            END IF;
        END LOOP;
    ELSE
        FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
            IF (r.schema_name = 'repair'
                OR (r.object_type IN ('trigger', 'rule', 'policy')
                    AND (pg_identify_object_as_address(r.classid, r.objid, r.objsubid)).object_names[1] = 'repair')
                OR (r.object_type = 'schema' AND r.object_identity <> 'repair'
                    AND r.objid = (SELECT e.extnamespace FROM pg_extension e WHERE e.extname = 'pg_repair')))
               AND NOT repair._in_extension_script() THEN
                RAISE EXCEPTION 'PROTECTED: % of % % is refused', r.command_tag, r.object_type, r.object_identity
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = 'pg_repair objects change only through ALTER EXTENSION pg_repair UPDATE.';
            END IF;
        END LOOP;
    END IF;
END $$;

CREATE EVENT TRIGGER pg_repair_protect_ddl ON ddl_command_end
    EXECUTE FUNCTION repair._protect_objects();
CREATE EVENT TRIGGER pg_repair_protect_drop ON sql_drop
    EXECUTE FUNCTION repair._protect_objects();
ALTER EVENT TRIGGER pg_repair_protect_ddl ENABLE ALWAYS;
ALTER EVENT TRIGGER pg_repair_protect_drop ENABLE ALWAYS;

-- Grants: nothing for PUBLIC. A superuser grants USAGE on the schema plus, per duty:
--   authors:   repair.register, repair.retire
--   operators: repair.preview, repair.execute
--   auditors:  SELECT on the tables and views, repair.verify_audit, repair.audit_head
REVOKE ALL ON ALL TABLES IN SCHEMA repair FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA repair FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA repair FROM PUBLIC;
REVOKE ALL ON SCHEMA repair FROM PUBLIC;

-- Comments -----------------------------------------------------------------------------------
COMMENT ON SCHEMA repair IS 'pg_repair: guarded, hash-pinned repair playbooks and their audit trail';
COMMENT ON TABLE repair.playbook_versions IS
    'Every registered version of every playbook and check (append-only; the newest version is the one that runs)';
COMMENT ON TABLE repair.registry_events IS
    'Register/update/retire events, hash-chained per playbook (append-only; checked by repair.verify_audit())';
COMMENT ON TABLE repair.runs IS
    'Audit trail: one row per repair.execute() run and two per online run (STARTED, then SUCCESS/FAILED/ABORTED), hash-chained per playbook (append-only; checked by repair.verify_audit())';
COMMENT ON VIEW repair.playbooks IS
    'The current version of every playbook and check with status (active/retired) and lint counts, ordered by id';
COMMENT ON COLUMN repair.runs.prev_hash IS 'row_hash of this playbook''s previous run (NULL for its first run)';
COMMENT ON COLUMN repair.runs.row_hash IS
    'sha256(coalesce(prev_hash, 64 zeros) || canonical JSON of the row without prev_hash/row_hash)';
COMMENT ON COLUMN repair.runs.duration_us IS 'wall time of the run in microseconds';
COMMENT ON COLUMN repair.runs.mode IS 'online for both rows of an online run (STARTED, then SUCCESS/FAILED/ABORTED); NULL for a transactional run';
COMMENT ON COLUMN repair.runs.online_run IS 'the online run this row belongs to: the run_id of its STARTED row (a STARTED row no other row names is an INCOMPLETE run)';
COMMENT ON COLUMN repair.runs.batches IS 'online runs'' closing rows: batches of the batch statements that ran';
COMMENT ON COLUMN repair.runs.rows_affected IS 'online runs'' closing rows: rows the statements affected';
COMMENT ON COLUMN repair.registry_events.version_digest IS
    'SHA-256 of the canonical JSON of the version row this event records (every column: source, lint, registered_by, ...), so the chain covers playbook_versions';
COMMENT ON COLUMN repair.baseline_captures.counts_digest IS
    'SHA-256 of the canonical JSON {table: row_count} of this capture''s repair.baseline_counts rows';

COMMENT ON FUNCTION repair.register(text) IS
    'Parse, lint and store a playbook or check file; returns (id, version, hash, status new|unchanged|updated)';
COMMENT ON FUNCTION repair.retire(text, text) IS
    'Retire a playbook (it can no longer run) with a reason; recorded in repair.registry_events';
COMMENT ON FUNCTION repair.hash(text) IS
    'Canonical SHA-256 of a playbook or check file (the same value pgrepair hash computes offline)';
COMMENT ON FUNCTION repair.lint(text) IS
    'Lint a playbook or check file with PostgreSQL''s own parser: (rule, severity, statement, line, col, message), file positions';
COMMENT ON FUNCTION repair.preview(text) IS
    'What repair.execute would do for this caller: guard verdicts, missing objects, statements, lint, waivers. Writes nothing';
COMMENT ON FUNCTION repair.execute(text, text, text, boolean, text) IS
    'Run a playbook through every guard, in a subtransaction, and record the run in repair.runs; returns the run as jsonb';
COMMENT ON FUNCTION repair.online_begin(text, text, text, boolean, text) IS
    'Begin an online run (mode: online): guards, requires-before, the playbook lock for the whole run, a STARTED row; the session may then send only the returned statements, in order';
COMMENT ON FUNCTION repair.online_finish(uuid) IS
    'Finish this session''s online run: requires-after, the closing row (SUCCESS or FAILED, with batches and rows affected); releases the playbook lock';
COMMENT ON FUNCTION repair.online_abort(uuid, text) IS
    'Abort this session''s online run with a reason: the closing row (ABORTED); releases the playbook lock';
COMMENT ON FUNCTION repair.verify_audit() IS
    'Recompute every hash chain (runs, registry events, checks, baselines, approvals, refusals), every stored version and baseline count; ok, the first bad row, and problems: every broken link';
COMMENT ON FUNCTION repair.audit_head() IS
    'SHA-256 over the newest row_hash of every chain: export it and pin it outside the database';
COMMENT ON TABLE repair.check_runs IS
    'One row per repair.run_checks() call with its decision and score (append-only, hash-chained)';
COMMENT ON TABLE repair.check_results IS
    'One row per check per run: status, violations, a sample, the error if it failed to run (append-only, hash-chained per check)';
COMMENT ON TABLE repair.baseline_captures IS 'Row-count baselines by label (append-only, hash-chained per label; verify compares against the first capture unless one is named)';
COMMENT ON TABLE repair.baseline_counts IS 'Exact row counts per table of each baseline capture (append-only)';
COMMENT ON FUNCTION repair.run_checks(text[]) IS
    'Run the built-in checks and the registered checks (tags overlap, or all) read-only; record and return one row per check';
COMMENT ON FUNCTION repair.decision(uuid) IS
    'GO (all pass), HOLD (only 1-2 important failures) or NO-GO (any critical or 3+ important) for a check run, with score passed/total';
COMMENT ON FUNCTION repair.baseline_capture(text, regclass[]) IS
    'Store exact row counts of the given tables (NULL: every user table) under a label';
COMMENT ON FUNCTION repair._baseline_capture(text, oid[]) IS 'Internal: body of repair.baseline_capture';
COMMENT ON FUNCTION repair.baseline_verify(text) IS
    'Tables whose row count changed since the first capture of a label, plus tables added or missing; counted as the session user';
COMMENT ON FUNCTION repair.baseline_verify(text, uuid) IS
    'Tables whose row count changed since the named capture of a label, plus tables added or missing; counted as the session user';
COMMENT ON FUNCTION repair.assert_migrations_allowed(boolean) IS
    'Migration gate: guards 1-3 (declared role, environment incl. prod confirmation, executor); raises the guard''s error';
COMMENT ON FUNCTION repair.authority() IS
    'Declared role, evidence (recovery, replication role, listen addresses, names) and mismatch warnings; never infers';
COMMENT ON FUNCTION repair._in_extension_script() IS
    'Internal: true only while CREATE/ALTER EXTENSION pg_repair runs its script';
COMMENT ON FUNCTION repair._protect_objects() IS
    'Internal event trigger: refuses DDL on pg_repair objects outside extension scripts';
COMMENT ON FUNCTION repair._deny_modification() IS 'Internal trigger: refuses UPDATE, DELETE and TRUNCATE';
COMMENT ON FUNCTION repair._insert_guard() IS 'Internal trigger: admits INSERTs only from the table owner';
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
