"""Payloads: JSON as it will be written (:class:`Obj`, :class:`Raw`), the facts of every
contract field (from the models' own bounds), timestamps anywhere in the acceptance
window, a valid body per model (:func:`valid_body`) and random JSON values."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel

from firewatch.core.contract import (
    DETAIL_MAX_TEXT,
    MODELS,
    ChargingPort,
    DeviceStatus,
    EbikeShedTelemetry,
    PanelEvent,
    WaterTelemetry,
)
from firewatch.core.domain import BYTE_STATUS_TYPES, Channel, PanelEventType
from firewatch.lab.decode_cases.draws import Source
from firewatch.lab.decode_cases.world import World


class Raw(str):
    """A JSON token written as is (``NaN``, ``1e309``, nested brackets)."""

    __slots__ = ()


class Obj:
    """A JSON object as it will be written: ordered pairs, duplicate keys allowed."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: Sequence[tuple[str, Any]] = ()) -> None:
        self.pairs: list[tuple[str, Any]] = list(pairs)

    def names(self) -> list[str]:
        """The keys, each once, in order."""
        return list(dict.fromkeys(k for k, _ in self.pairs))

    def get(self, key: str) -> Any:
        for k, v in reversed(self.pairs):
            if k == key:
                return v
        return None

    def set(self, key: str, value: Any) -> None:
        """Replace the last value of ``key`` (the one a JSON parser keeps), or append."""
        for i in range(len(self.pairs) - 1, -1, -1):
            if self.pairs[i][0] == key:
                self.pairs[i] = (key, value)
                return
        self.pairs.append((key, value))

    def drop(self, key: str) -> None:
        self.pairs = [(k, v) for k, v in self.pairs if k != key]


def dumps(value: Any, ascii_only: bool) -> str:
    """``value`` as JSON text. Strings with lone surrogates become ``\\udXXX`` escapes
    when ``ascii_only``, else stay raw (and become invalid UTF-8 in :func:`to_bytes`)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Obj):
        return (
            "{"
            + ",".join(
                json.dumps(k, ensure_ascii=ascii_only) + ":" + dumps(v, ascii_only)
                for k, v in value.pairs
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(dumps(v, ascii_only) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=ascii_only)
    return json.dumps(value)  # None, bool, int, float (NaN, Infinity as JavaScript writes them)


def to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# --- field facts, from the contract's models --------------------------------------------------

#: JSON kind of every contract field (a field the table lacks fails loudly: see FIELDS).
KIND_OF = {
    "seq": "int", "ts": "time", "device_id": "text", "pressure_kpa": "float",
    "level_m": "float", "pump_running": "bool", "jockey_running": "bool",
    "room_temp_c": "float", "ambient_c": "float", "smoke": "bool", "ports": "list",
    "type": "enum", "system_type": "int", "system_addr": "int", "component_type": "int",
    "component_addr": "int", "status": "int", "operator": "int", "description": "text",
    "state": "enum", "firmware": "text", "battery_pct": "float", "rssi_dbm": "float",
    "reason": "text", "port": "int", "temp_c": "float", "current_a": "float",
    "charging": "bool", "detail": "object",
}  # fmt: skip
#: Which JSON values a strict field of each kind takes.
ACCEPTS = {"float": {"int", "float"}, "int": {"int"}, "bool": {"bool"}, "text": {"str"},
            "list": {"list"}, "object": {"object"}}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    kind: str
    required: bool
    nullable: bool  # JSON null is accepted (optional with default None)
    lo: float | None  # inclusive bounds (an integer's ``lt`` becomes ``hi = lt - 1``)
    hi: float | None
    max_length: int | None


def _facts(model: type[BaseModel]) -> dict[str, _Field]:
    out = {}
    for name, info in model.model_fields.items():
        lo = hi = max_length = None
        for m in info.metadata:
            lo = getattr(m, "ge", lo)
            hi = getattr(m, "le", hi)
            if getattr(m, "lt", None) is not None:
                hi = m.lt - 1
            max_length = getattr(m, "max_length", max_length)
        out[name] = _Field(
            name,
            KIND_OF[name],
            info.is_required(),
            not info.is_required() and info.default is None,
            lo,
            hi,
            max_length,
        )
    return out


_PAYLOAD_MODELS: tuple[type[BaseModel], ...] = tuple(dict.fromkeys(MODELS.values()))
_ALL_MODELS: tuple[type[BaseModel], ...] = (*_PAYLOAD_MODELS, ChargingPort)
FIELDS: dict[type[BaseModel], dict[str, _Field]] = {m: _facts(m) for m in _ALL_MODELS}
CHANNEL_OF: dict[type[BaseModel], Channel] = {model: ch for (_k, ch), model in MODELS.items()}


def bounds(model: type[BaseModel], name: str) -> tuple[float, float]:
    f = FIELDS[model][name]
    assert f.lo is not None, f"{model.__name__}.{name} has no lower bound"
    assert f.hi is not None, f"{model.__name__}.{name} has no upper bound"
    return f.lo, f.hi


def _int_bounds(model: type[BaseModel], name: str) -> tuple[int, int]:
    lo, hi = bounds(model, name)
    return int(lo), int(hi)


# --- timestamps -----------------------------------------------------------------------------

#: Offsets a valid RFC 3339 ``ts`` may carry (pydantic takes up to ±23:59).
_OFFSETS = ("Z", "+00:00", "+08:00", "-05:00", "+05:45", "+14:00", "-12:00", "+23:59", "-23:59")
MARGIN_S = 2  # valid instants stay this far inside the window: renderings round down ≤ 1 s


def ts_window(world: World, will: bool) -> tuple[int, int]:
    """The ``ts`` window as whole seconds relative to ``received_at``, shrunk by the margin."""
    limits = world.limits
    oldest = limits.max_will_age if will else limits.max_age
    return (
        -int(oldest.total_seconds()) + MARGIN_S,
        int(limits.max_future.total_seconds()) - MARGIN_S,
    )


def valid_instant(src: Source, world: World, will: bool) -> datetime:
    lo, hi = ts_window(world, will)
    mode = src.choice(("recent", "anywhere", "oldest", "newest"))
    if mode == "recent":
        offset = src.integer(max(lo, -3600), min(hi, 60))
    elif mode == "anywhere":
        offset = src.integer(lo, hi)
    elif mode == "oldest":
        offset = src.integer(lo, lo + 10)
    else:
        offset = src.integer(hi - 10, hi - 1)
    return world.received_at + timedelta(seconds=offset, microseconds=src.integer(0, 999_999))


def render_ts(src: Source, instant: datetime) -> Any:
    """``instant`` the way a device may write it (all of them valid)."""
    fmt = src.choice(("rfc3339", "seconds", "millis", "float_seconds"))
    if fmt == "seconds":
        return math.floor(instant.timestamp())
    if fmt == "millis":
        return math.floor(instant.timestamp() * 1000)
    if fmt == "float_seconds":
        return math.floor(instant.timestamp() * 1000) / 1000
    offset = src.choice(_OFFSETS)
    if offset == "Z":
        local, suffix = instant.astimezone(UTC), "Z"
    else:
        sign = -1 if offset[0] == "-" else 1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])) * sign
        local, suffix = instant.astimezone(timezone(delta)), offset
    digits = src.choice((0, 3, 6, 9))
    frac = f"{local.microsecond:06d}000"[:digits]
    sep = src.choice(("T", " "))
    return local.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + (f".{frac}" if digits else "") + suffix


# --- valid payloads, one builder per model ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ctx:
    """What a payload is built for: its model, the topic's device id, whether it is a last
    will (status, seq 0: the wider window) and the world."""

    world: World
    model: type[BaseModel]
    device_id: str
    will: bool


def _num(src: Source, model: type[BaseModel], name: str) -> float:
    lo, hi = bounds(model, name)
    return src.real(lo, hi)


def _int(src: Source, model: type[BaseModel], name: str) -> int:
    lo, hi = _int_bounds(model, name)
    return src.integer(lo, hi)


def _optional(src: Source, body: Obj, name: str, make: Callable[[], Any]) -> None:
    """Leave an optional field out, write it, or write null (all valid)."""
    how = src.choice(("absent", "present", "present", "null"))
    if how == "present":
        body.set(name, make())
    elif how == "null":
        body.set(name, None)


def _water(src: Source, c: Ctx, body: Obj) -> None:
    m = WaterTelemetry
    body.set("pressure_kpa", _num(src, m, "pressure_kpa"))
    _optional(src, body, "level_m", lambda: _num(src, m, "level_m"))
    _optional(src, body, "pump_running", lambda: src.chance(50))
    _optional(src, body, "jockey_running", lambda: src.chance(50))
    _optional(src, body, "room_temp_c", lambda: _num(src, m, "room_temp_c"))


def charging_port(src: Source, number: int) -> Obj:
    m = ChargingPort
    temp, current = _num(src, m, "temp_c"), _num(src, m, "current_a")
    return Obj(
        [("port", number), ("temp_c", temp), ("current_a", current), ("charging", src.chance(50))]
    )


def _port_numbers(src: Source, n: int) -> list[int]:
    """``n`` distinct port numbers in 1..1024, in a device's (not necessarily sorted) order."""
    if n == 0:
        return []
    step = src.integer(1, max(1, 1023 // max(n - 1, 1)))
    first = src.integer(1, 1024 - (n - 1) * step)
    numbers = [first + i * step for i in range(n)]
    turn = src.integer(0, n - 1)
    numbers = numbers[turn:] + numbers[:turn]
    return numbers[::-1] if src.chance(30) else numbers


def _shed(src: Source, c: Ctx, body: Obj) -> None:
    m = EbikeShedTelemetry
    _optional(src, body, "ambient_c", lambda: _num(src, m, "ambient_c"))
    _optional(src, body, "smoke", lambda: src.chance(50))
    if src.chance(90):
        n = src.integer(0, 12) if src.chance(95) else src.integer(13, 64)
        body.set("ports", [charging_port(src, p) for p in _port_numbers(src, n)])


def _panel(src: Source, c: Ctx, body: Obj) -> None:
    m = PanelEvent
    kind = src.choice(tuple(t.value for t in PanelEventType))
    body.set("type", kind)
    body.set("system_type", _int(src, m, "system_type"))
    body.set("system_addr", _int(src, m, "system_addr"))
    if kind == PanelEventType.COMPONENT_STATUS.value:
        body.set("component_type", _int(src, m, "component_type"))
        body.set("component_addr", _int(src, m, "component_addr"))
    else:
        _optional(src, body, "component_type", lambda: _int(src, m, "component_type"))
        _optional(src, body, "component_addr", lambda: _int(src, m, "component_addr"))
    top = 0xFF if kind in BYTE_STATUS_TYPES else 0xFFFF
    body.set("status", src.integer(0, top))
    _optional(src, body, "operator", lambda: _int(src, m, "operator"))
    _optional(src, body, "description", lambda: src.text(max_len(m, "description")))
    _optional(src, body, "detail", lambda: detail_object(src))


#: Keys a ``detail`` object may have ([a-z_]{1,32}), the longest included.
_DETAIL_KEYS = ("value", "unit", "asked_at", "timeout_s", "quantity", "a", "_", "k" * 32)


def detail_object(src: Source) -> Obj:
    """A valid ``detail``: up to 16 keys, each value a short text, an int64, a finite
    float, a bool or null."""
    keys = [*_DETAIL_KEYS, *(f"x_{chr(97 + i)}" for i in range(16))]
    out = Obj()
    for key in keys[: src.integer(0, 16)]:
        kind = src.choice(("null", "bool", "int", "float", "text"))
        value: Any = {"null": None, "bool": src.chance(50)}.get(kind)
        if kind == "int":
            value = src.integer(-(2**63), 2**63 - 1)
        elif kind == "float":
            value = src.choice((0.5, -1.25, 1e308, 5e-324, 101.3))
        elif kind == "text":
            value = src.text(DETAIL_MAX_TEXT)
        out.set(key, value)
    return out


def _status(src: Source, c: Ctx, body: Obj) -> None:
    m = DeviceStatus
    body.set("state", "offline" if c.will else src.choice(("online", "offline")))
    _optional(src, body, "firmware", lambda: src.text(max_len(m, "firmware")))
    _optional(src, body, "battery_pct", lambda: _num(src, m, "battery_pct"))
    _optional(src, body, "rssi_dbm", lambda: _num(src, m, "rssi_dbm"))
    if c.will:
        body.set("reason", "will")
    else:
        _optional(src, body, "reason", lambda: src.text(max_len(m, "reason")))


def max_len(model: type[BaseModel], name: str) -> int:
    n = FIELDS[model][name].max_length
    assert n is not None
    return n


_BUILDERS: dict[type[BaseModel], Callable[[Source, Ctx, Obj], None]] = {
    WaterTelemetry: _water,
    EbikeShedTelemetry: _shed,
    PanelEvent: _panel,
    DeviceStatus: _status,
}


def valid_body(src: Source, c: Ctx) -> Obj:
    """A payload that the contract accepts for ``c`` (seq, ts in the window, the model's
    fields within their bounds, sometimes ``device_id`` and vendor extras)."""
    seq_lo, seq_hi = _int_bounds(c.model, "seq")
    seq = (
        0 if c.will else src.integer(1 if CHANNEL_OF[c.model] is Channel.STATUS else seq_lo, seq_hi)
    )
    body = Obj([("seq", seq), ("ts", render_ts(src, valid_instant(src, c.world, c.will)))])
    _BUILDERS[c.model](src, c, body)
    if src.chance(25):
        body.set("device_id", c.device_id)
    for _ in range(src.integer(0, 2) if src.chance(30) else 0):
        # extras are ignored by the contract; the "x-" prefix keeps them off its fields
        body.set("x-" + src.text(8), json_value(src, 2))
    if src.chance(20):  # key order is not part of the contract
        turn = src.integer(0, len(body.pairs) - 1)
        body.pairs = body.pairs[turn:] + body.pairs[:turn]
    return body


# --- random JSON ------------------------------------------------------------------------------


def json_value(src: Source, depth: int) -> Any:
    kinds = ("null", "bool", "int", "float", "text") + (("list", "object") if depth > 0 else ())
    kind = src.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return src.chance(50)
    if kind == "int":
        return src.integer(-(2**70), 2**70)
    if kind == "float":
        return src.any_float()
    if kind == "text":
        return src.text(20)
    if kind == "list":
        return [json_value(src, depth - 1) for _ in range(src.integer(0, 4))]
    return Obj([(src.text(8), json_value(src, depth - 1)) for _ in range(src.integer(0, 4))])
