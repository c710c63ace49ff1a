"""The HTTP API's app factory: ``create_app(settings, conninfo)``.

Request/response routes are plain ``def`` functions: FastAPI runs them in its thread pool,
where they use the sync psycopg pool (the store functions are sync). The live stream is
``async`` and reads the change feed in worker threads too (``firewatch/api/stream.py``);
the event loop never blocks on the database.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import psycopg
import psycopg_pool
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from firewatch.api.deps import ApiContext, ApiOptions
from firewatch.api.routes import alerts, health
from firewatch.api.stream import AlertHub
from firewatch.core.settings import Settings

log = logging.getLogger("firewatch.api")

APPLICATION_NAME = "firewatch-api"


def create_app(settings: Settings, conninfo: str, *, options: ApiOptions | None = None) -> FastAPI:
    """The API over the database at ``conninfo`` (resolve it with
    ``firewatch.runtime.postgres.resolve_database_url``). The pool and the stream listener
    open in the lifespan and close at shutdown; the database need not be up at start
    (``/health`` says 503 until it is)."""
    ctx = ApiContext(settings=settings, conninfo=conninfo, options=options or ApiOptions())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool = psycopg_pool.ConnectionPool(
            conninfo,
            min_size=ctx.options.pool_min,
            max_size=ctx.options.pool_max,
            kwargs={"autocommit": True, "application_name": APPLICATION_NAME},
            check=psycopg_pool.ConnectionPool.check_connection,
            timeout=ctx.options.pool_timeout_s,
            name=APPLICATION_NAME,
            open=False,
        )
        pool.open(wait=False)
        hub = AlertHub(conninfo, pool, ctx.options.stream)
        await hub.start()
        ctx.pool, ctx.hub = pool, hub
        try:
            yield
        finally:
            await hub.stop()
            await anyio.to_thread.run_sync(pool.close)
            ctx.pool = ctx.hub = None

    app = FastAPI(
        title="Firewatch",
        summary="Urban IoT fire monitoring: alerts, their lifecycle and the live alert stream",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.include_router(alerts.router)
    app.include_router(health.router)

    async def database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return JSONResponse(
            status_code=503,
            content={"detail": f"database unavailable: {exc}"},
            headers={"Retry-After": "5"},
        )

    app.add_exception_handler(psycopg.OperationalError, database_unavailable)
    app.add_exception_handler(psycopg_pool.PoolTimeout, database_unavailable)
    return app
