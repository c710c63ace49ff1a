"""A windowed-Gaussian reference scorer for ``firewatch analytics score-eval``.

The plainest causal detector worth comparing against: at each point, the mean ``μ`` and
standard deviation ``σ`` of the previous ``window`` valid values (those before the last
``tail`` points), and the mean ``m`` of the last ``tail`` valid values including this one.
``z = (m - μ) / (σ / sqrt(tail))`` and the two-sided tail probability ``p`` of ``z`` under
a normal distribution give a surprise ``S = -log10 p``; the score is
``1 / (1 + exp(-(S - 4.5) / 0.75))``, the same squashing as the Firewatch scorer, so that
both score columns read alike. An alert (flag 1) is a score at or above the threshold
outside the refractory period: after an alert the next ``refractory`` points cannot alert
and their scores are multiplied by 0.25 (one alert per event, as in the Firewatch scorer).

Nothing is fitted: the constants below are set on general principles, not tuned on any
data. Missing values score 0 and change no state; the first ``min_history`` valid points
(plus ``tail``) score 0. Points are taken in timestamp order (stable for ties) and results
come back in input order, as with :func:`firewatch.scoring.scorer.score_series`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from datetime import datetime

from firewatch.scoring.scorer import ScoreResult
from firewatch.scoring.streaming_stats import gaussian_surprise

__all__ = ["GaussianWindowScorer", "score_series_gaussian"]

WINDOW = 256  # previous values behind the mean and sd
TAIL = 3  # values averaged into the tested mean (a short persistent change adds up)
MIN_HISTORY = 16  # valid values needed before scoring
REFRACTORY = 32  # points after an alert that cannot alert
SUPPRESS = 0.25  # factor on scores inside the refractory period
S_HALF = 4.5  # surprise (-log10 p) at score 0.5
S_WIDTH = 0.75
_MAX_SURPRISE = 60.0


class GaussianWindowScorer:
    """Streaming windowed-Gaussian scorer; ``update(x)`` returns ``(score, flag)``."""

    def __init__(
        self,
        threshold: float = 0.5,
        *,
        window: int = WINDOW,
        tail: int = TAIL,
        min_history: int = MIN_HISTORY,
        refractory: int = REFRACTORY,
    ) -> None:
        self.threshold = threshold
        self.window = window
        self.tail = tail
        self.min_history = min_history
        self.refractory = refractory
        self._history: deque[float] = deque()
        self._recent: deque[float] = deque()
        self._sum = 0.0
        self._sumsq = 0.0
        self._adds = 0
        self._quiet = 0  # refractory points left
        self._scale_floor = 0.0  # smallest non-zero spread seen: a constant window stays sane

    def update(self, x: float | None) -> tuple[float, int]:
        if x is None or not math.isfinite(x) or abs(x) > 1e150:
            return 0.0, 0
        self._recent.append(x)
        if len(self._recent) > self.tail:
            old = self._recent.popleft()
            self._history.append(old)
            self._sum += old
            self._sumsq += old * old
            if len(self._history) > self.window:
                gone = self._history.popleft()
                self._sum -= gone
                self._sumsq -= gone * gone
            self._adds += 1
            if self._adds % self.window == 0:  # running sums drift: recompute them exactly
                self._sum = math.fsum(self._history)
                self._sumsq = math.fsum(v * v for v in self._history)
        score = 0.0
        n = len(self._history)
        if n >= self.min_history and len(self._recent) == self.tail:
            mu = self._sum / n
            var = max(0.0, (self._sumsq - n * mu * mu) / (n - 1))
            sd = math.sqrt(var)
            if sd > 0.0:
                self._scale_floor = sd if self._scale_floor == 0.0 else min(self._scale_floor, sd)
            # a window of identical values: judge against the smallest spread seen, or
            # against a relative resolution when the series was always constant
            sd = max(sd, 1e-3 * self._scale_floor, 1e-9 * max(1.0, abs(mu)))
            m = sum(self._recent) / self.tail
            surprise = min(_MAX_SURPRISE, gaussian_surprise((m - mu) / (sd / math.sqrt(self.tail))))
            score = 1.0 / (1.0 + math.exp(-(surprise - S_HALF) / S_WIDTH))
        flag = 0
        if self._quiet > 0:
            self._quiet -= 1
            score *= SUPPRESS
        elif score >= self.threshold:
            flag = 1
            self._quiet = self.refractory
        return score, flag


def _seconds(t: datetime | float) -> float:
    return t.timestamp() if isinstance(t, datetime) else float(t)


def score_series_gaussian(
    timestamps: Sequence[datetime | float],
    values: Sequence[float | None],
    *,
    threshold: float = 0.5,
) -> ScoreResult:
    """Score a whole series with :class:`GaussianWindowScorer`, in time order; the same
    signature and result as :func:`firewatch.scoring.scorer.score_series`."""
    if len(timestamps) != len(values):
        raise ValueError("timestamps and values differ in length")
    keys = [_seconds(t) for t in timestamps]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    scorer = GaussianWindowScorer(threshold)
    scores = [0.0] * len(values)
    flags = [0] * len(values)
    for i in order:
        scores[i], flags[i] = scorer.update(values[i])
    return ScoreResult(scores, flags)
