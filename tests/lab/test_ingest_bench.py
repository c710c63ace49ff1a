"""The ingest benchmark: its percentile arithmetic and one short real run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from firewatch.core.settings import Settings
from firewatch.lab.ingest_bench import BenchConfig, quantile, run_ingest_bench


def test_quantile_interpolates_within_buckets() -> None:
    # 10 observations <= 0.01 s, 90 more <= 0.1 s, none above.
    buckets = [(0.01, 10.0), (0.1, 100.0), (math.inf, 100.0)]
    assert quantile(buckets, 0.05) == pytest.approx(0.005)
    assert quantile(buckets, 0.10) == pytest.approx(0.01)
    assert quantile(buckets, 0.55) == pytest.approx(0.01 + 0.09 * 0.5)
    assert quantile(buckets, 1.0) == pytest.approx(0.1)
    assert quantile([(0.1, 0.0), (math.inf, 0.0)], 0.5) is None


@pytest.mark.slow
@pytest.mark.parametrize("consumer", ["mqtt5", "paho"])
def test_a_short_bench_run_reports_every_key_and_loses_nothing(
    mqtt_settings: Settings, consumer: str
) -> None:
    r = run_ingest_bench(
        mqtt_settings, BenchConfig(rate=500, devices=50, duration=2, consumer=consumer)
    )
    assert r["consumer"] == consumer
    for key in (
        "offered_msgs_per_s",
        "achieved_msgs_per_s",
        "stored_rows_per_s",
        "published",
        "stored",
        "lost",
        "duplicated",
        "latency_ms",
        "workers",
        "cpu_count",
    ):
        assert key in r
    assert r["published"] == 1000
    assert r["stored"] == 1000
    assert r["lost"] == 0
    assert r["duplicated"] == 0
    assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p99"]
    assert r["per_worker"][0]["peak_rss_mb"] > 0
    per_k = r["cpu_percent_per_1000_msgs_per_s"]
    assert per_k["workers"] > 0
    assert per_k["mosquitto"] > 0


@pytest.mark.slow
def test_the_reference_run_counts_what_mosquitto_sub_received(mqtt_settings: Settings) -> None:
    """``--consumer mosquitto_sub``: no ingest, no rows; the broker's own subscriber got
    every acknowledged message, and the side-by-side table has a row for each run."""
    from firewatch.lab.ingest_report import format_comparison

    own_broker = mqtt_settings.model_copy(update={"mqtt_url": None})
    ref = run_ingest_bench(
        own_broker,
        BenchConfig(
            rate=500,
            devices=50,
            duration=2,
            consumer="mosquitto_sub",
            broker_options=("set_tcp_nodelay true",),
        ),
    )
    assert ref["broker_options"] == ["set_tcp_nodelay true"]
    assert ref["published"] == 1000
    assert ref["stored"] == 1000
    assert ref["lost"] == 0
    assert ref["latency_ms"]["p99"] is None
    assert ref["per_worker"][0]["cpu_seconds"] > 0
    table = format_comparison([ref, {**ref, "consumer": "mqtt5"}]).splitlines()
    assert len(table) == 3
    assert table[1].split()[:3] == ["mosquitto_sub", "+", "set_tcp_nodelay"]


@pytest.mark.slow
def test_a_bench_run_with_alert_probes_times_each_alert(
    mqtt_settings: Settings, tmp_path: Path
) -> None:
    r = run_ingest_bench(
        mqtt_settings,
        BenchConfig(rate=300, devices=30, duration=4, alerts=5),
        log_dir=tmp_path / "logs",
    )
    assert r["alerts_expected"] == 5
    assert r["alerts_seen"] == 5
    lat = r["alert_latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    legs = r["alert_latency_legs_median_ms"]
    assert set(legs) == {"to_ingest", "to_anomaly", "to_alert", "to_stream"}
    assert all(v is not None for v in legs.values())
    assert r["lost"] == 0
