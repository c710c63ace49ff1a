"""Slow-onset faults (firewatch.simulators.fault_shapes and the ``onset`` of a fault spec):
the ramp and its integral, onsets and ranges drawn when faults are resolved, labels that
keep the ramp's beginning, and behaviours whose fault effect really ramps in."""

from __future__ import annotations

import random

import pytest

from firewatch.core.domain import Severity
from firewatch.simulators.fault_shapes import RAMPED, ramp, ramped_s
from firewatch.simulators.faults import labels_for, resolve_faults
from firewatch.simulators.model import Fault
from tests.builders.simulation import DEVICES, SHED, START, TANK, WATER, H, run, telemetry


def _fault(kind: str, onset: float | None, **params: object) -> Fault:
    p = dict(params)
    if onset is not None:
        p["onset_s"] = onset
    return Fault(kind, WATER.id, START + H, START + 5 * H, Severity.MEDIUM, p)


def test_ramp_and_its_integral() -> None:
    f = _fault("pipe_leak", 3600.0)
    assert ramp(f, START) == 0.0
    assert ramp(f, START + 1.5 * H) == pytest.approx(0.5)
    assert ramp(f, START + 3 * H) == 1.0
    assert ramped_s(f, START + 1.5 * H) == pytest.approx(0.5 * 1800.0**2 / 3600.0)
    assert ramped_s(f, START + 3 * H) == pytest.approx(2 * H - 1800.0)
    sudden = _fault("pipe_leak", None)
    assert ramp(sudden, START + H) == 1.0
    assert ramped_s(sudden, START + 2 * H) == H


def test_onset_and_ranges_are_drawn_when_faults_resolve() -> None:
    specs = [
        {
            "type": "sensor_drift",
            "device": WATER.id,
            "count": 1,
            "duration": (6 * H, 10 * H),
            "onset": (2 * H, 3 * H),
            "params": {"pct_per_h": {"min": 1.0, "max": 4.0}},
        }
    ]
    rng = random.Random(1)
    (f,) = resolve_faults(specs, DEVICES, rng, START, START + 48 * H)
    assert 6 * H <= f.end - f.start <= 10 * H
    assert 2 * H <= f.params["onset_s"] <= 3 * H
    assert 1.0 <= f.params["pct_per_h"] <= 4.0
    (label,) = labels_for([f], DEVICES)
    assert label.start == f.start  # the label keeps where the ramp begins
    assert label.details["onset_s"] == f.params["onset_s"]
    again = resolve_faults(specs, DEVICES, random.Random(1), START, START + 48 * H)
    assert again == [f]


def test_onset_is_refused_for_a_fault_that_cannot_ramp() -> None:
    assert "pipe_burst" not in RAMPED
    with pytest.raises(ValueError, match="onset"):
        resolve_faults(
            [{"type": "pipe_burst", "device": WATER.id, "onset": 600}],
            DEVICES,
            random.Random(1),
            START,
            START + 24 * H,
        )
    with pytest.raises(ValueError, match="range"):
        resolve_faults(
            [{"type": "pipe_leak", "device": WATER.id, "duration": (3 * H, H)}],
            DEVICES,
            random.Random(1),
            START,
            START + 24 * H,
        )


def _pressure_gap(onset: float | None, at_h: float) -> float:
    """Mean pressure below the fault-free run over the half hour before ``at_h``."""
    drift = _fault("sensor_drift", onset, field="pressure_kpa", pct_per_h=-4.0)
    clean = telemetry(run(WATER, hours=6), START + (at_h - 0.5) * H, START + at_h * H)
    faulty = telemetry(run(WATER, [drift], hours=6), START + (at_h - 0.5) * H, START + at_h * H)
    assert clean
    assert len(clean) == len(faulty)
    gaps = [
        (a.body or {})["pressure_kpa"] - (b.body or {})["pressure_kpa"]
        for a, b in zip(clean, faulty, strict=True)
    ]
    return float(sum(gaps) / len(gaps))


def test_a_drift_with_an_onset_starts_imperceptibly() -> None:
    sudden, slow = _pressure_gap(None, 1.5), _pressure_gap(3 * H, 1.5)
    assert sudden > 3.0  # ~4 %/h of 400 kPa for 15-30 min: 4-8 kPa
    assert 0 <= slow < sudden / 4  # a quarter of the way up the ramp: ~1/8 of it
    late_sudden, late_slow = _pressure_gap(None, 5.0), _pressure_gap(3 * H, 5.0)
    assert late_slow > 0.5 * late_sudden  # after the ramp it drifts at full rate


def test_a_leak_and_a_drain_ramp_in() -> None:
    def level_drop(onset: float | None) -> float:
        f = Fault(
            "tank_draining",
            TANK.id,
            START + H,
            START + 5 * H,
            Severity.HIGH,
            {"rate_m_per_h": 0.5, **({"onset_s": onset} if onset else {})},
        )
        ems = telemetry(run(TANK, [f], hours=2.0), START + H, START + 2 * H)
        levels = [(e.body or {})["level_m"] for e in ems]
        return float(levels[0] - levels[-1])

    assert level_drop(4 * H) < 0.5 * level_drop(None)


def test_a_runaway_precursor_with_an_onset_heats_slower_at_first() -> None:
    def temp_after(onset: float | None, minutes: float) -> float:
        params: dict[str, object] = {
            "port": 2,
            "slow_c_per_min": 0.4,
            "fast_c_per_s": 1.5,
            "fast_s": 180.0,
        }
        if onset:
            params["onset_s"] = onset
        f = Fault(
            "thermal_runaway_precursor",
            SHED.id,
            START + 10 * H,
            START + 14 * H,
            Severity.CRITICAL,
            params,
        )
        ems = telemetry(run(SHED, [f], hours=10 + minutes / 60))
        port = next(p for p in (ems[-1].body or {})["ports"] if p["port"] == 2)
        return float(port["temp_c"])

    # the same forced charging session either way; the precursor's own heat after 30 min:
    # 0.4 °C/min · 30 = 12 °C at once, 0.4 · 30² / (2 · 120) = 1.5 °C ramping in over 2 h
    assert temp_after(None, 30) - temp_after(2 * H, 30) == pytest.approx(10.5, abs=1.0)
    assert temp_after(None, 5) - temp_after(2 * H, 5) == pytest.approx(2.0 - 0.04, abs=0.5)
