"""Offline and streaming anomaly scoring of any univariate series (issues 4 and 16): the
public entry points.

``score_series`` runs a :class:`~firewatch.scoring.streaming_scorer.StreamingScorer` over a
whole series (sorted by time) and ``score_csv`` is the ``firewatch analytics score``
command's file-to-file form. The method is described in ``docs/analytics-score.md``; the
pieces are ``streaming_scorer.py`` (the per-point orchestrator), ``predictors.py``,
``baseline.py``, ``detectors.py``, ``streaming_stats.py`` and ``series_file.py`` (CSV files).
This module re-exports what callers use, so ``firewatch.scoring.scorer`` stays the one import.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from firewatch.scoring.series_file import (
    SeriesFileError,
    SeriesRows,
    parse_timestamp,
    read_series_csv,
    to_seconds,
    write_scores_csv,
)
from firewatch.scoring.streaming_scorer import COMPONENTS, StreamingScorer

__all__ = [
    "COMPONENTS",
    "ScoreResult",
    "SeriesFileError",
    "SeriesRows",
    "StreamingScorer",
    "parse_timestamp",
    "read_series_csv",
    "score_csv",
    "score_series",
]


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
    keys = [to_seconds(t) for t in timestamps]
    order = sorted(range(len(keys)), key=lambda i: k if (k := keys[i]) is not None else -math.inf)
    scorer = StreamingScorer(threshold)
    scores = [0.0] * len(values)
    flags = [0] * len(values)
    for i in order:
        scores[i], flags[i] = scorer.update(keys[i], values[i])
    return ScoreResult(scores, flags)


def score_csv(input_path: Path, output_path: Path, *, threshold: float = 0.5) -> str:
    """Score ``input_path`` into ``output_path`` (columns timestamp, value, anomaly_score,
    is_anomaly; rows in input order). Returns a one-line summary."""
    rows = read_series_csv(input_path)
    result = score_series(rows.times, rows.values, threshold=threshold)
    write_scores_csv(output_path, rows, result.scores, result.flags)
    missing = sum(v is None for v in rows.values)
    return (
        f"scored {len(rows.values)} points ({missing} missing), "
        f"{sum(result.flags)} flagged at threshold {threshold} -> {output_path}"
    )
