-- Hardening (docs/reliability.md): dead letters keep a capped payload with the full size
-- (the SHA-256 was always of the full payload), and rows a reader could not process are
-- recorded instead of stopping it.

-- A dead letter keeps at most FIREWATCH_DEAD_LETTER_PAYLOAD_CAP_BYTES of its payload;
-- payload_size is the size that arrived (payload is complete when they are equal).
ALTER TABLE dead_letters ADD COLUMN payload_size integer;
UPDATE dead_letters SET payload_size = octet_length(payload);
ALTER TABLE dead_letters ALTER COLUMN payload_size SET NOT NULL;

-- The same (topic, payload) is kept once. The unique key was (topic, payload_sha256), but a
-- btree entry holds at most about 2.7 kB and MQTT allows 64 KiB topics: one long (or
-- long multibyte) topic would make its dead letter impossible to store. The key is now a
-- digest of both, sha256(topic as UTF-8 || 0x00 || sha256(payload)), filled in by a
-- trigger (a generated column must be immutable, and convert_to is not), so every writer
-- gets the same key without computing it.
CREATE FUNCTION firewatch_dead_letter_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.dedup_key := sha256(convert_to(NEW.topic, 'UTF8') || '\x00'::bytea || NEW.payload_sha256);
    RETURN NEW;
END $$;
ALTER TABLE dead_letters ADD COLUMN dedup_key bytea;
UPDATE dead_letters
   SET dedup_key = sha256(convert_to(topic, 'UTF8') || '\x00'::bytea || payload_sha256);
ALTER TABLE dead_letters ALTER COLUMN dedup_key SET NOT NULL;
ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_topic_payload_sha256_key;
CREATE UNIQUE INDEX dead_letters_dedup_key ON dead_letters (dedup_key);
CREATE TRIGGER dead_letters_key BEFORE INSERT OR UPDATE OF topic, payload_sha256
    ON dead_letters FOR EACH ROW EXECUTE FUNCTION firewatch_dead_letter_key();

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
