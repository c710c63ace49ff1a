"""GB/T 26875.3-2011 application data units (ADU): information objects, decoded and encoded.

An ADU is: type flag (1 B) | number of objects (1 B) | the objects back to back, all of the type's
layout (see ``_LAYOUTS`` and docs/gateway.md's table). All integers are little-endian;
"time" is a 6-byte time in the profile's order; "text31" is 31 bytes of GB18030 padded with NULs.

:func:`decode_adu` never raises: anything it cannot read (unknown or reserved flag, a count that
does not match the length, an object that does not fit, an empty object list) becomes one raw
object carrying the whole ADU, so nothing a device sends is silently dropped.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from firewatch.core.domain import (
    PanelEventType,
    decode_status,
)
from firewatch.core.gbt_frame import MAX_ADU, decode_time, encode_time
from firewatch.core.gbt_profiles import STANDARD, Profile

Detail = dict[str, str | int | float | bool | None]


@dataclass(frozen=True, slots=True)
class InfoObject:
    """One information object. Fields a type does not carry keep their defaults.

    ``status`` is the status word (types 1, 2), the operation flags (4, 24) or the UITD status
    byte (21); 0 for the other types. ``description`` is the component description (2, 7) or the
    configuration text (6, 26). ``time`` is the object's own time (naive, device local; None if
    absent or not a valid date). ``detail`` carries the rest: analog -> analog_type, quantity,
    value (scaled float), unit, raw; versions -> version "M.m"; clock objects (8, 28, 90) -> clock
    (ISO text or None); duty check -> timeout_min; raw -> type_flag, hex (the whole ADU).
    """

    type_flag: int
    kind: str
    system_type: int = 0
    system_addr: int = 0
    component_type: int | None = None
    component_addr: int | None = None
    status: int = 0
    operator: int | None = None
    description: str | None = None
    time: datetime | None = None
    detail: Detail = field(default_factory=dict, hash=False)


TYPE_NAMES: dict[int, str] = {
    1: "system_status",
    2: "component_status",
    3: "analog",
    4: "operation",
    5: "software_version",
    6: "system_config",
    7: "component_config",
    8: "system_time",
    21: "transmission_status",
    24: "transmission_operation",
    25: "transmission_version",
    26: "transmission_config",
    28: "transmission_time",
    90: "clock_sync",
    91: "duty_check",
}

#: Analog type -> (quantity, scale, unit): value = raw x scale. Types 2, 3, 5 are from our summary
#: of the standard; the others are recalled (?), not checked against the text.
ANALOG_TYPES: dict[int, tuple[str, float, str]] = {
    1: ("event_count", 1.0, ""),  # (?)
    2: ("height", 0.01, "m"),
    3: ("temperature", 0.1, "°C"),
    4: ("pressure", 0.1, "MPa"),  # (?)
    5: ("pressure", 0.1, "kPa"),
    6: ("gas", 0.1, "%LEL"),  # (?)
    7: ("time", 1.0, "s"),  # (?)
    8: ("voltage", 0.1, "V"),  # (?)
    9: ("current", 0.1, "A"),  # (?)
    10: ("flow", 0.1, "L/s"),  # (?)
}
# Divide by 10**k rather than multiply by 0.1: raw / 10 is the double nearest the decimal (3 ->
# 0.3), raw * 0.1 is not (3 -> 0.30000000000000004).
_DIVISORS: dict[int, int] = {t: round(1 / scale) for t, (_, scale, _) in ANALOG_TYPES.items()}


def decode_transmission_status(byte: int) -> list[str]:
    """Flags of a UITD status byte, in bit order (``test`` first when bit 0 is clear); the bit
    table is ``domain.TRANSMISSION_STATUS_BITS``."""
    return decode_status(PanelEventType.TRANSMISSION_STATUS, byte)


def decode_transmission_operation(byte: int) -> list[str]:
    """Flags of a UITD operation byte, in bit order (``domain.TRANSMISSION_OPERATION_BITS``)."""
    return decode_status(PanelEventType.TRANSMISSION_OPERATION, byte)


def encode_text31(text: str) -> bytes:
    """``text`` as 31 bytes of GB18030, NUL-padded, truncated on a character boundary."""
    raw = text.encode("gb18030", errors="replace")
    if len(raw) > 31:
        # Drop whole characters from the end: cutting bytes could split a 2- or 4-byte character.
        while len(raw) > 31:
            text = text[:-1]
            raw = text.encode("gb18030", errors="replace")
    return raw.ljust(31, b"\x00")


def _text(raw: bytes) -> str:
    # GB18030 multi-byte characters never contain 0x00, so the first NUL ends the text; what
    # follows it is padding (or leftover memory in some devices).
    return raw.split(b"\x00", 1)[0].decode("gb18030", errors="replace").strip()


def _clock(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _version(obj: InfoObject) -> tuple[int, int]:
    major, _, minor = str(obj.detail.get("version", "0.0")).partition(".")
    return int(major), int(minor or 0)


# Fixed-size layouts: struct after the flag and count. Types 6 and 26 are variable (text length L).
_LAYOUTS: dict[int, struct.Struct] = {
    1: struct.Struct("<BBH6s"),
    2: struct.Struct("<BBBIH31s6s"),
    3: struct.Struct("<BBBIBh6s"),
    4: struct.Struct("<BBBB6s"),
    5: struct.Struct("<BBBB"),
    7: struct.Struct("<BBBI31s"),
    8: struct.Struct("<BB6s"),
    21: struct.Struct("<B6s"),
    24: struct.Struct("<BB6s"),
    25: struct.Struct("<BB"),
    28: struct.Struct("<6s"),
    90: struct.Struct("<6s"),
    91: struct.Struct("<B"),
}
_VARIABLE = {6: 2, 26: 0}  # flag -> bytes before the text length byte (system type, address)


def _raw(adu: bytes) -> list[InfoObject]:
    flag = adu[0] if adu else -1
    return [InfoObject(flag, "raw", detail={"type_flag": flag, "hex": adu.hex()})]


def decode_adu(adu: bytes, profile: Profile = STANDARD) -> list[InfoObject]:
    """The information objects of ``adu``, in order; never raises.

    An empty ADU (confirm, deny) has no objects. An unknown or reserved type flag, a count of 0
    or one that does not match the ADU's length, or an object that does not fit gives one
    ``InfoObject(kind="raw", detail={"type_flag": flag, "hex": adu.hex()})``. Times are read in
    the profile's order; a time that is not a valid date gives ``time=None``.
    """
    if not adu:
        return []
    if len(adu) < 2:
        return _raw(adu)
    flag, count = adu[0], adu[1]
    if count == 0:
        return _raw(adu)
    layout = _LAYOUTS.get(flag)
    if layout is not None:
        if len(adu) - 2 != count * layout.size:
            return _raw(adu)
        decode = _DECODERS[flag]
        order = profile.time_order
        return [decode(fields, order) for fields in layout.iter_unpack(adu[2:])]
    head = _VARIABLE.get(flag)
    if head is None:
        return _raw(adu)
    objects: list[InfoObject] = []
    pos, end = 2, len(adu)
    for _ in range(count):
        if pos + head + 1 > end:
            return _raw(adu)
        stop = pos + head + 1 + adu[pos + head]
        if stop > end:
            return _raw(adu)
        text = _text(adu[pos + head + 1 : stop])
        if head:
            objects.append(
                InfoObject(flag, TYPE_NAMES[flag], adu[pos], adu[pos + 1], description=text)
            )
        else:
            objects.append(InfoObject(flag, TYPE_NAMES[flag], description=text))
        pos = stop
    return objects if pos == end else _raw(adu)


# Per-type decoders from the unpacked struct fields. Typed loosely (the struct gives a tuple of
# Any); each is short and matches its layout in _LAYOUTS line by line.
def _d_system_status(f: tuple[int, int, int, bytes], o: str) -> InfoObject:
    return InfoObject(1, "system_status", f[0], f[1], status=f[2], time=decode_time(f[3], o))


def _d_component_status(f: tuple[int, int, int, int, int, bytes, bytes], o: str) -> InfoObject:
    return InfoObject(
        2,
        "component_status",
        f[0],
        f[1],
        component_type=f[2],
        component_addr=f[3],
        status=f[4],
        description=_text(f[5]),
        time=decode_time(f[6], o),
    )


def _d_analog(f: tuple[int, int, int, int, int, int, bytes], o: str) -> InfoObject:
    analog_type, raw = f[4], f[5]
    quantity, _, unit = ANALOG_TYPES.get(analog_type, ("unknown", 1.0, ""))
    value = raw / _DIVISORS.get(analog_type, 1)
    return InfoObject(
        3,
        "analog",
        f[0],
        f[1],
        component_type=f[2],
        component_addr=f[3],
        time=decode_time(f[6], o),
        detail={
            "analog_type": analog_type,
            "quantity": quantity,
            "value": value,
            "unit": unit,
            "raw": raw,
        },
    )


def _d_operation(f: tuple[int, int, int, int, bytes], o: str) -> InfoObject:
    return InfoObject(
        4, "operation", f[0], f[1], status=f[2], operator=f[3], time=decode_time(f[4], o)
    )


def _d_software_version(f: tuple[int, int, int, int], o: str) -> InfoObject:
    return InfoObject(5, "software_version", f[0], f[1], detail={"version": f"{f[2]}.{f[3]}"})


def _d_component_config(f: tuple[int, int, int, int, bytes], o: str) -> InfoObject:
    return InfoObject(
        7,
        "component_config",
        f[0],
        f[1],
        component_type=f[2],
        component_addr=f[3],
        description=_text(f[4]),
    )


def _d_system_time(f: tuple[int, int, bytes], o: str) -> InfoObject:
    t = decode_time(f[2], o)
    return InfoObject(8, "system_time", f[0], f[1], time=t, detail={"clock": _clock(t)})


def _d_transmission_status(f: tuple[int, bytes], o: str) -> InfoObject:
    return InfoObject(21, "transmission_status", status=f[0], time=decode_time(f[1], o))


def _d_transmission_operation(f: tuple[int, int, bytes], o: str) -> InfoObject:
    return InfoObject(
        24, "transmission_operation", status=f[0], operator=f[1], time=decode_time(f[2], o)
    )


def _d_transmission_version(f: tuple[int, int], o: str) -> InfoObject:
    return InfoObject(25, "transmission_version", detail={"version": f"{f[0]}.{f[1]}"})


def _d_transmission_time(f: tuple[bytes], o: str) -> InfoObject:
    t = decode_time(f[0], o)
    return InfoObject(28, "transmission_time", time=t, detail={"clock": _clock(t)})


def _d_clock_sync(f: tuple[bytes], o: str) -> InfoObject:
    t = decode_time(f[0], o)
    return InfoObject(90, "clock_sync", time=t, detail={"clock": _clock(t)})


def _d_duty_check(f: tuple[int], o: str) -> InfoObject:
    # (?) the single byte is recalled as the answer timeout in minutes.
    return InfoObject(91, "duty_check", detail={"timeout_min": f[0]})


_DECODERS: dict[int, Callable[..., InfoObject]] = {
    1: _d_system_status,
    2: _d_component_status,
    3: _d_analog,
    4: _d_operation,
    5: _d_software_version,
    7: _d_component_config,
    8: _d_system_time,
    21: _d_transmission_status,
    24: _d_transmission_operation,
    25: _d_transmission_version,
    28: _d_transmission_time,
    90: _d_clock_sync,
    91: _d_duty_check,
}


def _analog_raw(obj: InfoObject) -> int:
    raw = obj.detail.get("raw")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    value = obj.detail.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError("analog object needs detail 'raw' (int) or 'value' (number)")
    analog_type = obj.detail.get("analog_type")
    divisor = _DIVISORS.get(analog_type, 1) if isinstance(analog_type, int) else 1
    return round(value * divisor)


def _encode_one(flag: int, obj: InfoObject, order: str) -> bytes:
    def tm(t: datetime | None) -> bytes:
        return bytes(6) if t is None else encode_time(t, order)

    st, sa = obj.system_type, obj.system_addr
    ct, ca = obj.component_type or 0, obj.component_addr or 0
    op = obj.operator or 0
    text = obj.description or ""
    if flag in _VARIABLE:
        raw = text.encode("gb18030", errors="replace")
        if len(raw) > 255:
            raise ValueError(f"configuration text of {len(raw)} bytes is over 255")
        head = bytes((st, sa)) if _VARIABLE[flag] else b""
        return head + bytes((len(raw),)) + raw
    layout = _LAYOUTS[flag]
    if flag == 1:
        return layout.pack(st, sa, obj.status, tm(obj.time))
    if flag == 2:
        return layout.pack(st, sa, ct, ca, obj.status, encode_text31(text), tm(obj.time))
    if flag == 3:
        analog_type = obj.detail.get("analog_type", 0)
        if not isinstance(analog_type, int):
            raise ValueError("analog object needs detail 'analog_type' (int)")
        return layout.pack(st, sa, ct, ca, analog_type, _analog_raw(obj), tm(obj.time))
    if flag in (4, 24):
        fields = (st, sa, obj.status, op) if flag == 4 else (obj.status, op)
        return layout.pack(*fields, tm(obj.time))
    if flag in (5, 25):
        system: tuple[int, ...] = (st, sa) if flag == 5 else ()
        return layout.pack(*system, *_version(obj))
    if flag == 7:
        return layout.pack(st, sa, ct, ca, encode_text31(text))
    if flag == 8:
        return layout.pack(st, sa, tm(obj.time))
    if flag == 21:
        return layout.pack(obj.status, tm(obj.time))
    if flag in (28, 90):
        return layout.pack(tm(obj.time))
    timeout = obj.detail.get("timeout_min", 0)  # flag 91
    if not isinstance(timeout, int):
        raise ValueError("duty check object needs detail 'timeout_min' (int)")
    return layout.pack(timeout)


def encode_adu(type_flag: int, objects: Sequence[InfoObject], profile: Profile = STANDARD) -> bytes:
    """The ADU carrying ``objects`` of ``type_flag`` (inverse of :func:`decode_adu`).

    A single raw object encodes to the ADU it holds (``detail["hex"]``), so decoding then encoding
    gives the same bytes for any ADU. Objects without a time get six zero bytes; analog objects
    use ``detail["raw"]`` if present, else ``detail["value"]`` divided by the type's scale.
    Raises ``ValueError`` for an unknown flag, an object of another flag, 0 or more than 255
    objects, a field out of range, or an ADU over MAX_ADU.
    """
    if len(objects) == 1 and objects[0].kind == "raw":
        return bytes.fromhex(str(objects[0].detail["hex"]))
    if type_flag not in TYPE_NAMES:
        raise ValueError(f"type flag {type_flag} has no known layout")
    if not 1 <= len(objects) <= 255:
        raise ValueError(f"an ADU holds 1..255 objects, not {len(objects)}")
    parts = [bytes((type_flag, len(objects)))]
    for obj in objects:
        if obj.type_flag != type_flag:
            raise ValueError(f"object of type {obj.type_flag} in an ADU of type {type_flag}")
        try:
            parts.append(_encode_one(type_flag, obj, profile.time_order))
        except struct.error as err:
            raise ValueError(f"type {type_flag} object field out of range: {err}") from err
    adu = b"".join(parts)
    if len(adu) > MAX_ADU:
        raise ValueError(f"ADU of {len(adu)} bytes is over {MAX_ADU}")
    return adu
