"""The one-step forecasts the residual-based components read.

Each predictor has ``predict() -> float | None`` (``None`` until it has enough history),
``observe(x)`` and ``reset(recent)`` (restart its level from the last few values after a
confirmed change). :func:`robust_scale` turns a window of absolute residuals into a scale.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from firewatch.scoring.baseline import Baseline
from firewatch.scoring.streaming_stats import RollingQuantile

_Q90_SIGMA = 0.6079  # sigma / 90th percentile of |error| for Gaussian errors
_TAIL_EXCESS = 1.5  # how much heavier than Gaussian the 90th percentile may be


def median_of(values: list[float]) -> float:
    s = sorted(values)
    m = len(s) // 2
    return s[m] if len(s) % 2 else 0.5 * (s[m - 1] + s[m])


class Naive:
    """Last value (random-walk and smooth signals)."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: float | None = None

    def predict(self) -> float | None:
        return self.last

    def observe(self, x: float) -> None:
        self.last = x

    def reset(self, recent: Sequence[float]) -> None:
        pass


class Trend:
    """Last value plus the median of the last three steps (smooth trending signals)."""

    __slots__ = ("last", "steps")

    def __init__(self) -> None:
        self.last: float | None = None
        self.steps: deque[float] = deque(maxlen=3)

    def predict(self) -> float | None:
        if self.last is None or len(self.steps) < 3:
            return None
        return self.last + median_of(list(self.steps))

    def observe(self, x: float) -> None:
        if self.last is not None:
            self.steps.append(x - self.last)
        self.last = x

    def reset(self, recent: Sequence[float]) -> None:
        pass


class Median:
    """Median (``w`` <= 16) or interquartile mean of the last ``w`` values (a noisy level)."""

    __slots__ = ("w", "window")

    def __init__(self, w: int) -> None:
        self.w = w
        self.window = RollingQuantile(w)

    def predict(self) -> float | None:
        if len(self.window.sorted) < 3:
            return None
        return self.window.median() if self.w <= 16 else self.window.midmean()

    def observe(self, x: float) -> None:
        self.window.add(x)

    def reset(self, recent: Sequence[float]) -> None:
        self.window.reseed(recent[-self.w :])


class Seasonal:
    """Cycle level + the median deviation of this phase over the last cycles + a bias.

    ``level`` is the median of the last ``period`` values (one cycle) and ``d`` the deviation
    of each value from the level at its time. The prediction is the current level plus the
    median deviation at this phase over the last ``cycles`` cycles (one odd cycle is outvoted),
    plus the median of the last few prediction errors, a fast correction for level changes the
    one-cycle median has not followed yet. ``baseline`` follows the de-seasonalised signal
    ``x - deviation`` for the drift and level detectors.
    """

    __slots__ = (
        "_base",
        "baseline",
        "bias",
        "cycles",
        "d",
        "dev",
        "level",
        "n",
        "period",
        "recent_e",
    )

    def __init__(self, period: int, cycles: int = 5, bias: int = 15) -> None:
        self.period = period
        self.cycles = cycles
        self.level = RollingQuantile(period)
        self.d: list[float] = [0.0] * (period * cycles)
        self.n = 0
        self.bias = RollingQuantile(bias)
        self.recent_e: deque[float] = deque(maxlen=bias)
        self.baseline = Baseline()
        self.dev: float | None = None  # seasonal deviation expected for the coming value
        self._base: float | None = None

    def predict(self) -> float | None:
        p, n = self.period, self.n
        self._base = self.dev = None
        if n < 2 * p:  # deviations are trustworthy once the level window spans a cycle
            return None
        cap = len(self.d)
        dev = median_of(
            [self.d[(n - k * p) % cap] for k in range(1, self.cycles + 1) if n - k * p >= p]
        )
        base = self.level.median() + dev
        self.dev, self._base = dev, base
        return base + self.bias.median() if len(self.bias) else base

    def observe(self, x: float) -> None:
        lvl = self.level.median() if len(self.level) else x
        self.d[self.n % len(self.d)] = x - lvl
        if self._base is not None:
            e = x - self._base
            self.bias.add(e)
            self.recent_e.append(e)
        if self.dev is not None:
            self.baseline.add(x - self.dev)
        self._base = self.dev = None
        self.level.add(x)
        self.n += 1

    def reset(self, recent: Sequence[float]) -> None:
        self.bias.reseed(list(self.recent_e)[-len(recent) :])


Predictor = Naive | Trend | Median | Seasonal

#: predictor indices: last value, local trend, median of 8, interquartile mean of 64,
#: seasonal, mean(median of 8, seasonal)
NAIVE, TREND, MED8, MED64, SEASONAL, COMBO = range(6)


def robust_scale(window: RollingQuantile) -> float:
    """Scale of residuals from their absolute values: the MAD estimate (x 1.4826); when over
    half the residuals are exactly zero (quantised or often-constant series) the 75th, 90th,
    then 99th percentile stands in, each scaled to equal sigma for Gaussian residuals."""
    s = window.sorted
    n = len(s)
    m = s[n // 2]
    if m > 0.0:
        return m * 1.4826
    q = s[int(0.75 * (n - 1) + 0.5)]
    if q > 0.0:
        return q * 0.8694
    q = s[int(0.9 * (n - 1) + 0.5)]
    return q * 0.6079 if q > 0.0 else s[int(0.99 * (n - 1) + 0.5)] * 0.3882


def selection_scale(window: RollingQuantile) -> float:
    """A residual scale for choosing the leading predictor: the robust scale, unless the 90th
    percentile of absolute residuals is more than 1.5 times what Gaussian errors of that
    scale would give - a forecast that fits most points and misses the rest (the flat part of
    a pulse train, not the pulses) - in which case that percentile, scaled to sigma, counts."""
    q90 = window.sorted[int(0.9 * (len(window.sorted) - 1) + 0.5)] * _Q90_SIGMA / _TAIL_EXCESS
    s = robust_scale(window)
    return s if s > q90 else q90


def dispersion(window: RollingQuantile) -> float:
    """90th percentile over median of a window of absolute residuals (inf if the median is
    0): about 2.4 for Gaussian residuals, larger for a mixture of scales."""
    q50 = window.quantile(0.5)
    return window.quantile(0.9) / q50 if q50 > 0.0 else math.inf
