DROP VIEW IF EXISTS {{db}}.vitals_metric_hourly_mv {{on_cluster}} SYNC;
DROP TABLE IF EXISTS {{db}}.vitals_metric_hourly_all {{on_cluster}} SYNC;
DROP TABLE IF EXISTS {{db}}.vitals_metric_hourly {{on_cluster}} SYNC;
