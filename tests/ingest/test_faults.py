"""Fault injection against real processes: a consumer killed with SIGKILL, a database
stopped under load, and a burst into a consumer slower than its publisher. In every case
each published message must end up stored exactly once."""

from __future__ import annotations

import os
import signal
import threading
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from firewatch.core.settings import Settings
from firewatch.storage.maintenance import maintain
from firewatch.storage.migrate import upgrade
from firewatch.storage.seed import load_seed, read_seed
from tests.builders.city import WATER_TOPIC
from tests.builders.payloads import water
from tests.helpers import ThreadedIngest, ingest_subprocess, publish_all, scalar, wait_until

pytestmark = pytest.mark.slow


def _stream(n: int) -> list[tuple[str, bytes]]:
    return [(WATER_TOPIC, water(seq, 300.0 + seq % 50)) for seq in range(1, n + 1)]


def _assert_exactly_once(conn: psycopg.Connection[Any], n: int) -> None:
    count, distinct, lo, hi = conn.execute(
        "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM telemetry"
    ).fetchone() or (0, 0, 0, 0)
    assert (count, distinct, lo, hi) == (n, n, 1, n)


def _publish_in_background(
    url: str, msgs: list[tuple[str, bytes]], rate: float
) -> threading.Thread:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            publish_all(url, msgs, rate=rate, timeout=120)
        except BaseException as err:
            errors.append(err)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.errors = errors  # type: ignore[attr-defined]
    return t


def test_sigkill_mid_stream_then_restart_stores_everything_once(
    mqtt_settings: Settings, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    n = 6000
    log = tmp_path / "ingest.log"
    proc = ingest_subprocess(mqtt_settings, log)
    try:
        # The worker's persistent session must exist before publishing starts.
        wait_until(lambda: "connected to" in log.read_text(), 30, "worker connected")
        pub = _publish_in_background(mqtt_settings.mqtt_url or "", _stream(n), rate=1500)
        wait_until(lambda: scalar(db, "SELECT count(*) FROM telemetry") >= 1000, 60, "progress")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = scalar(db, "SELECT count(*) FROM telemetry")
        pub.join(timeout=120)
        assert not pub.errors  # type: ignore[attr-defined]
        assert killed_at < n, "the kill must land mid-stream"
        proc = ingest_subprocess(mqtt_settings, log)  # same client id: same broker session
        wait_until(lambda: scalar(db, "SELECT count(*) FROM telemetry") >= n, 90, "all rows")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    _assert_exactly_once(db, n)
    assert "ingest stopped after" in log.read_text()  # the one-line shutdown summary


@pytest.fixture
def own_pg(tmp_path: Path) -> Iterator[Any]:
    """A PostgreSQL server this test owns, so it can stop and start it."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    server = pgserver.get_server(tmp_path / "pg", cleanup_mode="delete")  # type: ignore[attr-defined]
    yield server
    server.cleanup()


def test_database_outage_under_load_loses_nothing(
    own_pg: Any, mqtt_url: str, tmp_path: Path
) -> None:
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    name = f"fw_{uuid.uuid4().hex[:8]}"
    admin = str(own_pg.get_uri())
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(admin, dbname=name)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        mqtt_url=mqtt_url,
        ingest_client_id=f"outage-{uuid.uuid4().hex[:6]}",
        ingest_metrics_port=0,
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
        ingest_max_inflight=500,
        ingest_device_rate_per_s=0.0,  # one device carries the load: not the limit's test
    )
    with psycopg.connect(url, autocommit=True) as conn:
        upgrade(conn)
        load_seed(conn, read_seed())
        maintain(conn, settings)

    def stored() -> int:
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=2) as c:
                return int(scalar(c, "SELECT count(*) FROM telemetry"))
        except psycopg.OperationalError:
            return -1

    n = 4000
    with ThreadedIngest(settings) as ingest:
        pub = _publish_in_background(mqtt_url, _stream(n), rate=1000)
        wait_until(lambda: stored() >= 500, 60, "rows before the outage")
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=own_pg.pgdata, user=own_pg.system_user)
        reg = ingest.service.metrics.registry

        def failures() -> float:
            return (reg.get_sample_value("firewatch_ingest_flush_errors_total") or 0) + (
                reg.get_sample_value("firewatch_ingest_reconnects_total", {"target": "database"})
                or 0
            )

        wait_until(lambda: failures() >= 3, 30, "the writer to notice the outage")
        inflight = reg.get_sample_value("firewatch_ingest_inflight") or 0
        assert inflight <= settings.ingest_max_inflight  # bounded while the database is down
        own_pg.ensure_postgres_running()
        pub.join(timeout=120)
        assert not pub.errors  # type: ignore[attr-defined]
        wait_until(lambda: stored() >= n, 90, "all rows after the outage")
    with psycopg.connect(url, autocommit=True) as conn:
        _assert_exactly_once(conn, n)


def test_burst_into_a_slower_consumer_loses_nothing(
    mqtt_settings: Settings, db: psycopg.Connection[Any]
) -> None:
    # The whole burst waits in the broker's queue for this session: it is published while
    # the worker is away (its session kept), so none of it can be consumed on the way
    # (Mosquitto's default max_queued_messages of 1000 would drop most of it). Then a
    # worker with tiny batches and a small in-flight window drains it.
    slow = mqtt_settings.model_copy(update={"ingest_batch_size": 50, "ingest_max_inflight": 100})
    n = 20_000
    with ThreadedIngest(slow):  # creates the persistent session, then leaves
        pass
    publish_all(mqtt_settings.mqtt_url or "", _stream(n), timeout=120)
    assert scalar(db, "SELECT count(*) FROM telemetry") == 0
    with ThreadedIngest(slow):
        wait_until(lambda: scalar(db, "SELECT count(*) FROM telemetry") >= n, 180, "all rows")
    _assert_exactly_once(db, n)


def test_broker_restart_keeps_the_session_and_its_queued_messages(
    settings: Settings, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    from firewatch.runtime.mosquitto import free_port, mosquitto

    broker_dir, port = tmp_path / "own-broker", free_port()
    n = 500
    with mosquitto(broker_dir, port=port) as url:
        s = settings.model_copy(update={"mqtt_url": url})
        with ThreadedIngest(s):  # creates the persistent session, then leaves
            pass
        publish_all(url, _stream(n))  # queued for the absent worker
    assert scalar(db, "SELECT count(*) FROM telemetry") == 0
    with mosquitto(broker_dir, port=port) as url, ThreadedIngest(s):
        wait_until(lambda: scalar(db, "SELECT count(*) FROM telemetry") >= n, 60, "rows")
    _assert_exactly_once(db, n)
