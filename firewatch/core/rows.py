"""Row shapes of the stored streams, shared by every service.

Ingest produces them (``firewatch.ingest.codec``) and writes them in this column order;
analytics and alerting read the same shapes back from the database (``storage/feed.py``)
or from an offline replay. Field order is the table's column order for COPY.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple


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
