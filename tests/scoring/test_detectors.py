"""The window detectors (shape, distribution) and their chi-square priors, on their own."""

from __future__ import annotations

import numpy as np
import pytest

from firewatch.scoring.detectors import (
    INFLATION_MIN,
    DistributionDetector,
    Inflation,
    ShapeDetector,
    chi2_median,
    chi2_surprise,
)


def test_chi2_surprise_matches_known_tail_probabilities() -> None:
    # P(chi2_10 >= 18.307) = 0.05, P(chi2_10 >= 29.588) = 0.001, P(chi2_1 >= 10.828) = 0.001
    assert chi2_surprise(18.307, 10) == pytest.approx(-np.log10(0.05), abs=0.05)
    assert chi2_surprise(29.588, 10) == pytest.approx(3.0, abs=0.15)
    assert chi2_surprise(10.828, 1) == pytest.approx(3.0, abs=0.3)
    assert chi2_surprise(0.0, 5) == 0.0
    assert chi2_median(10) == pytest.approx(9.342, abs=0.01)


def test_inflation_deflates_a_statistic_by_its_typical_size() -> None:
    inflation = Inflation(10)
    assert inflation.factor() == -1.0
    assert inflation.surprise(100.0, inflation.factor()) == 0.0  # nothing known yet
    for _ in range(INFLATION_MIN):
        inflation.add(4.0 * chi2_median(10))  # a statistic running four times too large
    factor = inflation.factor()
    assert factor == pytest.approx(4.0)
    assert inflation.surprise(4.0 * 29.588, factor) == pytest.approx(chi2_surprise(29.588, 10))


def _pattern(n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    beat = np.zeros(20)
    beat[2:6] = [2.0, 8.0, -2.0, 1.0]
    values: list[float] = (np.tile(beat, n // 20 + 1)[:n] + rng.normal(0.0, 0.05, n)).tolist()
    return values


def test_shape_detector_knows_a_repeating_pattern_and_flags_a_new_shape() -> None:
    det = ShapeDetector()
    stats = [det.update(v, 0.05, -1e9, 1e9) for v in _pattern(2000, seed=1)]
    assert stats[:15] == [None] * 15  # a subsequence needs 16 values
    assert stats[1200] is None or stats[1201] is None  # judged every second value only
    seen = [s for s in stats[1200:] if s is not None]
    assert det.repeating
    assert max(seen) < 10.0  # same pattern, noise only: about sqrt(2 * 14) noise sd
    odd = [det.update(v, 0.05, -1e9, 1e9) for v in [0.0, 0.0, 8.0, 2.0, -2.0, 1.0] + [0.0] * 14]
    assert max(s for s in odd if s is not None) > 50.0
    assert det.prior(60.0) > det.prior(20.0) > 0.0


def test_shape_detector_is_silent_on_noise_and_clips_to_the_usual_range() -> None:
    det = ShapeDetector()
    rng = np.random.default_rng(2)
    for v in rng.normal(0.0, 1.0, 3000).tolist():
        det.update(v, 1.0, -3.0, 3.0)
    assert not det.repeating  # the nearest neighbour of noise explains little
    # a value far outside the usual range counts as the range's edge
    clipped = ShapeDetector()
    plain = ShapeDetector()
    values = rng.normal(0.0, 1.0, 1200).tolist()
    values[-3] = 1e6
    a = [clipped.update(v, 1.0, -3.0, 3.0) for v in values]
    b = [plain.update(v, 1.0, -1e9, 1e9) for v in values]
    judged = [i for i in range(len(values) - 3, len(values)) if a[i] is not None]
    assert judged  # a subsequence holding the wild value was judged
    for i in judged:
        ai, bi = a[i], b[i]
        assert ai is not None
        assert bi is not None
        assert ai < 10.0 < bi


def test_distribution_detector_sees_a_changed_histogram_not_the_same_one() -> None:
    rng = np.random.default_rng(3)
    reference = sorted(rng.normal(0.0, 1.0, 2000).tolist())
    det = DistributionDetector()
    same = [det.update(v, reference, 0.3) for v in rng.normal(0.0, 1.0, 400).tolist()]
    assert same[:63] == [None] * 63  # the window fills first
    got = [s for s in same if s is not None]
    assert len(got) == pytest.approx((400 - 63) / 4, abs=1)  # every fourth value
    assert float(np.median(got)) < 15.0  # about the chi-square median with 7 dof
    bimodal = rng.choice([-2.0, 2.0], 64) + rng.normal(0.0, 0.2, 64)
    changed = [det.update(v, reference, 0.3) for v in bimodal.tolist()]
    stat = max(s for s in changed if s is not None)
    assert stat > 60.0
    assert det.prior(stat) > 3.0
    # too little reference: nothing to say
    assert DistributionDetector().update(0.0, reference[:100], 0.3) is None


def test_distribution_detector_merges_narrow_bins() -> None:
    """A quantised series: most octiles coincide, bins merge, the test still works."""
    rng = np.random.default_rng(4)
    reference = sorted(rng.poisson(1.0, 2000).astype(float).tolist())
    det = DistributionDetector(every=1)
    stats = [det.update(v, reference, 0.5) for v in rng.poisson(1.0, 200).astype(float).tolist()]
    assert max(s for s in stats if s is not None) < 25.0
    high = [det.update(v, reference, 0.5) for v in rng.poisson(4.0, 64).astype(float).tolist()]
    last = high[-1]
    assert last is not None
    assert last > 50.0
