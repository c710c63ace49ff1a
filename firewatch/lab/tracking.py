"""A measuring device: an MQTT 5 publisher that remembers the broker's answer to each
QoS 1 publish, for counting what a broker acknowledged against what ingest stored."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from firewatch.core.broker import BrokerAddress

#: MQTT 5 PUBACK reason "No matching subscribers": the broker took the message nowhere.
NO_MATCHING_SUBSCRIBERS = 0x10


def water_payload(seq: int, ts: str) -> bytes:
    """A valid water telemetry payload (docs/contract.md)."""
    return orjson.dumps({"seq": seq, "ts": ts, "pressure_kpa": 300.0 + seq % 50})


class TrackingPublisher:
    """Publishes ``payload(seq)`` on one topic at QoS 1 and sorts each seq by the answer:
    ``acked`` (Success), ``unrouted`` (0x10, no matching subscribers: the contract says
    to publish it again) or ``other`` (any other reason code). Reconnects by itself
    (paho queues what is published meanwhile)."""

    def __init__(self, url: str, topic: str, payload: Any, client_id: str | None = None) -> None:
        addr = BrokerAddress.parse(url)
        self.topic = topic
        self.payload = payload
        self.acked: set[int] = set()
        self.unrouted: set[int] = set()
        self.other: list[int] = []
        self._mids: dict[int, int] = {}
        self._early: dict[int, int] = {}
        self._lock = threading.Lock()
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"dev-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        if addr.username:
            c.username_pw_set(addr.username, addr.password)
        c.max_inflight_messages_set(100)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(1, 2)
        c.on_publish = self._on_publish
        c.connect(addr.host, addr.port, keepalive=5)
        c.loop_start()
        self.client = c

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        code = int(getattr(reason, "value", 0))
        with self._lock:
            seq = self._mids.pop(mid, None)
            if seq is None:  # answered before publish() noted the mid
                self._early[mid] = code
                return
            self._record(seq, code)

    def _record(self, seq: int, code: int) -> None:
        if code == 0:
            self.acked.add(seq)
        elif code == NO_MATCHING_SUBSCRIBERS:
            self.unrouted.add(seq)
        else:
            self.other.append(code)

    def publish(self, seq: int) -> None:
        # Not under our lock: paho may hold its own while it calls on_publish.
        info = self.client.publish(self.topic, self.payload(seq), qos=1)
        with self._lock:
            code = self._early.pop(info.mid, None)
            if code is None:
                self._mids[info.mid] = seq
            else:
                self._record(seq, code)

    def answered(self) -> int:
        with self._lock:
            return len(self.acked) + len(self.unrouted) + len(self.other)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
