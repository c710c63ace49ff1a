"""``firewatch bench gateway``: a tiny real run (a fresh database and broker, the gateway as
a process, 20 simulated devices for two seconds) writes its figures as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firewatch.cli import main
from tests.helpers import cli_env


def test_a_tiny_gateway_bench_writes_nonzero_figures(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path
) -> None:
    cli_env(monkeypatch, database_url, tmp_path / "data")
    out = tmp_path / "gateway.json"
    argv = ["bench", "gateway", "--connections", "20", "--hold", "0.5", "--duration", "2"]
    assert main([*argv, "--codec-seconds", "0.2", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert (r["benchmark"], r["connections"], r["opened"], r["held"]) == ("gateway", 20, 20, 20)
    assert r["frames_per_s"] > 0
    assert r["frames"] > 0
    assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p99"]
    assert r["denied"] == 0
    assert r["codec"]["frames_per_s"] > r["frames_per_s"]
    assert r["mqtt_messages_received"] >= r["frames"]  # confirmed means published
    assert r["machine"]["cpu_count"] >= 1
    assert r["machine"]["memory_gb"] > 0
    assert r["date"]
    assert "command" in r
