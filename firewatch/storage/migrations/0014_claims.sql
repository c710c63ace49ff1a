-- Alert claims (issue 12, the console): an operator claims an alert so that two seats never
-- work the same one. firewatch/storage/alerts.py owns the SQL; every claim, take-over and
-- release is also a row of alert_transitions (the audit) and of alert_events (the stream).
ALTER TABLE alerts
    ADD COLUMN claimed_by text CHECK (claimed_by IS NULL OR btrim(claimed_by) <> ''),
    ADD COLUMN claimed_at timestamptz,
    ADD CONSTRAINT alerts_claim_pair CHECK ((claimed_by IS NULL) = (claimed_at IS NULL));

-- The claims a seat holds (the console's "mine" filter, a person's open work at shift end).
CREATE INDEX alerts_claimed_by_idx ON alerts (claimed_by) WHERE claimed_by IS NOT NULL;
