"""``firewatch risk score`` and ``firewatch risk show`` in-process against this test's
database: scores kept with the manual trigger, the breakdown printed, a rise warned about,
refusals as one line with exit 2."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from firewatch.cli import main
from firewatch.core.credit import CreditStatus
from firewatch.core.settings import Settings
from firewatch.storage.credit import change_credit
from tests.builders import city
from tests.helpers import scalar


@pytest.fixture
def risk(settings: Settings, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    assert settings.database_url
    monkeypatch.setenv("FIREWATCH_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FIREWATCH_DATA_DIR", str(settings.data_dir))
    return lambda *argv: main(["risk", *argv])


def test_score_keeps_every_unit_and_show_explains_one(
    risk: Any, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert risk("score") == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 8
    assert all(": " in line and "score" in line for line in out)
    assert scalar(db, "SELECT count(*) FROM risk_scores WHERE trigger = 'manual'") == 8

    assert risk("score", "--unit", city.UNIT) == 0  # manual runs keep even an unchanged score
    assert scalar(db, "SELECT count(*) FROM risk_scores WHERE unit_id = %s", city.UNIT) == 2

    capsys.readouterr()
    assert risk("show", "--unit", city.UNIT) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{city.UNIT}: ")
    assert "risk-v1" in lines[0]
    breakdown = scalar(
        db,
        "SELECT breakdown FROM risk_current c JOIN risk_scores s"
        " ON s.id = c.score_id WHERE c.unit_id = %s",
        city.UNIT,
    )
    assert len(lines) == 1 + len(breakdown)
    assert {line.split()[0] for line in lines[1:]} == {c["indicator"] for c in breakdown}


def test_a_blacklisted_unit_scores_red_with_a_warning_in_json(
    risk: Any, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert risk("score", "--unit", "U-JA-001") == 0
    capsys.readouterr()
    change_credit(
        db,
        "U-JA-001",
        CreditStatus.BLACKLISTED,
        rule="manual",
        reason="rectification refused",
        actor="li",
        at=datetime.now(UTC),
    )
    assert risk("score", "--unit", "U-JA-001", "--json") == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["level"] == "red"
    assert "blacklisted" in doc["forced_by"]
    assert doc["warning_id"] is not None
    assert doc["previous_level"] != "red"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("score", "--unit", "U-NOPE"), "no unit has id U-NOPE"),
        (("show", "--unit", "U-XC-001"), "has no score yet"),
        (("score", "--at", "2026-12-01T08:00:00"), "needs a time zone"),
    ],
)
def test_refusals_are_one_line(
    risk: Any, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], words: str
) -> None:
    try:
        code = risk(*argv)
    except SystemExit as exit_:  # argparse refuses bad values itself
        code = int(exit_.code or 0)
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert words in err[-1]
