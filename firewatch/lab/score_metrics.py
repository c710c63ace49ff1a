"""Event metrics for ``firewatch analytics score-eval``: alerts on one labelled series
against its labelled anomaly ranges, and the threshold-free figures over a whole split.

Pure functions, no I/O. The definitions (also in ``docs/analytics-score-evaluation.md``):

Labels and windows
    A series carries labelled anomaly ranges ``(start, end)``, inclusive point indices in
    time order. Each range becomes a detection window ``[start - pad, end + pad]`` clipped
    to the series, ``pad = min(PAD_CAP, max(PAD_FLOOR, ceil(PAD_SHARE * (end - start + 1))))``
    (10 % of the range, at least 5 and at most 200 points). Windows that overlap after
    padding are merged into one (one event).

Alerts
    At the operating threshold an alert is a point whose flag is 1 (the scorer's own
    flags, refractory included). A window is *detected* when an alert falls in it; the
    first alert in a window is the true detection, later alerts in the same window are
    neither true nor false. Alerts outside every window are *false alerts*.

Figures
    recall = detected windows / windows; precision = detected windows / (detected windows +
    false alerts); F1 = 2PR / (P + R) (0 when P + R = 0); recall and precision are ``None``
    when their denominator is 0. False alerts per 10,000 points are counted over the points
    outside every window. Detection delay = first alert index - label start, in points
    (negative when the alert falls in the leading pad), and as a fraction of the window:
    ``(first alert - window start) / window length`` in [0, 1) (early is better). Silent
    series are labelled series without any alert.

Threshold sweep (threshold-free)
    For a threshold ``θ`` on the score column, the alerts are the *onsets* of runs of
    points with ``score >= θ`` (a point at or above ``θ`` whose previous point is below
    it), so that a long plateau counts once, as the scorer's refractory period would.
    One ``θ`` is chosen for the whole split: the one with the best event F1 over the
    pooled counts (ties: the lowest ``θ``). Point-wise average precision pools all valid
    points of the labelled series of the split (label ranges, unpadded, are positives).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import average_precision_score  # type: ignore[import-untyped]

__all__ = [
    "PAD_CAP",
    "PAD_FLOOR",
    "PAD_SHARE",
    "SWEEP_THRESHOLDS",
    "EventCounts",
    "LabelledSeries",
    "SeriesEvents",
    "average_precision",
    "best_threshold",
    "detection_windows",
    "evaluate_flags",
    "f1_score",
    "label_ranges",
    "onset_flags",
    "pointwise_average_precision",
    "sweep_counts",
]

PAD_SHARE = 0.1  # share of the labelled range added on either side
PAD_FLOOR = 5  # points: a one-point spike still gets a window of 11
PAD_CAP = 200  # points: a long regime does not swallow the series around it

#: The thresholds of the sweep: a 0.01 grid plus the saturated end of a sigmoid score.
SWEEP_THRESHOLDS: tuple[float, ...] = tuple(
    [round(0.01 * k, 2) for k in range(1, 100)] + [1.0 - 10.0**-k for k in range(3, 7)]
)


@dataclass(frozen=True)
class LabelledSeries:
    """One univariate series with labelled anomaly ranges.

    ``timestamps`` are seconds (any origin), non-decreasing; ``values`` may hold ``None``
    (missing); ``labels`` are inclusive index ranges ``(start, end)`` into the series, sorted
    and disjoint; empty for an anomaly-free series. ``source`` is ``public`` or
    ``recorded-like``; ``family`` groups series in the report; ``anomaly`` names the kind
    of anomaly (``clean`` when there is none)."""

    name: str
    source: str
    family: str
    split: str
    timestamps: list[float]
    values: list[float | None]
    labels: list[tuple[int, int]]
    anomaly: str = "clean"
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.values)
        if len(self.timestamps) != n:
            raise ValueError(f"{self.name}: timestamps and values differ in length")
        previous = -1
        for start, end in self.labels:
            if not previous < start <= end < n:
                raise ValueError(f"{self.name}: label ({start}, {end}) is not inside the series")
            previous = end


def label_ranges(mask: Sequence[int | float | bool]) -> list[tuple[int, int]]:
    """Inclusive ``(start, end)`` index ranges of the runs of truthy values in ``mask``."""
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    for i, v in enumerate(mask):
        if v and start is None:
            start = i
        elif not v and start is not None:
            ranges.append((start, i - 1))
            start = None
    if start is not None:
        ranges.append((start, len(mask) - 1))
    return ranges


def detection_windows(labels: Sequence[tuple[int, int]], n: int) -> list[tuple[int, int, int]]:
    """Padded windows ``(window_start, window_end, label_start)`` (inclusive), merged where
    they overlap; ``label_start`` is the start of the first label in the window."""
    windows: list[tuple[int, int, int]] = []
    for start, end in sorted(labels):
        pad = min(PAD_CAP, max(PAD_FLOOR, math.ceil(PAD_SHARE * (end - start + 1))))
        lo, hi = max(0, start - pad), min(n - 1, end + pad)
        if windows and lo <= windows[-1][1]:
            w_lo, w_hi, w_label = windows[-1]
            windows[-1] = (w_lo, max(w_hi, hi), w_label)
        else:
            windows.append((lo, hi, start))
    return windows


@dataclass
class SeriesEvents:
    """What alerts did on one series (see the module docstring)."""

    n_points: int
    windows: int
    detected: int
    false_alerts: int
    points_outside: int
    alerts: int
    delays: list[int]
    delay_fractions: list[float]

    def to_json(self) -> dict[str, object]:
        return {
            "n_points": self.n_points,
            "windows": self.windows,
            "detected": self.detected,
            "false_alerts": self.false_alerts,
            "points_outside_windows": self.points_outside,
            "alerts": self.alerts,
            "delays_points": self.delays,
            "delay_fractions": [round(f, 4) for f in self.delay_fractions],
        }


def evaluate_flags(flags: Sequence[int], labels: Sequence[tuple[int, int]]) -> SeriesEvents:
    """Match the alerts (``flags[i] == 1``) of one series against its labels."""
    n = len(flags)
    windows = detection_windows(labels, n)
    alert_idx = [i for i, f in enumerate(flags) if f]
    inside = 0
    detected = 0
    delays: list[int] = []
    fractions: list[float] = []
    for lo, hi, label_start in windows:
        hits = [i for i in alert_idx if lo <= i <= hi]
        inside += len(hits)
        if hits:
            detected += 1
            delays.append(hits[0] - label_start)
            fractions.append((hits[0] - lo) / (hi - lo + 1))
    covered = sum(hi - lo + 1 for lo, hi, _ in windows)
    return SeriesEvents(
        n_points=n,
        windows=len(windows),
        detected=detected,
        false_alerts=len(alert_idx) - inside,
        points_outside=n - covered,
        alerts=len(alert_idx),
        delays=delays,
        delay_fractions=fractions,
    )


@dataclass
class EventCounts:
    """Event counts summed over several series, and the figures derived from them."""

    series: int = 0
    windows: int = 0
    detected: int = 0
    false_alerts: int = 0
    points: int = 0
    points_outside: int = 0
    silent_series: int = 0
    delays: list[int] = field(default_factory=list)
    delay_fractions: list[float] = field(default_factory=list)

    def add(self, ev: SeriesEvents) -> None:
        self.series += 1
        self.windows += ev.windows
        self.detected += ev.detected
        self.false_alerts += ev.false_alerts
        self.points += ev.n_points
        self.points_outside += ev.points_outside
        # a labelled series that never alerts (a clean one that never alerts is the goal)
        self.silent_series += ev.alerts == 0 and ev.windows > 0
        self.delays.extend(ev.delays)
        self.delay_fractions.extend(ev.delay_fractions)

    @property
    def recall(self) -> float | None:
        return self.detected / self.windows if self.windows else None

    @property
    def precision(self) -> float | None:
        claimed = self.detected + self.false_alerts
        return self.detected / claimed if claimed else None

    @property
    def f1(self) -> float | None:
        if self.windows == 0:
            return None
        return f1_score(self.detected, self.false_alerts, self.windows)

    @property
    def false_per_10k(self) -> float | None:
        return 1e4 * self.false_alerts / self.points_outside if self.points_outside else None

    def to_json(self) -> dict[str, object]:
        def rounded(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {
            "series": self.series,
            "points": self.points,
            "windows": self.windows,
            "detected": self.detected,
            "false_alerts": self.false_alerts,
            "points_outside_windows": self.points_outside,
            "silent_series": self.silent_series,
            "recall": rounded(self.recall),
            "precision": rounded(self.precision),
            "f1": rounded(self.f1),
            "false_alerts_per_10k": rounded(self.false_per_10k),
            "median_delay_points": (statistics.median(self.delays) if self.delays else None),
            "median_delay_fraction": rounded(
                statistics.median(self.delay_fractions) if self.delay_fractions else None
            ),
        }


def f1_score(detected: int, false_alerts: int, windows: int) -> float:
    """Event F1 from the counts (0 when nothing was detected)."""
    if detected == 0:
        return 0.0
    precision = detected / (detected + false_alerts)
    recall = detected / windows
    return 2 * precision * recall / (precision + recall)


def onset_flags(scores: Sequence[float], threshold: float) -> list[int]:
    """1 where a run of ``score >= threshold`` begins (the sweep's alerts), else 0."""
    above = np.asarray(scores, dtype=float) >= threshold
    onset = above.copy()
    onset[1:] &= ~above[:-1]
    return [int(v) for v in onset]


def sweep_counts(
    scores: Sequence[float], labels: Sequence[tuple[int, int]], thresholds: Sequence[float]
) -> NDArray[np.int64]:
    """For each threshold, ``(detected, false_alerts, windows)`` of one series with the
    onsets of ``score >= θ`` as alerts; shape ``(len(thresholds), 3)``."""
    s = np.asarray(scores, dtype=float)
    n = len(s)
    windows = detection_windows(labels, n)
    in_window = np.zeros(n, dtype=bool)
    for lo, hi, _ in windows:
        in_window[lo : hi + 1] = True
    out = np.zeros((len(thresholds), 3), dtype=np.int64)
    out[:, 2] = len(windows)
    for k, th in enumerate(thresholds):
        above = s >= th
        onset = above.copy()
        onset[1:] &= ~above[:-1]
        out[k, 1] = int(np.count_nonzero(onset & ~in_window))
        out[k, 0] = sum(bool(onset[lo : hi + 1].any()) for lo, hi, _ in windows)
    return out


def best_threshold(pooled: NDArray[np.int64]) -> int:
    """Index into the thresholds of the best event F1 of ``pooled`` (the sum of
    :func:`sweep_counts` over a split); ties go to the lowest threshold."""
    f1s = [f1_score(int(d), int(f), int(w)) if w else 0.0 for d, f, w in pooled.tolist()]
    return int(np.argmax(f1s))


def pointwise_average_precision(
    scores: Sequence[float], values: Sequence[float | None], labels: Sequence[tuple[int, int]]
) -> float | None:
    """Average precision of the score column for "this point is in a label range", over
    the valid (non-missing) points; ``None`` without positive or negative points."""
    y = np.zeros(len(scores), dtype=bool)
    for start, end in labels:
        y[start : end + 1] = True
    valid = np.array([v is not None and math.isfinite(v) for v in values], dtype=bool)
    return average_precision(y[valid], np.asarray(scores, dtype=float)[valid])


def average_precision(positive: NDArray[np.bool_], scores: NDArray[np.float64]) -> float | None:
    """scikit-learn's average precision of ``scores`` for ``positive`` (pooled points);
    ``None`` when there is no positive or no negative point."""
    if not positive.any() or positive.all():
        return None
    return float(average_precision_score(positive, scores))
