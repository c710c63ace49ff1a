"""Row shapes of the stored streams, shared by every service.

Ingest produces them (``firewatch.ingest.codec``) and writes them in this column order;
analytics and alerting read the same shapes back from the database (``storage/feed.py``)
or from an offline replay. Field order is the table's column order for COPY.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from firewatch.core.domain import PanelEventType


class Reason(StrEnum):
    """Why a message became a dead letter (the ``reason`` column and metric label)."""

    OVERSIZED = "oversized"
    BAD_TOPIC = "bad_topic"
    NOT_JSON = "not_json"
    WRONG_TYPE = "wrong_type"
    MISSING_FIELD = "missing_field"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    INVALID = "invalid"
    UNKNOWN_DEVICE = "unknown_device"
    TOPIC_MISMATCH = "topic_mismatch"
    TS_IN_FUTURE = "ts_in_future"
    TS_TOO_OLD = "ts_too_old"
    DB_REJECTED = "db_rejected"  # valid by the contract, refused by the database (its error)
    RATE_LIMITED = "rate_limited"  # valid, but over its device's rate (ingest/rate_limit.py)


class DeadLetter(NamedTuple):
    """A message that could not be stored as data, kept with its raw bytes."""

    received_at: datetime
    topic: str
    payload: bytes
    reason: Reason
    detail: str


class TelemetryRow(NamedTuple):
    device_id: str
    seq: int
    ts: datetime
    received_at: datetime
    pressure_kpa: float | None
    level_m: float | None
    pump_running: bool | None
    jockey_running: bool | None
    room_temp_c: float | None
    ambient_c: float | None
    smoke: bool | None
    port_no: list[int] | None
    port_temp_c: list[float] | None
    port_current_a: list[float] | None
    port_charging: list[bool] | None


class EventRow(NamedTuple):
    device_id: str
    seq: int
    ts: datetime
    received_at: datetime
    event_type: str
    system_type: int
    system_addr: int
    component_type: int | None
    component_addr: int | None
    status_word: int
    flags: list[str]
    operator: int | None
    description: str | None
    #: the payload's ``detail`` object (flat: str, int, float, bool or None values), or None
    detail: dict[str, Any] | None = None


class StatusRow(NamedTuple):
    device_id: str
    seq: int
    ts: datetime
    received_at: datetime
    state: str
    firmware: str | None
    battery_pct: float | None
    rssi_dbm: float | None
    reason: str | None


Row = TelemetryRow | EventRow | StatusRow


# --- what every reader may assume of a stored row ------------------------------------------

#: Stored times outside this span cannot have come through ingest (which bounds ``ts`` by
#: the server's receive time and the retention); a reader skips such a row.
SANE_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
SANE_LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_EVENT_TYPES = frozenset(t.value for t in PanelEventType)
_STATES = frozenset({"online", "offline"})


def _bad_time(name: str, value: object) -> str | None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        return f"{name} is not an aware time: {value!r}"
    if not SANE_EARLIEST <= value < SANE_LATEST:
        return f"{name} {value.isoformat()} is outside {SANE_EARLIEST.year}-{SANE_LATEST.year}"
    return None


def _bad_number(name: str, value: object) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, int | float) or math.isinf(value):
        return f"{name} is not a finite number: {value!r}"
    return None


def row_problem(row: Row | DeadLetter) -> str | None:
    """Why a stored row breaks what readers rely on (what ingest's contract guarantees of
    every row it writes), or None if it is fine. The database can hold rows that ingest
    never writes (an impossible time, an infinite reading, ragged port arrays, an unknown
    event type); readers skip and record those instead of failing on them. ``NaN`` is a
    missing reading, as ``NULL`` is."""
    problem = _bad_time("ts", row.ts) if not isinstance(row, DeadLetter) else None
    problem = problem or _bad_time("received_at", row.received_at)
    if problem:
        return problem
    if isinstance(row, TelemetryRow):
        for name in ("pressure_kpa", "level_m", "room_temp_c", "ambient_c"):
            problem = problem or _bad_number(name, getattr(row, name))
        if problem:
            return problem
        return _port_problem(row)
    if isinstance(row, EventRow):
        if row.event_type not in _EVENT_TYPES:
            return f"unknown event type {row.event_type!r}"
        if row.flags is None or any(not isinstance(f, str) for f in row.flags):
            return "flags must be a list of names"
        if row.detail is not None and not isinstance(row.detail, dict):
            return f"detail is not an object: {type(row.detail).__name__}"
        return None
    if isinstance(row, StatusRow):
        return None if row.state in _STATES else f"unknown state {row.state!r}"
    return None


def _port_problem(row: TelemetryRow) -> str | None:
    no, temp, cur, chg = row.port_no, row.port_temp_c, row.port_current_a, row.port_charging
    if no is None and temp is None and cur is None and chg is None:
        return None
    if no is None or temp is None or cur is None or chg is None:
        return "port arrays are missing or of different lengths"
    if not len(no) == len(temp) == len(cur) == len(chg):
        return "port arrays are missing or of different lengths"
    if any(v is None for a in (no, temp, cur, chg) for v in a):
        return "a port array holds NULL"
    if len(set(no)) != len(no) or min(no, default=1) < 1:
        return "port numbers must be distinct and positive"
    for name, values in (("port_temp_c", temp), ("port_current_a", cur)):
        for v in values:
            problem = _bad_number(name, v)
            if problem:
                return problem
    return None
