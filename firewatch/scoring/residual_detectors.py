"""Detectors that read the leading predictor's standardised residuals, and the stuck-value
run length: the raw statistics of the ``shift``, ``var_up``/``var_down`` and ``stuck``
components, each with its textbook prior surprise (``-log10 p`` under the null model).

* :class:`ShiftCusum` - two-sided CUSUM of the clipped residuals (level shifts).
* :class:`VarianceRatio` - log of the mean |z| over a short window against its long-run
  mean (noise bursts, variance collapse).
* :class:`StuckRun` - length of the current run of identical values (frozen sensors), with a
  prior from the series' own tie rate and past run lengths.

Each sees one value at a time and keeps O(1) or a short window of state.
"""

from __future__ import annotations

import math
from collections import deque

from firewatch.scoring.baseline import CUSUM_CAP, CUSUM_CLIP, CUSUM_K, PRIOR_PER_CUSUM
from firewatch.scoring.streaming_stats import gaussian_surprise

VAR_WINDOW = 32  # short window of the variance detector
_VAR_SD = 0.76 / math.sqrt(VAR_WINDOW)  # sd of log(mean |z|) over the window for N(0, 1)
_VAR_EPS = 0.05
_VAR_CLIP = 5.0  # |z| counts at most this much (one spike is the point detector's)
_VAR_LONG = 256.0  # time constant of the long-run mean |z|
_LN10 = math.log(10.0)


class ShiftCusum:
    """Two-sided CUSUM of standardised residuals: each step clipped to +-``CUSUM_CLIP``,
    reference value ``CUSUM_K``, capped at ``CUSUM_CAP``. ``length`` counts the points since
    the CUSUM last left zero (the change-point estimate used to re-anchor after an alarm)."""

    __slots__ = ("length", "neg", "pos")

    def __init__(self) -> None:
        self.pos = self.neg = 0.0
        self.length = 0

    def update(self, z: float) -> float:
        """Add a residual; returns the statistic (the larger of the two sides)."""
        zc = -CUSUM_CLIP if z < -CUSUM_CLIP else (CUSUM_CLIP if z > CUSUM_CLIP else z)
        self.pos = min(CUSUM_CAP, max(0.0, self.pos + zc - CUSUM_K))
        self.neg = min(CUSUM_CAP, max(0.0, self.neg - zc - CUSUM_K))
        h = self.pos if self.pos > self.neg else self.neg
        self.length = self.length + 1 if h > 0.0 else 0
        return h

    def reset(self) -> None:
        self.pos = self.neg = 0.0
        self.length = 0

    @staticmethod
    def prior(h: float) -> float:
        """``P(CUSUM > h) ~ exp(-2 k h)`` for independent unit-variance residuals."""
        return h * PRIOR_PER_CUSUM


class VarianceRatio:
    """``log((mean |z| over the last VAR_WINDOW + eps) / (long-run mean + eps))``: positive
    when the noise grows, negative when it collapses; 0 until the window is full."""

    __slots__ = ("_long", "_short", "_sum")

    def __init__(self) -> None:
        self._short: deque[float] = deque(maxlen=VAR_WINDOW)
        self._sum = 0.0
        self._long = -1.0  # set from the first full window

    def update(self, z: float) -> float:
        a = abs(z)
        a = a if a < _VAR_CLIP else _VAR_CLIP
        short = self._short
        if len(short) == VAR_WINDOW:
            self._sum -= short[0]
        short.append(a)
        self._sum += a
        if len(short) < VAR_WINDOW:
            return 0.0
        v = self._sum / VAR_WINDOW
        if self._long < 0.0:
            self._long = v
        lr = math.log((v + _VAR_EPS) / (self._long + _VAR_EPS))
        self._long += (v - self._long) / _VAR_LONG
        return lr

    def reset(self) -> None:
        self._short.clear()
        self._sum = 0.0
        self._long = -1.0

    @staticmethod
    def prior(ratio: float) -> float:
        """One-sided Gaussian surprise of ``|ratio|`` for the sampling distribution of the
        log of a 32-point mean |z| of standard-normal residuals."""
        return gaussian_surprise(ratio / _VAR_SD, two_sided=False)


class StuckRun:
    """Length of the current run of identical values, with the series' tie statistics.

    ``observe(same)`` is called once per valid value after the first (``same``: equal to
    the previous one) and returns the run length including the new value; the prior of a run
    is the smaller of "independent ties at the observed tie rate" and "an exponential run
    length with the length-weighted mean of the finished runs"."""

    __slots__ = ("_extra", "_extra_sq", "_pairs", "_run", "_ties")

    def __init__(self) -> None:
        self._run = 1
        self._ties = 0
        self._pairs = 0
        # finished runs of equal values: sums of e and e^2 for e = length - 1
        self._extra = 0
        self._extra_sq = 0

    def observe(self, same: bool) -> int:
        self._pairs += 1
        if same:
            self._ties += 1
            self._run += 1
        else:
            if self._run > 1:
                self._extra += self._run - 1
                self._extra_sq += (self._run - 1) ** 2
            self._run = 1
        return self._run

    def prior(self, run: float) -> float:
        # repeats as independent ties, or (exponentially) runs as long as the finished
        # ones, averaged over their points (long runs weigh more)
        p_tie = (self._ties + 1.0) / (self._pairs + 2.0)
        mean_run = (self._extra_sq + 1.0) / (self._extra + 1.0)
        return (run - 1.0) * min(-math.log10(p_tie), 1.0 / (mean_run * _LN10))
