"""``firewatch analytics score-eval`` end to end on tiny subsets of the tune split (never
on held-out series), and its errors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from firewatch.cli import main
from firewatch.lab import score_eval
from firewatch.lab.public_series import CATALOGUE
from firewatch.lab.recorded_like import FAMILIES
from firewatch.lab.score_eval import EvalError, EvalReport, run_score_eval, select_series
from firewatch.lab.score_metrics import LabelledSeries
from firewatch.scoring.scorer import ScoreResult

ONSET = 2880  # where every textbook series has its anomaly


def _oracle(
    timestamps: Sequence[datetime | float], values: Sequence[float | None], *, threshold: float
) -> ScoreResult:
    """Alerts at the textbook onset, whatever the series (so also on clean ones)."""
    flags = [int(i == ONSET) for i in range(len(values))]
    return ScoreResult([float(f) for f in flags], flags)


def test_the_harness_counts_what_a_scorer_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(score_eval.SCORERS, "oracle", _oracle)
    report = run_score_eval("tune", scorers=["oracle"], families=["textbook"], seeds=2)
    doc = report.to_json()
    oracle = doc["scorers"]["oracle"]
    total = oracle["groups"]["total"]
    # two anomalous series detected at their onset, one false alert on each clean variant
    assert (total["series"], total["windows"], total["detected"]) == (4, 2, 2)
    assert total["false_alerts"] == 2
    assert total["precision"] == 0.5
    assert total["median_delay_points"] == 0
    assert total["clean_series"] == 2
    assert total["silent_series"] == 0
    assert oracle["best_threshold"]["detected"] == 2
    series = doc["series"]
    assert [s["anomaly"] for s in series] == ["noise:spike", "clean", "noise:dip", "clean"]
    assert series[1]["results"]["oracle"]["false_alerts"] == 1
    assert "recorded-like/textbook" in oracle["groups"]
    assert "oracle" in report.format_text()


def test_the_cli_scores_a_small_subset_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval.json"
    code = main(
        [
            "analytics",
            "score-eval",
            "--split",
            "tune",
            "--family",
            "short",
            "--seeds",
            "1",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "firewatch:" in text
    assert "gaussian:" in text
    assert "recorded-like/short" in text
    doc = json.loads(out.read_text())
    assert doc["split"] == "tune"
    assert set(doc["scorers"]) == {"firewatch", "gaussian"}
    assert [s["split"] for s in doc["series"]] == ["tune", "tune"]
    for s in doc["series"]:
        for result in s["results"].values():
            assert result["n_points"] == s["n_points"]
            assert result["cpu_s"] >= 0.0
    assert doc["scorers"]["gaussian"]["points_per_cpu_s"] is None or (
        doc["scorers"]["gaussian"]["points_per_cpu_s"] > 0
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--split", "test"], "unknown split 'test'"),
        (["--split", "tune", "--scorer", "prophet"], "unknown scorer 'prophet'"),
        (["--split", "tune", "--family", "bogus"], "unknown family 'bogus'"),
        (["--split", "tune", "--threshold", "0"], "--threshold"),
    ],
)
def test_bad_names_exit_2_with_a_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["analytics", "score-eval", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_a_checksum_mismatch_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = next(e for e in CATALOGUE if e.name == "ucr135-internal-bleeding16-train")
    bad = tmp_path / "files" / f"{entry.package}-{entry.version}" / entry.path
    bad.parent.mkdir(parents=True)
    bad.write_text("timestamp,value,is_anomaly\n0,1.0,0\n")
    code = main(
        [
            "analytics",
            "score-eval",
            "--split",
            "tune",
            "--family",
            "ucr135",
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "135_UCR_Anomaly_InternalBleeding16_TRAIN.csv" in err
    assert "SHA-256" in err


def test_an_unreachable_registry_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "no-index"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    code = main(
        [
            "analytics",
            "score-eval",
            "--split",
            "tune",
            "--family",
            "ucr135",
            "--data-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 2
    assert "pip download aeon==1.6.0 failed" in capsys.readouterr().err


def test_family_selection() -> None:
    series = select_series("tune", families=["recorded-like"], seeds=1)
    assert {s.source for s in series} == {"recorded-like"}
    assert len(series) == 2 * len(FAMILIES)
    with pytest.raises(EvalError, match="unknown split"):
        select_series("train")


def test_channels_of_a_multichannel_file_get_rows_of_their_own() -> None:
    def channel(name: str) -> LabelledSeries:
        values: list[float | None] = [0.0] * 3000
        return LabelledSeries(
            name, "public", "f", "tune", [float(i) for i in range(3000)], values, [(2880, 2885)]
        )

    series = [channel("file:a"), channel("file:b")]
    runs = [score_eval._run_one(_oracle, s, 0.5) for s in series]
    groups = EvalReport("tune", 0.5, ["oracle"], series, {"oracle": runs}).to_json()["scorers"][
        "oracle"
    ]["groups"]
    assert groups["public/f"]["windows"] == 2
    assert groups["public/f/a"]["detected"] == 1
    assert groups["public/f/b"]["series"] == 1
