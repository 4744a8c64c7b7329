-- Columns the compatible protocols and the visit reports need: the release an event came from, the
-- protocol it arrived by (obsd's SDK, Plausible's Events API, Sentry), the last two UTM parameters,
-- and the region and city a GeoIP database may give. Rows from before this migration read as sent
-- by obsd's own protocol with the new columns empty.
-- In cluster mode the second statement of each pair alters the Distributed events_all; on one
-- server both name the same table and the second is a no-op.
ALTER TABLE {{db}}.events {{on_cluster}}
    ADD COLUMN IF NOT EXISTS release     LowCardinality(String) AFTER environment,
    ADD COLUMN IF NOT EXISTS protocol    LowCardinality(String) DEFAULT 'obsd' AFTER sdk,
    ADD COLUMN IF NOT EXISTS utm_content LowCardinality(String) AFTER utm_campaign,
    ADD COLUMN IF NOT EXISTS utm_term    LowCardinality(String) AFTER utm_content,
    ADD COLUMN IF NOT EXISTS region      LowCardinality(String) AFTER country,
    ADD COLUMN IF NOT EXISTS city        LowCardinality(String) AFTER region;
ALTER TABLE {{all:events}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS release     LowCardinality(String) AFTER environment,
    ADD COLUMN IF NOT EXISTS protocol    LowCardinality(String) DEFAULT 'obsd' AFTER sdk,
    ADD COLUMN IF NOT EXISTS utm_content LowCardinality(String) AFTER utm_campaign,
    ADD COLUMN IF NOT EXISTS utm_term    LowCardinality(String) AFTER utm_content,
    ADD COLUMN IF NOT EXISTS region      LowCardinality(String) AFTER country,
    ADD COLUMN IF NOT EXISTS city        LowCardinality(String) AFTER region;
