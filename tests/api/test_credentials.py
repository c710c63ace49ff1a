"""``/devices/{device_id}/credentials`` over HTTP, with a real broker that enforces what the
API issues (issue 14): a vendor with an API token gets its device's password once and the
device logs in with it; another vendor's device is refused; a broker that does not answer
leaves everything as it was (503)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.api.app import create_app
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from firewatch.storage import credentials as store
from tests.api.conftest import TEST_OPTIONS
from tests.builders.city import PANEL, UNIT, WATER, topic
from tests.builders.people import as_role
from tests.helpers import scalar
from tests.registry.broker import ACCEPTED, Secure, connack, device, secure_broker

pytestmark = pytest.mark.anyio
ACME = "acme"  # the vendor of the demo city's water sensors (WATER); PANEL is gst's


@pytest.fixture
async def api(
    tmp_path: Path, settings: Settings, db: psycopg.Connection[Any]
) -> AsyncIterator[tuple[httpx.AsyncClient, Secure]]:
    """The API configured with a secured broker's admin account, and that broker."""
    with secure_broker(tmp_path, settings, db) as secure:
        assert secure.settings.database_url
        app = create_app(secure.settings, secure.settings.database_url, options=TEST_OPTIONS)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
        ):
            yield c, secure


async def test_a_vendor_issues_its_device_a_password_that_the_broker_accepts(
    api: tuple[httpx.AsyncClient, Secure], db: psycopg.Connection[Any]
) -> None:
    client, secure = api
    vendor = as_role(db, Role.VENDOR, vendor=ACME)
    r = await client.post(f"/devices/{WATER}/credentials", headers=vendor)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["username"] == body["client_id"] == WATER
    assert body["version"] == 1
    assert body["publish_topics"][0] == topic(WATER, "telemetry", UNIT)
    with device(secure, WATER, body["password"]) as dev:
        assert dev.connack == 0
        assert dev.publish(topic(WATER), b"{}") in ACCEPTED
    shown = await client.get(f"/devices/{WATER}/credentials", headers=vendor)
    assert shown.status_code == 200
    assert shown.json()["state"] == "active"
    assert "password" not in shown.json()

    r = await client.delete(f"/devices/{WATER}/credentials", headers=vendor)
    assert r.status_code == 204
    assert connack(secure, WATER, body["password"]) != 0
    again = await client.delete(f"/devices/{WATER}/credentials", headers=vendor)
    assert again.status_code == 404
    assert "no credential in force" in again.json()["detail"]


async def test_a_vendor_cannot_touch_another_vendors_device(
    api: tuple[httpx.AsyncClient, Secure], db: psycopg.Connection[Any]
) -> None:
    client, _secure = api
    vendor = as_role(db, Role.VENDOR, vendor=ACME)
    for method in ("POST", "GET", "DELETE"):
        r = await client.request(method, f"/devices/{PANEL}/credentials", headers=vendor)
        assert r.status_code == 403, (method, r.text)
    assert store.credential_of(db, PANEL) is None
    # An id nobody has: the same 403 to a vendor, so the scope does not reveal which exist.
    r = await client.post("/devices/D-NOPE/credentials", headers=vendor)
    assert r.status_code == 403
    r = await client.post("/devices/D-NOPE/credentials", headers=as_role(db, Role.ADMIN))
    assert r.status_code == 404


async def test_an_unreachable_broker_is_a_503_and_changes_nothing(
    api: tuple[httpx.AsyncClient, Secure], db: psycopg.Connection[Any]
) -> None:
    client, secure = api
    secure.broker.stop()
    r = await client.post(f"/devices/{WATER}/credentials", headers=as_role(db, Role.ADMIN))
    assert r.status_code == 503
    assert "none was stored; retry" in r.json()["detail"]
    assert scalar(db, "SELECT count(*) FROM device_credentials") == 0


async def test_a_decommissioned_device_gets_no_credential(
    api: tuple[httpx.AsyncClient, Secure], db: psycopg.Connection[Any]
) -> None:
    client, _secure = api
    db.execute("UPDATE devices SET decommissioned_at = now() WHERE id = %s", (WATER,))
    r = await client.post(f"/devices/{WATER}/credentials", headers=as_role(db, Role.ADMIN))
    assert r.status_code == 409
    assert "decommissioned" in r.json()["detail"]
