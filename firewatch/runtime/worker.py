"""The one worker runtime: the loop every database-driven service runs on, written once.

A worker (analytics, alerting, the outbox dispatcher) is a loop over the database: connect,
load what it works with, then round after round do its work; when caught up, sleep until a
NOTIFY on its channels, or its poll time, wakes it. :class:`Worker` owns everything around
the work, and a service supplies only the work itself (:class:`Work`):

* **Connections.** A session is two autocommit connections: one for the work, one that
  LISTENs on the worker's channels (``storage/channels.py``) on a thread of its own, so a
  NOTIFY ends a sleep at once. LISTEN is in effect before :meth:`Work.load` reads anything,
  so a commit in between is not missed; a notification that arrives while the work runs
  makes the next sleep end at once.
* **Reconnects** with jittered exponential backoff (``core/backoff.py``) for as long as it
  takes. Errors are told apart by the one rule (``storage/errors.py``): the database being
  unavailable (an outage) is waited out with a one-line warning; any other error is logged
  loudly (an error line; with its traceback when it is not a database error, which means a
  bug) and retried the same way. Neither ends the thread: a worker that died would be an
  outage nobody notices (docs/reliability.md, "Nothing stops the pipeline").
* **/metrics** by the one rule (:class:`~firewatch.runtime.metrics.MetricsEndpoint`): port
  0 serves nothing; a port that cannot be bound is logged and the worker goes on.
* **ready and stop.** :attr:`Worker.ready` is set once a session is connected, listening and
  loaded; setting ``stop`` ends the loop, even mid-sleep, and the work's final step runs.
* **The summary**: one INFO line on the service's logger at shutdown,
  ``"<name> stopped after <N>s: <what the work says it did>"`` (:func:`stopped`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import psycopg
from psycopg.conninfo import make_conninfo

from firewatch.core.backoff import Backoff
from firewatch.runtime.metrics import MetricsEndpoint
from firewatch.storage import channels as notify_channels
from firewatch.storage.errors import database_unavailable, describe

#: How often the LISTEN thread looks up from its connection (to end with its session).
LISTEN_SLICE_S = 0.25


class Work(Protocol):
    """What a service supplies to :class:`Worker`. Every method runs on the worker's thread
    (the one that called :meth:`Worker.run`); psycopg errors propagate to the worker, which
    calls :meth:`lost` and reconnects."""

    def load(self, conn: psycopg.Connection[Any]) -> None:
        """(Re)load what the work reads with (a cursor, a checkpoint, a registry) on every
        (re)connect, before the first :meth:`step` of the session."""
        ...

    def step(self, conn: psycopg.Connection[Any]) -> bool:
        """One round of work; True when caught up (the worker may then sleep)."""
        ...

    def tick(self, conn: psycopg.Connection[Any]) -> None:
        """Time-driven checks, after every :meth:`step`: the service decides, on its own
        (injected) clock, whether any is due."""
        ...

    def wait_s(self) -> float:
        """How long the worker may sleep when caught up, unless a NOTIFY, :meth:`Worker.wake`
        or stop ends the sleep sooner."""
        ...

    def final(self, conn: psycopg.Connection[Any] | None) -> None:
        """Last work once stop is set (e.g. a final checkpoint): on the session's connection,
        or with None when there is no live session (it ended with an error, or the final
        work on it failed). Runs once with a connection at most, and once with None at
        most, in that order."""
        ...

    def lost(self, err: Exception) -> None:
        """A session ended with ``err`` (already logged): forget what was not committed
        (:meth:`load` builds it again) and count the reconnect."""
        ...

    def summary(self) -> str:
        """What the work did, for the shutdown line (after ``"<name> stopped after Ns: "``)."""
        ...


def stopped(name: str, elapsed: float, what: str, *, digits: int = 0) -> str:
    """The one shutdown summary line of a service: ``"<name> stopped after <elapsed>s:
    <what>"``, the seconds with ``digits`` decimals."""
    return f"{name} stopped after {elapsed:.{digits}f}s: {what}"


class Worker:
    """Runs one :class:`Work` on the database until stopped (see the module docstring).

    ``name`` begins the summary and the loud error lines (``"analytics failed: …"``);
    ``log`` is the service's logger, which gets every line. ``channels``: the NOTIFY
    channels that wake the work (names from ``storage/channels.py``). ``metrics``: where
    the service's registry is served, or None. ``application_name`` labels both
    connections in ``pg_stat_activity`` (None: psycopg's default).
    """

    def __init__(
        self,
        name: str,
        conninfo: str,
        *,
        log: logging.Logger,
        channels: Sequence[str],
        backoff_initial_s: float,
        backoff_max_s: float,
        metrics: MetricsEndpoint | None = None,
        application_name: str | None = None,
    ) -> None:
        Backoff(backoff_initial_s, backoff_max_s)  # validates, before anything runs
        self.name = name
        self.conninfo = conninfo
        if application_name is not None:
            self.conninfo = make_conninfo(conninfo, application_name=application_name)
        self.channels = tuple(channels)
        self.metrics = metrics
        self.metrics_port: int | None = None  # bound by run(), None when not serving
        #: set once a session is connected, listening and loaded
        self.ready = threading.Event()
        self._log = log
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._wake = threading.Event()
        self._notified = False
        self._notified_lock = threading.Lock()

    # -- for the work -------------------------------------------------------------------

    def wake(self) -> None:
        """End the current (or next) sleep: there is work (any thread may call it)."""
        self._wake.set()

    def notified(self) -> bool:
        """Whether a NOTIFY arrived since the last call (and forget it)."""
        with self._notified_lock:
            was, self._notified = self._notified, False
        return was

    def connect(self) -> psycopg.Connection[Any]:
        """An autocommit connection like the worker's own (for work beside the loop)."""
        return psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)

    # -- the loop -----------------------------------------------------------------------

    def run(self, stop: threading.Event, work: Work) -> None:
        """Run ``work`` until ``stop`` is set, then its final step and the summary line.
        Returns only then; an error inside never ends it (see the module docstring)."""
        started = time.monotonic()
        if self.metrics is not None:
            self.metrics_port = self.metrics.serve(self._log)
        backoff = Backoff(*self._backoff)
        waker = threading.Thread(
            target=self._wake_on, args=(stop,), daemon=True, name=f"{self.name}-stop"
        )
        waker.start()
        finished = False  # final(conn) ran on a live session
        while not stop.is_set():
            try:
                self._session(stop, work, backoff)
                finished = True
            except Exception as err:
                self._failed(err, work, backoff, stop)
        if not finished:
            try:
                work.final(None)
            except Exception:  # shutting down anyway: say so, and still log the summary
                self._log.exception("%s: final work without the database failed", self.name)
        self._log.info(stopped(self.name, time.monotonic() - started, work.summary()))

    def _wake_on(self, stop: threading.Event) -> None:
        stop.wait()
        self._wake.set()

    def _session(self, stop: threading.Event, work: Work, backoff: Backoff) -> None:
        """One connection's lifetime; returns (after the final work) only once stopped."""
        with self.connect() as conn, self.connect() as listen_conn:
            listener = _Listener(listen_conn, self.channels, self._notify, self.wake, self.name)
            try:
                work.load(conn)
                backoff.reset()
                self.ready.set()
                while not stop.is_set():
                    listener.check()
                    caught_up = work.step(conn)
                    work.tick(conn)
                    if caught_up and not stop.is_set():
                        self._wake.wait(max(0.0, work.wait_s()))
                        self._wake.clear()  # before the next round looks at what woke it
                work.final(conn)
            finally:
                listener.close()

    def _failed(self, err: Exception, work: Work, backoff: Backoff, stop: threading.Event) -> None:
        """Classify, log, let the work forget, and wait out the backoff (or the stop)."""
        work.lost(err)
        delay = backoff.next()
        if isinstance(err, psycopg.Error) and database_unavailable(err):
            self._log.warning("database: %s; retrying in %.2fs", str(err).strip(), delay)
        elif isinstance(err, psycopg.Error):  # not an outage, not one row's fault: loudly
            self._log.error("%s failed: %s; retrying in %.2fs", self.name, describe(err), delay)
        else:  # a bug: the traceback, and the worker goes on
            what = describe(err)
            self._log.exception("%s failed: %s; retrying in %.2fs", self.name, what, delay)
        stop.wait(delay)

    def _notify(self) -> None:
        with self._notified_lock:
            self._notified = True
        self._wake.set()


class _Listener:
    """A session's LISTEN connection and its thread: every NOTIFY wakes the worker. An
    error on it is kept for the worker's thread (:meth:`check`), which reconnects."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        channels: Sequence[str],
        on_notify: Callable[[], None],
        on_error: Callable[[], None],
        name: str,
    ) -> None:
        notify_channels.listen(conn, channels)  # in effect before the work reads anything
        self._conn = conn
        self._on_notify = on_notify
        self._on_error = on_error
        self._over = threading.Event()
        self._error: psycopg.Error | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"{name}-listen")
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._over.is_set():
                for _ in self._conn.notifies(timeout=LISTEN_SLICE_S):
                    self._on_notify()
        except psycopg.Error as err:
            if not self._over.is_set():
                self._error = err
                self._on_error()

    def check(self) -> None:
        """Raise the LISTEN connection's error, if it had one (as an OperationalError: the
        session is lost either way)."""
        err = self._error
        if err is None:
            return
        if isinstance(err, psycopg.OperationalError):
            raise err
        raise psycopg.OperationalError(f"LISTEN connection: {err}") from err

    def close(self) -> None:
        self._over.set()
        self._thread.join()
