-- Region hierarchy (city -> district -> street), units and devices.
CREATE TABLE regions (
    id          text PRIMARY KEY,
    parent_id   text REFERENCES regions (id),
    level       text NOT NULL CHECK (level IN ('city', 'district', 'street')),
    name        text NOT NULL,
    CHECK ((level = 'city') = (parent_id IS NULL))
);
CREATE INDEX regions_parent_idx ON regions (parent_id);

CREATE TABLE units (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    region_id       text NOT NULL REFERENCES regions (id),
    -- 'high_risk' (fire high-risk unit) or 'key' (key fire-safety unit)
    supervision     text NOT NULL CHECK (supervision IN ('high_risk', 'key', 'general')),
    category        text NOT NULL,           -- hotel, school, hospital, market, ...
    building_class  text NOT NULL,           -- sets the minimum water pressure
    address         text NOT NULL DEFAULT '',
    contacts        jsonb NOT NULL DEFAULT '{}'::jsonb,   -- responsible / maintenance
    attributes      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX units_region_idx ON units (region_id);

CREATE TABLE devices (
    id          text PRIMARY KEY,
    unit_id     text NOT NULL REFERENCES units (id),
    kind        text NOT NULL CHECK (kind IN ('panel', 'water', 'ebike_shed')),
    vendor      text NOT NULL DEFAULT '',
    model       text NOT NULL DEFAULT '',
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_unit_idx ON devices (unit_id);
