-- Alerting (firewatch/core/alerts.py, firewatch/alerting/): alerts with their evidence and
-- audit trail, the live stream's change log, the notification outbox and its delivery log,
-- and the last time each device was heard from (offline and patrol checks).

-- One row per problem. The partial unique index is what makes "exactly one active alert
-- per (device, type)" hold with any number of writers racing: a second insert conflicts
-- and becomes an occurrence of the first.
CREATE TABLE alerts (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type              text NOT NULL,
    category          text NOT NULL
        CHECK (category IN ('fire', 'fault', 'anomaly', 'offline', 'unit')),
    severity          text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    unit_id           text NOT NULL,
    device_id         text NOT NULL,
    state             text NOT NULL CHECK (state IN ('open', 'acknowledged', 'confirmed_fire',
                          'false_alarm', 'confirmed_fault', 'resolved', 'closed', 'merged')),
    first_seen        timestamptz NOT NULL,
    last_seen         timestamptz NOT NULL,
    occurrences       integer NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
    explanation       text NOT NULL,
    -- does the condition behind it still hold (some evidence episode still open)?
    condition_active  boolean NOT NULL DEFAULT true,
    escalation_level  integer NOT NULL DEFAULT 0,
    escalated_at      timestamptz,
    acknowledged_at   timestamptz,
    resolved_at       timestamptz,
    closed_at         timestamptz,
    parent_id         bigint REFERENCES alerts (id),  -- the correlated alert it was merged into
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX alerts_one_active_idx ON alerts (device_id, type)
    WHERE state IN ('open', 'acknowledged', 'confirmed_fire', 'confirmed_fault');
CREATE INDEX alerts_list_idx ON alerts (state, first_seen DESC);
CREATE INDEX alerts_unit_idx ON alerts (unit_id, first_seen DESC);
-- escalation looks only at alerts nobody has acknowledged yet
CREATE INDEX alerts_unacknowledged_idx ON alerts (first_seen) WHERE state = 'open';

-- The anomaly episodes behind an alert (each episode is evidence of one alert).
CREATE TABLE alert_evidence (
    alert_id    bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    anomaly_id  bigint NOT NULL REFERENCES anomalies (id) ON DELETE CASCADE,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (alert_id, anomaly_id)
);
CREATE UNIQUE INDEX alert_evidence_anomaly_idx ON alert_evidence (anomaly_id);

-- Every transition: who, when, why.
CREATE TABLE alert_transitions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    action      text NOT NULL,
    from_state  text,
    to_state    text NOT NULL,
    actor       text NOT NULL,
    note        text NOT NULL DEFAULT '',
    at          timestamptz NOT NULL
);
CREATE INDEX alert_transitions_alert_idx ON alert_transitions (alert_id, id);

-- The live stream: one row per alert change, written in the change's own transaction.
-- Readers follow it like the ingest feed: rows below the snapshot's xmin, in (xid, id)
-- order, so a client resuming from its last event id misses nothing.
CREATE TABLE alert_events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid       bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    alert_id  bigint NOT NULL,
    event     text NOT NULL,
    payload   jsonb NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_events_feed_idx ON alert_events (xid, id);
CREATE INDEX alert_events_at_idx ON alert_events (at);

-- Transactional outbox: notifications are rows written with the alert change that causes
-- them; a dispatcher delivers them (FOR UPDATE SKIP LOCKED, a lease, retries with backoff).
CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id      bigint REFERENCES alerts (id) ON DELETE SET NULL,
    channel       text NOT NULL,   -- command_center, notify, supervisor
    recipient     jsonb NOT NULL DEFAULT '{}'::jsonb,
    payload       jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts      integer NOT NULL DEFAULT 0,
    available_at  timestamptz NOT NULL DEFAULT now(),
    lease_until   timestamptz,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz
);
CREATE INDEX outbox_due_idx ON outbox (available_at, id) WHERE status = 'pending';
CREATE INDEX outbox_alert_idx ON outbox (alert_id);

CREATE TABLE outbox_deliveries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id    bigint NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    url          text NOT NULL,
    status_code  integer,
    error        text,
    duration_ms  real NOT NULL
);
CREATE INDEX outbox_deliveries_outbox_idx ON outbox_deliveries (outbox_id, id);

-- When each device was last heard from (any accepted message except a last will), kept
-- by ingest once per batch; offline and patrol checks are one query over it.
CREATE TABLE device_last_seen (
    device_id  text PRIMARY KEY,
    last_rx    timestamptz NOT NULL
);

-- Where the alerting service stands in the anomaly change feed (saved with its changes).
CREATE TABLE alerting_cursor (
    name     text PRIMARY KEY,
    cursor   jsonb NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now()
);
