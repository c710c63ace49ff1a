"""A simple device simulator: every device of a seed city publishes contract-v1 messages.

Contract kept by every message (see :mod:`firewatch.core.contract`):

* topic ``topic_for(settings.topic_root, unit_id, device_id, channel)``, QoS 1;
* payload a JSON object (orjson) with ``seq`` strictly increasing per device from 1 and
  ``ts`` the UTC send time as RFC 3339 (``...Z``, millisecond precision);
* one MQTT 5 connection per device, whose last will is ``{"seq": 0, "ts": <connect time>,
  "state": "offline", "reason": "will"}`` on the device's status topic (QoS 1);
* after each connect the device publishes ``status`` ``online`` (firmware, battery, RSSI);
  at the end it publishes ``status`` ``offline`` with reason ``shutdown`` and disconnects
  cleanly, so the broker discards the will.

One scheduler thread spreads the devices' reports evenly over the interval (a heap of
next-due times); each client's own network thread (``loop_start``) does the I/O. Values come
from :mod:`firewatch.simulators.devices` and are deterministic for ``settings.simulate_seed``.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from firewatch.core.contract import topic_for
from firewatch.core.domain import CHANNELS_BY_KIND, Channel
from firewatch.core.settings import Settings
from firewatch.ingest.consumer import BrokerAddress
from firewatch.simulators.devices import Body, DeviceModel, model_for
from firewatch.storage.seed import read_seed

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # all devices must be connected within this
DRAIN_TIMEOUT_S = 5.0  # longest wait for outstanding PUBACKs at shutdown
DISCONNECT_TIMEOUT_S = 2.0
KEEPALIVE_S = 60
MAX_QUEUED = 1000  # per device: messages buffered while the broker is unreachable


class PublisherError(RuntimeError):
    """The simulator could not start (e.g. devices could not connect to the broker)."""


def device_now() -> datetime:
    """The current UTC time truncated to milliseconds (what :func:`rfc3339` can carry)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def rfc3339(ts: datetime) -> str:
    """``ts`` (timezone-aware) as RFC 3339 UTC with milliseconds and a ``Z`` suffix."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What a run published. ``acknowledged`` counts PUBACKs with a success reason code;
    ``dropped`` counts readings lost because a disconnected device's buffer was full;
    ``seconds`` is the length of the reporting phase (connect and shutdown excluded)."""

    published: dict[Channel, int]
    acknowledged: dict[Channel, int]
    devices: int
    seconds: float
    dropped: int = 0

    @property
    def total_published(self) -> int:
        return sum(self.published.values())

    @property
    def total_acknowledged(self) -> int:
        return sum(self.acknowledged.values())

    def summary(self) -> str:
        """One line, e.g. ``simulator published 12 messages (telemetry 8, event 2, status 2)
        from 2 devices in 1.0s; 12 acknowledged``."""
        parts = ", ".join(f"{ch.value} {self.published.get(ch, 0)}" for ch in Channel)
        line = (
            f"simulator published {self.total_published} messages ({parts}) from "
            f"{self.devices} devices in {self.seconds:.1f}s; "
            f"{self.total_acknowledged} acknowledged"
        )
        return line + (f"; {self.dropped} dropped (device buffer full)" if self.dropped else "")


class _Tally:
    """Published/acknowledged counts for all devices, keyed by (device index, mid).

    A PUBACK can be handled on the network thread before ``publish()`` has returned the mid
    to us; such early acks wait in ``_early`` until :meth:`sent` registers the message.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.published: Counter[Channel] = Counter()
        self.acknowledged: Counter[Channel] = Counter()
        self.dropped = 0
        self._pending: dict[tuple[int, int], Channel] = {}
        self._early: dict[tuple[int, int], bool] = {}

    def sent(self, index: int, channel: Channel, info: mqtt.MQTTMessageInfo) -> None:
        key = (index, info.mid)
        with self.cond:
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                self.dropped += 1  # the device's buffer is full: the reading is lost
                return
            self.published[channel] += 1
            if key in self._early:
                if self._early.pop(key):
                    self.acknowledged[channel] += 1
            else:
                self._pending[key] = channel

    def acked(self, index: int, mid: int, ok: bool) -> None:
        with self.cond:
            channel = self._pending.pop((index, mid), None)
            if channel is None:
                self._early[(index, mid)] = ok
            elif ok:
                self.acknowledged[channel] += 1
            self.cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until no publish is awaiting its PUBACK; False if ``timeout`` passed first."""
        with self.cond:
            return self.cond.wait_for(lambda: not self._pending, timeout)


class _DeviceLink:
    """One simulated device: its value model, seq counter and MQTT connection."""

    def __init__(
        self,
        index: int,
        unit_id: str,
        model: DeviceModel,
        root: str,
        addr: BrokerAddress,
        tally: _Tally,
    ) -> None:
        self.index = index
        self.model = model
        self.addr = addr
        self.tally = tally
        self.topics = {
            ch: topic_for(root, unit_id, model.device_id, ch) for ch in CHANNELS_BY_KIND[model.kind]
        }
        self.seq = 0
        self.lock = threading.Lock()  # seq allocation and publish() happen together
        self.stopping = False
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.refused: str | None = None
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"firewatch-sim-{model.device_id}",
            protocol=mqtt.MQTTv5,
        )
        client.max_queued_messages_set(MAX_QUEUED)
        if addr.username:
            client.username_pw_set(addr.username, addr.password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client
        self._set_will()

    def _set_will(self) -> None:
        """Will for the next connection; ``ts`` is (about) that connection's start."""
        will = {"seq": 0, "ts": rfc3339(device_now()), "state": "offline", "reason": "will"}
        self.client.will_set(self.topics[Channel.STATUS], orjson.dumps(will), qos=1)

    def start(self) -> None:
        self.client.connect_async(self.addr.host, self.addr.port, keepalive=KEEPALIVE_S)
        self.client.loop_start()

    def publish(
        self, channel: Channel, body: Body, ts: datetime, *, unless_stopping: bool = False
    ) -> None:
        """Publish ``body`` with the next ``seq`` and ``ts`` (QoS 1). While disconnected,
        paho queues the message (up to ``MAX_QUEUED``) and sends it after reconnecting."""
        with self.lock:
            if unless_stopping and self.stopping:
                return
            self.seq += 1
            payload = orjson.dumps({"seq": self.seq, "ts": rfc3339(ts), **body})
            info = self.client.publish(self.topics[channel], payload, qos=1)
        self.tally.sent(self.index, channel, info)

    def report(self) -> None:
        """One report interval: advance the model and publish what it produced."""
        now = device_now()
        for channel, body in self.model.tick(now):
            self.publish(channel, body, now)

    def shutdown(self) -> None:
        """Announce ``offline`` (reason ``shutdown``) if connected; no online after this."""
        with self.lock:
            self.stopping = True
        if self.connected.is_set():
            self.publish(Channel.STATUS, {"state": "offline", "reason": "shutdown"}, device_now())

    # --- paho callbacks (this client's network thread) --------------------------------------
    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            log.warning("%s: broker refused the connection: %s", self.model.device_id, reason)
            return
        self.publish(Channel.STATUS, self.model.online_status(), device_now(), unless_stopping=True)
        self.connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        if self.stopping:
            self.disconnected.set()
        else:
            log.warning("%s: disconnected (%s); reconnecting", self.model.device_id, reason)
            self._set_will()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        self.tally.acked(self.index, mid, not reason.is_failure)


def _await_connections(
    links: list[_DeviceLink], stop: threading.Event, timeout: float
) -> list[_DeviceLink]:
    """Wait until every link is connected, ``stop`` is set or ``timeout`` passes (``stop`` is
    checked every 0.1 s); return the links still not connected."""
    deadline = time.monotonic() + timeout
    for link in links:
        while not link.connected.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
            if stop.is_set() or time.monotonic() >= deadline:
                return [link for link in links if not link.connected.is_set()]
    return []


def _schedule(
    links: list[_DeviceLink], interval_s: float, duration_s: float | None, stop: threading.Event
) -> None:
    """Call each link's ``report`` every ``interval_s``, device ``i`` offset by
    ``i * interval_s / n``, until ``stop`` is set or ``duration_s`` has passed.
    Ticks missed because the process stalled are skipped, not burst."""
    start = time.monotonic()
    deadline = math.inf if duration_s is None else start + duration_s
    heap = [(start + i * interval_s / len(links), i) for i in range(len(links))]
    heapq.heapify(heap)
    while heap:
        due, i = heap[0]
        if due >= deadline or stop.wait(max(0.0, due - time.monotonic())):
            return
        links[i].report()
        now = time.monotonic()
        due += interval_s * max(1, math.floor((now - due) / interval_s) + 1)
        heapq.heapreplace(heap, (due, i))


def _close(links: list[_DeviceLink], tally: _Tally) -> None:
    """Offline status, wait for PUBACKs (bounded), clean disconnect (no will), stop loops."""
    for link in links:
        link.shutdown()
    if not tally.drain(DRAIN_TIMEOUT_S):
        log.warning("some messages were not acknowledged within %.0fs", DRAIN_TIMEOUT_S)
    # disconnect() answers MQTT_ERR_NO_CONN for a link that is not connected: nothing to await.
    sent = [link for link in links if link.client.disconnect() == MQTTErrorCode.MQTT_ERR_SUCCESS]
    deadline = time.monotonic() + DISCONNECT_TIMEOUT_S
    for link in sent:
        link.disconnected.wait(max(0.0, deadline - time.monotonic()))
    for link in links:
        link.client.loop_stop()


def run_publisher(
    settings: Settings,
    mqtt_url: str,
    *,
    seed_file: Path | None = None,
    interval_s: float | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
) -> PublishResult:
    """Simulate every device of the seed city (``read_seed(seed_file)``) against ``mqtt_url``.

    Each device reports every ``interval_s`` (default ``settings.simulate_interval_s``) until
    ``stop`` is set or ``duration_s`` passes (None: until ``stop``), then shuts down cleanly.
    Raises :class:`PublisherError` if the devices cannot connect within
    ``CONNECT_TIMEOUT_S``, and ``ValueError`` for a non-positive interval or negative duration.
    """
    interval = settings.simulate_interval_s if interval_s is None else interval_s
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval}")
    if duration_s is not None and duration_s < 0:
        raise ValueError(f"duration must not be negative, got {duration_s}")
    stop = stop or threading.Event()
    addr = BrokerAddress.parse(mqtt_url)
    city = read_seed(seed_file)
    tally = _Tally()
    links = [
        _DeviceLink(
            i,
            unit.id,
            model_for(dev, settings.simulate_seed, interval),
            settings.topic_root,
            addr,
            tally,
        )
        for i, (unit, dev) in enumerate((u, d) for u in city.units for d in u.devices)
    ]
    started = time.monotonic()
    try:
        for link in links:
            link.start()
        missing = _await_connections(links, stop, CONNECT_TIMEOUT_S)
        if missing and not stop.is_set():
            why = missing[0].refused or "no connection"
            raise PublisherError(
                f"{len(missing)} of {len(links)} simulated devices did not connect to "
                f"{addr.host}:{addr.port} within {CONNECT_TIMEOUT_S:.0f}s ({why})"
            )
        started = time.monotonic()
        if links and not stop.is_set():
            _schedule(links, interval, duration_s, stop)
    finally:
        seconds = time.monotonic() - started
        _close(links, tally)
    return PublishResult(
        published=dict(tally.published),
        acknowledged=dict(tally.acknowledged),
        devices=len(links),
        seconds=seconds,
        dropped=tally.dropped,
    )
