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
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from firewatch.core.backoff import Backoff
from firewatch.core.broker import BrokerAddress
from firewatch.ingest.consumer import AckToken, Delivery, Handler, ack_token
from firewatch.ingest.ingest_metrics import IngestMetrics
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


class PahoConsumer:
    """A :class:`~firewatch.ingest.consumer.Consumer` on paho-mqtt."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        subscription: str | None,
        handler: Handler,
        metrics: IngestMetrics,
        backoff: Backoff,
        session_expiry_s: int,
        receive_maximum: int,
        keepalive: int = 30,
        unsubscribe: Sequence[str] = (),
        ca_file: Path | None = None,
    ) -> None:
        self._addr = BrokerAddress.parse(url, ca_file=ca_file)  # ca_file: for mqtts:// only
        self._subscription = subscription
        self._unsubscribe = list(unsubscribe)
        self._client_id = client_id
        #: the session expiry stated at the final DISCONNECT (0: the broker drops the
        #: session and whatever is queued for it; see :meth:`end_session`)
        self.final_session_expiry_s = session_expiry_s
        self.session_present: bool | None = None
        self.unsubscribed = threading.Event()
        self.last_message_at = time.monotonic()
        self._handler = handler
        self._metrics = metrics
        self._backoff = backoff
        self._keepalive = keepalive
        self._session_expiry_s = session_expiry_s
        self._acks: deque[AckToken] = deque()
        self._arrived: list[Delivery] = []
        self._stop = threading.Event()
        self._intake_open = True
        self.generation = 0
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.acks_sent = 0
        self.acks_dropped = 0
        self.ignored_after_close = 0
        self._props = _properties(
            PacketTypes.CONNECT,
            SessionExpiryInterval=session_expiry_s,
            ReceiveMaximum=receive_maximum,
        )
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
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
        self._thread = threading.Thread(target=self._run, name="mqtt-network", daemon=True)

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> PahoConsumer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close_intake(self) -> None:
        """Stop taking messages: later arrivals are neither queued nor acknowledged, so the
        broker redelivers them to the next session. The connection stays up for acks."""
        self._intake_open = False
        self._metrics.ready.set(0)

    def end_session(self) -> None:
        """At :meth:`close`, ask the broker to delete this client's session (and anything
        still queued for it) instead of keeping it: retiring a worker for good."""
        self.final_session_expiry_s = 0

    def close(self, timeout: float = 5.0) -> None:
        """Send pending acks (up to ``timeout``), disconnect keeping the session, join."""
        self.close_intake()
        deadline = time.monotonic() + timeout
        while self._acks and self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.005)
        self._stop.set()
        self._thread.join(timeout=timeout + 5)

    # --- acknowledgements --------------------------------------------------------------------
    def ack(self, tokens: Sequence[AckToken | None]) -> None:
        """Queue acknowledgements (thread-safe); sent in order by the network thread."""
        self._acks.extend(t for t in tokens if t is not None)

    def pending_acks(self) -> int:
        return len(self._acks)

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

    def _retry_wait(self, why: str) -> None:
        self._metrics.reconnects.labels("mqtt").inc()
        delay = self._backoff.next()
        log.warning("%s; retrying in %.2fs", why, delay)
        self._stop.wait(delay)

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
