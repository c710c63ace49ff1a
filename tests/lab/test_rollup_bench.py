"""``firewatch bench rollups`` at a tiny size: it builds its city and year of rollups on a
fresh database of the test server, times the reads and a refresh, writes its JSON and
drops the database."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from firewatch.cli import main
from firewatch.lab.rollup_bench import BenchConfig
from tests.helpers import cli_env


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, pg_server: str, tmp_path: Path) -> None:
    cli_env(monkeypatch, pg_server, tmp_path / "data")


@pytest.mark.usefixtures("env")
def test_a_small_run_measures_reads_and_refresh(
    pg_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench" / "rollups.json"
    argv = ["bench", "rollups", "--units", "12", "--days", "40", "--hours", "2"]
    argv += ["--queries", "5", "--refresh-devices", "6", "--seed", "3", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "a_unit_year_days" in printed
    assert "refresh: 2160 raw rows (6 devices x 1 h)" in printed
    result = json.loads(out.read_text())
    assert result["data"]["unit_day_rows"] == 12 * 40
    assert result["data"]["unit_hour_rows"] == 12 * 2 * 24
    assert result["reads"]["a_unit_year_days"]["rows"] == 40
    assert result["reads"]["b_district_month_days"]["rows"] == 30
    assert result["reads"]["b_district_year_days"]["rows"] == 40
    assert result["reads"]["b2_district_year_added_at_read"]["rows"] == 40
    assert set(result["p95_ms"]) == set(result["reads"])
    assert result["refresh"]["device_hours"] >= 6
    assert result["machine"]["cores"] >= 1
    with psycopg.connect(pg_server, autocommit=True) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'fw_rollbench_%'")
        assert left.fetchone() == (0,)


@pytest.mark.usefixtures("env")
def test_sizes_it_cannot_run_with(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "rollups", "--days", "7"]) == 2
    assert capsys.readouterr().err.strip() == (
        "firewatch: bench rollups: --days must be at least 31 (a month of reads)"
    )
    with pytest.raises(ValueError, match="at most two water points"):
        BenchConfig(units=2, refresh_devices=5).check()
