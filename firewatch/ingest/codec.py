"""Turn one MQTT message into one storable row, or into a dead letter with a precise reason.

:func:`decode` never raises for bad input: every failure is a :class:`DeadLetter`. The row
tuples are in the column order of the COPY statements in :mod:`firewatch.storage.streams`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pydantic import ValidationError

from firewatch.core.contract import (
    MODELS,
    DeviceStatus,
    EbikeShedTelemetry,
    PanelEvent,
    WaterTelemetry,
    is_valid_id,
)
from firewatch.core.domain import CHANNELS_BY_KIND, Channel, DeviceKind, decode_status
from firewatch.core.rows import DeadLetter, EventRow, Reason, Row, StatusRow, TelemetryRow
from firewatch.core.settings import Settings

__all__ = [  # the row shapes live in core.rows; re-exported for ingest's callers
    "DeadLetter",
    "Decoder",
    "DeviceInfo",
    "EventRow",
    "Limits",
    "Reason",
    "Route",
    "Row",
    "StatusRow",
    "TelemetryRow",
    "decode",
    "route",
    "validate",
]


# pydantic error type -> our reason; the first error of a message decides.
_PYDANTIC_REASONS: dict[str, Reason] = {
    "json_invalid": Reason.NOT_JSON,
    "json_type": Reason.NOT_JSON,
    "missing": Reason.MISSING_FIELD,
    "finite_number": Reason.NOT_FINITE,
    "greater_than": Reason.OUT_OF_RANGE,
    "greater_than_equal": Reason.OUT_OF_RANGE,
    "less_than": Reason.OUT_OF_RANGE,
    "less_than_equal": Reason.OUT_OF_RANGE,
    "too_long": Reason.OUT_OF_RANGE,
    "string_too_long": Reason.OUT_OF_RANGE,
    "timezone_aware": Reason.INVALID,
    "value_error": Reason.INVALID,
    "enum": Reason.INVALID,
    "literal_error": Reason.INVALID,
}


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What ingest needs to know about a registered device."""

    unit_id: str
    kind: DeviceKind


Lookup = Callable[[str], DeviceInfo | None]


@dataclass(frozen=True, slots=True)
class Limits:
    """Acceptance limits from Settings.

    Every message's ``ts`` must lie in ``[received_at - max_age, received_at + max_future]``;
    a last will (status, ``seq`` 0) carries its connection's start time instead, which
    may be weeks old, so its lower bound is ``max_will_age`` (the record retention: an
    older row would be expired at once). No channel accepts a time outside its window:
    a year-1 or year-9999 ``ts`` is a dead letter, never a row that readers must survive.
    """

    max_payload_bytes: int
    max_future: timedelta
    max_age: timedelta
    max_will_age: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.max_payload_bytes,
            timedelta(seconds=settings.max_clock_skew_future_s),
            timedelta(seconds=settings.max_backlog_age_s),
            timedelta(days=settings.record_retention_days),
        )


def _pydantic_reason(err: ValidationError) -> tuple[Reason, str]:
    first: Any = err.errors(include_url=False)[0]
    etype = str(first["type"])
    if etype.endswith("_type") or etype.endswith("_parsing") or etype == "model_attributes_type":
        reason = Reason.WRONG_TYPE
    else:
        reason = _PYDANTIC_REASONS.get(etype, Reason.INVALID)
    loc = ".".join(str(p) for p in first["loc"]) or "(payload)"
    detail = f"{loc}: {first['msg']}"
    if len(err.errors()) > 1:
        detail += f" (+{len(err.errors()) - 1} more)"
    return reason, detail


class Route(NamedTuple):
    """Where a valid topic's messages go: the device, its channel and the payload model."""

    device_id: str
    channel: Channel
    model: type[Any]


def route(topic: str, *, root: str, lookup: Lookup) -> Route | tuple[Reason, str]:
    """Check a topic against the contract and the registry: its :class:`Route`, or the
    dead-letter (reason, detail). Depends only on the topic, ``root`` and the registry."""
    prefix = root + "/"
    if not topic.startswith(prefix):
        return Reason.BAD_TOPIC, f"topic is not under {root}/"
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 3:
        return Reason.BAD_TOPIC, "expected {root}/{unit_id}/{device_id}/{channel}"
    unit_id, device_id, channel_name = parts
    if not (is_valid_id(unit_id) and is_valid_id(device_id)):
        return Reason.BAD_TOPIC, "unit and device ids must match [A-Za-z0-9_.-]{1,64}"
    try:
        channel = Channel(channel_name)
    except ValueError:
        return Reason.BAD_TOPIC, f"unknown channel {channel_name!r}"

    info = lookup(device_id)
    if info is None:
        return Reason.UNKNOWN_DEVICE, f"device {device_id!r} is not registered"
    if info.unit_id != unit_id:
        return (
            Reason.TOPIC_MISMATCH,
            f"device {device_id!r} belongs to unit {info.unit_id!r}, not {unit_id!r}",
        )
    if channel not in CHANNELS_BY_KIND[info.kind]:
        return Reason.TOPIC_MISMATCH, f"a {info.kind.value} device does not publish on {channel}"
    return Route(device_id, channel, MODELS[(info.kind, channel)])


def decode(
    topic: str,
    payload: bytes,
    received_at: datetime,
    *,
    root: str,
    lookup: Lookup,
    limits: Limits,
) -> Row | DeadLetter:
    """Validate one message against the contract and the registry.

    Returns the row to store, or a :class:`DeadLetter` saying why not. Never raises on input.
    """
    if len(payload) > limits.max_payload_bytes:
        return _oversized(topic, payload, received_at, limits)
    where = route(topic, root=root, lookup=lookup)
    if type(where) is not Route:
        return DeadLetter(received_at, topic, payload, *where)
    return validate(where, topic, payload, received_at, limits)


def _oversized(topic: str, payload: bytes, received_at: datetime, limits: Limits) -> DeadLetter:
    return DeadLetter(
        received_at,
        topic,
        payload,
        Reason.OVERSIZED,
        f"{len(payload)} bytes > limit {limits.max_payload_bytes}",
    )


def validate(
    where: Route, topic: str, payload: bytes, received_at: datetime, limits: Limits
) -> Row | DeadLetter:
    """The payload checks of :func:`decode`, for a topic that :func:`route` accepted."""

    def dead(reason: Reason, detail: str) -> DeadLetter:
        return DeadLetter(received_at, topic, payload, reason, detail)

    device_id, channel, model = where
    try:
        msg = model.model_validate_json(payload)
    except ValidationError as err:
        return dead(*_pydantic_reason(err))
    if msg.device_id is not None and msg.device_id != device_id:
        return dead(
            Reason.TOPIC_MISMATCH, f"payload device_id {msg.device_id!r} != topic {device_id!r}"
        )
    if msg.ts - received_at > limits.max_future:
        return dead(
            Reason.TS_IN_FUTURE,
            f"ts {msg.ts.isoformat()} is ahead of server time {received_at.isoformat()} "
            f"by more than {limits.max_future.total_seconds():g} s",
        )
    # A last will (status, seq 0) carries its connection's start time, which may be weeks old
    # for a long-lived connection: the backlog limit does not apply to it, retention does.
    is_will = channel is Channel.STATUS and msg.seq == 0
    oldest = limits.max_will_age if is_will else limits.max_age
    if received_at - msg.ts > oldest:
        return dead(
            Reason.TS_TOO_OLD,
            f"ts {msg.ts.isoformat()} is older than {oldest.total_seconds():g} s"
            + (" (the limit of a last will's connection time)" if is_will else ""),
        )
    return _to_row(device_id, received_at, msg)


class Decoder:
    """:func:`decode` with the topic checks cached per registry snapshot.

    Devices publish on the same few topics again and again, and :func:`route`'s answer
    depends only on the topic and the registry, so it is computed once per topic and
    snapshot: same results as :func:`decode`, a third of the cost (docs/performance.md).
    ``snapshot()`` must return an object that changes identity whenever the registry does.
    """

    #: Topics remembered per snapshot; past this the cache starts over (bounded memory
    #: whatever topics arrive).
    MAX_TOPICS = 100_000

    def __init__(
        self, *, root: str, lookup: Lookup, snapshot: Callable[[], object], limits: Limits
    ) -> None:
        self._root = root
        self._lookup = lookup
        self._snapshot = snapshot
        self._limits = limits
        # (snapshot, its routes), replaced as one object: the writer thread also decodes
        # (re-checking unknown devices) while the network thread does.
        self._cache: tuple[object, dict[str, Route | tuple[Reason, str]]] = (None, {})

    def __call__(self, topic: str, payload: bytes, received_at: datetime) -> Row | DeadLetter:
        limits = self._limits
        if len(payload) > limits.max_payload_bytes:
            return _oversized(topic, payload, received_at, limits)
        snap = self._snapshot()
        cached_for, routes = self._cache
        if cached_for is not snap or len(routes) >= self.MAX_TOPICS:
            routes = {}
            self._cache = (snap, routes)
        where = routes.get(topic)
        if where is None:
            where = route(topic, root=self._root, lookup=self._lookup)
            if self._snapshot() is snap:  # computed from exactly this snapshot
                routes[topic] = where
        if type(where) is not Route:
            return DeadLetter(received_at, topic, payload, *where)
        return validate(where, topic, payload, received_at, limits)


def _to_row(device_id: str, received_at: datetime, msg: Any) -> Row:
    if isinstance(msg, WaterTelemetry):
        return TelemetryRow(
            device_id,
            msg.seq,
            msg.ts,
            received_at,
            msg.pressure_kpa,
            msg.level_m,
            msg.pump_running,
            msg.jockey_running,
            msg.room_temp_c,
            None,
            None,
            None,
            None,
            None,
            None,
        )
    if isinstance(msg, EbikeShedTelemetry):
        ports = sorted(msg.ports, key=lambda p: p.port)
        return TelemetryRow(
            device_id,
            msg.seq,
            msg.ts,
            received_at,
            None,
            None,
            None,
            None,
            None,
            msg.ambient_c,
            msg.smoke,
            [p.port for p in ports],
            [p.temp_c for p in ports],
            [p.current_a for p in ports],
            [p.charging for p in ports],
        )
    if isinstance(msg, PanelEvent):
        return EventRow(
            device_id,
            msg.seq,
            msg.ts,
            received_at,
            msg.type.value,
            msg.system_type,
            msg.system_addr,
            msg.component_type,
            msg.component_addr,
            msg.status,
            decode_status(msg.type, msg.status),
            msg.operator,
            msg.description,
            msg.detail,
        )
    assert isinstance(msg, DeviceStatus)
    return StatusRow(
        device_id,
        msg.seq,
        msg.ts,
        received_at,
        msg.state,
        msg.firmware,
        msg.battery_pct,
        msg.rssi_dbm,
        msg.reason,
    )
