"""``firewatch bench storage`` at a tiny size, on the TimescaleDB pass: the test cluster
serves both sides (a TimescaleDB server gives plain PostgreSQL to a database that asks for
it), so the bench writes its simulated city into both flavours, compresses what is due,
times the reads, writes its JSON and drops its databases."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from firewatch.cli import main
from tests.helpers import cli_env

pytestmark = pytest.mark.flavour("timescale")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, pg_server: str, tmp_path: Path) -> None:
    cli_env(monkeypatch, pg_server, tmp_path / "data")
    monkeypatch.setenv("FIREWATCH_BENCH_TIMESCALE_URL", pg_server)


@pytest.mark.usefixtures("env")
def test_a_small_run_compares_storage_and_reads(
    pg_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench" / "storage.json"
    argv = ["bench", "storage", "--rounds", "0", "--units", "2", "--days", "10"]
    argv += ["--queries", "2", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "compression:" in printed
    result = json.loads(out.read_text())
    assert result["ingest"] is None
    city = result["city"]
    assert city["messages"] > 10_000
    assert city["dead_letters"] == 0
    # 10 days, the last 8 kept as they are: the oldest days compressed, and smaller
    z = result["compression"]
    assert z["telemetry_days_compressed"] >= 1
    assert z["after_bytes"] < z["before_bytes"]
    per_day = result["bytes_per_device_day"]
    assert per_day["timescale_compressed_days_after"] < per_day["postgres"]
    reads = result["reads_ms"]
    assert set(reads) == {"postgres", "timescale", "timescale_compressed"}
    # every side read the same month of the same device
    assert len({side["device_month"]["rows"] for side in reads.values()}) == 1
    assert reads["postgres"]["device_month"]["rows"] > 0
    # its scratch databases are gone
    with psycopg.connect(pg_server) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'fw_storage_%'"
        ).fetchone()
    assert left == (0,)
