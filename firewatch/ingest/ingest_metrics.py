"""Prometheus metrics of one ingest worker (its own registry, so tests can run several).
Served by the runtime's one rule (``runtime/metrics.py``) on ``FIREWATCH_METRICS_HOST``:
``FIREWATCH_INGEST_METRICS_PORT``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from firewatch.runtime.metrics import BulkHistogram

#: Fine buckets up to 2 s (percentiles are interpolated within a bucket), coarse beyond.
LAG_BUCKETS = (
    *(i / 1000 for i in (2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100, 120, 140)),
    *(i / 1000 for i in (160, 180, 200, 225, 250, 300, 350, 400, 500, 600, 800, 1000)),
    1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip


class IngestMetrics:
    """Counters and gauges exported on ``/metrics`` (see README, "Metrics")."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "firewatch_ingest_messages_received", "MQTT messages received", registry=r
        )
        self.stored = Counter(
            "firewatch_ingest_rows_stored", "Rows committed, by table", ["table"], registry=r
        )
        self.duplicates = Counter(
            "firewatch_ingest_duplicates",
            "Messages already stored (redelivery or repeat), by table",
            ["table"],
            registry=r,
        )
        self.dead_letters = Counter(
            "firewatch_ingest_dead_letters",
            "Messages dead-lettered, by reason",
            ["reason"],
            registry=r,
        )
        self.dead_letters_dropped = Counter(
            "firewatch_ingest_dead_letters_dropped",
            "Dead letters over the per-device or total quota: acknowledged, counted, not stored",
            ["reason"],
            registry=r,
        )
        # No device label: devices are unbounded, and so would be the series. The device is
        # in the topics of the dead letters the quota stores, and in its over-quota warning.
        self.rate_limited = Counter(
            "firewatch_ingest_rate_limited",
            "Messages over their device's rate: dead-lettered (rate_limited) and acknowledged",
            registry=r,
        )
        self.batch_size = Histogram(
            "firewatch_ingest_batch_size",
            "Messages per flush",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
            registry=r,
        )
        self.flush_seconds = Histogram(
            "firewatch_ingest_flush_seconds",
            "Time to COPY and commit one batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.inflight = Gauge(
            "firewatch_ingest_inflight", "Messages received but not yet acknowledged", registry=r
        )
        self.reconnects = Counter(
            "firewatch_ingest_reconnects", "Reconnect attempts, by target", ["target"], registry=r
        )
        self.commit_lag = BulkHistogram(
            "firewatch_ingest_commit_lag_seconds",
            "Device timestamp to commit, per stored row (device clock permitting)",
            LAG_BUCKETS,
            r,
        )
        self.ready = Gauge(
            "firewatch_ingest_ready", "1 while subscribed and taking messages", registry=r
        )
        self.flush_errors = Counter(
            "firewatch_ingest_flush_errors", "Failed flush attempts (retried)", registry=r
        )
