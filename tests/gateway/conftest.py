"""Fixtures of the GB/T 26875.3 gateway's tests: a real gateway (on a thread with its own
event loop) in front of a real Mosquitto and a migrated, seeded PostgreSQL; an MQTT
subscriber standing in for ingest; devices that are plain TCP sockets sending frames built
byte by byte here (docs/gateway.md, "Frame layout"), independently of the codec under test.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firewatch.core.broker import BrokerAddress
from firewatch.core.gbt_profiles import STANDARD
from firewatch.core.settings import Settings
from firewatch.gateway.directory import GatewayStore
from firewatch.gateway.gateway_metrics import GatewayMetrics, GatewayStats
from firewatch.gateway.publisher import MqttPublisher
from firewatch.gateway.server import GatewayServer, make_publisher
from firewatch.simulators.gbt_device import GbtDevice, objects_of
from tests.builders.city import PANEL

T = TypeVar("T")

#: The GB/T address the tests give the demo city's panel.
ADDRESS = 0x00A1B2C3D4E5
ADDRESS_TEXT = "00a1b2c3d4e5"
CENTER = 0
CST = timezone(timedelta(hours=8))  # the standard profile's device clock

# Commands (docs/gateway.md, "Frame layout")
CONTROL, SEND, CONFIRM, DENY = 1, 2, 3, 6


def time_bytes(t: datetime) -> list[int]:
    """second, minute, hour, day, month, year-2000 (device local time)."""
    return [t.second, t.minute, t.hour, t.day, t.month, t.year - 2000]


def device_clock(delta_s: float = 0.0) -> datetime:
    """Now on a device clock in China standard time, whole seconds."""
    return (datetime.now(CST) + timedelta(seconds=delta_s)).replace(microsecond=0, tzinfo=None)


def build_frame(
    serial: int,
    adu: bytes,
    *,
    source: int = ADDRESS,
    destination: int = CENTER,
    command: int = SEND,
    when: datetime | None = None,
    checksum_delta: int = 0,
) -> bytes:
    """'@@' | control unit (25 B) | ADU | checksum | '##', byte by byte as docs/gateway.md
    ("Frame layout") says."""
    when = when or device_clock()
    length = len(adu)
    control = bytes(
        [
            serial & 0xFF,
            serial >> 8,  # serial, little-endian
            1,
            0,  # version 1.0
            *time_bytes(when),
            *source.to_bytes(6, "little"),
            *destination.to_bytes(6, "little"),
            length & 0xFF,
            length >> 8,
            command,
        ]
    )
    assert len(control) == 25
    checksum = (sum(control) + sum(adu) + checksum_delta) & 0xFF  # low byte of the sum
    return b"@@" + control + adu + bytes([checksum]) + b"##"


def system_status_adu(status: int, when: datetime | None = None, system_addr: int = 1) -> bytes:
    """Type 1, one object: system type 1 (fire alarm system), address, status word, time."""
    when = when or device_clock()
    return bytes([1, 1, 1, system_addr, status & 0xFF, status >> 8, *time_bytes(when)])


def duty_answer_adu(when: datetime | None = None) -> bytes:
    """Type 24, one object: operation flags with bit 5 (duty answer), operator 7, time."""
    when = when or device_clock()
    return bytes([24, 1, 1 << 5, 7, *time_bytes(when)])


def parse(raw: bytes) -> dict[str, Any]:
    """The fields of a frame the gateway sent (checked here, not by the codec)."""
    assert raw[:2] == b"@@", raw.hex()
    assert raw[-2:] == b"##", raw.hex()
    length = raw[24] | raw[25] << 8
    assert len(raw) == 30 + length
    assert raw[-3] == sum(raw[2:-3]) & 0xFF, "the gateway's checksum"
    return {
        "serial": raw[2] | raw[3] << 8,
        "source": int.from_bytes(raw[12:18], "little"),
        "destination": int.from_bytes(raw[18:24], "little"),
        "command": raw[26],
        "adu": raw[27 : 27 + length],
    }


class Device:
    """A blocking TCP client that sends raw bytes and reads the gateway's frames."""

    def __init__(self, port: int, timeout: float = 20.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self._buf = b""
        self.other: list[dict[str, Any]] = []  # frames read while looking for another

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next frame, or None if the connection closed (TimeoutError if none came)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if len(self._buf) >= 26:
                size = 30 + (self._buf[24] | self._buf[25] << 8)
                if len(self._buf) >= size:
                    raw, self._buf = self._buf[:size], self._buf[size:]
                    return parse(raw)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from the gateway")
            self.sock.settimeout(left)
            data = self.sock.recv(4096)
            if not data:
                return None
            self._buf += data

    def expect(
        self, command: int, serial: int | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """The first frame with ``command`` (and ``serial``); others are kept in ``other``."""
        for i, kept in enumerate(self.other):
            if kept["command"] == command and serial in (None, kept["serial"]):
                return self.other.pop(i)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            f = self.read_frame(max(0.01, deadline - time.monotonic()))
            if f is None:
                raise AssertionError("the gateway closed the connection")
            if f["command"] == command and serial in (None, f["serial"]):
                return f
            self.other.append(f)

    def closed_within(self, timeout: float) -> bool:
        """True if the gateway closes the connection within ``timeout`` (frames it sends
        meanwhile are kept)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                f = self.read_frame(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                return False
            except ConnectionResetError:
                return True
            if f is None:
                return True
            self.other.append(f)
        return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscriber:
    """A paho MQTT 5 client subscribed to every device topic (ingest's stand-in); it
    subscribes again after a reconnect."""

    def __init__(self, url: str, topic: str = "firewatch/v1/#") -> None:
        addr = BrokerAddress.parse(url)
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"obs-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_message = lambda _c, _u, m: self.messages.append(
            (m.topic, json.loads(m.payload))
        )
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
        self.client.reconnect_delay_set(1, 1)
        self.client.connect(addr.host, addr.port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "subscription not acknowledged"

    def wait(
        self,
        cond: Callable[[list[tuple[str, dict[str, Any]]]], bool],
        timeout: float = 20,
        what: str = "messages",
    ) -> list[tuple[str, dict[str, Any]]]:
        wait_until(lambda: cond(list(self.messages)), timeout, what)
        return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(cond: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


class GatewayThread:
    """A :class:`GatewayServer` with its :class:`MqttPublisher` on a thread of its own
    (its own event loop), as ``firewatch gateway`` runs them."""

    def __init__(self, settings: Settings, **server_kwargs: Any) -> None:
        self.settings = settings
        self.server_kwargs = server_kwargs
        self.metrics = GatewayMetrics()
        self.port = 0
        self.server: GatewayServer | None = None
        self.publisher: MqttPublisher | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="gateway", daemon=True)

    @property
    def stats(self) -> GatewayStats:
        return self.metrics.stats

    def _main(self) -> None:
        try:
            asyncio.run(self._amain())
        except BaseException as err:  # surfaced by __enter__ / stop
            self._error = err
            self._ready.set()

    async def _amain(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        assert self.settings.database_url
        store = GatewayStore(self.settings.database_url)
        try:
            async with (
                make_publisher(self.settings, self.metrics) as publisher,
                GatewayServer(
                    self.settings, store, publisher, metrics=self.metrics, **self.server_kwargs
                ) as server,
            ):
                self.publisher, self.server, self.port = publisher, server, server.port
                self._ready.set()
                await self._stop.wait()
        finally:
            await store.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run ``coro`` on the gateway's loop; its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        assert self._ready.wait(30), "the gateway did not start"
        if self._error:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "the gateway did not stop"
        if self._error:
            raise self._error


@pytest.fixture
def gbt_db(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """The seeded database with the demo panel at :data:`ADDRESS`."""
    db.execute("UPDATE devices SET gbt_address = %s WHERE id = %s", (ADDRESS_TEXT, PANEL))
    return db


@pytest.fixture
def gw_settings(mqtt_settings: Settings) -> Settings:
    """Gateway settings for tests: loopback, a free port, no /metrics, quick polls, and
    timeouts short enough to be reached in a test."""
    return mqtt_settings.model_copy(
        update={
            "gateway_host": "127.0.0.1",
            "gateway_port": 0,
            "gateway_metrics_port": 0,
            "gateway_duty_poll_s": 0.05,
            "gateway_directory_refresh_s": 0.2,
            "gateway_stop_timeout_s": 5.0,
            "broker_backoff_max_s": 0.3,
        }
    )


@pytest.fixture
def subscriber(mqtt_url: str) -> Iterator[Subscriber]:
    sub = Subscriber(mqtt_url)
    yield sub
    sub.close()


@pytest.fixture
def gateway(gw_settings: Settings, gbt_db: psycopg.Connection[Any]) -> Iterator[GatewayThread]:
    """A running gateway (duty checks scheduled late in their cycle: out of the way)."""
    with GatewayThread(gw_settings, duty_fraction=lambda _d: 0.99) as gw:
        yield gw


class DeviceThread:
    """A :class:`GbtDevice` on an event loop of its own thread, as the simulator runs it."""

    def __init__(self, port: int, *, answer: bool) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.device = GbtDevice(
            ADDRESS,
            STANDARD,
            "127.0.0.1",
            port,
            duty_answer_probability=1.0 if answer else 0.0,
            duty_answer_delay_s=(0.05, 0.1),
            backoff_s=(0.05, 0.2),
        )
        self.call(self._start())

    async def _start(self) -> None:
        self.device.start()
        assert await self.device.wait_connected(20), "the device did not connect"

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def send_event(self, body: dict[str, Any]) -> bool:
        return bool(self.call(self.device.send(objects_of("event", body, self.device.profile))))

    def close(self) -> None:
        self.call(self.device.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
