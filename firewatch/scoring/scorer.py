"""Offline and streaming anomaly scoring of any univariate series (issue 4).

``StreamingScorer.update(t, x)`` scores one point using only the points before it;
``score_series`` runs it over a whole series (sorted by time), and ``score_csv`` is the
``firewatch analytics score`` command's file-to-file form. The method is described in
``docs/analytics-score.md``; in short, several self-scaling detectors (point residual against
the best of a few predictors including a seasonal one, CUSUM for shifts and drifts, variance
up/down, stuck values, out-of-range level) each produce a raw statistic that is calibrated
against its own history into a surprise ``-log10 p``; the surprises are combined and squashed
into ``anomaly_score`` in [0, 1].
"""

from __future__ import annotations

import csv
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from firewatch.scoring.streaming_stats import (
    RollingQuantile,
    TailCalibrator,
    detect_period,
    gaussian_surprise,
)

__all__ = [
    "COMPONENTS",
    "ScoreResult",
    "SeriesFileError",
    "StreamingScorer",
    "parse_timestamp",
    "read_series_csv",
    "score_csv",
    "score_series",
]

#: Names of the detector components, in the order of ``StreamingScorer.last_surprises``.
COMPONENTS = ("point", "shift", "drift", "var_up", "var_down", "stuck", "level")
_POINT, _SHIFT, _DRIFT, _VAR_UP, _VAR_DOWN, _STUCK, _LEVEL = range(len(COMPONENTS))

_SCALE_WINDOW = 256  # residuals behind each predictor's robust scale
_CAL_WINDOW = 2000  # raw statistics behind each component's tail calibration
_CAL_DELAY = 100  # raw statistics join their calibration window this many points late
_LEVEL_WINDOW = 2000  # values behind the long-run level distribution
_REF_WINDOW = 256  # values behind the slow reference level of the drift detector
_HISTORY = 8192  # values kept for period estimation
_VAR_WINDOW = 32  # short window of the variance detector
_CUSUM_K = 0.5  # CUSUM reference value (detects mean changes of ~1 residual sd)
_CUSUM_CLIP = 4.0  # single points move a CUSUM by at most this (spikes are "point")
_CUSUM_CAP = 20.0  # CUSUMs saturate here (prior surprise 8.7): bounded for random walks
_CUSUM_MAX_SHAPE = 0.5  # tail shape allowed for CUSUM calibration (autocorrelated residuals)
_PEER_RATIO = 1.15  # predictors this close to the best one's scale also vote on points
_SHIFT_Z = 4.0  # |z| that counts towards a confirmed level shift ...
_SHIFT_RUN = 3  # ... when this many consecutive residuals agree in sign
_RESET_SURPRISE = 5.5  # CUSUM surprise that re-anchors what the CUSUM compares against
_S_HALF = 4.5  # combined surprise (-log10 p) mapped to a score of 0.5
_S_WIDTH = 0.75  # softness of that mapping
_SUPPRESS = 0.25  # factor on scores inside an alert's refractory period
_EXTEND = 8  # refractory extension while the score stays elevated
_MAX_SURPRISE = 60.0
_INV_SQRT12 = 1.0 / math.sqrt(12.0)
_MAX_ABS = 1e150  # larger magnitudes are treated as missing (their squares overflow)
_LOG10_C = math.log10(len(COMPONENTS))
_VAR_SD = 0.76 / math.sqrt(_VAR_WINDOW)  # sd of log(mean |z|) over the window for N(0, 1)
_VAR_EPS = 0.05
_LN10 = math.log(10.0)
_PRIOR_PER_CUSUM = 2.0 * _CUSUM_K / _LN10  # P(CUSUM > h) ~ exp(-2 k h)
#: natural cycles (seconds) a detected period snaps to when within 3 %: hour, day, week
_NATURAL_PERIODS = (3600.0, 86400.0, 604800.0)


def _median_of(values: list[float]) -> float:
    s = sorted(values)
    m = len(s) // 2
    return s[m] if len(s) % 2 else 0.5 * (s[m - 1] + s[m])


class _Baseline:
    """Slow view of a (possibly de-seasonalised) signal ``y`` and its two detectors: "drift",
    a CUSUM of ``y`` against a reference level (interquartile mean of the last 256 values),
    and "level", the distance of ``y`` from its long-run distribution (2000 values, lagging
    100 behind).
    Each baseline calibrates its own statistics, so switching between the raw and the
    de-seasonalised view never leaves a detector without history."""

    __slots__ = (
        "_cached",
        "_ref_level",
        "_spread",
        "cal_drift",
        "cal_level",
        "drift_len",
        "drift_neg",
        "drift_pos",
        "level",
        "pending",
        "recent",
        "ref",
    )

    def __init__(self) -> None:
        self.ref = RollingQuantile(_REF_WINDOW)
        self.level = RollingQuantile(_LEVEL_WINDOW)
        self.recent: deque[float] = deque(maxlen=64)
        self.pending: deque[float] = deque()  # values on their way into ``level``
        self.cal_drift = TailCalibrator(
            _CAL_WINDOW, min_scale=1.0, delay=_CAL_DELAY, max_shape=_CUSUM_MAX_SHAPE
        )
        self.cal_level = TailCalibrator(_CAL_WINDOW, min_scale=0.25, delay=_CAL_DELAY)
        self.drift_pos = self.drift_neg = 0.0
        self.drift_len = 0
        # reference level and spread move slowly: recomputed every 8 values
        self._cached = 0
        self._ref_level = 0.0
        self._spread = 0.0

    def add(self, y: float) -> None:
        self.ref.add(y)
        self.recent.append(y)
        # the long-run distribution lags like the calibrators: a developing excursion is
        # judged against what came before it, not against itself
        pending = self.pending
        pending.append(y)
        if len(pending) > min(_CAL_DELAY, len(self.level.sorted)):
            self.level.add(pending.popleft())

    def surprises(self, y: float, scale: float, floor: float) -> tuple[float, float]:
        """Drift and level surprises of ``y`` (judged before ``y`` joins the windows)."""
        self._cached -= 1
        if self._cached <= 0:
            self._cached = 8
            if self.ref.sorted:
                self._ref_level = self.ref.midmean()
            if len(self.level.sorted) >= 16:
                self._spread = self.spread()
        if len(self.ref.sorted) >= 16:
            z = (y - self._ref_level) / scale
            z = -_CUSUM_CLIP if z < -_CUSUM_CLIP else (_CUSUM_CLIP if z > _CUSUM_CLIP else z)
            self.drift_pos = min(_CUSUM_CAP, max(0.0, self.drift_pos + z - _CUSUM_K))
            self.drift_neg = min(_CUSUM_CAP, max(0.0, self.drift_neg - z - _CUSUM_K))
        h = max(self.drift_pos, self.drift_neg)
        self.drift_len = self.drift_len + 1 if h > 0.0 else 0
        s_drift = self.cal_drift.surprise(h)
        if s_drift > 1.0:
            s_drift = min(s_drift, h * _PRIOR_PER_CUSUM)
        self.cal_drift.add(h)
        if s_drift >= _RESET_SURPRISE:  # a change: the reference restarts after it
            n = max(3, min(self.drift_len, len(self.recent)))
            self.ref.reseed(list(self.recent)[-n:])
            self.drift_pos = self.drift_neg = 0.0
            self.drift_len = 0
            self._cached = 0

        zl = 0.0
        if len(self.level.sorted) >= 16:
            zl = abs(y - self.level.median()) / max(self._spread, floor)
        s_level = self.cal_level.surprise(zl)
        if s_level > 1.0:
            s_level = min(s_level, gaussian_surprise(zl), _MAX_SURPRISE)
        self.cal_level.add(zl)
        return s_drift, s_level

    def spread(self) -> float:
        """Spread of the long-run distribution for the level detector: the largest of the
        IQR-, 5-95 %- and 1-99 %-based estimates (each sigma for Gaussian data), so that a
        mostly constant series with regular excursions is not judged by its constant part."""
        lv = self.level
        return max(
            (lv.quantile(0.75) - lv.quantile(0.25)) / 1.349,
            (lv.quantile(0.95) - lv.quantile(0.05)) / 3.29,
            (lv.quantile(0.99) - lv.quantile(0.01)) / 4.653,
        )

    def iqr(self) -> float:
        """Interquartile range of the long-run distribution (unmoved by rare excursions)."""
        return self.level.quantile(0.75) - self.level.quantile(0.25)


class _Naive:
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


class _Trend:
    """Last value plus the median of the last three steps (smooth trending signals)."""

    __slots__ = ("last", "steps")

    def __init__(self) -> None:
        self.last: float | None = None
        self.steps: deque[float] = deque(maxlen=3)

    def predict(self) -> float | None:
        if self.last is None or len(self.steps) < 3:
            return None
        return self.last + _median_of(list(self.steps))

    def observe(self, x: float) -> None:
        if self.last is not None:
            self.steps.append(x - self.last)
        self.last = x

    def reset(self, recent: Sequence[float]) -> None:
        pass


class _Median:
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


class _Seasonal:
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
        self.baseline = _Baseline()
        self.dev: float | None = None  # seasonal deviation expected for the coming value
        self._base: float | None = None

    def predict(self) -> float | None:
        p, n = self.period, self.n
        self._base = self.dev = None
        if n < 2 * p:  # deviations are trustworthy once the level window spans a cycle
            return None
        cap = len(self.d)
        dev = _median_of(
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


_Predictor = _Naive | _Trend | _Median | _Seasonal

#: predictor indices: last value, local trend, median of 8, interquartile mean of 64,
#: seasonal, mean(median of 8, seasonal)
_NAIVE, _TREND, _MED8, _MED64, _SEASONAL, _COMBO = range(6)


def _combine(surprises: Sequence[float]) -> float:
    """One score in [0, 1]: the harmonic-mean p-value of the components (valid under
    dependence), as a surprise, through a logistic centred on _S_HALF."""
    top = max(surprises)
    total = top + math.log10(sum(10.0 ** (s - top) for s in surprises)) - _LOG10_C
    return 1.0 / (1.0 + math.exp(-(total - _S_HALF) / _S_WIDTH))


def _robust_scale(window: RollingQuantile) -> float:
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


def _to_seconds(t: datetime | float | None) -> float | None:
    if t is None:
        return None
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return t.timestamp()
    f = float(t)
    return f if math.isfinite(f) else None


class StreamingScorer:
    """Score a univariate series one point at a time; ``update`` never looks ahead.

    ``update(t, x)`` returns ``(anomaly_score, is_anomaly)`` for the new point. ``t`` is a
    datetime or a number (any unit: only ratios of intervals are used, except that a period
    within 3 % of an hour, a day or a week of seconds is snapped to it) and should not
    decrease; ``x`` may be ``None``/NaN/inf or beyond +-1e150 (missing: scored 0, state
    unchanged). Nothing needs
    tuning per series: every scale is learned from the series itself.

    ``threshold`` is the alert level on the score. After an alert, further alerts are held
    back for ``refractory`` points (extended while the score stays above half the threshold)
    and scores in that period are multiplied by 0.25, so one event gives one alert. The first
    ``warmup`` valid points are scored 0.
    """

    def __init__(self, threshold: float = 0.5, *, warmup: int = 64, refractory: int = 32) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self.warmup = warmup
        self.refractory = refractory
        self.step = 0  # points seen, valid or not
        self.valid = 0  # valid points seen
        #: surprise (-log10 p) of each component for the last scored point, see COMPONENTS
        self.last_surprises: tuple[float, ...] = (0.0,) * len(COMPONENTS)

        self._preds: list[_Predictor] = [_Naive(), _Trend(), _Median(8), _Median(64)]
        self._seasonal: _Seasonal | None = None  # also self._preds[_SEASONAL] when present
        #: residual scale windows, one per predictor (+ one for _COMBO with a seasonal model)
        self._scales = [RollingQuantile(_SCALE_WINDOW) for _ in self._preds]
        self._runs = [0] * len(self._preds)  # signed runs of large residuals (level shifts)
        self._best = _NAIVE
        self._recent: deque[float] = deque(maxlen=64)
        self._history: deque[float] = deque(maxlen=_HISTORY)
        self._next_period_check = 96
        self._baseline = _Baseline()
        self._deseasonalise = False  # drift/level detectors on x - seasonal deviation
        self._dts = RollingQuantile(255)
        self._last_t: float | None = None
        self._prev: float | None = None
        self._quantum = math.inf
        self._run = 1
        self._ties = 0
        self._pairs = 0
        # finished runs of equal values: sums of e and e^2 for e = length - 1
        self._runs_extra = 0
        self._runs_extra_sq = 0
        self._cusum_pos = 0.0
        self._cusum_neg = 0.0
        self._cusum_len = 0
        self._var_short: deque[float] = deque(maxlen=_VAR_WINDOW)
        self._var_sum = 0.0
        self._var_long = -1.0  # set from the first full window
        # point, shift, var_up, var_down, stuck (drift and level live in the baselines):
        # floors of the tail scale (a null CUSUM with k = 0.5 has an exponential tail of
        # scale 1; |z| beyond 2 a mean excess of about 0.4) and the largest tail shapes
        self._cal = {
            c: TailCalibrator(_CAL_WINDOW, min_scale=m, delay=_CAL_DELAY, max_shape=xi)
            for c, m, xi in (
                (_POINT, 0.25, 1.0),
                (_SHIFT, 1.0, _CUSUM_MAX_SHAPE),
                (_VAR_UP, 0.05, 0.0),
                (_VAR_DOWN, 0.05, 0.0),
                (_STUCK, 1.0, 0.0),
            )
        }
        self._event_until = -1

    @property
    def period(self) -> int | None:
        """The seasonal period (in samples) currently modelled, if any."""
        return self._seasonal.period if self._seasonal is not None else None

    # ------------------------------------------------------------------------------------
    def update(self, t: datetime | float | None, x: float | None) -> tuple[float, int]:
        """Score the next point (see the class docstring)."""
        self.step += 1
        tt = _to_seconds(t)
        if x is None:
            return 0.0, 0
        x = float(x)
        if not abs(x) <= _MAX_ABS:  # NaN, inf, or so large that squares would overflow
            return 0.0, 0

        gap = 1.0
        if tt is not None:
            if self._last_t is not None:
                dt = tt - self._last_t
                if dt > 0.0:
                    if len(self._dts) >= 5:
                        med_dt = self._dts.median()
                        if dt > med_dt > 0.0:
                            gap = min(dt / med_dt, 1e4)
                    self._dts.add(dt)
            self._last_t = tt

        self.valid += 1
        self._recent.append(x)
        prev = self._prev
        if prev is None:
            self._observe(x)
            return 0.0, 0

        diff = abs(x - prev)
        if 0.0 < diff < self._quantum:
            self._quantum = diff
        # rounding to a resolution q leaves noise of sd q / sqrt(12): the smallest scale
        floor = self._quantum * _INV_SQRT12 if self._quantum < math.inf else 0.0
        floor = max(floor, 1e-9 * abs(x), 1e-300)

        # --- predictors: residuals in units of each one's robust scale ------------------
        ps = [pred.predict() for pred in self._preds]
        if len(self._scales) > _COMBO:
            p_med, p_seas = ps[_MED8], ps[_SEASONAL]
            ps.append(None if p_med is None or p_seas is None else 0.5 * (p_med + p_seas))
        zs: list[float | None] = []
        scales: list[float] = []
        for j, p in enumerate(ps):
            sc = self._scales[j]
            if p is None or len(sc.sorted) < 8:
                zs.append(None)
                scales.append(math.inf)
                continue
            s = _robust_scale(sc)
            s = s if s > floor else floor
            z = (x - p) / s
            if j <= _TREND and gap > 1.0:
                z /= math.sqrt(gap)  # a random walk spreads with elapsed time
            zs.append(z)
            scales.append(s)
        best = self._best if zs[self._best] is not None else _NAIVE
        z_best = zs[best]

        # --- component surprises ----------------------------------------------------------
        stuck = self._run + 1 if x == prev else 1
        self._pairs += 1
        if x == prev:
            self._ties += 1
        elif self._run > 1:
            self._runs_extra += self._run - 1
            self._runs_extra_sq += (self._run - 1) ** 2
        surprises: list[float] | None = None
        if z_best is not None:
            # a point is only as surprising as the most lenient of the near-best predictors
            z_point, limit = abs(z_best), _PEER_RATIO * scales[best]
            for j, zj in enumerate(zs):
                if zj is not None and scales[j] <= limit and abs(zj) < z_point:
                    z_point = abs(zj)
            surprises = self._surprises(z_best, z_point, x, stuck, floor, scales[best])

        # --- state updates ---------------------------------------------------------------
        if surprises is None or surprises[_STUCK] < 3.0:  # a stuck stretch does not shrink scales
            for j, p in enumerate(ps):
                if p is not None:
                    self._scales[j].add(abs(x - p))
        self._run = stuck
        self._confirm_shifts(zs)
        if surprises is not None and surprises[_SHIFT] >= _RESET_SURPRISE:
            self._reanchor(max(3, min(self._cusum_len, 64)))
        self._observe(x)

        if surprises is None:
            return 0.0, 0
        self.last_surprises = tuple(surprises)
        if self.valid <= self.warmup:
            return 0.0, 0
        return self._alert(_combine(surprises))

    # ------------------------------------------------------------------------------------
    def _surprises(
        self, z: float, z_point: float, x: float, stuck: int, floor: float, scale: float
    ) -> list[float]:
        """Each component's raw statistic, calibrated against its history and capped by its
        prior (the surprise the statistic would have under the textbook null model). ``z`` is
        the best predictor's standardised residual, ``z_point`` the point detector's |z|."""
        az = abs(z)
        # shift: two-sided CUSUM of the (clipped) residuals
        zc = -_CUSUM_CLIP if z < -_CUSUM_CLIP else (_CUSUM_CLIP if z > _CUSUM_CLIP else z)
        self._cusum_pos = min(_CUSUM_CAP, max(0.0, self._cusum_pos + zc - _CUSUM_K))
        self._cusum_neg = min(_CUSUM_CAP, max(0.0, self._cusum_neg - zc - _CUSUM_K))
        shift = max(self._cusum_pos, self._cusum_neg)
        self._cusum_len = self._cusum_len + 1 if shift > 0.0 else 0
        # drift and level, from the raw and (with a seasonal model) de-seasonalised views
        s_drift, s_level = self._baseline.surprises(x, scale, floor)
        seasonal = self._seasonal
        if seasonal is not None and seasonal.dev is not None:
            seasonal_view = seasonal.baseline.surprises(x - seasonal.dev, scale, floor)
            if self._deseasonalise:
                s_drift, s_level = seasonal_view
        # variance up / down: mean |z| over a short window against its long-run mean
        a = az if az < 5.0 else 5.0
        short = self._var_short
        if len(short) == _VAR_WINDOW:
            self._var_sum -= short[0]
        short.append(a)
        self._var_sum += a
        lr = 0.0
        if len(short) == _VAR_WINDOW:
            v = self._var_sum / _VAR_WINDOW
            if self._var_long < 0.0:
                self._var_long = v
            lr = math.log((v + _VAR_EPS) / (self._var_long + _VAR_EPS))
            self._var_long += (v - self._var_long) / 256.0
        raws = {
            _POINT: z_point,
            _SHIFT: shift,
            _VAR_UP: max(lr, 0.0),
            _VAR_DOWN: max(-lr, 0.0),
            _STUCK: float(stuck),
        }
        out = [0.0, 0.0, s_drift, 0.0, 0.0, 0.0, s_level]
        for c, cal in self._cal.items():
            raw = raws[c]
            s = cal.surprise(raw)
            if s > 1.0:  # below that the prior cannot matter for the score
                if c == _POINT:
                    prior = gaussian_surprise(raw)
                elif c == _SHIFT:
                    prior = raw * _PRIOR_PER_CUSUM
                elif c == _STUCK:
                    # repeats as independent ties, or (exponentially) runs as long as the
                    # finished ones, averaged over their points (long runs weigh more)
                    p_tie = (self._ties + 1.0) / (self._pairs + 2.0)
                    mean_run = (self._runs_extra_sq + 1.0) / (self._runs_extra + 1.0)
                    prior = (raw - 1.0) * min(-math.log10(p_tie), 1.0 / (mean_run * _LN10))
                else:
                    prior = gaussian_surprise(raw / _VAR_SD, two_sided=False)
                s = min(s, prior, _MAX_SURPRISE)
                if c == _VAR_DOWN:
                    # quiet spells are common in real sensor data; a frozen sensor is the
                    # stuck detector's case, so a variance drop counts half
                    s *= 0.5
            out[c] = s
            # anomalies are learnt too: what recurs becomes normal (the delay keeps a
            # developing anomaly from calibrating itself away)
            cal.add(raw)
        return out

    def _alert(self, score: float) -> tuple[float, int]:
        """The refractory logic: one alert per event, damped scores after it."""
        if self.step <= self._event_until:
            if score >= 0.5 * self.threshold:
                self._event_until = max(self._event_until, self.step + _EXTEND)
            return score * _SUPPRESS, 0
        if score >= self.threshold:
            self._event_until = self.step + self.refractory
            return score, 1
        return score, 0

    def _confirm_shifts(self, zs: list[float | None]) -> None:
        """Re-anchor a level predictor when its residuals say the level has moved."""
        for j in range(_MED8, len(self._preds)):
            z = zs[j]
            run = self._runs[j]
            if z is None or abs(z) < _SHIFT_Z:
                run = 0
            elif z > 0:
                run = run + 1 if run > 0 else 1
            else:
                run = run - 1 if run < 0 else -1
            if abs(run) >= _SHIFT_RUN:
                self._preds[j].reset(list(self._recent)[-_SHIFT_RUN:])
                run = 0
                if j == self._best:
                    self._cusum_pos = self._cusum_neg = 0.0
                    self._cusum_len = 0
            self._runs[j] = run

    def _reanchor(self, n: int) -> None:
        """After a CUSUM alarm: restart the level predictors from the last ``n`` points."""
        recent = list(self._recent)[-n:]
        for pred in self._preds[_MED8:]:
            pred.reset(recent)
        self._cusum_pos = self._cusum_neg = 0.0
        self._cusum_len = 0

    def _observe(self, x: float) -> None:
        for pred in self._preds:
            pred.observe(x)
        self._prev = x
        self._baseline.add(x)
        self._history.append(x)
        if self.valid >= self._next_period_check:
            self._next_period_check = self.valid + min(max(32, self.valid // 2), 2048)
            self._update_period()
        if self.valid % 64 == 0:
            self._choose_baseline()
        if self.valid % 8 == 0 or self.valid < 64:
            self._choose_best()

    def _choose_baseline(self) -> None:
        """De-seasonalise the drift/level detectors when that shrinks the spread enough."""
        seasonal = self._seasonal
        if seasonal is None or len(seasonal.baseline.level) < _REF_WINDOW:
            self._deseasonalise = False
            return
        raw = self._baseline.iqr()
        ratio = seasonal.baseline.iqr() / raw if raw > 0.0 else 1.0
        self._deseasonalise = ratio < (0.8 if self._deseasonalise else 0.7)

    def _choose_best(self) -> None:
        best = self._best
        sc = self._scales[best]
        best_s = old_s = _robust_scale(sc) if len(sc) >= 16 else math.inf
        for j, sc in enumerate(self._scales):
            if j != best and len(sc) >= 16:
                s = _robust_scale(sc)
                if s < 0.9 * best_s:
                    best, best_s = j, s
        self._best = best
        if best_s < 0.5 * old_s:
            # a much better model took over: its residuals are a different process for the
            # shift and variance detectors, which restart
            self._cusum_pos = self._cusum_neg = 0.0
            self._cusum_len = 0
            self._var_short.clear()
            self._var_sum = 0.0
            self._var_long = -1.0

    def _drop_seasonal(self) -> None:
        """The history no longer shows the cycle and the seasonal model is not leading."""
        del self._preds[_SEASONAL:], self._scales[_SEASONAL:], self._runs[_SEASONAL:]
        self._seasonal = None
        self._choose_baseline()

    def _update_period(self) -> None:
        found = detect_period(self._history)
        if found is None:
            if self._seasonal is not None and self._best < _SEASONAL:
                self._drop_seasonal()
            return
        period = found[0]
        if len(self._dts) >= 5:
            dt = self._dts.median()
            for cycle in _NATURAL_PERIODS:
                q = cycle / dt
                if q >= 4.0 and abs(period - q) <= 0.03 * q:
                    period = round(q)
                    break
        if period == self.period or 3 * period > len(self._history):
            return
        seasonal = _Seasonal(period)
        scale = RollingQuantile(_SCALE_WINDOW)
        for v in self._history:  # replay the past so the new model starts fully informed
            p = seasonal.predict()
            if p is not None:
                scale.add(abs(v - p))
            seasonal.observe(v)
        if self._seasonal is None:
            self._preds.append(seasonal)
            self._scales += [scale, RollingQuantile(_SCALE_WINDOW)]
            self._runs.append(0)
        else:
            self._preds[_SEASONAL] = seasonal
            self._scales[_SEASONAL] = scale
            self._scales[_COMBO].clear()
            self._runs[_SEASONAL] = 0
            if self._best == _COMBO:
                self._best = _SEASONAL
        self._seasonal = seasonal
        self._choose_baseline()


# ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Per-point results, in the order of the input."""

    scores: list[float]
    flags: list[int]


def score_series(
    timestamps: Sequence[datetime | float],
    values: Sequence[float | None],
    *,
    threshold: float = 0.5,
) -> ScoreResult:
    """Score a whole series with :class:`StreamingScorer`, in time order.

    Points are fed in timestamp order (stable for ties), so each point's score depends only on
    points with earlier (or equal, earlier-listed) timestamps; results come back in input order.
    Missing values (``None``, NaN, inf) get score 0 and flag 0.
    """
    if len(timestamps) != len(values):
        raise ValueError("timestamps and values differ in length")
    keys = [_to_seconds(t) for t in timestamps]
    order = sorted(range(len(keys)), key=lambda i: k if (k := keys[i]) is not None else -math.inf)
    scorer = StreamingScorer(threshold)
    scores = [0.0] * len(values)
    flags = [0] * len(values)
    for i in order:
        scores[i], flags[i] = scorer.update(keys[i], values[i])
    return ScoreResult(scores, flags)


# ----------------------------------------------------------------------------------------
class SeriesFileError(ValueError):
    """An input file that cannot be read as a ``timestamp,value`` series."""


_MISSING = frozenset({"", "nan", "na", "n/a", "null", "none", "-"})


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch from a number (taken as is), ISO 8601 or
    ``YYYY-MM-DD HH:MM:SS`` (naive times are taken as UTC)."""
    s = text.strip()
    try:
        f = float(s)
    except ValueError:
        pass
    else:
        if math.isfinite(f):
            return f
        raise ValueError(f"timestamp {text!r} is not finite")
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"cannot parse timestamp {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _parse_value(text: str) -> float | None:
    s = text.strip()
    if s.lower() in _MISSING:
        return None
    try:
        f = float(s)
    except ValueError:
        raise ValueError(f"cannot parse value {text!r}") from None
    return f if math.isfinite(f) else None


@dataclass(frozen=True, slots=True)
class SeriesRows:
    """A ``timestamp,value`` file: original text and parsed form, in file order."""

    timestamp_text: list[str]
    value_text: list[str]
    times: list[float]
    values: list[float | None]


def read_series_csv(path: Path) -> SeriesRows:
    """Read a CSV with ``timestamp`` and ``value`` columns (case-insensitive, any order,
    other columns ignored). Raises :class:`SeriesFileError` naming the offending line."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header: list[str] | None = None
            ti = vi = 0
            rows = SeriesRows([], [], [], [])
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                line = reader.line_num
                if header is None:
                    header = [c.strip().lower() for c in row]
                    if "timestamp" not in header or "value" not in header:
                        raise SeriesFileError(
                            f"{path}: line {line}: expected a header with 'timestamp' and "
                            f"'value' columns, got {row!r}"
                        )
                    ti, vi = header.index("timestamp"), header.index("value")
                    continue
                if len(row) <= max(ti, vi):
                    raise SeriesFileError(
                        f"{path}: line {line}: expected {len(header)} fields, got {len(row)}"
                    )
                try:
                    t = parse_timestamp(row[ti])
                    v = _parse_value(row[vi])
                except ValueError as err:
                    raise SeriesFileError(f"{path}: line {line}: {err}") from None
                rows.timestamp_text.append(row[ti])
                rows.value_text.append(row[vi])
                rows.times.append(t)
                rows.values.append(v)
    except csv.Error as err:
        raise SeriesFileError(f"{path}: line {reader.line_num}: {err}") from None
    except UnicodeDecodeError as err:
        raise SeriesFileError(f"{path}: not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise SeriesFileError(f"{path}: {err.strerror or err}") from None
    if header is None:
        raise SeriesFileError(f"{path}: line 1: empty file, expected a 'timestamp,value' header")
    return rows


def score_csv(input_path: Path, output_path: Path, *, threshold: float = 0.5) -> str:
    """Score ``input_path`` into ``output_path`` (columns timestamp, value, anomaly_score,
    is_anomaly; rows in input order). Returns a one-line summary."""
    rows = read_series_csv(input_path)
    result = score_series(rows.times, rows.values, threshold=threshold)
    try:
        output_path.parent.mkdir(parents=True, exist_ok=True)
        with output_path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["timestamp", "value", "anomaly_score", "is_anomaly"])
            for ts, vs, s, f in zip(
                rows.timestamp_text, rows.value_text, result.scores, result.flags, strict=True
            ):
                w.writerow([ts, vs, f"{s:.6f}", f])
    except OSError as err:
        raise SeriesFileError(f"{output_path}: {err.strerror or err}") from None
    missing = sum(v is None for v in rows.values)
    return (
        f"scored {len(rows.values)} points ({missing} missing), "
        f"{sum(result.flags)} flagged at threshold {threshold} -> {output_path}"
    )
