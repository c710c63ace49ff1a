"""The console's browser sessions over ASGI (firewatch/api/routes/auth.py, ``current_user``):
login cookies and their attributes, the session on ``/auth/me``, CSRF on unsafe requests,
logout, one 401 for every bad login, throttling per username and per address, the audit.

The transport is plain http, where httpx (like a browser off localhost) does not send
Secure cookies: tests that follow a session use ``session_cookie_secure=False``; the
attributes themselves are read from the ``Set-Cookie`` headers with the default (Secure)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

import httpx
import psycopg
import pytest
from pwdlib.hashers.argon2 import Argon2Hasher

from firewatch.api.app import create_app
from firewatch.core.passwords import Passwords, hash_password
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from firewatch.storage import people as store
from tests.api.conftest import TEST_OPTIONS
from tests.helpers import scalar

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"
Browser = Callable[..., httpx.AsyncClient]


@asynccontextmanager
async def console(settings: Settings, **overrides: Any) -> AsyncIterator[Browser]:
    """The API with ``overrides`` (not Secure by default); yields a factory of clients, each
    its own browser (cookie jar) at the address it is given."""
    changed = settings.model_copy(update={"session_cookie_secure": False, **overrides})
    assert changed.database_url
    app = create_app(changed, changed.database_url, options=TEST_OPTIONS)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))

        def browser(ip: str = "10.0.0.1") -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(ip, 40000))
            c = httpx.AsyncClient(transport=transport, base_url="http://api")
            stack.push_async_callback(c.aclose)
            return c

        yield browser


def add(db: psycopg.Connection[Any], username: str = "li.wei", **kw: Any) -> None:
    kw.setdefault("role", Role.OPERATOR)
    kw.setdefault("password_hash", hash_password(PASSWORD))
    store.add_person(db, username=username, actor="admin1", **kw)


async def log_in(
    c: httpx.AsyncClient, username: str = "li.wei", password: str = PASSWORD
) -> httpx.Response:
    return await c.post("/auth/login", json={"username": username, "password": password})


def set_cookies(r: httpx.Response) -> dict[str, Any]:
    """The ``Set-Cookie`` headers of a response, parsed (morsels by name)."""
    jar: SimpleCookie = SimpleCookie()
    for header in r.headers.get_list("set-cookie"):
        jar.load(header)
    return dict(jar)


def audit(db: psycopg.Connection[Any], event: str) -> list[tuple[str, str, str | None]]:
    rows = db.execute(
        "SELECT username, actor, detail->>'ip' FROM auth_events WHERE event = %s ORDER BY id",
        (event,),
    ).fetchall()
    return [(str(u), str(a), ip) for u, a, ip in rows]


async def test_login_sets_both_cookies_with_their_attributes(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    add(db, display_name="Li Wei")
    r = await log_in(anon, " Li.Wei ")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "username": "li.wei",
        "display_name": "Li Wei",
        "role": "operator",
        "unit_id": None,
        "vendor": None,
    }
    cookies = set_cookies(r)
    assert set(cookies) == {"fw_session", "fw_csrf"}
    session, csrf = cookies["fw_session"], cookies["fw_csrf"]
    assert session["httponly"] is True
    assert not csrf["httponly"]  # the console's script reads it
    for morsel in (session, csrf):
        assert morsel["secure"] is True
        assert morsel["samesite"].lower() == "strict"
        assert morsel["path"] == "/"
        assert morsel["max-age"] == "43200"
    assert len(session.value) == 43
    assert scalar(db, "SELECT csrf_token FROM sessions") == csrf.value
    everything = scalar(db, "SELECT row_to_json(s)::text FROM sessions s")
    assert session.value not in everything  # only its SHA-256 is stored
    assert audit(db, "login_ok") == [("li.wei", "li.wei", "127.0.0.1")]


async def test_the_session_cookie_authenticates_and_logout_needs_the_csrf_header(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    add(db)
    async with console(settings) as browser:
        c = browser()
        assert (await log_in(c)).status_code == 200
        cookie, csrf = c.cookies["fw_session"], c.cookies["fw_csrf"]
        me = await c.get("/auth/me")
        assert me.status_code == 200, me.text
        assert me.json()["username"] == "li.wei"

        for headers in ({}, {"X-CSRF-Token": csrf[:-1] + "x"}, {"X-CSRF-Token": cookie}):
            r = await c.post("/auth/logout", headers=headers)
            assert r.status_code == 403, headers
            assert r.json() == {"detail": "CSRF token missing or wrong"}
        assert (await c.get("/auth/me")).status_code == 200  # still logged in

        r = await c.post("/auth/logout", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 204, r.text
        cleared = set_cookies(r)
        assert {cleared["fw_session"]["max-age"], cleared["fw_csrf"]["max-age"]} == {"0"}
        assert "fw_session" not in c.cookies

        # The old cookie, sent again (as a stolen copy would be), no longer works.
        again = {"Cookie": f"fw_session={cookie}", "X-CSRF-Token": csrf}
        r = await c.get("/auth/me", headers=again)
        assert r.status_code == 401
        assert r.json() == {"detail": "invalid or expired session"}
        assert (await c.post("/auth/logout", headers=again)).status_code == 401
        assert (await c.post("/auth/logout")).status_code == 401  # no session at all
    assert audit(db, "logout") == [("li.wei", "li.wei", "10.0.0.1")]


async def test_a_bearer_token_needs_no_csrf_but_is_no_session_to_log_out(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    add(db)
    now = datetime.now(UTC)
    token = store.create_token(db, "li.wei", "t", now + timedelta(days=1), actor="t", now=now)
    r = await anon.post("/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401  # not 403: a token is never asked for a CSRF header
    assert "no session" in r.json()["detail"]


async def test_every_bad_login_gets_the_same_401(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    add(db)
    add(db, "wang")
    store.set_active(db, "wang", False, actor="admin1")
    add(db, "gateway", password_hash=None)
    answers = set()
    for username, password in (
        ("li.wei", PASSWORD + "!"),  # wrong password
        ("nobody", PASSWORD),  # unknown user
        ("wang", PASSWORD),  # deactivated
        ("gateway", PASSWORD),  # no password (machine account)
        ("Not A Name!", PASSWORD),  # not even a possible username
    ):
        r = await log_in(anon, username, password)
        assert r.status_code == 401, username
        assert "set-cookie" not in r.headers
        answers.add(r.text)
    assert answers == {'{"detail":"wrong username or password"}'}
    assert [u for u, _, _ in audit(db, "login_failed")] == [
        "li.wei",
        "nobody",
        "wang",
        "gateway",
        "not a name!",
    ]
    assert {(a, ip) for _, a, ip in audit(db, "login_failed")} == {("api", "127.0.0.1")}
    assert scalar(db, "SELECT count(*) FROM sessions") == 0


async def test_a_login_body_takes_exactly_username_and_password(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    add(db)
    for body in (
        {"username": "li.wei", "password": PASSWORD, "role": "admin"},
        {"username": "li.wei"},
        {"username": "li.wei", "password": "x" * 1025},
    ):
        r = await anon.post("/auth/login", json=body)
        assert r.status_code == 422, body
    assert audit(db, "login_failed") == []


async def test_five_failures_throttle_the_username_even_with_the_right_password(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    add(db)
    add(db, "wang")
    async with console(settings) as browser:
        attacker = browser("10.0.0.66")
        for _ in range(5):
            assert (await log_in(attacker, password="guess-guess-guess")).status_code == 401
        r = await log_in(attacker)
        assert r.status_code == 429, r.text
        assert 890 <= int(r.headers["retry-after"]) <= 900
        assert "too many failed logins" in r.json()["detail"]
        assert "fw_session" not in attacker.cookies
        # The owner, from elsewhere, is throttled too (the count is per username)...
        assert (await log_in(browser("10.0.0.5"), "LI.WEI")).status_code == 429
        # ...but another username is not, from another address or from the same one.
        assert (await log_in(browser("10.0.0.5"), "wang")).status_code == 200
        assert (await log_in(attacker, "wang")).status_code == 200
        # Once the oldest counted failure has left the window, one more attempt is allowed.
        db.execute(
            "UPDATE auth_events SET at = at - interval '900 seconds' WHERE id = ("
            " SELECT min(id) FROM auth_events WHERE event = 'login_failed')"
        )
        assert (await log_in(attacker)).status_code == 200
    throttled = audit(db, "login_throttled")
    assert throttled == [("li.wei", "api", "10.0.0.66"), ("li.wei", "api", "10.0.0.5")]


async def test_too_many_failures_from_one_address_throttle_every_username(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    add(db)
    async with console(settings, login_max_failures_ip=3) as browser:
        sprayer = browser("10.0.0.66")
        for name in ("a.one", "b.two", "c.three"):
            assert (await log_in(sprayer, name)).status_code == 401
        r = await log_in(sprayer)  # right username and password, but from that address
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) > 0
        assert (await log_in(browser("10.0.0.5"))).status_code == 200
    assert audit(db, "login_throttled") == [("li.wei", "api", "10.0.0.66")]


async def test_a_hash_with_old_parameters_is_replaced_at_login(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    cheap = Passwords(Argon2Hasher(time_cost=1, memory_cost=8192, parallelism=1))
    add(db, password_hash=cheap.hash(PASSWORD))
    before = scalar(db, "SELECT password_hash FROM people WHERE username = 'li.wei'")
    async with console(settings) as browser:
        assert (await log_in(browser())).status_code == 200
    after = scalar(db, "SELECT password_hash FROM people WHERE username = 'li.wei'")
    assert "m=8192,t=1,p=1" in before
    assert after != before
    assert "m=65536,t=3,p=4" in after
    assert Passwords().verify(PASSWORD, after) == (True, None)
