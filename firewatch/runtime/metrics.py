"""What every service's Prometheus metrics share: the one rule for serving ``/metrics``
(:class:`MetricsEndpoint`), and a histogram that takes a whole batch of observations per
call (:class:`BulkHistogram`). The metrics themselves are each service's own
(``ingest/ingest_metrics.py``, ``analytics/analytics_metrics.py``,
``alerting/dispatch_metrics.py``), each in its own registry so that tests can run several
workers in one process."""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector


@dataclass(frozen=True)
class MetricsEndpoint:
    """Where one worker serves its ``registry``: ``host`` is ``FIREWATCH_METRICS_HOST``
    (one for every service), ``port`` the service's own ``FIREWATCH_*_METRICS_PORT``."""

    registry: CollectorRegistry
    host: str
    port: int

    def serve(self, log: logging.Logger) -> int | None:
        """Serve ``/metrics`` on ``host:port`` in a daemon thread; return the bound port.

        The rule for every service: port 0 serves nothing (None). A port that cannot be
        bound (taken, or a host this machine does not have) is logged as an error on the
        service's ``log`` and None is returned: the service goes on without ``/metrics``,
        because losing its metrics must never stop it from storing, detecting or alerting.
        """
        if not self.port:
            return None
        try:
            server, _thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        except OSError as err:
            log.error("cannot serve /metrics on %s:%d: %s", self.host, self.port, err)
            return None
        return int(server.server_address[1])


class BulkHistogram(Collector):
    """A Prometheus histogram that takes a whole batch of observations per call.

    ``prometheus_client.Histogram.observe`` takes a lock and scans the buckets linearly for
    every value; at one observation per stored row that was a measurable share of ingest's
    writer time. This one bisects into a local count array and merges it under one lock.
    Exposes the same series (``_bucket{le}``, ``_count``, ``_sum``).
    """

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self._name = name
        self._doc = documentation
        self._bounds = sorted(float(b) for b in buckets)
        self._counts = [0] * (len(self._bounds) + 1)  # last: above every bound (+Inf)
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        bounds = self._bounds
        local = [0] * len(self._counts)
        total = 0.0
        for v in values:
            local[bisect_left(bounds, v)] += 1  # first bound >= v: the "le" bucket
            total += v
        with self._lock:
            self._counts = [a + b for a, b in zip(self._counts, local, strict=True)]
            self._sum += total

    def observe(self, value: float) -> None:
        self.observe_many((value,))

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self._name, self._doc)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for le, n in zip([*self._bounds, float("inf")], counts, strict=True):
            running += n
            cumulative.append((_le(le), running))
        yield HistogramMetricFamily(self._name, self._doc, buckets=cumulative, sum_value=total)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class StatsCollector(Collector):
    """A worker's statistics dataclass as Prometheus counters: every ``int`` or ``float``
    field ``f`` of ``stats`` is ``firewatch_<service>_<f>_total``, read at scrape time.

    For the workers whose summary line already counts everything worth watching (rollups,
    risk, supervision): their metrics are the same numbers as their summary, with no second
    set of counters to keep in step. The fields must only ever grow, and the service must
    keep the same ``stats`` object for its lifetime.
    """

    def __init__(self, service: str, stats: Any) -> None:
        if not is_dataclass(stats) or isinstance(stats, type):
            raise TypeError("stats must be a dataclass instance")
        self._service = service
        self._stats = stats
        self._fields = [f.name for f in fields(stats) if f.type in (int, float, "int", "float")]

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name in self._fields:
            yield CounterMetricFamily(
                f"firewatch_{self._service}_{name}",
                f"{self._service}: {name.replace('_', ' ')} (as in its summary line)",
                value=float(getattr(self._stats, name)),
            )


def stats_registry(service: str, stats: Any) -> CollectorRegistry:
    """A registry serving ``stats`` through :class:`StatsCollector`."""
    registry = CollectorRegistry()
    registry.register(StatsCollector(service, stats))
    return registry
