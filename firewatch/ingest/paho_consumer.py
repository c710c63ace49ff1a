"""The paho-mqtt consumer (``FIREWATCH_INGEST_CONSUMER=paho``): one paho-mqtt 2 client,
MQTT 5, persistent session, QoS 1 with manual acknowledgement. The consumer before issue 15,
kept for one release as a fallback and as the benchmark's comparison (ADR 0013); the
contract it meets is in :mod:`firewatch.ingest.consumer`.

All paho calls happen on one network thread; other threads hand acknowledgements over
through a deque, sent at the next turn of paho's loop (every ``LOOP_TIMEOUT_S`` at most).
Messages reach the handler in lists: everything one turn of the network loop read, with one
receive time (docs/performance.md: per-message hand-offs cost more than the work).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from firewatch.ingest.consumer import Consumer, Delivery, ack_token
from firewatch.runtime.mqtt_tls import apply_tls

log = logging.getLogger(__name__)

#: Longest one turn of the network loop waits for the socket (also bounds ack latency).
LOOP_TIMEOUT_S = 0.005


def _properties(packet_type: int, **values: int) -> Properties:
    """MQTT 5 properties for one packet type (paho sets them as attributes)."""
    props = Properties(packet_type)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    return props


class PahoConsumer(Consumer):
    """A :class:`~firewatch.ingest.consumer.Consumer` on paho-mqtt."""

    def _setup(self) -> None:
        self._arrived: list[Delivery] = []
        self._props = _properties(
            PacketTypes.CONNECT,
            SessionExpiryInterval=self._session_expiry_s,
            ReceiveMaximum=self._receive_maximum,
        )
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        apply_tls(client, self._addr)
        if self._addr.username:
            client.username_pw_set(self._addr.username, self._addr.password)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        self._client = client

    # --- acknowledgements (sent at the next turn of paho's loop) ---------------------------
    def _send_acks(self) -> None:
        """PUBACK the queued tokens of this connection, in order; drop those of an earlier
        connection (the broker redelivers those messages)."""
        acks = self._acks
        n = len(acks)
        gen = self.generation
        live = self.connected.is_set()
        sent = 0
        for _ in range(n):
            token = acks.popleft()
            if live and token >> 16 == gen:
                self._client.ack(token & 0xFFFF, 1)
                sent += 1
        self.acks_sent += sent
        self.acks_dropped += n - sent
        self._metrics.inflight.dec(n)

    # --- network thread --------------------------------------------------------------------
    def _run(self) -> None:
        client = self._client
        first = True
        while not self._stop.is_set():
            try:
                if first:
                    client.connect(
                        self._addr.host,
                        self._addr.port,
                        keepalive=self._keepalive,
                        clean_start=False,
                        properties=self._props,
                    )
                    first = False
                else:
                    client.reconnect()
            except (OSError, mqtt.WebsocketConnectionError) as err:
                self._retry_wait(f"broker {self._addr.host}:{self._addr.port} unreachable: {err}")
                continue
            rc = MQTTErrorCode.MQTT_ERR_SUCCESS
            while not self._stop.is_set() and rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                rc = client.loop(timeout=LOOP_TIMEOUT_S)
                if self._arrived:
                    self._hand_over()
                if self._acks:
                    self._send_acks()
            if self._stop.is_set():
                break
            self._lost_connection(f"connection lost ({rc.name})")
            self._retry_wait("reconnecting")
        self._send_acks()
        client.loop_write()
        client.disconnect(
            properties=_properties(
                PacketTypes.DISCONNECT, SessionExpiryInterval=self.final_session_expiry_s
            )
        )
        client.loop(timeout=0.1)

    def _hand_over(self) -> None:
        batch, self._arrived = self._arrived, []
        self.last_message_at = time.monotonic()
        if not self._intake_open:
            self.ignored_after_close += len(batch)
            self._metrics.inflight.dec(sum(1 for _, _, t in batch if t is not None))
            return
        self._metrics.received.inc(len(batch))
        self._handler(batch, datetime.now(UTC))

    def _lost_connection(self, why: str) -> None:
        if self.connected.is_set():
            log.log(logging.INFO if self._stop.is_set() else logging.WARNING, "MQTT %s", why)
        self.connected.clear()
        self.subscribed.clear()
        self._metrics.ready.set(0)
        self.generation += 1

    # --- paho callbacks (network thread) ---------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            client.disconnect()
            return
        self._backoff.reset()
        self.connected.set()
        self.session_present = bool(flags.session_present)
        log.info(
            "connected to %s:%d as %s (session present: %s)",
            self._addr.host,
            self._addr.port,
            self._client_id,
            flags.session_present,
        )
        # Every time, session present or not (module docstring).
        if self._subscription is not None:
            client.subscribe(self._subscription, options=SubscribeOptions(qos=1))
        # After the subscribe: between the two, a message may match both (a duplicate,
        # which the database absorbs) but never neither (a loss).
        if self._unsubscribe:
            client.unsubscribe(self._unsubscribe)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("subscription %s refused: %s", self._subscription, reasons)
            return
        self.subscribed.set()
        if self._intake_open:
            self._metrics.ready.set(1)

    def _on_unsubscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        self.unsubscribed.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "value", None) == 0x8E:  # Session taken over
            log.error(
                "the broker gave this worker's session to another client with the same "
                "client id %r: each worker needs its own FIREWATCH_INGEST_CLIENT_ID",
                self._client_id,
            )
        self._lost_connection(f"disconnected: {reason}")

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        token = ack_token(self.generation, msg.mid) if msg.qos > 0 else None
        if token is not None:
            self._metrics.inflight.inc()
        self._arrived.append((msg.topic, cast(bytes, msg.payload), token))
