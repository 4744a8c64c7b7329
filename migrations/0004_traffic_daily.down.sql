DROP VIEW IF EXISTS {{db}}.traffic_daily_mv {{on_cluster}} SYNC;
DROP TABLE IF EXISTS {{db}}.traffic_daily_all {{on_cluster}} SYNC;
DROP TABLE IF EXISTS {{db}}.traffic_daily {{on_cluster}} SYNC;
