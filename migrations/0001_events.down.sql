DROP TABLE IF EXISTS {{db}}.events_rejected {{on_cluster}} SYNC;
DROP TABLE IF EXISTS {{db}}.events {{on_cluster}} SYNC;
