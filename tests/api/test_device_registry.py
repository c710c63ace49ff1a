"""The registry's write API over HTTP (routes/device_registry.py, vendors.py,
unit_registry.py): an admin registers a vendor and its installations, a vendor registers
and imports its devices within its scope and never sees another vendor's, the CSV import
answers a report per row, and the body's size, type and encoding are refused clearly."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from firewatch.core.people import Role
from tests.builders import city
from tests.builders.people import as_role
from tests.helpers import scalar

pytestmark = pytest.mark.anyio

CSV = {"Content-Type": "text/csv"}


#: The vendors the demo seed registers (from its devices), with the units they serve.
SEEDED = {
    "acme": ["U-CG-001", "U-WD-001", "U-WD-002", "U-WD-003", "U-XC-001", "U-YZ-001"],
    "gst": ["U-CG-001", "U-JA-001", "U-WD-001", "U-XC-001"],
    "tanda": ["U-WD-002", "U-YL-001", "U-YZ-001"],
    "volt": ["U-CG-001", "U-JA-001", "U-WD-001", "U-WD-003", "U-YL-001"],
}


@pytest.fixture
async def testco(client: httpx.AsyncClient, db: psycopg.Connection[Any]) -> dict[str, str]:
    """Vendors testco (serving U-WD-002) and othco (serving U-WD-001), registered over the
    API by the admin beside the seed's (acme, gst, tanda, volt: none of their devices is
    testco's); testco's person's headers."""
    for vendor, name, unit in (("testco", "Test Co", "U-WD-002"), ("othco", "Oth Co", city.UNIT)):
        r = await client.post("/vendors", json={"id": vendor, "name": name})
        assert r.status_code == 201, r.text
        r = await client.post(f"/vendors/{vendor}/installations", json={"unit_id": unit})
        assert r.status_code == 201, r.text
    return as_role(db, Role.VENDOR, username="testco-ops", vendor="testco")


async def test_an_admin_registers_vendors_and_their_installations(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, testco: dict[str, str]
) -> None:
    for vendor in ("testco", "acme"):  # acme: the seed's
        r = await client.post("/vendors", json={"id": vendor, "name": "Again"})
        assert r.status_code == 409
        assert r.json()["detail"] == f"vendor '{vendor}' is already registered"
        r = await client.post(f"/vendors/{vendor}/installations", json={"unit_id": "U-WD-002"})
        assert r.status_code == 409
        assert f"{vendor} already serves U-WD-002" in r.json()["detail"]
    r = await client.post("/vendors/testco/installations", json={"unit_id": "U-NOWHERE"})
    assert (r.status_code, r.json()["detail"]) == (404, "no unit 'U-NOWHERE'")
    listed = (await client.get("/vendors")).json()
    assert [(v["id"], v["units"]) for v in listed] == sorted(
        {**SEEDED, "testco": ["U-WD-002"], "othco": [city.UNIT]}.items()
    )

    # a vendor sees itself only, and cannot write the registry's vendors
    assert [v["id"] for v in (await anon.get("/vendors", headers=testco)).json()] == ["testco"]
    assert (await anon.get("/vendors/testco/installations", headers=testco)).status_code == 200
    for path in (
        "/vendors/othco",
        "/vendors/acme",
        "/vendors/nobody",
        "/vendors/othco/installations",
        "/vendors/acme/installations",
    ):
        r = await anon.get(path, headers=testco)
        assert r.status_code == 403, path
        assert "outside your scope (you are testco)" in r.json()["detail"]
    r = await anon.post(
        "/vendors/testco/installations", json={"unit_id": city.UNIT}, headers=testco
    )
    assert r.status_code == 403

    (installation,) = (await client.get("/vendors/testco/installations")).json()
    r = await client.post(f"/installations/{installation['id']}/end", json={"note": "over"})
    assert r.status_code == 200
    assert r.json()["until"] is not None
    r = await client.post(f"/installations/{installation['id']}/end")
    assert r.status_code == 409
    assert (await client.post("/installations/999999/end")).status_code == 404
    assert (await client.get("/vendors/testco")).json()["units"] == []
    assert (await client.get("/vendors/acme")).json()["units"] == SEEDED["acme"]


async def test_a_vendor_cannot_see_or_touch_another_vendors_devices(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, testco: dict[str, str]
) -> None:
    # testco's own: registered into a unit it serves, always as testco's
    body = {"id": "D-A-1", "unit_id": "U-WD-002", "kind": "water", "metadata": {"design_kpa": 900}}
    r = await anon.post("/devices", json=body, headers=testco)
    assert r.status_code == 201, r.text
    assert (r.json()["vendor"], r.json()["metadata"]) == ("testco", {"design_kpa": 900})
    r = await anon.post(
        "/devices", json={**body, "id": "D-A-2", "unit_id": "U-JA-001"}, headers=testco
    )
    assert r.status_code == 403
    assert "testco does not serve unit 'U-JA-001'" in r.json()["detail"]
    for other in ("othco", "volt"):
        r = await anon.post(
            "/devices", json={**body, "id": "D-A-3", "vendor": other}, headers=testco
        )
        assert (r.status_code, r.json()["detail"]) == (
            403,
            f"vendor '{other}' is not yours: you register devices as testco",
        )
    r = await anon.post("/devices", json={**body, "id": city.SHED}, headers=testco)
    assert (r.status_code, r.json()["detail"]) == (409, f"device id '{city.SHED}' is taken")

    # only its own, not the seed's devices of the unit it serves (D-WD-002-P1, -W1)
    listed = (await anon.get("/devices", params={"limit": 1000}, headers=testco)).json()
    assert [(d["id"], d["vendor"]) for d in listed] == [("D-A-1", "testco")]
    assert (await anon.get("/devices", params={"vendor": "volt"}, headers=testco)).json() == []

    # volt's shed, acme's pressure point in testco's unit, and an id nobody has: the same
    # 403, so ids do not leak
    for device in (city.SHED, "D-WD-002-W1", "D-NOBODY"):
        calls: list[tuple[str, str, Any]] = [
            ("GET", f"/devices/{device}", None),
            ("PATCH", f"/devices/{device}", {"model": "x"}),
            ("POST", f"/devices/{device}/decommission", None),
        ]
        for method, path, sent in calls:
            r = await anon.request(method, path, headers=testco, json=sent)
            assert r.status_code == 403, (method, path)
            assert r.json()["detail"] == "that device is not one of testco's"
    assert (await client.get("/devices/D-NOBODY")).status_code == 404
    for device in (city.SHED, "D-WD-002-W1"):
        seeded = (await client.get(f"/devices/{device}")).json()
        assert (seeded["model"], seeded["decommissioned_at"]) == ("", None)

    # its own device: changed, moved only into units it serves, decommissioned
    r = await anon.patch(
        "/devices/D-A-1", json={"model": "PT-9", "metadata": {"point": "roof"}}, headers=testco
    )
    assert r.status_code == 200
    assert r.json()["metadata"] == {"design_kpa": 900, "point": "roof"}
    r = await anon.patch("/devices/D-A-1", json={"unit_id": city.UNIT}, headers=testco)
    assert r.status_code == 403
    assert "testco does not serve unit 'U-WD-001'" in r.json()["detail"]
    r = await anon.post("/devices/D-A-1/decommission", json={"note": "broken"}, headers=testco)
    assert r.status_code == 200
    done = r.json()
    assert (done["decommissioned_by"], done["decommission_note"]) == ("testco-ops", "broken")
    r = await anon.post("/devices", json=body, headers=testco)
    assert r.status_code == 409
    assert "ids are never reused" in r.json()["detail"]
    assert (await anon.patch("/devices/D-A-1", json={}, headers=testco)).status_code == 409


async def test_the_other_roles_read_the_registry_in_their_scope(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    manager = as_role(db, Role.UNIT, username="wd2", unit_id="U-WD-002")
    listed = (await anon.get("/devices", headers=manager)).json()
    assert {d["unit_id"] for d in listed} == {"U-WD-002"}
    assert (await anon.get(f"/devices/{city.WATER}", headers=manager)).status_code == 403
    assert (await anon.get("/devices/D-NOBODY", headers=manager)).status_code == 403
    operator = as_role(db, Role.OPERATOR)
    r = await anon.get("/devices", params={"unit_id": city.UNIT, "kind": "water"}, headers=operator)
    assert [d["id"] for d in r.json()] == [city.WATER, city.WATER_2]
    page = await anon.get("/devices", params={"after": city.WATER, "limit": 1}, headers=operator)
    assert [d["id"] for d in page.json()] == [city.WATER_2]
    r = await anon.post("/devices", json={}, headers=operator)
    assert r.status_code == 403
    # /devices/health is still its own route, not a device called "health"
    health = await anon.get("/devices/health", headers=operator)
    assert health.status_code == 200
    assert isinstance(health.json(), list)


async def test_a_csv_import_reports_each_row_and_writes_the_good_ones(
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    testco: dict[str, str],
    db: psycopg.Connection[Any],
) -> None:
    text = (
        "id,unit_id,kind,vendor,model,design_kpa\n"
        "D-A-1,U-WD-002,water,,PT-1,900\n"
        "D-A-2,U-WD-002,boiler,,,\n"
        "D-A-3,U-JA-001,water,,,\n"
        "D-A-1,U-WD-002,water,,,\n"
        "D A,U-WD-002,water,,,\n"
        f"{city.SHED},{city.UNIT},ebike_shed,,,\n"
    )
    r = await anon.post(
        "/devices/import", content=text, headers={**testco, **CSV}, params={"dry_run": True}
    )
    assert r.status_code == 200, r.text
    assert r.json()["dry_run"] is True
    assert r.json()["summary"] == {"created": 1, "updated": 0, "unchanged": 0, "rejected": 5}
    assert scalar(db, "SELECT count(*) FROM devices WHERE id = 'D-A-1'") == 0

    r = await anon.post("/devices/import", content=text, headers={**testco, **CSV})
    assert r.status_code == 200
    rows = [(x["line"], x["id"], x["outcome"], x.get("reason")) for x in r.json()["rows"]]
    assert rows == [
        (2, "D-A-1", "created", None),
        (3, "D-A-2", "rejected", "unknown kind 'boiler' (panel, water, ebike_shed)"),
        (
            4,
            "D-A-3",
            "rejected",
            "testco does not serve unit 'U-JA-001' (no open installation; an admin opens one)",
        ),
        (5, "D-A-1", "rejected", "duplicate id: already on line 2"),
        (6, "D A", "rejected", "id 'D A' is not [A-Za-z0-9_.-]{1,64}"),
        (7, city.SHED, "rejected", f"device '{city.SHED}' is not one of testco's"),
    ]
    created = (await client.get("/devices/D-A-1")).json()
    assert (created["vendor"], created["model"]) == ("testco", "PT-1")


async def test_an_import_body_that_is_not_a_devices_csv_is_refused_clearly(
    client: httpx.AsyncClient, settings: Any
) -> None:
    async def post(content: bytes, headers: dict[str, str]) -> httpx.Response:
        return await client.post("/devices/import", content=content, headers=headers)

    r = await client.post("/devices/import", json={"id": "D-1"})
    assert r.status_code == 415
    assert "Content-Type: text/csv" in r.json()["detail"]
    r = await post(b"id,unit_id,kind\n", {"Content-Type": "text/csv; charset=gbk"})
    assert (r.status_code, "only UTF-8" in r.json()["detail"]) == (415, True)
    r = await post("id,unit_id,kind\nD-1,许昌,panel\n".encode("gbk"), CSV)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("not UTF-8")
    r = await post(b"id,unit_id\nD-1,U-1\n", CSV)
    assert (r.status_code, r.json()["detail"]) == (422, "missing column(s): kind")
    r = await post(b"", CSV)
    assert (r.status_code, r.json()["detail"]) == (422, "the file is empty: expected a header row")
    big = b"id,unit_id,kind\n" + b"D-0000000001,U-WD-001,panel\n" * 3000
    assert len(big) > settings.api_max_body_bytes
    r = await post(big, CSV)
    assert r.status_code == 413
    assert "larger than" in r.json()["detail"]


async def test_an_admin_writes_units(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    unit = {
        "id": "U-WD-201",
        "name": "许昌宾馆",
        "street": "weidu-nanguan",
        "category": "key",
        "type": "hotel",
        "building_class": "multistorey",
        "latitude": 34.02,
        "longitude": 113.83,
        "responsible": {"name": "李娜", "phone": "+86 138 0000 1111"},
    }
    r = await client.post("/units", json=unit)
    assert r.status_code == 201, r.text
    assert r.json()["responsible"] == {"name": "李娜", "phone": "13800001111"}
    assert (await client.post("/units", json=unit)).status_code == 409
    r = await client.post("/units", json={**unit, "id": "U-WD-202", "street": "nowhere"})
    assert (r.status_code, r.json()["detail"]) == (422, "unknown street 'nowhere'")
    r = await client.post("/units", json={**unit, "id": "U-WD-203", "building_class": "castle"})
    assert r.status_code == 422

    r = await client.patch("/units/U-WD-201", json={"name": "许昌大宾馆", "responsible": None})
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["responsible"], r.json()["latitude"]) == (
        "许昌大宾馆",
        None,
        34.02,
    )
    r = await client.patch("/units/U-WD-201", json={"latitude": None})
    assert r.status_code == 422
    assert "latitude and longitude must both be given" in r.json()["detail"]
    assert (await client.patch("/units/U-NOPE", json={})).status_code == 404
    events = db.execute(
        "SELECT event FROM registry_events WHERE subject = 'unit' ORDER BY id"
    ).fetchall()
    assert [e for (e,) in events] == ["created", "updated"]
