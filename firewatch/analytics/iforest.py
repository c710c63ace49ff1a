"""IsolationForest scores of a few windows at a time, without sklearn's per-tree overhead.

``Pipeline.score_samples`` runs each of the forest's 200 trees through joblib, with a
fitted-check and a warnings context per tree: about 10 ms a call, however few the rows —
and the detectors score the windows a batch closed, a few rows, in many batches. The same
arithmetic done here directly (the scaler's ``transform``, then per tree in order
``tree_.apply`` on float32 rows and ``depths += path length + average path length - 1``,
then ``-2 ** (-depths / (trees × c(max_samples)))``) takes a millisecond or two.

It relies on the forest's private attributes, so the first call for each fitted forest
also asks sklearn and compares every bit; on any difference (another sklearn) that forest
is scored by sklearn from then on.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

#: fitted forest -> whether this module's scores equal sklearn's (checked on first use)
_AGREES: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def scores(pipeline: Any, x: npt.NDArray[Any]) -> tuple[F64, F64]:
    """(``pipeline.score_samples(x)``, ``pipeline[:-1].transform(x)``) of a fitted
    scaler → IsolationForest pipeline, as float64."""
    z = np.asarray(pipeline[:-1].transform(x), np.float64)
    forest = pipeline[-1]
    agrees = _AGREES.get(forest)
    if agrees:
        return _forest_scores(forest, z), z
    sk = np.asarray(pipeline.score_samples(x), np.float64)
    if agrees is None:
        try:
            own = _forest_scores(forest, z)
            _AGREES[forest] = own.shape == sk.shape and own.tobytes() == sk.tobytes()
        except (AttributeError, TypeError, ValueError, IndexError, ImportError):
            _AGREES[forest] = False
    return sk, z


def _forest_scores(forest: Any, z: F64) -> F64:
    """``IsolationForest.score_samples`` of scaled rows ``z`` (sklearn 1.3+'s arithmetic)."""
    from sklearn.ensemble._iforest import _average_path_length  # type: ignore[import-untyped]

    x = np.asarray(z, dtype=np.float32)  # as sklearn's input validation converts it
    subsample = forest._max_features != x.shape[1]
    depths: F64 = np.zeros(len(x), np.float64, order="F")
    paths, averages = forest._decision_path_lengths, forest._average_path_length_per_tree
    for i, (tree, features) in enumerate(
        zip(forest.estimators_, forest.estimators_features_, strict=True)
    ):
        leaves = tree.tree_.apply(x[:, features] if subsample else x)
        depths += paths[i][leaves] + averages[i][leaves] - 1.0
    denominator = len(forest.estimators_) * _average_path_length([forest._max_samples])
    out = 2 ** (-np.divide(depths, denominator, out=np.ones_like(depths), where=denominator != 0))
    return np.asarray(-out, np.float64)
