"""``firewatch vendor check`` in-process (``firewatch.cli.main``): the report over the past
minutes, as text and JSON, its exit codes, and a watch that reports on exactly what arrived
during it."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from firewatch.cli import main
from firewatch.core.rows import Reason
from tests.builders import city
from tests.builders.rows import status, water_reading
from tests.builders.traffic import letter, regular_water, store_batch
from tests.helpers import cli_env


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> None:
    cli_env(monkeypatch, database_url, tmp_path / "data")


@pytest.mark.usefixtures("env")
def test_a_conforming_device_exits_0_and_shows_a_table_per_channel(
    db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    store_batch(db, [*regular_water(15, now=now), status(city.WATER, now, "online", seq=16)])
    assert main(["vendor", "check", "--device", city.WATER, "--minutes", "15"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"{city.WATER}  water  unit {city.UNIT}  vendor acme"
    assert lines[3] == "telemetry"
    assert lines[4].split() == ["messages", "15", "(seq", "1", "…", "15)"]
    assert "median 60 s  p95 60 s  min 60 s  max 60 s  cv 0.00  (reference 60 s)" in out
    assert "\nstatus\n" in out
    assert "sequence: one counter for the device" in out
    assert "  none: the device conforms on everything this window shows" in out
    assert lines[-1] == "verdict: conforms (0 problems, 0 warnings; exit 0)"


@pytest.mark.usefixtures("env")
def test_problems_exit_1_with_the_findings_in_words_and_as_json(
    db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    store_batch(
        db,
        regular_water(15, now=now, skip=(7,)),
        [  # distinct payloads: the same topic and payload again is one dead letter
            letter(city.WATER, now - timedelta(minutes=1 + i), payload=b"\xff%d" % i)
            for i in range(12)
        ],
    )
    assert main(["vendor", "check", "--device", city.WATER]) == 1
    out = capsys.readouterr().out
    assert "  PROBLEM  12 dead letters: not_json ×12 — the payload is not UTF-8 JSON text" in out
    assert "  warning  seq: 1 missing in 1 gap (7); none came as a dead letter" in out
    assert "  not_json ×12: the payload is not UTF-8 JSON text" in out
    assert "    fix: send one UTF-8 encoded JSON object per message" in out
    assert out.splitlines()[-1] == "verdict: does not conform (1 problem, 1 warning; exit 1)"

    assert main(["vendor", "check", "--device", city.WATER, "--minutes", "15", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["conforms"] is False
    assert doc["dead_letter_reasons"][0]["reason"] == Reason.NOT_JSON
    assert doc["sequence"][0]["gaps"] == [{"first": 7, "last": 7, "dead_lettered": 0}]


@pytest.mark.usefixtures("env")
def test_an_unknown_device_or_a_bad_window_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vendor", "check", "--device", "D-NOBODY"]) == 2
    assert capsys.readouterr().err.strip() == "firewatch: no device 'D-NOBODY' is registered"
    for bad in (["--minutes", "0"], ["--minutes", "1441"], ["--watch", "0"]):
        with pytest.raises(SystemExit) as exit_:
            main(["vendor", "check", "--device", city.WATER, *bad])
        assert exit_.value.code == 2
    with pytest.raises(SystemExit):
        main(["vendor", "check", "--device", city.WATER, "--watch", "5", "--minutes", "5"])


@pytest.mark.usefixtures("env")
def test_a_watch_reports_on_what_arrived_during_it(
    db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    before = water_reading(1, now - timedelta(seconds=5))
    # received half a second into the watch (stored ahead of time: the watch only reads)
    during = water_reading(2, now)._replace(received_at=now + timedelta(seconds=0.5))
    store_batch(db, [before, during])
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    code = main(["vendor", "check", "--device", city.WATER, "--watch", "1.5", "--json"])
    captured = capsys.readouterr()
    assert captured.err.startswith(f"watching {city.WATER} for 1.5 s from ")
    doc = json.loads(captured.out)
    tel = doc["channels"][0]
    assert (tel["messages"], tel["seq_first"]) == (1, 2)
    assert 1.5 <= doc["window_s"] < 3
    # a window shorter than the offline limit judges nothing missing: warnings only
    assert code == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
