"""The simulator's GB/T device (``firewatch simulate --gbt``) against the real gateway: its
frames are confirmed and published, it takes the gateway's clock sync, and its on-duty
person's answer to a requested duty check closes the check as answered."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from firewatch.core.gbt_profiles import STANDARD
from firewatch.simulators.gbt_device import GbtDevice, objects_of
from firewatch.storage.gateway import request_duty_check
from tests.builders.city import PANEL, UNIT
from tests.gateway.conftest import ADDRESS, GatewayThread, Subscriber

TOPIC = f"firewatch/v1/{UNIT}/{PANEL}/event"


def test_the_simulated_device_through_the_real_gateway(
    gateway: GatewayThread, subscriber: Subscriber, gbt_db: psycopg.Connection[Any]
) -> None:
    async def scenario() -> GbtDevice:
        dev = GbtDevice(
            ADDRESS,
            STANDARD,
            "127.0.0.1",
            gateway.port,
            clock_offset_s=-600.0,  # ten minutes slow until the gateway sets its clock
            duty_answer_probability=1.0,
            duty_answer_delay_s=(0.05, 0.1),
            backoff_s=(0.05, 0.2),
        )
        dev.start()
        try:
            body = {"ts": "2026-12-07T02:00:00.000Z", "type": "system_status", "status": 3}
            assert await dev.send(objects_of("event", body, dev.profile))
            await _until(lambda: dev.stats.clock_syncs == 1)
            assert dev.clock_offset_s == 0.0
            await asyncio.to_thread(request_duty_check, gbt_db, PANEL, "t-operator")
            await _until(lambda: dev.stats.duty_answers == 1)
        finally:
            await dev.close()
        return dev

    dev = asyncio.run(scenario())
    assert (dev.stats.confirmed, dev.stats.denied) == (2, 0)  # the event, the duty answer
    msgs = subscriber.wait(
        lambda m: any(p["type"] == "duty_check" for _, p in m), what="the duty check's outcome"
    )
    assert {t for t, _ in msgs} == {TOPIC}
    first = msgs[0][1]
    assert (first["type"], first["status"], first["ts"]) == (
        "system_status",
        3,
        "2026-12-07T02:00:00Z",
    )
    assert any(p["type"] == "transmission_operation" for _, p in msgs)
    (duty,) = [p for _, p in msgs if p["type"] == "duty_check"]
    assert duty["status"] & 1  # answered
    assert duty["detail"]["requested_by"] == "t-operator"


async def _until(cond: Any, within_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
