"""Prometheus metrics of one analytics worker (its own registry, so tests can run several).
Served by the runtime's one rule (``runtime/metrics.py``) on ``FIREWATCH_METRICS_HOST``:
``FIREWATCH_ANALYTICS_METRICS_PORT``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AnalyticsMetrics:
    """The analytics worker's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.rows = Counter(
            "firewatch_analytics_rows_total", "Rows read from the feed", ["table"], registry=r
        )
        self.points = Counter(
            "firewatch_analytics_points_total", "Readings run through the detectors", registry=r
        )
        self.anomalies = Counter(
            "firewatch_analytics_anomaly_changes_total",
            "Anomaly episode revisions written (opened, updated, closed)",
            ["detector"],
            registry=r,
        )
        self.open = Gauge("firewatch_analytics_open_anomalies", "Episodes open now", registry=r)
        self.lag = Gauge(
            "firewatch_analytics_lag_seconds",
            "Server time minus the receive time of the newest row processed",
            registry=r,
        )
        self.batch = Histogram(
            "firewatch_analytics_batch_seconds",
            "Detector time per batch",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.checkpoints = Counter(
            "firewatch_analytics_checkpoints_total", "Checkpoints saved", registry=r
        )
        self.reconnects = Counter(
            "firewatch_analytics_reconnects_total", "Database reconnects", registry=r
        )
        self.skipped = Counter(
            "firewatch_analytics_skipped_rows_total",
            "Stored rows recorded in skipped_rows instead of processed",
            ["table"],
            registry=r,
        )
        self.model_version = Gauge(
            "firewatch_analytics_model_version",
            "Loaded model version per kind",
            ["kind"],
            registry=r,
        )
