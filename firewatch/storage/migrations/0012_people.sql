-- People, their roles and their API tokens (issue 12, first slice; docs/people.md,
-- docs/adr/0008-accounts-and-tokens.md). firewatch/storage/people.py owns this SQL.
-- Nothing enforces roles on routes yet: these tables say who someone is, not what they may do.

-- An account. `unit` people manage one unit's fire safety (only their own unit), `vendor`
-- people one vendor's devices (only their own devices): the scope is required exactly for
-- those two roles. A machine-only account has no password (it uses API tokens).
CREATE TABLE people (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username             text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9._-]{3,64}$'),
    display_name         text NOT NULL,
    role                 text NOT NULL CHECK (role IN ('operator', 'shift_leader', 'supervisor',
                             'inspector', 'unit', 'vendor', 'admin')),
    unit_id              text REFERENCES units (id),
    vendor               text CHECK (vendor IS NULL OR btrim(vendor) <> ''),
    -- argon2id in PHC string format (firewatch/core/passwords.py); never the password
    password_hash        text CHECK (password_hash IS NULL OR password_hash LIKE '$argon2%'),
    active               boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    password_changed_at  timestamptz,
    CONSTRAINT people_unit_scope CHECK ((role = 'unit') = (unit_id IS NOT NULL)),
    CONSTRAINT people_vendor_scope CHECK ((role = 'vendor') = (vendor IS NOT NULL))
);
CREATE INDEX people_unit_idx ON people (unit_id) WHERE unit_id IS NOT NULL;

-- API tokens for machines. The plaintext is shown once and never stored: only its SHA-256
-- (a fast hash suits 256 random bits) and its first 8 characters, which name it in lists,
-- logs and `firewatch user revoke-token`.
CREATE TABLE api_tokens (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person_id     bigint NOT NULL REFERENCES people (id),
    name          text NOT NULL CHECK (btrim(name) <> ''),
    prefix        text NOT NULL UNIQUE CHECK (prefix ~ '^fw_[A-Za-z0-9_-]{5}$'),
    token_sha256  bytea NOT NULL UNIQUE CHECK (octet_length(token_sha256) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX api_tokens_person_idx ON api_tokens (person_id);

-- The audit of accounts and tokens: who did what to which account, and refused tokens.
-- `actor` is the OS login name for CLI changes (later: the session's person), "api" for
-- what the API observed. Append-only by convention; nothing here updates or deletes it.
CREATE TABLE auth_events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    username  text NOT NULL,
    event     text NOT NULL CHECK (event ~ '^[a-z][a-z_]{0,63}$'),
    actor     text NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX auth_events_username_idx ON auth_events (username, at);
CREATE INDEX auth_events_at_idx ON auth_events (at);
