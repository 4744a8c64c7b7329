-- Pageviews, visitors and sessions per day: the overview over ranges of whole days (7d, 30d, dates)
-- merges one uniq state per day instead of 24, which keeps a month's overview well under a second
-- at millions of sessions. Hour-bucketed and partial-day ranges keep reading events_hourly.
CREATE TABLE IF NOT EXISTS {{db}}.traffic_daily {{on_cluster}}
(
    project_id LowCardinality(String),
    day        Date,
    pageviews  SimpleAggregateFunction(sum, UInt64),
    visitors   AggregateFunction(uniq, UInt64),
    sessions   AggregateFunction(uniq, String)
)
ENGINE = {{engine:AggregatingMergeTree}}
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, day)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

{{distributed:traffic_daily}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.traffic_daily_mv {{on_cluster}} TO {{db}}.traffic_daily AS
SELECT project_id, toDate(ts, 'UTC') AS day,
       count() AS pageviews, uniqState(visitor_id) AS visitors, uniqState(session_id) AS sessions
FROM {{db}}.events WHERE type = 'pageview' AND NOT is_bot
GROUP BY project_id, day;

-- Backfill from stored events (see 0002 for when this matters).
INSERT INTO {{all:traffic_daily}}
SELECT project_id, toDate(ts, 'UTC') AS day,
       count() AS pageviews, uniqState(visitor_id) AS visitors, uniqState(session_id) AS sessions
FROM {{all:events}} WHERE type = 'pageview' AND NOT is_bot
GROUP BY project_id, day;
