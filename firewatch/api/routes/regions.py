"""``/regions``: the region tree (city → district → street), one region with its children,
and a region's rollups (read-only; docs/analysis.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, status

from firewatch.api.deps import Conn, Context, allow
from firewatch.api.schemas import ErrorOut
from firewatch.api.tier_schemas import (
    RegionNodeOut,
    RegionOut,
    RollupOut,
    RollupsOut,
    rollup_range,
)
from firewatch.core.access import Access
from firewatch.core.rollups import Grain, day_offset_h
from firewatch.core.settings import Settings
from firewatch.storage import regions as registry
from firewatch.storage.rollups import read_rollup_rows

# The registry's tiers: the monitoring center and the fire department (core/access.py).
router = APIRouter(
    prefix="/regions", tags=["regions"], dependencies=[Depends(allow(Access.REGISTRY_READ))]
)

RegionId = Annotated[
    str, Path(min_length=1, max_length=200, description="A region id: city, district or street.")
]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no region has that id"}
}
_RANGE: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "a bad range: from not before to, or too long"}
}

GrainQuery = Annotated[Grain, Query(description="hour or day")]
FromQuery = Annotated[
    str | None,
    Query(
        alias="from",
        max_length=64,
        description="A date (its local day's start) or a time with offset; default: 30 days "
        "(day) or 24 hours (hour) before to.",
    ),
]
ToQuery = Annotated[
    str | None,
    Query(
        max_length=64,
        description="A date (up to the end of that local day) or a time with offset "
        "(exclusive); default: now.",
    ),
]


def offset_h(settings: Settings) -> int:
    """Where local days start (``core/rollups.py``); a setting the refresh would refuse
    (not whole hours) is rounded here, so that a read never fails on it."""
    try:
        return day_offset_h(settings)
    except ValueError:
        return round(settings.analytics_utc_offset_h)


def rollups_of(
    conn: psycopg.Connection[Any],
    settings: Settings,
    tier: str,
    subject_id: str,
    grain: Grain,
    start: str | None,
    end: str | None,
) -> RollupsOut:
    """The response of every ``…/rollups`` endpoint (the subject exists)."""
    begin, stop = rollup_range(
        grain, start, end, offset_h=offset_h(settings), now=datetime.now(UTC)
    )
    rows = read_rollup_rows(conn, tier, subject_id, grain, begin, stop)
    return RollupsOut(
        tier=tier,
        subject_id=subject_id,
        grain=grain,
        from_=begin,
        to=stop,
        rollups=[RollupOut.of(r) for r in rows],
    )


@router.get("", response_model=list[RegionNodeOut])
def region_tree(conn: Conn) -> list[RegionNodeOut]:
    """Every region as a tree from the city down to its streets, with how many units each
    holds (its own and below)."""
    return [RegionNodeOut.model_validate(n) for n in registry.region_tree(conn)]


@router.get("/{region_id}", response_model=RegionOut, responses=_NOT_FOUND)
def get_region(conn: Conn, region_id: RegionId) -> RegionOut:
    """A region with its parent, its direct children and their unit counts; a street also
    lists its units."""
    found = registry.find_region(conn, region_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no region {region_id!r}")
    return RegionOut.model_validate(found)


@router.get(
    "/{region_id}/rollups",
    response_model=RollupsOut,
    response_model_by_alias=True,
    responses={**_NOT_FOUND, **_RANGE},
)
def region_rollups(
    conn: Conn,
    ctx: Context,
    region_id: RegionId,
    grain: GrainQuery = Grain.DAY,
    start: FromQuery = None,
    to: ToQuery = None,
) -> RollupsOut:
    """The region's rollups (the sums over its units) of one grain over ``[from, to)``:
    at most 400 days of days or 31 days of hours per request."""
    level = registry.region_exists(conn, region_id)
    if level is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no region {region_id!r}")
    return rollups_of(conn, ctx.settings, level, region_id, grain, start, to)
