-- Unit fire risk (firewatch/risk/, docs/risk.md): every computed score is kept (the history
-- is the table), with the breakdown that explains it; a warning is raised when a unit's level
-- rises. Supervision reads the newest level per unit to weight its draws.

CREATE TABLE risk_scores (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    unit_id         text NOT NULL REFERENCES units (id),
    computed_at     timestamptz NOT NULL,
    -- data up to this time went into the score (the window's end)
    as_of           timestamptz NOT NULL,
    score           real NOT NULL CHECK (score >= 0 AND score <= 100),
    level           text NOT NULL CHECK (level IN ('red', 'orange', 'yellow', 'blue')),
    -- the level the score alone gives; level differs when a condition forces it
    score_level     text NOT NULL CHECK (score_level IN ('red', 'orange', 'yellow', 'blue')),
    forced_by       text[] NOT NULL DEFAULT '{}',
    -- [{indicator, value, unit, weight, points, ...}]: contributions add up to score
    breakdown       jsonb NOT NULL,
    config_version  text NOT NULL,
    -- what made it run: schedule, event (a confirmed fire, an overdue hazard ...), manual
    trigger         text NOT NULL DEFAULT 'schedule'
);
CREATE INDEX risk_scores_unit_idx ON risk_scores (unit_id, computed_at DESC);

-- The newest score per unit: what the per-tier views and the draws read.
CREATE TABLE risk_current (
    unit_id         text PRIMARY KEY REFERENCES units (id),
    score_id        bigint NOT NULL REFERENCES risk_scores (id),
    score           real NOT NULL,
    level           text NOT NULL CHECK (level IN ('red', 'orange', 'yellow', 'blue')),
    computed_at     timestamptz NOT NULL
);
CREATE INDEX risk_current_level_idx ON risk_current (level);

-- A unit's level rose: one record per rise, notified through the outbox (supervisor, unit).
CREATE TABLE risk_warnings (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    unit_id         text NOT NULL REFERENCES units (id),
    score_id        bigint NOT NULL REFERENCES risk_scores (id),
    from_level      text CHECK (from_level IN ('red', 'orange', 'yellow', 'blue')),
    to_level        text NOT NULL CHECK (to_level IN ('red', 'orange', 'yellow', 'blue')),
    reason          text NOT NULL,
    raised_at       timestamptz NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by text
);
CREATE INDEX risk_warnings_unit_idx ON risk_warnings (unit_id, raised_at DESC);
CREATE INDEX risk_warnings_raised_idx ON risk_warnings (raised_at DESC);
