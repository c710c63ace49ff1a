"""The slow view of a signal behind the ``drift`` and ``level`` components.

:class:`Baseline` follows a (possibly de-seasonalised) signal ``y`` and turns each value into
two calibrated surprises: a CUSUM of ``y`` against a slowly moving reference level (drifts,
small shifts) and the distance of ``y`` from the series' long-run distribution (values outside
the usual range). The constants shared with the other CUSUM detectors live here too.
"""

from __future__ import annotations

import math
from collections import deque

from firewatch.scoring.streaming_stats import RollingQuantile, TailCalibrator, gaussian_surprise

CAL_WINDOW = 2000  # raw statistics behind each component's tail calibration
CAL_DELAY = 100  # raw statistics join their calibration window this many points late
LEVEL_WINDOW = 2000  # values behind the long-run level distribution
REF_WINDOW = 256  # values behind the slow reference level of the drift detector
CUSUM_K = 0.5  # CUSUM reference value (detects mean changes of ~1 residual sd)
CUSUM_CLIP = 4.0  # single points move a CUSUM by at most this (spikes are "point")
CUSUM_CAP = 20.0  # CUSUMs saturate here (prior surprise 8.7): bounded for random walks
CUSUM_MAX_SHAPE = 0.5  # tail shape allowed for CUSUM calibration (autocorrelated residuals)
RESET_SURPRISE = 5.5  # CUSUM surprise that re-anchors what the CUSUM compares against
LEVEL_MIN_COUNT = 64  # calibration history the level detector needs before it speaks
MAX_SURPRISE = 60.0  # no component reports more than this
PRIOR_PER_CUSUM = 2.0 * CUSUM_K / math.log(10.0)  # P(CUSUM > h) ~ exp(-2 k h)


class Baseline:
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
        self.ref = RollingQuantile(REF_WINDOW)
        self.level = RollingQuantile(LEVEL_WINDOW)
        self.recent: deque[float] = deque(maxlen=64)
        self.pending: deque[float] = deque()  # values on their way into ``level``
        self.cal_drift = TailCalibrator(
            CAL_WINDOW, min_scale=1.0, delay=CAL_DELAY, max_shape=CUSUM_MAX_SHAPE
        )
        # where a series usually is needs more history than how it usually moves
        self.cal_level = TailCalibrator(
            CAL_WINDOW, min_scale=0.25, delay=CAL_DELAY, min_count=LEVEL_MIN_COUNT
        )
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
        if len(pending) > min(CAL_DELAY, len(self.level.sorted)):
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
            z = -CUSUM_CLIP if z < -CUSUM_CLIP else (CUSUM_CLIP if z > CUSUM_CLIP else z)
            self.drift_pos = min(CUSUM_CAP, max(0.0, self.drift_pos + z - CUSUM_K))
            self.drift_neg = min(CUSUM_CAP, max(0.0, self.drift_neg - z - CUSUM_K))
        h = max(self.drift_pos, self.drift_neg)
        self.drift_len = self.drift_len + 1 if h > 0.0 else 0
        s_drift = self.cal_drift.surprise(h)
        if s_drift > 1.0:
            s_drift = min(s_drift, h * PRIOR_PER_CUSUM)
        self.cal_drift.add(h)
        if s_drift >= RESET_SURPRISE:  # a change: the reference restarts after it
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
            s_level = min(s_level, gaussian_surprise(zl), MAX_SURPRISE)
        self.cal_level.add(zl)
        return s_drift, s_level

    @property
    def spread_estimate(self) -> float:
        """The last :meth:`spread` computed (refreshed every 8 values; 0 before that)."""
        return self._spread

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
