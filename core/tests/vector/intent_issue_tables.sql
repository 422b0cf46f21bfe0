-- repair: intent_issue_tables
-- title: Recreate the INTENT issue authoring tables
-- description: Restores the draft and set tables used by INTENT issue authoring
-- description: if a failed migration left them missing. Existing tables are kept as they are.
-- environments: staging
-- requires-before: public.workspaces
-- requires-after: public.intent_issue_drafts, public.intent_issue_sets
-- lock-timeout: 2s
-- statement-timeout: 5min

CREATE TABLE IF NOT EXISTS public.intent_issue_sets (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES public.workspaces (id),
    name         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, name)
);

CREATE TABLE IF NOT EXISTS public.intent_issue_drafts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    set_id       bigint NOT NULL REFERENCES public.intent_issue_sets (id),
    title        text NOT NULL,
    body         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS intent_issue_drafts_set_id_idx
    ON public.intent_issue_drafts (set_id);
