"""Per-detector figures (firewatch.lab.eval_detectors) on a small hand-built case: which
devices each detector sees, its false-alert rate over their device-hours, its matches,
labels, first detections and median delay, anomalies in maintenance windows, and the JSON
and text forms of the report."""

from __future__ import annotations

import json

import pytest

from firewatch.core.anomalies import Anomaly, Origin
from firewatch.core.domain import DeviceKind, Severity
from firewatch.lab.eval_detectors import kinds_seen
from firewatch.lab.eval_metrics import EvaluationReport, evaluate_detections
from firewatch.simulators.model import Label
from tests.builders.alerts import anomaly

T0 = 1_800_000_000.0
HOURS = {"water": 300.0, "ebike_shed": 100.0, "panel": 100.0}


def _label(device: str, fault: str, start: float, end: float) -> Label:
    return Label(
        device, f"unit-{device}", DeviceKind.WATER, fault, T0 + start, T0 + end, Severity.HIGH
    )


def _anomaly(
    device: str, detected: float, detector: str, origin: Origin = Origin.INFERRED
) -> Anomaly:
    t = T0 + detected
    return anomaly(
        device,
        t - 30.0,
        unit_id=f"unit-{device}",
        detector=detector,
        kind="k",
        metric="pressure_kpa",
        origin=origin,
        detected_at=t,
        last_at=t,
    )


# Labels: w1 pump_failure [10_000, 13_600]; w2 leak [20_000, 21_000]; w4 leak
# [80_000, 81_000]; s3 never detected. Maintenance on w3 [30_000, 33_600].
# rule.pressure_low: w1 at +120 and +1_000 (one label, its first at +120: delay 120).
# rule.pump (no known prefix: sees every kind): w1 at +300 (delay 300, never first).
# stat.cusum: w2 30 s early (delay 0, first), w4 at +600 (delay 600, first), and a false
#   alert on w1 at 50_000: delays [0, 600] -> median 300; 1 false / 400 h -> 2.5 per 1,000.
# stat.shift: w3 at 31_000 (in maintenance), w3 at 60_000 (false): 2.5 per 1,000.
# panel.fire: p4 reported, unlabelled.
def _report() -> EvaluationReport:
    labels = [
        _label("w1", "pump_failure", 10_000, 13_600),
        _label("w2", "leak", 20_000, 21_000),
        _label("s3", "runaway", 40_000, 40_600),
        _label("w4", "leak", 80_000, 81_000),
    ]
    anomalies = [
        _anomaly("w1", 10_120, "rule.pressure_low"),
        _anomaly("w1", 11_000, "rule.pressure_low"),
        _anomaly("w1", 10_300, "rule.pump"),
        _anomaly("w2", 19_970, "stat.cusum"),
        _anomaly("w4", 80_600, "stat.cusum"),
        _anomaly("w1", 50_000, "stat.cusum"),
        _anomaly("w3", 31_000, "stat.shift"),
        _anomaly("w3", 60_000, "stat.shift"),
        _anomaly("p4", 70_000, "panel.fire", Origin.REPORTED),
    ]
    maintenance = [_label("w3", "maintenance", 30_000, 33_600)]
    return evaluate_detections(
        labels,
        anomalies,
        device_hours=500.0,
        window=(T0, T0 + 100_000.0),
        expected_kinds={},
        maintenance=maintenance,
        device_hours_by_kind=HOURS,
    )


def test_kinds_seen_by_prefix() -> None:
    kinds = sorted(HOURS)
    assert kinds_seen("rule.pressure_low", kinds) == ("water",)
    assert kinds_seen("stat.port_excess", kinds) == ("ebike_shed",)
    assert kinds_seen("stat.shift", kinds) == ("water", "ebike_shed")
    assert kinds_seen("unit.false_alarms", kinds) == ("panel",)
    assert kinds_seen("link.dropout", kinds) == ("ebike_shed", "panel", "water")
    assert kinds_seen("stat.shift", ["water"]) == ("water",)  # a kind the city lacks


def test_per_detector_figures_by_hand() -> None:
    report = _report()
    figs = {
        d: (
            f.device_hours,
            f.matched_anomalies,
            f.labels_detected,
            f.first_detections,
            f.false_alerts,
            f.during_maintenance,
            f.reported_unlabelled,
            f.delay_median_s,
        )
        for d, f in report.detectors.items()
    }
    assert figs == {
        "panel.fire": (100.0, 0, 0, 0, 0, 0, 1, None),
        "rule.pressure_low": (300.0, 2, 1, 1, 0, 0, 0, 120.0),
        "rule.pump": (500.0, 1, 1, 0, 0, 0, 0, 300.0),
        "stat.cusum": (400.0, 2, 2, 2, 1, 0, 0, 300.0),
        "stat.shift": (400.0, 0, 0, 0, 1, 1, 0, None),
    }
    rates = {d: f.false_alerts_per_1000_device_hours for d, f in report.detectors.items()}
    assert rates["stat.cusum"] == pytest.approx(2.5)
    assert rates["stat.shift"] == pytest.approx(2.5)
    assert rates["rule.pump"] == 0.0
    assert sum(f.anomalies for f in report.detectors.values()) == report.anomalies == 9


def test_maintenance_alerts_are_neither_matched_nor_false() -> None:
    report = _report()
    assert [a.detected_at - T0 for a in report.during_maintenance] == [31_000.0]
    assert report.overall.false_alerts == 2
    assert report.overall.matched_anomalies == 5
    assert report.precision == pytest.approx(5 / 7)
    assert report.per_detector["stat.shift"].during_maintenance == 1
    assert report.maintenance_windows == 1


def test_report_json_and_text_carry_the_per_detector_figures() -> None:
    report = _report()
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["during_maintenance"] == 1
    assert doc["maintenance_windows"] == 1
    cusum = doc["detectors"]["stat.cusum"]
    assert cusum["device_kinds"] == ["water", "ebike_shed"]
    assert cusum["device_hours"] == 400.0
    assert cusum["false_alerts_per_1000_device_hours"] == 2.5
    assert cusum["matched_anomalies"] == 2
    assert cusum["median_delay_s"] == 300.0
    assert doc["detectors"]["stat.shift"]["median_delay_s"] is None
    assert doc["maintenance_alert_examples"][0]["detector"] == "stat.shift"
    text = report.format_text()
    line = next(x for x in text.splitlines() if x.startswith("stat.cusum "))
    assert "400.0" in line
    assert "2.50" in line
    assert "300.0" in line
    assert "maintenance: 1 planned windows, 1 anomalies in them" in text


def test_without_device_hours_by_kind_there_are_no_detector_figures() -> None:
    report = evaluate_detections(
        [], [], device_hours=1.0, window=(T0, T0 + 10.0), expected_kinds={}
    )
    assert report.detectors == {}
    assert report.to_json()["detectors"] == {}
