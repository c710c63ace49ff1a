-- Plain PostgreSQL: daily native range partitions, made ahead of time and dropped after the
-- retention period by firewatch_maintain_partitions() (run by `firewatch db maintain`, at
-- ingest start-up and hourly by the ingest service). A DEFAULT partition catches rows
-- outside every daily partition so that an insert never fails; maintenance moves them
-- into the right partition once it exists.

CREATE TABLE telemetry_default PARTITION OF telemetry DEFAULT;
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE TABLE device_status_default PARTITION OF device_status DEFAULT;

CREATE FUNCTION firewatch_ensure_partition(parent regclass, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    base text := (SELECT relname FROM pg_class WHERE oid = parent);
    part text := base || '_p' || to_char(day, 'YYYYMMDD');
    lo timestamptz := day::timestamptz;
    hi timestamptz := (day + 1)::timestamptz;
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Build the partition standalone, move any rows the DEFAULT partition holds for this
    -- range into it, then attach: attaching over rows in DEFAULT would otherwise fail.
    EXECUTE format('CREATE TABLE %I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   part, parent);
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE ts >= %L AND ts < %L RETURNING *) '
                   'INSERT INTO %I SELECT * FROM moved', base || '_default', lo, hi, part);
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   parent, part, lo, hi);
    RETURN true;
END $$;

CREATE FUNCTION firewatch_maintain_partitions(
    parent regclass, past_days integer, ahead_days integer, retention_days integer
) RETURNS TABLE (created integer, dropped integer)
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    child record;
    made integer := 0;
    gone integer := 0;
    cutoff date := current_date - retention_days;
BEGIN
    FOR d IN SELECT generate_series(current_date - past_days, current_date + ahead_days,
                                    interval '1 day')::date LOOP
        IF firewatch_ensure_partition(parent, d) THEN
            made := made + 1;
        END IF;
    END LOOP;
    FOR child IN
        SELECT c.oid::regclass AS rel, c.relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = parent AND c.relname ~ '_p[0-9]{8}$'
    LOOP
        IF to_date(right(child.relname, 8), 'YYYYMMDD') < cutoff THEN
            EXECUTE format('DROP TABLE %s', child.rel);
            gone := gone + 1;
        END IF;
    END LOOP;
    RETURN QUERY SELECT made, gone;
END $$;
