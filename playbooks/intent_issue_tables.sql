-- repair: intent_issue_tables
-- title: Recreate the INTENT issue authoring tables
-- description: The drafts/sets tables behind issue authoring were lost in a partial restore.
-- description: Recreates them with their indexes and append-only history trigger, idempotently.
-- environments: staging
-- requires-before: public.workspaces
-- requires-after: public.intent_issue_drafts, public.intent_issue_sets, public.intent_issue_history
-- lock-timeout: 2s
-- statement-timeout: 5min
CREATE TABLE IF NOT EXISTS public.intent_issue_sets (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES public.workspaces (id),
    name         text   NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.intent_issue_drafts (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    set_id     bigint NOT NULL REFERENCES public.intent_issue_sets (id),
    title      text   NOT NULL,
    body       text   NOT NULL DEFAULT '',
    status     text   NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'ready', 'filed')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS intent_issue_sets_workspace_id_idx ON public.intent_issue_sets (workspace_id);
CREATE INDEX IF NOT EXISTS intent_issue_drafts_set_id_idx ON public.intent_issue_drafts (set_id);

CREATE TABLE IF NOT EXISTS public.intent_issue_history (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    draft_id   bigint NOT NULL,
    status     text   NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS intent_issue_history_draft_id_idx ON public.intent_issue_history (draft_id);

-- History rows are evidence: refuse edits and deletes.
CREATE OR REPLACE FUNCTION public.intent_issue_history_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'intent_issue_history is append-only (% refused)', TG_OP;
END $$;

CREATE OR REPLACE TRIGGER intent_issue_history_no_change
    BEFORE UPDATE OR DELETE ON public.intent_issue_history
    FOR EACH ROW EXECUTE FUNCTION public.intent_issue_history_append_only();
