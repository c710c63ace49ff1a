-- Vendor onboarding (issue 14; docs/registry.md, docs/adr/0012-device-credentials.md).
-- Vendors, the units they serve (installations), decommissioning that keeps a device's
-- history, device credentials stored in the broker's own hash format, and the registry's
-- audit. firewatch/storage/vendors.py, devices.py and credentials.py own this SQL.

-- A device maker or installer. `devices.vendor` names one (kept as text, '' = unknown, as
-- before: a device row from before this migration may name a vendor nobody registered).
CREATE TABLE vendors (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name        text NOT NULL CHECK (btrim(name) <> ''),
    contact     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO vendors (id, name)
SELECT DISTINCT vendor, vendor FROM devices WHERE vendor ~ '^[A-Za-z0-9_.-]{1,64}$'
ON CONFLICT DO NOTHING;

-- Which vendor serves which unit, and since when: a vendor may register devices only in a
-- unit it serves now (`until` IS NULL). Ended installations stay as history.
CREATE TABLE installations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vendor_id   text NOT NULL REFERENCES vendors (id),
    unit_id     text NOT NULL REFERENCES units (id),
    since       timestamptz NOT NULL DEFAULT now(),
    until       timestamptz,
    created_by  text NOT NULL,
    note        text NOT NULL DEFAULT '',
    CHECK (until IS NULL OR until >= since)
);
CREATE UNIQUE INDEX installations_open_idx ON installations (vendor_id, unit_id)
    WHERE until IS NULL;
CREATE INDEX installations_unit_idx ON installations (unit_id);
-- The demo city's (and any earlier) devices: their vendors serve their units.
INSERT INTO installations (vendor_id, unit_id, created_by, note)
SELECT DISTINCT d.vendor, d.unit_id, 'migration 0017', 'from existing devices'
FROM devices d JOIN vendors v ON v.id = d.vendor;

-- Decommissioning keeps the row (and every stored reading of it); ingest no longer routes
-- the device and the broker no longer lets it in.
ALTER TABLE devices
    ADD COLUMN decommissioned_at  timestamptz,
    ADD COLUMN decommissioned_by  text,
    ADD COLUMN decommission_note  text;
CREATE INDEX devices_vendor_idx ON devices (vendor);

-- A device's broker login: username = client id = device id. Only the hash is kept, in the
-- dynamic-security plugin's own format (PBKDF2-HMAC-SHA512, base64 hash and salt), so the
-- broker's file can be rebuilt from here (`firewatch broker config`). The password itself is
-- shown once and pushed to the broker over $CONTROL when it is issued.
CREATE TABLE device_credentials (
    device_id         text PRIMARY KEY REFERENCES devices (id),
    password_hash     text NOT NULL,
    salt              text NOT NULL,
    iterations        integer NOT NULL CHECK (iterations > 0),
    version           integer NOT NULL DEFAULT 1 CHECK (version > 0),
    issued_at         timestamptz NOT NULL DEFAULT now(),
    issued_by         text NOT NULL,
    revoked_at        timestamptz,
    revoked_by        text
);

-- What changed in the registry, by whom: devices registered, updated, decommissioned;
-- credentials issued, rotated, revoked; vendors and installations. Append-only.
CREATE TABLE registry_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    subject     text NOT NULL CHECK (subject IN ('vendor', 'installation', 'unit', 'device',
                    'credential')),
    subject_id  text NOT NULL,
    event       text NOT NULL CHECK (event ~ '^[a-z][a-z_]{0,63}$'),
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX registry_events_subject_idx ON registry_events (subject, subject_id, at);
