"""The alert records (firewatch/core/alerts.py): rows in, enums out, and the JSON the stream
and the outbox carry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from firewatch.core.alerts import Alert, AlertCategory, AlertState, AnomalyChange
from firewatch.core.domain import Severity

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def row(**changes: Any) -> dict[str, Any]:
    """An ``alerts`` row as ``SELECT *, (xmax = 0) AS inserted`` returns it."""
    base: dict[str, Any] = {
        "id": 4,
        "type": "low_pressure",
        "category": "anomaly",
        "severity": "high",
        "unit_id": "U-1",
        "device_id": "D-1",
        "state": "acknowledged",
        "first_seen": T0,
        "last_seen": T0 + timedelta(seconds=5),
        "occurrences": 2,
        "explanation": "low",
        "condition_active": True,
        "escalation_level": 1,
        "escalated_at": T0,
        "acknowledged_at": None,
        "resolved_at": None,
        "closed_at": None,
        "parent_id": None,
        "created_at": T0,
        "updated_at": T0,
        "inserted": False,
    }
    return {**base, **changes}


def test_an_alert_row_becomes_a_record_with_enums() -> None:
    alert = Alert.of(row())
    assert alert.state is AlertState.ACKNOWLEDGED
    assert alert.category is AlertCategory.ANOMALY
    assert alert.severity is Severity.HIGH
    assert alert.active
    assert not Alert.of(row(state="merged")).active
    assert Alert.of(row()) == alert
    assert hash(Alert.of(row())) == hash(alert)
    with pytest.raises(ValidationError):
        alert.state = AlertState.OPEN  # type: ignore[misc]  # frozen
    with pytest.raises(ValidationError, match="state"):
        Alert.of(row(state="sleeping"))


def test_the_json_keeps_times_with_their_offset_and_enum_values() -> None:
    east8 = timezone(timedelta(hours=8))
    got = Alert.of(row(first_seen=T0.astimezone(east8))).to_json()
    assert got["first_seen"] == "2024-05-01T16:00:00+08:00"
    assert got["last_seen"] == "2024-05-01T08:00:05+00:00"
    assert (got["state"], got["category"], got["severity"]) == ("acknowledged", "anomaly", "high")
    assert all(type(v) in (str, int, bool, type(None)) for v in got.values())
    assert list(got) == list(Alert.model_fields)
    assert Alert.model_validate(got) == Alert.of(row(first_seen=T0.astimezone(east8)))


def test_an_anomaly_change_from_the_feed() -> None:
    feed_row = {
        "_xid": 900,
        "id": 12,
        "device_id": "D-1",
        "unit_id": "U-1",
        "detector": "rule.x",
        "kind": "device_silent",
        "metric": "status",
        "component": "",
        "origin": "inferred",
        "severity": "medium",
        "score": 0.5,
        "started_at": T0,
        "detected_at": T0,
        "last_at": T0,
        "ended_at": None,
        "explanation": "silent",
        "revision": 1,
    }
    change = AnomalyChange.of(feed_row)
    assert change.severity is Severity.MEDIUM
    assert change.alert_type == "device_offline"
    assert not change.ended
    assert AnomalyChange.of({**feed_row, "ended_at": T0}).ended
    with pytest.raises(ValueError, match="severe"):
        AnomalyChange.of({**feed_row, "severity": "severe"})
