-- Hardening (docs/reliability.md): dead letters keep a capped payload with the full size
-- (the SHA-256 was always of the full payload), and rows a reader could not process are
-- recorded instead of stopping it.

-- A dead letter keeps at most FIREWATCH_DEAD_LETTER_PAYLOAD_CAP_BYTES of its payload;
-- payload_size is the size that arrived (payload is complete when they are equal).
ALTER TABLE dead_letters ADD COLUMN payload_size integer;
UPDATE dead_letters SET payload_size = octet_length(payload);
ALTER TABLE dead_letters ALTER COLUMN payload_size SET NOT NULL;

-- A stored row that a downstream reader (analytics, alerting) could not process: recorded
-- with the reason and skipped, never a crash loop. ``row_key`` identifies the row in its
-- table (JSON: the stream key or the id); one record per (reader, table, key).
CREATE TABLE skipped_rows (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reader      text        NOT NULL,  -- e.g. 'analytics 0/1', 'alerting'
    source      text        NOT NULL,  -- the table the row is in
    row_key     jsonb       NOT NULL,
    reason      text        NOT NULL,
    skipped_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (reader, source, row_key)
);
CREATE INDEX skipped_rows_at_idx ON skipped_rows (skipped_at);
