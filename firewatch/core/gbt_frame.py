"""GB/T 26875.3-2011 frames: delimiting a byte stream, decoding and encoding one frame.

Layout (our summary of the standard, docs/gateway.md#frame-layout)::

    '@@' | control unit (25 B) | ADU (0..1024 B) | checksum (1 B) | '##'

    control unit: serial u16 LE | version major, minor | time tag 6 B | source u48 LE |
                  destination u48 LE | ADU length u16 LE | command u8

The checksum is computed over control unit + ADU by the device's :class:`Profile` (the standard's
is the low byte of the sum). Delimiting (:class:`FrameReader`) needs no profile: it relies on the
declared ADU length only, because '@@' and '##' may also occur inside an ADU or as a checksum.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from functools import lru_cache

from firewatch.core.gbt_profiles import STANDARD, STANDARD_TIME_ORDER, Profile

MAX_ADU = 1024
CONTROL_UNIT = 25
FRAME_OVERHEAD = 2 + CONTROL_UNIT + 1 + 2  # 30 bytes around the ADU
START = b"@@"
END = b"##"
MAX_ADDRESS = (1 << 48) - 1

# serial, version major, minor, time tag, source low 32 / high 16, destination low / high,
# ADU length, command: 25 bytes, all little-endian.
_CONTROL = struct.Struct("<HBB6sIHIHHB")
_LENGTH_AT = 2 + 22  # offset of the ADU length in a frame (after '@@')
_HEADER = _LENGTH_AT + 2  # bytes needed to read the ADU length
_SERIAL_SOURCE = struct.Struct("<H8xIH")  # serial, (version, time), source low / high


class Command(IntEnum):
    """The command byte (控制单元 命令字节)."""

    CONTROL = 1
    SEND = 2
    CONFIRM = 3
    REQUEST = 4
    REPLY = 5
    DENY = 6


_COMMANDS: dict[int, Command] = {int(c): c for c in Command}


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame.

    ``time`` is the time tag as naive device-local time, None if the 6 bytes are not a valid date.
    ``command`` is a :class:`Command` when the byte is one of 1..6, else the plain int (the
    gateway decides what to do with it). ``adu`` is the application data unit, undecoded.
    """

    serial: int
    version: tuple[int, int]
    time: datetime | None
    source: int
    destination: int
    command: int
    adu: bytes


class FrameError(ValueError):
    """A frame that cannot be decoded; ``reason`` is a short code for metrics and deny logs:
    ``short``, ``start_marker``, ``end_marker``, ``length``, ``checksum``."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Rejected:
    """Bytes that started with '@@' but could not be delimited as a frame.

    ``reason`` is ``length`` (declared ADU length > MAX_ADU; ``raw`` is the 26 header bytes seen)
    or ``end_marker`` (no '##' where the declared length puts it; ``raw`` is the candidate frame).
    """

    reason: str
    raw: bytes


class FrameReader:
    """Incremental delimiter, profile-free: ``feed(bytes) -> list[bytes | Rejected]``.

    Each bytes item is one complete frame from '@@' to '##' (checksum not verified: that needs the
    device's profile). Partial frames are buffered across reads, a read holding several frames
    returns them all. Bytes before a '@@' are skipped and counted in ``garbage_bytes``. A declared
    ADU length > MAX_ADU yields ``Rejected("length")`` as soon as the length field has arrived; a
    candidate whose bytes at the computed end are not '##' yields ``Rejected("end_marker")``. After
    a rejection scanning restarts at the second byte of the rejected start marker, so a real frame
    right after a stray '@' (``@@@...``) is still found; the first byte counts as garbage and so do
    the rest of the rejected bytes as they are scanned over again. Hence, at any time, every byte
    fed is in exactly one of: a returned frame, ``garbage_bytes``, the buffer.

    The buffer never holds more than FRAME_OVERHEAD + MAX_ADU bytes. ``pending`` is True while a
    frame has started but is not complete (the gateway's slowloris timer).
    """

    __slots__ = ("_buf", "garbage_bytes")

    def __init__(self) -> None:
        self._buf = b""
        self.garbage_bytes = 0

    @property
    def pending(self) -> bool:
        """True if a frame has started ('@@' seen) but is not complete yet."""
        # The buffer only ever keeps a started frame, or one '@' that may begin a marker.
        return len(self._buf) >= 2

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for more input (at most FRAME_OVERHEAD + MAX_ADU)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | Rejected]:
        """Add ``data`` to the stream; return the frames and rejections it completes, in order."""
        # Work on buffer + data with an index instead of trimming a buffer per frame: one
        # concatenation per read, slices only for the frames returned.
        work = self._buf + data if self._buf else bytes(data)
        out: list[bytes | Rejected] = []
        pos = 0
        end = len(work)
        garbage = 0
        while pos < end:
            start = work.find(START, pos)
            if start < 0:
                # Keep a trailing '@': it may be the first half of the next marker.
                keep = 1 if work[end - 1] == 0x40 else 0
                garbage += end - keep - pos
                pos = end - keep
                break
            garbage += start - pos
            pos = start
            if end - pos < _HEADER:
                break
            length = work[pos + _LENGTH_AT] | work[pos + _LENGTH_AT + 1] << 8
            if length > MAX_ADU:
                out.append(Rejected("length", work[pos : pos + _HEADER]))
                garbage += 1
                pos += 1
                continue
            stop = pos + FRAME_OVERHEAD + length
            if stop > end:
                break
            if work[stop - 2] == 0x23 and work[stop - 1] == 0x23:
                out.append(work[pos:stop])
                pos = stop
            else:
                out.append(Rejected("end_marker", work[pos:stop]))
                garbage += 1
                pos += 1
        self._buf = work[pos:]
        self.garbage_bytes += garbage
        return out


def peek(raw: bytes) -> tuple[int, int]:
    """``(serial, source address)`` of a delimited frame, without any other check.

    Raises :class:`FrameError` ("short") if ``raw`` is too short to hold them.
    """
    if len(raw) < 2 + _SERIAL_SOURCE.size:
        raise FrameError("short", f"frame of {len(raw)} bytes has no control unit")
    serial, lo, hi = _SERIAL_SOURCE.unpack_from(raw, 2)
    return serial, lo | hi << 32


def decode_frame(raw: bytes, profile: Profile = STANDARD) -> Frame:
    """Decode one delimited frame, verifying markers, length and the profile's checksum.

    Raises :class:`FrameError` with reason ``short`` (fewer than 30 bytes), ``start_marker``,
    ``length`` (declared ADU length > MAX_ADU or not matching the frame's size), ``end_marker``
    or ``checksum``. The time tag is read in the profile's time order; a tag that is not a valid
    date gives ``time=None``. Any version is accepted.
    """
    size = len(raw)
    if size < FRAME_OVERHEAD:
        raise FrameError("short", f"frame of {size} bytes is shorter than {FRAME_OVERHEAD}")
    if raw[0] != 0x40 or raw[1] != 0x40:
        raise FrameError("start_marker", "frame does not start with '@@'")
    serial, major, minor, tag, src_lo, src_hi, dst_lo, dst_hi, length, command = (
        _CONTROL.unpack_from(raw, 2)
    )
    if length > MAX_ADU or size != FRAME_OVERHEAD + length:
        raise FrameError(
            "length", f"declared ADU length {length} does not fit a frame of {size} bytes"
        )
    if raw[-2] != 0x23 or raw[-1] != 0x23:
        raise FrameError("end_marker", "frame does not end with '##'")
    body = raw[2 : size - 3]
    expected = profile.checksum_of(body)
    if raw[size - 3] != expected:
        raise FrameError(
            "checksum",
            f"checksum {raw[size - 3]:#04x}, computed {expected:#04x} ({profile.checksum})",
        )
    return Frame(
        serial=serial,
        version=(major, minor),
        time=decode_time(tag, profile.time_order),
        source=src_lo | src_hi << 32,
        destination=dst_lo | dst_hi << 32,
        command=_COMMANDS.get(command, command),
        adu=raw[2 + CONTROL_UNIT : size - 3],
    )


def encode_frame(frame: Frame, profile: Profile = STANDARD) -> bytes:
    """The bytes of ``frame`` under ``profile`` (inverse of :func:`decode_frame`).

    ``time=None`` is written as six zero bytes (which decode back to None). Raises
    :class:`FrameError` ("length") for an ADU over MAX_ADU and ``ValueError`` for a field out of
    range (serial 0..65535, version bytes, addresses 0..2**48-1, command 0..255).
    """
    if len(frame.adu) > MAX_ADU:
        raise FrameError("length", f"ADU of {len(frame.adu)} bytes is over {MAX_ADU}")
    for name, addr in (("source", frame.source), ("destination", frame.destination)):
        if not 0 <= addr <= MAX_ADDRESS:
            raise ValueError(f"{name} address {addr} does not fit in 48 bits")
    tag = bytes(6) if frame.time is None else encode_time(frame.time, profile.time_order)
    try:
        control = _CONTROL.pack(
            frame.serial,
            frame.version[0],
            frame.version[1],
            tag,
            frame.source & 0xFFFFFFFF,
            frame.source >> 32,
            frame.destination & 0xFFFFFFFF,
            frame.destination >> 32,
            len(frame.adu),
            frame.command,
        )
    except struct.error as err:
        raise ValueError(f"frame field out of range: {err}") from err
    body = control + frame.adu
    return b"".join((START, body, bytes((profile.checksum_of(body),)), END))


def answer(
    serial: int,
    *,
    source: int,
    destination: int,
    command: Command,
    now: datetime,
    profile: Profile = STANDARD,
) -> bytes:
    """A confirm or deny frame (any command, in fact) with an empty ADU, version 1.0.

    ``serial`` is the serial of the frame answered; ``source`` is the answering side (the center)
    and ``destination`` the device, i.e. the answered frame's addresses swapped.
    """
    return encode_frame(Frame(serial, (1, 0), now, source, destination, command, b""), profile)


@lru_cache(maxsize=32)
def _time_positions(order: str) -> tuple[int, int, int, int, int, int]:
    """Indexes of (year, month, day, hour, minute, second) in a 6-byte time of ``order``."""
    if len(order) != 6 or sorted(order) != sorted(STANDARD_TIME_ORDER):
        raise ValueError(f"time order {order!r} is not an order of the letters smhDMY")
    y, mo, d, h, mi, s = (order.index(c) for c in "YMDhms")
    return y, mo, d, h, mi, s


def encode_time(t: datetime, order: str = STANDARD_TIME_ORDER) -> bytes:
    """The 6-byte time of ``t`` (tz ignored: the device's local time) in ``order``.

    Raises ``ValueError`` for a year outside 2000..2255 or a bad order.
    """
    if not 2000 <= t.year <= 2255:
        raise ValueError(f"year {t.year} does not fit a GB/T 26875.3 time (2000..2255)")
    y, mo, d, h, mi, s = _time_positions(order)
    out = bytearray(6)
    out[y] = t.year - 2000
    out[mo] = t.month
    out[d] = t.day
    out[h] = t.hour
    out[mi] = t.minute
    out[s] = t.second
    return bytes(out)


def decode_time(b: bytes, order: str = STANDARD_TIME_ORDER) -> datetime | None:
    """The naive datetime of a 6-byte time in ``order``; None if it is not a valid date.

    Never raises for the bytes (wrong length -> None); ``ValueError`` only for a bad order.
    """
    y, mo, d, h, mi, s = _time_positions(order)
    if len(b) != 6:
        return None
    try:
        return datetime(2000 + b[y], b[mo], b[d], b[h], b[mi], b[s])
    except ValueError:
        return None


_HEX12 = re.compile(r"[0-9a-fA-F]{1,12}")


def format_address(addr: int) -> str:
    """The registry's form of a 48-bit address: 12 lowercase hex digits, most significant first."""
    if not 0 <= addr <= MAX_ADDRESS:
        raise ValueError(f"address {addr} does not fit in 48 bits")
    return f"{addr:012x}"


def parse_address(text: str) -> int:
    """Inverse of :func:`format_address`; accepts 1..12 hex digits (either case), nothing else."""
    if not _HEX12.fullmatch(text):
        raise ValueError(f"address {text!r}: want 1 to 12 hex digits")
    return int(text, 16)
