"""``firewatch supervise ...`` and ``firewatch bench draws`` as a supervisor uses them,
in-process (``firewatch.cli.main``) against this test's database: a draw from commit to
offline verification of its saved document, refusals as one line with exit 2, a tampered
document failing verification, and the inspector, focus, inspection, hazard and credit
commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from firewatch.cli import main
from firewatch.core.settings import Settings
from tests.supervision.builders import set_level, unit_ids


@pytest.fixture
def cli(settings: Settings, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    assert settings.database_url
    monkeypatch.setenv("FIREWATCH_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FIREWATCH_DATA_DIR", str(settings.data_dir))

    def run(*argv: str) -> int:
        return main(["supervise", *argv])

    return run


def last_line(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    out, err = capsys.readouterr()
    return out, err


def test_a_draw_from_commit_to_offline_verification(
    cli: Any, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for i in range(1, 7):
        assert (
            cli(
                "inspectors",
                "add",
                "--code",
                f"XC-{i:03d}",
                "--name",
                f"检查员{i}",
                "--org",
                "襄城县消防救援大队",
            )
            == 0
        )
    assert (
        cli(
            "inspectors",
            "tie",
            "--code",
            "XC-001",
            "--unit",
            "U-WD-001",
            "--kind",
            "relative",
            "--actor",
            "王科长",
        )
        == 0
    )
    for unit in unit_ids(db):
        set_level(db, unit, "orange")
    assert cli("focus", "add", "--unit", "U-WD-001", "--reason", "complaints") == 0
    set_level(db, "U-WD-001", "red")
    capsys.readouterr()

    assert cli("draw", "--period", "2026-Q1", "--actor", "王科长") == 0
    out, _ = capsys.readouterr()
    assert "draw 1 for 2026-Q1 committed" in out
    assert "inputs hash" in out
    assert "8 units, 6 inspectors, 1 exclusions" in out
    assert cli("draw", "--period", "2026-Q1") == 2  # one live draw per period
    _, err = capsys.readouterr()
    assert err.startswith("firewatch: ")
    assert len(err.splitlines()) == 1

    assert cli("verify", "--draw", "1") == 3  # only the hash so far
    assert "incomplete" in capsys.readouterr()[0]
    assert cli("reveal", "--draw", "1") == 0
    out, _ = capsys.readouterr()
    assert "U-WD-001" in out
    assert "focus" in out
    assert "检查员" in out
    assert cli("publish", "--draw", "1") == 0
    assert cli("verify", "--draw", "1") == 0
    assert "verified" in capsys.readouterr()[0]

    capsys.readouterr()
    assert cli("show", "--draw", "1", "--json") == 0
    doc = json.loads(capsys.readouterr()[0])
    saved = tmp_path / "draw-1.json"
    saved.write_text(json.dumps(doc), "utf-8")
    assert cli("verify", "--file", str(saved), "--json") == 0
    assert json.loads(capsys.readouterr()[0])["complete"] is True
    doc["result"]["units"][0]["inspectors"].reverse()
    saved.write_text(json.dumps(doc), "utf-8")
    assert cli("verify", "--file", str(saved)) == 1
    assert "NOT verified" in capsys.readouterr()[0]
    saved.write_text("[1]", "utf-8")
    assert cli("verify", "--file", str(saved)) == 2

    assert cli("show") == 0
    assert "2026-Q1    published" in capsys.readouterr()[0]
    assert cli("cancel", "--draw", "1", "--reason", "test of cancel") == 0
    assert cli("show", "--draw", "1") == 0
    assert "cancelled: test of cancel" in capsys.readouterr()[0]


def test_inspectors_inspections_hazards_and_credit(
    cli: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    roster = tmp_path / "inspectors.csv"
    roster.write_text("code,name,phone,organisation\nI-01,甲,139,支队\nI-02,乙,,支队\n", "utf-8")
    assert cli("inspectors", "import", "--file", str(roster)) == 0
    assert cli("inspectors", "import", "--file", str(roster)) == 2  # taken codes, nothing added
    assert cli("inspectors", "retire", "--code", "I-02") == 0
    assert cli("inspectors", "reinstate", "--code", "I-02") == 0
    assert cli("inspectors", "tie", "--code", "I-02", "--unit", "U-NOPE", "--kind", "relative") == 2
    assert cli("inspectors") == 0
    out, _ = capsys.readouterr()
    assert "I-01" in out
    assert "甲" in out

    report = tmp_path / "inspection.json"
    report.write_text(
        json.dumps(
            {
                "unit": "U-WD-002",
                "inspected_at": "2026-03-02T10:00:00+08:00",
                "inspectors": ["I-01", "I-02"],
                "hazards": [
                    {"category": "fire_exits", "severity": "major", "description": "出口上锁"}
                ],
            }
        ),
        "utf-8",
    )
    assert cli("inspect", "--file", str(report)) == 0
    out, _ = capsys.readouterr()
    assert "hazard 1: major fire_exits, rectify by 2026-04-01" in out
    assert cli("inspect", "--file", str(tmp_path / "missing.json")) == 1  # the CLI's own
    assert cli("hazard", "list", "--unit", "U-WD-002") == 0
    assert "出口上锁" in capsys.readouterr()[0]
    assert cli("hazard", "verify", "--id", "1") == 0  # from open: a re-inspection found it done
    assert cli("hazard", "submit", "--id", "1", "--evidence", "x") == 2  # final
    assert "cannot submit a hazard that is verified" in capsys.readouterr()[1]
    assert cli("hazard", "list", "--state", "verified", "--json") == 0
    assert json.loads(capsys.readouterr()[0])[0]["state"] == "verified"

    assert (
        cli(
            "credit",
            "set",
            "--unit",
            "U-WD-002",
            "--status",
            "blacklisted",
            "--reason",
            "false self-declaration",
        )
        == 0
    )
    assert (
        cli("credit", "set", "--unit", "U-WD-002", "--status", "blacklisted", "--reason", "again")
        == 2
    )
    assert cli("credit", "list") == 0
    assert cli("credit", "show", "--unit", "U-WD-002") == 0
    out, _ = capsys.readouterr()
    assert "good -> blacklisted  manual" in out
    assert cli("focus") == 0
    assert cli("focus", "remove", "--unit", "U-WD-002") == 0
    assert "was not on" in capsys.readouterr()[0]


def test_bench_draws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "draws",
                "--draws",
                "200",
                "--units",
                "60",
                "--inspectors",
                "8",
                "--json",
                str(out_file),
            ]
        )
        == 0
    )
    result = json.loads(out_file.read_text("utf-8"))
    assert result["conflicts"] == 0
    assert result["deterministic_classes_exact"]
    assert {r["class"] for r in result["classes"]} >= {"level blue", "level red"}
    assert "conflicts: 0" in capsys.readouterr()[0]
    assert main(["bench", "draws", "--draws", "0"]) == 2
