"""The role matrix, walked: every route of the OpenAPI schema, called over real HTTP by
nobody and by every role (issue 12; firewatch/core/access.py).

The table below is this test's own statement of who may do what, written out route by
route rather than imported from ``core/access.py``: a change of the matrix that this table
does not expect fails here. A route the table does not know fails too, so a new route
cannot land without saying who may call it. "Admitted" means the answer is neither 401 nor
403 (a 404 for an id that does not exist, a 409 for an action already done, a 422 are the
route's own answers to an admitted caller). The scoped roles (a unit's manager, a vendor)
call with the unit and the device of their scope here; what they see outside it is in
``test_a_unit_manager_sees_only_its_own_unit`` and ``test_a_vendor_sees_only_its_own_devices``.
"""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from firewatch.api.server import ApiServer
from firewatch.core.people import Role
from tests.builders import city
from tests.builders.alerts import new_alert
from tests.builders.people import as_role

OP, SL, SU, IN, UN, VE, AD = (
    Role.OPERATOR,
    Role.SHIFT_LEADER,
    Role.SUPERVISOR,
    Role.INSPECTOR,
    Role.UNIT,
    Role.VENDOR,
    Role.ADMIN,
)
CENTER = {OP, SL, AD}
FIRE_DEPT = {SU, IN}
EVERYONE = set(Role)
OPEN = "open"  # anyone, nobody included
SIGNED = "signed"  # no role: the caller proves itself with a signature (401 to everyone else)
SESSION = "session"  # a browser session's (logout): 401 to a bearer token, as to nobody

#: (method, path) -> the roles admitted, or OPEN / SIGNED.
EXPECTED: dict[tuple[str, str], set[Role] | str] = {
    ("GET", "/health"): OPEN,
    ("POST", "/auth/login"): OPEN,
    ("GET", "/public/draws"): OPEN,
    ("GET", "/public/draws/{draw_id}"): OPEN,
    ("GET", "/public/inspections"): OPEN,
    ("POST", "/notifications/receipts"): SIGNED,
    ("GET", "/auth/me"): EVERYONE,
    ("POST", "/auth/logout"): SESSION,
    # the queue: the center acts, the fire department watches, a unit sees its own
    ("GET", "/alerts"): CENTER | {SU, UN},
    ("GET", "/alerts/stream"): CENTER | {SU, UN},
    ("GET", "/alerts/{alert_id}"): CENTER | {SU, UN},
    ("POST", "/alerts/{alert_id}/actions"): CENTER,
    ("POST", "/alerts/{alert_id}/claim"): CENTER,
    ("POST", "/alerts/{alert_id}/release"): CENTER,
    # the registry and the map
    ("GET", "/regions"): CENTER | FIRE_DEPT,
    ("GET", "/regions/{region_id}"): CENTER | FIRE_DEPT,
    ("GET", "/regions/{region_id}/rollups"): CENTER | FIRE_DEPT,
    ("GET", "/units"): CENTER | FIRE_DEPT,
    ("GET", "/map"): CENTER | FIRE_DEPT,
    ("GET", "/units/{unit_id}"): CENTER | FIRE_DEPT | {UN},
    ("GET", "/units/{unit_id}/rollups"): CENTER | FIRE_DEPT | {UN},
    ("GET", "/units/{unit_id}/telemetry"): CENTER | FIRE_DEPT | {UN},
    ("GET", "/devices/health"): CENTER | FIRE_DEPT | {UN, VE},
    ("GET", "/devices/{device_id}/rollups"): CENTER | FIRE_DEPT | {UN, VE},
    # risk
    ("GET", "/risk/regions/{region_id}"): CENTER | FIRE_DEPT,
    ("GET", "/risk/regions/{region_id}/top"): CENTER | FIRE_DEPT,
    ("GET", "/risk/regions/{region_id}/trend"): CENTER | FIRE_DEPT,
    ("GET", "/risk/warnings"): CENTER | FIRE_DEPT,
    ("GET", "/risk/units/{unit_id}"): CENTER | FIRE_DEPT | {UN},
    ("GET", "/risk/units/{unit_id}/history"): CENTER | FIRE_DEPT | {UN},
    # supervision: the fire department; a unit its own hazards and credit
    ("GET", "/draws"): FIRE_DEPT | {AD},
    ("GET", "/draws/{draw_id}"): FIRE_DEPT | {AD},
    ("GET", "/inspections"): FIRE_DEPT | {AD},
    ("GET", "/inspections/{inspection_id}"): FIRE_DEPT | {AD},
    ("GET", "/hazards"): FIRE_DEPT | {AD, UN},
    ("GET", "/hazards/{hazard_id}"): FIRE_DEPT | {AD, UN},
    ("GET", "/credit"): FIRE_DEPT | {AD, UN},
    ("GET", "/units/{unit_id}/credit"): FIRE_DEPT | {AD, UN},
    # the registry's writes (issue 14): an admin; a vendor its own devices
    ("GET", "/devices"): CENTER | FIRE_DEPT | {UN, VE},
    ("POST", "/devices"): {AD, VE},
    ("POST", "/devices/import"): {AD, VE},
    ("GET", "/devices/{device_id}"): CENTER | FIRE_DEPT | {UN, VE},
    ("PATCH", "/devices/{device_id}"): {AD, VE},
    ("POST", "/devices/{device_id}/decommission"): {AD, VE},
    # broker logins: issued, rotated, revoked by an admin or the device's vendor (without a
    # broker in this walk the POST answers 503 and changes nothing; DELETE 404: none in force)
    ("POST", "/devices/{device_id}/credentials"): {AD, VE},
    ("GET", "/devices/{device_id}/credentials"): CENTER | FIRE_DEPT | {UN, VE},
    ("DELETE", "/devices/{device_id}/credentials"): {AD, VE},
    ("GET", "/vendors"): CENTER | {VE},
    ("POST", "/vendors"): {AD},
    ("GET", "/vendors/{vendor_id}"): CENTER | {VE},
    ("GET", "/vendors/{vendor_id}/installations"): CENTER | {VE},
    ("POST", "/vendors/{vendor_id}/installations"): {AD},
    ("POST", "/installations/{installation_id}/end"): {AD},
    ("POST", "/units"): {AD},
    ("PATCH", "/units/{unit_id}"): {AD},
    # vendor tools (issue 14): the center, and a vendor on its own devices
    ("GET", "/dead-letters"): CENTER | {VE},
    ("GET", "/devices/{device_id}/conformance"): CENTER | {VE},
    # GB/T duty checks (issue 17): the center's seats ask (the walk's water sensor has no
    # GB/T address: 409, nothing queued); whoever reads the device reads them
    ("POST", "/devices/{device_id}/duty-checks"): CENTER,
    ("GET", "/devices/{device_id}/duty-checks"): CENTER | FIRE_DEPT | {UN, VE},
}

BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/alerts/{alert_id}/actions"): {"action": "acknowledge", "note": "walk"},
    ("POST", "/alerts/{alert_id}/claim"): {},
    ("POST", "/alerts/{alert_id}/release"): {},
    ("POST", "/auth/login"): {},  # 422: a login is open, but this one is incomplete
    ("POST", "/notifications/receipts"): {},
    # registry writes: bodies that change nothing the walk's other calls rely on (a 422, or
    # no change), so that the walk leaves the city as seeded (the import gets no CSV: 415)
    ("POST", "/devices"): {"id": "D-WALK-1"},
    ("PATCH", "/devices/{device_id}"): {"model": ""},
    ("POST", "/devices/{device_id}/decommission"): {"walk": True},
    ("POST", "/vendors"): {"id": "walk", "name": "Walk"},
    ("POST", "/vendors/{vendor_id}/installations"): {"unit_id": city.UNIT},
    ("POST", "/units"): {},
    ("PATCH", "/units/{unit_id}"): {},
}


def operations(schema: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(
        (method.upper(), path)
        for path, ops in schema["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "patch", "delete")
    )


def call(
    api: ApiServer, method: str, path: str, params: dict[str, str], headers: dict[str, str]
) -> int:
    """The status of one call; a stream is closed as soon as its status is known."""
    url = api.url + path.format(**params)
    body = BODIES.get((method, path))
    with (
        httpx.Client(timeout=20) as client,
        client.stream(method, url, json=body, headers=headers) as r,
    ):
        return r.status_code


def test_every_route_with_every_role_gets_exactly_what_the_matrix_says(
    live: ApiServer, db: psycopg.Connection[Any]
) -> None:
    schema = httpx.get(f"{live.url}/openapi.json").json()
    ops = operations(schema)
    assert set(ops) == set(EXPECTED), "a route without a row in EXPECTED, or a row too many"
    alert = new_alert(db)  # on city.UNIT
    params = {
        "alert_id": str(alert.id),
        "unit_id": city.UNIT,
        "device_id": city.WATER,  # vendor acme
        "region_id": "xuchang",
        "draw_id": "1",
        "inspection_id": "1",
        "hazard_id": "1",
        "vendor_id": "acme",
        "installation_id": "999999",  # none: ending one would change the vendor's scope
    }
    callers: dict[str, dict[str, str]] = {"nobody": {}}
    for role in Role:
        scope = {"unit_id": city.UNIT} if role is UN else {"vendor": "acme"} if role is VE else {}
        callers[role.value] = as_role(db, role, username=f"walk-{role.value}", **scope)

    wrong: list[str] = []
    for method, path in ops:
        admitted = EXPECTED[(method, path)]
        for who, headers in callers.items():
            status = call(live, method, path, params, headers)
            if admitted == OPEN:
                ok = status not in (401, 403)
            elif admitted in (SIGNED, SESSION) or who == "nobody":
                ok = status == 401
            else:
                assert isinstance(admitted, set)
                ok = (status == 403) != (Role(who) in admitted) and status != 401
            if not ok:
                wrong.append(f"{who:>12} {method} {path} -> {status}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.anyio
async def test_a_unit_manager_sees_only_its_own_unit(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    mine = new_alert(db, unit="U-WD-002")
    theirs = new_alert(db)  # city.UNIT, U-WD-001
    me = as_role(db, Role.UNIT, username="wd2-manager", unit_id="U-WD-002")

    listed = (await anon.get("/alerts", headers=me)).json()
    assert [a["id"] for a in listed] == [mine.id]
    assert (await anon.get("/alerts", params={"unit_id": city.UNIT}, headers=me)).json() == []
    assert (await anon.get(f"/alerts/{mine.id}", headers=me)).status_code == 200
    r = await anon.get(f"/alerts/{theirs.id}", headers=me)
    assert r.status_code == 403
    assert "outside your scope" in r.json()["detail"]
    for path in (
        f"/units/{city.UNIT}",
        f"/units/{city.UNIT}/rollups",
        f"/units/{city.UNIT}/telemetry",
        f"/risk/units/{city.UNIT}",
        f"/units/{city.UNIT}/credit",
        f"/devices/{city.WATER}/rollups",
    ):
        assert (await anon.get(path, headers=me)).status_code == 403, path
    assert (await anon.get("/units/U-WD-002", headers=me)).status_code == 200
    health = (await anon.get("/devices/health", headers=me)).json()
    assert {d["unit_id"] for d in health} == {"U-WD-002"}
    assert {d["device_id"] for d in health} == {"D-WD-002-P1", "D-WD-002-W1"}
    # a unit's manager may not act on alerts, not even its own
    r = await anon.post(f"/alerts/{mine.id}/actions", json={"action": "acknowledge"}, headers=me)
    assert r.status_code == 403
    assert "role 'unit' may not" in r.json()["detail"]


@pytest.mark.anyio
async def test_a_vendor_sees_only_its_own_devices(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    volt = as_role(db, Role.VENDOR, username="volt-support", vendor="volt")
    health = (await anon.get("/devices/health", headers=volt)).json()
    assert {d["vendor"] for d in health} == {"volt"}
    assert city.SHED in {d["device_id"] for d in health}
    assert (await anon.get(f"/devices/{city.SHED}/rollups", headers=volt)).status_code == 200
    r = await anon.get(f"/devices/{city.WATER}/rollups", headers=volt)  # an acme device
    assert r.status_code == 403
    assert "not one of volt's" in r.json()["detail"]
    # An id nobody has: the same 403, so the scope does not reveal which ids exist.
    assert (await anon.get("/devices/D-NOPE/rollups", headers=volt)).status_code == 403
    assert (await anon.get("/alerts", headers=volt)).status_code == 403


@pytest.mark.anyio
async def test_a_forbidden_answer_names_the_role_and_who_may(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    r = await anon.get("/draws", headers=as_role(db, Role.OPERATOR))
    assert r.status_code == 403
    assert r.json()["detail"] == (
        "role 'operator' may not do this (supervision_read: admin, inspector, supervisor)"
    )
