"""``/auth/...`` and the ``current_user`` dependency over ASGI: 200 with a token, 401
without one, and the same 401 for a bad, expired or revoked token or a deactivated person;
every other route but health, login and the public pages closed to nobody. The console's
sessions, CSRF and login throttling are in tests/api/test_login.py; what each role may do
in tests/api/test_roles.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.core.people import Role, token_prefix
from firewatch.storage import people as store
from tests.builders import city

pytestmark = pytest.mark.anyio

DAY = timedelta(days=1)


def issue(
    db: psycopg.Connection[Any], username: str, *, made: datetime, expires: datetime, **kw: Any
) -> str:
    if store.get_person_by_username(db, username) is None:
        kw.setdefault("role", Role.OPERATOR)
        store.add_person(db, username=username, actor="test", **kw)
    return store.create_token(db, username, "test", expires, actor="test", now=made)


def bearer(token: str) -> dict[bytes, bytes]:
    """The header as bytes: latin-1 lets a test send what no token contains."""
    return {b"Authorization": f"Bearer {token}".encode("latin-1")}


async def test_me_answers_who_the_token_belongs_to(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    now = datetime.now(UTC)
    token = issue(
        db,
        "wd-manager",
        made=now,
        expires=now + DAY,
        role=Role.UNIT,
        unit_id=city.UNIT,
        display_name="Zhang Min",
    )
    r = await anon.get("/auth/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "username": "wd-manager",
        "display_name": "Zhang Min",
        "role": "unit",
        "unit_id": city.UNIT,
        "vendor": None,
    }
    (info,) = store.list_tokens(db, "wd-manager")
    assert info.last_used_at is not None


async def test_without_a_token_authentication_is_required(anon: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic bGk6d2Vp"}, {"Authorization": "Bearer"}):
        r = await anon.get("/auth/me", headers=headers)
        assert r.status_code == 401, headers
        assert r.json() == {"detail": "authentication required"}
        assert r.headers["www-authenticate"] == "Bearer"


async def test_bad_expired_revoked_and_deactivated_get_the_same_answer(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    now = datetime.now(UTC)
    good = issue(db, "li.wei", made=now, expires=now + DAY)
    expired = issue(db, "li.wei", made=now - 10 * DAY, expires=now - DAY)
    revoked = issue(db, "wang", made=now, expires=now + DAY)
    store.revoke_token(db, token_prefix(revoked), actor="test", now=now)
    inactive = issue(db, "zhao", made=now, expires=now + DAY)
    store.set_active(db, "zhao", False, actor="test")
    unknown = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")

    answers = set()
    for token in (expired, revoked, inactive, unknown, "fw_short", "x" * 46, "fw_" + "é" * 43):
        r = await anon.get("/auth/me", headers=bearer(token))
        assert r.status_code == 401, token
        assert r.headers["www-authenticate"].startswith("Bearer")
        answers.add((r.text, r.headers["www-authenticate"]))
    assert answers == {('{"detail":"invalid or expired token"}', 'Bearer error="invalid_token"')}
    assert (await anon.get("/auth/me", headers=bearer(good))).status_code == 200
    refused = db.execute(
        "SELECT username, event FROM auth_events WHERE actor = 'api' ORDER BY id"
    ).fetchall()
    assert refused == [
        ("li.wei", "token_used_expired"),
        ("wang", "token_rejected"),
        ("zhao", "token_rejected"),
    ]


async def test_the_other_routes_need_someone_now(anon: httpx.AsyncClient) -> None:
    # the role matrix itself is walked route by route in tests/api/test_roles.py
    assert (await anon.get("/alerts")).status_code == 401
    assert (await anon.get("/units")).status_code == 401
    assert (await anon.get("/health")).status_code in (200, 503)


async def test_the_schema_documents_the_schemes_on_every_route_but_the_open_ones(
    anon: httpx.AsyncClient,
) -> None:
    doc = (await anon.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    secured = {
        path
        for path, ops in doc["paths"].items()
        for op in ops.values()
        if isinstance(op, dict) and op.get("security")
    }
    assert secured == set(doc["paths"]) - {
        "/health",
        "/auth/login",
        "/public/draws",
        "/public/draws/{draw_id}",
        "/public/inspections",
        "/notifications/receipts",  # the SMS/voice provider signs its receipts instead
    }
    assert "401" in doc["paths"]["/auth/me"]["get"]["responses"]
    cookie = doc["components"]["securitySchemes"]["SessionCookie"]
    assert (cookie["type"], cookie["in"], cookie["name"]) == ("apiKey", "cookie", "fw_session")
    assert set(doc["paths"]["/auth/login"]["post"]["responses"]) >= {"200", "401", "422", "429"}
