"""Small builders for detector tests: rows from (time, value) pairs, profiles, batches and
helpers to pick anomalies out of detector output. Times are Unix seconds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from firewatch.analytics.frames import Batch, TelemetryFrame
from firewatch.analytics.profiles import DeviceProfile, Thresholds
from firewatch.core.anomalies import Anomaly, AnomalyKey
from firewatch.core.domain import DeviceKind, PanelEventType, decode_status
from firewatch.core.rows import DeadLetter, EventRow, Reason, StatusRow, TelemetryRow

#: 2026-11-20 00:00 local time (UTC+8): hour h of the day is T0 + h * HOUR.
T0 = datetime(2026, 11, 19, 16, 0, tzinfo=UTC).timestamp()
MIN = 60.0
HOUR = 3600.0
DAY = 86_400.0
UNIT = "U-1"


def dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def water_row(
    dev: str,
    t: float,
    pressure: float | None = None,
    *,
    level: float | None = None,
    room: float | None = None,
    jockey: bool | None = None,
    seq: int = 1,
    rx: float | None = None,
) -> TelemetryRow:
    return TelemetryRow(dev, seq, dt(t), dt(t if rx is None else rx), pressure, level, None,
                        jockey, room, None, None, None, None, None, None)  # fmt: skip


def shed_row(
    dev: str,
    t: float,
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
    return TelemetryRow(dev, seq, dt(t), dt(t), None, None, None, None, None, ambient, smoke,
                        ports, list(temps), list(currents), charging)  # fmt: skip


def frame(rows: Sequence[TelemetryRow]) -> TelemetryFrame:
    return TelemetryFrame.from_rows(rows)


def series(
    dev: str, points: Iterable[tuple[float, float]], field: str = "pressure"
) -> list[TelemetryRow]:
    """Water rows from (t, value) pairs; ``field`` is pressure, level or room."""
    rows = []
    for i, (t, v) in enumerate(points):
        if field == "pressure":
            rows.append(water_row(dev, t, v, seq=i + 1))
        elif field == "level":
            rows.append(water_row(dev, t, level=v, seq=i + 1))
        else:
            rows.append(water_row(dev, t, room=v, seq=i + 1))
    return rows


def profile(
    dev: str,
    kind: DeviceKind = DeviceKind.WATER,
    unit: str = UNIT,
    **thresholds: Any,
) -> DeviceProfile:
    return DeviceProfile(dev, unit, kind, "class1_highrise", {}, Thresholds(**thresholds))


def profiles(*ps: DeviceProfile) -> dict[str, DeviceProfile]:
    return {p.device_id: p for p in ps}


def unit_of(ps: Mapping[str, DeviceProfile]) -> Callable[[str], str]:
    def f(dev: str) -> str:
        p = ps.get(dev)
        return p.unit_id if p else ""

    return f


def event(
    dev: str,
    t: float,
    etype: PanelEventType,
    word: int,
    *,
    addr: int | None = None,
    ctype: int | None = None,
    seq: int = 1,
    description: str | None = None,
) -> EventRow:
    """A panel event with its flags decoded from ``word`` (bit 0 set: normal operation)."""
    return EventRow(dev, seq, dt(t), dt(t), etype.value, 1, 0, ctype, addr, word,
                    decode_status(etype, word), None, description)  # fmt: skip


def status(dev: str, t: float, state: str, *, seq: int = 5, reason: str | None = None) -> StatusRow:
    return StatusRow(dev, seq, dt(t), dt(t), state, None, None, None, reason)


def dead(dev: str, t: float, reason: Reason, unit: str = UNIT) -> DeadLetter:
    return DeadLetter(dt(t), f"firewatch/v1/{unit}/{dev}/telemetry", b"{", reason, "bad")


def batch(now: float, rows: Sequence[TelemetryRow] = (), **kw: Any) -> Batch:
    return Batch(now, TelemetryFrame.from_rows(rows), **kw)


def of(anomalies: Iterable[Anomaly], detector: str) -> list[Anomaly]:
    return [a for a in anomalies if a.detector == detector]


def final(anomalies: Iterable[Anomaly]) -> dict[AnomalyKey, Anomaly]:
    """The newest revision of every episode."""
    out: dict[AnomalyKey, Anomaly] = {}
    for a in anomalies:
        if a.key not in out or a.revision >= out[a.key].revision:
            out[a.key] = a
    return out


def detectors(anomalies: Iterable[Anomaly]) -> set[str]:
    return {a.detector for a in anomalies}
