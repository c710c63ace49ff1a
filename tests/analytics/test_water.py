"""Fire-water detectors (firewatch/analytics/water.py, statistical.py) on crafted series whose
right answer is known: threshold rules with hysteresis and escalation, sudden drops, slow
leaks caught by the seasonal shift before the minimum is crossed, frozen sensors (and
quantised ones that are not), tank level, pump-room temperature, jockey short cycling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from firewatch.analytics import checkpoint
from firewatch.analytics.water import WaterDetectors
from firewatch.core.anomalies import Anomaly, Origin
from firewatch.core.domain import Severity
from firewatch.core.rows import TelemetryRow
from tests.builders.detection import frame, of, profile, profiles, series, unit_of
from tests.builders.rows import DAY, HOUR, MIN, T0, water_row

W = "W1"
F64 = npt.NDArray[np.float64]


def run(rows: Sequence[TelemetryRow], chunk: int = 60) -> list[Anomaly]:
    """The rows through fresh water detectors in batches of ``chunk`` rows."""
    ps = profiles(profile(W, min_kpa=100.0, design_kpa=600.0, tank_low_m=1.0))
    det = WaterDetectors(ps, unit_of(ps))
    out: list[Anomaly] = []
    for i in range(0, len(rows), chunk):
        out += det.process(frame(rows[i : i + chunk]))
    return out


def minutes(values: Sequence[float], start: float = T0) -> list[tuple[float, float]]:
    return [(start + i * MIN, float(v)) for i, v in enumerate(values)]


def daily_pressure(n: int, seed: int = 1) -> tuple[F64, F64]:
    """``n`` one-minute readings around 350 kPa with a ±15 kPa daily cycle and noise."""
    rng = np.random.default_rng(seed)
    t: F64 = T0 + np.arange(n, dtype=np.float64) * MIN
    v: F64 = np.round(350 + 15 * np.sin(2 * np.pi * (t - T0) / DAY) + rng.normal(0, 1.5, n), 1)
    return t, v


def rows_of(
    t: npt.NDArray[Any], v: npt.NDArray[Any], field: str = "pressure"
) -> list[TelemetryRow]:
    return series(W, zip(t.tolist(), v.tolist(), strict=True), field)


# -- rules ------------------------------------------------------------------------------


def test_low_pressure_opens_escalates_and_closes() -> None:
    #        0    1    2    3   4    5    6   7   8   9  10   11   12   13
    vals = [350, 350, 350, 80, 350, 350, 80, 80, 80, 40, 40, 350, 350, 350]
    out = run(series(W, minutes(vals)), chunk=1)
    low = of(out, "rule.pressure_low")
    # the single point below (3) opens nothing; 6 and 7 do (min_hits 2)
    assert [a.revision for a in low] == [1, 2, 3]
    opened, escalated, closed = low
    assert opened.kind == "low_pressure"
    assert opened.severity is Severity.HIGH
    assert opened.origin is Origin.INFERRED
    assert opened.started_at == T0 + 6 * MIN
    assert opened.detected_at == T0 + 7 * MIN
    assert opened.ended_at is None
    assert opened.unit_id == "U-1"
    assert opened.explanation == (
        "pressure 80.0 kPa, below the 100 kPa minimum for this building for 60 s"
    )
    # below half the minimum: critical, as a new revision of the same episode
    assert escalated.key == opened.key
    assert escalated.severity is Severity.CRITICAL
    assert "40.0 kPa" in escalated.explanation
    assert "3 min" in escalated.explanation
    assert escalated.ended_at is None
    # three normal points close it, at the third
    assert closed.key == opened.key
    assert closed.ended_at == T0 + 13 * MIN
    assert {a.detector for a in out} == {"rule.pressure_low"}


def test_one_point_below_the_minimum_opens_nothing() -> None:
    vals = [350, 350, 80, 350, 350, 80, 350, 80, 350]
    assert run(series(W, minutes(vals)), chunk=1) == []


def test_over_pressure() -> None:
    vals = [350, 350, 700, 350, 700, 710, 350, 350, 350]
    out = run(series(W, minutes(vals)))
    high = of(out, "rule.pressure_high")
    assert [a.revision for a in high] == [1, 2]
    assert high[0].kind == "over_pressure"
    assert high[0].severity is Severity.MEDIUM
    assert high[0].started_at == T0 + 4 * MIN
    assert "above the 600 kPa design pressure" in high[0].explanation
    assert high[1].ended_at == T0 + 8 * MIN
    assert {a.detector for a in out} == {"rule.pressure_high"}


def test_tank_level_low() -> None:
    vals = [3.0, 3.0, 0.8, 3.0, 0.8, 0.7, 0.7, 3.0, 3.0, 3.0]
    out = run(series(W, minutes(vals), "level"))
    low = of(out, "rule.level_low")
    assert [a.revision for a in low] == [1, 2]
    assert low[0].kind == "low_tank_level"
    assert low[0].metric == "level_m"
    assert low[0].severity is Severity.HIGH
    assert (low[0].started_at, low[0].detected_at) == (T0 + 4 * MIN, T0 + 5 * MIN)
    assert low[0].explanation.startswith("tank level 0.70 m, below the 1 m fire-reserve level")
    assert low[1].ended_at == T0 + 9 * MIN
    assert {a.detector for a in out} == {"rule.level_low"}


def test_pump_room_cold() -> None:
    vals = [12.0, 11.5, 5.0, 5.1, 4.8, 4.2, 4.0, 6.0, 7.0, 8.0]
    out = run(series(W, minutes(vals), "room"))
    cold = of(out, "rule.room_cold")
    assert [a.revision for a in cold] == [1, 2]  # 5.0 °C itself is not below 5 °C
    assert cold[0].kind == "pump_room_cold"
    assert cold[0].severity is Severity.HIGH
    assert (cold[0].started_at, cold[0].detected_at) == (T0 + 4 * MIN, T0 + 5 * MIN)
    assert "4.2 °C, below the 5 °C minimum" in cold[0].explanation
    assert cold[1].ended_at == T0 + 9 * MIN
    assert {a.detector for a in out} == {"rule.room_cold"}


# -- statistics ---------------------------------------------------------------------------


def test_sudden_drop_after_warm_up() -> None:
    n = 2 * 1440
    t, v = daily_pressure(n + 40)
    v[n:] = np.round(v[n:] * 0.4, 1)  # a burst: 60 % down, still above the 100 kPa minimum
    out = run(rows_of(t, v))
    before = [a for a in out if a.started_at < t[n]]
    assert before == []
    drop = of(out, "stat.drop")
    assert drop, [a.detector for a in out]
    first = drop[0]
    assert first.kind == "sudden_drop"
    assert first.severity is Severity.CRITICAL
    # confirmed by the next reading: opened one reading after the fall, dated from it
    assert (first.started_at, first.detected_at) == (t[n], t[n + 1])
    assert "fell suddenly" in first.explanation
    assert "% drop" in first.explanation
    assert 55 <= 100 * (1 - first.evidence["value"] / first.evidence["before"]) <= 65
    assert of(out, "rule.pressure_low") == []


def test_single_reading_glitches_are_not_drops() -> None:
    """One reading far down (a 0 read, 40-80 % low) and the next back to normal: a sensor
    glitch, not a burst pipe. Nor does it teach the drop detector a larger usual step: a
    real burst right after the glitches is still caught at its second reading."""
    n = 2 * 1440
    t, v = daily_pressure(n + 400)
    plain = run(rows_of(t, v))
    assert plain == []
    glitched = v.copy()
    glitches = list(range(n + 10, n + 300, 15))
    for i, g in enumerate(glitches):
        glitched[g] = 0.0 if i % 3 == 0 else round(v[g] * (0.2 + 0.1 * (i % 5)), 1)
    out = run(rows_of(t, glitched))
    assert of(out, "stat.drop") == [], [a.explanation for a in out]
    burst = glitched.copy()
    burst[n + 320 :] = np.round(v[n + 320 :] * 0.5, 1)
    drop = of(run(rows_of(t, burst)), "stat.drop")
    assert drop
    assert (drop[0].started_at, drop[0].detected_at) == (t[n + 320], t[n + 321])


def test_drop_pending_across_a_checkpoint_is_the_same() -> None:
    """A drop waiting for its confirmation (the tracker's hit count, the held level) is in
    the checkpoint: a restore between the fall and the next reading changes nothing."""
    n = 2 * 1440
    t, v = daily_pressure(n + 40)
    v[n - 20] = 0.0  # a glitch
    v[n:] = np.round(v[n:] * 0.4, 1)  # and a burst
    rows = rows_of(t, v)
    ps = profiles(profile(W, min_kpa=100.0, design_kpa=600.0, tank_low_m=1.0))
    whole = WaterDetectors(ps, unit_of(ps)).process(frame(rows))
    assert min(a.started_at for a in whole) == of(whole, "stat.drop")[0].started_at == t[n]
    for cut in (n - 19, n + 1):
        first = WaterDetectors(ps, unit_of(ps))
        out = first.process(frame(rows[:cut]))
        again = WaterDetectors(ps, unit_of(ps))
        again.restore(checkpoint.unpack(checkpoint.pack(first.state())))
        out += again.process(frame(rows[cut:]))
        assert out == whole


def test_drop_before_warm_up_is_not_judged() -> None:
    t, v = daily_pressure(200)
    v[150:] = np.round(v[150:] * 0.4, 1)
    assert of(run(rows_of(t, v)), "stat.drop") == []


@pytest.fixture(scope="module")
def leak_and_normal() -> tuple[F64, F64, list[Anomaly], list[Anomaly]]:
    n, tail = int(2.5 * 1440), 10 * 60
    t, v = daily_pressure(n + tail, seed=4)
    normal = run(rows_of(t, v))
    leak = v.copy()
    leak[n:] = np.round(v[n:] - 30.0 * np.arange(tail) / 60, 1)  # −30 kPa/h
    return t, leak, normal, run(rows_of(t, leak))


def test_slow_leak_shifts_before_the_minimum(
    leak_and_normal: tuple[F64, F64, list[Anomaly], list[Anomaly]],
) -> None:
    t, v, _, out = leak_and_normal
    leak_start = t[int(2.5 * 1440)]
    assert [a for a in out if a.started_at < leak_start] == []
    shift = of(out, "stat.shift")
    assert shift
    first = shift[0]
    assert first.kind == "pressure_deviation"
    assert first.metric == "pressure_kpa"
    assert first.severity is Severity.MEDIUM
    assert "below its usual" in first.explanation
    crossed = float(t[np.flatnonzero(v < 100.0)[0]])
    assert first.detected_at < crossed - 4 * HOUR  # hours before the rule would fire
    assert first.detected_at - leak_start < 2 * HOUR
    # the rule fires too, later, once the minimum is crossed
    low = of(out, "rule.pressure_low")
    assert low
    assert low[0].detected_at >= crossed


def test_normal_daily_series_raises_nothing(
    leak_and_normal: tuple[F64, F64, list[Anomaly], list[Anomaly]],
) -> None:
    assert leak_and_normal[2] == []


def test_frozen_sensor_is_stuck_after_warm_up() -> None:
    rng = np.random.default_rng(3)
    n = 400
    t = T0 + np.arange(n) * MIN
    v = np.round(350 + rng.normal(0, 1.5, n), 1)
    v[300:340] = v[299]  # frozen at the last good value
    out = run(rows_of(t, v))
    stuck = of(out, "stat.stuck")
    assert {a.detector for a in out} == {"stat.stuck"}
    first, last = stuck[0], stuck[-1]
    assert first.kind == "stuck_sensor"
    assert first.severity is Severity.MEDIUM
    assert t[300] <= first.started_at <= t[315]  # within a quarter of an hour
    assert first.explanation.startswith(f"pressure frozen at {v[299]:.1f} kPa for ")
    assert last.key == first.key
    assert last.ended_at == t[341]  # the second point that moves again (clear_hits 2)


def test_frozen_sensor_before_warm_up_is_not_judged() -> None:
    rng = np.random.default_rng(3)
    t = T0 + np.arange(200) * MIN
    v = np.round(350 + rng.normal(0, 1.5, 200), 1)
    v[100:160] = v[99]
    assert run(rows_of(t, v)) == []


def test_quantised_slow_series_is_not_stuck() -> None:
    # pump-room temperature at 0.1 °C resolution moving slowly: most readings repeat the
    # previous one (runs of over an hour near the daily extremes) for three days
    t = T0 + np.arange(3 * 1440) * MIN
    v = np.round(15 + 2 * np.sin(2 * np.pi * (t - T0) / DAY), 1)
    assert np.mean(v[1:] == v[:-1]) > 0.9
    out = run(rows_of(t, v, "room"))
    assert out == []


def test_jockey_short_cycling() -> None:
    history = 2 * 1440
    rows = []
    for i in range(history + 240):
        period = 30 if i < history else 7  # 2 starts an hour, then about 8 (×4)
        rows.append(water_row(W, T0 + i * MIN, jockey=i % period == 0, seq=i + 1))
    out = run(rows)
    assert [a for a in out if a.started_at < T0 + history * MIN] == []
    cyc = of(out, "stat.jockey_cycling")
    assert cyc
    assert {a.detector for a in out} == {"stat.jockey_cycling"}
    first = cyc[0]
    assert first.kind == "jockey_short_cycling"
    assert first.metric == "jockey_running"
    assert first.severity is Severity.MEDIUM
    onset = T0 + history * MIN
    assert onset < first.started_at < first.detected_at <= onset + HOUR
    assert first.detected_at - first.started_at >= 900.0  # held for 15 min
    assert "possible leak" in first.explanation
    assert first.evidence["starts_per_h"] > 2.5 * first.evidence["usual_per_h"]


def test_normal_jockey_history_raises_nothing() -> None:
    rows = [water_row(W, T0 + i * MIN, jockey=i % 30 < 2, seq=i + 1) for i in range(2000)]
    assert run(rows) == []
