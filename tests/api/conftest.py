"""API fixtures: the app over this test's seeded database through ASGI (request/response
routes), and a real uvicorn server on a free port (the live stream). Both use the shared
``settings`` (API on 127.0.0.1, a free port) and ``db`` (tests/conftest.py).

Every route but health, login and the public pages needs someone (issue 12): ``client``
calls as an admin (every route admits one), ``anon`` as nobody; requests to the ``live``
server carry ``tests.builders.people.ADMIN`` (the ``admin_token`` fixture fills it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.api.app import create_app
from firewatch.api.deps import ApiOptions
from firewatch.api.server import ApiServer
from firewatch.api.stream import StreamOptions
from firewatch.core.settings import Settings

#: Production waits, except pings: frequent, so test readers can disconnect promptly.
TEST_OPTIONS = ApiOptions(pool_timeout_s=5.0, stream=StreamOptions(ping_s=0.2))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def anon(settings: Settings, db: psycopg.Connection[Any]) -> AsyncIterator[httpx.AsyncClient]:
    """httpx against the ASGI app, with its lifespan (pool, listener) running, sending no
    credentials."""
    assert settings.database_url
    app = create_app(settings, settings.database_url, options=TEST_OPTIONS)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        yield c


@pytest.fixture
async def client(anon: httpx.AsyncClient, admin_token: dict[str, str]) -> httpx.AsyncClient:
    """:func:`anon` calling as an admin (tests/conftest.py ``admin_token``)."""
    anon.headers.update(admin_token)
    return anon


@pytest.fixture
def live(
    settings: Settings, db: psycopg.Connection[Any], admin_token: dict[str, str]
) -> Iterator[ApiServer]:
    """A real uvicorn server in a thread on a free port (``ADMIN`` calls it as an admin)."""
    assert settings.database_url
    with ApiServer(settings, settings.database_url, options=TEST_OPTIONS) as server:
        yield server
