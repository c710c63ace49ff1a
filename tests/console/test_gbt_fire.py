"""Issue 17's "done when": a legacy device's fire reaches the console through the gateway.
A simulated GB/T 26875.3 transmission device sends a component's fire over TCP; the gateway
publishes it over MQTT; ingest, analytics and alerting turn it into an alert; an operator's
browser shows it in the queue, without a reload, with the detector's GB18030 description."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from playwright.sync_api import expect

from firewatch.core.people import Role
from firewatch.core.settings import Settings
from tests.builders.city import PANEL
from tests.console.conftest import MakePerson, OpenSeat
from tests.gateway.conftest import ADDRESS_TEXT, DeviceThread, GatewayThread

pytestmark = pytest.mark.browser

WHERE = "3层东走廊感烟探测器"


@pytest.fixture
def gateway(pipeline: Settings, db: psycopg.Connection[Any]) -> Iterator[GatewayThread]:
    """The gateway in front of the pipeline's broker, the demo panel at a GB/T address."""
    db.execute("UPDATE devices SET gbt_address = %s WHERE id = %s", (ADDRESS_TEXT, PANEL))
    settings = pipeline.model_copy(
        update={"gateway_host": "127.0.0.1", "gateway_port": 0, "gateway_metrics_port": 0}
    )
    with GatewayThread(settings) as gw:
        yield gw


def test_a_legacy_panels_fire_shows_in_the_operators_queue(
    seat: OpenSeat, people: MakePerson, gateway: GatewayThread
) -> None:
    people("li.wei", Role.OPERATOR)
    page = seat("li.wei").page
    expect(page.locator("#live")).to_contain_text("实时")
    expect(page.locator("#queue-list")).to_contain_text("当前没有未处理的警情")

    device = DeviceThread(gateway.port, answer=True)
    try:
        fire = {
            "ts": datetime.now(UTC).isoformat(),
            "type": "component_status",
            "system_type": 1,
            "system_addr": 1,
            "component_type": 40,
            "component_addr": 1004,
            "status": 0b11,  # normal operation + fire
            "description": WHERE,
        }
        assert device.send_event(fire), "the gateway did not confirm the frame"
    finally:
        device.close()

    row = page.locator(".alert-row", has_text="火警")
    expect(row).to_have_count(1, timeout=60_000)
    expect(row).to_contain_text("许昌万达广场")
    row.click()
    expect(page.locator(".detail")).to_contain_text(WHERE)
