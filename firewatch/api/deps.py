"""FastAPI dependencies: the app's context (pool, stream hub, settings), a pooled
connection per request, the person a bearer token or a session cookie belongs to
(``CurrentUser``; the session with its cookie: ``CurrentCaller``) and what their role may
do (``allow``: the role matrix of ``firewatch/core/access.py``, one alias per row)."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
import psycopg_pool
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from firewatch.api.guard import Gate
from firewatch.api.stream import AlertHub, StreamOptions
from firewatch.core.access import Access, Forbidden, check
from firewatch.core.people import Person
from firewatch.core.sessions import CSRF_COOKIE, CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE
from firewatch.core.settings import Settings
from firewatch.runtime.dynsec_control import LazyControl
from firewatch.storage.people import token_owner
from firewatch.storage.sessions import session_owner


@dataclass(frozen=True)
class ApiOptions:
    """Tuning of one API process (defaults suit production; tests shorten the waits)."""

    pool_min: int = 1
    #: None: a connection for every admitted request (``api_max_concurrency``) plus one for
    #: every parallel stream read, so that an admitted request never waits for the pool.
    pool_max: int | None = None
    pool_timeout_s: float = 5.0  # longest wait for a pooled connection (then 503)
    stream: StreamOptions = field(default_factory=StreamOptions)

    def pool_size(self, settings: Settings) -> int:
        if self.pool_max is not None:
            return self.pool_max
        return settings.api_max_concurrency + self.stream.reads_in_parallel


@dataclass
class ApiContext:
    """What the lifespan opens and the routes use (``app.state.ctx``)."""

    settings: Settings
    conninfo: str
    options: ApiOptions
    gate: Gate  # the request limits and their state (firewatch/api/guard.py)
    pool: psycopg_pool.ConnectionPool[Any] | None = None
    hub: AlertHub | None = None
    #: the broker's $CONTROL API, for the credential routes (opened at first use)
    control: LazyControl | None = None

    def require_control(self) -> LazyControl:
        if self.control is None:
            raise RuntimeError("the API is not started (lifespan not run)")
        return self.control

    def require_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        if self.pool is None:
            raise RuntimeError("the API is not started (lifespan not run)")
        return self.pool

    def require_hub(self) -> AlertHub:
        if self.hub is None:
            raise RuntimeError("the API is not started (lifespan not run)")
        return self.hub


def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def get_conn(request: Request) -> Iterator[psycopg.Connection[Any]]:
    """A pooled autocommit connection for the request (store functions open their own
    transactions); returned to the pool afterwards."""
    ctx = get_context(request)
    with ctx.require_pool().connection(timeout=ctx.options.pool_timeout_s) as conn:
        yield conn


Context = Annotated[ApiContext, Depends(get_context)]
Conn = Annotated[psycopg.Connection[Any], Depends(get_conn)]


# --- who is asking (issue 12; docs/people.md) ----------------------------------------------
# auto_error=False: a missing header or cookie is answered below, with the same 401 shape as
# a bad one.
_bearer = HTTPBearer(
    auto_error=False, description="An API token from `firewatch user token` (fw_...)."
)
_session = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="SessionCookie",
    description="The console's session from `POST /auth/login`. Unsafe methods (POST, PUT, "
    f"PATCH, DELETE) with it also need the `{CSRF_HEADER}` header: the value of the "
    f"`{CSRF_COOKIE}` cookie.",
)

_CSRF_REFUSED = "CSRF token missing or wrong"


@dataclass(frozen=True)
class Caller:
    """Who is asking, and how: ``session`` is the cookie value when a session cookie (not a
    bearer token) authenticated the request."""

    person: Person
    session: str | None = None


def _unauthorized(detail: str, challenge: str = "Bearer") -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": challenge}
    )


def current_caller(
    request: Request,
    conn: Conn,
    ctx: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_session)],
) -> Caller:
    """The active person of ``Authorization: Bearer fw_...`` or, without that header, of the
    ``fw_session`` cookie. Else 401 with ``WWW-Authenticate``: "authentication required"
    with neither; "invalid or expired token" for an unknown, malformed, expired or revoked
    token or an inactive person; "invalid or expired session" for an unknown, revoked,
    idle or expired session or an inactive person (never saying which). A session on an
    unsafe method must carry ``X-CSRF-Token`` equal to the session's token: else 403 "CSRF
    token missing or wrong". A bearer token needs none (browsers never send it unasked)."""
    now = datetime.now(UTC)
    if credentials is not None:
        person = token_owner(conn, credentials.credentials, now)
        if person is None:
            raise _unauthorized("invalid or expired token", 'Bearer error="invalid_token"')
        return Caller(person)
    if cookie is None:
        raise _unauthorized("authentication required")
    found = session_owner(conn, cookie, now, ctx.settings.session_idle_s)
    if found is None:
        raise _unauthorized("invalid or expired session")
    person, csrf = found
    if request.method.upper() not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        # Constant-time: the comparison must not tell how much of a guess was right.
        if not hmac.compare_digest(sent.encode("latin-1", "replace"), csrf.encode("ascii")):
            raise HTTPException(status.HTTP_403_FORBIDDEN, _CSRF_REFUSED)
    return Caller(person, cookie)


CurrentCaller = Annotated[Caller, Depends(current_caller)]


def current_user(caller: CurrentCaller) -> Person:
    """The person of :func:`current_caller` (its 401 and 403). Routes that need a person
    take :data:`CurrentUser`."""
    return caller.person


CurrentUser = Annotated[Person, Depends(current_user)]


# --- what they may do: the role matrix (firewatch/core/access.py) -------------------------
def allow(access: Access) -> Callable[[Person], Person]:
    """A dependency: the current person if their role is admitted to ``access``, else 403
    naming the role and the roles that may (401 first when nobody is authenticated)."""

    def admitted(person: CurrentUser) -> Person:
        try:
            check(person, access)
        except Forbidden as err:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(err)) from None
        return person

    admitted.__name__ = f"allow_{access.value}"
    return admitted


# One name per row of the matrix: a route takes the one that says what it does.
AlertReader = Annotated[Person, Depends(allow(Access.ALERTS_READ))]
AlertActor = Annotated[Person, Depends(allow(Access.ALERTS_ACT))]
RegistryReader = Annotated[Person, Depends(allow(Access.REGISTRY_READ))]
UnitReader = Annotated[Person, Depends(allow(Access.UNIT_READ))]
DeviceReader = Annotated[Person, Depends(allow(Access.DEVICE_READ))]
RiskReader = Annotated[Person, Depends(allow(Access.RISK_READ))]
UnitRiskReader = Annotated[Person, Depends(allow(Access.UNIT_RISK_READ))]
SupervisionReader = Annotated[Person, Depends(allow(Access.SUPERVISION_READ))]
HazardReader = Annotated[Person, Depends(allow(Access.HAZARDS_READ))]
RegistryWriter = Annotated[Person, Depends(allow(Access.REGISTRY_WRITE))]
VendorReader = Annotated[Person, Depends(allow(Access.VENDORS_READ))]
DeviceWriter = Annotated[Person, Depends(allow(Access.DEVICES_WRITE))]
CredentialWriter = Annotated[Person, Depends(allow(Access.CREDENTIALS_WRITE))]
DeadLetterReader = Annotated[Person, Depends(allow(Access.DEAD_LETTERS_READ))]
DeviceChecker = Annotated[Person, Depends(allow(Access.DEVICE_CHECK))]
DutyChecker = Annotated[Person, Depends(allow(Access.DUTY_CHECK))]
