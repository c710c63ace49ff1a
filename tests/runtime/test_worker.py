"""The worker runtime (firewatch/runtime/worker.py) on a real PostgreSQL, with a work that
records what the runtime asks of it: NOTIFY and wake() end a sleep at once, stop ends it
too and the final work runs once, outages are retried quietly and every other error
loudly, the thread never dies, and the summary is one line on the service's logger."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from firewatch.runtime.worker import Worker, stopped
from firewatch.storage import channels
from tests.helpers import scalar, wait_until
from tests.runtime.recorder import Conn, Recorder, Running

LOGGER = "tests.runtime.worker"
APP = "fw-runtime-test"


def make_worker(conninfo: str, **kw: Any) -> Worker:
    return Worker(
        "w",
        conninfo,
        log=logging.getLogger(LOGGER),
        channels=[channels.ANOMALIES],
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        application_name=APP,
        **kw,
    )


@pytest.fixture
def running(database_url: str) -> Iterator[Running]:
    worker = make_worker(database_url)
    r = Running(worker, Recorder(worker)).start()
    wait_until(lambda: worker.ready.is_set() and r.work.steps >= 1, 10, "ready, first step")
    yield r
    if not r.returned.is_set():
        r.stop()


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Callable[[], list[logging.LogRecord]]:
    caplog.set_level(logging.INFO, logger=LOGGER)
    return lambda: [r for r in caplog.records if r.name == LOGGER]


def test_a_notify_on_its_channel_ends_the_sleep_at_once(
    running: Running, connect: Callable[[], Conn]
) -> None:
    steps = running.work.steps
    time.sleep(0.3)
    assert running.work.steps == steps, "asleep: wait_s is 60 s"
    other = connect()
    other.execute("SELECT pg_notify(%s, '')", (channels.ALERTS,))  # not its channel
    time.sleep(0.5)
    assert running.work.steps == steps
    started = time.monotonic()
    other.execute("SELECT pg_notify(%s, '')", (channels.ANOMALIES,))
    wait_until(lambda: running.work.steps > steps, 5, "a step after the NOTIFY")
    assert time.monotonic() - started < 2.0
    assert running.work.notified[-1] is True  # the step can tell a NOTIFY woke it
    assert running.work.ticks >= running.work.steps  # a tick after every step


def test_wake_ends_the_sleep_without_counting_as_a_notify(running: Running) -> None:
    steps = running.work.steps
    running.worker.wake()
    wait_until(lambda: running.work.steps > steps, 5, "a step after wake()")
    assert running.work.notified[-1] is False


def test_stop_ends_the_sleep_runs_the_final_work_once_and_logs_one_summary(
    database_url: str, records: Callable[[], list[logging.LogRecord]]
) -> None:
    worker = make_worker(database_url)
    r = Running(worker, Recorder(worker)).start()
    wait_until(lambda: r.work.steps >= 1, 10, "the first step")
    took = r.stop()
    assert took < 2.0, f"stop waited for the 60 s sleep: {took:.1f}s"
    assert r.work.finals == [True]
    assert r.work.lost_errors == []
    lines = [x.getMessage() for x in records() if "stopped after" in x.getMessage()]
    assert lines == [stopped("w", 0.0, f"{r.work.steps} steps")]
    assert lines[0].startswith("w stopped after 0s: ")


def terminate(db: Conn, where: str = "") -> int:
    return int(
        scalar(
            db,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            f" WHERE application_name = %s AND datname = current_database() {where}",
            APP,
        )
    )


def test_an_outage_is_retried_quietly_and_the_work_reloaded(
    running: Running,
    connect: Callable[[], Conn],
    records: Callable[[], list[logging.LogRecord]],
) -> None:
    db = connect()
    assert terminate(db) == 2  # the work's connection and the LISTEN connection
    wait_until(lambda: running.work.loads >= 2, 10, "a reconnect and a new load")
    assert all(isinstance(e, psycopg.OperationalError) for e in running.work.lost_errors)
    steps = running.work.steps
    db.execute("SELECT pg_notify(%s, '')", (channels.ANOMALIES,))  # listening again
    wait_until(lambda: running.work.steps > steps, 5, "woken after the reconnect")
    warned = [x for x in records() if x.levelno == logging.WARNING]
    assert warned
    assert all(x.getMessage().startswith("database: ") for x in warned)
    assert not [x for x in records() if x.levelno >= logging.ERROR]
    running.stop()
    assert running.work.finals == [True]


def test_losing_only_the_listen_connection_reconnects_too(
    running: Running, connect: Callable[[], Conn]
) -> None:
    db = connect()
    assert terminate(db, "AND query LIKE 'LISTEN %%'") == 1
    wait_until(lambda: running.work.loads >= 2, 10, "a new session")
    (err,) = running.work.lost_errors
    assert isinstance(err, psycopg.OperationalError)
    steps = running.work.steps
    db.execute("SELECT pg_notify(%s, '')", (channels.ANOMALIES,))
    wait_until(lambda: running.work.steps > steps, 5, "woken by the new LISTEN connection")


def test_an_error_that_is_not_an_outage_is_loud_and_retried(
    running: Running, records: Callable[[], list[logging.LogRecord]]
) -> None:
    running.work.fail_next = lambda conn: conn.execute("SELECT 1/0").fetchone()  # SQLSTATE 22
    running.worker.wake()
    wait_until(lambda: running.work.loads >= 2, 10, "a new session after the error")
    (err,) = running.work.lost_errors
    assert isinstance(err, psycopg.errors.DivisionByZero)
    (line,) = [x for x in records() if x.levelno == logging.ERROR]
    assert line.getMessage().startswith("w failed: DivisionByZero (22012)")
    assert line.exc_info is None  # the database's error says it all
    steps = running.work.steps
    running.worker.wake()
    wait_until(lambda: running.work.steps > steps, 5, "working again")


def test_a_bug_is_logged_with_its_traceback_and_the_thread_goes_on(
    running: Running, records: Callable[[], list[logging.LogRecord]]
) -> None:
    def bug(conn: Conn) -> None:
        raise KeyError("no such thing")

    running.work.fail_next = bug
    running.worker.wake()
    wait_until(lambda: running.work.loads >= 2, 10, "a new session after the bug")
    (line,) = [x for x in records() if x.levelno == logging.ERROR]
    assert line.getMessage().startswith("w failed: KeyError")
    assert line.exc_info is not None
    steps = running.work.steps
    running.worker.wake()
    wait_until(lambda: running.work.steps > steps, 5, "working again")
    running.stop()
    assert running.work.finals == [True]


def test_without_a_database_it_retries_until_stopped_then_final_gets_none(
    records: Callable[[], list[logging.LogRecord]],
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = make_worker(f"postgresql://firewatch@127.0.0.1:{port}/nothing")
    r = Running(worker, Recorder(worker)).start()
    wait_until(lambda: len(r.work.lost_errors) >= 3, 10, "three failed connects")
    r.stop()
    assert not worker.ready.is_set()
    assert r.work.loads == 0
    assert r.work.finals == [False]
    assert [x.getMessage() for x in records() if "stopped after" in x.getMessage()] == [
        "w stopped after 0s: 0 steps"
    ]


def test_a_failing_final_work_is_retried_without_the_session(database_url: str) -> None:
    worker = make_worker(database_url)

    class FinalFails(Recorder):
        def final(self, conn: Conn | None) -> None:
            super().final(conn)
            if conn is not None:
                conn.execute("SELECT 1/0")

    r = Running(worker, FinalFails(worker)).start()
    wait_until(lambda: r.work.steps >= 1, 10, "the first step")
    r.stop()
    assert r.work.finals == [True, False]
    assert len(r.work.lost_errors) == 1
