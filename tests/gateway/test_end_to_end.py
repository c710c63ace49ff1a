"""The whole legacy path, as issue 17 asks for it: a simulated GB/T 26875.3 transmission
device → the gateway (TCP) → the broker (MQTT, QoS 1) → ingest → analytics → alerting → the
API the console reads; and the downlink the other way: a duty check asked through the API
that nobody answers becomes the patrol alert.

Every service is the real one on a thread, over a real Mosquitto and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.alerting.service import AlertingService
from firewatch.analytics.service import AnalyticsService
from firewatch.api.server import ApiServer
from firewatch.core.settings import Settings
from tests.api.conftest import TEST_OPTIONS
from tests.builders.city import PANEL
from tests.builders.people import ADMIN
from tests.gateway.conftest import DeviceThread, GatewayThread, wait_until
from tests.helpers import ThreadedIngest, ThreadedService

#: the smoke detector's description, as the panel stores it (GB18030 on the wire)
WHERE = "3层东走廊感烟探测器"


@pytest.fixture
def city_services(
    gbt_db: psycopg.Connection[Any], gw_settings: Settings
) -> Iterator[tuple[GatewayThread, ApiServer, ThreadedService]]:
    """Ingest, analytics, alerting, the gateway and the API, all running; a duty check is
    missed after 1 s (a test cannot wait the default 10 min)."""
    gw_settings = gw_settings.model_copy(update={"gateway_duty_answer_timeout_s": 1.0})
    assert gw_settings.database_url
    url = gw_settings.database_url
    with (
        ThreadedIngest(gw_settings),
        ThreadedService(AnalyticsService(gw_settings, url), "analytics"),
        ThreadedService(AlertingService(gw_settings, url), "alerting") as alerting,
        GatewayThread(gw_settings) as gateway,
        ApiServer(gw_settings, url, options=TEST_OPTIONS) as api,
    ):
        yield gateway, api, alerting


def _alerts(api: ApiServer) -> list[dict[str, Any]]:
    r = httpx.get(f"{api.url}/alerts", headers=ADMIN, timeout=10)
    assert r.status_code == 200, r.text
    return list(r.json())


def test_a_legacy_panels_fire_reaches_the_console_through_the_gateway(
    city_services: tuple[GatewayThread, ApiServer, ThreadedService],
    admin_token: dict[str, str],
) -> None:
    gateway, api, alerting = city_services
    device = DeviceThread(gateway.port, answer=True)
    try:
        now = datetime.now(UTC).isoformat()
        fire = {
            "ts": now,
            "type": "component_status",
            "system_type": 1,
            "system_addr": 1,
            "component_type": 40,  # point smoke detector
            "component_addr": 1004,
            "status": 0b11,  # normal operation + fire
            "description": WHERE,
        }
        assert device.send_event(fire), "the gateway did not confirm the frame"
        alerting.wait(
            lambda: any(a["type"] == "fire_alarm" for a in _alerts(api)), 30, "the fire alert"
        )
    finally:
        device.close()
    (alert,) = [a for a in _alerts(api) if a["type"] == "fire_alarm"]
    assert (alert["device_id"], alert["category"], alert["severity"]) == (
        PANEL,
        "fire",
        "critical",
    )
    assert WHERE in alert["explanation"]  # decoded from GB18030 on its way
    assert gateway.stats.denied == 0


def test_a_duty_check_nobody_answers_raises_the_patrol_alert(
    city_services: tuple[GatewayThread, ApiServer, ThreadedService],
    admin_token: dict[str, str],
    gbt_db: psycopg.Connection[Any],
) -> None:
    gateway, api, alerting = city_services
    device = DeviceThread(gateway.port, answer=False)
    try:
        # the gateway learns which device a connection is from its first frame: a heartbeat
        normal = {"ts": datetime.now(UTC).isoformat(), "type": "system_status", "status": 1}
        assert device.send_event(normal)
        # the console's button: POST /devices/{id}/duty-checks, as the operator
        r = httpx.post(f"{api.url}/devices/{PANEL}/duty-checks", headers=ADMIN, timeout=10)
        assert r.status_code == 202, r.text
        check_id = r.json()["id"]
        wait_until(lambda: device.device.stats.duty_checks >= 1, 20, "the type-91 frame")
        alerting.wait(
            lambda: any(a["type"] == "duty_check_missed" for a in _alerts(api)),
            30,
            "the patrol alert",
        )
    finally:
        device.close()
    (alert,) = [a for a in _alerts(api) if a["type"] == "duty_check_missed"]
    assert (alert["device_id"], alert["category"], alert["severity"]) == (
        PANEL,
        "offline",
        "high",
    )
    outcome = gbt_db.execute(
        "SELECT outcome, requested_by FROM duty_checks WHERE id = %s", (check_id,)
    ).fetchone()
    assert outcome == ("missed", "t-admin")
