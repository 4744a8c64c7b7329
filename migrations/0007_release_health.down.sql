-- Revert release health: the sessions rollup goes, and errors_hourly is filled by 0002's view again.
-- Its release, environment and protocol columns stay (ClickHouse cannot take a column out of a
-- sorting key); the previous release's queries group by fingerprint and never read them.
DROP VIEW IF EXISTS {{db}}.release_sessions_hourly_mv {{on_cluster}} SYNC;
DROP TABLE IF EXISTS {{db}}.release_sessions_hourly_all {{on_cluster}} SYNC;
DROP TABLE IF EXISTS {{db}}.release_sessions_hourly {{on_cluster}} SYNC;

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
       count() AS events, uniqState(session_id) AS sessions, min(ts) AS first_seen, max(ts) AS last_seen,
       argMaxState(error_message, ts) AS message, argMaxState(error_stack, ts) AS stack,
       argMaxState(error_source, ts) AS source, argMaxState(path, ts) AS path
FROM {{db}}.events WHERE type = 'error' AND NOT is_bot
GROUP BY project_id, hour, fingerprint;
