"""``analytics/iforest.py`` scores a fitted scaler → IsolationForest pipeline without
sklearn's per-tree overhead, and must give exactly sklearn's scores (or let sklearn score)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest  # type: ignore[import-untyped]
from sklearn.pipeline import Pipeline  # type: ignore[import-untyped]
from sklearn.preprocessing import RobustScaler  # type: ignore[import-untyped]

from firewatch.analytics import iforest


def _fitted(max_features: float = 1.0) -> Pipeline:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 5))
    pipe = Pipeline(
        [
            ("scale", RobustScaler()),
            ("forest", IsolationForest(n_estimators=50, max_features=max_features, random_state=1)),
        ]
    )
    return pipe.fit(x)


def test_scores_equal_sklearns_bit_for_bit_and_are_then_trusted() -> None:
    for max_features in (1.0, 0.6):  # all features, and a subsample per tree
        pipe = _fitted(max_features)
        rows = np.random.default_rng(4).normal(size=(7, 5)) * 3
        first, scaled = iforest.scores(pipe, rows)  # checked against sklearn
        assert first.tobytes() == np.asarray(pipe.score_samples(rows), np.float64).tobytes()
        assert np.array_equal(scaled, pipe[:-1].transform(rows))
        assert iforest._AGREES[pipe[-1]] is True
        again, _ = iforest.scores(pipe, rows)  # now computed here only
        assert again.tobytes() == first.tobytes()


def test_a_forest_it_cannot_reproduce_is_scored_by_sklearn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As if another sklearn computed differently: the first comparison fails, and that
    forest is scored by sklearn from then on."""
    pipe = _fitted()
    rows = np.random.default_rng(5).normal(size=(3, 5))
    real = iforest._forest_scores
    monkeypatch.setattr(iforest, "_forest_scores", lambda f, z: real(f, z) + 1e-12)
    expected = np.asarray(pipe.score_samples(rows), np.float64).tobytes()
    for _ in range(2):
        got, _ = iforest.scores(pipe, rows)
        assert got.tobytes() == expected
    assert iforest._AGREES[pipe[-1]] is False
