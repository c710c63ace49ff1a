"""Browser sessions of the console in PostgreSQL (migration 0013; docs/people.md, "Sessions").

This module owns the SQL of ``sessions``. A session's cookie value leaves
:func:`create_session` once and is never stored: only its SHA-256. Logging in and out are
audited (``login_ok``, ``logout``) in the same transaction as the session row changes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from firewatch.core.people import AuthEvent, Conflict, Person
from firewatch.core.sessions import (
    TOUCH_EVERY,
    looks_like_session,
    new_csrf_token,
    new_session_secret,
    session_digest,
)
from firewatch.storage.people import PERSON_COLUMNS, person_of, record_auth_event

#: Longest user agent kept (it is informational and comes from the client).
MAX_USER_AGENT = 256


def create_session(
    conn: psycopg.Connection[Any],
    person: Person,
    *,
    now: datetime,
    max_s: int,
    ip: str | None,
    user_agent: str | None,
) -> tuple[str, str]:
    """A new session for an active ``person`` from ``now`` until ``now + max_s`` at most;
    audited ``login_ok`` (actor: the person; detail: the address and the session's id).
    Returns ``(cookie value, csrf token)``: the cookie value exists nowhere else."""
    if not person.active:
        raise Conflict(f"user {person.username!r} is deactivated")
    secret, csrf = new_session_secret(), new_csrf_token()
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO sessions (person_id, session_sha256, csrf_token, created_at,"
            " last_seen_at, expires_at, user_agent, ip)"
            " SELECT id, %s, %s, %s, %s, %s, %s, %s FROM people WHERE id = %s AND active"
            " RETURNING id",
            (
                session_digest(secret),
                csrf,
                now,
                now,
                now + timedelta(seconds=max_s),
                None if user_agent is None else user_agent[:MAX_USER_AGENT],
                ip,
                person.id,
            ),
        ).fetchone()
        if row is None:  # deactivated since the caller read it
            raise Conflict(f"user {person.username!r} is deactivated")
        record_auth_event(
            conn,
            username=person.username,
            event=AuthEvent.LOGIN_OK,
            actor=person.username,
            detail={"ip": ip, "session": int(row[0])},
            at=now,
        )
    return secret, csrf


def session_owner(
    conn: psycopg.Connection[Any], cookie: str, now: datetime, idle_s: int
) -> tuple[Person, str] | None:
    """``(person, csrf token)`` of a live session at ``now``, or None: unknown or malformed
    cookie, revoked, unused for more than ``idle_s`` seconds, past its absolute expiry, or
    its person inactive (the caller must not say which). Records ``last_seen_at`` at most
    once per :data:`TOUCH_EVERY`, so the idle time counts from the last recorded use."""
    if not looks_like_session(cookie):
        return None
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {PERSON_COLUMNS}, s.id AS session_id, s.csrf_token, s.last_seen_at,"
            " s.expires_at, s.revoked_at"
            " FROM sessions s JOIN people p ON p.id = s.person_id WHERE s.session_sha256 = %s",
            (session_digest(cookie),),
        ).fetchone()
        if (
            row is None
            or (row["revoked_at"] is not None and row["revoked_at"] <= now)
            or row["expires_at"] <= now
            or now - row["last_seen_at"] > timedelta(seconds=idle_s)
            or not row["active"]
        ):
            return None
        cur.execute(
            "UPDATE sessions SET last_seen_at = %s WHERE id = %s AND last_seen_at <= %s",
            (now, row["session_id"], now - TOUCH_EVERY),
        )
    return person_of(row), str(row["csrf_token"])


def revoke_session(
    conn: psycopg.Connection[Any], cookie: str, *, now: datetime, ip: str | None = None
) -> bool:
    """End the session of ``cookie`` from ``now`` on; audited ``logout`` (actor: the person).
    False (and nothing audited) when it is unknown or already revoked."""
    if not looks_like_session(cookie):
        return False
    with conn.transaction():
        row = conn.execute(
            "UPDATE sessions s SET revoked_at = %s FROM people p"
            " WHERE p.id = s.person_id AND s.session_sha256 = %s AND s.revoked_at IS NULL"
            " RETURNING s.id, p.username",
            (now, session_digest(cookie)),
        ).fetchone()
        if row is None:
            return False
        record_auth_event(
            conn,
            username=row[1],
            event=AuthEvent.LOGOUT,
            actor=row[1],
            detail={"ip": ip, "session": int(row[0])},
            at=now,
        )
    return True
