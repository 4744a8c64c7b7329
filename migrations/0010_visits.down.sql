-- Revert visits: the rollup and its view go. The new events columns stay (the previous release never
-- reads them, and `path` keeps its LowCardinality type: the same strings to every query), and so does
-- events_all's sharding by session in cluster mode.
DROP VIEW IF EXISTS {{db}}.visits_mv {{on_cluster}} SYNC;
DROP TABLE IF EXISTS {{db}}.visits_all {{on_cluster}} SYNC;
DROP TABLE IF EXISTS {{db}}.visits {{on_cluster}} SYNC;
