"""Streaming anomaly scoring (issue 4): no look-ahead, scale invariance, detection of the
common anomaly types on synthetic series, false-positive rate, robustness and the CLI."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from firewatch.cli import main
from firewatch.scoring.scorer import (
    ScoreResult,
    StreamingScorer,
    parse_timestamp,
    read_series_csv,
    score_series,
)
from firewatch.scoring.streaming_stats import RollingQuantile, TailCalibrator, detect_period

STEP = 300.0  # 5-minute sampling
DAY = 288  # samples per day
T0 = 1_700_000_000.0


def _times(n: int) -> list[float]:
    return [T0 + STEP * i for i in range(n)]


def _noise(n: int, seed: int) -> np.ndarray:
    return 10.0 + np.random.default_rng(seed).normal(0.0, 1.0, n)


def _seasonal(n: int, seed: int) -> np.ndarray:
    """A daily cycle (amplitude 10) plus unit noise, sampled every 5 minutes."""
    t = np.arange(n)
    return 20.0 + 10.0 * np.sin(2 * np.pi * t / DAY) + np.random.default_rng(seed).normal(0, 1, n)


def _flags(x: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.array(score_series(_times(len(x)), x.tolist()).flags))


def _first_detection(x: np.ndarray, onset: int, within: int) -> int:
    """Delay (points) of the first flag in [onset, onset + within); fails if none, or if
    anything was flagged before the onset."""
    flags = _flags(x)
    assert not flags[flags < onset].tolist(), "false alarms before the anomaly"
    hits = flags[(flags >= onset) & (flags < onset + within)]
    assert hits.size, f"not detected within {within} points"
    return int(hits[0] - onset)


# --- the streaming contract ------------------------------------------------------------------
def test_no_look_ahead_prefix_scores_equal_full_run_scores() -> None:
    x = _seasonal(3200, seed=1)
    x[1500] += 8.0
    x[2200:] += 4.0
    values: list[float | None] = [float(v) for v in x]
    values[700] = None
    values[701] = math.nan
    ts = _times(len(values))
    full = score_series(ts, values)
    for k in (100, 901, 1501, 2210, 3199):
        prefix = score_series(ts[:k], values[:k])
        assert prefix.scores == full.scores[:k]
        assert prefix.flags == full.flags[:k]
    # the streaming object is what score_series runs: same numbers point by point
    scorer = StreamingScorer()
    streamed = [scorer.update(t, v) for t, v in zip(ts, values, strict=True)]
    assert [s for s, _ in streamed] == full.scores
    assert [f for _, f in streamed] == full.flags


def test_scale_and_offset_do_not_change_the_flags() -> None:
    x = _seasonal(3500, seed=2)
    x[1500] += 9.0
    x[2200:] += 5.0
    x[3000:3100] = x[2999]
    base = score_series(_times(len(x)), x.tolist())
    moved = score_series(_times(len(x)), (x * 1000.0 + 1e6).tolist())
    assert sum(base.flags) >= 3
    assert moved.flags == base.flags
    assert np.allclose(moved.scores, base.scores, atol=1e-6)


def test_results_come_back_in_input_order_for_unsorted_timestamps() -> None:
    x = _noise(600, seed=3)
    x[400] += 9.0
    ts = _times(len(x))
    ordered = score_series(ts, x.tolist())
    perm = np.random.default_rng(3).permutation(len(x))
    shuffled = score_series([ts[i] for i in perm], [float(x[i]) for i in perm])
    assert shuffled.scores == [ordered.scores[i] for i in perm]
    assert shuffled.flags == [ordered.flags[i] for i in perm]


# --- detection -------------------------------------------------------------------------------
def test_detects_a_spike_in_a_noisy_daily_cycle() -> None:
    x = _seasonal(12 * DAY, seed=4)
    onset = 10 * DAY + 100
    x[onset] += 7.0  # 7 noise sd, well inside the cycle's range (20 +- 10)
    assert _first_detection(x, onset, 1) == 0


def test_detects_a_contextual_dip_at_the_daily_peak() -> None:
    """A value normal for the series but wrong for the time of day."""
    x = _seasonal(12 * DAY, seed=5)
    onset = 10 * DAY + DAY // 4  # the daily maximum (~30)
    x[onset : onset + 6] -= 8.0  # down to ~22, a level seen every day
    assert _first_detection(x, onset, 6) <= 3


def test_detects_a_level_shift() -> None:
    x = _noise(4000, seed=6)
    x[3000:] += 3.0  # 3 sd
    assert _first_detection(x, 3000, 20) <= 10


def test_detects_a_level_shift_in_a_seasonal_series() -> None:
    x = _seasonal(12 * DAY, seed=7)
    onset = 10 * DAY + 50
    x[onset:] += 4.0
    assert _first_detection(x, onset, 20) <= 10


def test_detects_a_slow_drift() -> None:
    x = _noise(4000, seed=8)
    x[3000:] += 0.02 * np.arange(1000)  # 1 sd per 50 points
    assert _first_detection(x, 3000, 200) <= 150


def test_detects_a_variance_change() -> None:
    x = _seasonal(12 * DAY, seed=9)
    onset = 10 * DAY
    x[onset:] += np.random.default_rng(99).normal(0.0, 2.83, x.size - onset)  # sd 1 -> 3
    assert _first_detection(x, onset, 100) <= 60


def test_detects_a_stuck_sensor() -> None:
    x = _noise(4000, seed=10)
    x[3000:3200] = x[2999]
    assert _first_detection(x, 3000, 30) <= 15


def test_one_event_gives_one_alert() -> None:
    x = _noise(4000, seed=11)
    x[3000:3200] = x[2999]  # a 200-point stuck stretch
    x[3500:] += 8.0  # and a large persistent shift
    flags = _flags(x)
    assert len(flags[(flags >= 3000) & (flags < 3200)]) == 1
    assert len(flags[flags >= 3500]) <= 2


# --- false positives -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["noise", "seasonal", "random_walk", "counts"])
def test_few_false_alarms_on_long_clean_series(kind: str) -> None:
    n, warm = 15000, 500
    rng = np.random.default_rng(12)
    if kind == "noise":
        x = _noise(n, seed=12)
    elif kind == "seasonal":
        x = _seasonal(n, seed=12)
    elif kind == "random_walk":
        x = np.cumsum(rng.normal(0.0, 1.0, n))
    else:
        x = rng.poisson(3.0, n).astype(float)
    flags = _flags(x)
    after = flags[flags >= warm]
    assert after.size / (n - warm) < 0.005
    assert after.size <= 5  # in practice well under the 0.5 % budget


# --- robustness ------------------------------------------------------------------------------
def test_constant_series_has_no_anomalies() -> None:
    for level in (0.0, 42.0, -1e9):
        r = score_series(_times(3000), [level] * 3000)
        assert sum(r.flags) == 0
        assert max(r.scores) < 0.05


def test_short_missing_and_irregular_series_do_not_crash() -> None:
    assert score_series([], []) == ScoreResult([], [])
    assert score_series([T0], [1.0]) == ScoreResult([0.0], [0])
    r = score_series(_times(10), [float(i) for i in range(10)])
    assert r.scores == [0.0] * 10  # warm-up
    rng = np.random.default_rng(13)
    n = 3000
    gaps = rng.exponential(STEP, n) + rng.choice([0.0, 50 * STEP], n, p=[0.99, 0.01])
    ts = (T0 + np.cumsum(gaps)).tolist()
    values: list[float | None] = rng.normal(0.0, 1.0, n).tolist()
    for i in rng.choice(n, 300, replace=False):
        values[int(i)] = [None, math.nan, math.inf][int(i) % 3]
    r = score_series(ts, values)
    assert len(r.scores) == n
    assert all(0.0 <= s <= 1.0 for s in r.scores)
    assert all(r.scores[i] == 0.0 and r.flags[i] == 0 for i, v in enumerate(values) if v is None)
    assert sum(r.flags) <= 5
    # datetimes (naive = UTC) and floats are the same time axis
    ts = [float(round(t)) for t in ts]
    dts = [datetime.fromtimestamp(t, UTC).replace(tzinfo=None) for t in ts[:500]]
    assert score_series(dts, values[:500]) == score_series(ts[:500], values[:500])


def test_deterministic_patterns_are_learnt_and_a_break_is_found() -> None:
    for period in (2, 3, 24):
        x = np.array([float(i % period) for i in range(3000)])
        assert _flags(x).size == 0
        x[2000] += 0.5
        assert _flags(x).tolist() == [2000]


def test_quantised_series_are_scored_on_their_own_resolution() -> None:
    rng = np.random.default_rng(14)
    x = np.round(20 + 2 * np.sin(2 * np.pi * np.arange(5000) / DAY) + rng.normal(0, 0.3, 5000))
    flags = _flags(x)
    assert flags[flags >= 300].size <= 3
    x[4000] += 6.0
    assert 4000 in _flags(x).tolist()


def test_threshold_and_scorer_arguments() -> None:
    with pytest.raises(ValueError, match="threshold"):
        StreamingScorer(0.0)
    with pytest.raises(ValueError, match="length"):
        score_series([T0], [])
    x = _noise(3000, seed=15)
    x[2500] += 6.0
    strict = score_series(_times(3000), x.tolist(), threshold=0.99)
    loose = score_series(_times(3000), x.tolist(), threshold=0.3)
    assert sum(strict.flags) <= sum(loose.flags)


# --- building blocks -------------------------------------------------------------------------
def test_rolling_quantile_matches_numpy_on_the_window() -> None:
    rng = np.random.default_rng(16)
    rq = RollingQuantile(50)
    data = rng.normal(size=300)
    for i, v in enumerate(data):
        rq.add(float(v))
        window = data[max(0, i - 49) : i + 1]
        assert rq.median() == pytest.approx(float(np.median(window)))
    assert rq.values() == data[-50:].tolist()


def test_tail_calibrator_is_roughly_calibrated_for_gaussian_scores() -> None:
    rng = np.random.default_rng(17)
    cal = TailCalibrator(2000, shrink=0)
    for v in np.abs(rng.normal(size=2000)):
        cal.add(float(v))
    assert cal.surprise(0.0) < 1.0  # below the sorted top 15 %: reported at its edge
    assert 1.1 < cal.surprise(2.0) < 1.7  # P(|Z| > 2) = 0.046
    assert 2.5 < cal.surprise(3.3) < 4.5  # P(|Z| > 3.3) = 0.001, the tail extrapolates
    assert cal.surprise(6.0) > cal.surprise(5.0) > cal.surprise(4.0)


def test_detect_period() -> None:
    rng = np.random.default_rng(18)
    t = np.arange(2000)
    found = detect_period((np.sin(2 * np.pi * t / 50) + rng.normal(0, 0.3, 2000)).tolist())
    assert found is not None
    assert found[0] == 50
    assert 0.75 < found[1] < 0.95
    assert detect_period(rng.normal(size=2000).tolist()) is None
    assert detect_period(np.cumsum(rng.normal(size=2000)).tolist()) is None
    assert detect_period([1.0] * 500) is None


# --- files and the command -------------------------------------------------------------------
def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_parse_timestamp_formats() -> None:
    iso = parse_timestamp("2024-03-01T12:00:00Z")
    assert parse_timestamp("2024-03-01 12:00:00") == iso
    assert parse_timestamp("2024-03-01T13:00:00+01:00") == iso
    assert parse_timestamp(" 1709294400 ") == iso
    assert parse_timestamp("1709294400.5") == iso + 0.5
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp("yesterday")


def test_cli_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = _noise(1500, seed=19)
    x[1200] += 9.0
    start = datetime(2024, 1, 1)
    rows = [
        f"{(start + timedelta(minutes=5 * i)).strftime('%Y-%m-%d %H:%M:%S')},{v:.4f}"
        for i, v in enumerate(x)
    ]
    rows[10] = rows[10].split(",")[0] + ","  # a missing value
    src = _write(tmp_path / "series.csv", "Timestamp,VALUE\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out" / "scores.csv"
    rc = main(["analytics", "score", "--input", str(src), "--output", str(out)])
    assert rc == 0
    assert "scored 1500 points (1 missing)" in capsys.readouterr().out
    with out.open(newline="") as fh:
        got = list(csv.reader(fh))
    assert got[0] == ["timestamp", "value", "anomaly_score", "is_anomaly"]
    assert len(got) == 1 + len(rows)
    assert [r[0] for r in got[1:]] == [r.split(",")[0] for r in rows]  # original text kept
    assert [r[1] for r in got[1:]] == [r.split(",")[1] for r in rows]
    scores = [float(r[2]) for r in got[1:]]
    flags = [int(r[3]) for r in got[1:]]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert set(flags) <= {0, 1}
    assert flags[1200] == 1
    assert scores[10] == 0.0


def test_cli_threshold_and_epoch_timestamps(tmp_path: Path) -> None:
    x = _noise(800, seed=20)
    x[700] += 5.5
    src = _write(
        tmp_path / "s.csv",
        "value,timestamp,extra\n"
        + "".join(f"{v},{T0 + 60 * i},z\n" for i, v in enumerate(x.tolist())),
    )
    out = tmp_path / "scores.csv"
    args = ["analytics", "score", "--input", str(src), "--output", str(out)]
    assert main([*args, "--threshold", "0.99"]) == 0
    strict = sum(int(r["is_anomaly"]) for r in csv.DictReader(out.open()))
    assert main([*args, "--threshold", "0.05"]) == 0
    loose = sum(int(r["is_anomaly"]) for r in csv.DictReader(out.open()))
    assert strict <= loose
    assert read_series_csv(src).times[1] == T0 + 60


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: empty file"),
        ("time,val\n1,2\n", "line 1: expected a header"),
        (
            "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,abc\n",
            "line 3: cannot parse value",
        ),
        ("timestamp,value\n2024-01-01 00:00:00,1\nsoon,2\n", "line 3: cannot parse timestamp"),
        (
            "timestamp,value\n\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00\n",
            "line 4: expected 2 fields",
        ),
    ],
)
def test_cli_bad_input_exits_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    src = _write(tmp_path / "bad.csv", text)
    rc = main(["analytics", "score", "--input", str(src), "--output", str(tmp_path / "o.csv")])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_cli_missing_file_and_bad_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "o.csv")
    assert main(["analytics", "score", "--input", str(tmp_path / "nope.csv"), "--output", out]) == 2
    assert "nope.csv" in capsys.readouterr().err
    src = _write(tmp_path / "ok.csv", "timestamp,value\n1,1\n")
    args = ["analytics", "score", "--input", str(src), "--output", out, "--threshold", "1.5"]
    assert main(args) == 2
    assert "threshold" in capsys.readouterr().err
