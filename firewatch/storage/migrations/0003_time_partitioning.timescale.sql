-- TimescaleDB: hypertables with daily chunks, compression after a week (segment by device so
-- one device's series decompresses alone) and retention policies. Record retention is at
-- least one year (GB 50440); `firewatch db maintain` re-applies the configured intervals.
SELECT create_hypertable('telemetry', by_range('ts', INTERVAL '1 day'));
SELECT create_hypertable('events', by_range('ts', INTERVAL '1 day'));
SELECT create_hypertable('device_status', by_range('ts', INTERVAL '7 days'));

ALTER TABLE telemetry SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id', timescaledb.compress_orderby = 'ts, seq');
ALTER TABLE events SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id', timescaledb.compress_orderby = 'ts, seq');
ALTER TABLE device_status SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id', timescaledb.compress_orderby = 'ts, seq');

SELECT add_compression_policy('telemetry', INTERVAL '7 days');
SELECT add_compression_policy('events', INTERVAL '30 days');
SELECT add_compression_policy('device_status', INTERVAL '30 days');

SELECT add_retention_policy('telemetry', INTERVAL '400 days');
SELECT add_retention_policy('events', INTERVAL '400 days');
SELECT add_retention_policy('device_status', INTERVAL '400 days');
