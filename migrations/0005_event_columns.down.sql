ALTER TABLE {{all:events}} {{on_cluster}}
    DROP COLUMN IF EXISTS release, DROP COLUMN IF EXISTS protocol, DROP COLUMN IF EXISTS utm_content,
    DROP COLUMN IF EXISTS utm_term, DROP COLUMN IF EXISTS region, DROP COLUMN IF EXISTS city;
ALTER TABLE {{db}}.events {{on_cluster}}
    DROP COLUMN IF EXISTS release, DROP COLUMN IF EXISTS protocol, DROP COLUMN IF EXISTS utm_content,
    DROP COLUMN IF EXISTS utm_term, DROP COLUMN IF EXISTS region, DROP COLUMN IF EXISTS city;
