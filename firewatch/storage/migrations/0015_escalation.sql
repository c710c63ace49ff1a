-- Escalation that ends at a person (issue 12; docs/escalation.md). The on-duty roster and
-- people's contact fields, the levels each alert's escalation reached, person notifications
-- that the per-unit rate limit held back, the SMS/voice provider's message ids and its
-- delivery receipts. SQL owners: storage/roster.py (shifts, people's contacts),
-- storage/escalations.py (alert_escalations), storage/outbox.py (outbox, deliveries),
-- storage/receipts.py (notification_receipts).

-- How to reach a person: both optional. The roster's levels use e-mail or the phone.
ALTER TABLE people
    ADD COLUMN email text CHECK (email IS NULL OR (email ~ '^[^@\s]+@[^@\s]+$'
                                                    AND length(email) <= 254)),
    ADD COLUMN phone text CHECK (phone IS NULL OR phone ~ '^\+?[0-9]{3,20}$');

-- The roster: who is on duty when. Operators and shift leaders whose shift covers a moment
-- are the audiences "on-duty operators" and "on-duty shift leaders" of the escalation.
CREATE TABLE shifts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person_id   bigint NOT NULL REFERENCES people (id),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX shifts_time_idx ON shifts (starts_at, ends_at);
CREATE INDEX shifts_person_idx ON shifts (person_id, starts_at);

-- One row per escalation level an alert reached: whom it notified, whom the rate limit
-- held back, or why nobody could be notified (then the next level followed at once).
-- `at` is the alerting worker's clock, as alerts.escalated_at; the per-unit rate limit
-- sums `notified` over a window of it.
CREATE TABLE alert_escalations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    unit_id     text NOT NULL,
    level       integer NOT NULL CHECK (level >= 1),
    name        text NOT NULL,
    audience    text NOT NULL CHECK (audience IN ('on_duty_operators', 'on_duty_shift_leaders',
                                                  'unit_contact', 'supervisor')),
    channel     text NOT NULL CHECK (channel IN ('email', 'sms', 'voice', 'webhook')),
    outcome     text NOT NULL CHECK (outcome IN ('notified', 'rate_limited', 'skipped')),
    notified    integer NOT NULL DEFAULT 0 CHECK (notified >= 0),
    suppressed  integer NOT NULL DEFAULT 0 CHECK (suppressed >= 0),
    note        text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    at          timestamptz NOT NULL,
    UNIQUE (alert_id, level)
);
CREATE INDEX alert_escalations_unit_idx ON alert_escalations (unit_id, at);

-- A person notification over the rate limit is kept as an outbox row that is never sent
-- (status 'suppressed', last_error says why): nothing disappears silently.
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('pending', 'delivered', 'dead', 'suppressed'));
CREATE INDEX outbox_suppressed_idx ON outbox (channel) WHERE status = 'suppressed';

-- The message id the SMS/voice provider (or the SMTP server) gave an attempt: receipts
-- name it.
ALTER TABLE outbox_deliveries ADD COLUMN provider_message_id text;
CREATE INDEX outbox_deliveries_message_idx ON outbox_deliveries (provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- Delivery receipts the provider posts back (POST /notifications/receipts, signed with
-- the provider's shared secret). A receipt sent again changes nothing.
CREATE TABLE notification_receipts (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id            bigint NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    provider_message_id  text NOT NULL,
    status               text NOT NULL CHECK (status IN ('delivered', 'failed')),
    at                   timestamptz NOT NULL,
    detail               text,
    received_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider_message_id, status, at)
);
CREATE INDEX notification_receipts_outbox_idx ON notification_receipts (outbox_id, id);
