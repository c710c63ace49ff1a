"""A work that records what the worker runtime asks of it, and a worker running it on a
thread: the runtime's tests use them instead of a service."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from firewatch.runtime.worker import Worker

Conn = psycopg.Connection[Any]


class Recorder:
    """A :class:`~firewatch.runtime.worker.Work` that does one trivial query per step and
    records every call."""

    def __init__(self, worker: Worker, wait_s: float = 60.0) -> None:
        self.worker = worker
        self.wait = wait_s
        self.loads = 0
        self.steps = 0
        self.ticks = 0
        self.notified: list[bool] = []  # worker.notified() at each step
        self.finals: list[bool] = []  # final(conn): was there a connection
        self.lost_errors: list[Exception] = []
        self.fail_next: Callable[[Conn], None] | None = None  # run in the next step

    def load(self, conn: Conn) -> None:
        self.loads += 1

    def step(self, conn: Conn) -> bool:
        self.notified.append(self.worker.notified())
        fail, self.fail_next = self.fail_next, None
        if fail is not None:
            fail(conn)
        conn.execute("SELECT 1")
        self.steps += 1
        return True

    def tick(self, conn: Conn) -> None:
        self.ticks += 1

    def wait_s(self) -> float:
        return self.wait

    def final(self, conn: Conn | None) -> None:
        self.finals.append(conn is not None)

    def lost(self, err: Exception) -> None:
        self.lost_errors.append(err)

    def summary(self) -> str:
        return f"{self.steps} steps"


class Running:
    """A worker and its recorder on a thread; ``stop()`` waits for ``run`` to return."""

    def __init__(self, worker: Worker, work: Recorder) -> None:
        self.worker = worker
        self.work = work
        self.stop_event = threading.Event()
        self.returned = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run(self.stop_event, self.work)
        except BaseException as err:  # surfaced by stop()
            self._error = err
        finally:
            self.returned.set()

    def start(self) -> Running:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> float:
        """Set stop; the seconds until run() returned."""
        started = time.monotonic()
        self.stop_event.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the worker did not stop"
        if self._error is not None:
            raise self._error
        return time.monotonic() - started
