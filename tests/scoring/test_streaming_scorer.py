"""The ensemble scorer of issue 16: what the new components catch, what they must not flag,
and the streaming contract with all of them active (irregular timestamps, missing values).

Each detection test would fail without the piece it names (checked by disabling it while
developing): the ``shape`` detector, the ``distribution`` detector, the earlier trust in the
point calibration (short series) and the time-scaled residuals (irregular sampling).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from firewatch.scoring.scorer import COMPONENTS, StreamingScorer, score_series

T0 = 1_700_000_000.0
STEP = 60.0
_SHAPE = COMPONENTS.index("shape")
_DIST = COMPONENTS.index("distribution")


def _times(n: int) -> list[float]:
    return [T0 + STEP * i for i in range(n)]


def _pulse_train(n: int, seed: int, odd_beat: list[float] | None = None) -> tuple[np.ndarray, int]:
    """ECG-like beats of five samples every 20-30 samples (a variable beat interval, so no
    fixed period), small noise; ``odd_beat`` replaces the first beat after sample 3000.
    Returns the series and the odd beat's first sample (``n`` when there is none)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.08, n)
    pos, onset = 5, n
    while pos + 10 < n:
        beat = [1.5, 6.5, -1.5, -0.8, 0.6]
        if odd_beat is not None and onset == n and pos >= 3000:
            beat, onset = odd_beat, pos
        x[pos : pos + 5] += beat
        pos += int(rng.integers(20, 31))
    return x, onset


def _bursty_counts(n: int, seed: int, change_at: int | None = None) -> np.ndarray:
    """Request counts: Poisson(3), with 5 % of intervals in a burst (Poisson(30)); from
    ``change_at`` on, 30 % of 300 intervals are bursts."""
    rng = np.random.default_rng(seed)
    burst = rng.random(n) < 0.05
    if change_at is not None:
        burst[change_at : change_at + 300] = rng.random(300) < 0.3
    return rng.poisson(np.where(burst, 30.0, 3.0)).astype(float)


def _irregular_times(n: int, seed: int) -> np.ndarray:
    """Exponential sampling intervals (mean 61 s, at least 1 s)."""
    return T0 + np.cumsum(np.random.default_rng(seed).exponential(60.0, n) + 1.0)


def _flags(ts: list[float], x: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.array(score_series(ts, x.tolist()).flags))


def _first_detection(ts: list[float], x: np.ndarray, onset: int, within: int) -> int:
    flags = _flags(ts, x)
    assert not flags[flags < onset].tolist(), "false alarms before the anomaly"
    hits = flags[(flags >= onset) & (flags < onset + within)]
    assert hits.size, f"not detected within {within} points"
    return int(hits[0] - onset)


# --- detection -------------------------------------------------------------------------------
def test_a_wrong_shaped_beat_is_found_by_the_shape_detector() -> None:
    """Peak last instead of first: every value is in range, the beat interval varies (no
    seasonal model), so only the shape of the subsequence is new."""
    x, onset = _pulse_train(4000, seed=0, odd_beat=[0.6, -0.8, -1.5, 6.5, 1.5])
    assert _first_detection(_times(len(x)), x, onset, 10) <= 5
    scorer = StreamingScorer()
    shape = []
    for t, v in zip(_times(len(x)), x.tolist(), strict=True):
        scorer.update(t, v)
        shape.append(scorer.last_surprises[_SHAPE])
    assert max(shape[onset : onset + 20]) > 10.0 > max(shape[:onset])


def test_more_frequent_bursts_are_found_by_the_distribution_detector() -> None:
    x = _bursty_counts(3000, seed=2, change_at=2200)
    assert _first_detection(_times(len(x)), x, 2200, 150) <= 100


def test_a_short_series_alerts_on_one_clear_anomaly() -> None:
    for seed in (0, 2):
        x = 5.0 + np.random.default_rng(seed).normal(0.0, 1.0, 150)
        x[110] += 12.0
        assert _first_detection(_times(len(x)), x, 110, 5) == 0


def test_a_jump_between_close_samples_of_an_irregular_random_walk() -> None:
    """Residuals of the last-value forecast are per square root of elapsed time: a jump of
    2.5 sd (of a median interval's step) within 3 s is extreme, over a minute it is not."""
    n = 2000
    ts = _irregular_times(n, seed=0)
    dt = np.diff(ts, prepend=ts[0] - STEP)
    steps = np.random.default_rng(100).normal(0.0, 1.0, n) * np.sqrt(dt / STEP)
    onset = next(i for i in range(1500, 1900) if dt[i] < 3.0)
    steps[onset] += 2.5
    assert _first_detection(ts.tolist(), np.cumsum(steps), onset, 3) == 0


# --- no alarms on clean series of the new kinds ----------------------------------------------
def test_no_alarms_on_a_clean_pulse_train() -> None:
    for seed in (0, 1):
        x, _ = _pulse_train(4000, seed=seed)
        assert _flags(_times(len(x)), x).size == 0


@pytest.mark.parametrize("kind", ["counts", "bounded_bursts", "lognormal"])
def test_no_alarms_on_clean_bursty_series(kind: str) -> None:
    n = 4000
    rng = np.random.default_rng(21)
    if kind == "counts":
        x = _bursty_counts(n, seed=21)
    elif kind == "bounded_bursts":  # CPU-like: gamma noise with bursts of 30-60 on top
        x = rng.gamma(2.0, 5.0, n) + (rng.random(n) < 0.03) * rng.uniform(30.0, 60.0, n)
    else:
        x = rng.lognormal(3.0, 0.6, n)
    assert _flags(_times(n), x).size == 0


@pytest.mark.parametrize("kind", ["noise", "random_walk"])
def test_no_alarms_on_clean_irregularly_sampled_series(kind: str) -> None:
    n = 4000
    ts = _irregular_times(n, seed=22)
    rng = np.random.default_rng(22)
    if kind == "noise":
        x = 20.0 + rng.normal(0.0, 1.0, n)
    else:
        dt = np.diff(ts, prepend=ts[0] - STEP)
        x = np.cumsum(rng.normal(0.0, 1.0, n) * np.sqrt(dt / STEP))
    assert _flags(ts.tolist(), x).size == 0


# --- the contract with every component active ------------------------------------------------
def test_no_look_ahead_with_all_components_irregular_times_and_missing_values() -> None:
    x, _ = _pulse_train(3000, seed=3)
    x[2500:2520] += np.random.default_rng(3).normal(0.0, 2.0, 20)
    rng = np.random.default_rng(4)
    ts = (T0 + np.cumsum(rng.uniform(30.0, 90.0, x.size))).tolist()
    ts[1200] = ts[1199]  # a duplicate timestamp
    values: list[float | None] = x.tolist()
    for i in (40, 900, 901, 2100):
        values[i] = None
    values[1700] = math.nan
    full = score_series(ts, values)
    # every component has spoken before the end (so the prefixes below exercise them)
    scorer = StreamingScorer()
    spoke = [0.0] * len(COMPONENTS)
    for t, v in zip(ts, values, strict=True):
        scorer.update(t, v)
        spoke = [max(a, b) for a, b in zip(spoke, scorer.last_surprises, strict=True)]
    assert spoke[_SHAPE] > 0.0
    assert spoke[_DIST] > 0.0
    for k in (700, 1201, 2099, 2510, 2999):
        prefix = score_series(ts[:k], values[:k])
        assert prefix.scores == full.scores[:k]
        assert prefix.flags == full.flags[:k]
