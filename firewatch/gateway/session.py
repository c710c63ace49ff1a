"""One device connection of the GB/T 26875.3 gateway: read, delimit, verify, publish,
confirm (docs/gateway.md).

Per delimited frame, in order (the next frame is read only when this one is done, so a
device that outruns the broker is slowed down by its own unconfirmed frames):

1. ``peek`` the serial and source address; look the source up in the directory. Unknown (or
   decommissioned): **deny** with that serial, count, log once per address; the connection
   stays (the device may carry other, registered, addresses).
2. ``decode_frame`` with the device's profile. A bad checksum or length: **deny** echoing the
   peeked serial.
3. Command 2 (send data): decode the ADU, translate every object, publish them all at QoS 1
   and wait for every PUBACK, then **confirm** (command 3, same serial). If the broker
   refuses a message, or the gateway is stopping, the frame is left unconfirmed: the device
   keeps it and sends it again. Command 3 / 6 from the device answer our downlink (matched
   by serial). Anything else (1, 4, 5: a device has no business sending them to the center)
   is counted and ignored.

The connection is closed when it sends nothing for ``gateway_idle_timeout_s``; when a frame,
once begun, is not complete within ``gateway_frame_timeout_s`` (slowloris); when more than
``gateway_max_garbage_bytes`` bytes were part of no frame; when a write does not drain
within the frame timeout (a device that does not read); and on shutdown, after the frame in
progress. A session only ever waits on its own socket and on the publisher, never blocks
another one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from firewatch.core.gateway_rows import GatewayDevice
from firewatch.core.gbt_frame import (
    Command,
    Frame,
    FrameError,
    FrameReader,
    Rejected,
    answer,
    decode_frame,
    encode_frame,
    format_address,
    peek,
)
from firewatch.core.gbt_objects import InfoObject, decode_adu, encode_adu
from firewatch.core.gbt_profiles import STANDARD, Profile
from firewatch.gateway.gateway_metrics import GatewayMetrics
from firewatch.gateway.publisher import PublisherClosed, PublishRefused
from firewatch.gateway.translate import ClockLimits, device_now, translate_frame

log = logging.getLogger(__name__)

READ_BYTES = 4096
#: UITD operation flag (type 24) of the on-duty person's answer to a duty check.
DUTY_ANSWER_BIT = 5
#: Addresses remembered for "log once" (beyond, unknown sources are still denied and counted).
MAX_LOGGED_UNKNOWN = 10_000


class Publisher(Protocol):
    async def publish(self, topic: str, payload: bytes) -> None: ...


class Lookup(Protocol):
    def lookup(self, address: int) -> GatewayDevice | None: ...


class SessionHooks(Protocol):
    """What the rest of the gateway (the duty manager) learns from a session."""

    def device_seen(self, session: Session, address: int, device: GatewayDevice) -> None: ...
    def duty_answered(self, device: GatewayDevice, received: datetime) -> None: ...
    def clock_skewed(self, session: Session, address: int, device: GatewayDevice) -> None: ...
    def session_closed(self, session: Session) -> None: ...


class ConnectedDevices:
    """Which session serves each address now: where downlink frames go. The newest
    connection of an address wins (a device that reconnected leaves a dead one behind)."""

    def __init__(self) -> None:
        self._sessions: dict[int, Session] = {}

    def claim(self, address: int, session: Session) -> None:
        self._sessions[address] = session

    def release(self, address: int, session: Session) -> bool:
        """Forget ``address`` if ``session`` still serves it; True if it did."""
        if self._sessions.get(address) is session:
            del self._sessions[address]
            return True
        return False

    def get(self, address: int) -> Session | None:
        return self._sessions.get(address)

    def __len__(self) -> int:
        return len(self._sessions)


@dataclass
class SessionContext:
    """What every session shares (made once by the server)."""

    directory: Lookup
    publisher: Publisher
    metrics: GatewayMetrics
    hooks: SessionHooks
    registry: ConnectedDevices
    profiles: dict[str, Profile]
    center_address: int
    topic_root: str
    limits: ClockLimits
    idle_timeout_s: float
    frame_timeout_s: float
    max_garbage_bytes: int
    now: Callable[[], float] = time.time
    logged_unknown: set[int] = field(default_factory=set)
    logged_profiles: set[str] = field(default_factory=set)

    def profile_of(self, device: GatewayDevice) -> Profile:
        found = self.profiles.get(device.profile)
        if found is None:
            if device.profile not in self.logged_profiles:
                self.logged_profiles.add(device.profile)
                log.error(
                    "device %s names an unknown GB/T profile %r: decoding with 'standard'",
                    device.device_id,
                    device.profile,
                )
            return STANDARD
        return found


class _Close(Exception):
    """End the session for ``reason`` (a metrics label)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_duty_answer(obj: InfoObject) -> bool:
    return obj.type_flag == 24 and bool(obj.status >> DUTY_ANSWER_BIT & 1)


def _command_name(command: int) -> str:
    return command.name.lower() if isinstance(command, Command) else str(command)


class Session:
    """One TCP connection from a device (or a concentrator carrying several addresses)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ctx: SessionContext
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.ctx = ctx
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        #: the registered devices this connection has spoken for, by address
        self.devices: dict[int, GatewayDevice] = {}
        self._serial = 0
        self._confirms: dict[int, asyncio.Future[bool]] = {}
        self._stopping = False
        self._reading = False
        self._task: asyncio.Task[None] | None = None
        self.closed_reason: str | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until the connection ends; always closes it and counts why."""
        self._task = asyncio.current_task()
        reason = "peer"
        try:
            reason = await self._serve()
        except _Close as close:
            reason = close.reason
        except (ConnectionError, OSError):
            reason = "peer"
        except asyncio.CancelledError:
            reason = "shutdown"
            if not self._stopping:
                raise
        finally:
            self._end(reason)

    def request_stop(self) -> None:
        """Shutdown: finish the frame in progress (publish and confirm), then close; a
        session waiting for bytes closes at once."""
        self._stopping = True
        if self._reading and self._task is not None:
            self._task.cancel()

    def _end(self, reason: str) -> None:
        self.closed_reason = reason
        for address in self.devices:
            self.ctx.registry.release(address, self)
        for fut in self._confirms.values():
            if not fut.done():
                fut.set_result(False)
        self._confirms.clear()
        self.ctx.hooks.session_closed(self)
        with contextlib.suppress(Exception):
            self.writer.close()
        self.ctx.metrics.on_close(reason)
        log.debug("connection %s closed (%s)", self.peer, reason)

    # --- reading ------------------------------------------------------------------------------
    async def _serve(self) -> str:
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        frames = FrameReader()
        began: float | None = None  # loop time the buffered, incomplete frame began
        garbage = 0
        while not self._stopping:
            if frames.pending:
                began = loop.time() if began is None else began
                timeout, why = began + ctx.frame_timeout_s - loop.time(), "frame_timeout"
                if timeout <= 0:
                    return why
            else:
                began = None
                timeout, why = ctx.idle_timeout_s, "idle"
            self._reading = True
            try:
                data = await asyncio.wait_for(self.reader.read(READ_BYTES), timeout)
            except TimeoutError:
                return why
            finally:
                self._reading = False
            if not data:
                return "peer"
            before = frames.garbage_bytes
            items = frames.feed(data)
            seen = frames.garbage_bytes - before
            for item in items:
                began = None  # what was pending is complete (or rejected)
                if isinstance(item, Rejected):
                    await self._rejected(item)
                else:
                    await self._frame(item)
                if self._stopping:
                    break
            ctx.metrics.on_garbage(seen)
            garbage += seen
            if garbage > ctx.max_garbage_bytes:
                log.info("connection %s closed: %d bytes of garbage", self.peer, garbage)
                return "garbage"
        return "shutdown"

    async def _rejected(self, item: Rejected) -> None:
        """Bytes that began like a frame but cannot be one (an ADU length over 1024, no
        '##' where the length puts it): deny with the serial they carry, if any."""
        self.ctx.metrics.on_frame("undelimited", "denied")
        try:
            serial, source = peek(item.raw)
        except FrameError:
            self.ctx.metrics.on_deny(item.reason)  # counted; nothing to echo
            return
        await self._deny(serial, source, item.reason, STANDARD)

    async def _frame(self, raw: bytes) -> None:
        ctx = self.ctx
        serial, source = peek(raw)
        device = ctx.directory.lookup(source)
        if device is None or device.decommissioned:
            reason = "unknown_source" if device is None else "decommissioned"
            if source not in ctx.logged_unknown and len(ctx.logged_unknown) < MAX_LOGGED_UNKNOWN:
                ctx.logged_unknown.add(source)
                log.warning(
                    "frames from GB/T address %s (%s) denied: %s",
                    format_address(source),
                    self.peer,
                    "not in the registry"
                    if device is None
                    else f"{device.device_id} is decommissioned",
                )
            ctx.metrics.on_frame("unknown", "denied")
            await self._deny(serial, source, reason, STANDARD)
            return
        profile = ctx.profile_of(device)
        try:
            frame = decode_frame(raw, profile)
        except FrameError as err:
            log.debug("frame %d from %s denied: %s", serial, device.device_id, err)
            ctx.metrics.on_frame("unknown", "denied")
            await self._deny(serial, source, err.reason, profile)
            return
        if source not in self.devices:
            self.devices[source] = device
            ctx.registry.claim(source, self)
            ctx.hooks.device_seen(self, source, device)
        command = frame.command
        if command == Command.SEND:
            await self._data(frame, device, profile)
        elif command in (Command.CONFIRM, Command.DENY):
            fut = self._confirms.pop(frame.serial, None)
            if fut is not None and not fut.done():
                fut.set_result(command == Command.CONFIRM)
            ctx.metrics.on_frame(_command_name(command), "answer" if fut else "ignored")
        else:
            ctx.metrics.on_frame(_command_name(command), "ignored")

    async def _data(self, frame: Frame, device: GatewayDevice, profile: Profile) -> None:
        ctx = self.ctx
        received = datetime.fromtimestamp(ctx.now(), UTC)
        objects = decode_adu(frame.adu, profile)
        for obj in objects:
            if is_duty_answer(obj):
                ctx.hooks.duty_answered(device, received)
        messages = translate_frame(
            frame,
            objects,
            unit_id=device.unit_id,
            device_id=device.device_id,
            profile=profile,
            root=ctx.topic_root,
            received=received,
            limits=ctx.limits,
        )
        skewed = sum(m.skewed for m in messages)
        for _ in range(skewed):
            ctx.metrics.on_clock_skewed()
        if skewed:
            ctx.hooks.clock_skewed(self, frame.source, device)
        if not await self._publish_all([(m.topic, m.payload) for m in messages], device):
            ctx.metrics.on_frame("send", "unconfirmed")
            return
        ctx.metrics.on_objects([o.type_flag for o in objects])
        confirm = answer(
            frame.serial,
            source=frame.destination,
            destination=frame.source,
            command=Command.CONFIRM,
            now=device_now(profile, ctx.now()),
            profile=profile,
        )
        await self._write(confirm)
        ctx.metrics.on_frame("send", "confirmed")

    async def _publish_all(
        self, messages: Sequence[tuple[str, bytes]], device: GatewayDevice
    ) -> bool:
        """Publish every message at once; True when the broker acknowledged them all."""
        started = time.monotonic()
        results = await asyncio.gather(
            *(self.ctx.publisher.publish(t, p) for t, p in messages), return_exceptions=True
        )
        ok = True
        for result in results:
            if result is None:
                self.ctx.metrics.on_published(time.monotonic() - started)
            elif isinstance(result, PublishRefused):
                self.ctx.metrics.on_publish_refused()
                log.error("%s: frame left unconfirmed: %s", device.device_id, result)
                ok = False
            elif isinstance(result, PublisherClosed):
                ok = False
            elif isinstance(result, BaseException):
                raise result
        return ok

    # --- writing ------------------------------------------------------------------------------
    async def _deny(self, serial: int, source: int, reason: str, profile: Profile) -> None:
        self.ctx.metrics.on_deny(reason)
        await self._write(
            answer(
                serial,
                source=self.ctx.center_address,
                destination=source,
                command=Command.DENY,
                now=device_now(profile, self.ctx.now()),
                profile=profile,
            )
        )

    async def _write(self, data: bytes) -> None:
        if self.writer.is_closing():
            raise _Close("peer")
        self.writer.write(data)
        try:
            await asyncio.wait_for(self.writer.drain(), self.ctx.frame_timeout_s)
        except TimeoutError:
            raise _Close("write_timeout") from None

    def _next_serial(self) -> int:
        self._serial = self._serial % 0xFFFF + 1
        return self._serial

    async def send_control(
        self, address: int, device: GatewayDevice, type_flag: int, objects: Sequence[InfoObject]
    ) -> asyncio.Future[bool]:
        """Send a control frame (command 1: clock sync, duty check) to ``address`` on this
        connection. Returns a future set to True when the device confirms it (False: it
        denied it, or the connection ended). Raises ``ConnectionError`` if the connection is
        closing or the write does not drain."""
        profile = self.ctx.profile_of(device)
        serial = self._next_serial()
        frame = Frame(
            serial=serial,
            version=(1, 0),
            time=device_now(profile, self.ctx.now()),
            source=self.ctx.center_address,
            destination=address,
            command=Command.CONTROL,
            adu=encode_adu(type_flag, objects, profile),
        )
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        old = self._confirms.pop(serial, None)
        if old is not None and not old.done():
            old.set_result(False)
        self._confirms[serial] = fut
        try:
            await self._write(encode_frame(frame, profile))
        except _Close as err:
            self._confirms.pop(serial, None)
            raise ConnectionError(f"connection {self.peer} is closing") from err
        return fut
