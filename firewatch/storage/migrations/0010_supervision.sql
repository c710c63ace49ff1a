-- Focused supervision (firewatch/supervision/, docs/supervision.md): inspectors and their
-- declared ties, the focus list, the inspection draws (commit, reveal, publish), inspections,
-- hazards as work orders, and unit credit. Risk scoring reads hazards, inspections and
-- unit_credit (storage/hazards.py: hazard_summary).

-- Inspectors. `code` is what the public sees (draws, inspection results); name and phone
-- are never served by the public endpoints.
CREATE TABLE inspectors (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code          text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$'),
    name          text NOT NULL,
    phone         text NOT NULL DEFAULT '',
    organisation  text NOT NULL DEFAULT '',
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Declared ties: the draw never assigns an inspector to a unit they are tied to. The fifth
-- kind, inspected_last_period, is derived from the previous draw and never stored here.
CREATE TABLE inspector_ties (
    inspector_id  bigint NOT NULL REFERENCES inspectors (id),
    unit_id       text NOT NULL REFERENCES units (id),
    kind          text NOT NULL CHECK (kind IN ('former_employer', 'relative',
                      'maintenance_company', 'testing_company')),
    note          text NOT NULL DEFAULT '',
    declared_by   text NOT NULL,
    declared_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (inspector_id, unit_id, kind)
);
CREATE INDEX inspector_ties_unit_idx ON inspector_ties (unit_id);

-- The focus list: its red units are drawn deterministically (supervision_focus_every).
CREATE TABLE supervision_focus (
    unit_id   text PRIMARY KEY REFERENCES units (id),
    reason    text NOT NULL,
    added_by  text NOT NULL,
    added_at  timestamptz NOT NULL DEFAULT now()
);

-- Draws. `inputs` and `result` are canonical JSON text: exactly the bytes that are hashed.
-- The database itself checks the hash of the inputs and the seed against its commitment.
CREATE TABLE draws (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    period           text NOT NULL,
    status           text NOT NULL
        CHECK (status IN ('committed', 'revealed', 'published', 'cancelled')),
    algorithm        text NOT NULL,
    inputs           text NOT NULL,
    inputs_hash      text NOT NULL
        CHECK (inputs_hash = encode(sha256(convert_to(inputs, 'UTF8')), 'hex')),
    seed_commitment  text NOT NULL CHECK (seed_commitment ~ '^[0-9a-f]{64}$'),
    committed_at     timestamptz NOT NULL,
    committed_by     text NOT NULL,
    seed             text CHECK (seed IS NULL OR CASE WHEN seed ~ '^[0-9a-f]{64}$'
                         THEN encode(sha256(decode(seed, 'hex')), 'hex') = seed_commitment
                         ELSE false END),
    result           text,
    revealed_at      timestamptz,
    revealed_by      text,
    published_at     timestamptz,
    published_by     text,
    cancelled_at     timestamptz,
    cancelled_by     text,
    cancel_reason    text,
    CHECK ((seed IS NULL) = (result IS NULL) AND (seed IS NULL) = (revealed_at IS NULL)),
    CHECK (status <> 'committed' OR seed IS NULL),
    CHECK (status NOT IN ('revealed', 'published') OR seed IS NOT NULL),
    CHECK (status <> 'published' OR published_at IS NOT NULL),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    CHECK (status <> 'cancelled' OR (cancelled_by IS NOT NULL
                                     AND length(btrim(coalesce(cancel_reason, ''))) > 0))
);
-- One live draw per period; cancelled ones stay, visible, beside it.
CREATE UNIQUE INDEX draws_live_period_idx ON draws (period) WHERE status <> 'cancelled';
CREATE INDEX draws_committed_idx ON draws (committed_at DESC, id DESC);

-- The seed, apart from the draw until it is revealed (never served from this table).
CREATE TABLE draw_seeds (
    draw_id  bigint PRIMARY KEY REFERENCES draws (id),
    seed     bytea NOT NULL CHECK (octet_length(seed) = 32)
);

-- Nobody re-rolls a draw quietly: what was committed never changes, a revealed seed and
-- result never change, the status only moves forward (or to cancelled, with a reason),
-- and nothing is deleted.
CREATE FUNCTION firewatch_draw_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'draw %: a draw is never deleted; cancel it with a reason', OLD.id;
    END IF;
    IF NEW.id <> OLD.id OR NEW.period <> OLD.period OR NEW.algorithm <> OLD.algorithm
       OR NEW.inputs <> OLD.inputs OR NEW.inputs_hash <> OLD.inputs_hash
       OR NEW.seed_commitment <> OLD.seed_commitment OR NEW.committed_at <> OLD.committed_at
       OR NEW.committed_by <> OLD.committed_by THEN
        RAISE EXCEPTION 'draw %: its inputs, hash and seed commitment can never change', OLD.id;
    END IF;
    IF OLD.seed IS NOT NULL AND (NEW.seed IS DISTINCT FROM OLD.seed
       OR NEW.result IS DISTINCT FROM OLD.result OR NEW.revealed_at IS DISTINCT FROM OLD.revealed_at
       OR NEW.revealed_by IS DISTINCT FROM OLD.revealed_by) THEN
        RAISE EXCEPTION 'draw %: a revealed seed and result can never change', OLD.id;
    END IF;
    IF OLD.status = 'cancelled' THEN
        RAISE EXCEPTION 'draw %: a cancelled draw is final', OLD.id;
    END IF;
    IF OLD.published_at IS NOT NULL AND NEW.published_at IS DISTINCT FROM OLD.published_at THEN
        RAISE EXCEPTION 'draw %: its publication time can never change', OLD.id;
    END IF;
    IF NEW.status <> OLD.status AND NOT (
           (OLD.status = 'committed' AND NEW.status = 'revealed')
        OR (OLD.status = 'revealed' AND NEW.status = 'published')
        OR NEW.status = 'cancelled') THEN
        RAISE EXCEPTION 'draw %: cannot go from % to %', OLD.id, OLD.status, NEW.status;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER draws_guard BEFORE UPDATE OR DELETE ON draws
    FOR EACH ROW EXECUTE FUNCTION firewatch_draw_guard();

CREATE FUNCTION firewatch_draw_seed_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'draw %: a committed seed can never change or go', OLD.draw_id;
END $$;
CREATE TRIGGER draw_seeds_guard BEFORE UPDATE OR DELETE ON draw_seeds
    FOR EACH ROW EXECUTE FUNCTION firewatch_draw_seed_guard();

CREATE FUNCTION firewatch_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is never truncated', TG_TABLE_NAME;
END $$;
CREATE TRIGGER draws_no_truncate BEFORE TRUNCATE ON draws
    FOR EACH STATEMENT EXECUTE FUNCTION firewatch_no_truncate();
CREATE TRIGGER draw_seeds_no_truncate BEFORE TRUNCATE ON draw_seeds
    FOR EACH STATEMENT EXECUTE FUNCTION firewatch_no_truncate();

-- Inspections: by a draw (draw_id) or not (a complaint, a re-inspection).
CREATE TABLE inspections (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    unit_id            text NOT NULL REFERENCES units (id),
    draw_id            bigint REFERENCES draws (id),
    inspected_at       timestamptz NOT NULL,
    outcome            text NOT NULL CHECK (outcome IN ('passed', 'hazards_found',
                           'not_inspected')),
    false_declaration  boolean NOT NULL DEFAULT false,
    reinspection_of    bigint REFERENCES inspections (id),
    notes              text NOT NULL DEFAULT '',
    recorded_by        text NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inspections_unit_idx ON inspections (unit_id, inspected_at DESC);
CREATE INDEX inspections_draw_idx ON inspections (draw_id);

CREATE TABLE inspection_inspectors (
    inspection_id  bigint NOT NULL REFERENCES inspections (id),
    inspector_id   bigint NOT NULL REFERENCES inspectors (id),
    PRIMARY KEY (inspection_id, inspector_id)
);

-- Hazards: work orders with a deadline. Overdue = past the deadline and not verified
-- (computed, not stored). One hazard per confirmed fault alert.
CREATE TABLE hazards (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    unit_id           text NOT NULL REFERENCES units (id),
    source            text NOT NULL CHECK (source IN ('inspection', 'device_fault')),
    inspection_id     bigint REFERENCES inspections (id),
    alert_id          bigint REFERENCES alerts (id),
    category          text NOT NULL CHECK (category IN ('fire_exits', 'fire_facilities',
                          'fire_water', 'electrical', 'ebike_charging', 'flammables',
                          'fire_separation', 'management', 'other')),
    severity          text NOT NULL CHECK (severity IN ('major', 'general')),
    description       text NOT NULL,
    found_at          timestamptz NOT NULL,
    deadline          timestamptz NOT NULL CHECK (deadline > found_at),
    state             text NOT NULL DEFAULT 'open'
        CHECK (state IN ('open', 'submitted', 'verified')),
    evidence          text,
    submitted_at      timestamptz,
    verified_at       timestamptz,
    verified_by       text,
    rejections        integer NOT NULL DEFAULT 0,
    reminders_sent    integer NOT NULL DEFAULT 0,
    escalation_level  integer NOT NULL DEFAULT 0,
    escalated_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((source = 'inspection') = (inspection_id IS NOT NULL)),
    CHECK (source <> 'device_fault' OR alert_id IS NOT NULL),
    CHECK ((state = 'verified') = (verified_at IS NOT NULL)),
    CHECK (state <> 'submitted' OR submitted_at IS NOT NULL)
);
CREATE UNIQUE INDEX hazards_alert_idx ON hazards (alert_id) WHERE alert_id IS NOT NULL;
CREATE INDEX hazards_unit_idx ON hazards (unit_id, found_at DESC);
CREATE INDEX hazards_unverified_idx ON hazards (deadline) WHERE state <> 'verified';

-- Every step of a hazard: found, submit, verify, reject, remind, escalate.
CREATE TABLE hazard_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hazard_id   bigint NOT NULL REFERENCES hazards (id),
    action      text NOT NULL,
    from_state  text,
    to_state    text NOT NULL,
    actor       text NOT NULL,
    note        text NOT NULL DEFAULT '',
    at          timestamptz NOT NULL
);
CREATE INDEX hazard_events_hazard_idx ON hazard_events (hazard_id, id);

-- Unit credit: a unit without a row is good. Every change is a credit_events row.
CREATE TABLE unit_credit (
    unit_id  text PRIMARY KEY REFERENCES units (id),
    status   text NOT NULL CHECK (status IN ('good', 'watch', 'blacklisted')),
    since    timestamptz NOT NULL,
    reason   text NOT NULL,
    actor    text NOT NULL
);
CREATE INDEX unit_credit_status_idx ON unit_credit (status);

CREATE TABLE credit_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    unit_id        text NOT NULL REFERENCES units (id),
    from_status    text NOT NULL CHECK (from_status IN ('good', 'watch', 'blacklisted')),
    to_status      text NOT NULL CHECK (to_status IN ('good', 'watch', 'blacklisted')),
    rule           text NOT NULL,   -- what fired, or 'manual'
    reason         text NOT NULL CHECK (length(btrim(reason)) > 0),
    actor          text NOT NULL,
    at             timestamptz NOT NULL,
    hazard_id      bigint REFERENCES hazards (id),
    inspection_id  bigint REFERENCES inspections (id),
    alert_id       bigint REFERENCES alerts (id)
);
CREATE INDEX credit_events_unit_idx ON credit_events (unit_id, at DESC, id DESC);

-- Where the supervision worker stands in the alert_events feed (saved with its changes).
CREATE TABLE supervision_cursor (
    name      text PRIMARY KEY,
    cursor    jsonb NOT NULL,
    saved_at  timestamptz NOT NULL DEFAULT now()
);
