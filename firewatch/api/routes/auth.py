"""``/auth/...``: who is asking (``GET /auth/me``), and the console's browser sessions
(``POST /auth/login``, ``POST /auth/logout``) with login throttling (docs/people.md).

Only ``/auth/me`` and ``/auth/logout`` require authentication so far; the role matrix on
every route is issue 12's next slice.

A login is checked in this order: the throttle (failed logins of the username and of the
client address within ``login_window_s``: 429 before any password hashing), then the
password (argon2id, ~120 ms of CPU), with a dummy verification when the username has no
usable hash, so that an unknown user and a wrong password take the same time and get the
same 401.
"""

from __future__ import annotations

import functools
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status

from firewatch.api.auth_schemas import LoginIn, MeOut
from firewatch.api.deps import Conn, Context, CurrentCaller, CurrentUser
from firewatch.api.schemas import ErrorOut
from firewatch.core.passwords import hash_password, verify_password
from firewatch.core.people import AuthEvent
from firewatch.core.sessions import CSRF_COOKIE, SESSION_COOKIE, login_key, retry_after_s
from firewatch.core.settings import Settings
from firewatch.storage.people import (
    get_person_by_username,
    password_hash_of,
    recent_failures,
    record_auth_event,
    update_password_hash,
)
from firewatch.storage.sessions import create_session, revoke_session

router = APIRouter(tags=["auth"])

WRONG_CREDENTIALS = "wrong username or password"

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorOut,
        "description": "no credentials (authentication required); an invalid, expired or "
        "revoked token (invalid or expired token) or session (invalid or expired session); "
        "or their person deactivated",
    }
}
_CSRF: dict[int | str, dict[str, Any]] = {
    403: {
        "model": ErrorOut,
        "description": "a session cookie without the X-CSRF-Token header of its session",
    }
}
_LOGIN: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorOut,
        "description": "wrong username or password (the same for an unknown, deactivated or "
        "password-less account)",
    },
    429: {
        "model": ErrorOut,
        "description": "too many failed logins of this username or from this address; "
        "Retry-After says when to try again",
    },
}


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password with the production parameters, made once: verified
    against when the username has no usable hash, so that the answer takes as long."""
    return hash_password(secrets.token_urlsafe(32))


def _client_ip(request: Request) -> str:
    """The peer's address as the server saw it (behind a reverse proxy: the proxy's)."""
    return request.client.host if request.client is not None else "unknown"


def _set_cookie(response: Response, settings: Settings, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        max_age=settings.session_max_s,
        path="/",
        secure=settings.session_cookie_secure,
        httponly=name == SESSION_COOKIE,  # the console's script must read the CSRF token
        samesite="strict",
    )


def _clear_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name,
        path="/",
        secure=settings.session_cookie_secure,
        httponly=name == SESSION_COOKIE,
        samesite="strict",
    )


@router.get("/auth/me", response_model=MeOut, responses=_UNAUTHORIZED)
def me(user: CurrentUser) -> MeOut:
    """The person of the token in ``Authorization: Bearer fw_...`` or of the session cookie:
    username, display name, role and scope (unit or vendor)."""
    return MeOut.of(user)


@router.post("/auth/login", response_model=MeOut, responses=_LOGIN)
def login(body: LoginIn, request: Request, response: Response, conn: Conn, ctx: Context) -> MeOut:
    """Log in to the console with a username and password: 200 with the person (as
    ``/auth/me``) and two cookies, ``fw_session`` (HttpOnly) and ``fw_csrf`` (for the
    ``X-CSRF-Token`` header of unsafe requests). 401 "wrong username or password" for any
    bad credentials; 429 with ``Retry-After`` after too many failures."""
    settings = ctx.settings
    now = datetime.now(UTC)
    ip = _client_ip(request)
    key = login_key(body.username)
    failures = recent_failures(conn, key, ip, now - timedelta(seconds=settings.login_window_s))
    wait = retry_after_s(
        failures,
        max_user=settings.login_max_failures,
        max_ip=settings.login_max_failures_ip,
        window=timedelta(seconds=settings.login_window_s),
        now=now,
    )
    if wait:
        record_auth_event(
            conn,
            username=key,
            event=AuthEvent.LOGIN_THROTTLED,
            actor="api",
            detail={"ip": ip, "retry_after_s": wait},
            at=now,
        )
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed logins; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    stored = password_hash_of(conn, key)  # None: unknown, deactivated or no password
    ok, new_hash = verify_password(body.password, stored or _dummy_hash())
    person = get_person_by_username(conn, key) if ok and stored is not None else None
    if person is None or not person.active:
        record_auth_event(
            conn,
            username=key,
            event=AuthEvent.LOGIN_FAILED,
            actor="api",
            detail={"ip": ip},
            at=now,
        )
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, WRONG_CREDENTIALS)
    if new_hash is not None and stored is not None:
        update_password_hash(conn, key, stored, new_hash)
    cookie, csrf = create_session(
        conn,
        person,
        now=now,
        max_s=settings.session_max_s,
        ip=ip,
        user_agent=request.headers.get("user-agent"),
    )
    _set_cookie(response, settings, SESSION_COOKIE, cookie)
    _set_cookie(response, settings, CSRF_COOKIE, csrf)
    return MeOut.of(person)


@router.post(
    "/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**_UNAUTHORIZED, **_CSRF},
)
def logout(caller: CurrentCaller, request: Request, conn: Conn, ctx: Context) -> Response:
    """End the session of the ``fw_session`` cookie (with its ``X-CSRF-Token``) and clear
    both cookies: 204. Without a session (a bearer token is not one): 401."""
    if caller.session is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "no session to end (log out ends a session cookie, not a token)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    revoke_session(conn, caller.session, now=datetime.now(UTC), ip=_client_ip(request))
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    _clear_cookie(response, ctx.settings, SESSION_COOKIE)
    _clear_cookie(response, ctx.settings, CSRF_COOKIE)
    return response
