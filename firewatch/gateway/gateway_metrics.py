"""The gateway's numbers: Prometheus metrics (served on ``FIREWATCH_GATEWAY_METRICS_PORT``)
and the same counts as plain fields for the summary line and for tests.

Each :class:`GatewayMetrics` has its own registry, so that tests can run several gateways in
one process (as ``ingest/ingest_metrics.py`` does).
"""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Seconds from handing a message to the publisher to the broker's PUBACK.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass
class GatewayStats:
    """Counts since start (only ever grow, except ``connections_open``)."""

    connections_open: int = 0
    connections_total: int = 0
    connections_refused: int = 0
    frames: int = 0  # delimited frames, of any outcome
    confirmed: int = 0  # data frames published and confirmed
    denied: int = 0
    published: int = 0  # messages the broker acknowledged
    publish_refused: int = 0
    publish_retries: int = 0  # messages sent to the broker again (reconnect, 0x10)
    garbage_bytes: int = 0
    clock_syncs: int = 0
    clock_skewed: int = 0  # objects whose device time was replaced by the receive time
    duty_checks_sent: int = 0
    closed: Tally[str] = field(default_factory=Tally)  # connections closed, by reason
    denies: Tally[str] = field(default_factory=Tally)  # by reason
    duty_outcomes: Tally[str] = field(default_factory=Tally)

    def summary(self) -> str:
        """The one line the gateway logs when it stops."""
        return (
            f"gateway stopped: {self.frames} frames, {self.published} messages published, "
            f"{self.confirmed} frames confirmed, {self.denied} denied, "
            f"{self.connections_total} connections ({self.connections_refused} refused), "
            f"{self.duty_checks_sent} duty checks sent"
        )


class GatewayMetrics:
    """Prometheus series of docs/gateway.md plus :attr:`stats`; every ``on_*`` updates both."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.stats = GatewayStats()
        r = self.registry
        self.connections_open = Gauge(
            "firewatch_gateway_connections_open", "Device connections open now", registry=r
        )
        self.connections_total = Counter(
            "firewatch_gateway_connections", "Device connections accepted", registry=r
        )
        self.connections_refused = Counter(
            "firewatch_gateway_connections_refused",
            "Connections closed at once: the gateway already serves its maximum",
            registry=r,
        )
        self.connections_closed = Counter(
            "firewatch_gateway_connections_closed",
            "Connections closed, by reason (peer, idle, frame_timeout: a slowloris, garbage, "
            "write_timeout, "
            "shutdown)",
            ["reason"],
            registry=r,
        )
        self.frames = Counter(
            "firewatch_gateway_frames",
            "Delimited frames, by command and outcome (confirmed, denied, ignored, "
            "unconfirmed, answer)",
            ["command", "outcome"],
            registry=r,
        )
        self.objects = Counter(
            "firewatch_gateway_objects",
            "Information objects of confirmed frames, by GB/T type flag",
            ["type"],
            registry=r,
        )
        self.denies = Counter(
            "firewatch_gateway_denies",
            "Deny frames sent, by reason (checksum, length, unknown_source, ...)",
            ["reason"],
            registry=r,
        )
        self.garbage = Counter(
            "firewatch_gateway_garbage_bytes", "Bytes that were part of no frame", registry=r
        )
        self.published = Counter(
            "firewatch_gateway_published", "Messages the broker acknowledged", registry=r
        )
        self.publish_refused = Counter(
            "firewatch_gateway_publish_refused",
            "Messages the broker refused (a PUBACK failure code): their frames stay unconfirmed",
            registry=r,
        )
        self.publish_retries = Counter(
            "firewatch_gateway_publish_retries",
            "Messages sent to the broker again, by reason (reconnect: in flight when the "
            "connection was lost; no_subscribers: a 0x10 PUBACK)",
            ["reason"],
            registry=r,
        )
        self.publish_latency = Histogram(
            "firewatch_gateway_publish_seconds",
            "From handing a message to the publisher to the broker's PUBACK",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.clock_syncs = Counter(
            "firewatch_gateway_clock_syncs", "Clock-sync frames sent to devices", registry=r
        )
        self.clock_skewed = Counter(
            "firewatch_gateway_clock_skewed",
            "Objects whose device time was too far off and was replaced by the receive time",
            registry=r,
        )
        self.duty_checks = Counter(
            "firewatch_gateway_duty_checks",
            "Duty checks by outcome (sent, answered, late, missed, not_connected)",
            ["outcome"],
            registry=r,
        )
        self.mqtt_connected = Gauge(
            "firewatch_gateway_mqtt_connected", "1 while connected to the broker", registry=r
        )

    # --- connections ----------------------------------------------------------------------
    def on_connect(self) -> None:
        self.stats.connections_open += 1
        self.stats.connections_total += 1
        self.connections_open.inc()
        self.connections_total.inc()

    def on_refused(self) -> None:
        self.stats.connections_refused += 1
        self.connections_refused.inc()

    def on_close(self, reason: str) -> None:
        self.stats.connections_open -= 1
        self.stats.closed[reason] += 1
        self.connections_open.dec()
        self.connections_closed.labels(reason).inc()

    # --- frames -----------------------------------------------------------------------------
    def on_frame(self, command: str, outcome: str) -> None:
        self.stats.frames += 1
        if outcome == "confirmed":
            self.stats.confirmed += 1
        self.frames.labels(command, outcome).inc()

    def on_objects(self, type_flags: list[int]) -> None:
        for flag in type_flags:
            self.objects.labels(str(flag)).inc()

    def on_deny(self, reason: str) -> None:
        self.stats.denied += 1
        self.stats.denies[reason] += 1
        self.denies.labels(reason).inc()

    def on_garbage(self, n: int) -> None:
        if n > 0:
            self.stats.garbage_bytes += n
            self.garbage.inc(n)

    # --- publishing -------------------------------------------------------------------------
    def on_published(self, seconds: float) -> None:
        self.stats.published += 1
        self.published.inc()
        self.publish_latency.observe(seconds)

    def on_publish_retry(self, reason: str, n: int = 1) -> None:
        self.stats.publish_retries += n
        self.publish_retries.labels(reason).inc(n)

    def on_publish_refused(self) -> None:
        self.stats.publish_refused += 1
        self.publish_refused.inc()

    # --- downlink -----------------------------------------------------------------------------
    def on_clock_sync(self) -> None:
        self.stats.clock_syncs += 1
        self.clock_syncs.inc()

    def on_clock_skewed(self) -> None:
        self.stats.clock_skewed += 1
        self.clock_skewed.inc()

    def on_duty(self, outcome: str) -> None:
        if outcome == "sent":
            self.stats.duty_checks_sent += 1
        self.stats.duty_outcomes[outcome] += 1
        self.duty_checks.labels(outcome).inc()
