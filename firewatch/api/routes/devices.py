"""``/devices/health`` and ``/map``: the console's device-health table and its one map
(issue 12; docs/console.md).

Device health is for the monitoring center, the fire department, and the scoped roles on
their own devices: a unit's manager sees its unit's, a vendor its own devices (the filters
are forced to the scope). The map is the registry's view of the whole city: units at their
coordinates over district outlines (``firewatch/core/outlines.py``), with open alerts and
risk levels."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from firewatch.api.console_schemas import (
    DeviceHealthOut,
    MapOut,
    MapRegionOut,
    MapUnitOut,
)
from firewatch.api.deps import Conn, DeviceReader, RegistryReader
from firewatch.api.schemas import ErrorOut
from firewatch.core.access import unit_scope, vendor_scope
from firewatch.core.outlines import outline
from firewatch.storage import device_health as store
from firewatch.storage import regions as registry

router = APIRouter(tags=["devices"])

Text = Annotated[str | None, Query(min_length=1, max_length=200)]


@router.get(
    "/devices/health",
    response_model=list[DeviceHealthOut],
    responses={404: {"model": ErrorOut, "description": "no region has that id"}},
)
def device_health(
    conn: Conn,
    person: DeviceReader,
    region: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="A city, district or street id."),
    ] = None,
    unit_id: Text = None,
    problems: Annotated[
        bool, Query(description="Only devices offline, faulty or with isolated components.")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[DeviceHealthOut]:
    """Devices with their latest status, last contact and active faults, isolations and
    offline alerts, by unit. A unit's manager gets its own unit's, a vendor its own."""
    if region is not None and registry.region_exists(conn, region) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no region {region!r}")
    own_unit = unit_scope(person)
    if own_unit is not None and unit_id not in (None, own_unit):
        return []
    rows = store.device_health(
        conn,
        unit_id=own_unit or unit_id,
        vendor=vendor_scope(person),
        region=region,
        limit=limit,
    )
    out = [DeviceHealthOut.model_validate(r) for r in rows]
    if problems:
        out = [
            d
            for d in out
            if d.status == "offline" or d.open_faults or d.isolated or d.offline_alerts
        ]
    return out


@router.get("/map", response_model=MapOut)
def city_map(conn: Conn, _person: RegistryReader) -> MapOut:
    """Every unit with coordinates (open alerts, worst severity, risk level) and every
    district's outline: the hull of its units, widened (no tile server, no boundary file)."""
    units = [MapUnitOut.model_validate(u) for u in store.map_units(conn)]
    where: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for u in units:
        if u.district_id is not None:
            where[u.district_id].append((u.longitude, u.latitude))
    regions = [
        MapRegionOut(id=d["id"], name=d["name"], level="district", outline=outline(where[d["id"]]))
        for d in store.districts(conn)
        if where.get(d["id"])
    ]
    return MapOut(regions=regions, units=units)
