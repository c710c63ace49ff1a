-- The tiered fire-analysis database (firewatch/analysis/, docs/analysis.md): unit
-- coordinates, the rollup table for every tier (device, unit, street, district, city) and
-- grain (hour, day), the refresh cursor, and the indexes the refresh's reads need.
-- Plain tables on both flavours (no hypertable, no continuous aggregate): the same SQL
-- runs on PostgreSQL and TimescaleDB.

-- 1. Units get a location (WGS-84 decimal degrees, both or neither). The responsible
-- person stays where alerting's notifications read it: units.contacts -> 'responsible'
-- ({"name": ..., "phone": ...}); the CSV import writes that key (docs/analysis.md).
ALTER TABLE units ADD COLUMN latitude double precision;
ALTER TABLE units ADD COLUMN longitude double precision;
ALTER TABLE units ADD CONSTRAINT units_location_check CHECK (
    (latitude IS NULL) = (longitude IS NULL)
    AND (latitude IS NULL OR (latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180))
);
-- GET /units?category=: the supervision class within a region's units.
CREATE INDEX units_supervision_idx ON units (supervision, id);

-- 2. One row per subject (a device, a unit or a region) and bucket. The measure columns
-- are the fields of firewatch.core.rollups.Rollup, by name. parent_id is the tier above as
-- it was when the row was computed (a device's unit, a unit's street, a region's parent):
-- a tier's row is always the sum of the rows whose parent_id names it.
CREATE TABLE rollups (
    tier                    text NOT NULL
        CHECK (tier IN ('device', 'unit', 'street', 'district', 'city')),
    subject_id              text NOT NULL,
    grain                   text NOT NULL CHECK (grain IN ('hour', 'day')),
    bucket                  timestamptz NOT NULL,
    parent_id               text,
    fire_alarms             integer NOT NULL DEFAULT 0,
    confirmed_fires         integer NOT NULL DEFAULT 0,
    false_alarms            integer NOT NULL DEFAULT 0,
    faults                  integer NOT NULL DEFAULT 0,
    faults_by_type          jsonb NOT NULL DEFAULT '{}'::jsonb,
    fault_open_min          double precision NOT NULL DEFAULT 0,
    isolations              integer NOT NULL DEFAULT 0,
    isolated_min            double precision NOT NULL DEFAULT 0,
    offline_min             double precision NOT NULL DEFAULT 0,
    pressure_min_kpa        double precision,
    pressure_mean_kpa       double precision,
    pressure_samples        integer NOT NULL DEFAULT 0,
    pressure_low_min        double precision NOT NULL DEFAULT 0,
    tank_low_min            double precision NOT NULL DEFAULT 0,
    shed_peak_temp_c        double precision,
    shed_overtemp_events    integer NOT NULL DEFAULT 0,
    shed_overcurrent_events integer NOT NULL DEFAULT 0,
    anomalies_critical      integer NOT NULL DEFAULT 0,
    anomalies_high          integer NOT NULL DEFAULT 0,
    anomalies_medium        integer NOT NULL DEFAULT 0,
    anomalies_low           integer NOT NULL DEFAULT 0,
    acks                    integer NOT NULL DEFAULT 0,
    ack_s_sum               double precision NOT NULL DEFAULT 0,
    confirms                integer NOT NULL DEFAULT 0,
    confirm_s_sum           double precision NOT NULL DEFAULT 0,
    -- how often the row was (re)computed, and when last: what a refresh touched
    revision                integer NOT NULL DEFAULT 1,
    computed_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tier, subject_id, grain, bucket)
);
-- A parent's buckets are the sums of its children's: read by (tier, grain, parent, bucket).
CREATE INDEX rollups_parent_idx ON rollups (grain, parent_id, bucket);
-- Hourly rows expire (FIREWATCH_ANALYSIS_HOUR_RETENTION_DAYS).
CREATE INDEX rollups_grain_bucket_idx ON rollups (grain, bucket);

-- Sum of JSON objects of counts, key by key: faults_by_type of a day or a parent.
CREATE FUNCTION firewatch_jsonb_add(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(k, n), '{}'::jsonb)
    FROM (SELECT key AS k, sum((value #>> '{}')::numeric)::bigint AS n
          FROM (SELECT * FROM jsonb_each(coalesce(a, '{}'::jsonb))
                UNION ALL
                SELECT * FROM jsonb_each(coalesce(b, '{}'::jsonb))) AS e
          WHERE jsonb_typeof(value) = 'number'
          GROUP BY key) AS s
$$;
CREATE AGGREGATE firewatch_jsonb_sum(jsonb) (
    SFUNC = firewatch_jsonb_add, STYPE = jsonb, INITCOND = '{}'
);

-- 3. Where the refresh stands: every stream row, anomaly change and alert event with a
-- transaction id below cursor->'xid' has been marked; saved with the marks it made.
CREATE TABLE analysis_cursor (
    name      text PRIMARY KEY,
    cursor    jsonb NOT NULL,
    saved_at  timestamptz NOT NULL DEFAULT now()
);

-- The (device, hour) buckets marked dirty and not yet recomputed. An hour still filling
-- waits (it is recomputed when it has ended, or every FIREWATCH_ANALYSIS_LIVE_EVERY_S);
-- a recomputed bucket's row is deleted with the rollup rows it produced.
CREATE TABLE rollup_pending (
    device_id  text NOT NULL,
    bucket     timestamptz NOT NULL,
    marked_at  timestamptz NOT NULL,   -- the refresh's clock when first marked
    PRIMARY KEY (device_id, bucket)
);
CREATE INDEX rollup_pending_bucket_idx ON rollup_pending (bucket);

-- 4. What the refresh reads per device and bucket (the other reads use existing indexes):
-- a device's anomaly episodes by start, its alerts by acknowledgement, and the operators'
-- decisions by time.
CREATE INDEX anomalies_device_started_idx ON anomalies (device_id, started_at);
CREATE INDEX alerts_device_ack_idx ON alerts (device_id, acknowledged_at)
    WHERE acknowledged_at IS NOT NULL;
CREATE INDEX alert_transitions_decision_idx ON alert_transitions (at)
    WHERE action IN ('confirm_fire', 'mark_false_alarm', 'confirm_fault');
