"""The streaming anomaly scorer (issues 4 and 16): :class:`StreamingScorer`.

``StreamingScorer.update(t, x)`` scores one point using only the points before it. Nine
self-scaling detectors (point residual against the best of a few predictors, CUSUMs for
shifts and drifts, variance up/down, stuck values, out-of-range level, the shape of the latest
subsequence against its nearest past neighbours, the distribution of the latest window) each
produce a raw statistic, calibrated against its own history and capped by a textbook prior
into a surprise ``-log10 p``; the surprises are combined (harmonic-mean p-value) and squashed
into ``anomaly_score`` in [0, 1]. The method is described in ``docs/analytics-score.md``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from datetime import datetime

from firewatch.scoring.baseline import (
    CAL_DELAY,
    CAL_WINDOW,
    CUSUM_MAX_SHAPE,
    MAX_SURPRISE,
    REF_WINDOW,
    RESET_SURPRISE,
    Baseline,
)
from firewatch.scoring.detectors import DistributionDetector, ShapeDetector
from firewatch.scoring.predictors import (
    COMBO,
    MED8,
    NAIVE,
    SEASONAL,
    TREND,
    Median,
    Naive,
    Predictor,
    Seasonal,
    Trend,
    dispersion,
    robust_scale,
    selection_scale,
)
from firewatch.scoring.regimes import Regimes
from firewatch.scoring.residual_detectors import ShiftCusum, StuckRun, VarianceRatio
from firewatch.scoring.series_file import to_seconds
from firewatch.scoring.streaming_stats import (
    RollingQuantile,
    TailCalibrator,
    detect_period,
    gaussian_surprise,
)

__all__ = ["COMPONENTS", "StreamingScorer"]

#: Names of the detector components, in the order of ``StreamingScorer.last_surprises``.
COMPONENTS = (
    "point",
    "shift",
    "drift",
    "var_up",
    "var_down",
    "stuck",
    "level",
    "shape",
    "distribution",
)
_POINT, _SHIFT, _DRIFT, _VAR_UP, _VAR_DOWN, _STUCK, _LEVEL, _SHAPE, _DIST = range(len(COMPONENTS))

_SCALE_WINDOW = 256  # residuals behind each predictor's robust scale
_HISTORY = 8192  # values kept for period estimation
_PEER_RATIO = 1.15  # predictors this close to the best one's scale also vote on points
_SHIFT_Z = 4.0  # |z| that counts towards a confirmed level shift ...
_SHIFT_RUN = 3  # ... when this many consecutive residuals agree in sign
_S_HALF = 4.5  # combined surprise (-log10 p) mapped to a score of 0.5
_S_WIDTH = 0.75  # softness of that mapping
_SUPPRESS = 0.25  # factor on scores inside an alert's refractory period
_EXTEND = 8  # refractory extension while the score stays elevated
_INV_SQRT12 = 1.0 / math.sqrt(12.0)
_WINDOW_MIN_COUNT = 200  # history the shape and distribution calibrations need
# a spike is judged on its own value, so the point calibration is trusted sooner (short
# series); statistics that accumulate (CUSUMs, windows) keep the slower n / (n + 100)
_POINT_SHRINK = 50
_RANGE_Q = 0.01  # the shape detector sees values clipped to these quantiles of the past
_DIST_WIDTH = 0.5  # narrowest histogram bin, in units of the long-run spread
_MIN_GAP = 0.05  # shortest interval (in median intervals) residuals are rescaled for
_MAX_ABS = 1e150  # larger magnitudes are treated as missing (their squares overflow)
_LOG10_C = math.log10(len(COMPONENTS))
#: natural cycles (seconds) a detected period snaps to when within 3 %: hour, day, week
_NATURAL_PERIODS = (3600.0, 86400.0, 604800.0)


def _combine(surprises: Sequence[float]) -> float:
    """One score in [0, 1]: the harmonic-mean p-value of the components (valid under
    dependence), as a surprise, through a logistic centred on _S_HALF."""
    top = max(surprises)
    total = top + math.log10(sum(10.0 ** (s - top) for s in surprises)) - _LOG10_C
    return 1.0 / (1.0 + math.exp(-(total - _S_HALF) / _S_WIDTH))


class StreamingScorer:
    """Score a univariate series one point at a time; ``update`` never looks ahead:
    ``update(t, x)`` returns ``(anomaly_score, is_anomaly)`` for the new point. ``t`` is a
    datetime or a number (any unit: only ratios of intervals are used, except that a period
    within 3 % of an hour, a day or a week of seconds is snapped to it) and should not
    decrease; ``x`` may be ``None``/NaN/inf or beyond +-1e150 (missing: scored 0, state
    unchanged). Nothing needs tuning per series: every scale is learned from the series.

    ``threshold`` is the alert level on the score. After an alert, further alerts are held
    back for ``refractory`` points (extended while the score stays above half the threshold)
    and scores in that period are multiplied by 0.25, so one event gives one alert. The first
    ``warmup`` valid points are scored 0.
    """

    def __init__(self, threshold: float = 0.5, *, warmup: int = 48, refractory: int = 32) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self.warmup = warmup
        self.refractory = refractory
        self.step = 0  # points seen, valid or not
        self.valid = 0  # valid points seen
        #: surprise (-log10 p) of each component for the last scored point, see COMPONENTS
        self.last_surprises: tuple[float, ...] = (0.0,) * len(COMPONENTS)

        self._preds: list[Predictor] = [Naive(), Trend(), Median(8), Median(64)]
        self._seasonal: Seasonal | None = None  # also self._preds[SEASONAL] when present
        #: residual scale windows, one per predictor (+ one for COMBO with a seasonal model)
        self._scales = [RollingQuantile(_SCALE_WINDOW) for _ in self._preds]
        # last-value residuals per step and per square root of elapsed time: the one whose
        # size varies less is in use (a random walk spreads with time, per-sample noise not)
        self._per_step = [RollingQuantile(_SCALE_WINDOW), RollingQuantile(_SCALE_WINDOW)]
        self._per_time = [self._scales[NAIVE], self._scales[TREND]]
        self._time_scaled = True
        self._runs = [0] * len(self._preds)  # signed runs of large residuals (level shifts)
        self._best = NAIVE
        self._recent: deque[float] = deque(maxlen=64)
        self._history: deque[float] = deque(maxlen=_HISTORY)
        self._next_period_check = 96
        self._baseline = Baseline()
        self._deseasonalise = False  # drift/level detectors on x - seasonal deviation
        self._dts = RollingQuantile(255)
        self._last_t: float | None = None
        self._prev: float | None = None
        self._quantum = math.inf
        self._stuck = StuckRun()
        self._cusum = ShiftCusum()
        self._variance = VarianceRatio()
        # every component but drift and level (they live in the baselines): floor of the
        # tail scale (a null CUSUM with k = 0.5 has an exponential tail of scale 1; |z|
        # beyond 2 a mean excess of about 0.4), largest tail shape, history needed (the
        # window detectors' statistics overlap from one point to the next, so few of their
        # values are independent) and the trust n / (n + h) in a history of n values
        self._cal = {
            c: TailCalibrator(
                CAL_WINDOW, min_scale=m, delay=CAL_DELAY, max_shape=xi, min_count=k, shrink=h
            )
            for c, m, xi, k, h in (
                (_POINT, 0.25, 1.0, 20, _POINT_SHRINK),
                (_SHIFT, 1.0, CUSUM_MAX_SHAPE, 20, 100),
                (_VAR_UP, 0.05, 0.0, 20, 100),
                (_VAR_DOWN, 0.05, 0.0, 20, 100),
                (_STUCK, 1.0, 0.0, 20, 100),
                (_SHAPE, 0.25, 1.0, _WINDOW_MIN_COUNT, 100),
                (_DIST, 1.0, 0.0, _WINDOW_MIN_COUNT, 100),
            )
        }
        self._shape = ShapeDetector()
        self._dist = DistributionDetector()
        self._held_shape = self._held_dist = 0.0
        self._event_until = -1
        self._regimes = Regimes(_POINT, _LEVEL)  # switches are no spikes; rises in a regime

    @property
    def period(self) -> int | None:
        """The seasonal period (in samples) currently modelled, if any."""
        return self._seasonal.period if self._seasonal is not None else None

    def update(self, t: datetime | float | None, x: float | None) -> tuple[float, int]:
        """Score the next point (see the class docstring)."""
        self.step += 1
        tt = to_seconds(t)
        if x is None:
            return 0.0, 0
        x = float(x)
        if not abs(x) <= _MAX_ABS:  # NaN, inf, or so large that squares would overflow
            return 0.0, 0

        # elapsed time in median sampling intervals: last-value residuals are per sqrt(time)
        gap = 1.0
        if tt is not None:
            if self._last_t is not None:
                dt = tt - self._last_t
                if dt > 0.0:
                    if len(self._dts) >= 5:
                        med_dt = self._dts.median()
                        if med_dt > 0.0:
                            gap = min(max(dt / med_dt, _MIN_GAP), 1e4)
                    self._dts.add(dt)
            self._last_t = tt

        root = math.sqrt(gap) if gap != 1.0 and self._time_scaled else 1.0  # per sqrt(time)
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
        if len(self._scales) > COMBO:
            p_med, p_seas = ps[MED8], ps[SEASONAL]
            ps.append(None if p_med is None or p_seas is None else 0.5 * (p_med + p_seas))
        zs: list[float | None] = []
        scales: list[float] = []
        for j, p in enumerate(ps):
            sc = self._scales[j]
            if p is None or len(sc.sorted) < 8:
                zs.append(None)
                scales.append(math.inf)
                continue
            s = robust_scale(sc)
            s = s if s > floor else floor
            z = (x - p) / s
            if j <= TREND and gap != 1.0 and self._time_scaled:
                z /= math.sqrt(gap)  # a random walk spreads with elapsed time
            zs.append(z)
            scales.append(s)
        best = self._best if zs[self._best] is not None else NAIVE
        z_best = zs[best]

        # --- component surprises ----------------------------------------------------------
        stuck = self._stuck.observe(x == prev)
        surprises: list[float] | None = None
        if z_best is not None:
            # a point is only as surprising as the most lenient of the near-best predictors
            z_point, limit = abs(z_best), _PEER_RATIO * scales[best]
            for j, zj in enumerate(zs):
                if zj is not None and scales[j] <= limit and abs(zj) < z_point:
                    z_point = abs(zj)
            lo, hi = self._usual_range()
            shape = self._shape.update(x, scales[best], lo, hi)
            dist = self._dist.update(x, self._baseline.level.sorted, self._dist_width())
            surprises = self._surprises(z_best, z_point, x, stuck, floor, scales[best], shape, dist)
            self._regimes.adjust(surprises, prev, x, self._baseline, scales[best], root)
        else:  # the window detectors see every value, so their windows stay contiguous
            self._shape.update(x, 0.0, *self._usual_range())
            self._dist.update(x, self._baseline.level.sorted, self._dist_width())

        # --- state updates ---------------------------------------------------------------
        if surprises is None or surprises[_STUCK] < 3.0:  # a stuck stretch does not shrink scales
            for j, p in enumerate(ps):
                if p is not None:
                    e = abs(x - p)
                    if j <= TREND:
                        self._per_step[j].add(e)
                        self._per_time[j].add(e / math.sqrt(gap) if gap != 1.0 else e)
                    else:
                        self._scales[j].add(e)
        self._confirm_shifts(zs)
        if surprises is not None and surprises[_SHIFT] >= RESET_SURPRISE:
            self._reanchor(max(3, min(self._cusum.length, 64)))
        self._regimes.jumps.add(prev, x, root)
        self._observe(x)

        if surprises is None:
            return 0.0, 0
        self.last_surprises = tuple(surprises)
        if self.valid <= self.warmup:
            return 0.0, 0
        return self._alert(_combine(surprises))

    def _surprises(
        self,
        z: float,
        z_point: float,
        x: float,
        stuck: int,
        floor: float,
        scale: float,
        shape: float | None,
        dist: float | None,
    ) -> list[float]:
        """Each component's raw statistic, calibrated against its history and capped by its
        prior (the surprise the statistic would have under the textbook null model). ``z`` is
        the best predictor's standardised residual, ``z_point`` the point detector's |z|;
        ``shape`` and ``dist`` are the window detectors' statistics, if ready."""
        # drift and level, from the raw and (with a seasonal model) de-seasonalised views
        s_drift, s_level = self._baseline.surprises(x, scale, floor)
        seasonal = self._seasonal
        if seasonal is not None and seasonal.dev is not None:
            seasonal_view = seasonal.baseline.surprises(x - seasonal.dev, scale, floor)
            if self._deseasonalise:
                s_drift, s_level = seasonal_view
        shift = self._cusum.update(z)
        lr = self._variance.update(z)
        raws = {
            _POINT: z_point,
            _SHIFT: shift,
            _VAR_UP: max(lr, 0.0),
            _VAR_DOWN: max(-lr, 0.0),
            _STUCK: float(stuck),
        }
        if shape is not None:
            raws[_SHAPE] = shape
        if dist is not None:
            raws[_DIST] = dist
        # the window detectors judge every few points; in between their surprise holds
        out = [0.0, 0.0, s_drift, 0.0, 0.0, 0.0, s_level, self._held_shape, self._held_dist]
        for c, cal in self._cal.items():
            if c not in raws:
                continue
            raw = raws[c]
            s = cal.surprise(raw)
            if s > 1.0:  # below that the prior cannot matter for the score
                if c == _POINT:
                    prior = gaussian_surprise(raw)
                elif c == _SHIFT:
                    prior = ShiftCusum.prior(raw)
                elif c == _STUCK:
                    prior = self._stuck.prior(raw)
                elif c == _SHAPE:
                    # only a series that repeats itself makes a new shape news
                    prior = self._shape.prior(raw) if self._shape.repeating else 0.0
                elif c == _DIST:
                    prior = self._dist.prior(raw)
                else:
                    prior = VarianceRatio.prior(raw)
                s = min(s, prior, MAX_SURPRISE)
                if c == _VAR_DOWN:
                    # quiet spells are common in real sensor data; a frozen sensor is the
                    # stuck detector's case, so a variance drop counts half
                    s *= 0.5
            out[c] = s
            if c == _SHAPE:
                self._held_shape = s
            elif c == _DIST:
                self._held_dist = s
            # anomalies are learnt too: what recurs becomes normal (the delay keeps a
            # developing anomaly from calibrating itself away)
            cal.add(raw)
        return out

    def _usual_range(self) -> tuple[float, float]:
        """1st and 99th percentiles of the long-run distribution (unbounded before it has
        enough values): the range the shape detector clips values to."""
        level = self._baseline.level
        if len(level.sorted) < 100:
            return -math.inf, math.inf
        return level.quantile(_RANGE_Q), level.quantile(1.0 - _RANGE_Q)

    def _dist_width(self) -> float:
        """Narrowest histogram bin of the distribution detector (never 0: ties always merge)."""
        return max(_DIST_WIDTH * self._baseline.spread_estimate, 1e-300)

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
        for j in range(MED8, len(self._preds)):
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
                    self._cusum.reset()
            self._runs[j] = run

    def _reanchor(self, n: int) -> None:
        """After a CUSUM alarm: restart the level predictors from the last ``n`` points."""
        recent = list(self._recent)[-n:]
        for pred in self._preds[MED8:]:
            pred.reset(recent)
        self._cusum.reset()

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
        if seasonal is None or len(seasonal.baseline.level) < REF_WINDOW:
            self._deseasonalise = False
            return
        raw = self._baseline.iqr()
        ratio = seasonal.baseline.iqr() / raw if raw > 0.0 else 1.0
        self._deseasonalise = ratio < (0.8 if self._deseasonalise else 0.7)

    def _choose_best(self) -> None:
        """Lead with the predictor whose errors are smallest, judged by the larger of the
        robust scale and the 90th-percentile scale: a predictor that fits the flat 80 % of a
        pulse train and misses every pulse must not lead (its misses would be "anomalies")."""
        self._choose_time_scaling()
        best = self._best
        sc = self._scales[best]
        best_s = old_s = selection_scale(sc) if len(sc) >= 16 else math.inf
        for j, sc in enumerate(self._scales):
            if j != best and len(sc) >= 16:
                s = selection_scale(sc)
                if s < 0.9 * best_s:
                    best, best_s = j, s
        self._best = best
        if best_s < 0.5 * old_s:
            # a much better model took over: its residuals are a different process for the
            # shift and variance detectors, which restart
            self._cusum.reset()
            self._variance.reset()

    def _choose_time_scaling(self) -> None:
        """Scale last-value residuals by elapsed time only while that makes their size more
        uniform (ratio of the 90th percentile to the median of |residual|, 10 % hysteresis):
        right for random walks sampled irregularly, wrong for per-sample noise."""
        per_time, per_step = self._per_time[NAIVE], self._per_step[NAIVE]
        if len(per_step) < 64:
            return
        r_time, r_step = dispersion(per_time), dispersion(per_step)
        if self._time_scaled and r_step < 0.9 * r_time:
            self._time_scaled = False
        elif not self._time_scaled and r_time < 0.9 * r_step:
            self._time_scaled = True
        pick = self._per_time if self._time_scaled else self._per_step
        self._scales[NAIVE], self._scales[TREND] = pick[NAIVE], pick[TREND]

    def _drop_seasonal(self) -> None:
        """The history no longer shows the cycle and the seasonal model is not leading."""
        del self._preds[SEASONAL:], self._scales[SEASONAL:], self._runs[SEASONAL:]
        self._seasonal = None
        self._choose_baseline()

    def _update_period(self) -> None:
        found = detect_period(self._history)
        if found is None:
            if self._seasonal is not None and self._best < SEASONAL:
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
        seasonal = Seasonal(period)
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
            self._preds[SEASONAL] = seasonal
            self._scales[SEASONAL] = scale
            self._scales[COMBO].clear()
            self._runs[SEASONAL] = 0
            if self._best == COMBO:
                self._best = SEASONAL
        self._seasonal = seasonal
        self._choose_baseline()
