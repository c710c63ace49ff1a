"""The analysis worker (``firewatch analysis``): keeps the tiered rollups current.

On the worker runtime (``runtime/worker.py``: connections, reconnects with backoff, ready,
stop, the summary line), every ``analysis_poll_s`` (or at once while there is a backlog) it
runs one refresh round (``analysis/refresh.py``): mark the buckets that new and late rows
touched, queue them with the cursor, recompute the due ones and add them up the tiers. It
listens to no channel: rollups trail the data by design (an hour is rolled up once it has
ended, the hour still filling every ``analysis_live_every_s``), so waking on every ingest
commit would buy nothing.

Time-driven, on the injected clock: the registry's thresholds are reloaded every
``analysis_registry_refresh_s``, and once an hour hourly rollups older than
``analysis_hour_retention_days`` and daily ones older than ``record_retention_days`` are
deleted, and on TimescaleDB the chunks past their compression age are compressed
(``storage/maintenance.py``: ``compress_due``). Everything commits as it goes; there is no
state to save at shutdown. One worker is the deployment; a second would only wait for the
first's lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from firewatch.analysis.refresh import CURSOR_NAME, RefreshStats, Rollups
from firewatch.core.rollups import Grain
from firewatch.core.settings import Settings
from firewatch.runtime.metrics import MetricsEndpoint, stats_registry
from firewatch.runtime.worker import Worker
from firewatch.storage import rollup_marks, rollup_tiers
from firewatch.storage.maintenance import compress_due
from firewatch.storage.rollup_marks import RefreshCursor
from firewatch.storage.timestamps import clamp_timestamps

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
PRUNE_BATCH = 10_000


class AnalysisService:
    """One analysis worker (see the module docstring). Raises ValueError at construction
    for settings that cannot work (:func:`check_settings`)."""

    def __init__(
        self, settings: Settings, conninfo: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        check_settings(settings)
        self.settings = settings
        self.clock = clock
        self.rollups = Rollups(settings, clock=clock)
        self.stats: RefreshStats = self.rollups.stats
        self._worker = Worker(
            "analysis",
            conninfo,
            log=log,
            channels=[],
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
            metrics=MetricsEndpoint(
                stats_registry("analysis", self.stats),
                settings.metrics_host,
                settings.analysis_metrics_port,
            ),
            application_name="firewatch-analysis",
        )
        self.ready: threading.Event = self._worker.ready
        self._cursor: RefreshCursor | None = None
        self._next_registry = 0.0
        self._next_prune = 0.0

    def run(self, stop: threading.Event) -> RefreshStats:
        """Until ``stop`` is set; reconnects with jittered backoff through outages."""
        self._worker.run(stop, self)
        return self.stats

    def wake(self) -> None:
        """End the current wait: refresh now (tests, and anything that knows of new data)."""
        self._worker.wake()

    # -- the work (runtime.worker.Work) ---------------------------------------------------

    def load(self, conn: psycopg.Connection[Any]) -> None:
        """On every (re)connect: the saved cursor (from the beginning of the stored data
        if there is none) and the registry's thresholds."""
        clamp_timestamps(conn)  # any stored time loads (docs/reliability.md)
        self._cursor = rollup_marks.load_cursor(conn, CURSOR_NAME) or RefreshCursor()
        self.rollups.load_limits(conn)
        self._next_registry = self.clock() + self.settings.analysis_registry_refresh_s

    def step(self, conn: psycopg.Connection[Any]) -> bool:
        """One refresh round; True when caught up."""
        assert self._cursor is not None
        done, self._cursor = self.rollups.run_round(conn, self._cursor)
        if done.recomputed:
            log.debug(
                "analysis: %d marked, %d device-hours recomputed, %d rows",
                done.marked,
                done.recomputed,
                done.rows,
            )
        return done.caught_up

    def tick(self, conn: psycopg.Connection[Any]) -> None:
        """Registry reload and retention, when due on the injected clock."""
        t = self.clock()
        if t >= self._next_registry:
            self.rollups.load_limits(conn)
            self._next_registry = t + self.settings.analysis_registry_refresh_s
        if t >= self._next_prune:
            self.stats.pruned += prune_expired(conn, self.settings, now=t)
            # TimescaleDB: compress the chunks past their age here, not in ingest's writer
            # (seconds per chunk); nothing on plain PostgreSQL (storage/maintenance.py).
            self.stats.compressed += compress_due(
                conn, self.settings, datetime.fromtimestamp(t, UTC)
            )
            self._next_prune = t + PRUNE_EVERY_S

    def wait_s(self) -> float:
        return self.settings.analysis_poll_s

    def final(self, conn: psycopg.Connection[Any] | None) -> None:
        """Nothing: every round commits its marks and rollups as it goes."""

    def lost(self, err: Exception) -> None:
        self._cursor = None
        self.stats.reconnects += 1

    def summary(self) -> str:
        return self.stats.summary()


def check_settings(settings: Settings) -> None:
    """ValueError unless the rollups can work with ``settings``: whole-hour days, and
    hourly rows kept longer than late data can arrive (a late reading must find its day's
    other hours to add up with)."""
    Rollups(settings)  # the day offset
    keep_s = settings.analysis_hour_retention_days * 86_400.0
    if keep_s < settings.max_backlog_age_s + 2 * 86_400.0:
        raise ValueError(
            f"FIREWATCH_ANALYSIS_HOUR_RETENTION_DAYS={settings.analysis_hour_retention_days}: "
            "hourly rollups must be kept at least two days longer than "
            f"FIREWATCH_MAX_BACKLOG_AGE_S ({settings.max_backlog_age_s / 86_400:g} days): a "
            "late reading's day is added up from its hours"
        )


def prune_expired(conn: psycopg.Connection[Any], settings: Settings, *, now: float) -> int:
    """Delete hourly rollups older than ``analysis_hour_retention_days`` and daily ones
    older than ``record_retention_days``, in batches; returns how many."""
    at = datetime.fromtimestamp(now, UTC)
    deleted = 0
    for grain, days in (
        (Grain.HOUR, settings.analysis_hour_retention_days),
        (Grain.DAY, settings.record_retention_days),
    ):
        while True:
            n = rollup_tiers.prune(conn, grain, at - timedelta(days=days), limit=PRUNE_BATCH)
            deleted += n
            if n < PRUNE_BATCH:
                break
    return deleted
