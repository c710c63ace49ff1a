"""The simulated GB/T 26875.3 device against a test-local center (``gbt_center.py``: a real
TCP server that checks every frame byte by byte against the standard's layout in
docs/gateway.md, no codec)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from firewatch.core.gbt_objects import InfoObject
from firewatch.core.gbt_profiles import STANDARD, Profile
from firewatch.simulators.gbt_device import (
    GbtDevice,
    demo_gbt_address,
    frames_of,
    is_demo_gbt_panel,
    objects_of,
    replay,
)
from tests.simulators.gbt_center import ADDRESS, CENTER, LOCAL, NOW, Center, build, t6, until

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def device(center: Center, **options: Any) -> GbtDevice:
    defaults: dict[str, Any] = {
        "center": CENTER,
        "clock": NOW.timestamp,
        "backoff_s": (0.05, 0.2),
        "confirm_timeout_s": 5.0,
    }
    return GbtDevice(ADDRESS, STANDARD, "127.0.0.1", center.port, **(defaults | options))


def component(description: str = "一楼烟感 3") -> InfoObject:
    return InfoObject(
        2,
        "component_status",
        system_type=1,
        system_addr=1,
        component_type=40,
        component_addr=1_005,
        status=0b11,
        description=description,
        time=LOCAL - timedelta(seconds=30),
    )


async def test_a_data_frame_is_laid_out_as_the_standard_says() -> None:
    async with Center() as center:
        dev = device(center)
        dev.start()
        try:
            assert await dev.send([component()])
            got = await center.next()
        finally:
            await dev.close()
    assert (got.serial, got.version, got.command) == (1, (1, 0), 2)
    assert got.tag == bytes((4, 3, 10, 7, 12, 26))  # 10:03:04 local, 2026-12-07
    assert got.raw[12:18] == bytes((0xE5, 0xD4, 0xC3, 0xB2, 0xA1, 0x00))  # little-endian
    assert (got.source, got.dest) == (ADDRESS, CENTER)
    text = "一楼烟感 3".encode("gb18030")
    assert got.adu == (
        bytes((2, 1, 1, 1, 40))
        + (1005).to_bytes(4, "little")
        + (3).to_bytes(2, "little")
        + text
        + bytes(31 - len(text))
        + bytes((34, 2, 10, 7, 12, 26))
    )
    assert len(got.raw) == 30 + 2 + 46
    assert (dev.stats.confirmed, dev.stats.resends) == (1, 0)


async def test_an_unconfirmed_frame_goes_again_with_the_same_serial() -> None:
    async with Center() as center:
        center.swallow = 2
        dev = device(center, confirm_timeout_s=0.2)
        dev.start()
        try:
            assert await dev.send([component()])
            first, second, third = await center.next(), await center.next(), await center.next()
            assert await dev.send([component("next")])
            fourth = await center.next()
        finally:
            await dev.close()
    assert first.raw == second.raw == third.raw  # the very same frame, serial 1
    assert first.serial == 1
    assert fourth.serial == 2
    assert (dev.stats.timeouts, dev.stats.resends, dev.stats.confirmed) == (2, 2, 2)


async def test_a_frame_in_flight_goes_again_after_a_reconnect() -> None:
    async with Center() as center:
        center.swallow = 1
        dev = device(center, confirm_timeout_s=30.0)
        dev.start()
        try:
            sending = asyncio.create_task(dev.send([component()]))
            first = await center.next()
            center.writers[-1].transport.abort()  # the link dies before the confirm
            again = await center.next()
            assert await sending
        finally:
            await dev.close()
    assert again.raw == first.raw
    assert dev.stats.connections == 2
    assert len(center.writers) == 2


async def test_a_denied_frame_is_not_sent_again() -> None:
    async with Center() as center:
        center.confirm = False
        dev = device(center)
        dev.start()
        try:
            sending = asyncio.create_task(dev.send([component()]))
            got = await center.next()
            center.writers[-1].write(build(got.serial, CENTER, ADDRESS, 6, b"", t6(LOCAL)))
            assert not await sending
        finally:
            await dev.close()
    assert (dev.stats.denied, dev.stats.frames_sent) == (1, 1)


async def test_clock_sync_is_confirmed_with_its_serial_and_applied() -> None:
    async with Center() as center:
        dev = device(center, clock_offset_s=-3600.0)  # an hour slow
        dev.start()
        try:
            assert await dev.wait_connected(10)
            center.control(0xBEEF, bytes((90, 1)) + t6(LOCAL))
            confirm = await center.next()
            assert dev.clock_offset_s == 0.0
            assert await dev.send([component()])
            data = await center.next()
        finally:
            await dev.close()
    assert (confirm.command, confirm.serial, confirm.adu) == (3, 0xBEEF, b"")
    assert (confirm.source, confirm.dest) == (ADDRESS, CENTER)
    assert data.tag == t6(LOCAL)  # the next frame carries the corrected time
    assert dev.stats.clock_syncs == 1


async def test_a_duty_check_is_confirmed_then_answered_by_the_person_on_duty() -> None:
    async with Center() as center:
        dev = device(center, duty_answer_probability=1.0, duty_answer_delay_s=(0.05, 0.1))
        dev.start()
        try:
            assert await dev.wait_connected(10)
            center.control(0x0102, bytes((91, 1, 10)))
            confirm = await center.next()
            answer = await center.next()
            await until(lambda: dev.stats.duty_answers == 1)
        finally:
            await dev.close()
    assert (confirm.command, confirm.serial, confirm.adu) == (3, 0x0102, b"")
    assert answer.command == 2
    assert answer.serial == 1
    # type 24, one object: operation flags with duty_answer (bit 5), operator 1, time
    assert answer.adu == bytes((24, 1, 1 << 5, 1)) + t6(LOCAL)


async def test_a_duty_check_nobody_answers() -> None:
    async with Center() as center:
        dev = device(center, duty_answer_probability=0.0)
        dev.start()
        try:
            assert await dev.wait_connected(10)
            center.control(7, bytes((91, 1, 10)))
            confirm = await center.next()
        finally:
            await dev.close()
    assert (confirm.command, confirm.serial) == (3, 7)
    assert (dev.stats.duty_checks, dev.stats.duty_ignored, dev.stats.duty_answers) == (1, 1, 0)


def test_who_answers_is_drawn_from_the_seed() -> None:
    def decisions(seed: str) -> list[float | None]:
        dev = GbtDevice(ADDRESS, duty_answer_probability=0.5, duty_answer_delay_s=(1, 9), seed=seed)
        return [dev.duty_answer_delay() for _ in range(400)]

    a = decisions("a")
    assert a == decisions("a") != decisions("b")
    answered = [d for d in a if d is not None]
    assert 150 < len(answered) < 250
    assert all(1 <= d <= 9 for d in answered)


async def test_panel_messages_replay_as_gbt_objects() -> None:
    async def stream() -> AsyncIterator[tuple[str, dict[str, object]]]:
        ts = "2026-12-07T02:00:00.000Z"  # 10:00:00 in China
        yield "status", {"seq": 1, "ts": ts, "state": "online", "firmware": "1.0"}
        yield "event", {"seq": 2, "ts": ts, "type": "system_status", "system_type": 1,
                        "system_addr": 1, "status": 3}  # fmt: skip
        yield "event", {"seq": 3, "ts": ts, "type": "operation", "system_type": 1,
                        "system_addr": 1, "status": 1, "operator": 9}  # fmt: skip

    async with Center() as center:
        dev = device(center)
        dev.start()
        try:
            assert await replay(dev, stream()) == 3
            frames = [await center.next() for _ in range(3)]
        finally:
            await dev.close()
    at = bytes((0, 0, 10, 7, 12, 26))
    assert [f.adu for f in frames] == [
        bytes((21, 1, 1)) + at,
        bytes((1, 1, 1, 1)) + (3).to_bytes(2, "little") + at,
        bytes((4, 1, 1, 1, 1, 9)) + at,
    ]
    assert [f.serial for f in frames] == [1, 2, 3]


def test_objects_of_skips_what_gbt_has_no_object_for() -> None:
    ts = "2026-12-07T02:00:00.000Z"
    assert objects_of("status", {"ts": ts, "state": "offline"}, STANDARD) == []
    assert objects_of("telemetry", {"ts": ts, "pressure_kpa": 300.0}, STANDARD) == []
    year_first = Profile("year-first", time_order="YMDhms", utc_offset_minutes=0)
    (obj,) = objects_of("event", {"ts": ts, "type": "system_status", "status": 1}, year_first)
    assert obj.time == datetime(2026, 12, 7, 2, 0, 0)


def test_frames_of_splits_by_type_and_size() -> None:
    objs = [component(str(i)) for i in range(30)] + [
        InfoObject(21, "transmission_status", status=1, time=LOCAL)
    ]
    runs = [(flag, len(group)) for flag, group in frames_of(objs)]
    assert runs == [(2, 22), (2, 8), (21, 1)]  # 2 + 22 * 46 = 1014 <= 1024 bytes


def test_demo_addresses_are_stable_hex_and_the_share_is_a_share() -> None:
    a = demo_gbt_address("D-WD-00001-P1")
    assert a == demo_gbt_address("D-WD-00001-P1") != demo_gbt_address("D-WD-00002-P1")
    assert len(a) == 12
    assert int(a, 16) > 0
    assert a == a.lower()
    ids = [f"D-XX-{i:05d}-P1" for i in range(2000)]
    half = sum(is_demo_gbt_panel(i, 0.5) for i in ids)
    assert 900 < half < 1100
    assert not any(is_demo_gbt_panel(i, 0.0) for i in ids)
    assert all(is_demo_gbt_panel(i, 1.0) for i in ids)
