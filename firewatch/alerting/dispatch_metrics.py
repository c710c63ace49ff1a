"""What the outbox dispatcher (``alerting/dispatcher.py``) counts: its shutdown summary
(:class:`DispatchStats`) and its Prometheus metrics (:class:`DispatcherMetrics`, served by
the runtime's one rule, ``runtime/metrics.py``, on ``FIREWATCH_METRICS_HOST``:
``FIREWATCH_ALERTING_METRICS_PORT``)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter


@dataclass
class DispatchStats:
    """What one dispatcher did (the shutdown summary)."""

    claimed: int = 0
    attempts: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    superseded: int = 0  # results of expired leases that a newer claim overrode
    reconnects: int = 0
    unrecorded: int = 0  # results lost at shutdown (database down): retried after the lease

    def summary(self) -> str:
        """What the dispatcher did, for the shutdown line
        (:func:`firewatch.runtime.worker.stopped`)."""
        extra = f", {self.unrecorded} results not recorded" if self.unrecorded else ""
        return (
            f"delivered {self.delivered}, "
            f"retried {self.retried}, dead {self.dead} ({self.attempts} attempts, "
            f"{self.superseded} superseded, {self.reconnects} reconnects{extra})"
        )


class DispatcherMetrics:
    """The dispatcher's Prometheus metrics (its own registry, so tests can run several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.deliveries = PromCounter(
            "firewatch_outbox_deliveries_total",
            "Delivery attempts by outcome (delivered, retry, dead)",
            ["channel", "result"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "firewatch_outbox_delivery_seconds",
            "Duration of one HTTP delivery attempt",
            ["channel"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.latency = Histogram(
            "firewatch_outbox_latency_seconds",
            "From the outbox row's creation to its delivery being recorded",
            ["channel"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 60, 300),
            registry=r,
        )
        self.dead = PromCounter(
            "firewatch_outbox_dead_total", "Rows given up on", ["channel"], registry=r
        )
        self.pending = Gauge(
            "firewatch_outbox_pending", "Rows waiting for delivery", ["channel"], registry=r
        )
        self.suppressed = Gauge(
            "firewatch_outbox_suppressed",
            "Person notifications the escalation's per-unit rate limit held back (rows kept "
            "in the outbox as suppressed, never sent)",
            ["channel"],
            registry=r,
        )
        self.reconnects = PromCounter(
            "firewatch_outbox_reconnects_total", "Database reconnects", registry=r
        )
