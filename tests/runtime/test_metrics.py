"""The one /metrics rule (firewatch/runtime/metrics.py): served where configured, port 0
serves nothing, and a port that cannot be bound is logged while the worker goes on."""

from __future__ import annotations

import logging
import socket
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from firewatch.core.settings import Settings
from firewatch.runtime.metrics import MetricsEndpoint
from firewatch.runtime.worker import Worker
from firewatch.storage import channels
from tests.helpers import wait_until
from tests.runtime.recorder import Recorder, Running

LOGGER = "tests.runtime.metrics"


def registry() -> CollectorRegistry:
    r = CollectorRegistry()
    Counter("firewatch_test_things", "Things", registry=r).inc(3)
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_served_on_the_host_and_port() -> None:
    port = free_port()
    bound = MetricsEndpoint(registry(), "127.0.0.1", port).serve(logging.getLogger(LOGGER))
    assert bound == port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    assert "firewatch_test_things_total 3.0" in body


def test_port_zero_serves_nothing() -> None:
    assert MetricsEndpoint(registry(), "127.0.0.1", 0).serve(logging.getLogger(LOGGER)) is None


def test_a_taken_port_is_logged_and_the_worker_goes_on(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        worker = Worker(
            "w",
            database_url,
            log=logging.getLogger(LOGGER),
            channels=[channels.OUTBOX],
            backoff_initial_s=0.05,
            backoff_max_s=0.2,
            metrics=MetricsEndpoint(registry(), "127.0.0.1", port),
        )
        r = Running(worker, Recorder(worker)).start()
        wait_until(lambda: r.work.steps >= 1, 10, "working without /metrics")
        r.stop()
    assert worker.metrics_port is None
    (line,) = [x for x in caplog.records if x.levelno == logging.ERROR]
    assert line.getMessage().startswith(f"cannot serve /metrics on 127.0.0.1:{port}: ")
    assert r.work.finals == [True]


def test_a_workers_stats_are_its_counters_read_at_scrape_time() -> None:
    from dataclasses import dataclass

    from prometheus_client import generate_latest

    from firewatch.runtime.metrics import stats_registry

    @dataclass
    class Stats:
        runs: int = 0
        seconds: float = 0.0
        label: str = "not a number"

    stats = Stats()
    r = stats_registry("thing", stats)
    stats.runs, stats.seconds = 4, 1.5  # after registration: read when scraped
    body = generate_latest(r).decode()
    assert "firewatch_thing_runs_total 4.0" in body
    assert "firewatch_thing_seconds_total 1.5" in body
    assert "label" not in body
    with pytest.raises(TypeError):
        stats_registry("thing", Stats)


def test_the_risk_worker_serves_its_summary_counters(settings: Settings, db: Any) -> None:
    from firewatch.risk.service import RiskService
    from tests.helpers import ThreadedService

    port = free_port()
    settings = settings.model_copy(update={"risk_metrics_port": port})
    assert settings.database_url
    svc = RiskService(settings, settings.database_url)
    with ThreadedService(svc, "risk") as t:
        t.wait(lambda: svc.stats.runs == 1, 20, "the first run")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
    t.stop()
    assert "firewatch_risk_runs_total 1.0" in body
    assert "firewatch_risk_scored_total 8.0" in body
