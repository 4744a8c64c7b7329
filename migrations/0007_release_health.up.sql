-- Release health and errors by release, for the events the Plausible and Sentry adapters bring in.
--
-- 1. Error groups by release, environment and protocol: errors_hourly gains the three as the last
--    columns of its key, and its view is replaced by one that fills them. Groups already in the
--    table keep their rows (with release and environment '' and protocol '', which reports read as
--    obsd's own). Ingestion is not running while migrations run, so no insert falls between the
--    DROP and the CREATE of the view. The fingerprint expression is 0002's, unchanged.
ALTER TABLE {{db}}.errors_hourly {{on_cluster}}
    ADD COLUMN IF NOT EXISTS release     LowCardinality(String),
    ADD COLUMN IF NOT EXISTS environment LowCardinality(String),
    ADD COLUMN IF NOT EXISTS protocol    LowCardinality(String),
    MODIFY ORDER BY (project_id, hour, fingerprint, release, environment, protocol);
ALTER TABLE {{all:errors_hourly}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS release     LowCardinality(String),
    ADD COLUMN IF NOT EXISTS environment LowCardinality(String),
    ADD COLUMN IF NOT EXISTS protocol    LowCardinality(String);

DROP VIEW IF EXISTS {{db}}.errors_hourly_mv {{on_cluster}} SYNC;

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
       release, environment, protocol,
       count() AS events, uniqState(session_id) AS sessions, min(ts) AS first_seen, max(ts) AS last_seen,
       argMaxState(error_message, ts) AS message, argMaxState(error_stack, ts) AS stack,
       argMaxState(error_source, ts) AS source, argMaxState(path, ts) AS path
FROM {{db}}.events WHERE type = 'error' AND NOT is_bot
GROUP BY project_id, hour, fingerprint, release, environment, protocol;

-- 2. Sessions per hour, release and environment, counted the way Sentry's Relay counts them
--    (relay-server/src/metrics_extraction/sessions). Each Sentry session update is a `session`
--    row (name = status, value = errors, session_id = the session, ts = when it started, props
--    {"init": true} on its first update); a pre-aggregated `sessions` item is one row per status
--    with the count as value and no session id. Distinct sessions are uniq states of the id, so an
--    update sent twice counts once; the *_aggregated columns add the pre-counted buckets.
--    errored counts every session that had an error or did not end ok/exited; unhandled, crashed
--    and abnormal are subsets of it.
CREATE TABLE IF NOT EXISTS {{db}}.release_sessions_hourly {{on_cluster}}
(
    project_id           LowCardinality(String),
    hour                 DateTime('UTC'),
    release              LowCardinality(String),
    environment          LowCardinality(String),
    started              AggregateFunction(uniq, String),
    errored              AggregateFunction(uniq, String),
    unhandled            AggregateFunction(uniq, String),
    crashed              AggregateFunction(uniq, String),
    abnormal             AggregateFunction(uniq, String),
    started_aggregated   SimpleAggregateFunction(sum, UInt64),
    errored_aggregated   SimpleAggregateFunction(sum, UInt64),
    unhandled_aggregated SimpleAggregateFunction(sum, UInt64),
    crashed_aggregated   SimpleAggregateFunction(sum, UInt64),
    abnormal_aggregated  SimpleAggregateFunction(sum, UInt64)
)
ENGINE = {{engine:AggregatingMergeTree}}
PARTITION BY toYYYYMM(hour)
ORDER BY (project_id, hour, release, environment)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

{{distributed:release_sessions_hourly}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.release_sessions_hourly_mv {{on_cluster}} TO {{db}}.release_sessions_hourly AS
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour, release, environment,
       uniqStateIf(session_id, session_id != '' AND JSONExtractBool(props, 'init')) AS started,
       uniqStateIf(session_id, session_id != '' AND (value > 0 OR name NOT IN ('ok', 'exited'))) AS errored,
       uniqStateIf(session_id, session_id != '' AND name = 'unhandled') AS unhandled,
       uniqStateIf(session_id, session_id != '' AND name = 'crashed') AS crashed,
       uniqStateIf(session_id, session_id != '' AND name = 'abnormal') AS abnormal,
       sumIf(toUInt64(value), session_id = '') AS started_aggregated,
       sumIf(toUInt64(value), session_id = '' AND name != 'exited') AS errored_aggregated,
       sumIf(toUInt64(value), session_id = '' AND name = 'unhandled') AS unhandled_aggregated,
       sumIf(toUInt64(value), session_id = '' AND name = 'crashed') AS crashed_aggregated,
       sumIf(toUInt64(value), session_id = '' AND name = 'abnormal') AS abnormal_aggregated
FROM {{db}}.events WHERE type = 'session' AND NOT is_bot
GROUP BY project_id, hour, release, environment;

-- Backfill (none on a store that never took Sentry sessions; see 0002 for when this matters).
INSERT INTO {{all:release_sessions_hourly}}
SELECT project_id, toStartOfHour(toDateTime(ts, 'UTC')) AS hour, release, environment,
       uniqStateIf(session_id, session_id != '' AND JSONExtractBool(props, 'init')) AS started,
       uniqStateIf(session_id, session_id != '' AND (value > 0 OR name NOT IN ('ok', 'exited'))) AS errored,
       uniqStateIf(session_id, session_id != '' AND name = 'unhandled') AS unhandled,
       uniqStateIf(session_id, session_id != '' AND name = 'crashed') AS crashed,
       uniqStateIf(session_id, session_id != '' AND name = 'abnormal') AS abnormal,
       sumIf(toUInt64(value), session_id = '') AS started_aggregated,
       sumIf(toUInt64(value), session_id = '' AND name != 'exited') AS errored_aggregated,
       sumIf(toUInt64(value), session_id = '' AND name = 'unhandled') AS unhandled_aggregated,
       sumIf(toUInt64(value), session_id = '' AND name = 'crashed') AS crashed_aggregated,
       sumIf(toUInt64(value), session_id = '' AND name = 'abnormal') AS abnormal_aggregated
FROM {{all:events}} WHERE type = 'session' AND NOT is_bot
GROUP BY project_id, hour, release, environment;
