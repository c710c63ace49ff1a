"""Realism (``[realism]``): opt-in, deterministic, and each part really does what it says —
heavy tails, quantisation, lost messages, labelled maintenance, weekly rhythm, devices
that differ — while a scenario without it streams exactly what it always did."""

from __future__ import annotations

import hashlib
import itertools
import random
import statistics
from collections import Counter
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from firewatch.core.domain import DeviceKind
from firewatch.simulators.engine import Simulation, scenario_window
from firewatch.simulators.realism import (
    MAINTENANCE,
    DeviceRealism,
    local_weekday,
    plan_maintenance,
    quantise,
    student_t,
)
from firewatch.simulators.scenario import RealismSpec, Scenario, load_scenario
from tests.builders.simulation import START, WATER

#: sha256 of the standard scenario (4 units, 48 h, seed 7: messages and labels, hashed as
#: in ``_digest``) computed before realism existed: without ``[realism]`` nothing changed.
STANDARD_DIGEST = "19daa825935b88d9f2be7f43cfedcb1f60f73f8e6153469e1645c3c78a80fed9"
STANDARD_MESSAGES = 25653


def _digest(sim: Simulation) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    for m in sim.messages():
        h.update(repr((m.t, m.topic, m.action.value)).encode())
        h.update(m.payload)
        h.update(m.will or b"")
        n += 1
    for lb in sim.labels:
        h.update(repr(lb.to_json()).encode())
    return n, h.hexdigest()


def _tiny(realism: dict[str, Any] | None, *, hours: float = 6, seed: int = 3) -> Simulation:
    """Four units of water points and sheds, no faults, ``hours`` from a Friday midnight."""
    data: dict[str, Any] = {
        "name": "tiny",
        "start": "2026-11-20T00:00:00+08:00",
        "duration": f"{hours}h",
        "city": {"units": 4},
        "mix": {"panels": 0, "water_points": 2, "shed_fraction": 1.0, "ports_per_shed": 4},
    }
    if realism is not None:
        data["realism"] = realism
    sc = Scenario.model_validate(data)
    start, end = scenario_window(sc, live=False)
    return Simulation(sc, start=start, end=end, seed=seed)


def _telemetry(sim: Simulation) -> list[tuple[str, DeviceKind, dict[str, Any]]]:
    return [
        (m.device.id, m.device.kind, orjson.loads(m.payload))
        for m in sim.messages()
        if m.topic.endswith("/telemetry")
    ]


def test_without_realism_the_stream_is_byte_identical_to_before() -> None:
    sc = load_scenario("builtin:standard")
    assert sc.realism is None
    start, _ = scenario_window(sc, live=False)
    sim = Simulation(sc, start=start, end=start + 48 * 3600, seed=7, units=4)
    assert sim.maintenance == []
    assert _digest(sim) == (STANDARD_MESSAGES, STANDARD_DIGEST)


def test_realism_is_deterministic_per_seed_and_changes_the_stream() -> None:
    spec = {"noise": {"student_t_df": 3}, "loss": {"drop_rate": 0.05}}
    a, b = _digest(_tiny(spec)), _digest(_tiny(spec))
    assert a == b
    assert _digest(_tiny(spec, seed=4)) != a
    assert _digest(_tiny(None)) != a


def test_student_t_noise_is_heavy_tailed_with_the_same_spread() -> None:
    rng = random.Random(5)
    t = [student_t(rng, 3.0) for _ in range(40_000)]
    g = [rng.gauss(0.0, 1.0) for _ in range(40_000)]

    def tail(xs: list[float]) -> float:
        return sum(abs(x) > 4 for x in xs) / len(xs)

    assert statistics.pstdev(g) == pytest.approx(1.0, abs=0.03)
    assert statistics.median(abs(x) for x in t) < statistics.median(abs(x) for x in g)
    assert tail(t) > 10 * max(tail(g), 1e-4)  # far more 4-sigma values than a Gaussian


def test_quantisation_and_glitches_show_in_the_readings() -> None:
    spec = {
        "noise": {"pressure_resolution_kpa": 2.0, "temp_resolution_c": 0.5, "glitch_rate": 0.05}
    }
    rows = _telemetry(_tiny(spec, hours=4))
    pressures = [b["pressure_kpa"] for _, k, b in rows if k is DeviceKind.WATER]
    temps = [p["temp_c"] for _, k, b in rows if k is DeviceKind.EBIKE_SHED for p in b["ports"]]
    assert len(pressures) > 100
    # glitches are applied after quantisation: most readings sit on the grid
    assert sum(p % 2.0 == 0 for p in pressures) > 0.85 * len(pressures)
    assert sum((t * 2) % 1 == 0 for t in temps) > 0.85 * len(temps)
    by_device: dict[str, list[float]] = {}
    for d, k, b in rows:
        if k is DeviceKind.WATER:
            by_device.setdefault(d, []).append(b["pressure_kpa"])
    outliers = [
        p
        for ps in by_device.values()
        for p in ps
        if p == 0.0 or abs(p - statistics.median(ps)) > 0.15 * statistics.median(ps)
    ]
    assert outliers, "a 5 % glitch rate leaves single-sample outliers"
    assert len(outliers) < 0.15 * len(pressures)


def test_lost_messages_are_missing_and_leave_sequence_gaps() -> None:
    full = _telemetry(_tiny({}))
    lossy = _telemetry(_tiny({"loss": {"drop_rate": 0.2}}))
    assert 0.72 < len(lossy) / len(full) < 0.88
    gaps = 0
    last: dict[str, int] = {}
    for device, _, body in lossy:
        gaps += body["seq"] > last.get(device, 0) + 1
        last[device] = body["seq"]
    assert gaps > 0.1 * len(full)


def test_loss_bursts_are_runs_of_consecutive_losses() -> None:
    spec = RealismSpec.model_validate(
        {"loss": {"bursts_per_day": 24, "burst_duration": [600, 600]}}
    )
    real = DeviceRealism(spec, WATER, random.Random(1))
    lost = [real.lost(START + 60.0 * i) for i in range(24 * 60)]
    runs = [len(list(g)) for k, g in itertools.groupby(lost) if k]
    assert 12 <= len(runs) <= 40  # about one burst an hour
    assert all(r == 10 for r in runs[:-1])  # 10 min bursts at one report a minute


def test_maintenance_windows_are_labelled_apart_and_change_the_pressure() -> None:
    spec = {
        "maintenance": {
            "per_device_per_week": 40,
            "duration": ["1h", "2h"],
            "activities": ["valve_closed"],
        }
    }
    sim = _tiny(spec, hours=24)
    assert sim.maintenance
    assert sim.labels == []  # not faults
    for w in sim.maintenance:
        assert w.fault == MAINTENANCE
        assert w.details["planned"] is True
        assert w.kind is DeviceKind.WATER
        assert 8 <= ((w.start + 8 * 3600) % 86_400) / 3600 <= 17  # local working hours
    by_device = Counter(w.device_id for w in sim.maintenance)
    assert max(by_device.values()) >= 1
    inside: list[float] = []
    outside: list[float] = []
    for m in sim.messages():
        if not m.topic.endswith("/telemetry") or m.device.kind is not DeviceKind.WATER:
            continue
        p = orjson.loads(m.payload)["pressure_kpa"]
        busy = any(w.device_id == m.device.id and w.start <= m.t < w.end for w in sim.maintenance)
        (inside if busy else outside).append(p)
    assert inside
    assert max(inside) < 20  # valve closed for work
    assert min(outside) > 100


def test_maintenance_avoids_faults_and_the_span_end() -> None:
    spec = RealismSpec.model_validate({"maintenance": {"per_device_per_week": 100}}).maintenance
    day = 86_400.0
    windows = plan_maintenance(
        spec, [WATER], random.Random(2), START, START + 3 * day, [(WATER.id, START, START + day)]
    )
    assert windows
    for w in windows:
        assert w.start >= START + day + 3600  # an hour clear of the fault
        assert w.end <= START + 3 * day
    spans = sorted((w.start, w.end) for w in windows)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_weekend_demand_and_charging_differ() -> None:
    spec = RealismSpec.model_validate(
        {"seasonal": {"weekend_water": 0.5, "weekend_charging": 0.25, "demand_trend_per_day": 0.1}}
    )
    real = DeviceRealism(spec, WATER, random.Random(1))
    friday, saturday = START + 19.5 * 3600, START + (24 + 19.5) * 3600
    assert (local_weekday(friday), local_weekday(saturday)) == (4, 5)

    def flat(_t: float) -> float:
        return 1.0

    assert real.water_demand(friday, START, flat) == pytest.approx(1.0 + 0.1 * 19.5 / 24)
    assert real.water_demand(saturday, START, flat) == pytest.approx(0.5 * (1 + 0.1 * 43.5 / 24))
    assert real.charging_factor(saturday, START) < 0.3 * real.charging_factor(friday, START)


def test_per_device_parameters_vary_within_their_ranges() -> None:
    spec = RealismSpec.model_validate(
        {
            "devices": {
                "interval_factor": [0.5, 2.0],
                "set_point_factor": [0.9, 1.1],
                "jockey_start": [0.85, 0.95],
                "jockey_stop": [1.0, 1.05],
                "port_k": [0.5, 2.0],
                "port_tau_s": [300, 3000],
                "pressure_offset": 0.05,
                "temp_offset_c": 1.0,
            }
        }
    )
    reals = [DeviceRealism(spec, WATER, random.Random(i)) for i in range(60)]
    intervals = [r.interval(60.0) for r in reals]
    assert all(30.0 <= x <= 120.0 for x in intervals)
    assert max(intervals) - min(intervals) > 60.0
    assert all(0.9 <= r.set_point_factor <= 1.1 for r in reals)
    assert all(0.85 <= r.jockey_start <= 0.95 < 1.0 <= r.jockey_stop <= 1.05 for r in reals)
    assert all(abs(r.pressure_offset) <= 0.05 for r in reals)
    ports = [reals[0].port_constants() for _ in range(50)]
    assert all(0.5 <= k <= 2.0 and 300 <= tau <= 3000 and abs(o) <= 1.0 for k, tau, o in ports)
    assert max(k for k, _, _ in ports) - min(k for k, _, _ in ports) > 0.8
    # and in the stream: devices report at different intervals
    sim = _tiny({"devices": {"interval_factor": [0.5, 2.0]}}, hours=3)
    counts = Counter(m.device.id for m in sim.messages() if m.topic.endswith("/telemetry"))
    assert max(counts.values()) > 1.5 * min(counts.values())


def test_quantise() -> None:
    assert quantise(351.26, 0.0) == 351.3
    assert quantise(351.26, 2.0) == 352.0
    assert quantise(21.3, 0.5) == 21.5


@pytest.mark.parametrize(
    "bad",
    [
        {"noise": {"student_t_df": 2.0}},
        {"loss": {"drop_rate": 0.9}},
        {"maintenance": {"duration": ["3h", "1h"]}},
        {"maintenance": {"activities": ["welding"]}},
        {"devices": {"jockey_start": [0.9, 1.02], "jockey_stop": [1.0, 1.05]}},
        {"devices": {"interval_factor": [0.0, 1.0]}},
        {"sesonal": {}},
    ],
)
def test_bad_realism_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RealismSpec.model_validate(bad)


@pytest.mark.parametrize("name", ["hard-water", "hard-sheds", "hard-city"])
def test_hard_scenarios_load_with_realism_and_slow_onsets(name: str) -> None:
    sc = load_scenario(f"builtin:{name}")
    assert sc.realism is not None
    start, end = scenario_window(sc, live=False)
    sim = Simulation(sc, start=start, end=end, seed=1)
    assert sim.labels
    ramped = [lb for lb in sim.labels if "onset_s" in lb.details]
    assert ramped
    assert all(0 < lb.details["onset_s"] <= lb.end - lb.start for lb in ramped)
