"""The detector benchmark (``firewatch bench analytics``) on a small generated city."""

from __future__ import annotations

import json
from typing import Any

from firewatch.core.settings import Settings
from firewatch.lab.detector_bench import run_analytics_bench


def test_benchmark_reports_points_per_second() -> None:
    result = run_analytics_bench_small()
    (run,) = result["runs"]
    assert run["points"] > 0
    assert run["points_per_s"] > 0
    assert result["machine"]["cores"] >= 1
    assert result["city"]["devices"] > 10
    json.dumps(result)


def run_analytics_bench_small() -> dict[str, Any]:
    return run_analytics_bench(Settings(), units=10, duration_s=600.0, batch_s=[10.0])
