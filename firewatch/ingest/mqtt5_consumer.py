"""The default ingest consumer (``FIREWATCH_INGEST_CONSUMER=mqtt5``): the ``mqtt5`` codec
for the protocol, our own code only for the socket (ADR 0013).

``mqtt5`` is sans-I/O: ``mqtt5.read`` turns bytes into packet objects (strictly
validated) and each packet's ``write()`` turns it into bytes. This module owns what that
leaves: connecting (plain or TLS), reading, writing, waking up, keepalive, reconnecting.
The guarantees are the contract's (:mod:`firewatch.ingest.consumer`); how this one keeps
them:

- **One read, many packets.** One ``recv`` of up to 256 KiB takes whatever the kernel holds
  (hundreds of messages under load); they are decoded in one pass and handed over as one
  list with one receive time. No select or system call per message.
- **A batch's PUBACKs leave in one ``send``.** :meth:`Mqtt5Consumer.ack` queues tokens and
  wakes the network thread through a socket pair; it writes every PUBACK of this
  connection in one buffer and drops those of an earlier one.
- **Receive Maximum is announced and watched**: the broker may not send more
  unacknowledged QoS 1 messages. Mosquitto 2.0 does when it drains a session queued while
  we were away; that is logged, not fatal (see :meth:`Mqtt5Consumer._take_in`).
- **Maximum Packet Size** is announced (``MAX_PACKET_BYTES``), so a partial packet held
  between reads is bounded too.
- **Anything the codec refuses ends the connection** (:class:`ProtocolError`), never the
  worker: the broker redelivers whatever was not acknowledged. The broker validates what
  it accepts from devices (UTF-8 topics, property formats) before forwarding it, so only a
  broker or codec fault can get here; it is logged with the offending bytes and counted
  as a reconnect.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import time
from datetime import UTC, datetime

import mqtt5

from firewatch.ingest.consumer import Consumer, Delivery
from firewatch.runtime.mqtt_tls import client_context

log = logging.getLogger(__name__)

#: Bytes asked of the kernel per read: many messages per system call under load.
RECV_BYTES = 1 << 18
#: Announced to the broker as our Maximum Packet Size: above the broker's own 256 KiB
#: payload cap (mosquitto/conf.d) plus topic and properties, so that nothing it accepts
#: is withheld from us, and the most a partial packet can make us hold.
MAX_PACKET_BYTES = 1 << 20
#: Longest the network thread sleeps without checking for shutdown and keepalive.
IDLE_WAKE_S = 0.1
CONNECT_TIMEOUT_S = 10.0
_SUBSCRIBE_ID = 1
_UNSUBSCRIBE_ID = 2
_FATAL = (KeyboardInterrupt, SystemExit, GeneratorExit)


class ConnectionLost(Exception):
    """The connection ended (the broker closed it or refused us, keepalive expired)."""


class ProtocolError(ConnectionLost):
    """The broker sent bytes the codec refused, or a packet a subscriber must not get."""


def decode(buffer: bytes) -> tuple[list[mqtt5.Packet], int]:
    """Every whole packet at the start of ``buffer``, and how many bytes they took (the
    rest is the start of a packet still arriving). :class:`ProtocolError` for bytes that
    are not MQTT 5."""
    packets: list[mqtt5.Packet] = []
    append = packets.append
    read = mqtt5.read
    view = memoryview(buffer)
    end = len(buffer)
    pos = 0
    try:
        while pos < end:
            packet, used = read(view[pos:])
            append(packet)
            pos += used
    except IndexError:  # "Not enough bytes": a packet cut by the read
        pass
    except BaseException as err:
        # mqtt5 0.8.0 raises ValueError for most malformed input, but turns some (a topic
        # that is not UTF-8) into a Rust panic, raised as pyo3's PanicException, which
        # derives from BaseException: both are the broker's bytes, not our fault.
        if isinstance(err, _FATAL):
            raise
        sample = bytes(view[pos : pos + 64]).hex(" ")
        raise ProtocolError(f"malformed packet at byte {pos} ({err!r}): {sample}") from err
    return packets, pos


class Mqtt5Consumer(Consumer):
    """A :class:`~firewatch.ingest.consumer.Consumer` on the ``mqtt5`` codec."""

    def _setup(self) -> None:
        # Made here, so that a bad CA file fails at start, not at the first connect.
        self._tls = client_context(self._addr) if self._addr.tls else None
        self._sock: socket.socket | None = None
        self._out = bytearray()
        self._pending = b""  # the start of a packet still arriving
        self._unacked = 0  # QoS 1 messages of this connection not yet acknowledged
        self._over_receive_maximum = False  # said once per connection
        self._live_keepalive = self._keepalive
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.pongs = 0  # PINGRESPs received: keepalive at work

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (already woken) or closed
            self._wake_w.send(b"\0")

    def _release(self) -> None:
        self._wake_r.close()
        self._wake_w.close()

    def _take_acks(self) -> None:
        """Move the queued acks of this connection into the output buffer, in order, as
        PUBACKs; drop those of an earlier connection (the broker redelivers those)."""
        acks = self._acks
        n = len(acks)
        if not n:
            return
        popleft = acks.popleft
        tokens = [popleft() for _ in range(n)]
        gen = self.generation
        if self.connected.is_set():
            puback = mqtt5.PubAckPacket
            mine = [puback(t & 0xFFFF).write() for t in tokens if t >> 16 == gen]
        else:
            mine = []
        if mine:
            self._out += b"".join(mine)
            self._unacked -= len(mine)
        self.acks_sent += len(mine)
        self.acks_dropped += n - len(mine)
        self._metrics.inflight.dec(n)

    # --- network thread --------------------------------------------------------------------
    def _run(self) -> None:
        addr = self._addr
        while not self._stop.is_set():
            try:
                first = self._connect()
            except (OSError, ConnectionLost) as err:  # ssl.SSLError is an OSError
                self._close_socket()
                self._retry_wait(f"broker {addr.host}:{addr.port} unreachable: {err}")
                continue
            try:
                self._serve(first)
            except (OSError, ConnectionLost) as err:
                self._lost_connection(f"connection lost ({err or type(err).__name__})")
                self._retry_wait("reconnecting")
                continue
            break  # stop requested while connected
        self._disconnect()

    def _connect(self) -> list[mqtt5.Packet]:
        """TCP (and TLS) connect, CONNECT and CONNACK; queues SUBSCRIBE / UNSUBSCRIBE.
        Returns the packets that came in the CONNACK's read (a present session's queued
        messages may follow it at once)."""
        addr = self._addr
        sock = socket.create_connection((addr.host, addr.port), timeout=CONNECT_TIMEOUT_S)
        self._sock = sock
        # Our writes are already whole batches; Nagle would only delay them.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            sock = self._sock = self._tls.wrap_socket(sock, server_hostname=addr.host)
        connect = mqtt5.ConnectPacket(
            self._client_id,
            username=addr.username,
            password=addr.password.encode() if addr.password is not None else None,
            clean_start=False,
            keep_alive=self._keepalive,
            session_expiry_interval=self._session_expiry_s,
            receive_max=self._receive_maximum,
            max_packet_size=MAX_PACKET_BYTES,
        )
        sock.sendall(connect.write())
        self._pending = b""
        packets: list[mqtt5.Packet] = []
        while not packets:
            data = sock.recv(RECV_BYTES)
            if not data:
                raise ConnectionLost("the broker closed the connection before CONNACK")
            packets = self._feed(data)
        connack = packets[0]
        if not isinstance(connack, mqtt5.ConnAckPacket):
            raise ProtocolError(f"expected CONNACK, got {type(connack).__name__}")
        # The codec's reason codes are Rust enums: compare their ``value``.
        if connack.reason_code.value >= 0x80:
            reason = connack.reason_code.name
            log.error("broker refused the connection: %s", reason)
            raise ConnectionLost(f"CONNACK {reason}")
        server_keepalive = connack.server_keep_alive
        self._live_keepalive = self._keepalive if server_keepalive is None else server_keepalive
        sock.setblocking(False)
        self._out = bytearray()
        self._unacked = 0
        self._over_receive_maximum = False
        # Every time, session present or not (the contract's module docstring).
        if self._subscription is not None:
            topic = mqtt5.TopicFilter(
                self._subscription, max_qos=mqtt5.QoS.AT_LEAST_ONCE, retain_as_published=False
            )
            self._out += mqtt5.SubscribePacket(_SUBSCRIBE_ID, [topic]).write()
        # After the subscribe: between the two, a message may match both (a duplicate,
        # which the database absorbs) but never neither (a loss).
        if self._unsubscribe:
            self._out += mqtt5.UnsubscribePacket(_UNSUBSCRIBE_ID, self._unsubscribe).write()
        self._backoff.reset()
        self.session_present = connack.session_present
        self.connected.set()
        log.info(
            "connected to %s:%d as %s (session present: %s)",
            addr.host,
            addr.port,
            self._client_id,
            connack.session_present,
        )
        return packets[1:]

    def _feed(self, data: bytes) -> list[mqtt5.Packet]:
        """Decode ``data`` after whatever partial packet the last read left."""
        if self._pending:
            data = self._pending + data
        packets, used = decode(data)
        self._pending = data[used:] if used < len(data) else b""
        if len(self._pending) > MAX_PACKET_BYTES:
            raise ProtocolError(f"a packet over {MAX_PACKET_BYTES} bytes (our Maximum Packet Size)")
        return packets

    def _serve(self, first: list[mqtt5.Packet]) -> None:
        """Read, hand over and acknowledge until stop is set; raises when the connection
        ends."""
        sock = self._sock
        assert sock is not None
        wake_r = self._wake_r
        keepalive = self._live_keepalive
        last_out = time.monotonic()
        ping_sent = 0.0
        self._dispatch(first, datetime.now(UTC))
        while not self._stop.is_set():
            self._take_acks()
            if self._out and self._send(sock):
                last_out = time.monotonic()
            if keepalive:
                now = time.monotonic()
                if ping_sent and now - ping_sent > keepalive:
                    raise ConnectionLost("no PINGRESP within the keepalive")
                if not ping_sent and now - last_out >= keepalive / 2:
                    self._out += mqtt5.PingReqPacket().write()
                    ping_sent = now
                    continue
            # TLS may hold decrypted bytes the socket no longer signals.
            tls_pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
            if not tls_pending:
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
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
            if not data:
                raise ConnectionLost("closed by the broker")
            packets = self._feed(data)
            if packets and self._dispatch(packets, datetime.now(UTC)):
                ping_sent = 0.0

    def _send(self, sock: socket.socket) -> bool:
        """Write as much of the output buffer as the socket takes; True if any went."""
        try:
            sent = sock.send(self._out)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        del self._out[:sent]
        return sent > 0

    def _dispatch(self, packets: list[mqtt5.Packet], received: datetime) -> bool:
        """Hand one read's PUBLISHes to the handler, handle the rest. True if a PINGRESP
        came."""
        messages: list[Delivery] = []
        append = messages.append
        pong = False
        gen = self.generation << 16
        qos1 = 0
        publish = mqtt5.PublishPacket
        for p in packets:
            if type(p) is publish:
                mid = p.packet_id
                if mid is None:
                    append((p.topic, p.payload, None))
                else:
                    append((p.topic, p.payload, gen | mid))
                    qos1 += 1
            elif isinstance(p, mqtt5.PingRespPacket):
                pong = True
                self.pongs += 1
            elif isinstance(p, mqtt5.SubAckPacket):
                self._on_suback(p)
            elif isinstance(p, mqtt5.UnsubAckPacket):
                self.unsubscribed.set()
            elif isinstance(p, mqtt5.DisconnectPacket):
                self._on_disconnect(p)
            else:
                raise ProtocolError(f"a subscriber does not expect {type(p).__name__}")
        if messages:
            self._take_in(messages, qos1, received)
        return pong

    def _take_in(self, messages: list[Delivery], qos1: int, received: datetime) -> None:
        self.last_message_at = time.monotonic()
        self._unacked += qos1
        if self._unacked > self._receive_maximum and not self._over_receive_maximum:
            # Mosquitto 2.0 does this when it drains a session queued while we were away
            # (tests/ingest/test_faults.py, the burst test). Disconnecting, as MQTT 5 would
            # have us, would only repeat it; memory stays bounded anyway: the inbox blocks
            # this thread at twice Receive Maximum, and the kernel's buffers push back.
            self._over_receive_maximum = True
            log.warning(
                "the broker sent %d unacknowledged messages, over our Receive Maximum %d",
                self._unacked,
                self._receive_maximum,
            )
        if not self._intake_open:
            self.ignored_after_close += len(messages)
            return
        if qos1:
            self._metrics.inflight.inc(qos1)
        self._metrics.received.inc(len(messages))
        self._handler(messages, received)

    def _on_suback(self, packet: mqtt5.SubAckPacket) -> None:
        reasons = packet.reason_codes
        if not reasons or any(r.value >= 0x80 for r in reasons):
            names = [r.name for r in reasons]
            log.error("subscription %s refused: %s", self._subscription, names)
            return
        self.subscribed.set()
        if self._intake_open:
            self._metrics.ready.set(1)

    def _on_disconnect(self, packet: mqtt5.DisconnectPacket) -> None:
        reason = packet.reason_code
        if reason == mqtt5.DisconnectReasonCode.SESSION_TAKEN_OVER:
            log.error(
                "the broker gave this worker's session to another client with the same "
                "client id %r: each worker needs its own FIREWATCH_INGEST_CLIENT_ID",
                self._client_id,
            )
        raise ConnectionLost(f"the broker disconnected us: {reason.name}")

    def _disconnect(self) -> None:
        """On stop: the last acks and a DISCONNECT stating the session expiry, then close."""
        sock = self._sock
        if sock is not None and self.connected.is_set():
            self._take_acks()
            self._out += mqtt5.DisconnectPacket(
                session_expiry_interval=self.final_session_expiry_s
            ).write()
            with contextlib.suppress(OSError):
                sock.settimeout(1.0)
                sock.sendall(self._out)
        self.connected.clear()
        self._take_acks()  # anything left is for a closed connection: counted as dropped
        self._close_socket()
        self.subscribed.clear()

    def _close_socket(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        self._out = bytearray()
        self._pending = b""

    def _lost_connection(self, why: str) -> None:
        if self.connected.is_set():
            log.warning("MQTT %s", why)
        self._close_socket()
        self.connected.clear()
        self.subscribed.clear()
        self._metrics.ready.set(0)
        self.generation += 1
        self._take_acks()  # all of them belong to the old connection now
