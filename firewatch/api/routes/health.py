"""``GET /health``: is the database reachable (for compose healthchecks and probes)."""

from __future__ import annotations

import psycopg
import psycopg_pool
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from firewatch.api.deps import Context
from firewatch.api.schemas import HealthOut
from firewatch.storage.database import ping

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "the database is unreachable"}},
)
def health(ctx: Context) -> JSONResponse:
    """200 when a pooled connection answers a query, else 503 saying why. The stream
    listener's state is reported but does not fail the check: streams poll meanwhile."""
    hub = ctx.require_hub()
    listener = "listening" if hub.listening else "reconnecting"
    try:
        with ctx.require_pool().connection(timeout=ctx.options.pool_timeout_s) as conn:
            ping(conn)
    except (psycopg.Error, psycopg_pool.PoolTimeout) as err:
        body = HealthOut(
            status="unavailable",
            database=f"unreachable: {err}",
            stream_listener=listener,
            stream_clients=hub.subscribers,
        )
        return JSONResponse(status_code=503, content=body.model_dump())
    body = HealthOut(
        status="ok", database="ok", stream_listener=listener, stream_clients=hub.subscribers
    )
    return JSONResponse(content=body.model_dump())
