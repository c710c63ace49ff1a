"""Stream rows as ingest writes them (telemetry, status, events, dead letters), and readings
inserted into the database in one transaction, as one ingest batch would.

Times are Unix seconds or aware datetimes. Detector tests count from :data:`T0`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from firewatch.core.domain import PanelEventType, decode_status
from firewatch.core.rows import DeadLetter, EventRow, Reason, StatusRow, TelemetryRow
from tests.builders import city
from tests.builders.payloads import NORMAL_KPA

#: 2026-11-20 00:00 local time (UTC+8): hour h of the day is T0 + h * HOUR.
T0 = datetime(2026, 11, 19, 16, 0, tzinfo=UTC).timestamp()
MIN = 60.0
HOUR = 3600.0
DAY = 86_400.0
#: The unit of the synthetic devices detector tests make up (not a seeded one).
UNIT = "U-1"

When = float | datetime


def dt(t: When) -> datetime:
    return t if isinstance(t, datetime) else datetime.fromtimestamp(t, UTC)


def water_row(
    dev: str,
    t: When,
    pressure: float | None = None,
    *,
    level: float | None = None,
    room: float | None = None,
    jockey: bool | None = None,
    seq: int = 1,
    rx: When | None = None,
) -> TelemetryRow:
    """A water reading with only the given values (the others NULL)."""
    return TelemetryRow(
        dev,
        seq,
        dt(t),
        dt(t if rx is None else rx),
        pressure,
        level,
        None,
        jockey,
        room,
        None,
        None,
        None,
        None,
        None,
        None,
    )


def water_reading(
    seq: int, ts: datetime | None = None, pressure: float = NORMAL_KPA, dev: str = city.WATER
) -> TelemetryRow:
    """The row ingest stores for ``payloads.water(seq, pressure, ts)``: every value set,
    received when it was measured (now, unless ``ts`` says otherwise)."""
    ts = ts or datetime.now(UTC)
    return TelemetryRow(
        dev, seq, ts, ts, pressure, 3.5, False, True, 12.5, None, None, None, None, None, None
    )


def shed_row(
    dev: str,
    t: When,
    temps: Sequence[float],
    currents: Sequence[float],
    ambient: float | None = 20.0,
    *,
    smoke: bool | None = False,
    seq: int = 1,
) -> TelemetryRow:
    """A shed reading; ports are numbered 1..len(temps)."""
    ports = list(range(1, len(temps) + 1))
    charging = [c > 0.05 for c in currents]
    return TelemetryRow(
        dev,
        seq,
        dt(t),
        dt(t),
        None,
        None,
        None,
        None,
        None,
        ambient,
        smoke,
        ports,
        list(temps),
        list(currents),
        charging,
    )


def event(
    dev: str,
    t: When,
    etype: PanelEventType,
    word: int,
    *,
    addr: int | None = None,
    ctype: int | None = None,
    seq: int = 1,
    description: str | None = None,
    detail: dict[str, Any] | None = None,
    rx: When | None = None,
) -> EventRow:
    """A panel event with its flags decoded from ``word`` (bit 0 set: normal operation),
    received at ``rx`` (default: when it was sent)."""
    return EventRow(
        dev,
        seq,
        dt(t),
        dt(t if rx is None else rx),
        etype.value,
        1,
        0,
        ctype,
        addr,
        word,
        decode_status(etype, word),
        None,
        description,
        detail,
    )


def status(
    dev: str,
    t: When,
    state: str,
    *,
    seq: int = 5,
    firmware: str | None = None,
    battery: float | None = None,
    rssi: float | None = None,
    reason: str | None = None,
) -> StatusRow:
    """A status row, received when it was sent."""
    return StatusRow(dev, seq, dt(t), dt(t), state, firmware, battery, rssi, reason)


def dead(dev: str, t: When, reason: Reason, unit: str = UNIT) -> DeadLetter:
    """A dead letter for an unreadable telemetry message of ``dev``."""
    return DeadLetter(dt(t), f"firewatch/v1/{unit}/{dev}/telemetry", b"{", reason, "bad")


Reading = tuple[int, float, float]  # seq, Unix time (device = receive time), pressure kPa


def readings(
    first_seq: int, t0: float, values: Sequence[float], step: float = 10.0
) -> list[Reading]:
    """Pressures ``values`` every ``step`` seconds from ``t0``, numbered from ``first_seq``."""
    return [(first_seq + i, t0 + i * step, v) for i, v in enumerate(values)]


def insert_readings(db: psycopg.Connection[Any], device: str, rows: Sequence[Reading]) -> int:
    """Insert water readings in one transaction, as one ingest batch would; returns how
    many."""
    with db.transaction(), db.cursor() as cur:
        cur.executemany(
            "INSERT INTO telemetry (device_id, seq, ts, received_at, pressure_kpa)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(device, seq, dt(t), dt(t), p) for seq, t, p in rows],
        )
    return len(rows)


def recent_second(ago_s: float = 120.0) -> float:
    """A whole Unix second ``ago_s`` seconds ago (readings going forward from it stay in the
    past and inside ingest's window)."""
    return float(int(time.time()) - ago_s)
