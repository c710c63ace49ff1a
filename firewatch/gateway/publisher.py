"""An asyncio MQTT 5 publisher on the ``mqtt5`` sans-I/O codec (as ingest's consumer,
ADR 0013): the gateway's one connection to the broker.

``await publisher.publish(topic, payload)`` returns only when the broker's PUBACK says
**Success**; the gateway confirms a device's frame only after every message of it came
back so (docs/gateway.md). The guarantees and what they cost:

- **QoS 1, at least once.** Every message stays ours until its PUBACK. When the connection
  is lost, the messages in flight go back to the head of the queue, in their order, and are
  sent again with DUP set on the next connection (a clean session: the broker keeps no
  state for a publisher). A duplicate is harmless: ingest stores (device, ts, seq) once.
- **PUBACK 0x10 (No matching subscribers)**: the broker took the message nowhere (ingest
  is not subscribed yet, e.g. right after a broker restart). It is published again after
  ``no_subscribers_retry_s`` (docs/contract.md asks devices the same), and ``publish`` keeps
  waiting.
- **Any other failure code** (0x80 and up, e.g. 0x87 Not authorized): :class:`PublishRefused`;
  sending it again would only be refused again.
- **In flight**: at most the broker's Receive Maximum (and ``max_inflight``) unacknowledged
  messages; the rest wait in order.
- **Bounded**: at most ``queue_limit`` messages are waiting or in flight. When full,
  ``publish`` waits for room: the frame is not confirmed yet, the device keeps it (and
  resends it after its own timeout), so backpressure reaches the devices and memory stays
  bounded. The same holds while the broker is unreachable: nothing is confirmed, nothing
  is lost.
- **Cancelling** ``publish`` (its device connection closed) drops the message if it was not
  sent yet: its frame was never confirmed, the device sends it again.
- **Reconnects** with exponential backoff (``firewatch.core.backoff``); keepalive pings
  detect a broker that stopped answering.
- **TLS** for ``mqtts://`` addresses, verified as every Firewatch client does
  (``firewatch.runtime.mqtt_tls.client_context``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import mqtt5

from firewatch.core.backoff import Backoff
from firewatch.core.broker import BrokerAddress
from firewatch.runtime.mqtt_tls import client_context

log = logging.getLogger(__name__)

READ_BYTES = 1 << 16
CONNECT_TIMEOUT_S = 10.0
_QOS1 = mqtt5.QoS.AT_LEAST_ONCE
_PINGREQ = mqtt5.PingReqPacket().write()
_NO_MATCHING_SUBSCRIBERS = 0x10
_FATAL = (KeyboardInterrupt, SystemExit, GeneratorExit)


class ConnectionLost(Exception):
    """The broker connection ended (closed, refused, keepalive expired, bad bytes)."""


class PublishRefused(Exception):
    """The broker answered a PUBLISH with a failure reason code (0x80 and up)."""

    def __init__(self, topic: str, code: int, name: str) -> None:
        super().__init__(f"the broker refused a message on {topic!r}: {name} (0x{code:02x})")
        self.topic = topic
        self.code = code


class PublisherClosed(Exception):
    """``publish`` on a publisher that is closing, or that closed before the PUBACK came."""


@dataclass(eq=False)
class _Message:
    topic: str
    payload: bytes
    future: asyncio.Future[None]
    queued_at: float = field(default_factory=time.monotonic)
    dup: bool = False


def decode(buffer: bytes) -> tuple[list[mqtt5.Packet], int]:
    """Every whole packet at the start of ``buffer`` and the bytes they took;
    :class:`ConnectionLost` for bytes that are not MQTT 5."""
    packets: list[mqtt5.Packet] = []
    view = memoryview(buffer)
    pos = 0
    try:
        while pos < len(buffer):
            packet, used = mqtt5.read(view[pos:])
            packets.append(packet)
            pos += used
    except IndexError:  # a packet cut by the read: the rest comes with the next one
        pass
    except BaseException as err:
        # mqtt5 raises ValueError for malformed input and a pyo3 PanicException (a
        # BaseException) for some: both are the broker's bytes, not our fault.
        if isinstance(err, _FATAL):
            raise
        raise ConnectionLost(f"malformed packet from the broker ({err!r})") from err
    return packets, pos


class MqttPublisher:
    """One MQTT 5 connection that publishes at QoS 1 (see the module docstring).

    Use as ``async with MqttPublisher(addr, client_id) as pub``: entering starts connecting
    in the background and returns at once (devices are served while the broker is away,
    just not confirmed); :attr:`connected` is set while a connection is up. Leaving waits
    up to ``drain_timeout_s`` for what is in flight, then disconnects; publishes still
    waiting then fail with :class:`PublisherClosed`.

    ``on_connection(up)`` is called when a connection comes up or goes; ``on_retry(reason,
    n)`` when ``n`` messages are sent again (``reconnect``: they were in flight when the
    connection was lost; ``no_subscribers``: a 0x10 PUBACK). Both are for metrics.
    """

    def __init__(
        self,
        addr: BrokerAddress,
        client_id: str,
        *,
        keepalive_s: int = 30,
        queue_limit: int = 10_000,
        max_inflight: int = 1_000,
        backoff: Backoff | None = None,
        no_subscribers_retry_s: float = 1.0,
        drain_timeout_s: float = 10.0,
        on_connection: Callable[[bool], None] | None = None,
        on_retry: Callable[[str, int], None] | None = None,
    ) -> None:
        self.addr = addr
        self.client_id = client_id
        self.keepalive_s = keepalive_s
        self.max_inflight = max_inflight
        self.no_subscribers_retry_s = no_subscribers_retry_s
        self.drain_timeout_s = drain_timeout_s
        self.connected = asyncio.Event()
        self.connects = 0  # successful CONNACKs, for tests and logs
        self.retries_no_subscribers = 0
        self._tls: ssl.SSLContext | None = client_context(addr) if addr.tls else None
        self._backoff = backoff or Backoff(0.2, 10.0)
        self._on_connection = on_connection
        self._on_retry = on_retry
        self._slots = asyncio.Semaphore(queue_limit)
        self._waiting: deque[_Message] = deque()
        self._inflight: dict[int, _Message] = {}
        self._retrying: set[_Message] = set()  # waiting out a 0x10 before going again
        self._ping_sent = 0.0
        self._window = 1
        self._next_id = 0
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()  # a PUBACK came (close waits on it)
        self._closing = False
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._said_unreachable = False

    # --- the caller's side ----------------------------------------------------------------
    async def __aenter__(self) -> MqttPublisher:
        self._task = asyncio.create_task(self._run(), name="mqtt-publisher")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def pending(self) -> int:
        """Messages waiting or in flight."""
        return len(self._waiting) + len(self._inflight)

    async def publish(self, topic: str, payload: bytes) -> None:
        """Send ``payload`` on ``topic`` at QoS 1; return when the broker acknowledged it
        with Success. Waits (without bound) while the queue is full or the broker is away.
        Raises :class:`PublishRefused` or :class:`PublisherClosed`."""
        if self._closing:
            raise PublisherClosed("the publisher is closing")
        async with self._slots:
            if self._closing:
                raise PublisherClosed("the publisher is closing")
            msg = _Message(topic, payload, asyncio.get_running_loop().create_future())
            self._waiting.append(msg)
            self._wake.set()
            # Cancelled here, the future is cancelled too: not sent yet, it is skipped.
            await msg.future

    async def close(self) -> None:
        """Wait (bounded) until nothing is in flight or waiting, then DISCONNECT and stop."""
        if self._task is None:
            return
        self._closing = True
        deadline = time.monotonic() + self.drain_timeout_s
        while self.pending and self.connected.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("closing with %d messages not acknowledged", self.pending)
                break
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), left)
        self._stopped.set()
        self._wake.set()
        task, self._task = self._task, None
        done, _ = await asyncio.wait({task}, timeout=2.0)
        if not done:  # still connecting: nothing to say goodbye on
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._lost()
        for msg in [*self._inflight.values(), *self._waiting, *self._retrying]:
            if not msg.future.done():
                msg.future.set_exception(PublisherClosed("closed before the broker's PUBACK"))
        self._inflight.clear()
        self._waiting.clear()
        self._retrying.clear()

    # --- the connection ---------------------------------------------------------------------
    async def _run(self) -> None:
        addr = self.addr
        while not self._stopped.is_set():
            try:
                reader, writer = await asyncio.wait_for(self._connect(), CONNECT_TIMEOUT_S)
            except (OSError, ConnectionLost, TimeoutError) as err:
                self._close_writer()
                if not self._said_unreachable:
                    log.warning("broker %s:%d unreachable: %s", addr.host, addr.port, err)
                    self._said_unreachable = True
                await self._pause()
                continue
            try:
                await self._serve(reader, writer)
                await self._disconnect(writer)  # stopped: say goodbye
            except (OSError, ConnectionLost, TimeoutError) as err:
                log.warning(
                    "MQTT connection lost (%s): %d messages to send again",
                    err or type(err).__name__,
                    len(self._inflight),
                )
            finally:
                self._lost()
            await self._pause()

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), self._backoff.next())

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        addr = self.addr
        reader, writer = await asyncio.open_connection(
            addr.host,
            addr.port,
            ssl=self._tls,
            server_hostname=addr.host if self._tls is not None else None,
        )
        self._writer = writer
        connect = mqtt5.ConnectPacket(
            self.client_id,
            username=addr.username,
            password=addr.password.encode() if addr.password is not None else None,
            clean_start=True,
            keep_alive=self.keepalive_s,
        )
        writer.write(connect.write())
        await writer.drain()
        buffer = b""
        packets: list[mqtt5.Packet] = []
        while not packets:
            data = await reader.read(READ_BYTES)
            if not data:
                raise ConnectionLost("the broker closed the connection before CONNACK")
            buffer += data
            packets, _used = decode(buffer)
        connack = packets[0]
        if not isinstance(connack, mqtt5.ConnAckPacket):
            raise ConnectionLost(f"expected CONNACK, got {type(connack).__name__}")
        if connack.reason_code.value >= 0x80:
            raise ConnectionLost(f"the broker refused the connection: {connack.reason_code.name}")
        if connack.server_keep_alive is not None:
            self.keepalive_s = connack.server_keep_alive
        self._window = max(1, min(self.max_inflight, connack.receive_max))
        self._backoff.reset()
        self._said_unreachable = False
        self.connects += 1
        self.connected.set()
        if self._on_connection:
            self._on_connection(True)
        log.info(
            "publishing to %s:%d as %s (%d messages to send)",
            addr.host,
            addr.port,
            self.client_id,
            self.pending,
        )
        return reader, writer

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Send and read until the connection ends (raises) or the publisher stops."""
        self._ping_sent = 0.0
        tasks = {
            asyncio.create_task(self._send_loop(writer)),
            asyncio.create_task(self._read_loop(reader)),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for t in done:
            t.result()  # re-raise why it ended

    async def _send_loop(self, writer: asyncio.StreamWriter) -> None:
        last_out = time.monotonic()
        while not self._stopped.is_set():
            self._wake.clear()
            out = bytearray()
            while self._waiting and len(self._inflight) < self._window:
                msg = self._waiting.popleft()
                if msg.future.done():  # its publish was cancelled before it was sent
                    continue
                pid = self._packet_id()
                self._inflight[pid] = msg
                out += mqtt5.PublishPacket(
                    msg.topic, msg.payload, qos=_QOS1, packet_id=pid, duplicate=msg.dup
                ).write()
            now = time.monotonic()
            keepalive = self.keepalive_s
            if keepalive:
                if self._ping_sent and now - self._ping_sent > keepalive:
                    raise ConnectionLost("no PINGRESP within the keepalive")
                if not self._ping_sent and now - last_out >= keepalive / 2:
                    out += _PINGREQ
                    self._ping_sent = now
            if out:
                writer.write(out)
                await writer.drain()
                last_out = time.monotonic()
            timeout = keepalive / 4 if keepalive else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        pending = b""
        while True:
            data = await reader.read(READ_BYTES)
            if not data:
                raise ConnectionLost("closed by the broker")
            buffer = pending + data if pending else data
            packets, used = decode(buffer)
            pending = buffer[used:]
            for packet in packets:
                if isinstance(packet, mqtt5.PubAckPacket):
                    self._on_puback(packet)
                elif isinstance(packet, mqtt5.PingRespPacket):
                    self._ping_sent = 0.0
                elif isinstance(packet, mqtt5.DisconnectPacket):
                    raise ConnectionLost(f"the broker disconnected us: {packet.reason_code.name}")
                else:
                    raise ConnectionLost(f"a publisher does not expect {type(packet).__name__}")

    def _on_puback(self, packet: mqtt5.PubAckPacket) -> None:
        msg = self._inflight.pop(packet.packet_id, None)
        if msg is None:
            return  # an id of an earlier connection's message (sent again since)
        self._wake.set()  # a slot of the window is free
        self._progress.set()
        if msg.future.done():
            return
        code = packet.reason_code.value
        if code == _NO_MATCHING_SUBSCRIBERS:
            self.retries_no_subscribers += 1
            if self.retries_no_subscribers == 1 or self.retries_no_subscribers % 1000 == 0:
                log.warning(
                    "no subscriber for %s (ingest not subscribed?): publishing again in %.1f s "
                    "(%d times so far)",
                    msg.topic,
                    self.no_subscribers_retry_s,
                    self.retries_no_subscribers,
                )
            if self._on_retry:
                self._on_retry("no_subscribers", 1)
            self._retrying.add(msg)
            asyncio.get_running_loop().call_later(self.no_subscribers_retry_s, self._requeue, msg)
        elif code >= 0x80:
            msg.future.set_exception(PublishRefused(msg.topic, code, packet.reason_code.name))
        else:
            msg.future.set_result(None)

    def _requeue(self, msg: _Message) -> None:
        self._retrying.discard(msg)
        if not msg.future.done() and not self._stopped.is_set():
            msg.dup = False  # a new message to the broker, not a redelivery
            self._waiting.append(msg)
            self._wake.set()

    def _packet_id(self) -> int:
        nid = self._next_id
        while True:
            nid = nid % 0xFFFF + 1
            if nid not in self._inflight:
                self._next_id = nid
                return nid

    def _lost(self) -> None:
        """The connection ended: what was in flight goes back first, in its order, DUP."""
        if self.connected.is_set():
            self.connected.clear()
            if self._on_connection:
                self._on_connection(False)
        resend = [m for m in self._inflight.values() if not m.future.done()]
        for msg in resend:
            msg.dup = True
        if resend and self._on_retry and not self._stopped.is_set():
            self._on_retry("reconnect", len(resend))
        self._waiting.extendleft(reversed(resend))
        self._inflight.clear()
        self._close_writer()

    async def _disconnect(self, writer: asyncio.StreamWriter) -> None:
        """On stop: DISCONNECT (normal), so that the broker does not see a lost client."""
        with contextlib.suppress(OSError, TimeoutError):
            writer.write(mqtt5.DisconnectPacket().write())
            await asyncio.wait_for(writer.drain(), 1.0)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
