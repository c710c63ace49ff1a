"""The windowed-Gaussian reference scorer: causal, one alert per event, missing values."""

from __future__ import annotations

import numpy as np

from firewatch.lab.gaussian_baseline import (
    MIN_HISTORY,
    REFRACTORY,
    TAIL,
    score_series_gaussian,
)


def _noise(n: int, seed: int = 0) -> list[float | None]:
    return [float(v) for v in np.random.default_rng(seed).normal(0.0, 1.0, n)]


def test_scores_use_no_future_points() -> None:
    values = _noise(600)
    stamps = [float(i) for i in range(600)]
    full = score_series_gaussian(stamps, values)
    head = score_series_gaussian(stamps[:300], values[:300])
    assert full.scores[:300] == head.scores
    assert full.flags[:300] == head.flags


def test_a_large_spike_gives_one_alert_and_a_damped_tail() -> None:
    values = _noise(600)
    values[400] = 40.0
    result = score_series_gaussian([float(i) for i in range(600)], values)
    assert result.flags[400] == 1
    assert sum(result.flags[401 : 401 + REFRACTORY]) == 0
    assert all(s < 0.5 for s in result.scores[401 : 401 + REFRACTORY])
    assert all(s >= 0.0 for s in result.scores)
    assert all(s <= 1.0 for s in result.scores)


def test_warmup_missing_values_and_input_order() -> None:
    values = _noise(200)
    values[150] = None
    stamps = [float(i) for i in range(200)]
    result = score_series_gaussian(stamps, values)
    assert result.scores[: MIN_HISTORY + TAIL - 1] == [0.0] * (MIN_HISTORY + TAIL - 1)
    assert (result.scores[150], result.flags[150]) == (0.0, 0)
    # shuffled input: scored in time order, returned in input order
    order = list(np.random.default_rng(1).permutation(200))
    shuffled = score_series_gaussian([stamps[i] for i in order], [values[i] for i in order])
    assert [shuffled.scores[order.index(i)] for i in range(200)] == result.scores


def test_a_constant_series_never_alerts() -> None:
    result = score_series_gaussian([float(i) for i in range(300)], [5.0] * 300)
    assert sum(result.flags) == 0
