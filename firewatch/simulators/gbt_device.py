"""A simulated GB/T 26875.3 user information transmission device (UITD, 用户信息传输装置).

:class:`GbtDevice` is one device on one TCP connection to a monitoring center (our
gateway, ``firewatch gateway``): it sends data frames (command 2) one at a time, waits
for each confirm and, as real devices do, sends the very same frame again (same serial
number, same bytes) when none comes in time; it confirms the center's control frames
(command 1: clock sync, type 90, which it applies; duty check, type 91), and the
simulated on-duty person may press the answer key a while after a duty check (a type-24
object with the ``duty_answer`` bit). A dropped connection is reopened with backoff and
the frame in flight is sent again. Everything is encoded with the codec
(``firewatch.core.gbt_*``) under the device's :class:`Profile` (the registry's
``gbt_profile``).

:func:`objects_of` turns the simulator's JSON panel messages into information objects and
:func:`replay` feeds a stream of them to a device; ``gbt_sink.py`` runs a whole fleet
beside the MQTT sink. :func:`demo_gbt_address` is the deterministic address of a
simulated panel, for seeding the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import AsyncIterable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from firewatch.core.backoff import Backoff
from firewatch.core.gbt_frame import (
    MAX_ADU,
    Command,
    Frame,
    FrameError,
    FrameReader,
    Rejected,
    answer,
    decode_frame,
    encode_frame,
)
from firewatch.core.gbt_objects import InfoObject, decode_adu, encode_adu
from firewatch.core.gbt_profiles import STANDARD, Profile

log = logging.getLogger(__name__)

#: Type flags of the objects the simulator sends, and of the center's control objects.
SYSTEM_STATUS, COMPONENT_STATUS, OPERATION = 1, 2, 4
UITD_STATUS, UITD_OPERATION = 21, 24
CLOCK_SYNC, DUTY_CHECK = 90, 91
#: UITD status byte bit 0: normal monitoring (clear: test mode).
UITD_NORMAL = 1 << 0
#: UITD operation flags bit 5: the on-duty person's answer to a duty check (查岗应答).
DUTY_ANSWER = 1 << 5
#: A clock sync within this of the device's own clock leaves its offset at 0: the frame's
#: time has one-second resolution.
CLOCK_TOLERANCE_S = 2.0


def demo_gbt_address(device_id: str) -> str:
    """The GB/T address of a simulated panel: 12 lowercase hex digits (the registry's
    ``devices.gbt_address`` form) from a hash of its id. Deterministic across runs and
    machines; never all zeros (the center's address)."""
    digest = hashlib.blake2b(device_id.encode(), digest_size=6, person=b"fw-gbt-addr").hexdigest()
    return digest if int(digest, 16) else "000000000001"


def is_demo_gbt_panel(device_id: str, share: float) -> bool:
    """Whether a panel is one of the ``share`` (0..1) of panels that are legacy GB/T
    devices: a hash of its id, independent of the scenario's seed, so that seeding and the
    simulator pick the same panels."""
    digest = hashlib.blake2b(device_id.encode(), digest_size=8, person=b"fw-gbt-share").digest()
    return int.from_bytes(digest, "big") / 2**64 < share


@dataclass
class DeviceStats:
    """What a device did (counters only grow)."""

    frames_sent: int = 0  # data frames written, resends included
    resends: int = 0  # of them, the same frame again after a timeout or reconnect
    confirmed: int = 0
    denied: int = 0
    timeouts: int = 0
    connections: int = 0  # successful connects
    connect_failures: int = 0
    controls: int = 0  # control frames received (and confirmed)
    clock_syncs: int = 0
    duty_checks: int = 0
    duty_answers: int = 0  # answers sent (and confirmed) after a duty check
    duty_ignored: int = 0  # duty checks the on-duty person will never answer
    bad_frames: int = 0  # downlink bytes that were not a valid frame


class GbtDevice:
    """One simulated UITD at GB/T ``address`` talking to the center at ``host:port``.

    :meth:`start` runs the connection (reconnecting with backoff from
    ``backoff_s[0]`` to ``backoff_s[1]``); :meth:`send` sends information objects and
    returns once the center confirmed (``True``) or denied (``False``) them. A frame not
    confirmed within ``confirm_timeout_s`` is sent again with the same serial; after
    ``resends`` unanswered resends the connection is closed and the frame goes again on
    the next one. ``duty_answer_probability`` (drawn from ``seed``): the share of duty
    checks the on-duty person answers, after a delay drawn from ``duty_answer_delay_s``.
    ``clock_offset_s``: the device clock's error until the first clock sync. ``clock``:
    the true time (Unix seconds).
    """

    def __init__(
        self,
        address: int,
        profile: Profile = STANDARD,
        host: str = "127.0.0.1",
        port: int = 9026,
        *,
        center: int = 0,
        confirm_timeout_s: float = 10.0,
        resends: int = 3,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        duty_answer_probability: float = 1.0,
        duty_answer_delay_s: tuple[float, float] = (5.0, 60.0),
        operator: int = 1,
        clock_offset_s: float = 0.0,
        seed: int | str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.address = address
        self.profile = profile
        self.host, self.port = host, port
        self.center = center
        self.confirm_timeout_s = confirm_timeout_s
        self.resends = resends
        self.duty_answer_probability = duty_answer_probability
        self.duty_answer_delay_s = duty_answer_delay_s
        self.operator = operator
        self.clock_offset_s = clock_offset_s
        self.clock = clock
        self.rng = random.Random(seed if seed is not None else address)
        self.backoff = Backoff(backoff_s[0], backoff_s[1], random.Random(self.rng.random()))
        self.stats = DeviceStats()
        self._serial = 0
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._online = asyncio.Event()
        self._online.set()
        self._closing = asyncio.Event()
        self._lock = asyncio.Lock()
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._answers: set[asyncio.Task[None]] = set()

    # -- time ------------------------------------------------------------------------

    def now(self) -> datetime:
        """The device's clock: naive local time in the profile's zone, with its error."""
        t = self.clock() + self.clock_offset_s
        return local_time(datetime.fromtimestamp(t, UTC), self.profile)

    # -- connection ------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting (in the running loop); :meth:`close` stops."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"gbt-{self.address:012x}")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, within_s: float) -> bool:
        """Whether the device is connected within ``within_s`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), within_s)
        return self._connected.is_set()

    async def close(self) -> None:
        """Close the connection for good; a :meth:`send` in progress returns ``False``."""
        self._closing.set()
        self._online.set()  # wake a device that is offline
        self._abort()
        for task in [*self._answers, *([self._task] if self._task else [])]:
            task.cancel()
        for task in [*self._answers, *([self._task] if self._task else [])]:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def go_offline(self) -> None:
        """The connection dies abruptly (no FIN from the application's side: an RST) and
        stays down until :meth:`go_online`."""
        self._online.clear()
        self._abort()

    def go_online(self) -> None:
        self._online.set()

    def _abort(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()

    async def _run(self) -> None:
        while not self._closing.is_set():
            await self._online.wait()
            if self._closing.is_set():
                return
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError as err:
                self.stats.connect_failures += 1
                log.debug("gbt %012x: connect failed: %s", self.address, err)
                await self._pause(self.backoff.next())
                continue
            self.backoff.reset()
            self.stats.connections += 1
            self._writer = writer
            self._connected.set()
            try:
                await self._read(reader, writer)
            finally:
                self._connected.clear()
                self._writer = None
                writer.transport.abort()
                for fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(ConnectionResetError("connection lost"))
            if not self._closing.is_set() and self._online.is_set():
                await self._pause(self.backoff.next())

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = FrameReader()
        while True:
            try:
                data = await reader.read(4096)
            except OSError:
                return
            if not data:
                return
            for item in frames.feed(data):
                if isinstance(item, Rejected):
                    self.stats.bad_frames += 1
                    continue
                try:
                    frame = decode_frame(item, self.profile)
                except FrameError:
                    self.stats.bad_frames += 1
                    continue
                self._on_frame(frame, writer)

    def _on_frame(self, frame: Frame, writer: asyncio.StreamWriter) -> None:
        if frame.command in (Command.CONFIRM, Command.DENY):
            fut = self._pending.get(frame.serial)
            if fut is not None and not fut.done():
                fut.set_result(frame.command)
            return
        if frame.command != Command.CONTROL:
            return  # requests (4) are not simulated; replies (5) are not ours
        self.stats.controls += 1
        writer.write(
            answer(
                frame.serial,
                source=self.address,
                destination=frame.source,
                command=Command.CONFIRM,
                now=self.now(),
                profile=self.profile,
            )
        )
        for obj in decode_adu(frame.adu, self.profile):
            if obj.type_flag == CLOCK_SYNC and obj.time is not None:
                self._set_clock(obj.time)
            elif obj.type_flag == DUTY_CHECK:
                self._duty_check()

    def _set_clock(self, center_time: datetime) -> None:
        self.stats.clock_syncs += 1
        true_local = local_time(datetime.fromtimestamp(self.clock(), UTC), self.profile)
        error = (center_time - true_local).total_seconds()
        self.clock_offset_s = 0.0 if abs(error) < CLOCK_TOLERANCE_S else error

    def duty_answer_delay(self) -> float | None:
        """Whether the person on duty answers the next duty check, and how many seconds
        later (``None``: never). Drawn from the device's seed."""
        if self.rng.random() >= self.duty_answer_probability:
            return None
        return self.rng.uniform(*self.duty_answer_delay_s)

    def _duty_check(self) -> None:
        self.stats.duty_checks += 1
        delay = self.duty_answer_delay()
        if delay is None:
            self.stats.duty_ignored += 1  # nobody at the panel: the check goes unanswered
            return
        task = asyncio.create_task(self._answer_duty(delay))
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    async def _answer_duty(self, delay: float) -> None:
        await asyncio.sleep(delay)
        obj = InfoObject(
            UITD_OPERATION,
            "transmission_operation",
            status=DUTY_ANSWER,
            operator=self.operator,
            time=self.now(),
        )
        if await self.send([obj]):
            self.stats.duty_answers += 1

    # -- sending ---------------------------------------------------------------------

    def next_serial(self) -> int:
        self._serial = (self._serial + 1) & 0xFFFF
        return self._serial

    def data_frame(self, adu: bytes, serial: int) -> bytes:
        """A data frame (command 2) from this device to the center, time-tagged now."""
        frame = Frame(
            serial=serial,
            version=(1, 0),
            time=self.now(),
            source=self.address,
            destination=self.center,
            command=Command.SEND,
            adu=adu,
        )
        return encode_frame(frame, self.profile)

    async def send(self, objects: Sequence[InfoObject]) -> bool:
        """Send ``objects`` (consecutive ones of the same type share a frame, as many as
        fit); ``True`` once every frame was confirmed, ``False`` if one was denied or the
        device was closed first. Frames go one at a time, in order."""
        ok = True
        for type_flag, group in frames_of(objects, self.profile):
            ok = await self.send_adu(encode_adu(type_flag, group, self.profile)) and ok
        return ok

    async def send_adu(self, adu: bytes) -> bool:
        """Send one ADU in a data frame until confirmed (``True``) or denied (``False``)."""
        async with self._lock:
            raw = self.data_frame(adu, self.next_serial())
            serial = self._serial
            unanswered = 0
            written = False
            while not self._closing.is_set():
                writer = await self._writer_when_connected()
                if writer is None:
                    return False
                fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                self._pending[serial] = fut
                try:
                    writer.write(raw)
                    self.stats.frames_sent += 1
                    self.stats.resends += written
                    written = True
                    command = await asyncio.wait_for(fut, self.confirm_timeout_s)
                except TimeoutError:
                    self.stats.timeouts += 1
                    unanswered += 1
                    if unanswered > self.resends:
                        unanswered = 0
                        self._abort()  # a dead link: reconnect, then send it again
                    continue
                except (ConnectionError, OSError):
                    continue  # sent again on the next connection
                finally:
                    self._pending.pop(serial, None)
                if command == Command.CONFIRM:
                    self.stats.confirmed += 1
                    return True
                self.stats.denied += 1
                return False
            return False

    async def _writer_when_connected(self) -> asyncio.StreamWriter | None:
        while not self._closing.is_set():
            if self._writer is not None and self._connected.is_set():
                return self._writer
            waiter = asyncio.ensure_future(self._connected.wait())
            closing = asyncio.ensure_future(self._closing.wait())
            try:
                await asyncio.wait({waiter, closing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                closing.cancel()
        return None


def frames_of(
    objects: Sequence[InfoObject], profile: Profile = STANDARD
) -> Iterator[tuple[int, list[InfoObject]]]:
    """Runs of consecutive objects of one type, each cut to what fits one ADU (≤ MAX_ADU
    bytes, ≤ 255 objects)."""
    group: list[InfoObject] = []
    size = 2
    for obj in objects:
        one = len(encode_adu(obj.type_flag, [obj], profile)) - 2
        if group and (
            obj.type_flag != group[0].type_flag or size + one > MAX_ADU or len(group) == 255
        ):
            yield group[0].type_flag, group
            group, size = [], 2
        group.append(obj)
        size += one
    if group:
        yield group[0].type_flag, group


def local_time(t: datetime, profile: Profile) -> datetime:
    """An aware time as the device's naive local time (the profile's UTC offset)."""
    return (t.astimezone(UTC) + timedelta(minutes=profile.utc_offset_minutes)).replace(
        tzinfo=None, microsecond=0
    )


def objects_of(channel: str, body: Mapping[str, Any], profile: Profile) -> list[InfoObject]:
    """The information objects a GB/T device sends for one simulator message (a JSON body
    with ``ts``, on ``channel``): ``system_status`` -> type 1, ``component_status`` -> type
    2 (the description as GB18030 text), ``operation`` -> type 4, the housekeeping
    ``status`` (online) -> type 21, normal monitoring. Anything else -> ``[]``: there is no
    GB/T object for it (analog values, battery, RSSI)."""
    ts = body.get("ts")
    when = local_time(_parse_ts(ts), profile) if isinstance(ts, str) else None
    if channel == "status":
        if body.get("state") != "online":
            return []
        return [InfoObject(UITD_STATUS, "transmission_status", status=UITD_NORMAL, time=when)]
    if channel != "event":
        return []
    kind = body.get("type")
    common: dict[str, Any] = {
        "system_type": int(body.get("system_type", 1)),
        "system_addr": int(body.get("system_addr", 1)),
        "status": int(body.get("status", 0)),
        "time": when,
    }
    if kind == "system_status":
        return [InfoObject(SYSTEM_STATUS, "system_status", **common)]
    if kind == "component_status":
        return [
            InfoObject(
                COMPONENT_STATUS,
                "component_status",
                component_type=int(body.get("component_type", 0)),
                component_addr=int(body.get("component_addr", 0)),
                description=str(body.get("description") or ""),
                **common,
            )
        ]
    if kind == "operation":
        return [InfoObject(OPERATION, "operation", operator=int(body.get("operator", 0)), **common)]
    return []


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def replay(device: GbtDevice, messages: AsyncIterable[tuple[str, Mapping[str, Any]]]) -> int:
    """Send every ``(channel, body)`` panel message of the stream through ``device``, in
    order, each after the previous one was confirmed; returns how many were confirmed."""
    confirmed = 0
    async for channel, body in messages:
        objects = objects_of(channel, body, device.profile)
        if objects and await device.send(objects):
            confirmed += 1
    return confirmed
