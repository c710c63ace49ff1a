"""A test-local GB/T 26875.3 monitoring center: a real TCP server that delimits and checks
every frame byte by byte against the layout of the shared spec (section 1), without the
codec, and answers as a center does. For the simulated device's tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

ADDRESS = 0x00A1B2C3D4E5  # the device's
CENTER = 0x000000000009
NOW = datetime(2026, 12, 7, 2, 3, 4, tzinfo=UTC)  # 10:03:04 in China standard time
LOCAL = datetime(2026, 12, 7, 10, 3, 4)


def t6(t: datetime) -> bytes:
    """A time as the standard lays it out: second, minute, hour, day, month, year - 2000."""
    return bytes((t.second, t.minute, t.hour, t.day, t.month, t.year - 2000))


def build(serial: int, source: int, dest: int, command: int, adu: bytes, tag: bytes) -> bytes:
    body = (
        serial.to_bytes(2, "little")
        + bytes((1, 0))
        + tag
        + source.to_bytes(6, "little")
        + dest.to_bytes(6, "little")
        + len(adu).to_bytes(2, "little")
        + bytes((command,))
        + adu
    )
    return b"@@" + body + bytes((sum(body) & 0xFF,)) + b"##"


@dataclass
class Seen:
    """One frame the center received, taken apart by hand."""

    raw: bytes
    serial: int
    version: tuple[int, int]
    tag: bytes
    source: int
    dest: int
    command: int
    adu: bytes


def take_apart(raw: bytes) -> Seen:
    assert raw[:2] == b"@@"
    assert raw[-2:] == b"##"
    body = raw[2:-3]
    assert raw[-3] == sum(body) & 0xFF, "checksum: low byte of the sum of control unit + ADU"
    length = int.from_bytes(body[22:24], "little")
    assert len(body) == 25 + length
    return Seen(
        raw,
        int.from_bytes(body[0:2], "little"),
        (body[2], body[3]),
        body[4:10],
        int.from_bytes(body[10:16], "little"),
        int.from_bytes(body[16:22], "little"),
        body[24],
        body[25:],
    )


class Center:
    """A local monitoring center: accepts connections, queues what arrives and confirms
    data frames (command 2) unless told to leave the next ``swallow`` unanswered."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[Seen] = asyncio.Queue()
        self.writers: list[asyncio.StreamWriter] = []
        self.swallow = 0
        self.confirm = True
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Center:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.transport.abort()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readexactly(26)
                rest = await reader.readexactly(int.from_bytes(head[24:26], "little") + 4)
                seen = take_apart(head + rest)
                if seen.command == 2 and self.swallow:
                    self.swallow -= 1
                elif seen.command == 2 and self.confirm:
                    writer.write(build(seen.serial, CENTER, seen.source, 3, b"", t6(LOCAL)))
                await self.frames.put(seen)
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    async def next(self, within_s: float = 10.0) -> Seen:
        return await asyncio.wait_for(self.frames.get(), within_s)

    def control(self, serial: int, adu: bytes, to: int = ADDRESS) -> None:
        """Send a control frame (command 1) to ``to`` on the newest connection."""
        self.writers[-1].write(build(serial, CENTER, to, 1, adu, t6(LOCAL)))


async def until(cond: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
