-- Dead letters name the session they came from, so `obsd purge --session` erases them too.
-- Rows from before this migration read as belonging to no session (''); only --project and
-- --before reach those.
ALTER TABLE {{db}}.events_rejected {{on_cluster}}
    ADD COLUMN IF NOT EXISTS session_id String AFTER project_id;
