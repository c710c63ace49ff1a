"""The tier routes over ASGI against the seeded demo city: the region tree, a region with
its children, units by region and class, a unit with masked phones, and rollups of a
region, a unit and a device; 404 for unknown ids, 422 for bad ranges."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.analysis.refresh import Rollups
from firewatch.core.settings import Settings
from firewatch.storage.rollup_tiers import day_start
from tests.builders import city
from tests.builders.rollups import Clock, ingest, settle
from tests.builders.rows import water_row

pytestmark = pytest.mark.anyio

H = timedelta(hours=1)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


# --- regions and units ------------------------------------------------------------------
async def test_the_region_tree_counts_units_at_every_level(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    r = await client.get("/regions")
    assert r.status_code == 200
    (root,) = r.json()
    total = db.execute("SELECT count(*) FROM units").fetchone()
    assert total is not None
    assert (root["id"], root["level"], root["units"]) == ("xuchang", "city", total[0])
    assert [d["id"] for d in root["children"]] == sorted(d["id"] for d in root["children"])
    weidu = next(d for d in root["children"] if d["id"] == "weidu")
    assert [(s["id"], s["units"]) for s in weidu["children"]] == [
        ("weidu-nanguan", 1),
        ("weidu-ximajie", 2),
    ]
    assert weidu["units"] == 3
    assert sum(d["units"] for d in root["children"]) == root["units"]


async def test_a_region_with_its_children_and_a_street_with_its_units(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/regions/weidu")
    assert r.status_code == 200
    body = r.json()
    assert (body["parent_id"], body["level"], body["units"]) == ("xuchang", "district", 3)
    assert [c["id"] for c in body["children"]] == ["weidu-nanguan", "weidu-ximajie"]
    assert body["unit_list"] is None
    street = (await client.get("/regions/weidu-ximajie")).json()
    assert street["parent_id"] == "weidu"
    assert [u["id"] for u in street["unit_list"]] == ["U-WD-001", "U-WD-003"]
    assert (await client.get("/regions/nowhere")).status_code == 404
    assert (await client.get("/regions/nowhere/rollups")).status_code == 404


async def test_units_by_region_and_class(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    r = await client.get("/units", params={"region": "weidu"})
    assert r.status_code == 200
    assert [u["id"] for u in r.json()] == ["U-WD-001", "U-WD-002", "U-WD-003"]
    first = r.json()[0]
    assert (first["street"], first["category"], first["type"]) == (
        "weidu-ximajie",
        "high_risk",
        "commercial_complex",
    )
    db.execute("UPDATE units SET supervision = 'general' WHERE id = 'U-WD-003'")
    ordinary = (await client.get("/units", params={"category": "ordinary"})).json()
    assert [(u["id"], u["category"]) for u in ordinary] == [("U-WD-003", "ordinary")]
    key = (await client.get("/units", params={"region": "xuchang", "category": "key"})).json()
    assert "U-WD-002" in [u["id"] for u in key]
    assert all(u["category"] == "key" for u in key)
    assert len((await client.get("/units", params={"limit": 2})).json()) == 2
    assert (await client.get("/units", params={"region": "nowhere"})).status_code == 404
    assert (await client.get("/units", params={"category": "vip"})).status_code == 422
    assert (await client.get("/units", params={"limit": 0})).status_code == 422


async def test_a_unit_with_its_devices_and_its_phones_whole_for_the_center(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get(f"/units/{city.UNIT}")
    assert r.status_code == 200
    body = r.json()
    assert (body["district"], body["street"], body["building_class"]) == (
        "weidu",
        "weidu-ximajie",
        "class1_highrise",
    )
    # the monitoring center calls the unit: it sees the numbers (an admin here)
    assert body["responsible"] == {"name": "张伟", "phone": "13800000001"}
    assert body["maintenance"]["phone"] == "13800000002"
    assert [d["id"] for d in body["devices"]] == sorted(
        [city.PANEL, city.WATER, city.WATER_2, city.SHED]
    )
    assert (body["latitude"], body["longitude"]) == (34.037, 113.834)  # the seed's
    assert (await client.get("/units/U-NOPE")).status_code == 404


# --- rollups ----------------------------------------------------------------------------
@pytest.fixture
def rolled_up(settings: Settings, db: psycopg.Connection[Any]) -> datetime:
    """Two hours of readings of the seeded water point rolled up; the first hour."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 30 * H
    ingest(
        db,
        [
            water_row(city.WATER, hour + i * 120 * timedelta(seconds=1), 90.0, seq=i)
            for i in range(60)
        ],
    )
    r = Rollups(settings, clock=Clock(time.time()))
    r.load_limits(db)
    settle(r, db)
    return hour


async def test_rollups_of_a_device_a_unit_and_a_region(
    client: httpx.AsyncClient, rolled_up: datetime
) -> None:
    hour = rolled_up
    params = {"grain": "hour", "from": iso(hour), "to": iso(hour + 2 * H)}
    for path, tier, subject in (
        (f"/devices/{city.WATER}/rollups", "device", city.WATER),
        (f"/units/{city.UNIT}/rollups", "unit", city.UNIT),
        ("/regions/weidu/rollups", "district", "weidu"),
        ("/regions/xuchang/rollups", "city", "xuchang"),
    ):
        r = await client.get(path, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["tier"], body["subject_id"], body["grain"]) == (tier, subject, "hour")
        assert datetime.fromisoformat(body["from"]) == hour
        assert datetime.fromisoformat(body["to"]) == hour + 2 * H
        got = [(x["bucket"], x["pressure_samples"], x["pressure_low_min"]) for x in body["rollups"]]
        assert [g[1] for g in got] == [30, 30]
        assert got[0][2] == pytest.approx(60.0)
        assert body["rollups"][0]["revision"] == 1
        assert body["rollups"][0]["ack_mean_s"] is None
    day = await client.get(f"/units/{city.UNIT}/rollups")  # days, the last 30 by default
    assert day.status_code == 200
    buckets = [datetime.fromisoformat(x["bucket"]) for x in day.json()["rollups"]]
    assert day_start(hour, 8) in buckets


async def test_a_date_range_is_whole_local_days(
    client: httpx.AsyncClient, rolled_up: datetime
) -> None:
    local_day = (rolled_up + 8 * H).date().isoformat()
    r = await client.get(f"/units/{city.UNIT}/rollups", params={"from": local_day, "to": local_day})
    assert r.status_code == 200
    body = r.json()
    start = datetime.fromisoformat(body["from"])
    assert datetime.fromisoformat(body["to"]) - start == timedelta(days=1)
    assert start == day_start(rolled_up, 8)
    assert len(body["rollups"]) == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-11-05", "to": "2026-11-01"}, "must be before to"),
        ({"grain": "hour", "from": "2026-10-01", "to": "2026-11-05"}, "at most 31 days"),
        ({"from": "2024-01-01", "to": "2026-11-05"}, "at most 400 days"),
        ({"from": "2026-11-05T08:00:00"}, "needs its UTC offset"),
        ({"from": "yesterday"}, "not a date"),
    ],
)
async def test_bad_ranges_are_422_saying_why(
    client: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    for path in (
        f"/units/{city.UNIT}/rollups",
        "/regions/weidu/rollups",
        f"/devices/{city.WATER}/rollups",
    ):
        r = await client.get(path, params=params)
        assert r.status_code == 422, (path, r.text)
        assert message in r.json()["detail"]


async def test_unknown_subjects_and_grains(client: httpx.AsyncClient) -> None:
    assert (await client.get("/devices/D-NOPE/rollups")).status_code == 404
    assert (await client.get("/units/U-NOPE/rollups")).status_code == 404
    r = await client.get(f"/units/{city.UNIT}/rollups", params={"grain": "week"})
    assert r.status_code == 422
