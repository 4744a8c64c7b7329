-- Rollups: hourly aggregate states kept current by materialized views, so reports read rows per
-- hour and dimension instead of raw events, and report time grows with the range, not the data.
-- Bots are left out of every rollup. Like events, each table keeps a deduplication window: a spool
-- replay re-sends a batch with its token, and the views must drop their share of it too. Each view's SELECT appears twice: once in the view (new
-- events) and once in the backfill INSERT (events stored before this migration); a test checks
-- both give the same rows. In cluster mode {{distributed:X}} adds X_all (a Distributed table over
-- every shard's X) and {{all:X}} names it; in the embedded store both stay the local table.

{{distributed:events}};

-- Traffic per hour, event type and name: overview totals, the events report, error counts.
CREATE TABLE IF NOT EXISTS {{db}}.events_hourly {{on_cluster}}
(
    project_id LowCardinality(String),
    hour       DateTime('UTC'),
    type       LowCardinality(String),
    name       LowCardinality(String),
    events     SimpleAggregateFunction(sum, UInt64),
    visitors   AggregateFunction(uniq, UInt64),
    sessions   AggregateFunction(uniq, String)
)
ENGINE = {{engine:AggregatingMergeTree}}
PARTITION BY toYYYYMM(hour)
ORDER BY (project_id, hour, type, name)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

-- Pageviews per hour and page.
CREATE TABLE IF NOT EXISTS {{db}}.pages_hourly {{on_cluster}}
(
    project_id LowCardinality(String),
    hour       DateTime('UTC'),
    hostname   LowCardinality(String),
    path       String,
    pageviews  SimpleAggregateFunction(sum, UInt64),
    visitors   AggregateFunction(uniq, UInt64),
    sessions   AggregateFunction(uniq, String)
)
ENGINE = {{engine:AggregatingMergeTree}}
PARTITION BY toYYYYMM(hour)
ORDER BY (project_id, hour, hostname, path)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

-- Pageviews per hour and referring site; `internal` marks navigation within the same host.
CREATE TABLE IF NOT EXISTS {{db}}.referrers_hourly {{on_cluster}}
(
    project_id    LowCardinality(String),
    hour          DateTime('UTC'),
    referrer_host LowCardinality(String),
    internal      UInt8,
    pageviews     SimpleAggregateFunction(sum, UInt64),
    visitors      AggregateFunction(uniq, UInt64)
)
ENGINE = {{engine:AggregatingMergeTree}}
PARTITION BY toYYYYMM(hour)
ORDER BY (project_id, hour, internal, referrer_host)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

-- Pageviews per hour, device type, browser and OS.
CREATE TABLE IF NOT EXISTS {{db}}.devices_hourly {{on_cluster}}
(
    project_id  LowCardinality(String),
    hour        DateTime('UTC'),
    device_type LowCardinality(String),
    browser     LowCardinality(String),
    os          LowCardinality(String),
    pageviews   SimpleAggregateFunction(sum, UInt64),
    visitors    AggregateFunction(uniq, UInt64)
)
ENGINE = {{engine:AggregatingMergeTree}}
PARTITION BY toYYYYMM(hour)
ORDER BY (project_id, hour, device_type, browser, os)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

-- Web Vitals per hour, page, metric and device: quantile states plus counts per rating band,
-- rated here by Google's thresholds (value <= good is good, value > poor is poor) rather than by
-- the rating the browser sent, so every SDK version is judged alike.
CREATE TABLE IF NOT EXISTS {{db}}.vitals_hourly {{on_cluster}}
(
    project_id  LowCardinality(String),
    hour        DateTime('UTC'),
    path        String,
    metric      LowCardinality(String),
    device_type LowCardinality(String),
    samples     SimpleAggregateFunction(sum, UInt64),
    good        SimpleAggregateFunction(sum, UInt64),
    poor        SimpleAggregateFunction(sum, UInt64),
    quantiles   AggregateFunction(quantiles(0.5, 0.75, 0.95), Float64)
)
ENGINE = {{engine:AggregatingMergeTree}}
PARTITION BY toYYYYMM(hour)
ORDER BY (project_id, hour, metric, path, device_type)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

-- Errors per hour and fingerprint: a hash of the normalised message (every word holding a digit,
-- such as numbers, ids and hashes, becomes <n>, and so do the privacy scrubber's [card]-style
-- masks inside such words), the top three stack frames without line/column, query strings or
-- build hashes, and the source file, so one bug stays one group across releases and users.
CREATE TABLE IF NOT EXISTS {{db}}.errors_hourly {{on_cluster}}
(
    project_id  LowCardinality(String),
    hour        DateTime('UTC'),
    fingerprint UInt64,
    events      SimpleAggregateFunction(sum, UInt64),
    sessions    AggregateFunction(uniq, String),
    first_seen  SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen   SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    message     AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    stack       AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    source      AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    path        AggregateFunction(argMax, String, DateTime64(3, 'UTC'))
)
ENGINE = {{engine:AggregatingMergeTree}}
PARTITION BY toYYYYMM(hour)
ORDER BY (project_id, hour, fingerprint)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

{{distributed:events_hourly}};
{{distributed:pages_hourly}};
{{distributed:referrers_hourly}};
{{distributed:devices_hourly}};
{{distributed:vitals_hourly}};
{{distributed:errors_hourly}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.events_hourly_mv {{on_cluster}} TO {{db}}.events_hourly AS
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour, type, name,
       count() AS events, uniqState(visitor_id) AS visitors, uniqState(session_id) AS sessions
FROM {{db}}.events WHERE NOT is_bot
GROUP BY project_id, hour, type, name;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.pages_hourly_mv {{on_cluster}} TO {{db}}.pages_hourly AS
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour, hostname, path,
       count() AS pageviews, uniqState(visitor_id) AS visitors, uniqState(session_id) AS sessions
FROM {{db}}.events WHERE type = 'pageview' AND NOT is_bot
GROUP BY project_id, hour, hostname, path;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.referrers_hourly_mv {{on_cluster}} TO {{db}}.referrers_hourly AS
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour, referrer_host,
       toUInt8(referrer_host != '' AND referrer_host = hostname) AS internal,
       count() AS pageviews, uniqState(visitor_id) AS visitors
FROM {{db}}.events WHERE type = 'pageview' AND NOT is_bot
GROUP BY project_id, hour, referrer_host, internal;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.devices_hourly_mv {{on_cluster}} TO {{db}}.devices_hourly AS
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour, device_type, browser, os,
       count() AS pageviews, uniqState(visitor_id) AS visitors
FROM {{db}}.events WHERE type = 'pageview' AND NOT is_bot
GROUP BY project_id, hour, device_type, browser, os;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.vitals_hourly_mv {{on_cluster}} TO {{db}}.vitals_hourly AS
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour, path, name AS metric, device_type,
       count() AS samples,
       countIf(value <= multiIf(name = 'LCP', 2500, name = 'INP', 200, name = 'CLS', 0.1, name = 'FCP', 1800,
                                name = 'TTFB', 800, name = 'FID', 100, -inf)) AS good,
       countIf(value > multiIf(name = 'LCP', 4000, name = 'INP', 500, name = 'CLS', 0.25, name = 'FCP', 3000,
                               name = 'TTFB', 1800, name = 'FID', 300, inf)) AS poor,
       quantilesState(0.5, 0.75, 0.95)(value) AS quantiles
FROM {{db}}.events WHERE type = 'web_vital' AND NOT is_bot
GROUP BY project_id, hour, path, metric, device_type;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.errors_hourly_mv {{on_cluster}} TO {{db}}.errors_hourly AS
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour,
       cityHash64(
           trim(replaceRegexpAll(replaceRegexpAll(substring(error_message, 1, 500),
               '\\[(email|card|jwt|token)\\]', '0'),
               '[0-9A-Za-z_-]*[0-9][0-9A-Za-z_-]*', '<n>')),
           arrayStringConcat(arraySlice(arrayFilter(f -> f != '', arrayMap(l -> if(match(l, '^\\s*at\\s|@'),
               replaceRegexpAll(replaceRegexpAll(replaceRegexpAll(trim(l), '(:\\d+)+\\)?$', ''), '\\?[^\\s)]*', ''),
                                '[.-][0-9a-f]{8,}\\b', ''), ''),
               splitByChar('\n', error_stack))), 1, 3), '\n'),
           replaceRegexpAll(replaceRegexpAll(error_source, '\\?.*$', ''), '[.-][0-9a-f]{8,}\\b', '')
       ) AS fingerprint,
       count() AS events, uniqState(session_id) AS sessions, min(ts) AS first_seen, max(ts) AS last_seen,
       argMaxState(error_message, ts) AS message, argMaxState(error_stack, ts) AS stack,
       argMaxState(error_source, ts) AS source, argMaxState(path, ts) AS path
FROM {{db}}.events WHERE type = 'error' AND NOT is_bot
GROUP BY project_id, hour, fingerprint;

-- Backfill: events stored before this migration (none on a fresh store). Ingestion is not
-- running while `obsd serve` applies migrations; in cluster mode stop the writers first.
INSERT INTO {{all:events_hourly}}
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour, type, name,
       count() AS events, uniqState(visitor_id) AS visitors, uniqState(session_id) AS sessions
FROM {{all:events}} WHERE NOT is_bot
GROUP BY project_id, hour, type, name;

INSERT INTO {{all:pages_hourly}}
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour, hostname, path,
       count() AS pageviews, uniqState(visitor_id) AS visitors, uniqState(session_id) AS sessions
FROM {{all:events}} WHERE type = 'pageview' AND NOT is_bot
GROUP BY project_id, hour, hostname, path;

INSERT INTO {{all:referrers_hourly}}
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour, referrer_host,
       toUInt8(referrer_host != '' AND referrer_host = hostname) AS internal,
       count() AS pageviews, uniqState(visitor_id) AS visitors
FROM {{all:events}} WHERE type = 'pageview' AND NOT is_bot
GROUP BY project_id, hour, referrer_host, internal;

INSERT INTO {{all:devices_hourly}}
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour, device_type, browser, os,
       count() AS pageviews, uniqState(visitor_id) AS visitors
FROM {{all:events}} WHERE type = 'pageview' AND NOT is_bot
GROUP BY project_id, hour, device_type, browser, os;

INSERT INTO {{all:vitals_hourly}}
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour, path, name AS metric, device_type,
       count() AS samples,
       countIf(value <= multiIf(name = 'LCP', 2500, name = 'INP', 200, name = 'CLS', 0.1, name = 'FCP', 1800,
                                name = 'TTFB', 800, name = 'FID', 100, -inf)) AS good,
       countIf(value > multiIf(name = 'LCP', 4000, name = 'INP', 500, name = 'CLS', 0.25, name = 'FCP', 3000,
                               name = 'TTFB', 1800, name = 'FID', 300, inf)) AS poor,
       quantilesState(0.5, 0.75, 0.95)(value) AS quantiles
FROM {{all:events}} WHERE type = 'web_vital' AND NOT is_bot
GROUP BY project_id, hour, path, metric, device_type;

INSERT INTO {{all:errors_hourly}}
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour,
       cityHash64(
           trim(replaceRegexpAll(replaceRegexpAll(substring(error_message, 1, 500),
               '\\[(email|card|jwt|token)\\]', '0'),
               '[0-9A-Za-z_-]*[0-9][0-9A-Za-z_-]*', '<n>')),
           arrayStringConcat(arraySlice(arrayFilter(f -> f != '', arrayMap(l -> if(match(l, '^\\s*at\\s|@'),
               replaceRegexpAll(replaceRegexpAll(replaceRegexpAll(trim(l), '(:\\d+)+\\)?$', ''), '\\?[^\\s)]*', ''),
                                '[.-][0-9a-f]{8,}\\b', ''), ''),
               splitByChar('\n', error_stack))), 1, 3), '\n'),
           replaceRegexpAll(replaceRegexpAll(error_source, '\\?.*$', ''), '[.-][0-9a-f]{8,}\\b', '')
       ) AS fingerprint,
       count() AS events, uniqState(session_id) AS sessions, min(ts) AS first_seen, max(ts) AS last_seen,
       argMaxState(error_message, ts) AS message, argMaxState(error_stack, ts) AS stack,
       argMaxState(error_source, ts) AS source, argMaxState(path, ts) AS path
FROM {{all:events}} WHERE type = 'error' AND NOT is_bot
GROUP BY project_id, hour, fingerprint;
