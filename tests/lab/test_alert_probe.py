"""The alert probe's figures (``firewatch bench ingest --alerts``), from hand-made times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from firewatch.lab.alert_probe import summarize


def test_alert_figures_from_hand_made_times() -> None:
    sent = {"a": 100.0, "b": 200.0, "c": 300.0}
    seen = {"a": 100.1, "b": 200.3}  # c never arrived
    alerts = {
        d: {
            "first_seen": datetime.fromtimestamp(sent[d] + 0.01, UTC).isoformat(),
            "created_at": datetime.fromtimestamp(sent[d] + 0.05, UTC).isoformat(),
        }
        for d in ("a", "b")
    }
    anomalies = {"a": 100.04, "b": 200.04}
    r = summarize(sent, seen, alerts, anomalies)
    assert (r["alerts_expected"], r["alerts_seen"]) == (3, 2)
    assert r["alert_latency_ms"]["p50"] == pytest.approx(200.0)
    assert r["alert_latency_ms"]["max"] == pytest.approx(300.0)
    legs = r["alert_latency_legs_median_ms"]
    assert legs["to_ingest"] == pytest.approx(10.0)
    assert legs["to_anomaly"] == pytest.approx(30.0)
    assert legs["to_alert"] == pytest.approx(10.0)
    assert legs["to_stream"] == pytest.approx(150.0)
