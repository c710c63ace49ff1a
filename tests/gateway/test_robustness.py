"""What devices (or anything else on the port) do wrong, and what the broker does: each
bad connection is closed and counted while the others go on being served; nothing is
confirmed that the broker has not acknowledged."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from firewatch.core.settings import Settings
from firewatch.runtime.mosquitto import Broker
from tests.gateway.conftest import (
    CONFIRM,
    DENY,
    Device,
    GatewayThread,
    Subscriber,
    build_frame,
    system_status_adu,
    wait_until,
)


def _gateway(settings: Settings, **update: Any) -> GatewayThread:
    return GatewayThread(settings.model_copy(update=update), duty_fraction=lambda _d: 0.99)


def test_garbage_is_closed_after_the_limit_while_another_connection_works(
    gw_settings: Settings, gbt_db: psycopg.Connection[Any], subscriber: Subscriber
) -> None:
    with (
        _gateway(gw_settings, gateway_max_garbage_bytes=1000) as gw,
        Device(gw.port) as noise,
        Device(gw.port) as dev,
    ):
        noise.send(b"GET / HTTP/1.1\r\n" + b"x" * 2000)
        assert noise.closed_within(10), "the garbage connection stays open"
        dev.send(build_frame(1, system_status_adu(1)))
        dev.expect(CONFIRM, 1)
        assert gw.stats.closed["garbage"] == 1
        assert gw.stats.garbage_bytes >= 1000


def test_an_oversized_length_is_denied_and_the_stream_resyncs(
    gateway: GatewayThread, subscriber: Subscriber
) -> None:
    # A control unit declaring a 2000-byte ADU (the limit is 1024), then a good frame.
    bad = build_frame(0x0102, b"")
    bad = bad[:24] + bytes([2000 & 0xFF, 2000 >> 8]) + bad[26:]
    with Device(gateway.port) as dev:
        dev.send(bad + build_frame(0x0203, system_status_adu(1)))
        assert dev.expect(DENY, 0x0102)["adu"] == b""
        dev.expect(CONFIRM, 0x0203)
    assert gateway.stats.denies["length"] == 1


def test_a_slowloris_is_closed_after_the_frame_timeout_while_others_work(
    gw_settings: Settings, gbt_db: psycopg.Connection[Any], subscriber: Subscriber
) -> None:
    frame = build_frame(1, system_status_adu(1))
    with (
        _gateway(gw_settings, gateway_frame_timeout_s=1.0) as gw,
        Device(gw.port) as slow,
        Device(gw.port) as dev,
    ):
        slow.send(frame[:20])  # half a frame, then nothing
        dev.send(frame)
        dev.expect(CONFIRM, 1)
        assert slow.closed_within(10), "the slowloris connection stays open"
        assert gw.stats.closed["frame_timeout"] == 1
        dev.send(build_frame(2, system_status_adu(1)))
        dev.expect(CONFIRM, 2)


def test_an_idle_connection_is_closed(
    gw_settings: Settings, gbt_db: psycopg.Connection[Any]
) -> None:
    with _gateway(gw_settings, gateway_idle_timeout_s=0.5) as gw, Device(gw.port) as dev:
        assert dev.closed_within(10)
        assert gw.stats.closed["idle"] == 1


def test_connections_beyond_the_maximum_are_refused_while_the_others_work(
    gw_settings: Settings, gbt_db: psycopg.Connection[Any], subscriber: Subscriber
) -> None:
    with _gateway(gw_settings, gateway_max_connections=3) as gw:
        devices = [Device(gw.port) for _ in range(3)]
        try:
            for i, dev in enumerate(devices):  # each is a session now
                dev.send(build_frame(i, system_status_adu(1)))
                dev.expect(CONFIRM, i)
            for _ in range(5):
                with Device(gw.port) as extra:
                    assert extra.closed_within(10)
            assert gw.stats.connections_refused == 5
            for i, dev in enumerate(devices, start=10):
                dev.send(build_frame(i, system_status_adu(1)))
                dev.expect(CONFIRM, i)
        finally:
            for dev in devices:
                dev.close()


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room for 2,000+ sockets in this process (both ends of 1,000 connections)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < 2200:
        pytest.skip(f"this process may open only {want} files")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _devices(port: int, n: int) -> list[int]:
    """Open ``n`` connections, then each sends a frame, then each reads its confirm."""
    conns = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(n)))

    async def exchange(i: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
        writer.write(build_frame(i, system_status_adu(1, system_addr=i % 256)))
        await writer.drain()
        while True:  # skip the clock sync: the confirm is the 30-byte frame of command 3
            head = await reader.readexactly(26)
            rest = await reader.readexactly(4 + (head[24] | head[25] << 8))
            frame = head + rest
            if frame[26] == CONFIRM:
                return frame[2] | frame[3] << 8

    try:
        return await asyncio.wait_for(
            asyncio.gather(*(exchange(i + 1, r, w) for i, (r, w) in enumerate(conns))), 120
        )
    finally:
        for _r, w in conns:
            w.close()


def test_a_thousand_concurrent_devices_are_each_confirmed(
    gateway: GatewayThread, subscriber: Subscriber, many_files: None
) -> None:
    n = 1000
    serials = asyncio.run(_devices(gateway.port, n))
    assert serials == list(range(1, n + 1))
    msgs = subscriber.wait(lambda m: len(m) >= n, 60, f"{n} messages")
    assert len({p["seq"] for _t, p in msgs}) == n
    assert gateway.stats.connections_total == n


def test_nothing_is_confirmed_while_the_broker_is_down_and_all_is_after(
    settings: Settings, gbt_db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    """The broker stops: a frame is not confirmed (the device keeps it). It comes back:
    the publisher reconnects, sends again, the PUBACK comes and so does the confirm."""
    broker = Broker(tmp_path / "mosquitto").start()
    sub = Subscriber(broker.url)
    update: dict[str, Any] = {
        "mqtt_url": broker.url,
        "gateway_host": "127.0.0.1",
        "gateway_port": 0,
        "gateway_metrics_port": 0,
        "broker_backoff_max_s": 0.2,
    }
    try:
        with _gateway(settings, **update) as gw, Device(gw.port) as dev:
            pub = gw.publisher
            assert pub is not None
            wait_until(pub.connected.is_set, 10, "the publisher connected")
            dev.send(build_frame(1, system_status_adu(1)))
            dev.expect(CONFIRM, 1)
            broker.stop()
            wait_until(lambda: not pub.connected.is_set(), 10, "the publisher to see it")
            dev.send(build_frame(2, system_status_adu(2)))
            with pytest.raises(TimeoutError):
                dev.expect(CONFIRM, 2, timeout=1.5)  # no PUBACK, no confirm
            assert pub.pending == 1
            broker.start()
            dev.expect(CONFIRM, 2, timeout=30)
            msgs = sub.wait(lambda m: any(p["seq"] == 2 * 256 + 1 for _t, p in m), 30)
            assert {p["seq"] for _t, p in msgs} == {257, 513}
            assert pub.connects >= 2
    finally:
        sub.close()
        broker.stop()


def test_stop_finishes_and_closes_connections_with_one_summary_line(
    gw_settings: Settings,
    gbt_db: psycopg.Connection[Any],
    subscriber: Subscriber,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw = _gateway(gw_settings).__enter__()
    with Device(gw.port) as dev:
        dev.send(build_frame(1, system_status_adu(1)))
        dev.expect(CONFIRM, 1)
        with caplog.at_level("INFO", logger="firewatch.gateway"):
            gw.stop()
        assert dev.closed_within(5)
    assert gw.stats.closed["shutdown"] == 1
    summary = [r.message for r in caplog.records if r.message.startswith("gateway stopped")]
    assert summary == [
        "gateway stopped: 1 frames, 1 messages published, 1 frames confirmed, 0 denied, "
        "1 connections (0 refused), 0 duty checks sent"
    ]
