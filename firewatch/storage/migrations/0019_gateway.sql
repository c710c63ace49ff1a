-- The GB/T 26875.3-2011 gateway (issue 17; docs/registry.md). A fire panel's user
-- information transmission device (UITD) has a 48-bit address in every frame it sends: the
-- registry maps it to the device, and names the vendor profile (quirks of time order,
-- checksum, clock zone) its frames are decoded with. Duty checks (查岗) asked from the
-- console or by the gateway's schedule wait here until the gateway sends them and records
-- what came back. firewatch/storage/devices.py and gateway.py own this SQL.

-- The address as 12 lowercase hex digits, most significant first (firewatch/core/
-- gbt_frame.py: format_address), so one text form is stored and compared. Only a panel has
-- one (the UITD reports the fire alarm control panel it is wired to).
ALTER TABLE devices
    ADD COLUMN gbt_address  text CHECK (gbt_address ~ '^[0-9a-f]{12}$'),
    ADD COLUMN gbt_profile  text NOT NULL DEFAULT 'standard'
        CHECK (gbt_profile ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    ADD CONSTRAINT devices_gbt_address_panel CHECK (gbt_address IS NULL OR kind = 'panel');
-- Unique among devices in service: a decommissioned panel keeps its address (its history
-- says where its frames came from), and its replacement (a new id: ids are never reused)
-- is registered with the same UITD address.
CREATE UNIQUE INDEX devices_gbt_address_idx ON devices (gbt_address)
    WHERE gbt_address IS NOT NULL AND decommissioned_at IS NULL;

-- One duty check of one panel: asked by a person (requested_by = username) or by the
-- gateway's schedule ('schedule'); sent_at when the gateway sent the frame; closed with an
-- outcome (answered in time, late, missed, or not_connected: the panel had no connection
-- to send it on) and closed_at. Rows are kept as the panel's duty record.
CREATE TABLE duty_checks (
    id            bigserial PRIMARY KEY,
    device_id     text NOT NULL REFERENCES devices (id),
    requested_by  text NOT NULL CHECK (btrim(requested_by) <> ''),
    requested_at  timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    outcome       text CHECK (outcome IN ('answered', 'late', 'missed', 'not_connected')),
    answered_at   timestamptz,
    closed_at     timestamptz,
    CHECK ((outcome IS NULL) = (closed_at IS NULL))
);
CREATE INDEX duty_checks_device_idx ON duty_checks (device_id, requested_at DESC);
-- What the gateway still has to send: few rows, read every second.
CREATE INDEX duty_checks_pending_idx ON duty_checks (requested_at)
    WHERE sent_at IS NULL AND closed_at IS NULL;
