"""Where a simulation's stream goes: a JSON-lines file (offline, no broker) or MQTT.

MQTT: devices share gateway connections (``devices_per_gateway`` each), except the
own-connection devices, which connect alone with their last will; a DROP closes such a
connection without DISCONNECT so the broker itself publishes the will. For a gateway
device the gateway reports the offline status on its behalf. Publishing is paced so that
simulated time runs ``speedup`` times faster than the wall clock.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TextIO

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from firewatch.core.broker import BrokerAddress
from firewatch.runtime.mqtt_tls import apply_tls
from firewatch.simulators.engine import SimulatedMessage, Simulation
from firewatch.simulators.model import Action, Label, iso

log = logging.getLogger(__name__)

#: Unacknowledged publishes beyond which the sink waits for the broker (bounded memory).
MAX_OUTSTANDING = 50_000
#: MQTT 5 PUBACK reason: the broker had no subscriber for the message and dropped it.
NO_MATCHING_SUBSCRIBERS = 0x10


@dataclass
class SinkResult:
    """What a run sent."""

    messages: int = 0
    wills: int = 0
    reconnects: int = 0
    acknowledged: int = 0
    devices: int = 0
    connections: int = 0
    sim_seconds: float = 0.0
    wall_seconds: float = 0.0
    by_channel: dict[str, int] = field(default_factory=dict)

    def count(self, m: SimulatedMessage) -> None:
        channel = m.topic.rsplit("/", 1)[-1]
        self.by_channel[channel] = self.by_channel.get(channel, 0) + 1
        self.messages += 1
        self.wills += m.action is Action.DROP
        self.reconnects += m.action is Action.RECONNECT

    def summary(self) -> str:
        chans = ", ".join(f"{k} {v}" for k, v in sorted(self.by_channel.items()))
        return (
            f"simulator sent {self.messages} messages ({chans}; wills {self.wills}, "
            f"reconnects {self.reconnects}) from {self.devices} devices over "
            f"{self.connections} connections: {_span(self.sim_seconds)} simulated in "
            f"{self.wall_seconds:.1f}s; {self.acknowledged} acknowledged"
        )


def _span(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def write_labels(labels: Iterable[Label], path: Path) -> int:
    """Write ground-truth labels as JSON lines; return how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("wb") as fh:
        for label in labels:
            fh.write(orjson.dumps(label.to_json()) + b"\n")
            n += 1
    return n


def write_stream(sim: Simulation, out: TextIO | Path) -> SinkResult:
    """Offline mode: write every message as a JSON line
    ``{"t", "topic", "payload" | "payload_b64", "by": "device" | "broker"}``."""
    if isinstance(out, Path):
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as fh:
            return write_stream(sim, fh)
    started = time.monotonic()
    result = SinkResult(devices=len(sim.devices))
    last = sim.start
    for m in sim.messages():
        line: dict[str, Any] = {
            "t": iso(m.t),
            "topic": m.topic,
            "by": "broker" if m.action is Action.DROP else "device",
        }
        try:
            line["payload"] = m.payload.decode("utf-8")
        except UnicodeDecodeError:
            line["payload_b64"] = base64.b64encode(m.payload).decode()
        out.write(orjson.dumps(line).decode() + "\n")
        result.count(m)
        last = m.t
    result.sim_seconds = last - sim.start
    result.wall_seconds = time.monotonic() - started
    return result


def read_stream(path: Path) -> Iterator[tuple[str, str, bytes]]:
    """Read an offline stream back: (simulated time ISO, topic, raw payload)."""
    with path.open("rb") as fh:
        for raw in fh:
            d = orjson.loads(raw)
            payload = (
                d["payload"].encode() if "payload" in d else base64.b64decode(d["payload_b64"])
            )
            yield d["t"], d["topic"], payload


class Diverter(Protocol):
    """Takes some devices off the MQTT path (``gbt_sink.GbtFleet``: GB/T panels over TCP):
    :meth:`send` gets their messages, paced like the rest, and must not block."""

    def takes(self, device_id: str) -> bool: ...

    def send(self, m: SimulatedMessage) -> None: ...


class _Counter:
    """A counter incremented from many paho threads."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.value += 1


class _Link:
    """One MQTT connection (a gateway, or a device with its own will)."""

    def __init__(
        self,
        addr: BrokerAddress,
        client_id: str,
        acked: _Counter,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        apply_tls(self.client, addr)  # mqtts://: verified against addr.ca_file
        if addr.username:
            self.client.username_pw_set(addr.username, addr.password)
        if will:
            self.client.will_set(will[0], will[1], qos=1)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, 5)
        self._acked = acked
        # What is out for a PUBACK, by mid, and what the broker answered 0x10 ("no
        # matching subscribers", e.g. ingest resubscribing after a broker restart): the
        # contract says to publish that again (docs/contract.md).
        self._out: dict[int, tuple[str, bytes]] = {}
        self._lock = threading.Lock()
        self.unrouted: list[tuple[str, bytes]] = []
        self.client.on_publish = self._on_publish
        self.connected = threading.Event()
        self.client.on_connect = lambda *_a: self.connected.set()
        self.client.connect_async(addr.host, addr.port, keepalive=30)
        self.client.loop_start()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        with self._lock:
            sent = self._out.pop(mid, None)
            if getattr(reason, "value", 0) == NO_MATCHING_SUBSCRIBERS and sent is not None:
                self.unrouted.append(sent)
                return
        self._acked.add()

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        with self._lock:
            self._out[info.mid] = (topic, payload)

    def resend_unrouted(self) -> int:
        """Publish again what the broker did not route; returns how many."""
        with self._lock:
            again, self.unrouted = self.unrouted, []
        for topic, payload in again:
            self.publish(topic, payload)
        return len(again)

    def drop(self) -> None:
        """Die without DISCONNECT: stop the loop, then shut the socket."""
        sock = self.client.socket()
        self.client.loop_stop()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(2)
            sock.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_mqtt(
    sim: Simulation,
    url: str,
    stop: threading.Event,
    speedup: float,
    credentials: dict[str, str] | None = None,
    ca_file: Path | None = None,
    divert: Diverter | None = None,
) -> SinkResult:
    """Live mode: publish the stream at ``speedup``× real time until it ends or ``stop``.

    ``credentials`` (device id -> password, e.g. from
    :func:`firewatch.core.credentials.read_credentials`): each of
    those devices logs in as itself over a connection of its own, as a real device does
    against a broker with per-device accounts (username = client id = device id); the rest
    share gateway connections with the URL's login. ``ca_file``: the CA that signs the
    broker's certificate, for an ``mqtts://`` URL (``Settings.mqtt_ca_file``). ``divert``:
    the devices it takes never connect to the broker; it gets their messages instead.

    Raises ``OSError`` only if no connection can be established at all.
    """
    addr = BrokerAddress.parse(url, ca_file=ca_file)
    creds = credentials or {}
    acked = _Counter()
    run = uuid.uuid4().hex[:6]
    diverted = {d.id for d in sim.devices if divert is not None and divert.takes(d.id)}
    mqtt_devices = [d for d in sim.devices if d.id not in diverted]
    wills = {k: v for k, v in sim.initial_wills().items() if k not in diverted}
    topic_of_status = {
        d.id: f"{sim.root}/{d.unit_id}/{d.id}/status"
        for d in mqtt_devices
        if d.own_connection or d.id in creds
    }

    def login(dev: str, suffix: str) -> tuple[BrokerAddress, str]:
        """The address and client id device ``dev`` connects with."""
        if dev in creds:  # the broker binds its account to client id = device id
            return replace(addr, username=dev, password=creds[dev]), dev
        return addr, f"{dev}-{run}{suffix}"

    own: dict[str, _Link] = {
        dev: _Link(*login(dev, ""), acked, (topic_of_status[dev], will))
        for dev, will in wills.items()
    }
    for d in mqtt_devices:
        if d.id in creds and d.id not in own:
            own[d.id] = _Link(*login(d.id, ""), acked)
    shared = [d for d in mqtt_devices if not d.own_connection and d.id not in creds]
    per = sim.scenario.connections.devices_per_gateway
    gateways = [_Link(addr, f"sim-gw-{run}-{g}", acked) for g in range(-(-len(shared) // per))]
    gateway_of = {d.id: gateways[i // per] for i, d in enumerate(shared)}
    result = SinkResult(devices=len(sim.devices), connections=len(own) + len(gateways))
    links = [*own.values(), *gateways]
    deadline = time.monotonic() + 30
    for each in links:
        if not each.connected.wait(max(0.0, deadline - time.monotonic())):
            for lk in links:
                lk.close()
            raise OSError(f"could not connect simulated devices to {addr.host}:{addr.port}")
    started = time.monotonic()
    last = sim.start
    handed = 0  # messages given to ``divert``: no PUBACK to wait for
    try:
        for m in sim.messages():
            ahead = (m.t - sim.start) / speedup - (time.monotonic() - started)
            if ahead > 0 and stop.wait(ahead):
                break
            if stop.is_set():
                break
            while result.messages - acked.value > MAX_OUTSTANDING and not stop.wait(0.01):
                pass  # the broker is behind: wait rather than queue without bound
            if result.messages % 100 == 0:
                for each in [*own.values(), *gateways]:
                    each.resend_unrouted()
            link = own.get(m.device.id) or gateway_of.get(m.device.id)
            if divert is not None and m.device.id in diverted:
                divert.send(m)
                handed += m.action is not Action.DROP  # a drop counts among the wills
            elif m.action is Action.DROP and m.device.id in own:
                own.pop(m.device.id).drop()  # the broker publishes the will
            elif m.action is Action.RECONNECT and m.device.own_connection:
                will = (topic_of_status[m.device.id], m.will or b"")
                own[m.device.id] = _Link(*login(m.device.id, f"-{m.t:.0f}"), acked, will)
                own[m.device.id].publish(m.topic, m.payload)
            elif link is not None:
                link.publish(m.topic, m.payload)
            else:
                continue  # an own-connection device that is down sends nothing
            result.count(m)
            last = m.t
    finally:
        wait_until = time.monotonic() + 10
        # wills are published by the broker
        expected = result.messages - result.wills - handed
        while acked.value < expected and time.monotonic() < wait_until:
            for each in [*own.values(), *gateways]:
                each.resend_unrouted()
            time.sleep(0.05)  # bounded wait for the last PUBACKs
        for link in [*own.values(), *gateways]:
            link.close()
        result.acknowledged = acked.value
        result.sim_seconds = last - sim.start
        result.wall_seconds = time.monotonic() - started
    return result
