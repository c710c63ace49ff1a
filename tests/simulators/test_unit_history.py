"""The simulated unit history (firewatch.simulators.unit_history): reproducible by seed,
incidents driven by the hidden propensities, observables that are noisy and only partly
informative, rollups and states the risk model accepts, and fast enough."""

from __future__ import annotations

import time
from dataclasses import fields
from datetime import datetime, timedelta

import numpy as np
import pytest

from firewatch.core.risk import assess, load_risk_config
from firewatch.core.rollups import Grain, Rollup, Tier
from firewatch.simulators.unit_history import UnitHistory, simulate_unit_history
from firewatch.simulators.unit_history_processes import (
    COUNT_FIELDS,
    FAULT_TYPES,
    GAUGE_FIELDS,
    SUM_FIELDS,
    incident_rates,
    minutes_per_day,
)


@pytest.fixture(scope="module")
def history() -> UnitHistory:
    return simulate_unit_history(300, seed=7)


def test_same_seed_same_history_other_seed_another(history: UnitHistory) -> None:
    again = simulate_unit_history(300, seed=7)
    assert again.units == history.units
    for k, v in history.daily.items():
        np.testing.assert_array_equal(again.daily[k], v, err_msg=k)
    np.testing.assert_array_equal(again.hazards.found, history.hazards.found)
    np.testing.assert_array_equal(again.outcomes().incident, history.outcomes().incident)
    assert again.rollups(5) == history.rollups(5)
    assert again.states_at() == history.states_at()
    other = simulate_unit_history(300, seed=8)
    assert not np.array_equal(other.daily["false_alarms"], history.daily["false_alarms"])


def test_rollups_are_the_units_days_before_the_cut_off(history: UnitHistory) -> None:
    for i in (0, 17, 299):
        rollups = history.rollups(i)
        unit = history.units[i]
        assert rollups, unit
        assert all(r.tier is Tier.UNIT and r.grain is Grain.DAY for r in rollups)
        assert {r.subject_id for r in rollups} == {unit.unit_id}
        assert all(history.start <= r.bucket < history.cutoff for r in rollups)
        assert len({r.bucket for r in rollups}) == len(rollups)
        for r in rollups:
            assert r.faults == sum(r.faults_by_type.values())
            assert set(r.faults_by_type) <= set(FAULT_TYPES)
            assert r.fire_alarms >= r.false_alarms + r.confirmed_fires
            assert isinstance(r.acks, int)
            assert r.acks >= 0
            assert (r.shed_peak_temp_c is not None) == unit.has_shed
    follow = history.rollups(0, history.history_days, history.days)
    assert all(history.cutoff <= r.bucket < history.cutoff + timedelta(days=91) for r in follow)
    assert history.cutoff == history.start + timedelta(days=365)


def test_every_rollup_measure_is_simulated() -> None:
    measures = {f.name for f in fields(Rollup)} - {"tier", "subject_id", "grain", "bucket"}
    assert set(COUNT_FIELDS) | set(SUM_FIELDS) | set(GAUGE_FIELDS) == measures - {"faults_by_type"}
    assert {"confirmed_fires", "acks"} <= set(COUNT_FIELDS)
    assert {"pressure_low_min", "isolated_min", "ack_s_sum"} <= set(SUM_FIELDS)
    assert set(GAUGE_FIELDS) == {"pressure_min_kpa", "pressure_mean_kpa", "shed_peak_temp_c"}


def test_days_without_anything_have_no_row() -> None:
    h = simulate_unit_history(40, seed=2, history_days=30, follow_days=0)
    for k in h.daily:  # a unit with nothing at all on its first day
        h.daily[k][0, 0] = np.nan if k in ("pressure_min_kpa", "pressure_mean_kpa") else 0.0
    h.daily["shed_peak_temp_c"][0, 0] = np.nan
    for t in h.faults_by_type.values():
        t[0, 0] = 0.0
    buckets = [r.bucket for r in h.rollups(0)]
    assert h.start not in buckets
    assert h.start + timedelta(days=1) in buckets


def test_spells_over_midnight_are_split_between_days() -> None:
    unit = np.array([0, 1, 1])
    start = np.array([0.5, 1.75, 2.9])
    end = np.array([0.75, 3.25, 20.0])  # the last runs past the end
    out = minutes_per_day((2, 4), unit, start, end)
    expected = np.zeros((2, 4))
    expected[0, 0] = 360  # 12:00-18:00
    expected[1, 1] = 360  # 18:00-24:00
    expected[1, 2] = 1440 + 144  # all day, and the third spell's last 0.1 day
    expected[1, 3] = 360 + 1440  # 00:00-06:00, and all day (clipped at the end)
    np.testing.assert_allclose(out, expected)
    sized = minutes_per_day((2, 4), unit[:1], start[:1], end[:1], np.array([3]))
    assert sized[0, 0] == pytest.approx(1080)


def test_states_at_the_cut_off_are_valid_and_vary(history: UnitHistory) -> None:
    states = history.states_at()
    assert len(states) == 300
    assert any(s.open_fault_alerts for s in states)
    assert any(s.open_general_hazards for s in states)
    assert {s.credit for s in states} >= {"good", "blacklisted"}
    for s, u in zip(states, history.units, strict=True):
        assert s.devices_total == u.devices_total
        assert s.detectors_total == u.detectors
        assert s.panels_offline <= u.panels
        assert s.supervision == u.supervision
        assert s.inspections_365d >= 0
    events = history.credit_events()
    last = {e.unit_id: e.status_to for e in events if e.day <= history.history_days}
    cut = dict(zip((u.unit_id for u in history.units), history.credit_at(365.0), strict=True))
    assert all(cut[uid] == status for uid, status in last.items())


def test_incidents_depend_on_the_propensities() -> None:
    """With a fixed seed: units with worse management, or a worse combined propensity,
    have clearly more incidents in the following period than the better ones."""
    h = simulate_unit_history(4000, seed=3, history_days=30, follow_days=365)
    o = h.outcomes()
    m = h.propensities.management
    worst, best = m > np.quantile(m, 0.75), m < np.quantile(m, 0.25)
    assert o.major_hazards[worst].mean() > 2.5 * o.major_hazards[best].mean()
    fire, major = incident_rates(h.propensities)
    risk = fire + major
    top, bottom = risk > np.quantile(risk, 0.75), risk < np.quantile(risk, 0.25)
    assert o.incident[top].mean() > 3 * o.incident[bottom].mean()
    occ = h.propensities.occupancy
    assert o.fires[occ > 0.67].sum() > 1.5 * o.fires[occ < -0.67].sum()
    # the outcome is drawn from the rates: the expected count matches what happened
    assert o.major_hazards.sum() == pytest.approx(major.sum() * 365, rel=0.1)


def test_observables_are_only_partly_informative(history: UnitHistory) -> None:
    """No single indicator is a copy of a propensity: each correlates with it clearly
    less than perfectly (and some noise-driven ones hardly at all)."""
    cfg = load_risk_config()
    states = history.states_at()
    values = np.array(
        [
            [
                c.value if isinstance(c.value, float) else 0.0
                for c in assess(
                    u.unit_id, history.cutoff, history.rollups(i), states[i], cfg
                ).breakdown
            ]
            for i, u in enumerate(history.units)
        ]
    )
    p = history.propensities
    for name, z in (("management", p.management), ("equipment", p.equipment), ("ebike", p.ebike)):
        corr = [abs(np.corrcoef(z, col)[0, 1]) for col in values.T if np.std(col) > 0]
        assert max(corr) < 0.8, name
        assert max(corr) > 0.15, name  # but the indicators do carry some signal


def test_a_thousand_units_for_fifteen_months_is_fast() -> None:
    t = time.perf_counter()
    h = simulate_unit_history(1000, seed=11)
    assert time.perf_counter() - t < 20.0  # measured about 0.3 s; generous on a busy machine
    assert h.days == 456
    assert h.daily["faults"].shape == (1000, 456)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        simulate_unit_history(0, seed=1)
    naive = datetime(2026, 1, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        simulate_unit_history(5, seed=1, start=naive)
