"""The commands as an operator meets them, in-process (``firewatch.cli.main``):
``registry import-units`` (report, JSON, dry run, exit codes, refused files) and
``analysis refresh`` / ``analysis run`` refusing settings they cannot work with."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from firewatch.cli import main
from tests.builders import city
from tests.builders.rollups import ingest, rollup_row
from tests.builders.rows import water_row
from tests.helpers import cli_env

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> None:
    """The commands' environment: this test's database, nothing else of FIREWATCH_."""
    cli_env(monkeypatch, database_url, tmp_path / "data")


@pytest.mark.usefixtures("env")
def test_import_units_reports_every_row_and_exits_by_what_happened(
    db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["registry", "import-units", str(EXAMPLES / "units.csv")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["line", "2", "U-WD-101", "created"]
    assert out[3].split() == ["line", "5", "U-WD-001", "updated", "latitude,", "longitude"]
    assert out[-1] == "3 created, 1 updated, 0 unchanged, 0 rejected"

    assert main(["registry", "import-units", "--json", str(EXAMPLES / "units.csv")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"] == {"created": 0, "updated": 0, "unchanged": 4, "rejected": 0}

    bad = str(EXAMPLES / "units-with-errors.csv")
    assert main(["registry", "import-units", "--dry-run", bad]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "dry run, nothing written: 2 created, 0 updated, 0 unchanged, 6 rejected"
    assert "unknown street 'xiangcheng-nowhere'" in out[1]
    assert db.execute("SELECT count(*) FROM units WHERE id LIKE 'U-XC-1%'").fetchone() == (0,)
    assert main(["registry", "import-units", bad]) == 1
    assert db.execute("SELECT count(*) FROM units WHERE id LIKE 'U-XC-1%'").fetchone() == (2,)


@pytest.mark.usefixtures("env")
def test_files_that_are_not_units_csv_are_one_line(
    db: psycopg.Connection[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(
        "id,name,street,category,type,building_class\nU-1,宾馆,x,key,hotel,m\n".encode("gbk")
    )
    assert main(["registry", "import-units", str(gbk)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"firewatch: {gbk}: not UTF-8")
    header = tmp_path / "header.csv"
    header.write_text("id,name\nU-1,x\n", "utf-8")
    assert main(["registry", "import-units", str(header)]) == 2
    assert "missing column(s): street, category, type, building_class" in capsys.readouterr().err
    assert main(["registry", "import-units", str(tmp_path / "missing.csv")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("firewatch: ")
    assert "missing.csv" in line


@pytest.mark.usefixtures("env")
def test_analysis_refresh_backfills(
    db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=30)
    ingest(db, [water_row(city.WATER, hour + timedelta(minutes=i), 90.0, seq=i) for i in range(20)])
    since = (hour - timedelta(hours=1)).isoformat()
    assert main(["analysis", "refresh", "--since", since, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("recomputed ")
    row = rollup_row(db, "city", "xuchang", "hour", hour)
    assert row is not None
    assert row["pressure_samples"] == 20


@pytest.mark.usefixtures("env")
def test_settings_the_rollups_cannot_use_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FIREWATCH_ANALYTICS_UTC_OFFSET_H", "5.5")
    for argv in (["analysis", "refresh"], ["analysis", "run"]):
        assert main(argv) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("firewatch: FIREWATCH_ANALYTICS_UTC_OFFSET_H=5.5")
