"""``/units`` and ``/devices/{id}/rollups``: units by region and supervision class, one unit
with its location, contacts and devices, and a unit's or a device's rollups (read-only;
docs/analysis.md), and a unit's recent telemetry for the console's charts. Units are written
by ``firewatch registry import-units``.

Who may (``firewatch/core/access.py``): the unit list is the registry's (center and fire
department); one unit, its rollups and telemetry also its own manager; a device's rollups
also its vendor. Phones are shown whole to those who call the unit (the monitoring center,
the unit itself) and masked to everyone else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status

from firewatch.api.console_schemas import SeriesOut, TelemetryOut
from firewatch.api.deps import Conn, Context, DeviceReader, RegistryReader, UnitReader
from firewatch.api.routes.regions import FromQuery, GrainQuery, ToQuery, rollups_of
from firewatch.api.schemas import ErrorOut
from firewatch.api.tier_schemas import (
    RollupsOut,
    UnitOut,
    UnitSummaryOut,
    contact_out,
)
from firewatch.core.access import Forbidden, check_device, check_unit, unit_scope, vendor_scope
from firewatch.core.people import Role
from firewatch.core.rollups import Grain
from firewatch.storage import device_health
from firewatch.storage import regions as registry

#: Who sees a unit's contacts' phones whole: they call the unit.
_CALLERS = frozenset({Role.OPERATOR, Role.SHIFT_LEADER, Role.ADMIN, Role.UNIT})

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
    _person: RegistryReader,
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
def get_unit(conn: Conn, person: UnitReader, unit_id: UnitId) -> UnitOut:
    """A unit with its district, address, location, contacts and devices. The contacts'
    phones are whole for the monitoring center and the unit itself, masked for others."""
    check_unit(person, unit_id)
    found = registry.find_unit(conn, unit_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no unit {unit_id!r}")
    full = person.role in _CALLERS
    return UnitOut.model_validate(
        {
            **found,
            "responsible": contact_out(found["responsible"], full_phone=full),
            "maintenance": contact_out(found["maintenance"], full_phone=full),
        }
    )


@router.get("/units/{unit_id}/telemetry", response_model=TelemetryOut, responses=_UNIT_404)
def unit_telemetry(
    conn: Conn,
    person: UnitReader,
    unit_id: UnitId,
    hours: Annotated[float, Query(gt=0, le=24 * 31, description="How far back.")] = 24,
) -> TelemetryOut:
    """The unit's devices' recent telemetry for charts: water pressure and tank level,
    shed ambient and hottest-port temperatures, averaged into at most 240 points each."""
    check_unit(person, unit_id)
    if not registry.unit_exists(conn, unit_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no unit {unit_id!r}")
    until = datetime.now(UTC)
    since = until - timedelta(hours=hours)
    series = device_health.unit_telemetry(conn, unit_id, since, until)
    return TelemetryOut(
        unit_id=unit_id,
        since=since,
        until=until,
        series=[SeriesOut.model_validate(s) for s in series],
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
    person: UnitReader,
    unit_id: UnitId,
    grain: GrainQuery = Grain.DAY,
    start: FromQuery = None,
    to: ToQuery = None,
) -> RollupsOut:
    """The unit's rollups (the sums over its devices) over ``[from, to)``: at most 400
    days of days or 31 days of hours per request."""
    check_unit(person, unit_id)
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
    person: DeviceReader,
    device_id: DeviceId,
    grain: GrainQuery = Grain.DAY,
    start: FromQuery = None,
    to: ToQuery = None,
) -> RollupsOut:
    """The device's rollups over ``[from, to)``: at most 400 days of days or 31 days of
    hours per request."""
    owner = device_health.device_owner(conn, device_id)
    if owner is None:
        if unit_scope(person) is not None or vendor_scope(person) is not None:
            # The scope must not reveal which ids exist (docs/people.md): the same 403.
            raise Forbidden("that device is outside your scope")
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
    check_device(person, *owner)
    return rollups_of(conn, ctx.settings, "device", device_id, grain, start, to)
