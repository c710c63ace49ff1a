"""Event metrics of ``score-eval`` on hand-built flag and score sequences (the expected
figures are worked out by hand in the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from firewatch.lab.score_metrics import (
    EventCounts,
    LabelledSeries,
    best_threshold,
    detection_windows,
    evaluate_flags,
    label_ranges,
    onset_flags,
    pointwise_average_precision,
    sweep_counts,
)


def _flags(n: int, at: list[int]) -> list[int]:
    return [1 if i in at else 0 for i in range(n)]


def test_label_ranges_are_the_runs_of_the_mask() -> None:
    assert label_ranges([0, 1, 1, 0, 0, 1]) == [(1, 2), (5, 5)]
    assert label_ranges([1.0, 0.0]) == [(0, 0)]
    assert label_ranges([0, 0]) == []


def test_windows_pad_by_a_share_with_a_floor_and_a_cap_and_merge() -> None:
    # 10 points: 10 % is 1, the floor of 5 applies
    assert detection_windows([(50, 59)], 100) == [(45, 64, 50)]
    # 300 points: pad 30
    assert detection_windows([(100, 399)], 1000) == [(70, 429, 100)]
    # 5000 points: 500 is capped at 200, and clipped to the series
    assert detection_windows([(100, 5099)], 5200) == [(0, 5199, 100)]
    # [5, 19] and [17, 30] overlap: one event, its delay counted from the first label
    assert detection_windows([(10, 14), (22, 25)], 40) == [(5, 30, 10)]


def test_evaluate_flags_counts_detections_false_alerts_and_delays() -> None:
    # window [45, 64]: 47 is the detection (3 points early), 50 is neither, 10/70/90 false
    ev = evaluate_flags(_flags(100, [10, 47, 50, 70, 90]), [(50, 59)])
    assert (ev.windows, ev.detected, ev.false_alerts, ev.alerts) == (1, 1, 3, 5)
    assert ev.points_outside == 80
    assert ev.delays == [-3]
    assert ev.delay_fractions == [pytest.approx(2 / 20)]
    late = evaluate_flags(_flags(100, [60]), [(50, 59)])
    assert late.delays == [10]
    assert late.delay_fractions == [pytest.approx(15 / 20)]
    missed = evaluate_flags(_flags(100, []), [(50, 59)])
    assert (missed.detected, missed.false_alerts, missed.delays) == (0, 0, [])


def test_event_counts_pool_series() -> None:
    counts = EventCounts()
    counts.add(evaluate_flags(_flags(100, [10, 47, 50, 70, 90]), [(50, 59)]))
    counts.add(evaluate_flags(_flags(50, [5]), []))  # a clean series: one false alert
    counts.add(evaluate_flags(_flags(100, []), [(30, 39)]))  # labelled, never alerts
    assert (counts.windows, counts.detected, counts.false_alerts) == (2, 1, 4)
    assert counts.silent_series == 1  # the clean series' silence is not counted
    assert counts.recall == pytest.approx(1 / 2)
    assert counts.precision == pytest.approx(1 / 5)
    assert counts.f1 == pytest.approx(2 * 0.2 * 0.5 / 0.7)
    assert counts.points_outside == 80 + 50 + 80
    assert counts.false_per_10k == pytest.approx(4 / 210 * 1e4)
    doc = counts.to_json()
    assert doc["median_delay_points"] == -3
    assert doc["series"] == 3
    empty = EventCounts()
    assert empty.recall is None
    assert empty.precision is None
    assert empty.f1 is None


def test_onsets_count_a_run_above_the_threshold_once() -> None:
    assert onset_flags([0.1, 0.6, 0.7, 0.2, 0.6], 0.5) == [0, 1, 0, 0, 1]


def test_sweep_counts_and_the_best_threshold_of_a_split() -> None:
    scores = [0.0] * 30
    scores[3], scores[4], scores[10], scores[22], scores[23] = 0.6, 0.7, 0.4, 0.8, 0.9
    thresholds = [0.3, 0.5, 0.75, 0.95]
    got = sweep_counts(scores, [(20, 21)], thresholds)  # window [15, 26]
    # 0.3: onsets 3, 10, 22; 0.5: 3, 22; 0.75: 22 (23 continues the run); 0.95: none
    assert got.tolist() == [[1, 2, 1], [1, 1, 1], [1, 0, 1], [0, 0, 1]]
    # a second series where only the lowest threshold finds its event
    other = sweep_counts([0.0] * 10 + [0.35] + [0.0] * 19, [(10, 10)], thresholds)
    assert other.tolist() == [[1, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 1]]
    pooled = got + other
    # F1 per threshold: 0.3 -> P 2/4, R 1 = 0.667; 0.5 -> P 1/2, R 1/2 = 0.5;
    # 0.75 -> P 1, R 1/2 = 0.667 (tie with 0.3: the lower wins); 0.95 -> 0
    assert best_threshold(pooled) == 0
    assert best_threshold(np.array([[0, 5, 1], [1, 0, 1]], dtype=np.int64)) == 1


def test_pointwise_average_precision_skips_missing_points() -> None:
    scores = [0.9, 0.1, 0.8, 0.2]
    assert pointwise_average_precision(scores, [1.0] * 4, [(0, 0)]) == pytest.approx(1.0)
    # the positive ranks second behind a negative: precision 1/2 at full recall
    assert pointwise_average_precision(scores, [1.0] * 4, [(2, 2)]) == pytest.approx(0.5)
    assert pointwise_average_precision(scores, [None, 1.0, 1.0, 1.0], [(2, 2)]) == 1.0
    assert pointwise_average_precision(scores, [1.0] * 4, []) is None


def test_labelled_series_refuses_labels_outside_the_series() -> None:
    with pytest.raises(ValueError, match="not inside"):
        LabelledSeries("x", "public", "f", "tune", [0.0, 1.0], [1.0, 2.0], [(1, 2)])
    with pytest.raises(ValueError, match="differ in length"):
        LabelledSeries("x", "public", "f", "tune", [0.0], [1.0, 2.0], [])
