-- The three append-only streams. One row per accepted message: (device_id, ts, seq) is the
-- message's identity, so a redelivery conflicts and adds nothing. ts (device time) is the
-- time-partitioning column and must be part of every unique key on a partitioned table.
-- @PARTITION_BY@ becomes "PARTITION BY RANGE (ts)" on plain PostgreSQL and nothing on
-- TimescaleDB (the next migration turns the tables into hypertables there).

CREATE TABLE telemetry (
    device_id       text        NOT NULL,
    seq             bigint      NOT NULL,
    ts              timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    -- water
    pressure_kpa    real,
    level_m         real,
    pump_running    boolean,
    jockey_running  boolean,
    room_temp_c     real,
    -- e-bike charging shed; port arrays are parallel and ordered by port number
    ambient_c       real,
    smoke           boolean,
    port_no         smallint[],
    port_temp_c     real[],
    port_current_a  real[],
    port_charging   boolean[],
    PRIMARY KEY (device_id, ts, seq)
) @PARTITION_BY@;

CREATE TABLE events (
    device_id       text        NOT NULL,
    seq             bigint      NOT NULL,
    ts              timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    event_type      text        NOT NULL,
    system_type     smallint    NOT NULL,
    system_addr     smallint    NOT NULL,
    component_type  smallint,
    component_addr  bigint,
    status_word     integer     NOT NULL,
    flags           text[]      NOT NULL,
    operator        smallint,
    description     text,
    PRIMARY KEY (device_id, ts, seq)
) @PARTITION_BY@;

CREATE TABLE device_status (
    device_id       text        NOT NULL,
    seq             bigint      NOT NULL,
    ts              timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    state           text        NOT NULL CHECK (state IN ('online', 'offline')),
    firmware        text,
    battery_pct     real,
    rssi_dbm        real,
    reason          text,
    PRIMARY KEY (device_id, ts, seq)
) @PARTITION_BY@;

-- Latest status per device (maintained by ingest from device_status).
CREATE TABLE device_state (
    device_id       text PRIMARY KEY,
    state           text        NOT NULL,
    ts              timestamptz NOT NULL,
    seq             bigint      NOT NULL,
    firmware        text,
    battery_pct     real,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Messages that could not be stored as data: raw bytes, topic, reason, time.
-- Identical (topic, payload) pairs are kept once: a redelivery must not add a second row.
CREATE TABLE dead_letters (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     timestamptz NOT NULL,
    topic           text        NOT NULL,
    payload         bytea       NOT NULL,
    reason          text        NOT NULL,
    detail          text        NOT NULL,
    payload_sha256  bytea       NOT NULL,
    UNIQUE (topic, payload_sha256)
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at);
CREATE INDEX dead_letters_reason_idx ON dead_letters (reason, received_at);
