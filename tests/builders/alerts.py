"""Anomaly episodes (what the detectors hand to alerting) and alerts raised through the
store, as the services make them."""

from __future__ import annotations

import itertools
from typing import Any

import psycopg

from firewatch.core.alerts import Alert
from firewatch.core.anomalies import Anomaly, Origin
from firewatch.core.domain import Severity
from firewatch.storage.alerts import raise_alert
from firewatch.storage.anomalies import upsert_anomalies
from tests.builders import city

#: 2023-11-14 22:13:20 UTC: when episodes and alerts happen unless a test says otherwise.
EPOCH = 1_700_000_000.0
_n = itertools.count(1)


def anomaly(device: str = city.WATER, start: float = EPOCH, **fields: Any) -> Anomaly:
    """An open anomaly episode of ``device`` that started at ``start`` (Unix seconds) and was
    detected, and last seen, a second later: by default the seeded water point's low
    pressure as ``rule.pressure_low`` infers it. ``fields`` set any other field."""
    values: dict[str, Any] = {
        "device_id": device,
        "unit_id": city.UNIT,
        "detector": "rule.pressure_low",
        "kind": "low_pressure",
        "metric": "pressure_kpa",
        "component": "",
        "origin": Origin.INFERRED,
        "severity": Severity.HIGH,
        "score": 0.8,
        "started_at": start,
        "detected_at": start + 1,
        "last_at": start + 1,
        "explanation": "static pressure 80 kPa < 100 kPa",
    }
    values.update(fields)
    return Anomaly(**values)


def add_anomaly(db: psycopg.Connection[Any], episode: Anomaly) -> int:
    """Store a new episode the real way (``upsert_anomalies``); return its id."""
    assert upsert_anomalies(db, [episode]) == 1
    row = db.execute("SELECT max(id) FROM anomalies").fetchone()
    assert row is not None
    return int(row[0])


def new_alert(
    db: psycopg.Connection[Any],
    *,
    type_: str = "low_pressure",
    severity: Severity = Severity.HIGH,
    unit: str = city.UNIT,
    seen: float = EPOCH,
    anomaly_id: int | None = None,
) -> Alert:
    """A new open alert raised the real way (``raise_alert``), on a device of its own
    (one active alert per device and type), first seen at ``seen``."""
    n = next(_n)
    alert, created = raise_alert(
        db,
        type=type_,
        severity=severity,
        unit_id=unit,
        device_id=f"D-TEST-{n:04d}",
        seen_at=seen,
        explanation=f"{type_} ({n})",
        anomaly_id=anomaly_id,
    )
    assert created
    return alert
