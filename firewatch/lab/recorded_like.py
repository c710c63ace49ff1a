"""Recorded-like labelled series for ``firewatch analytics score-eval``.

Generator families that imitate what recorded monitoring data looks like (heavy tails,
bursts, irregular sampling, gaps, missing values, quantisation, drifting baselines, daily
and weekly rhythms, regimes) and inject labelled anomalies. They are written by a rule of
their own, not by the scorer's assumptions, and every parameter is drawn from a wide range
per series (the ranges are in ``docs/analytics-score-evaluation.md``).

Each series comes from ``(family, seed, clean)``: the same triple always gives the same
series. ``clean=True`` is the same base series without its anomaly. The anomaly kind of a
seed is ``kinds[seed % len(kinds)]`` so that every kind occurs in every split.

Splits are fixed here: seeds 0-19 are ``tune`` (:data:`TUNE_SEEDS`), seeds 1000-1019 are
``held-out`` (:data:`HELD_OUT_SEEDS`); they never overlap.

Label ranges are inclusive point indices covering every point the anomaly changes; an
anomaly ends where the series returns to its normal behaviour (in ``textbook`` the change
lasts to the end of the series, as in ``docs/analytics-score.md``). The families are in
:mod:`firewatch.lab.recorded_like_families`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from firewatch.lab.recorded_like_families import FAMILIES, Generated
from firewatch.lab.score_metrics import LabelledSeries

__all__ = [
    "FAMILIES",
    "HELD_OUT_SEEDS",
    "TUNE_SEEDS",
    "generate",
    "recorded_like_series",
    "split_seeds",
]

TUNE_SEEDS: tuple[int, ...] = tuple(range(0, 20))
HELD_OUT_SEEDS: tuple[int, ...] = tuple(range(1000, 1020))
_FAMILY_INDEX = {name: i for i, name in enumerate(FAMILIES)}


def split_seeds(split: str) -> tuple[int, ...]:
    """The seeds of ``tune``, ``held-out`` or ``all`` (both)."""
    if split == "tune":
        return TUNE_SEEDS
    if split == "held-out":
        return HELD_OUT_SEEDS
    if split == "all":
        return TUNE_SEEDS + HELD_OUT_SEEDS
    raise ValueError(f"unknown split {split!r} (tune, held-out, all)")


def _split_of(seed: int) -> str:
    if seed in TUNE_SEEDS:
        return "tune"
    if seed in HELD_OUT_SEEDS:
        return "held-out"
    return "other"


def generate(family: str, seed: int, *, clean: bool = False) -> LabelledSeries:
    """The series of ``family`` for ``seed``, with its anomaly or (``clean``) without."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} ({', '.join(FAMILIES)})")
    spec = FAMILIES[family]
    kind = spec.kinds[seed % len(spec.kinds)]
    # one stream per (family, seed): the clean variant shares the base series, and the
    # anomaly draws come after the base draws
    rng = np.random.default_rng([seed, _FAMILY_INDEX[family]])
    g: Generated = spec.make(rng, kind, not clean)
    values: list[float | None] = [
        None if (g.missing is not None and g.missing[i]) else float(v)
        for i, v in enumerate(g.values)
    ]
    return LabelledSeries(
        name=f"{family}-{seed}-{'clean' if clean else kind}",
        source="recorded-like",
        family=family,
        split=_split_of(seed),
        timestamps=[float(t) for t in g.timestamps],
        values=values,
        labels=[] if clean else g.labels,
        anomaly="clean" if clean else kind,
        meta={"seed": seed, **g.params},
    )


def recorded_like_series(
    split: str,
    *,
    families: Iterable[str] | None = None,
    seeds: int | None = None,
) -> list[LabelledSeries]:
    """Every series of ``split``: for each family and seed, the anomalous series and its
    clean variant. ``seeds`` keeps only the first that many seeds of each split."""
    chosen = list(FAMILIES) if families is None else list(families)
    parts = [split_seeds(split)] if split != "all" else [TUNE_SEEDS, HELD_OUT_SEEDS]
    seed_list = [seed for part in parts for seed in (part if seeds is None else part[:seeds])]
    return [
        generate(family, seed, clean=clean)
        for family in chosen
        for seed in seed_list
        for clean in (False, True)
    ]
