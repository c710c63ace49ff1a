"""MQTT messages for fuzzing ingest's decoders, and what every decoded message must satisfy.

One set of generators, two drivers. Each generator takes a :class:`Source` (a handful of
primitive draws: an integer in a range, a choice, a float, some bytes or text) and builds a
:class:`Message` from it:

* :func:`message_strategy` wraps them as a hypothesis strategy (:class:`HypothesisSource`:
  every primitive is a hypothesis draw, so failures shrink and ``derandomize`` reproduces),
  for ``tests/ingest/test_decode_properties.py``;
* :class:`RandomSource` drives the same generators from a seeded ``random.Random``, for
  ``firewatch bench decoders`` (:mod:`firewatch.lab.fuzzdecode`): ~0.11 ms per message
  against ~2.5 ms through hypothesis' engine, so a million examples take minutes, and the
  seed alone reproduces a run. It mimics hypothesis' bias towards the ends of each range.

What is generated (weights in ``_TOPIC_MODES`` / ``_PAYLOAD_MODES``): topics well-formed
for every registered device's channels, for the wrong unit, the wrong channel of a kind, an
unknown device, malformed channels and ids (including a trailing newline), other roots and
level counts, and garbage; payloads valid for every ``(kind, channel)`` of
:data:`firewatch.core.contract.MODELS` (built from the models' own field bounds, with
timestamps anywhere in the acceptance window, as RFC 3339 with offsets up to ±23:59 or as
Unix seconds / milliseconds, and last wills with their older connect time), those payloads
with one or several mutations (dropped, duplicated and retyped keys; range boundaries and
the next float beyond; NaN, infinities, huge integers; NUL, lone surrogates and raw control
characters in strings, strings at and past their length limit; timestamps in year 1 and
9999, at and past the window; nested junk past the parser's depth limit; port lists with
duplicates or 257 entries; truncated bytes, invalid UTF-8, a BOM, trailing garbage,
whitespace up to and past the size limit), random JSON values and random bytes.

Each message carries the outcome its construction implies when that is certain (``expect``:
``"row"`` or a :class:`~firewatch.core.rows.Reason`), else None. :func:`check` states the
properties: one :class:`~firewatch.core.rows.DeadLetter` (exact topic and bytes, a detail)
or one row that readers accept (:func:`~firewatch.core.rows.row_problem`) and that fits the
columns the writer COPYs it into (:func:`storage_problem`), with ``ts`` inside its window.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel

from firewatch.core.contract import (
    MODELS,
    ChargingPort,
    DeviceStatus,
    EbikeShedTelemetry,
    PanelEvent,
    WaterTelemetry,
)
from firewatch.core.domain import CHANNELS_BY_KIND, Channel, DeviceKind, PanelEventType
from firewatch.core.rows import (
    DeadLetter,
    EventRow,
    Reason,
    StatusRow,
    TelemetryRow,
    row_problem,
)
from firewatch.core.settings import Settings
from firewatch.ingest.codec import Decoder, DeviceInfo, Limits, Route, decode, route
from firewatch.ingest.writer import _COLUMNS as WRITER_COLUMNS

if TYPE_CHECKING:
    from hypothesis.strategies import DrawFn, SearchStrategy

T = TypeVar("T")

#: ``Message.expect`` when the message must decode to a row.
ROW = "row"


# --- sources of randomness ------------------------------------------------------------------


class Source(Protocol):
    """The primitive draws every generator is written against."""

    def integer(self, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]``."""
        ...

    def choice(self, options: Sequence[T]) -> T:
        """One of ``options`` (earlier ones are the simpler: hypothesis shrinks to them)."""
        ...

    def chance(self, percent: int) -> bool:
        """True with about ``percent`` % probability (shrinks to False)."""
        ...

    def real(self, lo: float, hi: float) -> float:
        """A finite float in ``[lo, hi]``."""
        ...

    def any_float(self) -> float:
        """Any float, NaN and the infinities included."""
        ...

    def binary(self, max_size: int) -> bytes: ...

    def text(self, max_size: int) -> str:
        """Text the database can store: no NUL, no lone surrogates (the generators put
        those in on purpose, where they mean to)."""
        ...


class RandomSource:
    """:class:`Source` over a seeded ``random.Random``, biased like hypothesis towards the
    ends of ranges, small magnitudes and special floats."""

    _SPECIAL_FLOATS = (0.0, -0.0, 1.0, -1.0, 0.5, 5e-324, -5e-324, 2.2250738585072014e-308,
                       1e-45, 3.4028234663852886e38, 3.4028235e38, 1.7976931348623157e308,
                       -1.7976931348623157e308, 1e300, 2.0**53, 2.0**63, -(2.0**63), 1e16,
                       math.inf, -math.inf, math.nan)  # fmt: skip

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def integer(self, lo: int, hi: int) -> int:
        r = self._rng
        x = r.random()
        if x < 0.1:
            return r.choice((lo, hi, min(lo + 1, hi), max(hi - 1, lo)))
        if x < 0.25 and hi - lo > 1000:
            return lo + r.randrange(256)
        return r.randint(lo, hi)

    def choice(self, options: Sequence[T]) -> T:
        return options[self._rng.randrange(len(options))]

    def chance(self, percent: int) -> bool:
        return self._rng.random() * 100 < percent

    def real(self, lo: float, hi: float) -> float:
        r = self._rng
        x = r.random()
        if x < 0.1:
            edges = [lo, hi] + ([0.0, -0.0, 5e-324] if lo <= 0.0 < hi else [])
            return r.choice(edges)
        if x < 0.25:
            return min(hi, max(lo, round(r.uniform(lo, hi), 1)))
        return r.uniform(lo, hi)

    def any_float(self) -> float:
        r = self._rng
        if r.random() < 0.3:
            return r.choice(self._SPECIAL_FLOATS)
        return math.ldexp(r.uniform(-1.0, 1.0), r.randint(-1074, 1023))

    def binary(self, max_size: int) -> bytes:
        r = self._rng
        n = r.randint(0, min(max_size, 16)) if r.random() < 0.7 else r.randint(0, max_size)
        return r.randbytes(n)

    def text(self, max_size: int) -> str:
        r = self._rng
        n = r.randint(0, min(max_size, 12)) if r.random() < 0.85 else r.randint(0, max_size)
        return "".join([self._char(r) for _ in range(n)])

    @staticmethod
    def _char(r: random.Random) -> str:
        x = r.random()
        if x < 0.6:
            return chr(r.randint(0x20, 0x7E))
        if x < 0.68:
            return chr(r.randint(0x01, 0x1F))  # control characters (NUL aside) are storable
        if x < 0.82:
            return chr(r.randint(0x4E00, 0x9FFF))
        if x < 0.9:
            return chr(r.choice((r.randint(0x80, 0xD7FF), r.randint(0xE000, 0xFFFF))))
        return chr(r.randint(0x10000, 0x10FFFF))


class HypothesisSource:
    """:class:`Source` over a hypothesis ``draw`` (inside ``st.composite``)."""

    def __init__(self, draw: DrawFn) -> None:
        from hypothesis import strategies as st

        self._draw = draw
        self._st = st
        self._chars = st.characters(codec="utf-8", exclude_characters="\x00")

    def integer(self, lo: int, hi: int) -> int:
        return self._draw(self._st.integers(lo, hi))

    def choice(self, options: Sequence[T]) -> T:
        return self._draw(self._st.sampled_from(options))

    def chance(self, percent: int) -> bool:
        return self._draw(self._st.integers(0, 99)) >= 100 - percent

    def real(self, lo: float, hi: float) -> float:
        return self._draw(self._st.floats(lo, hi, allow_nan=False, allow_infinity=False))

    def any_float(self) -> float:
        return self._draw(self._st.floats())

    def binary(self, max_size: int) -> bytes:
        return self._draw(self._st.binary(max_size=max_size))

    def text(self, max_size: int) -> str:
        return self._draw(self._st.text(self._chars, max_size=max_size))


# --- the world the messages are aimed at ----------------------------------------------------


class World:
    """The registry, server time and limits one set of messages is generated for and
    checked against. ``received_at`` is the server time every message is decoded at."""

    def __init__(
        self,
        devices: Mapping[str, DeviceInfo],
        received_at: datetime,
        limits: Limits,
        root: str = "firewatch/v1",
    ) -> None:
        if not devices:
            raise ValueError("a world needs registered devices")
        self.devices = dict(devices)
        self.received_at = received_at
        self.limits = limits
        self.root = root
        self.by_kind: dict[DeviceKind, tuple[str, ...]] = {
            kind: tuple(sorted(d for d, info in self.devices.items() if info.kind is kind))
            for kind in DeviceKind
        }
        self.kinds = tuple(k for k in DeviceKind if self.by_kind[k])
        self.units = tuple(sorted({info.unit_id for info in self.devices.values()}))

    def lookup(self, device_id: str) -> DeviceInfo | None:
        return self.devices.get(device_id)

    def decoder(self) -> Decoder:
        """A :class:`Decoder` over this world's registry (one snapshot)."""
        snap = object()
        return Decoder(root=self.root, lookup=self.lookup, snapshot=lambda: snap,
                       limits=self.limits)  # fmt: skip


def default_limits() -> Limits:
    """The acceptance limits of default Settings (the environment is not read)."""
    return Limits.from_settings(Settings.model_construct())


def demo_devices() -> dict[str, DeviceInfo]:
    """The demo city's devices (``storage/seeds/xuchang.toml``), as the registry has them."""
    from firewatch.storage.seed import read_seed

    return {d.id: DeviceInfo(u.id, d.kind) for u in read_seed().units for d in u.devices}


#: The server time of reproducible runs (the benchmark, property A).
REFERENCE_TIME = datetime(2026, 12, 6, 12, 0, 0, 250_000, tzinfo=UTC)


def demo_world(received_at: datetime = REFERENCE_TIME, limits: Limits | None = None) -> World:
    return World(demo_devices(), received_at, limits or default_limits())


# --- messages --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message. ``case``: how it was made (``topic-mode/payload-mode``);
    ``expect``: ``"row"``, a :class:`Reason` value, or None when any outcome is allowed."""

    topic: str
    payload: bytes
    case: str
    expect: str | None


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
        return "{" + ",".join(json.dumps(k, ensure_ascii=ascii_only) + ":" + dumps(v, ascii_only)
                              for k, v in value.pairs) + "}"  # fmt: skip
    if isinstance(value, list):
        return "[" + ",".join(dumps(v, ascii_only) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=ascii_only)
    return json.dumps(value)  # None, bool, int, float (NaN, Infinity as JavaScript writes them)


def to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# --- field facts, from the contract's models --------------------------------------------------

#: JSON kind of every contract field (a field the table lacks fails loudly: see _FIELDS).
_KIND_OF = {
    "seq": "int", "ts": "time", "device_id": "text", "pressure_kpa": "float",
    "level_m": "float", "pump_running": "bool", "jockey_running": "bool",
    "room_temp_c": "float", "ambient_c": "float", "smoke": "bool", "ports": "list",
    "type": "enum", "system_type": "int", "system_addr": "int", "component_type": "int",
    "component_addr": "int", "status": "int", "operator": "int", "description": "text",
    "state": "enum", "firmware": "text", "battery_pct": "float", "rssi_dbm": "float",
    "reason": "text", "port": "int", "temp_c": "float", "current_a": "float",
    "charging": "bool",
}  # fmt: skip
#: Which JSON values a strict field of each kind takes.
_ACCEPTS = {"float": {"int", "float"}, "int": {"int"}, "bool": {"bool"}, "text": {"str"},
            "list": {"list"}}  # fmt: skip


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
        out[name] = _Field(name, _KIND_OF[name], info.is_required(),
                           not info.is_required() and info.default is None, lo, hi,
                           max_length)  # fmt: skip
    return out


_PAYLOAD_MODELS: tuple[type[BaseModel], ...] = tuple(dict.fromkeys(MODELS.values()))
_ALL_MODELS: tuple[type[BaseModel], ...] = (*_PAYLOAD_MODELS, ChargingPort)
_FIELDS: dict[type[BaseModel], dict[str, _Field]] = {m: _facts(m) for m in _ALL_MODELS}
_CHANNEL_OF: dict[type[BaseModel], Channel] = {model: ch for (_k, ch), model in MODELS.items()}


def _bounds(model: type[BaseModel], name: str) -> tuple[float, float]:
    f = _FIELDS[model][name]
    assert f.lo is not None, f"{model.__name__}.{name} has no lower bound"
    assert f.hi is not None, f"{model.__name__}.{name} has no upper bound"
    return f.lo, f.hi


def _int_bounds(model: type[BaseModel], name: str) -> tuple[int, int]:
    lo, hi = _bounds(model, name)
    return int(lo), int(hi)


# --- timestamps -----------------------------------------------------------------------------

#: Offsets a valid RFC 3339 ``ts`` may carry (pydantic takes up to ±23:59).
_OFFSETS = ("Z", "+00:00", "+08:00", "-05:00", "+05:45", "+14:00", "-12:00", "+23:59", "-23:59")
_MARGIN_S = 2  # valid instants stay this far inside the window: renderings round down ≤ 1 s


def _window(world: World, will: bool) -> tuple[int, int]:
    """The ``ts`` window as whole seconds relative to ``received_at``, shrunk by the margin."""
    limits = world.limits
    oldest = limits.max_will_age if will else limits.max_age
    return (-int(oldest.total_seconds()) + _MARGIN_S,
            int(limits.max_future.total_seconds()) - _MARGIN_S)  # fmt: skip


def _instant(src: Source, world: World, will: bool) -> datetime:
    lo, hi = _window(world, will)
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


def _render_ts(src: Source, instant: datetime) -> Any:
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
class _Ctx:
    """What a payload is built for: its model, the topic's device id, whether it is a last
    will (status, seq 0: the wider window) and the world."""

    world: World
    model: type[BaseModel]
    device_id: str
    will: bool


def _num(src: Source, model: type[BaseModel], name: str) -> float:
    lo, hi = _bounds(model, name)
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


def _water(src: Source, c: _Ctx, body: Obj) -> None:
    m = WaterTelemetry
    body.set("pressure_kpa", _num(src, m, "pressure_kpa"))
    _optional(src, body, "level_m", lambda: _num(src, m, "level_m"))
    _optional(src, body, "pump_running", lambda: src.chance(50))
    _optional(src, body, "jockey_running", lambda: src.chance(50))
    _optional(src, body, "room_temp_c", lambda: _num(src, m, "room_temp_c"))


def _port(src: Source, number: int) -> Obj:
    m = ChargingPort
    temp, current = _num(src, m, "temp_c"), _num(src, m, "current_a")
    return Obj([("port", number), ("temp_c", temp), ("current_a", current),
                ("charging", src.chance(50))])  # fmt: skip


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


def _shed(src: Source, c: _Ctx, body: Obj) -> None:
    m = EbikeShedTelemetry
    _optional(src, body, "ambient_c", lambda: _num(src, m, "ambient_c"))
    _optional(src, body, "smoke", lambda: src.chance(50))
    if src.chance(90):
        n = src.integer(0, 12) if src.chance(95) else src.integer(13, 64)
        body.set("ports", [_port(src, p) for p in _port_numbers(src, n)])


def _panel(src: Source, c: _Ctx, body: Obj) -> None:
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
    top = 0xFF if kind == PanelEventType.OPERATION.value else 0xFFFF
    body.set("status", src.integer(0, top))
    _optional(src, body, "operator", lambda: _int(src, m, "operator"))
    _optional(src, body, "description", lambda: src.text(_max_len(m, "description")))


def _status(src: Source, c: _Ctx, body: Obj) -> None:
    m = DeviceStatus
    body.set("state", "offline" if c.will else src.choice(("online", "offline")))
    _optional(src, body, "firmware", lambda: src.text(_max_len(m, "firmware")))
    _optional(src, body, "battery_pct", lambda: _num(src, m, "battery_pct"))
    _optional(src, body, "rssi_dbm", lambda: _num(src, m, "rssi_dbm"))
    if c.will:
        body.set("reason", "will")
    else:
        _optional(src, body, "reason", lambda: src.text(_max_len(m, "reason")))


def _max_len(model: type[BaseModel], name: str) -> int:
    n = _FIELDS[model][name].max_length
    assert n is not None
    return n


_BUILDERS: dict[type[BaseModel], Callable[[Source, _Ctx, Obj], None]] = {
    WaterTelemetry: _water,
    EbikeShedTelemetry: _shed,
    PanelEvent: _panel,
    DeviceStatus: _status,
}


def valid_body(src: Source, c: _Ctx) -> Obj:
    """A payload that the contract accepts for ``c`` (seq, ts in the window, the model's
    fields within their bounds, sometimes ``device_id`` and vendor extras)."""
    seq_lo, seq_hi = _int_bounds(c.model, "seq")
    seq = 0 if c.will else src.integer(1 if _CHANNEL_OF[c.model] is Channel.STATUS else seq_lo,
                                       seq_hi)  # fmt: skip
    body = Obj([("seq", seq), ("ts", _render_ts(src, _instant(src, c.world, c.will)))])
    _BUILDERS[c.model](src, c, body)
    if src.chance(25):
        body.set("device_id", c.device_id)
    for _ in range(src.integer(0, 2) if src.chance(30) else 0):
        # extras are ignored by the contract; the "x-" prefix keeps them off its fields
        body.set("x-" + src.text(8), _json_value(src, 2))
    if src.chance(20):  # key order is not part of the contract
        turn = src.integer(0, len(body.pairs) - 1)
        body.pairs = body.pairs[turn:] + body.pairs[:turn]
    return body


# --- random JSON ------------------------------------------------------------------------------


def _json_value(src: Source, depth: int) -> Any:
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
        return [_json_value(src, depth - 1) for _ in range(src.integer(0, 4))]
    return Obj([(src.text(8), _json_value(src, depth - 1)) for _ in range(src.integer(0, 4))])


# --- mutations of a valid body: each returns the outcome it implies (None: not certain) ------

Expect = str | None
_OTHER_TYPES: tuple[tuple[str, Any], ...] = (
    ("null", None), ("str", "300"), ("str", ""), ("bool", True), ("bool", False),
    ("int", 1), ("int", -7), ("float", 1.5), ("list", []), ("list", [1, 2]), ("object", None),
)  # fmt: skip


def _m_drop(src: Source, c: _Ctx, body: Obj) -> Expect:
    key = src.choice(body.names() or ["seq"])
    body.drop(key)
    field = _FIELDS[c.model].get(key)
    if field is not None and field.required:
        return Reason.MISSING_FIELD
    if key.startswith("component_") and body.get("type") == PanelEventType.COMPONENT_STATUS:
        return Reason.INVALID  # the model's own rule: component_status needs both
    return ROW


def _m_duplicate(src: Source, c: _Ctx, body: Obj) -> Expect:
    """A key twice: the last one counts, as in every JSON parser ingest might use."""
    key = src.choice(body.names() or ["seq"])
    junk = _json_value(src, 1)
    if src.chance(50):
        body.pairs.insert(0, (key, junk))
        return ROW  # the original, valid value comes last
    body.pairs.append((key, junk))
    return None


def _m_retype(src: Source, c: _Ctx, body: Obj) -> Expect:
    key = src.choice(body.names() or ["seq"])
    jtype, value = src.choice(_OTHER_TYPES)
    body.set(key, Obj() if jtype == "object" else list(value) if jtype == "list" else value)
    field = _FIELDS[c.model].get(key)
    if field is None:
        return ROW  # an extra key: ignored whatever its value
    accepts = _ACCEPTS.get(field.kind)
    if accepts is None or jtype in accepts:
        return None  # time, enum and literal rules are pydantic's; a right type may be out of range
    if jtype == "null" and not field.nullable:
        return Reason.WRONG_TYPE
    if key.startswith("component_") and body.get("type") == PanelEventType.COMPONENT_STATUS:
        return Reason.INVALID if jtype == "null" else Reason.WRONG_TYPE
    return ROW if jtype == "null" else Reason.WRONG_TYPE


def _m_number(src: Source, c: _Ctx, body: Obj) -> Expect:
    """A number field at, just past or far past its bounds, or not a finite number."""
    keys = [k for k in body.names() if _KIND_OF.get(k) in ("int", "float")] or ["seq"]
    key = src.choice(keys)
    is_int = _FIELDS[c.model][key].kind == "int"
    lo, hi = _bounds(c.model, key)
    beyond: str = Reason.OUT_OF_RANGE
    if key == "status" and body.get("type") == PanelEventType.OPERATION:
        hi, beyond = 0xFF, Reason.INVALID  # an operation word has 8 bits (model rule)
    variant = src.choice(("lo", "hi", "below", "above", "nan", "inf", "-inf", "1e309",
                          "2**64", "-2**64", "digits", "-0.0", "denormal", "integral"))  # fmt: skip
    value: Any
    expect: Expect
    if variant == "lo":
        value, expect = (int(lo) if is_int else lo), ROW
    elif variant == "hi":
        value, expect = (int(hi) if is_int else hi), ROW
    elif variant == "below":
        value = int(lo) - 1 if is_int else math.nextafter(lo, -math.inf)
        expect = Reason.OUT_OF_RANGE
    elif variant == "above":
        value = int(hi) + 1 if is_int else math.nextafter(hi, math.inf)
        expect = beyond
    elif variant in ("nan", "inf", "-inf", "1e309"):
        value = Raw({"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(variant, variant))
        expect = Reason.WRONG_TYPE if is_int else Reason.NOT_FINITE
    elif variant in ("2**64", "-2**64"):
        value = 2**64 if variant == "2**64" else -(2**64)
        expect = Reason.OUT_OF_RANGE
    elif variant == "digits":
        value, expect = Raw("9" * src.integer(20, 6000)), None
    else:  # a float: for an integer field a wrong type even when integral
        value = {"-0.0": -0.0, "denormal": 5e-324}.get(variant, float(int(lo)))
        in_range = lo <= value <= hi
        expect = Reason.WRONG_TYPE if is_int else (ROW if in_range else Reason.OUT_OF_RANGE)
    if key == "seq" and _CHANNEL_OF[c.model] is Channel.STATUS and (c.will or value == 0):
        expect = None  # seq 0 on status is a last will: another ts window
    body.set(key, value)
    return expect


def _free_text(model: type[BaseModel]) -> list[str]:
    return [n for n, f in _FIELDS[model].items() if f.kind == "text" and n != "device_id"]


def _m_string(src: Source, c: _Ctx, body: Obj) -> Expect:
    """NUL, surrogates, raw control characters, and lengths at and past the limit, in a
    free-text field, ``device_id`` or an ignored extra key."""
    free_text = _free_text(c.model)
    target = src.choice([*free_text, *free_text, "device_id", "x-note"])
    free = target not in ("x-note", "device_id")
    limit = _FIELDS[c.model][target].max_length if free else None
    variant = src.choice(("nul", "lone_high", "lone_low", "reversed_pair", "pair", "nul",
                          "raw_control", "raw_del", "at_limit", "past_limit", "long"))  # fmt: skip
    # what the field makes of a storable string that fits: kept, a mismatch, or ignored
    expect: Expect
    fits: Expect = Reason.TOPIC_MISMATCH if target == "device_id" else ROW
    value: Any
    if variant == "nul":
        value = "fw\x00" + src.text(4)
        expect = ROW if target == "x-note" else Reason.INVALID
    elif variant in ("lone_high", "lone_low", "reversed_pair"):
        value = {"lone_high": "a\ud800", "lone_low": "\udfffz", "reversed_pair": "\ude00\ud83d"}[
            variant
        ]
        expect = Reason.NOT_JSON  # no JSON parser may turn it into text
    elif variant == "pair":
        value, expect = "\U0001f525 " + src.text(4), fits
    elif variant == "raw_control":
        value, expect = Raw('"a' + chr(src.integer(1, 0x1F)) + 'b"'), Reason.NOT_JSON
    elif variant == "raw_del":
        value, expect = Raw('"a\x7fb"'), fits
    elif variant == "at_limit":
        n = limit or 64
        value, expect = "\U0001f525" * (n // 2) + "x" * (n - n // 2), fits
    elif variant == "past_limit":
        n = (limit or 64) + 1
        value = "\U0001f525" * (n // 2) + "x" * (n - n // 2)
        expect = Reason.OUT_OF_RANGE if free else fits
    else:
        value = "long " * src.integer(200, 4000)
        expect = Reason.OUT_OF_RANGE if free else fits
    body.set(target, value)
    return expect


def _m_ts(src: Source, c: _Ctx, body: Obj) -> Expect:
    """Timestamps far out (year 1, year 9999, Unix 0), just past either end of the window,
    inside it as numbers, without an offset, or not a time at all."""
    lo, hi = _window(c.world, c.will)
    now = c.world.received_at
    cases: tuple[tuple[Any, Expect], ...] = (
        ("0001-01-01T00:00:00Z", Reason.TS_TOO_OLD),
        ("0001-01-01T00:00:00+14:00", Reason.TS_TOO_OLD),
        ("0001-01-01T00:00:00.000001-23:59", Reason.TS_TOO_OLD),
        ("9999-12-31T23:59:59Z", Reason.TS_IN_FUTURE),
        ("9999-12-31T23:59:59.999999-14:00", Reason.TS_IN_FUTURE),
        ("9999-12-31T23:59:59.999999+23:59", Reason.TS_IN_FUTURE),
        (0, Reason.TS_TOO_OLD),
        (-1, Reason.TS_TOO_OLD),
        (-0.0, Reason.TS_TOO_OLD),
        (Raw("1e-400"), Reason.TS_TOO_OLD),
        (-1_765_000_000, Reason.TS_TOO_OLD),
        (253_402_300_799_999, Reason.TS_IN_FUTURE),  # 9999-12-31T23:59:59.999Z in ms
        (math.floor(now.timestamp()) + hi + _MARGIN_S + 5, Reason.TS_IN_FUTURE),
        (math.floor(now.timestamp() * 1000) + (hi + _MARGIN_S + 5) * 1000, Reason.TS_IN_FUTURE),
        (math.floor(now.timestamp()) + lo - _MARGIN_S - 5, Reason.TS_TOO_OLD),
        (math.floor(now.timestamp() * 1000) + (lo - _MARGIN_S - 5) * 1000, Reason.TS_TOO_OLD),
        (_render_ts(src, _instant(src, c.world, c.will)), ROW),
        (now.replace(tzinfo=None).isoformat(), Reason.INVALID),  # no offset
        (now.strftime("%Y-%m-%d"), None),
        (now.strftime("%Y-%m-%dT%H:%M:%S+24:00"), None),
        (now.strftime("%Y-%m-%dt%H:%M:%S-00:00"), None),
        (now.strftime("+00%Y-%m-%dT%H:%M:%SZ"), None),
        (Raw("1e20"), None),
        (Raw("NaN"), None),
        (Raw("Infinity"), None),
        (2**63, None),
        (True, Reason.WRONG_TYPE),
        (src.text(30), None),
        ([], Reason.WRONG_TYPE),
    )
    value, expect = src.choice(cases)
    body.set("ts", value)
    return expect


def _m_nested(src: Source, c: _Ctx, body: Obj) -> Expect:
    """Nested junk in an ignored key: fine up to the parser's depth limit, refused past it."""
    depth = src.choice((src.integer(1, 100), src.integer(300, 5000)))
    opener, closer = src.choice((("[", "]"), ('{"a":', "}")))
    inner = "[]" if opener == "[" else "1"
    value = Raw(opener * depth + inner + closer * depth)
    if src.chance(20):  # in place of a field: the parser's depth limit or a wrong type
        body.set(src.choice(body.names() or ["seq"]), value)
        return None
    body.set("x-deep", value)
    return ROW if depth <= 100 else Reason.NOT_JSON


def _m_ports(src: Source, c: _Ctx, body: Obj) -> Expect:
    """Port lists a shed must not send (and the largest it may)."""
    if c.model is not EbikeShedTelemetry:
        return _m_retype(src, c, body)
    ports = body.get("ports")
    if not isinstance(ports, list) or not ports or not all(isinstance(p, Obj) for p in ports):
        ports = [_port(src, src.integer(1, 1024))]
    variant = src.choice(("duplicate", "max", "too_many", "port_0", "port_1025", "not_object",
                          "not_list", "missing_key", "extra_key", "nan_temp"))  # fmt: skip
    expect: Expect
    max_ports = _max_len(EbikeShedTelemetry, "ports")
    if variant == "duplicate":
        ports = [*ports, ports[src.integer(0, len(ports) - 1)]]
        expect = Reason.INVALID
    elif variant in ("max", "too_many"):
        n = max_ports + (1 if variant == "too_many" else 0)
        ports = [Obj([("port", i + 1), ("temp_c", 20.5), ("current_a", 1.25),
                      ("charging", i % 2 == 0)]) for i in range(n)]  # fmt: skip
        expect = ROW if variant == "max" else Reason.OUT_OF_RANGE
    elif variant in ("port_0", "port_1025"):
        ports[src.integer(0, len(ports) - 1)].set("port", 0 if variant == "port_0" else 1025)
        expect = Reason.OUT_OF_RANGE
    elif variant == "not_object":
        ports[src.integer(0, len(ports) - 1)] = 5
        expect = Reason.WRONG_TYPE
    elif variant == "not_list":
        body.set("ports", Obj([("1", ports[0])]))
        return Reason.WRONG_TYPE
    elif variant == "missing_key":
        ports[src.integer(0, len(ports) - 1)].drop(src.choice(("port", "temp_c", "current_a",
                                                                "charging")))  # fmt: skip
        expect = Reason.MISSING_FIELD
    elif variant == "extra_key":
        ports[src.integer(0, len(ports) - 1)].set("x-vendor", _json_value(src, 1))
        expect = ROW
    else:
        ports[src.integer(0, len(ports) - 1)].set("temp_c", Raw("NaN"))
        expect = Reason.NOT_FINITE
    body.set("ports", ports)
    return expect


def _m_panel(src: Source, c: _Ctx, body: Obj) -> Expect:
    """Panel events the model's own rules refuse."""
    if c.model is not PanelEvent:
        return _m_drop(src, c, body)
    variant = src.choice(("unknown_type", "upper_type", "operation_word", "component_missing"))
    if variant in ("unknown_type", "upper_type"):
        body.set("type", "fire" if variant == "unknown_type" else "SYSTEM_STATUS")
        return Reason.INVALID
    if variant == "operation_word":
        body.set("type", PanelEventType.OPERATION.value)
        body.set("status", src.integer(0x100, 0xFFFF))
        return Reason.INVALID
    body.set("type", PanelEventType.COMPONENT_STATUS.value)
    body.drop(src.choice(("component_type", "component_addr")))
    return Reason.INVALID


def _m_device_id(src: Source, c: _Ctx, body: Obj) -> Expect:
    other = src.choice((c.device_id, "", "D-NOT-REGISTERED", *sorted(c.world.devices)[:3]))
    body.set("device_id", other)
    return ROW if other == c.device_id else Reason.TOPIC_MISMATCH


#: Strings, timestamps and numbers weigh more: they are where the contract's newest rules
#: (NUL, surrogates, the window on every channel) and the columns' limits are.
_BODY_MUTATIONS: tuple[tuple[str, Callable[[Source, _Ctx, Obj], Expect]], ...] = (
    ("drop", _m_drop), ("duplicate", _m_duplicate), ("retype", _m_retype),
    ("number", _m_number), ("string", _m_string), ("ts", _m_ts), ("nested", _m_nested),
    ("ports", _m_ports), ("panel", _m_panel), ("device_id", _m_device_id),
    ("string", _m_string), ("string", _m_string), ("ts", _m_ts), ("number", _m_number),
)  # fmt: skip


# --- byte mutations of a serialized object ---------------------------------------------------

_BAD_UTF8 = (b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe4\xb8", b"\x80", b"\xf4\x90\x80\x80")


def _b_mutate(src: Source, world: World, data: bytes) -> tuple[str, bytes, Expect]:
    """One byte-level change of a compact JSON object's bytes, and its certain outcome
    if the object was valid."""
    variant = src.choice(("truncate", "bad_utf8", "flip", "pad_to_limit", "pad_past_limit",
                          "bom", "trailing", "twice", "leading_ws"))  # fmt: skip
    limit = world.limits.max_payload_bytes
    if variant == "truncate":  # every strict prefix of a compact object is unfinished
        return variant, data[: src.integer(0, len(data) - 1)], Reason.NOT_JSON
    if variant == "bad_utf8":  # outside a string a syntax error, inside one invalid text
        at = src.integer(0, len(data))
        return variant, data[:at] + src.choice(_BAD_UTF8) + data[at:], Reason.NOT_JSON
    if variant == "flip":
        at = src.integer(0, len(data) - 1)
        return variant, data[:at] + bytes([src.integer(0, 255)]) + data[at + 1 :], None
    if variant in ("pad_to_limit", "pad_past_limit"):
        size = limit + (1 if variant == "pad_past_limit" else 0)
        pad = max(0, size - len(data))
        expect: Expect = ROW if variant == "pad_to_limit" else Reason.OVERSIZED
        return variant, data + src.choice((b" ", b"\n", b"\t", b"\r")) * pad, expect
    if variant == "bom":
        return variant, b"\xef\xbb\xbf" + data, Reason.NOT_JSON
    if variant == "trailing":
        return variant, data + src.choice((b"x", b"}", b"\x00", b",", b"//")), Reason.NOT_JSON
    if variant == "twice":
        return variant, data + data, Reason.NOT_JSON
    return variant, b" \r\n\t" + data + b"\n", ROW


# --- topics ------------------------------------------------------------------------------------

ROUTED = "routed"  # the topic routes to a model: the payload decides

_BAD_CHANNELS = ("", "Telemetry", "events", "state", "telemetry ", "tëlemetry", "status\x00",
                 "+", "#", "telemetry\n", "STATUS", "status\ud800")  # fmt: skip
_BAD_IDS = ("", "a" * 65, "D WD", "设备", "+", "#", "\x00", "a\x00", "\ud800", "D-WD-001-W1\n",
            "U-WD-001\n", "\nU", "D-WD-001-W1 ", "é")  # fmt: skip
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"


def _valid_id(src: Source, max_len: int = 64) -> str:
    n = src.integer(1, max_len)
    return "".join(src.choice(_ID_CHARS) for _ in range(min(n, 12))) + "x" * max(0, n - 12)


@dataclass(frozen=True, slots=True)
class _Topic:
    text: str
    mode: str
    model: type[BaseModel]  # the payload model to aim at
    device_id: str  # the device id the payload may repeat
    expect: str | None  # ROUTED, a Reason, or None


def _topic(src: Source, world: World) -> _Topic:
    root = world.root
    mode = src.choice(_TOPIC_MODES)
    kind = src.choice(world.kinds)
    device = src.choice(world.by_kind[kind])
    unit = world.devices[device].unit_id
    channel = src.choice(sorted(CHANNELS_BY_KIND[kind]))
    model = MODELS[(kind, channel)]
    if mode == "ok":
        return _Topic(f"{root}/{unit}/{device}/{channel}", mode, model, device, ROUTED)
    if mode == "wrong_unit":
        other = src.choice([u for u in world.units if u != unit] or ["U-NONE"])
        return _Topic(f"{root}/{other}/{device}/{channel}", mode, model, device,
                      Reason.TOPIC_MISMATCH)  # fmt: skip
    if mode == "wrong_channel":
        wrong = src.choice(sorted(set(Channel) - CHANNELS_BY_KIND[kind]))
        return _Topic(f"{root}/{unit}/{device}/{wrong}", mode, model, device,
                      Reason.TOPIC_MISMATCH)  # fmt: skip
    if mode == "unknown_device":
        stranger = _valid_id(src)
        if stranger in world.devices:
            stranger = "D-UNKNOWN"
        return _Topic(f"{root}/{unit}/{stranger}/{channel}", mode, model, stranger,
                      Reason.UNKNOWN_DEVICE)  # fmt: skip
    if mode == "bad_channel":
        bad = src.choice(_BAD_CHANNELS)
        return _Topic(f"{root}/{unit}/{device}/{bad}", mode, model, device, Reason.BAD_TOPIC)
    if mode == "bad_id":
        bad = src.choice(_BAD_IDS)
        text = (f"{root}/{bad}/{device}/{channel}" if src.chance(50)
                else f"{root}/{unit}/{bad}/{channel}")  # fmt: skip
        return _Topic(text, mode, model, device, Reason.BAD_TOPIC)
    if mode == "bad_shape":
        text = src.choice((
            f"firewatch/v2/{unit}/{device}/{channel}", f"{root}/{unit}/{device}",
            f"{root}/{unit}/{device}/{channel}/extra", f"/{root}/{unit}/{device}/{channel}",
            f"{root}//{device}/{channel}", f"{root}/{unit}/{device}/", root, f"{root}/",
            f"FIREWATCH/v1/{unit}/{device}/{channel}", "$SYS/broker/uptime", "",
            f"{root}/{unit}/{device}/{channel}/",
        ))  # fmt: skip
        return _Topic(text, mode, model, device, Reason.BAD_TOPIC)
    text = src.text(100)
    if src.chance(30):
        text = root + "/" + text
    if src.chance(20):
        text += src.choice(("\x00", "\ud800", "\udfff", "/", "\n"))
    expect = None if text.startswith(root + "/") else Reason.BAD_TOPIC
    return _Topic(text, "garbage", model, device, expect)


_TOPIC_MODES = (("ok",) * 30 + ("wrong_unit", "wrong_channel", "unknown_device") * 2
                + ("bad_channel", "bad_id", "bad_shape", "garbage") * 1)  # fmt: skip


# --- payloads and messages -------------------------------------------------------------------

_PAYLOAD_MODES = (("valid",) * 4 + ("mutate",) * 8 + ("bytes_mutate",) * 3 + ("several",) * 3
                  + ("shape", "json", "keys", "random_bytes", "random_text"))  # fmt: skip


def _payload(src: Source, t: _Topic, world: World) -> tuple[str, bytes, Expect]:
    """(payload mode, bytes, the outcome certain for a topic that routes)."""
    model = t.model
    will = _CHANNEL_OF[model] is Channel.STATUS and src.chance(20)
    c = _Ctx(world, model, t.device_id, will)
    ascii_only = src.chance(50)
    mode = src.choice(_PAYLOAD_MODES)
    expect: Expect
    if mode == "random_bytes":
        return mode, src.binary(300), None
    if mode == "random_text":
        return mode, to_bytes(src.text(300)), None
    if mode == "json":
        value = _json_value(src, 4)
        expect = None if isinstance(value, Obj) else Reason.WRONG_TYPE
        return mode, to_bytes(dumps(value, ascii_only)), expect
    if mode == "keys":  # the model's own keys with random values
        body = Obj([(k, _json_value(src, 2)) for k in _FIELDS[model] if src.chance(70)])
        return mode, to_bytes(dumps(body, ascii_only)), None
    body = valid_body(src, c)
    if mode == "valid":
        return mode, to_bytes(dumps(body, ascii_only)), ROW
    if mode == "shape":
        text = dumps(body, ascii_only)
        shaped = src.choice(("[" + text + "]", "null", '"' + "x" * 3 + '"', "42", "[]", "{}"))
        return mode, to_bytes(shaped), Reason.MISSING_FIELD if shaped == "{}" else Reason.WRONG_TYPE
    if mode == "mutate":
        name, mutate = src.choice(_BODY_MUTATIONS)
        expect = mutate(src, c, body)
        return f"mutate:{name}", to_bytes(dumps(body, ascii_only)), expect
    if mode == "bytes_mutate":
        name, data, expect = _b_mutate(src, world, to_bytes(dumps(body, ascii_only)))
        return f"bytes:{name}", data, expect
    for _ in range(src.integer(2, 4)):  # several: no outcome is certain
        _name, mutate = src.choice(_BODY_MUTATIONS)
        mutate(src, c, body)
    data = to_bytes(dumps(body, ascii_only))
    if src.chance(30):
        _name, data, _expect = _b_mutate(src, world, data)
    return mode, data, None


def message(src: Source, world: World) -> Message:
    """One message at ``world``: a topic, a payload, and the outcome that is certain."""
    t = _topic(src, world)
    pmode, payload, pexpect = _payload(src, t, world)
    expect: str | None
    if len(payload) > world.limits.max_payload_bytes:
        expect = Reason.OVERSIZED  # checked before anything else
    elif t.expect == ROUTED:
        expect = pexpect
    else:
        expect = t.expect
    return Message(t.text, payload, f"{t.mode}/{pmode}", None if expect is None else str(expect))


def message_strategy(world: World) -> SearchStrategy[Message]:
    """:func:`message` as a hypothesis strategy."""
    from hypothesis import strategies as st

    @st.composite
    def messages(draw: DrawFn) -> Message:
        return message(HypothesisSource(draw), world)

    return messages()


def batch_strategy(world: World, max_size: int = 12) -> SearchStrategy[list[Message]]:
    """Batches of :func:`message` with redeliveries (a message again, later on)."""
    from hypothesis import strategies as st

    @st.composite
    def batches(draw: DrawFn) -> list[Message]:
        msgs = draw(st.lists(message_strategy(world), min_size=1, max_size=max_size))
        for _ in range(draw(st.integers(0, 3))):
            i = draw(st.integers(0, len(msgs) - 1))
            msgs.insert(draw(st.integers(i + 1, len(msgs))), msgs[i])
        return msgs

    return batches()


def random_messages(seed: int, world: World) -> Callable[[], Message]:
    """A generator of :func:`message` driven by ``random.Random(seed)``."""
    src = RandomSource(random.Random(seed))
    return lambda: message(src, world)


# --- the properties ----------------------------------------------------------------------------

_TABLE_OF: dict[type, str] = {TelemetryRow: "telemetry", EventRow: "events",
                              StatusRow: "device_status"}  # fmt: skip
_ROW_OF_CHANNEL = {Channel.TELEMETRY: TelemetryRow, Channel.EVENT: EventRow,
                   Channel.STATUS: StatusRow}  # fmt: skip
#: NOT NULL columns of the stream tables (storage/migrations/0002_streams.sql).
_NOT_NULL = {
    "telemetry": {"device_id", "seq", "ts", "received_at"},
    "events": {"device_id", "seq", "ts", "received_at", "event_type", "system_type",
               "system_addr", "status_word", "flags"},
    "device_status": {"device_id", "seq", "ts", "received_at", "state"},
}  # fmt: skip
_INT_BITS = {"int2": 16, "int4": 32, "int8": 64}
FLOAT4_MAX = 3.4028234663852886e38


def _value_problem(pg_type: str, v: object) -> str | None:
    if pg_type.endswith("[]"):
        if not isinstance(v, list):
            return f"{pg_type} needs a list, not {type(v).__name__}"
        for item in v:
            if item is None:
                return "an array holds NULL"
            problem = _value_problem(pg_type[:-2], item)
            if problem:
                return problem
        return None
    if pg_type == "text":
        if not isinstance(v, str):
            return f"text needs str, not {type(v).__name__}"
        if "\x00" in v:
            return "text holds NUL"
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return "text has no UTF-8 form (lone surrogate)"
        return None
    if pg_type in _INT_BITS:
        bits = _INT_BITS[pg_type]
        if type(v) is not int:
            return f"{pg_type} needs int, not {type(v).__name__}"
        return None if -(2 ** (bits - 1)) <= v < 2 ** (bits - 1) else f"{v} overflows {pg_type}"
    if pg_type == "float4":
        if type(v) not in (int, float):
            return f"float4 needs a number, not {type(v).__name__}"
        ok = math.isfinite(v) and abs(v) <= FLOAT4_MAX  # type: ignore[arg-type]
        return None if ok else f"{v!r} is not a finite float4"
    if pg_type == "bool":
        return None if type(v) is bool else f"bool needs bool, not {type(v).__name__}"
    if pg_type == "timestamptz":
        ok = isinstance(v, datetime) and v.utcoffset() is not None
        return None if ok else f"timestamptz needs an aware datetime, not {v!r}"
    return f"unknown column type {pg_type}"


def storage_problem(row: TelemetryRow | EventRow | StatusRow) -> str | None:
    """Why ``row`` would not fit the columns the writer COPYs it into (its binary COPY
    types, ``firewatch.ingest.writer``), or None."""
    table = _TABLE_OF[type(row)]
    columns, types = WRITER_COLUMNS[table]
    for name, pg_type, value in zip(columns, types, row, strict=True):
        if value is None:
            if name in _NOT_NULL[table]:
                return f"{table}.{name} is NOT NULL"
            continue
        problem = _value_problem(pg_type, value)
        if problem:
            return f"{table}.{name}: {problem}"
    return None


def check(msg: Message, out: object, world: World) -> list[str]:
    """What is wrong with ``out`` as the decoding of ``msg`` at ``world`` (empty: nothing).

    The properties: ``out`` is exactly one :class:`DeadLetter` or one row. A dead letter
    keeps the exact topic and payload bytes, the receive time, a contract reason (never
    ``db_rejected``) and a non-empty detail. A row is of the topic's channel and device,
    passes :func:`~firewatch.core.rows.row_problem` (what readers assume), fits its
    columns (:func:`storage_problem`: text without NUL and with a UTF-8 form, integers and
    floats in range) and has ``ts`` inside its window (a last will's lower bound is the
    record retention). An ``expect``-ed outcome must be the one produced.
    """
    problems: list[str] = []
    if type(out) is DeadLetter:
        if out.topic != msg.topic or type(out.topic) is not str:
            problems.append(f"dead letter topic {out.topic!r} is not the message's")
        if out.payload != msg.payload or type(out.payload) is not bytes:
            problems.append("dead letter payload is not the message's exact bytes")
        if out.received_at != world.received_at:
            problems.append("dead letter received_at is not the receive time")
        if not isinstance(out.reason, Reason) or out.reason is Reason.DB_REJECTED:
            problems.append(f"dead letter reason {out.reason!r} is not a contract reason")
        if not isinstance(out.detail, str) or not out.detail.strip():
            problems.append("dead letter has no detail")
        if msg.expect is not None and msg.expect != out.reason:
            problems.append(f"expected {msg.expect}, got dead letter {out.reason}: {out.detail}")
        return problems
    if type(out) not in _TABLE_OF:
        return [f"decoded to {type(out).__name__}, neither a row nor a dead letter"]
    row: TelemetryRow | EventRow | StatusRow = out  # type: ignore[assignment]
    if msg.expect is not None and msg.expect != ROW:
        problems.append(f"expected dead letter {msg.expect}, got a {type(row).__name__}")
    where = route(msg.topic, root=world.root, lookup=world.lookup)
    if type(where) is not Route:
        return [*problems, f"a row from a topic that does not route: {where}"]
    if type(row) is not _ROW_OF_CHANNEL[where.channel]:
        problems.append(f"{type(row).__name__} on channel {where.channel}")
    if row.device_id != where.device_id:
        problems.append(f"row device {row.device_id!r} is not the topic's {where.device_id!r}")
    if row.received_at != world.received_at:
        problems.append("row received_at is not the receive time")
    problem = row_problem(row) or storage_problem(row)
    if problem:
        problems.append(f"row not storable: {problem}")
    elif not _ts_in_window(row, where.channel, world):
        problems.append(f"row ts {row.ts.isoformat()} is outside its window")
    return problems


def _ts_in_window(row: TelemetryRow | EventRow | StatusRow, channel: Channel, world: World) -> bool:
    limits, now = world.limits, world.received_at
    will = channel is Channel.STATUS and row.seq == 0
    oldest = limits.max_will_age if will else limits.max_age
    return now - oldest <= row.ts <= now + limits.max_future


def decode_both(msg: Message, world: World, decoder: Decoder) -> tuple[object, list[str]]:
    """Decode ``msg`` with :func:`decode` and with ``decoder`` (twice: the second call
    answers from its topic cache); the outcome and what is wrong (exceptions, the three
    disagreeing, :func:`check`)."""
    outs: list[object] = []
    topic, payload, at = msg.topic, msg.payload, world.received_at
    try:  # the property: nothing escapes
        outs.append(decode(topic, payload, at, root=world.root, lookup=world.lookup,
                           limits=world.limits))  # fmt: skip
        outs.append(decoder(topic, payload, at))
        outs.append(decoder(topic, payload, at))
    except Exception as err:
        return None, [f"raised {type(err).__name__}: {err}"]
    first = outs[0]
    problems = [f"Decoder disagrees with decode: {o!r} != {first!r}"
                for o in outs[1:] if o != first]  # fmt: skip
    return first, problems + check(msg, first, world)


def outcome_label(out: object) -> str:
    """``row:<table>[/<kind>]`` or ``dead:<reason>``, for counting outcomes."""
    if type(out) is DeadLetter:
        return f"dead:{out.reason.value}"
    if type(out) is TelemetryRow:
        return "row:telemetry/" + ("water" if out.pressure_kpa is not None else "ebike_shed")
    if type(out) is StatusRow:
        return "row:device_status" + ("/will" if out.seq == 0 else "")
    return f"row:{_TABLE_OF.get(type(out), type(out).__name__)}"
