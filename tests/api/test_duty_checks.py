"""Duty checks (查岗) over HTTP (routes/duty_checks.py): a seat of the monitoring center asks
one of a GB/T panel, answered 202 with the queued row; the panel's list; every refusal with
its reason (no such device, no GB/T address, decommissioned, a role or scope that may not)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.core.people import Role
from firewatch.storage import devices as registry
from firewatch.storage import gateway
from tests.builders import city
from tests.builders.people import as_role
from tests.helpers import scalar

pytestmark = pytest.mark.anyio

HOSPITAL_PANEL = "D-WD-002-P1"  # tanda's, U-WD-002


@pytest.fixture
def gbt_panels(db: psycopg.Connection[Any]) -> None:
    """The demo city's two panels of U-WD-001 and U-WD-002 on the GB/T gateway."""
    for device, address in ((city.PANEL, "00a1b2c3d4e5"), (HOSPITAL_PANEL, "00a1b2c3d4e6")):
        registry.update_device(db, device, actor="root", as_vendor=None, gbt_address=address)


def _path(device: str) -> str:
    return f"/devices/{device}/duty-checks"


@pytest.mark.usefixtures("gbt_panels")
async def test_an_operator_asks_for_a_duty_check_and_sees_it_listed(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    operator = as_role(db, Role.OPERATOR, username="li.wei")
    r = await anon.post(_path(city.PANEL), headers=operator)
    assert r.status_code == 202, r.text
    asked = r.json()
    assert {k: asked[k] for k in ("device_id", "requested_by", "state", "outcome")} == {
        "device_id": city.PANEL,
        "requested_by": "li.wei",
        "state": "queued",
        "outcome": None,
    }
    assert (asked["sent_at"], asked["answered_at"], asked["closed_at"]) == (None, None, None)
    assert [p.id for p in gateway.pending_duty_checks(db)] == [asked["id"]]

    # the gateway sends it and hears the answer: the list says so, newest first
    gateway.mark_duty_check(db, asked["id"], sent_at=datetime.now(UTC))
    r = await anon.post(_path(city.PANEL), headers=as_role(db, Role.SHIFT_LEADER))
    assert r.status_code == 202
    gateway.mark_duty_check(db, asked["id"], outcome="answered")
    listed = (await anon.get(_path(city.PANEL), headers=operator)).json()
    assert [(c["requested_by"], c["state"], c["outcome"]) for c in listed] == [
        ("t-shift-leader", "queued", None),
        ("li.wei", "closed", "answered"),
    ]
    one = (await anon.get(_path(city.PANEL), params={"limit": 1}, headers=operator)).json()
    assert [c["requested_by"] for c in one] == ["t-shift-leader"]
    assert (await anon.get(_path(HOSPITAL_PANEL), headers=operator)).json() == []


@pytest.mark.usefixtures("gbt_panels")
async def test_each_refusal_says_why(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    registry.update_device(db, "D-JA-001-P1", actor="root", as_vendor=None, gbt_address="")
    r = await client.post(_path("D-NOPE"))
    assert (r.status_code, r.json()["detail"]) == (404, "no device 'D-NOPE'")
    assert (await client.get(_path("D-NOPE"))).status_code == 404
    for device in (city.WATER, "D-JA-001-P1"):  # a water sensor; a panel with no address
        r = await client.post(_path(device))
        assert r.status_code == 409, device
        assert r.json()["detail"] == (
            f"device {device!r} has no GB/T address, so there is no downlink to send a duty"
            " check on: only a panel connected through the GB/T 26875.3 gateway can be checked"
            " (set its gbt_address in the registry)"
        )
    registry.decommission_device(db, HOSPITAL_PANEL, actor="root", as_vendor=None)
    r = await client.post(_path(HOSPITAL_PANEL))
    assert r.status_code == 409
    assert r.json()["detail"].startswith(f"device {HOSPITAL_PANEL!r} was decommissioned on ")
    assert r.json()["detail"].endswith("by root: it has no duty to check")
    for bad in ("0", "101", "x"):
        r = await client.get(_path(city.PANEL), params={"limit": bad})
        assert r.status_code == 422, bad
    assert scalar(db, "SELECT count(*) FROM duty_checks") == 0


@pytest.mark.usefixtures("gbt_panels")
async def test_only_the_center_asks_and_the_scoped_roles_read_their_own(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    for role, scope in (
        (Role.SUPERVISOR, {}),
        (Role.INSPECTOR, {}),
        (Role.UNIT, {"unit_id": city.UNIT}),
        (Role.VENDOR, {"vendor": "gst"}),
    ):
        r = await anon.post(_path(city.PANEL), headers=as_role(db, role, **scope))
        assert r.status_code == 403, role
        assert r.json()["detail"] == (
            f"role {role.value!r} may not do this (duty_check: admin, operator, shift_leader)"
        )
    assert (await anon.post(_path(city.PANEL))).status_code == 401
    assert scalar(db, "SELECT count(*) FROM duty_checks") == 0

    manager = as_role(db, Role.UNIT, username="wd1", unit_id=city.UNIT)
    assert (await anon.get(_path(city.PANEL), headers=manager)).status_code == 200
    r = await anon.get(_path(HOSPITAL_PANEL), headers=manager)
    assert r.status_code == 403
    assert "outside your scope" in r.json()["detail"]
    gst = as_role(db, Role.VENDOR, username="gst-ops", vendor="gst")
    assert (await anon.get(_path(city.PANEL), headers=gst)).status_code == 200
    r = await anon.get(_path(HOSPITAL_PANEL), headers=gst)  # tanda's
    assert (r.status_code, r.json()["detail"]) == (403, "that device is not one of gst's")
    # an id nobody has: the same 403, so the scope does not reveal which ids exist
    r = await anon.get(_path("D-NOPE"), headers=gst)
    assert (r.status_code, r.json()["detail"]) == (403, "that device is outside your scope")
