"""A panel's GB/T address and profile over the registry's API (routes/device_registry.py):
registered, read back (the device and its unit), changed and cleared with PATCH, imported
from CSV, and every refusal a 4xx with its reason (form, kind, profile, an address another
device holds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.api.app import create_app
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from tests.api.conftest import TEST_OPTIONS
from tests.builders import city
from tests.builders.people import as_role

pytestmark = pytest.mark.anyio

HOSPITAL_PANEL = "D-WD-002-P1"  # tanda's, U-WD-002


def _panel(device_id: str, **gbt: Any) -> dict[str, Any]:
    return {"id": device_id, "unit_id": city.UNIT, "kind": "panel", **gbt}


async def test_a_panel_is_registered_read_and_changed_with_its_address(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        "/devices", json=_panel("D-NEW-P", gbt_address="00A1B2C3D4E5", gbt_profile="year-first")
    )
    assert r.status_code == 201, r.text
    assert (r.json()["gbt_address"], r.json()["gbt_profile"]) == ("00a1b2c3d4e5", "year-first")
    got = (await client.get("/devices/D-NEW-P")).json()
    assert (got["gbt_address"], got["gbt_profile"]) == ("00a1b2c3d4e5", "year-first")
    water = (await client.get(f"/devices/{city.WATER}")).json()
    assert (water["gbt_address"], water["gbt_profile"]) == (None, "standard")
    unit = (await client.get(f"/units/{city.UNIT}")).json()
    by_id = {d["id"]: d["gbt_address"] for d in unit["devices"]}
    assert (by_id["D-NEW-P"], by_id[city.WATER]) == ("00a1b2c3d4e5", None)

    # PATCH: a field left out is kept; null (or "") clears the address, puts back standard
    r = await client.patch("/devices/D-NEW-P", json={"model": "JB-1"})
    assert (r.json()["gbt_address"], r.json()["gbt_profile"]) == ("00a1b2c3d4e5", "year-first")
    r = await client.patch("/devices/D-NEW-P", json={"gbt_address": "0000000000FF"})
    assert r.json()["gbt_address"] == "0000000000ff"
    r = await client.patch("/devices/D-NEW-P", json={"gbt_address": None, "gbt_profile": None})
    assert (r.json()["gbt_address"], r.json()["gbt_profile"]) == (None, "standard")
    await client.patch("/devices/D-NEW-P", json={"gbt_address": "0000000000ff"})
    r = await client.patch("/devices/D-NEW-P", json={"gbt_address": "", "gbt_profile": ""})
    assert (r.json()["gbt_address"], r.json()["gbt_profile"]) == (None, "standard")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            _panel("D-X", gbt_address="a1b2c3d4e5"),
            "gbt_address 'a1b2c3d4e5' is not 12 hex digits: give the UITD's whole 48-bit"
            " address, most significant digit first, e.g. 00a1b2c3d4e5",
        ),
        (
            {**_panel("D-X", gbt_address="00a1b2c3d4e5"), "kind": "water"},
            "gbt_address is for panel devices, not water",
        ),
        (
            _panel("D-X", gbt_profile="acme"),
            "unknown gbt_profile 'acme' (known: standard, xor-checksum, year-first; more in the"
            " gateway's profiles file)",
        ),
        (
            _panel("D-X", gbt_profile="ACME!"),
            "gbt_profile 'ACME!' is not a profile name (1-32 of a-z, 0-9, '_' and '-', e.g."
            " 'standard')",
        ),
    ],
)
async def test_a_bad_address_or_profile_is_422_with_the_reason(
    client: httpx.AsyncClient, body: dict[str, Any], detail: str
) -> None:
    r = await client.post("/devices", json=body)
    assert (r.status_code, r.json()["detail"]) == (422, detail)


async def test_an_address_another_device_holds_is_409_naming_it(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    r = await client.patch(f"/devices/{city.PANEL}", json={"gbt_address": "00a1b2c3d4e5"})
    assert r.status_code == 200, r.text
    r = await client.post("/devices", json=_panel("D-NEW-P", gbt_address="00A1B2C3D4E5"))
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "gbt_address 00a1b2c3d4e5 is taken: device 'D-WD-001-P1' (unit U-WD-001) has it (an"
        " address belongs to one device in service: change that one's address or decommission"
        " it first)"
    )
    # to another vendor: taken, not by which device
    tanda = as_role(db, Role.VENDOR, username="tanda-ops", vendor="tanda")
    r = await anon.patch(
        f"/devices/{HOSPITAL_PANEL}", json={"gbt_address": "00a1b2c3d4e5"}, headers=tanda
    )
    assert r.status_code == 409
    assert "is taken: another device has it" in r.json()["detail"]
    r = await client.patch(f"/devices/{city.WATER}", json={"gbt_address": "0000000000aa"})
    assert (r.status_code, r.json()["detail"]) == (
        422,
        "gbt_address is for panel devices, not water",
    )


async def test_a_csv_import_sets_them_and_reports_each_refusal(
    client: httpx.AsyncClient,
) -> None:
    text = (
        "id,unit_id,kind,gbt_address,gbt_profile\n"
        f"{city.PANEL},{city.UNIT},panel,00A1B2C3D4E5,xor-checksum\n"
        "D-NEW-P,U-WD-001,panel,00a1b2c3d4e5,\n"
        "D-NEW-W,U-WD-001,water,0000000000aa,\n"
        "D-NEW-P2,U-WD-001,panel,12345,\n"
    )
    r = await client.post(
        "/devices/import", content=text.encode(), headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["summary"] == {"created": 0, "updated": 1, "unchanged": 0, "rejected": 3}
    rows = {row["id"]: row for row in report["rows"]}
    assert rows[city.PANEL]["changed"] == ["gbt_address", "gbt_profile"]
    assert "is taken: device 'D-WD-001-P1'" in rows["D-NEW-P"]["reason"]
    assert rows["D-NEW-W"]["reason"] == "gbt_address is for panel devices, not water"
    assert rows["D-NEW-P2"]["reason"].startswith("gbt_address '12345' is not 12 hex digits")
    got = (await client.get(f"/devices/{city.PANEL}")).json()
    assert (got["gbt_address"], got["gbt_profile"]) == ("00a1b2c3d4e5", "xor-checksum")


async def test_the_gateways_own_profiles_are_accepted_and_a_broken_file_said(
    settings: Settings, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    extra = tmp_path / "profiles.toml"
    extra.write_text('[profiles.acme-v2]\nchecksum = "xor8"\n', "utf-8")
    own = settings.model_copy(update={"gateway_profiles_file": extra})
    assert own.database_url
    app = create_app(own, own.database_url, options=TEST_OPTIONS)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as c,
    ):
        c.headers.update(as_role(db, Role.ADMIN))
        r = await c.post("/devices", json=_panel("D-ACME", gbt_profile="acme-v2"))
        assert (r.status_code, r.json()["gbt_profile"]) == (201, "acme-v2")
        extra.write_text("[profiles.acme-v2]\nchecksum = 'crc16'\n", "utf-8")
        r = await c.patch("/devices/D-ACME", json={"gbt_profile": "year-first"})
        assert r.status_code == 503
        assert r.json()["detail"].startswith("the GB/T profiles cannot be read: ")
        assert "crc16" in r.json()["detail"]
