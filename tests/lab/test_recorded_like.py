"""The recorded-like generators: determinism, splits, labels, clean variants, irregularity."""

from __future__ import annotations

import math

import pytest

from firewatch.lab.recorded_like import (
    FAMILIES,
    HELD_OUT_SEEDS,
    TUNE_SEEDS,
    generate,
    recorded_like_series,
    split_seeds,
)

# two seeds per family keep this file fast; every family and both variants are covered
SEEDS = (TUNE_SEEDS[0], TUNE_SEEDS[1])


def test_tune_and_held_out_seeds_never_overlap() -> None:
    assert set(TUNE_SEEDS).isdisjoint(HELD_OUT_SEEDS)
    assert split_seeds("tune") == tuple(range(0, 20))
    assert split_seeds("held-out") == tuple(range(1000, 1020))
    assert len(split_seeds("all")) == 40
    with pytest.raises(ValueError, match="unknown split"):
        split_seeds("test")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_seed_always_gives_the_same_series(family: str) -> None:
    a, b = generate(family, 3), generate(family, 3)
    assert a.values == b.values
    assert a.timestamps == b.timestamps
    assert a.labels == b.labels
    assert generate(family, 4).values != a.values


@pytest.mark.parametrize("family", list(FAMILIES))
def test_labels_lie_inside_and_clean_variants_have_none(family: str) -> None:
    for seed in SEEDS:
        s = generate(family, seed)
        n = len(s.values)
        lo, hi = (50, 300) if family == "short" else (1000, 8000)
        assert lo <= n <= hi
        assert s.labels, f"{s.name} has no label"
        assert all(0 <= a <= b < n for a, b in s.labels)
        assert s.anomaly == FAMILIES[family].kinds[seed % len(FAMILIES[family].kinds)]
        assert all(t2 >= t1 for t1, t2 in zip(s.timestamps, s.timestamps[1:], strict=False))
        clean = generate(family, seed, clean=True)
        assert clean.labels == []
        assert clean.anomaly == "clean"
        assert len(clean.values) == n
        if family in ("irregular", "short", "textbook"):
            # anomalies added on top of the base: the clean variant is identical elsewhere
            outside = [i for i in range(n) if not any(a <= i <= b for a, b in s.labels)]
            assert all(s.values[i] == clean.values[i] for i in outside)
            assert s.values != clean.values


def test_every_kind_occurs_in_both_splits() -> None:
    for spec in FAMILIES.values():
        for seeds in (TUNE_SEEDS, HELD_OUT_SEEDS):
            assert {spec.kinds[s % len(spec.kinds)] for s in seeds} == set(spec.kinds)


def test_the_irregular_family_is_irregular_and_has_missing_values() -> None:
    s = generate("irregular", 0)
    steps = [b - a for a, b in zip(s.timestamps, s.timestamps[1:], strict=False)]
    median = sorted(steps)[len(steps) // 2]
    assert max(steps) > 20 * median  # gaps
    assert min(steps) < 0.2 * median  # Poisson arrivals, not a grid
    missing = sum(v is None for v in s.values)
    assert 0 < missing < 0.1 * len(s.values)
    assert all(v is None or math.isfinite(v) for v in s.values)


def test_textbook_matches_the_scorer_docs_suite() -> None:
    s = generate("textbook", 2)  # kind 2: noise:level_shift
    assert s.anomaly == "noise:level_shift"
    assert len(s.values) == 3456
    assert s.labels == [(2880, 3455)]
    assert s.timestamps[1] - s.timestamps[0] == 300.0
    spike = generate("textbook", 0)
    clean = generate("textbook", 0, clean=True)
    v, c = spike.values[2880], clean.values[2880]
    assert v is not None
    assert c is not None
    assert v - c == pytest.approx(7.0)


def test_series_of_a_split_pair_each_anomaly_with_its_clean_variant() -> None:
    series = recorded_like_series("held-out", families=["short"], seeds=2)
    assert [s.name for s in series] == [
        f"short-{seed}-{kind}"
        for seed in HELD_OUT_SEEDS[:2]
        for kind in (FAMILIES["short"].kinds[seed % 3], "clean")
    ]
    assert {s.split for s in series} == {"held-out"}


def test_seeds_limits_each_split_of_all() -> None:
    series = recorded_like_series("all", families=["short"], seeds=1)
    assert [(s.meta["seed"], s.split) for s in series] == [
        (TUNE_SEEDS[0], "tune"),
        (TUNE_SEEDS[0], "tune"),
        (HELD_OUT_SEEDS[0], "held-out"),
        (HELD_OUT_SEEDS[0], "held-out"),
    ]
