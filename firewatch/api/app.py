"""The HTTP API's app factory: ``create_app(settings, conninfo)``.

Request/response routes are plain ``def`` functions: FastAPI runs them in its thread pool,
where they use the sync psycopg pool (the store functions are sync). The live stream is
``async`` and reads the change feed in worker threads too (``firewatch/api/stream.py``);
the event loop never blocks on the database. Every request first passes the guard
(``firewatch/api/guard.py``: body size, text the database can store, admission), and
validation errors are rendered by ``firewatch/api/errors.py`` (never a 500, never a large
echo).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import psycopg
import psycopg_pool
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from sse_starlette import EventSourceResponse

from firewatch.api.deps import ApiContext, ApiOptions
from firewatch.api.errors import validation_error
from firewatch.api.guard import Gate, Guard, Limits
from firewatch.api.routes import (
    alerts,
    auth,
    console,
    credentials,
    device_registry,
    devices,
    duty_checks,
    health,
    notifications,
    public,
    regions,
    risk,
    supervision,
    unit_registry,
    units,
    vendor_tools,
    vendors,
)
from firewatch.api.stream import AlertHub
from firewatch.core.access import Forbidden
from firewatch.core.settings import Settings
from firewatch.runtime.dynsec_control import LazyControl
from firewatch.storage.timestamps import clamp_timestamps

log = logging.getLogger("firewatch.api")

APPLICATION_NAME = "firewatch-api"


def _configure(conn: psycopg.Connection[Any]) -> None:
    clamp_timestamps(conn)


def create_app(settings: Settings, conninfo: str, *, options: ApiOptions | None = None) -> FastAPI:
    """The API over the database at ``conninfo`` (resolve it with
    ``firewatch.runtime.postgres.resolve_database_url``). The pool and the stream listener
    open in the lifespan and close at shutdown; the database need not be up at start
    (``/health`` says 503 until it is). Limits: ``settings.api_*`` (the guard)."""
    opts = options or ApiOptions()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Sync routes run in anyio's thread pool: it must not be the tighter limit.
        threads = anyio.to_thread.current_default_thread_limiter()
        threads.total_tokens = max(threads.total_tokens, settings.api_max_concurrency)
        pool_size = opts.pool_size(settings)
        pool = psycopg_pool.ConnectionPool(
            conninfo,
            min_size=min(opts.pool_min, pool_size),
            max_size=pool_size,
            kwargs={"autocommit": True, "application_name": APPLICATION_NAME},
            check=psycopg_pool.ConnectionPool.check_connection,
            # Any stored time loads (a row at -infinity must not make a page a 500).
            configure=_configure,
            timeout=opts.pool_timeout_s,
            name=APPLICATION_NAME,
            open=False,
        )
        pool.open(wait=False)
        hub = AlertHub(conninfo, pool, opts.stream)
        await hub.start()
        ctx.pool, ctx.hub = pool, hub
        ctx.control = LazyControl(
            settings.mqtt_url,
            settings.mqtt_admin_username,
            settings.mqtt_admin_password,
            ca_file=settings.mqtt_ca_file,
        )
        try:
            yield
        finally:
            await hub.stop()
            await anyio.to_thread.run_sync(ctx.control.close)
            await anyio.to_thread.run_sync(pool.close)
            ctx.pool = ctx.hub = ctx.control = None

    # FastAPIOffline: /docs loads Swagger UI from the package, not a CDN (no network needed).
    app = FastAPIOffline(
        title="Firewatch",
        summary="Urban IoT fire monitoring: alerts, their lifecycle and the live alert stream",
        version="0.1.0",
        lifespan=lifespan,
        # No badge image from the public validator: nothing on /docs leaves this server. No
        # /redoc: ReDoc's page loads its logo from its vendor's CDN whatever it is told.
        swagger_ui_parameters={"validatorUrl": None},
        redoc_url=None,
    )
    routers = (
        alerts.router,
        health.router,
        risk.router,
        supervision.router,
        public.router,
        regions.router,  # the tiered fire-analysis database: /regions, /units, /devices
        units.router,
        auth.router,  # /auth/me, /auth/login, /auth/logout (issue 12)
        devices.router,  # /devices/health, /map: the console's device health and map
        # after devices.router: /devices/{device_id} must not take /devices/health (issue 14)
        device_registry.router,  # /devices, /devices/{id}, /devices/import: the registry
        vendors.router,  # /vendors, /installations: vendors and the units they serve
        unit_registry.router,  # POST /units, PATCH /units/{id}: an admin writes a unit
        console.router,  # / and /console/: the operators' console (issue 12)
        notifications.router,  # POST /notifications/receipts: SMS/voice receipts (issue 12)
        credentials.router,  # /devices/{id}/credentials: broker logins (issue 14)
        vendor_tools.router,  # /dead-letters, /devices/{id}/conformance (issue 14)
        duty_checks.router,  # /devices/{id}/duty-checks: GB/T panels' duty checks (issue 17)
    )
    for router in routers:
        app.include_router(router)
    # Live streams are admitted apart from requests: the routes answering with an event
    # stream, found in the routers themselves (the app keeps included routers opaque).
    streams = frozenset(
        r.path
        for router in routers
        for r in router.routes
        if isinstance(r, APIRoute)
        and isinstance(r.response_class, type)
        and issubclass(r.response_class, EventSourceResponse)
    )
    gate = Gate.of(Limits.of(settings), streams)
    ctx = ApiContext(settings=settings, conninfo=conninfo, options=opts, gate=gate)
    app.state.ctx = ctx
    app.add_middleware(Guard, gate=gate)
    app.add_exception_handler(RequestValidationError, validation_error)

    async def forbidden(_request: Request, exc: Exception) -> JSONResponse:
        # A scope check inside a route (core/access.py): the role may, this record is not theirs.
        return JSONResponse(status_code=403, content={"detail": str(exc)})

    app.add_exception_handler(Forbidden, forbidden)

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
