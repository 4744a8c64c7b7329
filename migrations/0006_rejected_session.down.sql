ALTER TABLE {{db}}.events_rejected {{on_cluster}}
    DROP COLUMN IF EXISTS session_id;
