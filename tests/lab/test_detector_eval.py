"""The offline evaluation (``firewatch analytics evaluate``), end to end on a small scenario."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firewatch.cli import main
from firewatch.lab.detector_eval import EXPECTED_KINDS, evaluate_scenario
from firewatch.simulators.faults import FAULT_TYPES

SCENARIO = """
name = "tiny"
seed = 5
start = "2026-11-20T08:00:00+08:00"
duration = "8h"

[city]
units = 6
streets_per_district = 1

[mix]
water_points = 1
tank_fraction = 0.5
shed_fraction = 1.0
ports_per_shed = 6

[[faults]]
type = "closed_valve"
device = "random:water"
at = "2h"
duration = "1h"

[[faults]]
type = "real_fire_cascade"
device = "random:panel"
at = "3h"
duration = "20m"

[[faults]]
type = "shed_smoke"
device = "random:ebike_shed"
at = "5h"
duration = "10m"

[[faults]]
type = "offline_with_will"
device = "random:panel"
at = "6h"
duration = "1h"
"""

TOP_LEVEL = (
    "precision",
    "recall",
    "f1",
    "false_alerts_per_1000_device_hours",
    "detection_delay_s",
    "per_fault",
)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "tiny.toml"
    path.write_text(SCENARIO, "utf-8")
    return path


def test_every_fault_type_has_expected_kinds() -> None:
    assert set(EXPECTED_KINDS) == set(FAULT_TYPES)
    assert all(EXPECTED_KINDS.values())


def test_evaluation_detects_the_injected_faults(scenario: Path) -> None:
    run = evaluate_scenario(scenario, seed=5, warmup_s=6 * 3600.0, use_models=False)
    report = run.report
    assert len(run.labels) == 4
    missed = [o.label.fault for o in report.outcomes if not o.detected]
    assert missed == []
    by_fault = {o.label.fault: o for o in report.outcomes}
    # rules and device reports are immediate: a closed valve within minutes, the fire
    # with its first detector, the will at once
    assert by_fault["closed_valve"].delay_s is not None
    assert by_fault["closed_valve"].delay_s < 600
    assert by_fault["real_fire_cascade"].delay_s is not None
    assert by_fault["real_fire_cascade"].delay_s < 120
    assert by_fault["offline_with_will"].delay_s == 0.0
    assert report.recall == 1.0
    assert report.precision >= 0.9
    doc = run.to_json()
    assert all(k in doc for k in TOP_LEVEL)
    assert set(doc["detection_delay_s"]) == {"median", "p95"}
    assert set(doc["per_fault"]["closed_valve"]) >= set(TOP_LEVEL) - {"per_fault"}
    assert doc["run"]["points"] > 0
    assert doc["reported_counted_as_false"]["precision"] <= doc["precision"]
    json.dumps(doc)  # serialisable as it stands


def test_evaluation_is_reproducible(scenario: Path) -> None:
    a = evaluate_scenario(scenario, seed=5, warmup_s=3 * 3600.0, use_models=False)
    b = evaluate_scenario(scenario, seed=5, warmup_s=3 * 3600.0, use_models=False)
    assert [x.key for x in a.anomalies] == [x.key for x in b.anomalies]
    assert a.to_json()["f1"] == b.to_json()["f1"]


def test_cli_writes_the_report(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    code = main(
        [
            "analytics",
            "evaluate",
            "--scenario",
            str(scenario),
            "--seed",
            "5",
            "--warmup",
            "4h",
            "--no-models",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    doc = json.loads(out.read_text("utf-8"))
    assert all(k in doc for k in TOP_LEVEL)
    assert doc["run"]["seed"] == 5
    text = capsys.readouterr().out
    assert "overall" in text
    assert "closed_valve" in text


def test_cli_refuses_a_missing_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["analytics", "evaluate", "--scenario", str(tmp_path / "nope.toml")])
    assert code == 2
    assert "analytics evaluate:" in capsys.readouterr().err


REALISM_SCENARIO = """
name = "tiny-realism"
seed = 5
start = "2026-11-20T08:00:00+08:00"
duration = "6h"

[city]
units = 4
streets_per_district = 1

[mix]
panels = 0
water_points = 2
shed_fraction = 0.5
ports_per_shed = 4

[realism.maintenance]
per_device_per_week = 60
duration = ["1h", "2h"]
activities = ["valve_closed"]

[[faults]]
type = "closed_valve"
device = "random:water"
at = "1h"
duration = "1h"
"""


def test_report_has_per_detector_figures_and_maintenance_apart(tmp_path: Path) -> None:
    path = tmp_path / "tiny-realism.toml"
    path.write_text(REALISM_SCENARIO, "utf-8")
    run = evaluate_scenario(path, seed=5, warmup_s=2 * 3600.0, use_models=False)
    doc = json.loads(json.dumps(run.to_json()))
    hours = doc["run"]["device_hours_by_kind"]
    assert set(hours) == {"water", "ebike_shed"}
    assert sum(hours.values()) == pytest.approx(doc["device_hours"])
    assert doc["run"]["maintenance"]
    assert doc["maintenance_windows"] == len(doc["run"]["maintenance"])
    # a valve closed for planned work raises alerts, counted apart from the false ones
    assert doc["during_maintenance"] > 0
    assert "rule.pressure_low" in doc["detectors"]
    low = doc["detectors"]["rule.pressure_low"]
    assert low["device_kinds"] == ["water"]
    assert low["device_hours"] == pytest.approx(hours["water"])
    assert low["during_maintenance"] > 0
    assert low["labels_detected"] == 1
    for det, figs in doc["detectors"].items():
        rate = figs["false_alerts_per_1000_device_hours"]
        assert rate == pytest.approx(figs["false_alerts"] / figs["device_hours"] * 1000, abs=1e-3)
        assert figs["anomalies"] >= figs["matched_anomalies"] + figs["false_alerts"], det
    assert "per detector" in run.format_text()
