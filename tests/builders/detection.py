"""What detector tests feed the detectors (profiles, frames, batches, series of readings)
and helpers that pick anomalies out of their output. Rows come from :mod:`.rows`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from firewatch.analytics.frames import Batch, TelemetryFrame
from firewatch.analytics.profiles import DeviceProfile, Thresholds
from firewatch.core.anomalies import Anomaly, AnomalyKey
from firewatch.core.domain import DeviceKind
from firewatch.core.rows import TelemetryRow
from tests.builders.rows import UNIT, water_row


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
