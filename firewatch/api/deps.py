"""FastAPI dependencies: the app's context (pool, stream hub, settings), a pooled
connection per request, and the person a bearer token belongs to (``CurrentUser``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
import psycopg_pool
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from firewatch.api.guard import Gate
from firewatch.api.stream import AlertHub, StreamOptions
from firewatch.core.people import Person
from firewatch.core.settings import Settings
from firewatch.storage.people import token_owner


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
# auto_error=False: a missing header is answered below, with the same 401 shape as a bad one.
_bearer = HTTPBearer(
    auto_error=False, description="An API token from `firewatch user token` (fw_...)."
)


def current_user(
    conn: Conn,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Person:
    """The active person whose API token is in ``Authorization: Bearer fw_...``, else 401
    with ``WWW-Authenticate``: "authentication required" without a token, "invalid or
    expired token" for an unknown, malformed, expired or revoked one or an inactive
    person (never saying which). Routes that need a person take :data:`CurrentUser`."""
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "authentication required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    person = token_owner(conn, credentials.credentials, datetime.now(UTC))
    if person is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or expired token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return person


CurrentUser = Annotated[Person, Depends(current_user)]
