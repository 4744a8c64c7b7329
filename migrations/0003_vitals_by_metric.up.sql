-- Web Vitals per hour, metric and device only (no page): the default vitals report reads this
-- table, which stays a few rows per hour however many pages a site has; vitals_hourly (per page)
-- serves by=path and path=… . Same rating bands and quantile state as vitals_hourly.
CREATE TABLE IF NOT EXISTS {{db}}.vitals_metric_hourly {{on_cluster}}
(
    project_id  LowCardinality(String),
    hour        DateTime('UTC'),
    metric      LowCardinality(String),
    device_type LowCardinality(String),
    samples     SimpleAggregateFunction(sum, UInt64),
    good        SimpleAggregateFunction(sum, UInt64),
    poor        SimpleAggregateFunction(sum, UInt64),
    quantiles   AggregateFunction(quantiles(0.5, 0.75, 0.95), Float64)
)
ENGINE = {{engine:AggregatingMergeTree}}
PARTITION BY toYYYYMM(hour)
ORDER BY (project_id, hour, metric, device_type)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

{{distributed:vitals_metric_hourly}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.vitals_metric_hourly_mv {{on_cluster}} TO {{db}}.vitals_metric_hourly AS
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour, name AS metric, device_type,
       count() AS samples,
       countIf(value <= multiIf(name = 'LCP', 2500, name = 'INP', 200, name = 'CLS', 0.1, name = 'FCP', 1800,
                                name = 'TTFB', 800, name = 'FID', 100, -inf)) AS good,
       countIf(value > multiIf(name = 'LCP', 4000, name = 'INP', 500, name = 'CLS', 0.25, name = 'FCP', 3000,
                               name = 'TTFB', 1800, name = 'FID', 300, inf)) AS poor,
       quantilesState(0.5, 0.75, 0.95)(value) AS quantiles
FROM {{db}}.events WHERE type = 'web_vital' AND NOT is_bot
GROUP BY project_id, hour, metric, device_type;

-- Backfill from stored events (see 0002 for when this matters).
INSERT INTO {{all:vitals_metric_hourly}}
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour, name AS metric, device_type,
       count() AS samples,
       countIf(value <= multiIf(name = 'LCP', 2500, name = 'INP', 200, name = 'CLS', 0.1, name = 'FCP', 1800,
                                name = 'TTFB', 800, name = 'FID', 100, -inf)) AS good,
       countIf(value > multiIf(name = 'LCP', 4000, name = 'INP', 500, name = 'CLS', 0.25, name = 'FCP', 3000,
                               name = 'TTFB', 1800, name = 'FID', 300, inf)) AS poor,
       quantilesState(0.5, 0.75, 0.95)(value) AS quantiles
FROM {{all:events}} WHERE type = 'web_vital' AND NOT is_bot
GROUP BY project_id, hour, metric, device_type;
