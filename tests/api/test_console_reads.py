"""The console's reads over ASGI (issue 12): a unit's telemetry as chart series, device
health by unit and district, and the one map with district outlines drawn from the units
(storage/device_health.py, core/outlines.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.core.domain import Severity
from firewatch.core.outlines import outline
from firewatch.core.people import Role
from firewatch.storage.alerts import raise_alert
from firewatch.storage.seed import read_seed
from tests.builders import city
from tests.builders.alerts import new_alert
from tests.builders.people import as_role
from tests.builders.rollups import ingest
from tests.builders.rows import shed_row, water_row

pytestmark = pytest.mark.anyio


async def test_telemetry_is_bucketed_into_chart_series_per_device_and_metric(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [
        water_row(city.WATER, now - timedelta(minutes=m), 300.0 + m, level=3.0, seq=m)
        for m in range(1, 121)
    ]
    rows += [shed_row(city.SHED, now - timedelta(minutes=5), [31.0, 48.5, 29.0], [0.5, 2.0, 0.0])]
    ingest(db, rows)

    r = await client.get(f"/units/{city.UNIT}/telemetry", params={"hours": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    series = {(s["device_id"], s["metric"]): s for s in body["series"]}
    assert set(series) == {
        (city.WATER, "pressure_kpa"),
        (city.WATER, "level_m"),
        (city.SHED, "ambient_c"),
        (city.SHED, "port_temp_max_c"),
    }  # the other water point sent nothing: no series for it
    pressure = series[(city.WATER, "pressure_kpa")]
    assert pressure["unit"] == "kPa"
    assert 1 < len(pressure["points"]) <= 240
    # buckets average what fell in them: never outside the readings' range
    values = [v for _, v in pressure["points"]]
    assert min(values) >= 301.0
    assert max(values) <= 420.0
    times = [datetime.fromisoformat(t) for t, _ in pressure["points"]]
    assert times == sorted(times)
    assert series[(city.SHED, "port_temp_max_c")]["points"][0][1] == 48.5

    r = await client.get(f"/units/{city.UNIT}/telemetry", params={"hours": 0})
    assert r.status_code == 422
    assert (await client.get("/units/U-NOPE/telemetry")).status_code == 404


async def test_device_health_shows_offline_faulty_and_isolated_devices(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    now = datetime.now(UTC)
    db.execute(
        "INSERT INTO device_state (device_id, state, ts, seq) VALUES (%s, 'offline', %s, 1)",
        (city.SHED, now),
    )
    db.execute(
        "INSERT INTO device_last_seen (device_id, last_rx) VALUES (%s, %s)", (city.WATER, now)
    )
    raise_alert(
        db,
        type="component_isolated",
        severity="medium",
        unit_id=city.UNIT,
        device_id=city.PANEL,
        seen_at=now.timestamp(),
        explanation="detector 1004 isolated",
    )
    raise_alert(
        db,
        type="power_fault",
        severity="high",
        unit_id=city.UNIT,
        device_id=city.WATER,
        seen_at=now.timestamp(),
        explanation="mains lost",
    )

    r = await client.get("/devices/health", params={"unit_id": city.UNIT})
    assert r.status_code == 200, r.text
    by_id = {d["device_id"]: d for d in r.json()}
    assert set(by_id) == {city.PANEL, city.WATER, city.WATER_2, city.SHED}
    assert by_id[city.SHED]["status"] == "offline"
    assert by_id[city.PANEL]["isolated"] == 1
    assert by_id[city.PANEL]["open_faults"] == 0
    assert by_id[city.WATER]["open_faults"] == 1
    assert by_id[city.WATER]["last_seen"] is not None
    assert by_id[city.WATER_2]["status"] is None  # never heard from
    assert (by_id[city.WATER]["district_id"], by_id[city.WATER]["street_id"]) == (
        "weidu",
        "weidu-ximajie",
    )
    problems = await client.get("/devices/health", params={"region": "weidu", "problems": "true"})
    assert {d["device_id"] for d in problems.json()} == {city.PANEL, city.WATER, city.SHED}
    assert (await client.get("/devices/health", params={"region": "nowhere"})).status_code == 404


async def test_the_map_draws_units_over_district_outlines(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    seeded = read_seed()
    spots = {u.id: (u.longitude, u.latitude) for u in seeded.units}
    db.execute("UPDATE units SET longitude = NULL, latitude = NULL WHERE id = 'U-XC-001'")
    fire = new_alert(db, unit="U-WD-002", type_="fire_alarm", severity=Severity.CRITICAL)
    new_alert(db, unit="U-WD-002")
    operator = as_role(db, Role.OPERATOR)

    r = await anon.get("/map", headers=operator)
    assert r.status_code == 200, r.text
    body = r.json()
    units = {u["id"]: u for u in body["units"]}
    assert set(units) == set(spots) - {"U-XC-001"}  # a unit without coordinates is not drawn
    assert (units["U-WD-002"]["open_alerts"], units["U-WD-002"]["max_severity"]) == (
        2,
        fire.severity.value,
    )
    assert (units["U-WD-001"]["open_alerts"], units["U-WD-001"]["max_severity"]) == (0, None)
    regions = {g["id"]: g for g in body["regions"]}
    # every district with a drawn unit; xiangcheng's only unit has no coordinates
    assert set(regions) == {"weidu", "jianan", "yuzhou", "changge", "yanling"}
    weidu = [spots[u] for u in ("U-WD-001", "U-WD-002", "U-WD-003")]
    assert regions["weidu"]["outline"] == outline(weidu)  # type: ignore[arg-type]
    assert (
        await anon.get("/map", headers=as_role(db, Role.VENDOR, vendor="acme"))
    ).status_code == 403


def test_an_outline_holds_every_unit_with_a_margin() -> None:
    points = [(113.8, 34.0), (113.9, 34.1), (113.85, 34.2), (113.82, 34.05)]
    ring = outline(points, margin=0.01)
    assert ring[0] == ring[-1]
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    assert (min(xs), max(xs)) == pytest.approx((113.79, 113.91))
    assert (min(ys), max(ys)) == pytest.approx((33.99, 34.21))
    assert (113.82, 34.05) not in [tuple(p) for p in ring]  # an inner unit is no corner
    assert len(outline([(113.8, 34.0)])) == 5  # one unit: a square around it
    assert outline([]) == []
