-- Every event type in one wide table: ClickHouse stores empty columns almost for free,
-- and one table keeps reports to single scans.
CREATE TABLE IF NOT EXISTS {{db}}.events {{on_cluster}}
(
    project_id      LowCardinality(String),
    event_id        UUID,
    type            LowCardinality(String),
    name            LowCardinality(String),
    ts              DateTime64(3, 'UTC'),
    received_at     DateTime64(3, 'UTC'),
    session_id      String,
    visitor_id      UInt64,
    url             String CODEC(ZSTD(3)),
    hostname        LowCardinality(String),
    path            String CODEC(ZSTD(3)),
    referrer        String CODEC(ZSTD(3)),
    referrer_host   LowCardinality(String),
    title           String CODEC(ZSTD(3)),
    utm_source      LowCardinality(String),
    utm_medium      LowCardinality(String),
    utm_campaign    LowCardinality(String),
    browser         LowCardinality(String),
    browser_version LowCardinality(String),
    os              LowCardinality(String),
    os_version      LowCardinality(String),
    device_type     LowCardinality(String),
    is_bot          Bool,
    country         LowCardinality(String),
    language        LowCardinality(String),
    timezone        LowCardinality(String),
    screen_width    UInt16,
    screen_height   UInt16,
    viewport_width  UInt16,
    viewport_height UInt16,
    value           Float64,
    rating          LowCardinality(String),
    selector        String CODEC(ZSTD(3)),
    tag             LowCardinality(String),
    href            String CODEC(ZSTD(3)),
    error_message   String CODEC(ZSTD(3)),
    error_stack     String CODEC(ZSTD(3)),
    error_source    String CODEC(ZSTD(3)),
    error_line      UInt32,
    error_col       UInt32,
    props           String CODEC(ZSTD(3)),
    environment     LowCardinality(String),
    sdk             LowCardinality(String)
)
ENGINE = {{engine:MergeTree}}
PARTITION BY toYYYYMM(ts)
ORDER BY (project_id, toDate(ts), type, ts)
-- The spool gives every insert a deduplication token; this window makes ClickHouse honour it.
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {{db}}.events_rejected {{on_cluster}}
(
    received_at DateTime64(3, 'UTC'),
    project_id  LowCardinality(String),
    stage       LowCardinality(String),
    reason      String,
    payload     String CODEC(ZSTD(3))
)
ENGINE = {{engine:MergeTree}}
PARTITION BY toYYYYMM(received_at)
ORDER BY (project_id, received_at);
