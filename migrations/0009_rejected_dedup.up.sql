-- Dead letters now travel the same durable path as events (a spool, then an insert with a
-- deduplication token), so a replay after a crash must not store them twice: the same window as
-- the events table.
ALTER TABLE {{db}}.events_rejected {{on_cluster}}
    MODIFY SETTING non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;
