-- What the risk worker's event check reads (storage/risk_inputs.py, risk_triggers): records
-- by their time, so each check reads only what happened since the previous one.
CREATE INDEX alert_transitions_confirmed_fire_idx ON alert_transitions (at)
    WHERE to_state = 'confirmed_fire';
CREATE INDEX credit_events_at_idx ON credit_events (at);
CREATE INDEX hazard_events_at_idx ON hazard_events (at);
