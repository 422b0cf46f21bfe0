-- repair: source_config_single_active
-- title: Restore the one-ACTIVE-config-per-workspace-and-source-type index
-- description: The partial unique index that allows only one ACTIVE source config per
-- description: (workspace, source type) went missing; duplicates then crept in.
-- environments: staging, prod
-- requires-before: public.source_configs
-- requires-after: public.source_configs_one_active_uidx
-- lock-timeout: 3s
-- statement-timeout: 10min
CREATE UNIQUE INDEX IF NOT EXISTS source_configs_one_active_uidx
    ON public.source_configs (workspace_id, source_type)
    WHERE status = 'ACTIVE';
