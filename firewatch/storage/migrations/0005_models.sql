-- Learned anomaly models (`firewatch analytics train`): one row per trained version, with
-- the training window, feature names, parameters and metrics. `model` is the pickled
-- scikit-learn pipeline; `sha256` (of `model`) is checked before it is unpickled.
CREATE TABLE analytics_models (
    version      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('panel','water','ebike_shed')),
    algorithm    text NOT NULL,
    trained_from timestamptz NOT NULL,
    trained_to   timestamptz NOT NULL,
    window_s     integer NOT NULL,
    features     text[] NOT NULL,
    params       jsonb NOT NULL,
    metrics      jsonb NOT NULL,
    model        bytea NOT NULL,
    sha256       bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX analytics_models_kind_idx ON analytics_models (kind, version DESC);
