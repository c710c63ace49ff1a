"""``/units`` and ``/devices/{id}/rollups``: units by region and supervision class, one unit
with its location, contacts and devices, and a unit's or a device's rollups (read-only;
docs/analysis.md). Units are written by ``firewatch registry import-units`` (no write
endpoint until the API authenticates operators)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status

from firewatch.api.deps import Conn, Context
from firewatch.api.routes.regions import FromQuery, GrainQuery, ToQuery, rollups_of
from firewatch.api.schemas import ErrorOut
from firewatch.api.tier_schemas import (
    RollupsOut,
    UnitOut,
    UnitSummaryOut,
    contact_out,
)
from firewatch.core.rollups import Grain
from firewatch.storage import regions as registry

router = APIRouter(tags=["units"])

UnitId = Annotated[str, Path(min_length=1, max_length=200, description="A unit id.")]
DeviceId = Annotated[str, Path(min_length=1, max_length=200, description="A device id.")]
_UNIT_404: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no unit has that id"}
}
_DEVICE_404: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no registered device has that id"}
}
_RANGE: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "a bad range: from not before to, or too long"}
}


@router.get(
    "/units",
    response_model=list[UnitSummaryOut],
    responses={404: {"model": ErrorOut, "description": "no region has that id"}},
)
def list_units(
    conn: Conn,
    region: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="A city, district or street id."),
    ] = None,
    category: Annotated[
        Literal["high_risk", "key", "ordinary"] | None,
        Query(description="Supervision class."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[UnitSummaryOut]:
    """Units ordered by id, optionally only those in a region (at any level: everything
    below it) and of one supervision class."""
    if region is not None and registry.region_exists(conn, region) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no region {region!r}")
    found = registry.list_units(conn, region=region, category=category, limit=limit)
    return [UnitSummaryOut.model_validate(u) for u in found]


@router.get("/units/{unit_id}", response_model=UnitOut, responses=_UNIT_404)
def get_unit(conn: Conn, unit_id: UnitId) -> UnitOut:
    """A unit with its district, address, location, contacts (phones masked) and
    devices."""
    found = registry.find_unit(conn, unit_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no unit {unit_id!r}")
    return UnitOut.model_validate(
        {
            **found,
            "responsible": contact_out(found["responsible"]),
            "maintenance": contact_out(found["maintenance"]),
        }
    )


@router.get(
    "/units/{unit_id}/rollups",
    response_model=RollupsOut,
    response_model_by_alias=True,
    responses={**_UNIT_404, **_RANGE},
)
def unit_rollups(
    conn: Conn,
    ctx: Context,
    unit_id: UnitId,
    grain: GrainQuery = Grain.DAY,
    start: FromQuery = None,
    to: ToQuery = None,
) -> RollupsOut:
    """The unit's rollups (the sums over its devices) over ``[from, to)``: at most 400
    days of days or 31 days of hours per request."""
    if not registry.unit_exists(conn, unit_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no unit {unit_id!r}")
    return rollups_of(conn, ctx.settings, "unit", unit_id, grain, start, to)


@router.get(
    "/devices/{device_id}/rollups",
    response_model=RollupsOut,
    response_model_by_alias=True,
    responses={**_DEVICE_404, **_RANGE},
)
def device_rollups(
    conn: Conn,
    ctx: Context,
    device_id: DeviceId,
    grain: GrainQuery = Grain.DAY,
    start: FromQuery = None,
    to: ToQuery = None,
) -> RollupsOut:
    """The device's rollups over ``[from, to)``: at most 400 days of days or 31 days of
    hours per request."""
    if registry.device_unit(conn, device_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
    return rollups_of(conn, ctx.settings, "device", device_id, grain, start, to)
