-- Revert the daily tiers: reports read the hourly rollups again.
DROP VIEW IF EXISTS {{db}}.events_daily_mv {{on_cluster}} SYNC;
DROP VIEW IF EXISTS {{db}}.pages_daily_mv {{on_cluster}} SYNC;
DROP TABLE IF EXISTS {{db}}.events_daily_all {{on_cluster}} SYNC;
DROP TABLE IF EXISTS {{db}}.pages_daily_all {{on_cluster}} SYNC;
DROP TABLE IF EXISTS {{db}}.events_daily {{on_cluster}} SYNC;
DROP TABLE IF EXISTS {{db}}.pages_daily {{on_cluster}} SYNC;
