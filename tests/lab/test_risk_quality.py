"""The risk-quality report (firewatch.lab.risk_quality): AUC and top-decile figures on
hand-made rankings, a small run returning every metric, and its command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from firewatch.cli.risk import add_bench_commands
from firewatch.core.risk import assess, load_risk_config
from firewatch.core.settings import Settings
from firewatch.lab.risk_quality import (
    HELD_OUT_SEEDS,
    METRICS,
    RANKINGS,
    TUNING_SEEDS,
    format_report,
    parse_seeds,
    ranking_metrics,
    roc_auc,
    run_risk_quality,
    top_fraction,
)
from firewatch.simulators.unit_history import simulate_unit_history


def _pairwise_auc(scores: list[float], y: list[bool]) -> float:
    """AUC by definition: the share of (positive, negative) pairs ordered right, ties half."""
    pos = [s for s, t in zip(scores, y, strict=True) if t]
    neg = [s for s, t in zip(scores, y, strict=True) if not t]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auc_of_perfect_reversed_random_and_hand_made_rankings() -> None:
    y = [False, False, True, False, True, True, False, False]
    perfect = [float(t) + i / 100 for i, t in enumerate(y)]
    assert roc_auc(perfect, y) == 1.0
    assert roc_auc([-s for s in perfect], y) == 0.0
    assert roc_auc([0.3] * len(y), y) == 0.5  # no information: every pair tied
    hand = [0.1, 0.4, 0.35, 0.8, 0.9, 0.35, 0.2, 0.35]
    # positives 0.35, 0.9, 0.35 against negatives 0.1, 0.4, 0.8, 0.2, 0.35:
    # 0.35 beats 0.1 and 0.2, ties 0.35 (2.5 each); 0.9 beats all 5 -> (2.5 + 5 + 2.5) / 15
    assert roc_auc(hand, y) == pytest.approx(10 / 15)
    assert roc_auc(hand, y) == pytest.approx(_pairwise_auc(hand, y))
    assert roc_auc([1.0, 2.0], [True, True]) is None


def test_a_random_ranking_has_auc_near_one_half() -> None:
    rng = np.random.default_rng(4)
    y = rng.random(20_000) < 0.1
    assert roc_auc(rng.random(20_000), y) == pytest.approx(0.5, abs=0.02)
    share, precision = top_fraction(rng.random(20_000), y)
    assert share == pytest.approx(0.1, abs=0.02)
    assert precision == pytest.approx(y.mean(), abs=0.02)


def test_top_decile_share_and_precision_with_ties_counted_fractionally() -> None:
    scores = [9.0, 8.0, 5.0, 5.0, 5.0, 5.0, 1.0, 1.0, 1.0, 1.0] * 2  # 20 units, top 2
    y = [True, False, True, True, False, False, False, False, True, False] * 2
    share, precision = top_fraction(scores, y)
    # the top 2 are the two 9s: 2 positives of 8
    assert (share, precision) == (2 / 8, 1.0)
    share, precision = top_fraction(scores, y, fraction=0.3)  # top 6: 9s, 8s, 2 of eight 5s
    caught = 2 + 0 + 4 * 2 / 8  # four positives among the eight tied 5s, 2 places for them
    assert share == pytest.approx(caught / 8)
    assert precision == pytest.approx(caught / 6)
    classes = [2.0] * 5 + [1.0] * 5 + [0.0] * 10  # a coarse ranking: all ties at the edge
    share, _ = top_fraction(classes, [True] * 5 + [False] * 15)
    assert share == pytest.approx(2 / 5)  # 2 places among 5 tied units, all positive
    metrics = ranking_metrics(scores, y)
    assert set(metrics) == set(METRICS)
    assert metrics["lift"] == pytest.approx(1.0 / (8 / 20))


def test_seed_lists() -> None:
    assert parse_seeds("101-110") == list(HELD_OUT_SEEDS)
    assert parse_seeds("1,2, 5-7,2") == [1, 2, 5, 6, 7]
    assert not set(TUNING_SEEDS) & set(HELD_OUT_SEEDS)
    for bad in ("", "a-b", "5-3", "1,,2", "-1"):
        with pytest.raises(ValueError, match="seed"):
            parse_seeds(bad)


def test_a_small_run_returns_every_metric() -> None:
    result = run_risk_quality(60, [1, 2], load_risk_config())
    json.dumps(result)
    assert result["seeds"] == [1, 2]
    assert result["seed_set"] == "tuning or mixed"
    assert result["model"]["version"] == "risk-v1"
    for seed in result["per_seed"]:
        assert set(seed["metrics"]) == set(RANKINGS)
        for name in RANKINGS:
            assert set(seed["metrics"][name]) == set(METRICS)
        assert sum(row["units"] for row in seed["levels"].values()) == 60
        assert sum(row["units"] for row in seed["score_levels"].values()) == 60
        assert seed["positives"] == round(seed["base_rate"] * 60)
        assert sum(row["positives"] for row in seed["levels"].values()) == seed["positives"]
        assert set(seed["seconds"]) == {"simulate", "rollups", "assess"}
    summary = result["summary"]
    for name in RANKINGS:
        auc = summary["metrics"][name]["auc"]
        assert auc["min"] <= auc["mean"] <= auc["max"]
    assert summary["levels"]["red"]["units"] + summary["levels"]["blue"]["units"] <= 120
    text = format_report(result)
    assert "ranking" in text
    assert "oracle" in text
    assert text.count("\n") >= 12


def test_scores_use_nothing_after_the_cut_off() -> None:
    """The report scores from the history's rollups only; even handed the following
    quarter's rollups as well, the model would ignore them."""
    h = simulate_unit_history(20, seed=4)
    cfg = load_risk_config()
    states = h.states_at()
    for i, u in enumerate(h.units):
        everything = h.rollups(i, 0, h.days)
        assert len(everything) > len(h.rollups(i))
        assert assess(u.unit_id, h.cutoff, everything, states[i], cfg) == assess(
            u.unit_id, h.cutoff, h.rollups(i), states[i], cfg
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="firewatch")
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench").add_subparsers(dest="bench_command", required=True)
    add_bench_commands(bench)
    return parser


def test_the_command_prints_the_table_and_writes_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r" / "risk.json"
    args = _parser().parse_args(
        ["bench", "risk-quality", "--units", "30", "--seeds", "3", "--json", str(out)]
    )
    assert args.func(Settings(), args) == 0
    assert "risk quality, model risk-v1, 30 units x 1 seeds" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["command"] == "firewatch bench risk-quality --units 30 --seeds 3"
    assert doc["seeds"] == [3]


def test_the_command_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "m.toml"
    bad.write_text('version = "x"\n')
    args = _parser().parse_args(["bench", "risk-quality", "--units", "10", "--model", str(bad)])
    assert args.func(Settings(), args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"firewatch: risk model {bad}: top level: missing key(s)")
    assert "\n" not in err
    for argv in (["--units", "5"], ["--units", "many"], ["--seeds", "9-1"]):
        with pytest.raises(SystemExit) as exit_:
            _parser().parse_args(["bench", "risk-quality", *argv])
        assert exit_.value.code == 2
    assert "risk-quality: error" in capsys.readouterr().err
    defaults = _parser().parse_args(["bench", "risk-quality"])
    assert (defaults.units, defaults.seeds) == (1000, list(TUNING_SEEDS))
