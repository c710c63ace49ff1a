-- TimescaleDB: Firewatch's own maintenance (firewatch/storage/maintenance.py) makes chunks
-- ahead of time, compresses chunks past the compression age and drops chunks past retention,
-- under an advisory lock. The extension's policy jobs are removed: on PostgreSQL 15.20 with
-- TimescaleDB 2.28.3 every background job fails ("cannot drop portal ... while it is being
-- set up"), and where they do run they would race ours over the same chunks. Compression
-- settings (segment by device, order by ts, seq) stay as 0003 set them.
SELECT remove_compression_policy('telemetry', if_exists => true);
SELECT remove_compression_policy('events', if_exists => true);
SELECT remove_compression_policy('device_status', if_exists => true);
SELECT remove_retention_policy('telemetry', if_exists => true);
SELECT remove_retention_policy('events', if_exists => true);
SELECT remove_retention_policy('device_status', if_exists => true);

-- Make the chunks of [from_ts, to_ts) that do not exist yet; returns how many were made.
-- An insert into a day without a chunk creates it inside the writer's transaction, and any
-- other writer into that day waits until that transaction ends (the feed's readers too):
-- made ahead, in maintenance's own short transaction, no writer ever creates one.
-- Chunk ranges are aligned to multiples of the dimension's interval from the Unix epoch,
-- as the extension aligns them itself; create_chunk returns an existing chunk unchanged.
CREATE FUNCTION firewatch_premake_chunks(parent regclass, from_ts timestamptz, to_ts timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    step bigint := (
        SELECT d.interval_length FROM _timescaledb_catalog.dimension d
        JOIN _timescaledb_catalog.hypertable h ON h.id = d.hypertable_id
        WHERE format('%I.%I', h.schema_name, h.table_name)::regclass = parent
          AND d.interval_length IS NOT NULL);
    lo bigint;
    hi bigint := _timescaledb_functions.to_unix_microseconds(to_ts);
    made integer := 0;
BEGIN
    IF step IS NULL THEN
        RAISE EXCEPTION '% is not a hypertable with a time dimension', parent;
    END IF;
    lo := _timescaledb_functions.to_unix_microseconds(from_ts);
    lo := lo - ((lo % step) + step) % step;  -- floor to the interval, negatives included
    WHILE lo < hi LOOP
        IF (SELECT c.created FROM _timescaledb_functions.create_chunk(
                parent, jsonb_build_object('ts', jsonb_build_array(lo, lo + step))) c) THEN
            made := made + 1;
        END IF;
        lo := lo + step;
    END LOOP;
    RETURN made;
END $$;
