"""Event-level detection metrics (firewatch.lab.eval_metrics): hand-computed cases,
matching boundaries and tie-breaks, warm-up exclusion, reported-condition handling,
false-alert attribution, empty inputs and the JSON / text forms."""

from __future__ import annotations

import json

import pytest

from firewatch.core.anomalies import Anomaly, Origin
from firewatch.core.domain import DeviceKind, Severity
from firewatch.lab.eval_metrics import (
    MAX_FALSE_ALERT_EXAMPLES,
    EvaluationReport,
    MatchConfig,
    evaluate_detections,
    match_anomaly,
)
from firewatch.simulators.model import Label, iso
from tests.builders.alerts import anomaly

T0 = 1_800_000_000.0  # a round Unix time; all times below are offsets from it
WINDOW = (T0, T0 + 100_000.0)
DEFAULT = MatchConfig()

EXPECTED: dict[str, set[str]] = {
    "pump_failure": {"pump_fault", "low_pressure"},
    "slow_leak": {"slow_leak", "low_pressure"},
    "thermal_runaway": {"thermal_runaway_risk", "smoke"},
}


def _label(device: str, fault: str, start: float, end: float) -> Label:
    return Label(
        device_id=device,
        unit_id=f"unit-{device}",
        kind=DeviceKind.WATER,
        fault=fault,
        start=T0 + start,
        end=T0 + end,
        severity=Severity.HIGH,
    )


def _anomaly(
    device: str,
    detected: float,
    kind: str = "low_pressure",
    *,
    detector: str = "rule.pressure_low",
    origin: Origin = Origin.INFERRED,
    explanation: str = "pressure below threshold",
) -> Anomaly:
    t = T0 + detected
    return anomaly(
        device,
        t - 30.0,
        unit_id=f"unit-{device}",
        detector=detector,
        kind=kind,
        metric="pressure_mpa",
        origin=origin,
        score=0.9,
        detected_at=t,
        last_at=t,
        explanation=explanation,
    )


def _evaluate(
    labels: list[Label],
    anomalies: list[Anomaly],
    config: MatchConfig = DEFAULT,
    device_hours: float = 500.0,
    window: tuple[float, float] = WINDOW,
) -> EvaluationReport:
    return evaluate_detections(
        labels,
        anomalies,
        device_hours=device_hours,
        window=window,
        expected_kinds=EXPECTED,
        config=config,
    )


# --- the hand-computed scenario ------------------------------------------------------------
#
# Label A: pump_failure on w1, [10_000, 13_600]; label B: slow_leak on w2, [20_000, 21_000];
# label C: thermal_runaway on s3, [40_000, 40_600] (never detected).
# Anomalies: two on w1 inside A (detections at +120 s and +300 s, given out of order), one on
# w2 30 s before B starts (within the 60 s tolerance: delay clipped to 0), one inferred
# "slow_leak" on w1 at 50_000 matching nothing (a false alert, attributed to slow_leak), and
# one device-reported "fire_alarm" on p4 matching nothing (reported unlabelled).
#
# precision = 3 / (3 + 1) = 0.75; recall = 2 / 3; F1 = 2·0.75·(2/3) / (0.75 + 2/3) = 12/17.
# delays = [120, 0]: median 60, p95 = 0 + 0.95·120 = 114 (linear interpolation).


def _scenario() -> tuple[list[Label], list[Anomaly]]:
    labels = [
        _label("w1", "pump_failure", 10_000, 13_600),
        _label("w2", "slow_leak", 20_000, 21_000),
        _label("s3", "thermal_runaway", 40_000, 40_600),
    ]
    anomalies = [
        _anomaly("w1", 10_300, "pump_fault", detector="rule.pump"),
        _anomaly("w1", 10_120, "low_pressure"),
        _anomaly("w2", 19_970, "slow_leak", detector="stat.cusum"),
        _anomaly("w1", 50_000, "slow_leak", detector="stat.cusum", explanation="drift"),
        _anomaly("p4", 30_000, "fire_alarm", detector="reported.panel", origin=Origin.REPORTED),
    ]
    return labels, anomalies


def test_hand_computed_overall_figures() -> None:
    labels, anomalies = _scenario()
    report = _evaluate(labels, anomalies)

    assert report.anomalies == 5
    assert report.overall.matched_anomalies == 3
    assert report.overall.false_alerts == 1
    assert len(report.reported_unlabelled) == 1
    assert report.reported_unlabelled[0].device_id == "p4"
    assert report.precision == pytest.approx(0.75)
    assert report.recall == pytest.approx(2 / 3)
    assert report.f1 == pytest.approx(12 / 17)
    assert report.overall.false_alerts_per_1000_device_hours == pytest.approx(2.0)  # 1/500·1000
    assert report.overall.delay_median_s == pytest.approx(60.0)
    assert report.overall.delay_p95_s == pytest.approx(114.0)


def test_hand_computed_label_outcomes() -> None:
    labels, anomalies = _scenario()
    a, b, c = _evaluate(labels, anomalies).outcomes

    assert a.detected
    assert a.delay_s == pytest.approx(120.0)
    assert a.first is not None
    assert a.first.detected_at == T0 + 10_120  # the earliest, although given second
    assert [x.detected_at for x in a.matched] == [T0 + 10_120, T0 + 10_300]
    assert b.detected
    assert b.delay_s == 0.0  # detected 30 s before the start: clipped
    assert not c.detected
    assert c.delay_s is None
    assert c.first is None
    assert c.matched == []


def test_hand_computed_per_fault_figures() -> None:
    labels, anomalies = _scenario()
    per_fault = _evaluate(labels, anomalies).per_fault

    assert list(per_fault) == ["pump_failure", "slow_leak", "thermal_runaway"]
    pump = per_fault["pump_failure"]
    assert (pump.labels, pump.detected, pump.matched_anomalies, pump.false_alerts) == (1, 1, 2, 0)
    assert (pump.precision, pump.recall, pump.f1) == (1.0, 1.0, 1.0)
    assert pump.false_alerts_per_1000_device_hours == 0.0
    assert (pump.delay_median_s, pump.delay_p95_s) == (120.0, 120.0)

    leak = per_fault["slow_leak"]  # the false "slow_leak" alert is attributed here
    assert (leak.labels, leak.detected, leak.matched_anomalies, leak.false_alerts) == (1, 1, 1, 1)
    assert leak.precision == pytest.approx(0.5)
    assert leak.recall == 1.0
    assert leak.f1 == pytest.approx(2 / 3)
    assert leak.false_alerts_per_1000_device_hours == pytest.approx(2.0)
    assert (leak.delay_median_s, leak.delay_p95_s) == (0.0, 0.0)

    fire = per_fault["thermal_runaway"]  # nothing claimed it: vacuous precision, no recall
    assert (fire.labels, fire.detected, fire.matched_anomalies, fire.false_alerts) == (1, 0, 0, 0)
    assert (fire.precision, fire.recall, fire.f1) == (1.0, 0.0, 0.0)
    assert fire.delay_median_s is None
    assert fire.delay_p95_s is None


def test_per_detector_and_per_kind_counts() -> None:
    labels, anomalies = _scenario()
    report = _evaluate(labels, anomalies)

    detectors = {d: c.to_json() for d, c in report.per_detector.items()}
    keys = ("matched", "false_alerts", "reported_unlabelled", "during_maintenance")
    assert detectors == {
        "reported.panel": dict(zip(keys, (0, 0, 1, 0), strict=True)),
        "rule.pressure_low": dict(zip(keys, (1, 0, 0, 0), strict=True)),
        "rule.pump": dict(zip(keys, (1, 0, 0, 0), strict=True)),
        "stat.cusum": dict(zip(keys, (1, 1, 0, 0), strict=True)),
    }
    kinds = {
        k: (c.matched, c.false_alerts, c.reported_unlabelled) for k, c in report.per_kind.items()
    }
    assert kinds == {
        "fire_alarm": (0, 0, 1),
        "low_pressure": (1, 0, 0),
        "pump_fault": (1, 0, 0),
        "slow_leak": (1, 1, 0),
    }


def test_count_reported_as_false_gives_the_strict_figure() -> None:
    labels, anomalies = _scenario()
    report = _evaluate(labels, anomalies, MatchConfig(count_reported_as_false=True))

    assert report.overall.false_alerts == 2
    assert report.reported_unlabelled == []
    assert report.precision == pytest.approx(3 / 5)
    assert report.recall == pytest.approx(2 / 3)
    assert report.f1 == pytest.approx(12 / 19)  # 2·0.6·(2/3) / (0.6 + 2/3)
    assert report.overall.false_alerts_per_1000_device_hours == pytest.approx(4.0)
    assert report.per_detector["reported.panel"].false_alerts == 1
    # "fire_alarm" is in no expected_kinds mapping: attributed to no fault type
    assert sum(f.false_alerts for f in report.per_fault.values()) == 1


def test_reported_anomaly_matching_a_label_is_a_true_positive() -> None:
    labels = [_label("p1", "thermal_runaway", 1_000, 2_000)]
    anomalies = [_anomaly("p1", 1_010, "smoke", origin=Origin.REPORTED)]
    report = _evaluate(labels, anomalies)

    assert report.overall.matched_anomalies == 1
    assert report.reported_unlabelled == []
    assert (report.precision, report.recall) == (1.0, 1.0)
    assert report.outcomes[0].delay_s == pytest.approx(10.0)


# --- matching boundaries and tie-breaks ----------------------------------------------------


@pytest.mark.parametrize(
    ("detected", "matches"),
    [
        (1_000 - 60.0, True),  # exactly at start - tolerance
        (1_000 - 60.5, False),  # just before it
        (2_000 + 900.0, True),  # exactly at end + grace
        (2_000 + 900.5, False),  # just after it
        (1_500.0, True),
    ],
)
def test_tolerance_and_grace_boundaries(detected: float, matches: bool) -> None:
    labels = [_label("w1", "slow_leak", 1_000, 2_000)]
    report = _evaluate(labels, [_anomaly("w1", detected)])

    assert report.outcomes[0].detected is matches
    assert report.overall.false_alerts == (0 if matches else 1)


def test_custom_tolerance_and_grace() -> None:
    labels = [_label("w1", "slow_leak", 1_000, 2_000)]
    config = MatchConfig(tolerance_s=0.0, grace_s=10.0)
    anomalies = [_anomaly("w1", 999.0), _anomaly("w1", 2_010.0), _anomaly("w1", 2_011.0)]
    report = _evaluate(labels, anomalies, config)

    assert [a.detected_at - T0 for a in report.outcomes[0].matched] == [2_010.0]
    assert [a.detected_at - T0 for a in report.false_alerts] == [999.0, 2_011.0]


def test_other_device_does_not_match() -> None:
    labels = [_label("w1", "slow_leak", 1_000, 2_000)]
    report = _evaluate(labels, [_anomaly("w2", 1_500)])

    assert not report.outcomes[0].detected
    assert report.overall.false_alerts == 1


def test_overlapping_labels_anomaly_goes_to_the_closest_start_before() -> None:
    # X: [1_000, 5_000], Y: [3_000, 4_000] on one device
    labels = [_label("w1", "slow_leak", 1_000, 5_000), _label("w1", "pump_failure", 3_000, 4_000)]
    x, y = labels

    def assigned(detected: float) -> Label | None:
        i = match_anomaly(_anomaly("w1", detected), labels)
        return None if i is None else labels[i]

    assert assigned(3_500) is y  # both ongoing: Y started more recently
    assert assigned(4_500) is y  # Y in its grace period, X ongoing: Y still the latest start
    assert assigned(2_990) is x  # within Y's tolerance, but X had started: X
    assert assigned(950) is x  # only X is a candidate (tolerance)
    assert assigned(2_000) is x

    report = _evaluate(labels, [_anomaly("w1", 3_500), _anomaly("w1", 2_000)])
    out_x, out_y = report.outcomes
    assert len(out_x.matched) == 1
    assert len(out_y.matched) == 1  # each anomaly counted for one label only
    assert report.overall.matched_anomalies == 2
    assert out_y.delay_s == pytest.approx(500.0)
    assert out_x.delay_s == pytest.approx(1_000.0)


def test_no_label_started_yet_takes_the_earliest_start() -> None:
    labels = [_label("w1", "slow_leak", 1_050, 2_000), _label("w1", "pump_failure", 1_030, 2_000)]
    i = match_anomaly(_anomaly("w1", 1_000), labels)
    assert i == 1


def test_equal_starts_prefer_the_expected_kind_then_input_order() -> None:
    labels = [_label("w1", "slow_leak", 1_000, 2_000), _label("w1", "pump_failure", 1_000, 2_000)]
    assert match_anomaly(_anomaly("w1", 1_100, "pump_fault"), labels, expected_kinds=EXPECTED) == 1
    assert match_anomaly(_anomaly("w1", 1_100, "slow_leak"), labels, expected_kinds=EXPECTED) == 0
    assert match_anomaly(_anomaly("w1", 1_100, "pump_fault"), labels) == 0  # no mapping: order
    # low_pressure is expected for both: input order decides
    assert (
        match_anomaly(_anomaly("w1", 1_100, "low_pressure"), labels, expected_kinds=EXPECTED) == 0
    )


# --- evaluation window ---------------------------------------------------------------------


def test_warm_up_and_after_window_anomalies_are_ignored() -> None:
    window = (T0 + 1_000.0, T0 + 5_000.0)
    labels = [_label("w1", "slow_leak", 1_200, 1_800)]
    anomalies = [
        _anomaly("w1", 999.0),  # warm-up, would match the label: ignored, label missed
        _anomaly("w2", 500.0),  # warm-up false alert: ignored
        _anomaly("w2", 5_000.0),  # at window_end (half-open): ignored
        _anomaly("w2", 1_000.0),  # at window_start: evaluated, a false alert
    ]
    report = _evaluate(labels, anomalies, window=window)

    assert report.anomalies == 1
    assert report.ignored_anomalies == 3
    assert report.overall.false_alerts == 1
    assert not report.outcomes[0].detected
    assert report.recall == 0.0
    assert report.precision == 0.0
    assert report.to_json()["ignored_anomalies"] == 3


# --- false-alert attribution ---------------------------------------------------------------


def test_false_alerts_attributed_by_expected_kinds() -> None:
    labels = [_label("w1", "pump_failure", 1_000, 2_000)]
    anomalies = [
        _anomaly("w1", 1_100, "pump_fault"),  # matched
        _anomaly("w9", 1_100, "low_pressure"),  # false: pump_failure and slow_leak
        _anomaly("w9", 3_100, "smoke"),  # false: thermal_runaway
        _anomaly("w9", 5_100, "offline"),  # false: no fault type
    ]
    report = _evaluate(labels, anomalies, device_hours=250.0)
    pf = report.per_fault

    assert report.overall.false_alerts == 3
    assert report.precision == pytest.approx(1 / 4)
    assert report.overall.false_alerts_per_1000_device_hours == pytest.approx(12.0)
    assert {f: x.false_alerts for f, x in pf.items()} == {
        "pump_failure": 1,
        "slow_leak": 1,
        "thermal_runaway": 1,
    }
    assert pf["pump_failure"].precision == pytest.approx(1 / 2)
    assert pf["pump_failure"].false_alerts_per_1000_device_hours == pytest.approx(4.0)
    # fault types without labels still appear (from expected_kinds): recall is vacuous
    assert pf["slow_leak"].labels == 0
    assert pf["slow_leak"].recall == 1.0
    assert pf["slow_leak"].precision == 0.0
    assert pf["slow_leak"].f1 == 0.0


# --- empty inputs and validation -----------------------------------------------------------


def test_no_labels_no_anomalies() -> None:
    report = _evaluate([], [])
    o = report.overall
    assert (o.labels, o.detected, o.matched_anomalies, o.false_alerts) == (0, 0, 0, 0)
    assert (o.precision, o.recall, o.f1) == (1.0, 1.0, 1.0)
    assert o.false_alerts_per_1000_device_hours == 0.0
    assert (o.delay_median_s, o.delay_p95_s) == (None, None)
    data = report.to_json()
    json.dumps(data)
    assert data["detection_delay_s"] == {"median": None, "p95": None}
    assert data["missed"] == []
    assert data["false_alert_examples"] == []
    assert "overall" in report.format_text()


def test_labels_without_anomalies() -> None:
    report = _evaluate([_label("w1", "slow_leak", 1_000, 2_000)], [])
    assert (report.precision, report.recall, report.f1) == (1.0, 0.0, 0.0)
    assert report.to_json()["missed"][0]["device_id"] == "w1"


def test_anomalies_without_labels() -> None:
    report = evaluate_detections(
        [], [_anomaly("w1", 1_000)], device_hours=0.0, window=WINDOW, expected_kinds={}
    )
    assert (report.precision, report.recall, report.f1) == (0.0, 1.0, 0.0)
    assert report.per_fault == {}
    assert report.overall.false_alerts_per_1000_device_hours is None  # no device-hours
    data = report.to_json()
    assert data["false_alerts_per_1000_device_hours"] is None
    json.dumps(data)
    assert "-" in report.format_text()


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="device_hours"):
        _evaluate([], [], device_hours=-1.0)
    with pytest.raises(ValueError, match="window"):
        _evaluate([], [], window=(T0 + 10.0, T0))
    with pytest.raises(ValueError, match="tolerance_s"):
        MatchConfig(tolerance_s=-1.0)
    with pytest.raises(ValueError, match="grace_s"):
        MatchConfig(grace_s=float("nan"))


# --- JSON and text -------------------------------------------------------------------------


def test_json_keys_values_and_serialisable() -> None:
    labels, anomalies = _scenario()
    data = _evaluate(labels, anomalies).to_json()
    text = json.dumps(data)
    assert json.loads(text) == data

    for key in (
        "precision",
        "recall",
        "f1",
        "false_alerts_per_1000_device_hours",
        "detection_delay_s",
        "per_fault",
        "labels",
        "detected",
        "anomalies",
        "matched_anomalies",
        "false_alerts",
        "reported_unlabelled",
        "device_hours",
        "per_detector",
        "per_kind",
        "missed",
        "false_alert_examples",
    ):
        assert key in data, key
    assert data["precision"] == 0.75
    assert data["recall"] == 0.6667
    assert data["f1"] == 0.7059
    assert data["detection_delay_s"] == {"median": 60.0, "p95": 114.0}
    assert (data["labels"], data["detected"], data["anomalies"]) == (3, 2, 5)
    assert (data["matched_anomalies"], data["false_alerts"], data["reported_unlabelled"]) == (
        3,
        1,
        1,
    )
    assert data["device_hours"] == 500.0
    leak = data["per_fault"]["slow_leak"]
    for key in ("precision", "recall", "f1", "false_alerts_per_1000_device_hours"):
        assert key in leak
    assert leak["detection_delay_s"] == {"median": 0.0, "p95": 0.0}
    assert (leak["labels"], leak["detected"], leak["false_alerts"]) == (1, 1, 1)
    assert leak["f1"] == 0.6667
    assert data["missed"] == [
        {
            "device_id": "s3",
            "unit_id": "unit-s3",
            "fault": "thermal_runaway",
            "severity": "high",
            "start": iso(T0 + 40_000),
            "end": iso(T0 + 40_600),
        }
    ]
    assert data["missed"][0]["start"].endswith("Z")
    (example,) = data["false_alert_examples"]
    assert example["device_id"] == "w1"
    assert example["detector"] == "stat.cusum"
    assert example["kind"] == "slow_leak"
    assert example["detected_at"] == iso(T0 + 50_000)
    assert example["explanation"] == "drift"


def test_false_alert_examples_are_capped_and_earliest_first() -> None:
    anomalies = [_anomaly("w9", 1_000.0 + 10 * i) for i in reversed(range(25))]
    data = _evaluate([], anomalies).to_json()
    examples = data["false_alert_examples"]
    assert data["false_alerts"] == 25
    assert len(examples) == MAX_FALSE_ALERT_EXAMPLES == 20
    assert [e["detected_at"] for e in examples] == [iso(T0 + 1_000.0 + 10 * i) for i in range(20)]


def test_format_text_contents() -> None:
    labels, anomalies = _scenario()
    text = _evaluate(labels, anomalies).format_text()
    lines = text.splitlines()

    overall = next(line for line in lines if line.startswith("overall"))
    assert "0.750" in overall
    assert "0.667" in overall
    assert "0.706" in overall
    assert "60.0" in overall
    assert "114.0" in overall
    for fault in EXPECTED:
        assert any(line.startswith(fault) for line in lines), fault
    assert "missed labels: 1" in text
    assert f"s3 thermal_runaway {iso(T0 + 40_000)}" in text
    assert "false alerts: 1" in text
    assert "w1 stat.cusum slow_leak: drift" in text
    assert all(len(line) <= 120 for line in lines if not line.startswith("  "))
