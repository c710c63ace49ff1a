"""The MQTT side of ingest: one MQTT 5 connection, persistent session, shared subscription,
QoS 1 with manual acknowledgement.

All socket work happens on one network thread owned by :class:`MqttConsumer`; other threads
hand acknowledgements over through a deque and wake the thread through a socket pair. The
broker never has more than ``ingest_max_inflight`` unacknowledged messages out to us (MQTT 5
Receive Maximum), which is what bounds our memory: when the database is slow we stop
acknowledging, so the broker stops sending and queues for us instead.

An acknowledgement is tied to the connection the message arrived on. After a reconnect the
broker resends every unacknowledged message, and packet ids may be reused, so acks for the
old connection are dropped instead of being sent on the new one (they would risk
acknowledging a different, uncommitted message).

The wire protocol is :mod:`firewatch.ingest.mqtt5` rather than paho-mqtt: one ``recv`` takes
every packet the kernel has buffered, the handler gets them as one list with one receive
time, and a batch's PUBACKs leave in one ``send`` (docs/performance.md has the numbers).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from firewatch.core.backoff import Backoff
from firewatch.ingest import mqtt5
from firewatch.ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)

#: Bytes asked of the kernel per read: many messages per system call under load.
RECV_BYTES = 1 << 18
#: Longest the network thread sleeps without checking for shutdown and keepalive.
IDLE_WAKE_S = 0.1
CONNECT_TIMEOUT_S = 10.0


class BrokerUrlError(ValueError):
    """The MQTT URL is not ``mqtt://[user[:password]@]host[:port]``."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise BrokerUrlError(f"unsupported MQTT URL {url!r}: use mqtt://host:port")
        return cls(
            parts.hostname,
            parts.port or 1883,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )


#: Identifies one received QoS 1 message on one connection: ``generation << 16 | packet id``
#: (an int rather than an object: one is made per message).
AckToken = int


def ack_token(generation: int, mid: int) -> AckToken:
    return (generation << 16) | mid


#: One received message: topic, payload, and its ack token (None for QoS 0).
Message = tuple[str, bytes, AckToken | None]
#: ``handler(messages, received_at)``: every message of one socket read, in arrival order.
Handler = Callable[[list[Message], datetime], None]


class ConnectionLost(Exception):
    """The connection ended (broker closed it, socket error, keepalive, protocol error)."""


class MqttConsumer:
    """Context manager owning the MQTT connection and its network thread.

    ``handler(messages, received_at)`` runs on the network thread with the messages of each
    socket read while intake is open. The handler may block (that is backpressure towards
    the broker) but must not raise.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        subscription: str,
        handler: Handler,
        metrics: IngestMetrics,
        backoff: Backoff,
        session_expiry_s: int,
        receive_maximum: int,
        keepalive: int = 30,
    ) -> None:
        self._addr = BrokerAddress.parse(url)
        self._client_id = client_id
        self._subscription = subscription
        self._handler = handler
        self._metrics = metrics
        self._backoff = backoff
        self._keepalive = keepalive
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        self._acks: deque[AckToken] = deque()
        self._stop = threading.Event()
        self._intake_open = True
        self._sock: socket.socket | None = None
        self._out = bytearray()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.generation = 0
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.acks_sent = 0
        self.acks_dropped = 0
        self.ignored_after_close = 0
        self._thread = threading.Thread(target=self._run, name="mqtt-network", daemon=True)

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> MqttConsumer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close_intake(self) -> None:
        """Stop taking messages: later arrivals are neither queued nor acknowledged, so the
        broker redelivers them to the next session. The connection stays up for acks."""
        self._intake_open = False
        self._metrics.ready.set(0)

    def close(self, timeout: float = 5.0) -> None:
        """Send pending acks (up to ``timeout``), disconnect keeping the session, join."""
        self._intake_open = False
        deadline = time.monotonic() + timeout
        while self._acks and self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.005)
        self._stop.set()
        self._wake()
        self._thread.join(timeout=timeout + 5)
        self._wake_r.close()
        self._wake_w.close()

    # --- acknowledgements --------------------------------------------------------------------
    def ack(self, tokens: Sequence[AckToken | None]) -> None:
        """Queue acknowledgements (thread-safe); sent in order by the network thread."""
        self._acks.extend(t for t in tokens if t is not None)
        self._wake()

    def pending_acks(self) -> int:
        return len(self._acks)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (already woken) or closed
            self._wake_w.send(b"\0")

    def _take_acks(self) -> None:
        """Move queued acks of this connection into the output buffer (one PUBACK each);
        drop those of an earlier connection (the broker redelivers those messages)."""
        acks = self._acks
        if not acks:
            return
        n = len(acks)
        tokens = [acks.popleft() for _ in range(n)]
        gen = self.generation
        live = self.connected.is_set()
        mids = [t & 0xFFFF for t in tokens if live and t >> 16 == gen]
        if mids:
            self._out += mqtt5.pubacks(mids)
        self.acks_sent += len(mids)
        self.acks_dropped += n - len(mids)
        self._metrics.inflight.dec(n)

    # --- network thread --------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._connect()
            except (OSError, mqtt5.ProtocolError, ConnectionLost) as err:
                self._close_socket()
                self._retry_wait(f"broker {self._addr.host}:{self._addr.port} unreachable: {err}")
                continue
            try:
                self._serve(first)
            except (OSError, mqtt5.ProtocolError, ConnectionLost) as err:
                self._lost_connection(f"connection lost ({err or type(err).__name__})")
                self._retry_wait("reconnecting")
                continue
            break  # stop requested while connected
        self._disconnect()

    def _connect(self) -> list[mqtt5.Publish | mqtt5.Packet]:
        """TCP connect, CONNECT/CONNACK, SUBSCRIBE. Returns packets that arrived with the
        CONNACK (a present session's queued messages may follow it at once)."""
        addr = self._addr
        sock = socket.create_connection((addr.host, addr.port), timeout=CONNECT_TIMEOUT_S)
        self._sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(
            mqtt5.connect_packet(
                self._client_id, keepalive=self._keepalive, clean_start=False,
                session_expiry_s=self._session_expiry_s,
                receive_maximum=self._receive_maximum,
                username=addr.username, password=addr.password,
            )
        )  # fmt: skip
        self._reader = mqtt5.PacketReader()
        packets: list[mqtt5.Publish | mqtt5.Packet] = []
        while not packets:
            data = sock.recv(RECV_BYTES)
            if not data:
                raise ConnectionLost("broker closed the connection before CONNACK")
            packets = self._reader.feed(data)
        connack = packets[0]
        if not isinstance(connack, mqtt5.Packet) or connack.kind != mqtt5.CONNACK:
            raise mqtt5.ProtocolError("expected CONNACK")
        flags, reason = connack.body[0], connack.body[1]
        if reason >= 0x80:
            log.error("broker refused the connection: reason 0x%02x", reason)
            raise ConnectionLost(f"CONNACK reason 0x{reason:02x}")
        props, _ = mqtt5.parse_properties(connack.body, 2)
        server_keepalive = props.get(mqtt5.SERVER_KEEP_ALIVE)
        self._live_keepalive = (
            server_keepalive if isinstance(server_keepalive, int) else self._keepalive
        )
        sock.setblocking(False)
        self._out = bytearray(mqtt5.subscribe_packet(1, self._subscription, qos=1))
        self._backoff.reset()
        self.connected.set()
        log.info("connected to %s:%d (session present: %s)", addr.host, addr.port, bool(flags & 1))
        return packets[1:]

    def _serve(self, first: list[mqtt5.Publish | mqtt5.Packet]) -> None:
        """Read, dispatch and acknowledge until stop is set; raises when the connection ends."""
        sock = self._sock
        assert sock is not None
        wake_r = self._wake_r
        keepalive = self._live_keepalive
        last_out = time.monotonic()
        ping_sent = 0.0
        self._dispatch(first, datetime.now(UTC))
        while not self._stop.is_set():
            self._take_acks()
            if self._out:
                try:
                    sent = sock.send(self._out)
                except BlockingIOError:
                    sent = 0
                if sent:
                    del self._out[:sent]
                    last_out = time.monotonic()
            now = time.monotonic()
            if keepalive:
                if ping_sent and now - ping_sent > keepalive:
                    raise ConnectionLost("no PINGRESP within the keepalive")
                if not ping_sent and now - last_out >= keepalive / 2:
                    self._out += mqtt5.PINGREQ_PACKET
                    ping_sent = now
                    continue
            readable, _, _ = select.select(
                [sock, wake_r], [sock] if self._out else [], [], IDLE_WAKE_S
            )
            if wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    wake_r.recv(4096)
            if sock not in readable:
                continue
            try:
                data = sock.recv(RECV_BYTES)
            except BlockingIOError:
                continue
            if not data:
                raise ConnectionLost("closed by the broker")
            packets = self._reader.feed(data)
            if packets and self._dispatch(packets, datetime.now(UTC)):
                ping_sent = 0.0

    def _dispatch(self, packets: list[mqtt5.Publish | mqtt5.Packet], received: datetime) -> bool:
        """Hand PUBLISHes to the handler, handle the rest. Returns True if a PINGRESP came."""
        messages: list[Message] = []
        pong = False
        gen = self.generation << 16
        for p in packets:
            if type(p) is mqtt5.Publish:
                messages.append((p.topic, p.payload, gen | p.mid if p.qos else None))
                continue
            assert isinstance(p, mqtt5.Packet)
            kind = p.kind & 0xF0
            if kind == mqtt5.PINGRESP:
                pong = True
            elif kind == mqtt5.SUBACK:
                self._on_suback(p.body)
            elif kind == mqtt5.DISCONNECT:
                reason = p.body[0] if p.body else 0
                raise ConnectionLost(f"broker sent DISCONNECT, reason 0x{reason:02x}")
            else:
                raise mqtt5.ProtocolError(f"unexpected packet type 0x{p.kind:02x}")
        if messages:
            if not self._intake_open:
                self.ignored_after_close += len(messages)
                return pong
            n_acks = sum(1 for m in messages if m[2] is not None)
            if n_acks:
                self._metrics.inflight.inc(n_acks)
            self._metrics.received.inc(len(messages))
            self._handler(messages, received)
        return pong

    def _on_suback(self, body: bytes) -> None:
        _, pos = mqtt5.parse_properties(body, 2)
        reasons = body[pos:]
        if not reasons or any(r >= 0x80 for r in reasons):
            log.error(
                "subscription %s refused: %s", self._subscription, [f"0x{r:02x}" for r in reasons]
            )
            return
        self.subscribed.set()
        self._metrics.ready.set(1)

    def _disconnect(self) -> None:
        """On stop: send the last acks and a DISCONNECT that keeps the session, close."""
        sock = self._sock
        if sock is not None and self.connected.is_set():
            self._take_acks()
            self._out += mqtt5.disconnect_packet(self._session_expiry_s)
            with contextlib.suppress(OSError):
                sock.settimeout(1.0)
                sock.sendall(self._out)
        self._take_acks()  # anything left is for a closed connection: counted as dropped
        self._close_socket()
        self.connected.clear()
        self.subscribed.clear()

    def _close_socket(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        self._out = bytearray()

    def _lost_connection(self, why: str) -> None:
        if self.connected.is_set():
            log.warning("MQTT %s", why)
        self._close_socket()
        self.connected.clear()
        self.subscribed.clear()
        self._metrics.ready.set(0)
        self.generation += 1
        self._take_acks()  # all of them belong to the old connection now

    def _retry_wait(self, why: str) -> None:
        self._metrics.reconnects.labels("mqtt").inc()
        delay = self._backoff.next()
        log.warning("%s; retrying in %.2fs", why, delay)
        self._stop.wait(delay)
