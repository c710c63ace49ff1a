"""The MQTT 5 wire format the benchmark's load generator speaks (not used by the service).

Why not paho-mqtt for the load generator: paho's ``publish()`` costs about 120 µs of CPU per
QoS 1 message, so on a 2-core machine the generator took the CPU the system under test
needed and the benchmark measured itself (docs/performance.md). A load generator must cost
much less than what it measures, as dedicated tools such as emqtt-bench do; this module
encodes packets in bulk and parses whole socket reads. The service itself uses paho-mqtt.
It implements CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH, PUBACK, PINGREQ/PINGRESP and
DISCONNECT; anything else from the broker is a protocol error.

Pure functions and a streaming :class:`PacketReader`; sockets belong to the callers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import NamedTuple

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
PUBREC = 0x50
SUBSCRIBE = 0x82
SUBACK = 0x90
PINGREQ_PACKET = b"\xc0\x00"
PINGRESP = 0xD0
DISCONNECT = 0xE0
AUTH = 0xF0

# Property identifiers (MQTT 5.0, section 2.2.2.2) we send or read.
SESSION_EXPIRY_INTERVAL = 0x11
ASSIGNED_CLIENT_IDENTIFIER = 0x12
SERVER_KEEP_ALIVE = 0x13
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
MAXIMUM_QOS = 0x24
MAXIMUM_PACKET_SIZE = 0x27

# Wire type of every property identifier, so that unknown-to-us properties can be skipped.
_BYTE, _TWO, _FOUR, _VARINT, _STRING, _BINARY, _PAIR = range(7)
_PROPERTY_TYPES: dict[int, int] = {
    0x01: _BYTE, 0x02: _FOUR, 0x03: _STRING, 0x08: _STRING, 0x09: _BINARY, 0x0B: _VARINT,
    0x11: _FOUR, 0x12: _STRING, 0x13: _TWO, 0x15: _STRING, 0x16: _BINARY, 0x17: _BYTE,
    0x18: _FOUR, 0x19: _BYTE, 0x1A: _STRING, 0x1C: _STRING, 0x1F: _STRING, 0x21: _TWO,
    0x22: _TWO, 0x23: _TWO, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _FOUR, 0x28: _BYTE,
    0x29: _BYTE, 0x2A: _BYTE,
}  # fmt: skip

#: The largest remaining length MQTT can express. The broker's own limit (Mosquitto's
#: ``message_size_limit`` in mosquitto/conf.d) is what keeps packets small; ingest must take
#: whatever the broker delivers, if only to dead-letter it as oversized.
MAX_PACKET = 268_435_455

_PUBACK_HEAD = struct.Struct(">BBH")  # fixed header (0x40, 2) + packet id: reason 0 omitted


class ProtocolError(Exception):
    """The peer sent something a QoS ≤ 1 MQTT 5 client does not accept."""


class Publish(NamedTuple):
    """One received PUBLISH. ``mid`` is 0 for QoS 0."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    dup: bool


class Packet(NamedTuple):
    """Any other received control packet: type byte (with flags) and its body."""

    kind: int
    body: bytes


# --- encoding --------------------------------------------------------------------------------
def varint(n: int) -> bytes:
    """MQTT variable byte integer."""
    if not 0 <= n <= 268_435_455:
        raise ValueError(f"{n} does not fit a variable byte integer")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def utf8(value: str | bytes) -> bytes:
    """Length-prefixed UTF-8 string (or binary data)."""
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) > 0xFFFF:
        raise ValueError("string longer than 65535 bytes")
    return struct.pack(">H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def _properties(props: dict[int, int]) -> bytes:
    out = bytearray()
    for ident, value in props.items():
        kind = _PROPERTY_TYPES[ident]
        out.append(ident)
        if kind == _BYTE:
            out.append(value)
        elif kind == _TWO:
            out += struct.pack(">H", value)
        elif kind == _FOUR:
            out += struct.pack(">I", value)
        else:
            raise ValueError(f"property 0x{ident:02x} is not an integer property")
    return varint(len(out)) + bytes(out)


def connect_packet(
    client_id: str,
    *,
    keepalive: int,
    clean_start: bool,
    session_expiry_s: int = 0,
    receive_maximum: int | None = None,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    """CONNECT, protocol level 5."""
    flags = 0x02 if clean_start else 0
    payload = utf8(client_id)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    if username is not None:
        payload += utf8(username)
    if password is not None:
        payload += utf8(password)
    props: dict[int, int] = {}
    if session_expiry_s:
        props[SESSION_EXPIRY_INTERVAL] = session_expiry_s
    if receive_maximum is not None:
        props[RECEIVE_MAXIMUM] = receive_maximum
    head = utf8("MQTT") + bytes([5, flags]) + struct.pack(">H", keepalive)
    return _packet(CONNECT, head + _properties(props) + payload)


def subscribe_packet(mid: int, topic_filter: str, qos: int) -> bytes:
    """SUBSCRIBE one filter with maximum QoS ``qos`` (no local/retain options)."""
    return _packet(SUBSCRIBE, struct.pack(">H", mid) + b"\x00" + utf8(topic_filter) + bytes([qos]))


def publish_packet(topic: bytes, payload: bytes, mid: int) -> bytes:
    """QoS 1 PUBLISH without properties; ``topic`` already UTF-8 encoded."""
    body_len = 2 + len(topic) + 2 + 1 + len(payload)
    return b"".join(
        (
            b"\x32",
            varint(body_len),
            struct.pack(">H", len(topic)),
            topic,
            struct.pack(">H", mid),
            b"\x00",
            payload,
        )
    )


def pubacks(mids: Iterable[int]) -> bytes:
    """PUBACKs (reason Success) for ``mids``, concatenated for one ``send``."""
    pack = _PUBACK_HEAD.pack
    return b"".join([pack(PUBACK, 2, mid) for mid in mids])


def disconnect_packet(session_expiry_s: int | None = None) -> bytes:
    """DISCONNECT, reason Normal; optionally restating the session expiry."""
    if session_expiry_s is None:
        return b"\xe0\x00"
    return _packet(DISCONNECT, b"\x00" + _properties({SESSION_EXPIRY_INTERVAL: session_expiry_s}))


# --- decoding --------------------------------------------------------------------------------
def read_varint(buf: bytes | bytearray, pos: int) -> tuple[int, int]:
    """Decode a variable byte integer at ``pos``; returns (value, position after it).
    Raises IndexError if ``buf`` ends inside it, ProtocolError if it is too long."""
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise ProtocolError("variable byte integer longer than 4 bytes")


def parse_properties(buf: bytes, pos: int) -> tuple[dict[int, object], int]:
    """Decode a property block at ``pos``; returns (properties, position after it)."""
    length, pos = read_varint(buf, pos)
    end = pos + length
    props: dict[int, object] = {}
    while pos < end:
        ident = buf[pos]
        pos += 1
        kind = _PROPERTY_TYPES.get(ident)
        value: object
        if kind == _BYTE:
            value, pos = buf[pos], pos + 1
        elif kind == _TWO:
            value, pos = int.from_bytes(buf[pos : pos + 2], "big"), pos + 2
        elif kind == _FOUR:
            value, pos = int.from_bytes(buf[pos : pos + 4], "big"), pos + 4
        elif kind == _VARINT:
            value, pos = read_varint(buf, pos)
        elif kind in (_STRING, _BINARY):
            n = int.from_bytes(buf[pos : pos + 2], "big")
            raw = bytes(buf[pos + 2 : pos + 2 + n])
            value, pos = (raw.decode("utf-8", "replace") if kind == _STRING else raw), pos + 2 + n
        elif kind == _PAIR:
            n = int.from_bytes(buf[pos : pos + 2], "big")
            pos += 2 + n
            n = int.from_bytes(buf[pos : pos + 2], "big")
            pos += 2 + n
            continue  # user properties: not used
        else:
            raise ProtocolError(f"unknown property 0x{ident:02x}")
        props[ident] = value
    if pos != end:
        raise ProtocolError("property block overruns its length")
    return props, end


class PacketReader:
    """Turns a byte stream into packets; feed it whatever ``recv`` returned."""

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        self._buf = b""
        self._max = max_packet

    def pending(self) -> int:
        """Bytes buffered towards an incomplete packet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Publish | Packet]:
        """Append ``data``; return every packet now complete, in order."""
        buf = self._buf + data if self._buf else data
        out: list[Publish | Packet] = []
        append = out.append
        pos, size = 0, len(buf)
        while pos < size:
            first = buf[pos]
            # remaining length: 1-4 bytes (inlined for the common short cases)
            if pos + 1 >= size:
                break
            b = buf[pos + 1]
            if b < 0x80:
                length, start = b, pos + 2
            else:
                try:
                    length, start = read_varint(buf, pos + 1)
                except IndexError:
                    break
                if length > self._max:
                    raise ProtocolError(f"packet of {length} bytes exceeds {self._max}")
            end = start + length
            if end > size:
                break
            if first & 0xF0 == PUBLISH:
                qos = (first >> 1) & 0x03
                tlen = (buf[start] << 8) | buf[start + 1]
                p = start + 2 + tlen
                try:
                    topic = buf[start + 2 : p].decode()
                except UnicodeDecodeError as err:
                    raise ProtocolError("PUBLISH topic is not UTF-8") from err
                if qos:
                    if qos > 1:
                        raise ProtocolError("QoS 2 PUBLISH on a QoS 1 subscription")
                    mid = (buf[p] << 8) | buf[p + 1]
                    p += 2
                else:
                    mid = 0
                plen = buf[p]
                if plen:  # properties (payload format, expiry, …): not used, skipped
                    plen, p = read_varint(buf, p)
                    p += plen
                else:
                    p += 1
                if p > end or not topic:  # an empty topic would need a topic alias
                    raise ProtocolError("malformed PUBLISH")
                append(Publish(topic, buf[p:end], qos, mid, bool(first & 0x08)))
            else:
                append(Packet(first, buf[start:end]))
            pos = end
        self._buf = buf[pos:] if pos < size else b""
        if len(self._buf) > self._max + 5:
            raise ProtocolError("oversized packet")
        return out
