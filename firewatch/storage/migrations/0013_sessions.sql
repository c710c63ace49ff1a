-- Browser sessions of the console and the reads behind login throttling (issue 12, second
-- slice; docs/people.md). firewatch/storage/sessions.py owns the SQL of `sessions`;
-- firewatch/storage/people.py that of `auth_events`.

-- A logged-in browser. The cookie (`fw_session`) is 32 random bytes in URL-safe base64 and is
-- never stored: only its SHA-256, so a copy of this table cannot be replayed as a cookie.
-- The CSRF token is not a credential on its own (it is useless without the cookie) and must
-- be compared with what the browser sends, so it is kept as is.
CREATE TABLE sessions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person_id       bigint NOT NULL REFERENCES people (id),
    session_sha256  bytea NOT NULL UNIQUE CHECK (octet_length(session_sha256) = 32),
    csrf_token      text NOT NULL CHECK (length(csrf_token) >= 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- written at most once a minute (idle timeout is counted from it)
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    -- absolute end, whatever the activity (FIREWATCH_SESSION_MAX_S after login)
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    user_agent      text,
    ip              text,
    CHECK (expires_at > created_at)
);
CREATE INDEX sessions_person_idx ON sessions (person_id);

-- Throttling counts the failed logins of one username (auth_events_username_idx, 0012,
-- serves it) and of one client address within a window: the latter gets its own index,
-- partial so that it holds only failed logins.
CREATE INDEX auth_events_login_failed_ip_idx ON auth_events ((detail->>'ip'), at)
    WHERE event = 'login_failed';
