"""API fixtures: the app over this test's seeded database through ASGI (request/response
routes), and a real uvicorn server on a free port (the live stream). Both use the shared
``settings`` (API on 127.0.0.1, a free port) and ``db`` (tests/conftest.py)."""

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
async def client(
    settings: Settings, db: psycopg.Connection[Any]
) -> AsyncIterator[httpx.AsyncClient]:
    """httpx against the ASGI app, with its lifespan (pool, listener) running."""
    assert settings.database_url
    app = create_app(settings, settings.database_url, options=TEST_OPTIONS)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        yield c


@pytest.fixture
def live(settings: Settings, db: psycopg.Connection[Any]) -> Iterator[ApiServer]:
    """A real uvicorn server in a thread on a free port."""
    assert settings.database_url
    with ApiServer(settings, settings.database_url, options=TEST_OPTIONS) as server:
        yield server
