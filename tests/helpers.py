"""Test helpers: waiting on conditions with deadlines, publishing over real MQTT, running
services (ingest, analytics, any other) on a thread or ingest in a subprocess, and reading
back what they stored. What tests feed them is made in ``tests/builders/``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from psycopg.rows import dict_row

from firewatch.analytics.service import AnalyticsService
from firewatch.core.broker import BrokerAddress
from firewatch.core.settings import Settings
from firewatch.ingest.service import IngestService, IngestStats
from firewatch.storage.maintenance import MaintenanceResult, maintain

ROOT = Path(__file__).resolve().parents[1]


def wait_until(cond: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    """Poll ``cond`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@contextmanager
def publisher(url: str, client_id: str | None = None) -> Iterator[mqtt.Client]:
    """A connected MQTT 5 client with its network loop running."""
    addr = BrokerAddress.parse(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"pub-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(addr.host, addr.port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish_all(
    url: str,
    messages: Sequence[tuple[str, bytes]],
    timeout: float = 60.0,
    rate: float | None = None,
) -> None:
    """Publish at QoS 1 and wait until the broker acknowledged every message."""
    with publisher(url) as client:
        infos = []
        started = time.monotonic()
        for i, (topic, payload) in enumerate(messages):
            if rate:
                ahead = i / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)  # pacing the offered load, not synchronisation
            infos.append(client.publish(topic, payload, qos=1))
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(timeout=max(0.0, deadline - time.monotonic()))
            assert info.is_published(), "broker did not acknowledge a publish in time"


class ThreadedIngest:
    """An in-process ingest worker on a thread; ``stop()`` returns its stats."""

    def __init__(self, settings: Settings) -> None:
        assert settings.database_url
        assert settings.mqtt_url
        self.service = IngestService(settings, settings.database_url, settings.mqtt_url)
        self._stop = threading.Event()
        self._stats: IngestStats | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._stats = self.service.run(self._stop)
        except BaseException as err:  # surfaced by stop()
            self._error = err

    def __enter__(self) -> ThreadedIngest:
        self._thread.start()
        wait_until(self.service.ready.is_set, 30, "ingest ready")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> IngestStats:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "ingest did not shut down"
        if self._error:
            raise self._error
        assert self._stats is not None
        return self._stats


def ingest_subprocess(settings: Settings, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """``python -m firewatch ingest`` as a real child process."""
    assert settings.database_url
    assert settings.mqtt_url
    child_env = dict(os.environ)
    child_env.update(
        FIREWATCH_DATABASE_URL=settings.database_url,
        FIREWATCH_MQTT_URL=settings.mqtt_url,
        FIREWATCH_INGEST_CLIENT_ID=settings.ingest_client_id,
        FIREWATCH_INGEST_METRICS_PORT="0",
        FIREWATCH_BACKOFF_INITIAL_S="0.05",
        FIREWATCH_BACKOFF_MAX_S="0.5",
        FIREWATCH_INGEST_DEVICE_RATE_PER_S=str(settings.ingest_device_rate_per_s),
        FIREWATCH_INGEST_CONSUMER=settings.ingest_consumer,
        FIREWATCH_DATA_DIR=str(settings.data_dir),
        **env,
    )
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "firewatch", "ingest"],
            env=child_env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def scalar(conn: psycopg.Connection[Any], sql: str, *params: object) -> Any:
    row = conn.execute(sql, params or None).fetchone()
    assert row is not None
    return row[0]


def registry_events(conn: psycopg.Connection[Any], subject_id: str) -> list[tuple[str, str, str]]:
    """The registry's audit of ``subject_id`` (a device, unit, vendor or installation id),
    oldest first: ``(subject, event, actor)``."""
    rows = conn.execute(
        "SELECT subject, event, actor FROM registry_events WHERE subject_id = %s ORDER BY id",
        (subject_id,),
    ).fetchall()
    return [(str(s), str(e), str(a)) for s, e, a in rows]


class ThreadedService:
    """Any Firewatch service (``run(stop) -> stats``, a ``ready`` event) on a thread.

    ``wait()`` fails at once, with the service's error, if the service died; ``stop()``
    returns its stats (or raises its error)."""

    def __init__(self, service: Any, name: str = "service") -> None:
        self.service = service
        self.name = name
        self._stop = threading.Event()
        self._stats: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._stats = self.service.run(self._stop)
        except BaseException as err:  # surfaced by wait() and stop()
            self._error = err

    def __enter__(self) -> ThreadedService:
        self._thread.start()
        self.wait(self.service.ready.is_set, 20, f"{self.name} ready")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive() or self._error:
            self.stop()

    def wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        def check() -> bool:
            if self._error is not None:
                raise AssertionError(f"{self.name} died waiting for {what}") from self._error
            if not self._thread.is_alive():
                raise AssertionError(f"{self.name} stopped waiting for {what}")
            return cond()

        wait_until(check, timeout, what)

    def stop(self) -> Any:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), f"{self.name} did not shut down"
        if self._error:
            err, self._error = self._error, None
            raise err
        return self._stats


class FakeClock:
    """A server clock (Unix seconds) the test moves by hand, for services that take one."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def ThreadedAnalytics(
    settings: Settings, clock: Callable[[], float] | None = None
) -> ThreadedService:
    """An in-process analytics worker on a thread; ``stop()`` returns its stats."""
    assert settings.database_url
    if clock is None:
        service = AnalyticsService(settings, settings.database_url)
    else:
        service = AnalyticsService(settings, settings.database_url, clock=clock)
    return ThreadedService(service, "analytics")


def stored_anomalies(
    db: psycopg.Connection[Any], where: str = "TRUE", *params: Any
) -> list[dict[str, Any]]:
    """Rows of ``anomalies`` (``where`` with ``params``), oldest first."""
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT * FROM anomalies WHERE {where} ORDER BY id",
            params or None,
        ).fetchall()


def stored_episodes(
    db: psycopg.Connection[Any], device: str, detector: str
) -> list[dict[str, Any]]:
    """The stored episodes of one device and detector, oldest first."""
    return stored_anomalies(db, "device_id = %s AND detector = %s", device, detector)


def day_container(conn: psycopg.Connection[Any], table: str, day: date) -> str | None:
    """The table that holds ``table``'s rows of ``day`` on either storage flavour: its daily
    partition (plain PostgreSQL) or the chunk covering the day (TimescaleDB); None if none
    exists yet. Named as ``tableoid::regclass::text`` names it."""
    if scalar(conn, "SELECT flavour FROM schema_migrations LIMIT 1") == "postgres":
        name = scalar(conn, "SELECT to_regclass(%s)::text", f"{table}_p{day:%Y%m%d}")
        return None if name is None else str(name)
    at = datetime.combine(day, datetime.min.time(), UTC)
    row = conn.execute(
        "SELECT format('%%I.%%I', chunk_schema, chunk_name)::regclass::text"
        " FROM timescaledb_information.chunks"
        " WHERE hypertable_name = %s AND range_start <= %s AND range_end > %s",
        (table, at, at),
    ).fetchone()
    return None if row is None else str(row[0])


def maintain_at_once(database_url: str, settings: Settings, runs: int) -> list[MaintenanceResult]:
    """``runs`` maintenance runs started together on their own connections, as workers
    starting at once do; their results, after asserting that none failed."""
    barrier = threading.Barrier(runs)
    results: list[MaintenanceResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                barrier.wait()
                results.append(maintain(conn, settings))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert len(results) == runs
    return results


def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, data_dir: Path) -> None:
    """The environment of a command run in-process (``firewatch.cli.main``): none of the
    caller's ``FIREWATCH_`` variables, this database and this data directory."""
    for name in list(os.environ):
        if name.startswith("FIREWATCH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FIREWATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("FIREWATCH_DATA_DIR", str(data_dir))
