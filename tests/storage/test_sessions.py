"""Browser sessions in PostgreSQL (firewatch/storage/sessions.py, migration 0013) and the
throttling reads of failed logins (firewatch/storage/people.py), with an injected ``now``:
idle timeout, absolute expiry, revocation, inactive people, the cookie never stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.core.people import AuthEvent, Conflict, Person, Role
from firewatch.core.sessions import session_digest
from firewatch.storage import people as store
from firewatch.storage.sessions import create_session, revoke_session, session_owner
from tests.helpers import scalar

T0 = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
S = timedelta(seconds=1)
IDLE, MAX = 1800, 43200


def person(db: psycopg.Connection[Any], username: str = "li.wei") -> Person:
    return store.add_person(db, username=username, role=Role.OPERATOR, actor="admin1")


def login(db: psycopg.Connection[Any], who: Person, at: datetime = T0) -> tuple[str, str]:
    return create_session(db, who, now=at, max_s=MAX, ip="10.0.0.7", user_agent="Firefox")


def last_seen(db: psycopg.Connection[Any], cookie: str) -> datetime:
    found: datetime = scalar(
        db, "SELECT last_seen_at FROM sessions WHERE session_sha256 = %s", session_digest(cookie)
    )
    return found


def test_a_session_names_its_person_and_its_csrf_token(db: psycopg.Connection[Any]) -> None:
    li = person(db)
    cookie, csrf = login(db, li)
    found = session_owner(db, cookie, T0 + S, IDLE)
    assert found is not None
    assert found[0].username == "li.wei"
    assert found[1] == csrf
    assert len(cookie) == 43
    assert len(csrf) >= 43
    assert cookie != csrf
    row = db.execute(
        "SELECT event, actor, detail->>'ip', at FROM auth_events WHERE event = 'login_ok'"
    ).fetchone()
    assert row == ("login_ok", "li.wei", "10.0.0.7", T0)


def test_only_the_cookie_s_sha256_is_stored(db: psycopg.Connection[Any]) -> None:
    cookie, _ = login(db, person(db))
    stored = scalar(db, "SELECT session_sha256 FROM sessions")
    assert bytes(stored) == session_digest(cookie)
    # No column, in any form the database would print it, holds the cookie value.
    everything = scalar(db, "SELECT row_to_json(s)::text FROM sessions s")
    assert cookie not in everything
    assert cookie.encode().hex() not in everything


def test_idle_sessions_end_and_use_is_recorded_at_most_once_a_minute(
    db: psycopg.Connection[Any],
) -> None:
    cookie, _ = login(db, person(db))
    assert session_owner(db, cookie, T0 + 30 * S, IDLE) is not None
    assert last_seen(db, cookie) == T0  # less than a minute: not written
    assert session_owner(db, cookie, T0 + 90 * S, IDLE) is not None
    assert last_seen(db, cookie) == T0 + 90 * S
    # Idle exactly the limit is still alive; a second more is not.
    assert session_owner(db, cookie, T0 + (90 + IDLE) * S, IDLE) is not None
    later = T0 + (90 + IDLE) * S
    assert session_owner(db, cookie, later + (IDLE + 1) * S, IDLE) is None
    assert last_seen(db, cookie) == later  # a refused session is not touched


def test_a_session_ends_at_its_absolute_expiry_however_busy(db: psycopg.Connection[Any]) -> None:
    cookie, _ = login(db, person(db))
    at = T0
    while at + 1000 * S < T0 + MAX * S:
        at += 1000 * S
        assert session_owner(db, cookie, at, IDLE) is not None, at
    assert session_owner(db, cookie, T0 + (MAX - 1) * S, IDLE) is not None
    assert session_owner(db, cookie, T0 + MAX * S, IDLE) is None


def test_revoked_unknown_malformed_and_inactive_are_refused(db: psycopg.Connection[Any]) -> None:
    li, wang = person(db), person(db, "wang")
    cookie, _ = login(db, li)
    other, _ = login(db, wang)
    assert revoke_session(db, cookie, now=T0 + S, ip="10.0.0.7")
    assert not revoke_session(db, cookie, now=T0 + 2 * S)  # twice: nothing more
    assert session_owner(db, cookie, T0 + 3 * S, IDLE) is None
    store.set_active(db, "wang", False, actor="admin1")
    assert session_owner(db, other, T0 + 3 * S, IDLE) is None
    unknown = other[:-4] + ("AAAA" if not other.endswith("AAAA") else "BBBB")
    for bad in (unknown, "short", "é" * 43, other + "x"):
        assert session_owner(db, bad, T0 + 3 * S, IDLE) is None, bad
    assert not revoke_session(db, "short", now=T0)
    logouts = db.execute(
        "SELECT username, actor, detail->>'ip' FROM auth_events WHERE event = 'logout'"
    ).fetchall()
    assert logouts == [("li.wei", "li.wei", "10.0.0.7")]
    # Refused whether the caller's record is fresh or read before the deactivation.
    for stale in (store.get_person_by_username(db, "wang"), wang):
        assert stale is not None
        with pytest.raises(Conflict, match="deactivated"):
            login(db, stale)


def test_recent_failures_count_per_username_and_per_address(db: psycopg.Connection[Any]) -> None:
    def fail(username: str, ip: str, at: datetime) -> None:
        store.record_auth_event(
            db,
            username=username,
            event=AuthEvent.LOGIN_FAILED,
            actor="api",
            detail={"ip": ip},
            at=at,
        )

    fail("li.wei", "10.0.0.1", T0 - 20 * 60 * S)  # before the window
    fail("li.wei", "10.0.0.1", T0 - 10 * S)
    fail("li.wei", "10.0.0.2", T0 - 5 * S)
    fail("wang", "10.0.0.1", T0 - 3 * S)
    store.record_auth_event(  # not a failure
        db,
        username="li.wei",
        event=AuthEvent.LOGIN_OK,
        actor="li.wei",
        detail={"ip": "10.0.0.1"},
        at=T0 - S,
    )
    since = T0 - 900 * S
    failures = store.recent_failures(db, " Li.Wei ", "10.0.0.1", since)
    assert failures.by_user == (T0 - 10 * S, T0 - 5 * S)
    assert failures.by_ip == (T0 - 10 * S, T0 - 3 * S)
    assert store.recent_failures(db, "nobody", "10.9.9.9", since) == ((), ())
