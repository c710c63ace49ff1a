"""``firewatch analytics score-eval``: offline scorers against labelled series.

Runs each scorer (``firewatch`` = :func:`firewatch.scoring.scorer.score_series`,
``gaussian`` = :func:`firewatch.lab.gaussian_baseline.score_series_gaussian`) over every
series of a split (the public series of :mod:`firewatch.lab.public_series` and the
recorded-like series of :mod:`firewatch.lab.recorded_like`), scores the flags and the score
column with :mod:`firewatch.lab.score_metrics`, and reports per source, per family and in
total. Scoring time is the process CPU time of the scorer call alone.

The split is chosen by name only; nothing here looks at results to pick series or
parameters. Run ``--split held-out`` once, for the final report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firewatch.lab.gaussian_baseline import score_series_gaussian
from firewatch.lab.public_series import CATALOGUE, load_public_series
from firewatch.lab.recorded_like import FAMILIES, recorded_like_series
from firewatch.lab.score_metrics import (
    PAD_CAP,
    PAD_FLOOR,
    PAD_SHARE,
    SWEEP_THRESHOLDS,
    EventCounts,
    LabelledSeries,
    SeriesEvents,
    average_precision,
    best_threshold,
    evaluate_flags,
    f1_score,
    pointwise_average_precision,
    sweep_counts,
)
from firewatch.scoring.scorer import ScoreResult, score_series

__all__ = ["SCORERS", "EvalError", "EvalReport", "run_score_eval", "select_series"]

Scorer = Callable[..., ScoreResult]
SCORERS: dict[str, Scorer] = {"firewatch": score_series, "gaussian": score_series_gaussian}
PUBLIC_FAMILIES = tuple(dict.fromkeys(e.family for e in CATALOGUE))
SOURCES = ("public", "recorded-like")


class EvalError(Exception):
    """A bad split, scorer or family name (the public data's own errors pass through)."""


def _families(names: Iterable[str] | None) -> tuple[set[str], set[str]]:
    """Public and recorded-like families selected by ``names`` (family names, or the
    source names ``public`` / ``recorded-like`` for all of theirs); all when ``None``."""
    if names is None:
        return set(PUBLIC_FAMILIES), set(FAMILIES)
    public: set[str] = set()
    recorded: set[str] = set()
    for name in names:
        if name == "public":
            public |= set(PUBLIC_FAMILIES)
        elif name == "recorded-like":
            recorded |= set(FAMILIES)
        elif name in PUBLIC_FAMILIES:
            public.add(name)
        elif name in FAMILIES:
            recorded.add(name)
        else:
            known = ", ".join((*SOURCES, *PUBLIC_FAMILIES, *FAMILIES))
            raise EvalError(f"unknown family {name!r} (one of: {known})")
    return public, recorded


def select_series(
    split: str,
    *,
    families: Iterable[str] | None = None,
    seeds: int | None = None,
    data_dir: Path | None = None,
) -> list[LabelledSeries]:
    """The series of ``split`` (``tune``, ``held-out``, ``all``) in ``families``; ``seeds``
    keeps the first that many seeds of each recorded-like family."""
    if split not in ("tune", "held-out", "all"):
        raise EvalError(f"unknown split {split!r} (tune, held-out, all)")
    public, recorded = _families(families)
    out: list[LabelledSeries] = []
    if public:
        out += load_public_series(split, data_dir, families=public)
    if recorded:
        out += recorded_like_series(split, families=sorted(recorded), seeds=seeds)
    return out


@dataclass
class SeriesRun:
    """One scorer on one series."""

    events: SeriesEvents
    scores: list[float]
    cpu_s: float
    sweep: NDArray[np.int64]  # (thresholds, 3): detected, false alerts, windows
    ap: float | None


@dataclass
class Group:
    """Event counts of a group of series: all of them, and their clean series alone."""

    all: EventCounts = field(default_factory=EventCounts)
    clean: EventCounts = field(default_factory=EventCounts)
    sweep: NDArray[np.int64] = field(
        default_factory=lambda: np.zeros((len(SWEEP_THRESHOLDS), 3), dtype=np.int64)
    )
    y: list[NDArray[np.bool_]] = field(default_factory=list)
    s: list[NDArray[np.float64]] = field(default_factory=list)

    def add(self, series: LabelledSeries, run: SeriesRun) -> None:
        self.all.add(run.events)
        if not series.labels:
            self.clean.add(run.events)
        self.sweep = self.sweep + run.sweep
        valid = np.array([v is not None and math.isfinite(v) for v in series.values])
        y = np.zeros(len(series.values), dtype=bool)
        for a, b in series.labels:
            y[a : b + 1] = True
        self.y.append(y[valid])
        self.s.append(np.asarray(run.scores, dtype=np.float64)[valid])

    def average_precision(self) -> float | None:
        return average_precision(np.concatenate(self.y), np.concatenate(self.s))

    def at(self, k: int) -> dict[str, object]:
        detected, false, windows = (int(v) for v in self.sweep[k])
        return {
            "threshold": SWEEP_THRESHOLDS[k],
            "detected": detected,
            "false_alerts": false,
            "windows": windows,
            "f1": round(f1_score(detected, false, windows), 4) if windows else None,
        }

    def to_json(self, best: int) -> dict[str, object]:
        ap = self.average_precision()
        return {
            **self.all.to_json(),
            "clean_series": self.clean.series,
            "clean_false_alerts_per_10k": self.clean.to_json()["false_alerts_per_10k"],
            "at_best_threshold": self.at(best),
            "average_precision": None if ap is None else round(ap, 4),
        }


def _run_one(scorer: Scorer, series: LabelledSeries, threshold: float) -> SeriesRun:
    stamps: Sequence[datetime | float] = series.timestamps
    start = time.process_time()
    result = scorer(stamps, series.values, threshold=threshold)
    cpu = time.process_time() - start
    return SeriesRun(
        events=evaluate_flags(result.flags, series.labels),
        scores=result.scores,
        cpu_s=cpu,
        sweep=sweep_counts(result.scores, series.labels, SWEEP_THRESHOLDS),
        ap=pointwise_average_precision(result.scores, series.values, series.labels),
    )


@dataclass
class EvalReport:
    """Everything one ``score-eval`` run measured."""

    split: str
    threshold: float
    scorers: list[str]
    series: list[LabelledSeries]
    runs: dict[str, list[SeriesRun]]

    def _groups(self, name: str) -> dict[str, Group]:
        groups: dict[str, Group] = {}
        for series, run in zip(self.series, self.runs[name], strict=True):
            keys = ["total", series.source, f"{series.source}/{series.family}"]
            if series.source == "public" and ":" in series.name:  # a channel (Daphnet)
                keys.append(f"{series.source}/{series.family}/{series.name.split(':', 1)[1]}")
            for key in keys:
                groups.setdefault(key, Group()).add(series, run)
        return groups

    def to_json(self) -> dict[str, Any]:
        scorers: dict[str, object] = {}
        best_of: dict[str, int] = {}
        for name in self.scorers:
            groups = self._groups(name)
            best = best_of[name] = best_threshold(groups["total"].sweep)
            cpu = sum(r.cpu_s for r in self.runs[name])
            points = sum(len(s.values) for s in self.series)
            scorers[name] = {
                "cpu_s": round(cpu, 3),
                "points": points,
                "points_per_cpu_s": round(points / cpu, 1) if cpu > 0 else None,
                "best_threshold": groups["total"].at(best),
                "groups": {key: g.to_json(best) for key, g in sorted(groups.items())},
            }
        per_series = []
        for i, s in enumerate(self.series):
            results: dict[str, object] = {}
            for name in self.scorers:
                run = self.runs[name][i]
                d, f, w = (int(v) for v in run.sweep[best_of[name]])
                results[name] = {
                    **run.events.to_json(),
                    "best_threshold": {"detected": d, "false_alerts": f, "windows": w},
                    "average_precision": None if run.ap is None else round(run.ap, 4),
                    "cpu_s": round(run.cpu_s, 4),
                }
            per_series.append(
                {
                    "name": s.name,
                    "source": s.source,
                    "family": s.family,
                    "split": s.split,
                    "anomaly": s.anomaly,
                    "labels": [list(r) for r in s.labels],
                    "n_points": len(s.values),
                    "missing": sum(v is None for v in s.values),
                    "meta": s.meta,
                    "results": results,
                }
            )
        return {
            "split": self.split,
            "threshold": self.threshold,
            "definitions": {
                "pad": {"share": PAD_SHARE, "floor": PAD_FLOOR, "cap": PAD_CAP},
                "sweep_thresholds": list(SWEEP_THRESHOLDS),
                "docs": "docs/analytics-score-evaluation.md",
            },
            "scorers": scorers,
            "series": per_series,
        }

    def format_text(self) -> str:
        """One table per scorer: a row per source/family, per source and the total."""
        data = self.to_json()
        lines = [f"score-eval: split {self.split}, threshold {self.threshold}"]
        head = (
            f"{'group':<36}{'series':>7}{'points':>9}{'win':>5}{'det':>5}{'recall':>7}"
            f"{'prec':>6}{'F1':>6}{'FA':>5}{'FA/10k':>7}{'clean':>7}{'silent':>7}"
            f"{'delay':>7}{'frac':>6}{'bestF1':>7}{'AP':>6}"
        )
        for name in self.scorers:
            sc = data["scorers"][name]
            best = sc["best_threshold"]
            lines += [
                "",
                f"{name}: {sc['points_per_cpu_s']} points/s (process CPU), best threshold "
                f"{best['threshold']:.6g} (F1 {best['f1']})",
                head,
            ]
            for key, g in sc["groups"].items():
                lines.append(_row(key, g))
        return "\n".join(lines)


def _fmt(x: object, width: int, digits: int = 2) -> str:
    if x is None:
        return f"{'-':>{width}}"
    if isinstance(x, float):
        return f"{x:>{width}.{digits}f}"
    return f"{x!s:>{width}}"


def _row(key: str, g: dict[str, object]) -> str:
    best = g["at_best_threshold"]
    assert isinstance(best, dict)
    return (
        f"{key:<36}{_fmt(g['series'], 7)}{_fmt(g['points'], 9)}{_fmt(g['windows'], 5)}"
        f"{_fmt(g['detected'], 5)}{_fmt(g['recall'], 7)}{_fmt(g['precision'], 6)}"
        f"{_fmt(g['f1'], 6)}{_fmt(g['false_alerts'], 5)}"
        f"{_fmt(g['false_alerts_per_10k'], 7, 1)}{_fmt(g['clean_false_alerts_per_10k'], 7, 1)}"
        f"{_fmt(g['silent_series'], 7)}{_fmt(g['median_delay_points'], 7, 1)}"
        f"{_fmt(g['median_delay_fraction'], 6)}{_fmt(best['f1'], 7)}"
        f"{_fmt(g['average_precision'], 6)}"
    )


def run_score_eval(
    split: str,
    *,
    scorers: Sequence[str] = ("firewatch", "gaussian"),
    families: Iterable[str] | None = None,
    threshold: float = 0.5,
    data_dir: Path | None = None,
    seeds: int | None = None,
) -> EvalReport:
    """Score every series of ``split`` with every scorer; see the module docstring."""
    unknown = [s for s in scorers if s not in SCORERS]
    if unknown or not scorers:
        raise EvalError(f"unknown scorer {unknown[0] if unknown else ''!r} ({', '.join(SCORERS)})")
    if not 0.0 < threshold <= 1.0:
        raise EvalError("--threshold must be in (0, 1]")
    series = select_series(split, families=families, seeds=seeds, data_dir=data_dir)
    if not series:
        raise EvalError(f"no series in split {split!r} for the families chosen")
    runs = {name: [_run_one(SCORERS[name], s, threshold) for s in series] for name in scorers}
    return EvalReport(split, threshold, list(scorers), series, runs)
