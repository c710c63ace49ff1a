"""The risk model (firewatch.core.risk): each indicator's value from hand-made rollups and
state, normalisation at its edges, breakdowns that add up, forced conditions at and just
under their limits, level cut-offs, warnings on a rise, JSON, determinism, bad input."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from firewatch.core.risk import (
    Contribution,
    Cutoffs,
    Level,
    RiskAssessment,
    UnitState,
    assess,
    compare_levels,
    explain,
    level_rose,
    load_risk_config,
)
from firewatch.core.risk_config import ForcedConfig, Kind, RiskConfig
from firewatch.core.rollups import Grain, Rollup, Tier

CFG = load_risk_config()
AS_OF = datetime(2026, 9, 30, 16, tzinfo=UTC)  # local midnight of 1 October (UTC+8)
UNIT = "U-WD-00001"
QUIET = UnitState(supervision="ordinary", devices_total=4, detectors_total=100)


def day(days_before: int, unit: str = UNIT, **measures: Any) -> Rollup:
    """The unit's daily rollup for the day starting ``days_before`` days before AS_OF."""
    bucket = AS_OF - timedelta(days=days_before)
    return Rollup(tier=Tier.UNIT, subject_id=unit, grain=Grain.DAY, bucket=bucket, **measures)


def run(
    rollups: list[Rollup] | None = None, state: UnitState = QUIET, config: RiskConfig = CFG
) -> RiskAssessment:
    return assess(UNIT, AS_OF, rollups or [], state, config)


def line(a: RiskAssessment, indicator: str) -> Contribution:
    (c,) = [c for c in a.breakdown if c.indicator == indicator]
    return c


def with_forced(name: str, **changes: Any) -> RiskConfig:
    forced = tuple(replace(f, **changes) if f.name == name else f for f in CFG.forced)
    return replace(CFG, forced=forced)


# --- indicator values ---------------------------------------------------------------------


def test_each_indicator_value_from_hand_made_rollups_and_state() -> None:
    rollups = [
        day(10, confirmed_fires=1, false_alarms=9, faults=6, fault_open_min=5400.0),
        day(400, confirmed_fires=1),  # outside even the 365-day window
        day(89, isolated_min=12_960.0, offline_min=1800.0, pressure_low_min=900.0),
        day(1, tank_low_min=900.0, shed_overtemp_events=3, shed_overcurrent_events=3),
        day(2, anomalies_critical=1, anomalies_high=1, anomalies_medium=1, anomalies_low=4),
        day(3, acks=4, ack_s_sum=2400.0),
        day(91, faults=50, acks=100, ack_s_sum=1.0),  # outside the 90-day windows
    ]
    state = UnitState(
        supervision="general",  # the registry's older name of ordinary
        devices_total=5,
        devices_offline=1,
        detectors_total=300,
        detectors_isolated=6,
        open_fault_alerts=3,
        oldest_fault_hours=48.0,
        open_major_hazards=1,
        open_general_hazards=2,
        overdue_hazards=1,
        oldest_hazard_days=20.0,
        hazards_found_365d=4,
        false_declarations_365d=1,
        credit="watch",
    )
    a = run(rollups, state)
    values = {c.indicator: c.value for c in a.breakdown}
    assert values == {
        "confirmed_fires": 1.0,
        "false_alarms": 1.0,  # 9 in 90 d = 3 per 30 d, over 300 detectors = 1 per 100
        "faults": 2.0,
        "fault_hours": 30.0,  # 5400 min in 90 d = 1800 per 30 d = 30 h
        "isolated_time": pytest.approx(0.0333, abs=1e-4),  # 12960 / (300 × 90 × 1440)
        "offline_hours": 2.0,  # 1800 min in 90 d = 600 per 30 d = 10 h over 5 devices
        "water_low_hours": 10.0,  # (900 + 900) min in 90 d
        "shed_events": 2.0,
        "anomalies": pytest.approx(2.6667),  # (4 + 2 + 1 + 0.25 × 4) × 30 / 90
        "ack_minutes": 10.0,  # 2400 s over 4 acks
        "open_faults": 3.0,
        "oldest_fault_days": 2.0,
        "isolated_detectors": 2.0,  # % of 300
        "offline_devices": 20.0,  # % of 5
        "open_major_hazards": 1.0,
        "open_general_hazards": 2.0,
        "overdue_hazards": 1.0,
        "oldest_hazard_days": 20.0,
        "hazards_found": 4.0,
        "false_declarations": 1.0,
        "credit": "watch",
        "supervision_class": "ordinary",
    }
    assert line(a, "supervision_class").normalised == 0.0
    assert line(a, "credit").normalised == 0.5


def test_rates_without_a_denominator_have_no_value_and_earn_nothing() -> None:
    state = UnitState(supervision="key")  # no devices, no detectors
    a = run([day(1, false_alarms=5, offline_min=600.0, isolated_min=60.0)], state)
    for name in (
        "false_alarms",
        "offline_hours",
        "isolated_time",
        "isolated_detectors",
        "offline_devices",
        "ack_minutes",
    ):
        c = line(a, name)
        assert (c.value, c.normalised, c.points) == (None, 0.0, 0.0), name


RAMPS = [i for i in CFG.indicators if i.spec.kind is Kind.RAMP]


@pytest.mark.parametrize("ind", RAMPS, ids=lambda i: i.name)
def test_ramp_normalisation_at_its_edges(ind: Any) -> None:
    lo, hi = ind.zero_at, ind.full_at
    assert ind.normalise(None) == 0.0
    assert ind.normalise(max(lo - 0.001, 0.0)) == 0.0
    assert ind.normalise(lo) == 0.0
    assert ind.normalise(lo + (hi - lo) * 0.25) == pytest.approx(0.25)
    assert ind.normalise((lo + hi) / 2) == pytest.approx(0.5)
    assert ind.normalise(hi - (hi - lo) * 1e-6) < 1.0
    assert ind.normalise(hi) == 1.0
    assert ind.normalise(hi * 10) == 1.0


def test_category_normalisation_per_value() -> None:
    credit = CFG.indicator("credit")
    assert [credit.normalise(v) for v in ("good", "watch", "blacklisted")] == [0.0, 0.5, 1.0]
    cls = CFG.indicator("supervision_class")
    for sup, share in (("high_risk", 1.0), ("key", 0.5), ("ordinary", 0.0), ("general", 0.0)):
        c = line(run(state=replace(QUIET, supervision=sup)), "supervision_class")
        assert c.normalised == share
        assert c.points == round(cls.weight * share, 2)


def test_an_indicator_at_full_scale_earns_its_weight() -> None:
    a = run([day(5, confirmed_fires=1)])
    fires = line(a, "confirmed_fires")
    assert (fires.normalised, fires.points) == (1.0, CFG.indicator("confirmed_fires").weight)
    half = run(state=replace(QUIET, open_major_hazards=1))  # full at 2
    assert line(half, "open_major_hazards").points == CFG.indicator("open_major_hazards").weight / 2


# --- the score and its breakdown ------------------------------------------------------------


def _random_case(rng: random.Random) -> tuple[list[Rollup], UnitState]:
    rollups = [
        day(
            d,
            confirmed_fires=rng.choice([0] * 50 + [1]),
            false_alarms=rng.randint(0, 2),
            faults=rng.randint(0, 2),
            fault_open_min=rng.random() * 900,
            isolated_min=rng.random() * 3000,
            offline_min=rng.random() * 300,
            pressure_low_min=rng.choice([0.0, 0.0, rng.random() * 600]),
            tank_low_min=rng.random() * 60,
            shed_overtemp_events=rng.choice([0] * 30 + [1]),
            anomalies_low=rng.randint(0, 3),
            anomalies_high=rng.randint(0, 1),
            acks=(acks := rng.randint(0, 3)),
            ack_s_sum=acks * rng.random() * 1500,
        )
        for d in rng.sample(range(1, 366), rng.randint(0, 200))
    ]
    detectors = rng.randint(0, 500)
    devices = rng.randint(1, 12)
    state = UnitState(
        supervision=rng.choice(["high_risk", "key", "ordinary"]),
        devices_total=devices,
        devices_offline=rng.randint(0, devices),
        panels_offline=rng.randint(0, 1),
        panel_offline_hours=rng.random() * 30,
        detectors_total=detectors,
        detectors_isolated=rng.randint(0, detectors),
        isolation_hours=rng.random() * 40,
        open_fault_alerts=rng.randint(0, 6),
        oldest_fault_hours=rng.random() * 2000,
        open_major_hazards=rng.randint(0, 3),
        open_general_hazards=rng.randint(0, 7),
        overdue_hazards=rng.randint(0, 4),
        oldest_hazard_days=rng.random() * 200,
        hazards_found_365d=rng.randint(0, 10),
        false_declarations_365d=rng.randint(0, 2),
        credit=rng.choice(["good", "watch", "blacklisted"]),
    )
    return rollups, state


def test_breakdowns_add_up_to_the_score_exactly_in_hundredths() -> None:
    rng = random.Random(11)
    scores = []
    for _ in range(300):
        rollups, state = _random_case(rng)
        a = run(rollups, state)
        cents = [round(c.points * 100) for c in a.breakdown]
        assert all(abs(c.points * 100 - k) < 1e-6 for c, k in zip(a.breakdown, cents, strict=True))
        assert sum(cents) == round(a.score * 100)
        assert 0 <= a.score <= 100
        for c in a.breakdown:
            assert 0 <= c.points <= c.weight
            assert 0 <= c.normalised <= 1
            assert abs(c.points - c.weight * c.normalised) <= 0.005 + c.weight * 5e-5
        assert a.score_level == CFG.cutoffs.level_of(a.score)
        scores.append(a.score)
    assert max(scores) - min(scores) > 20  # the cases do spread


def test_everything_at_full_scale_scores_exactly_100_and_nothing_scores_0() -> None:
    worst = UnitState(
        supervision="high_risk",
        devices_total=2,
        devices_offline=2,
        detectors_total=10,
        detectors_isolated=10,
        open_fault_alerts=9,
        oldest_fault_hours=24 * 100,
        open_major_hazards=5,
        open_general_hazards=9,
        overdue_hazards=9,
        oldest_hazard_days=400,
        hazards_found_365d=20,
        false_declarations_365d=3,
        credit="blacklisted",
    )
    full = day(
        1,
        confirmed_fires=2,
        false_alarms=100,
        faults=100,
        fault_open_min=1e6,
        isolated_min=1e7,
        offline_min=1e6,
        pressure_low_min=1e5,
        shed_overtemp_events=50,
        anomalies_critical=500,
        acks=1,
        ack_s_sum=36_000.0,
    )
    top = run([full], worst)
    assert top.score == 100.0
    assert all(c.normalised == 1.0 for c in top.breakdown)
    assert top.level is Level.RED
    nothing = run([], QUIET)
    assert nothing.score == 0.0
    assert (nothing.score_level, nothing.level, nothing.forced_by) == (Level.BLUE, Level.BLUE, ())


def test_same_inputs_same_result_in_any_order() -> None:
    rollups, state = _random_case(random.Random(5))
    a = run(rollups, state)
    shuffled = rollups[:]
    random.Random(1).shuffle(shuffled)
    assert run(shuffled, state) == a
    assert run(list(reversed(rollups)), state).to_json() == a.to_json()


def test_rollups_at_or_after_as_of_are_ignored() -> None:
    past = [day(3, faults=3)]
    a = run(past)
    future = [day(0, faults=99, confirmed_fires=1), day(-5, pressure_low_min=9999.0)]
    assert run(past + future) == a
    assert line(a, "faults").value == 1.0


@pytest.mark.parametrize(
    ("rollup", "message"),
    [
        (day(1, unit="U-OTHER"), "of 'U-OTHER'"),
        (replace(day(1), tier=Tier.DEVICE), "device/day rollup"),
        (replace(day(1), grain=Grain.HOUR), "unit/hour rollup"),
        (replace(day(1), bucket=datetime(2026, 9, 1)), "not timezone-aware"),
    ],
)
def test_rollups_of_another_kind_are_refused(rollup: Rollup, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run([rollup])


def test_as_of_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        assess(UNIT, datetime(2026, 10, 1), [], QUIET, CFG)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"open_fault_alerts": -1}, "open_fault_alerts: must be a number >= 0"),
        ({"oldest_hazard_days": float("nan")}, "oldest_hazard_days: must be a number >= 0"),
        ({"credit": "excellent"}, "unknown status 'excellent'"),
        ({"supervision": "vip"}, "unknown class 'vip'"),
        ({"detectors_isolated": 101}, "detectors_isolated exceeds detectors_total"),
        ({"devices_offline": 5}, "devices_offline exceeds devices_total"),
    ],
)
def test_unit_state_refuses_impossible_values(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(QUIET, **changes)


# --- forced conditions ----------------------------------------------------------------------


FORCING_CASES = [
    # (condition, inputs at the limit, inputs just under it)
    (
        "confirmed_fire",
        ([day(364, confirmed_fires=1)], QUIET),
        ([day(366, confirmed_fires=1)], QUIET),
    ),
    (
        "alarm_system_offline",
        ([], replace(QUIET, devices_offline=1, panels_offline=1, panel_offline_hours=24.0)),
        ([], replace(QUIET, devices_offline=1, panels_offline=1, panel_offline_hours=23.99)),
    ),
    (
        "alarm_system_isolated",
        ([], replace(QUIET, detectors_isolated=20, isolation_hours=24.0)),
        ([], replace(QUIET, detectors_isolated=19, isolation_hours=100.0)),
    ),
    (
        "water_pressure_low",
        ([day(6, pressure_low_min=1000.0), day(1, pressure_low_min=440.0)], QUIET),
        ([day(6, pressure_low_min=1000.0), day(1, pressure_low_min=439.9)], QUIET),
    ),
    (
        "blacklisted",
        ([], replace(QUIET, credit="blacklisted")),
        ([], replace(QUIET, credit="watch")),
    ),
]


@pytest.mark.parametrize(("name", "at", "under"), FORCING_CASES, ids=[c[0] for c in FORCING_CASES])
def test_each_forced_condition_forces_at_its_limit_and_not_just_under(
    name: str, at: tuple[list[Rollup], UnitState], under: tuple[list[Rollup], UnitState]
) -> None:
    forced = run(*at)
    assert forced.forced_by == (name,)
    assert forced.level is Level.RED
    assert forced.score_level is not Level.RED  # the score alone would not have done it
    assert CFG.cutoffs.level_of(forced.score) is forced.score_level
    assert run(*under).forced_by == ()
    # configurable: disabled it forces nothing, with another level it forces that one
    assert run(*at, config=with_forced(name, enabled=False)).forced_by == ()
    orange = run(*at, config=with_forced(name, level=Level.ORANGE))
    assert (orange.level, orange.forced_by) == (Level.ORANGE, (name,))


def test_more_limits_of_the_forced_conditions() -> None:
    # isolation: the share is there but not for long enough; a panel not offline now
    assert run(state=replace(QUIET, detectors_isolated=50, isolation_hours=23.9)).forced_by == ()
    assert run(state=replace(QUIET, panel_offline_hours=99.0)).forced_by == ()
    # water: the minutes must fall in the last 7 days
    assert run([day(8, pressure_low_min=5000.0)]).forced_by == ()
    limits = with_forced("confirmed_fire", limits={"fires": 2.0, "window_days": 365.0})
    assert run([day(3, confirmed_fires=1)], config=limits).forced_by == ()
    assert run([day(3, confirmed_fires=2)], config=limits).forced_by == ("confirmed_fire",)


def test_forcing_never_lowers_and_lists_every_condition_that_holds() -> None:
    hot = replace(
        QUIET,
        credit="blacklisted",
        open_major_hazards=3,
        overdue_hazards=5,
        hazards_found_365d=12,
        false_declarations_365d=2,
        supervision="high_risk",
        oldest_hazard_days=300,
        open_general_hazards=8,
        detectors_isolated=30,
        isolation_hours=30.0,
    )
    a = run([day(2, confirmed_fires=1, fault_open_min=1e5, isolated_min=1e6)], hot)
    assert a.score_level is Level.RED
    assert a.forced_by == ("confirmed_fire", "alarm_system_isolated", "blacklisted")
    mild = replace(CFG, forced=tuple(replace(f, level=Level.YELLOW) for f in CFG.forced))
    assert (
        run([day(2, confirmed_fires=1, fault_open_min=1e5, isolated_min=1e6)], hot, mild).level
        is Level.RED
    )


# --- levels ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (100.0, Level.RED),
        (40.0, Level.RED),
        (39.99, Level.ORANGE),
        (25.0, Level.ORANGE),
        (24.99, Level.YELLOW),
        (10.0, Level.YELLOW),
        (9.99, Level.BLUE),
        (0.0, Level.BLUE),
    ],
)
def test_level_cut_offs_at_their_boundaries(score: float, level: Level) -> None:
    assert (CFG.cutoffs.red, CFG.cutoffs.orange, CFG.cutoffs.yellow) == (40.0, 25.0, 10.0)
    assert CFG.cutoffs.level_of(score) is level


def test_cut_offs_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="0 < yellow < orange < red <= 100"):
        Cutoffs(red=30, orange=30, yellow=10)


@pytest.mark.parametrize(
    ("previous", "new", "rose"),
    [
        (None, Level.BLUE, False),  # a first score warns only above blue
        (None, Level.YELLOW, True),
        (None, "red", True),
        (Level.BLUE, Level.YELLOW, True),
        (Level.YELLOW, Level.RED, True),
        ("orange", "red", True),
        (Level.RED, Level.RED, False),
        (Level.BLUE, Level.BLUE, False),
        (Level.RED, Level.ORANGE, False),
        (Level.ORANGE, Level.BLUE, False),
    ],
)
def test_level_rose(previous: Level | str | None, new: Level | str, rose: bool) -> None:
    assert level_rose(previous, new) is rose


def test_compare_levels_orders_blue_yellow_orange_red() -> None:
    order = [Level.BLUE, Level.YELLOW, Level.ORANGE, Level.RED]
    for i, a in enumerate(order):
        for j, b in enumerate(order):
            assert compare_levels(a, b) == (i > j) - (i < j)
    assert compare_levels("red", Level.BLUE) == 1
    with pytest.raises(ValueError, match="unknown risk level 'purple'"):
        compare_levels("purple", "red")


# --- JSON and explanation -------------------------------------------------------------------


def test_json_round_trip_and_the_breakdown_column() -> None:
    rollups, state = _random_case(random.Random(3))
    a = run(rollups, replace(state, credit="blacklisted"))
    doc = json.loads(json.dumps(a.to_json()))
    assert RiskAssessment.from_json(doc) == a
    column = json.loads(json.dumps(a.breakdown_json()))
    assert [c["indicator"] for c in column] == [i.name for i in CFG.indicators]
    assert set(column[0]) >= {"indicator", "value", "unit", "weight", "points", "normalised"}
    assert round(sum(c["points"] for c in column), 2) == a.score
    row = {  # a risk_scores row as psycopg returns it: as_of a datetime, breakdown parsed
        "unit_id": UNIT,
        "as_of": AS_OF,
        "score": a.score,
        "level": a.level.value,
        "score_level": a.score_level.value,
        "forced_by": list(a.forced_by),
        "breakdown": column,
        "config_version": "risk-v1",
    }
    assert RiskAssessment.from_json(row) == a


def test_explain_names_the_level_the_forcing_and_the_largest_contributions() -> None:
    a = run([day(2, confirmed_fires=1)], replace(QUIET, open_major_hazards=2))
    text = explain(a)
    assert text.startswith("red (score 11.00, yellow by score; forced by confirmed_fire): ")
    assert "confirmed_fires 6.00/6 (1 fires)" in text
    assert "open_major_hazards 5.00/5 (2 hazards)" in text
    assert explain(run()) == "blue (score 0.00, blue by score)"
    assert [c.indicator for c in a.top(1)] == ["confirmed_fires"]


def test_forced_config_records_are_plain() -> None:
    f = CFG.forced[0]
    assert isinstance(f, ForcedConfig)
    assert f.name == "confirmed_fire"
    assert dict(f.limits) == {"fires": 1.0, "window_days": 365.0}
