"""API fixtures: the app over this test's database through ASGI (request/response
routes), and a real uvicorn server on a free port (the live stream)."""

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
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_host": "127.0.0.1", "api_port": 0})


@pytest.fixture
def conninfo(settings: Settings, db: psycopg.Connection[Any]) -> str:
    """The test database (seeded by ``db``)."""
    assert settings.database_url
    return settings.database_url


@pytest.fixture
async def client(api_settings: Settings, conninfo: str) -> AsyncIterator[httpx.AsyncClient]:
    """httpx against the ASGI app, with its lifespan (pool, listener) running."""
    app = create_app(api_settings, conninfo, options=TEST_OPTIONS)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        yield c


@pytest.fixture
def live(api_settings: Settings, conninfo: str) -> Iterator[ApiServer]:
    """A real uvicorn server in a thread on a free port."""
    with ApiServer(api_settings, conninfo, options=TEST_OPTIONS) as server:
        yield server
