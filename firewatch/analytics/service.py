"""The analytics worker: committed rows -> detectors -> anomaly episodes, checkpointed.

Why a service of its own rather than detectors inside ingest: ingest workers share one
MQTT subscription, so one device's messages are spread over all of them, while detectors
need every point of a device (and of its unit, for false-alarm counts) in order, in one
place. Analytics reads what ingest *committed*, through the feed (``storage/feed.py``:
every row exactly once, never one of an unfinished transaction), sharded by unit
(``FIREWATCH_ANALYTICS_SHARD=k/n``), woken by ingest's NOTIFY. Ingest stays as fast as it
was, and a detector bug cannot lose a message. The loop around it — connections, LISTEN,
reconnects, ``/metrics``, ready, the summary — is the worker runtime's
(``runtime/worker.py``); this module is the work.

Each loop: read a batch after the cursor, run the engine, and in one transaction upsert
the anomaly changes and — every ``analytics_checkpoint_s`` — the engine state with the
cursor that produced it. After a crash the worker restarts from the last checkpoint and
replays what followed it: detectors are deterministic for a given state and input, and
every episode revision it writes again is refused by the revision guard, so nothing is
written twice and no old anomaly fires again. The engine's clock is the server's time
while the feed is caught up, and the newest receive time of the rows while it catches up
(so replaying an hour of backlog does not look like an hour of silence).

Shutdown: stop reading, save a final checkpoint, close, one summary line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from firewatch.analytics.analytics_metrics import AnalyticsMetrics
from firewatch.analytics.checkpoint import STATE_FORMAT, CheckpointError
from firewatch.analytics.engine import DetectorEngine
from firewatch.analytics.frames import Batch, TelemetryFrame
from firewatch.analytics.learned_models import latest_versions, load_latest
from firewatch.analytics.profiles import load_profiles
from firewatch.core.settings import Settings
from firewatch.runtime.metrics import MetricsEndpoint
from firewatch.runtime.worker import Worker
from firewatch.storage import channels
from firewatch.storage.anomalies import load_checkpoint, save_checkpoint, upsert_anomalies
from firewatch.storage.feed import FeedBatch, FeedCursor, Shard, Skipped, read_batch
from firewatch.storage.skipped import record_skipped

log = logging.getLogger(__name__)


@dataclass
class AnalyticsStats:
    """What one run did (the shutdown summary)."""

    rows: int = 0
    points: int = 0
    changes: int = 0
    batches: int = 0
    checkpoints: int = 0
    reconnects: int = 0
    skipped: int = 0  # rows recorded in skipped_rows instead of processed
    failed_batches: int = 0  # batches the detectors raised on (skipped after a reload)
    detector_seconds: float = 0.0

    def summary(self, open_now: int) -> str:
        """What the worker did, for the shutdown line (:func:`firewatch.runtime.worker.stopped`)."""
        return (
            f"{self.rows} rows, {self.points} points "
            f"in {self.batches} batches ({self.detector_seconds:.1f}s in detectors), "
            f"{self.changes} anomaly changes, {open_now} open, {self.checkpoints} checkpoints, "
            f"{self.reconnects} reconnects, {self.skipped} rows skipped, "
            f"{self.failed_batches} batches failed"
        )


class AnalyticsService:
    """One analytics worker for one shard (see the module docstring): the
    :class:`~firewatch.runtime.worker.Work` of a :class:`~firewatch.runtime.worker.Worker`."""

    def __init__(
        self,
        settings: Settings,
        conninfo: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.conninfo = conninfo
        self.shard = Shard.parse(settings.analytics_shard)
        self.clock = clock
        self.metrics = AnalyticsMetrics()
        self.stats = AnalyticsStats()
        self._worker = Worker(
            "analytics",
            conninfo,
            log=log,
            channels=[channels.INGEST],
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
            metrics=MetricsEndpoint(
                self.metrics.registry, settings.metrics_host, settings.analytics_metrics_port
            ),
        )
        #: set once the engine is loaded and reading
        self.ready: threading.Event = self._worker.ready
        self.engine: DetectorEngine | None = None
        self._cursor: FeedCursor | None = None
        self._stream_now = 0.0
        self._saved_at = 0.0
        self._profiles_at = 0.0
        self._models_at = 0.0
        self._versions: dict[Any, int | None] = {}
        self._rows_base = 0  # the resumed checkpoint's rows_processed minus stats.rows then

    def run(self, stop: threading.Event) -> AnalyticsStats:
        """Run until ``stop`` is set; reconnects with jittered backoff through database
        outages (the engine then reloads from its last checkpoint)."""
        self._worker.run(stop, self)
        return self.stats

    # -- the work (runtime.worker.Work): load, step and tick are below ------------------

    def wait_s(self) -> float:
        return self.settings.analytics_poll_s

    def final(self, conn: psycopg.Connection[Any] | None) -> None:
        """The final checkpoint, when the database is there for it."""
        if conn is not None:
            self._checkpoint(conn, force=True)

    def lost(self, err: Exception) -> None:
        # State may be ahead of what was committed: load() reloads it from the checkpoint.
        self.engine, self._cursor = None, None
        self.stats.reconnects += 1
        self.metrics.reconnects.inc()

    def summary(self) -> str:
        open_now = len(self.engine.open_anomalies()) if self.engine else 0
        return self.stats.summary(open_now)

    def load(self, conn: psycopg.Connection[Any]) -> None:
        """On every (re)connect (and after a failed batch): profiles, models, and the
        checkpoint's detector state and cursor (or the configured start)."""
        s = self.settings
        profiles = load_profiles(conn, s)
        models = load_latest(conn)
        engine = DetectorEngine(s, profiles, models)
        self._versions = {k: m.version for k, m in models.items()}
        cp = load_checkpoint(conn, str(self.shard))
        cursor: FeedCursor
        # rows_processed = _rows_base + stats.rows; stats.rows keeps counting across
        # reconnects (rows read before one are counted again when replayed), so subtract
        # what it holds now: the checkpoint already counts every row up to its cursor.
        self._rows_base = (cp.rows_processed if cp is not None else 0) - self.stats.rows
        if cp is not None:
            cursor = FeedCursor.from_json(cp.cursor)
            try:
                engine.load(cp.state)
                log.info(
                    "analytics %s: resumed from the checkpoint of %s (%d rows so far)",
                    self.shard,
                    cp.saved_at.isoformat(),
                    cp.rows_processed,
                )
            except CheckpointError as err:
                log.warning("analytics %s: %s; detectors start without history", self.shard, err)
        elif s.analytics_start == "latest":
            cursor = FeedCursor.at_horizon(conn)
        else:
            cursor = FeedCursor.start()
        now = time.monotonic()
        self.engine, self._cursor = engine, cursor
        self._profiles_at = self._models_at = self._saved_at = now
        for kind, v in self._versions.items():
            self.metrics.model_version.labels(kind.value).set(v or 0)

    def tick(self, conn: psycopg.Connection[Any]) -> None:
        """Pick up registry edits and newly trained models, when their refresh is due."""
        assert self.engine is not None
        s, now = self.settings, time.monotonic()
        if now - self._profiles_at >= s.analytics_registry_refresh_s:
            self._profiles_at = now
            profiles = load_profiles(conn, s)
            if profiles != self.engine.profiles:
                self.engine.set_profiles(profiles)
        if now - self._models_at >= s.analytics_model_refresh_s:
            self._models_at = now
            versions = latest_versions(conn)
            if versions != self._versions:
                models = load_latest(conn)
                self.engine.set_models(models)
                self._versions = {k: m.version for k, m in models.items()}
                log.info(
                    "analytics %s: loaded models %s",
                    self.shard,
                    {k.value: v for k, v in self._versions.items()},
                )
                for kind, v in self._versions.items():
                    self.metrics.model_version.labels(kind.value).set(v or 0)

    def step(self, conn: psycopg.Connection[Any]) -> bool:
        """One read-process-write round; True when the feed was caught up."""
        assert self.engine is not None
        assert self._cursor is not None
        s = self.settings
        fb = read_batch(
            conn,
            self._cursor,
            limit=s.analytics_batch_rows,
            max_age_s=s.max_backlog_age_s,
            shard=self.shard,
        )
        batch = self._batch(fb)
        skipped = list(fb.skipped)
        t0 = time.perf_counter()
        try:
            changes = self.engine.process(batch) if len(batch) else self.engine.tick(batch.now)
        except Exception as err:  # a detector bug on some row: never a crash loop
            changes = []
            skipped += self._failed_batch(conn, fb, err)
        took = time.perf_counter() - t0
        with conn.transaction():
            if changes:
                upsert_anomalies(conn, changes)
            if skipped:
                record_skipped(
                    conn, f"analytics {self.shard}", [(s.table, s.key, s.reason) for s in skipped]
                )
            self._cursor = fb.cursor
            self._checkpoint(conn, force=bool(skipped))
        st, m = self.stats, self.metrics
        if skipped:
            st.skipped += len(skipped)
            for s_ in skipped:
                m.skipped.labels(s_.table).inc()
            log.warning(
                "analytics %s: %d stored rows skipped (recorded in skipped_rows), e.g. %s %s: %s",
                self.shard,
                len(skipped),
                skipped[0].table,
                skipped[0].key,
                skipped[0].reason,
            )
        points = batch.points()
        st.rows += len(batch)
        st.points += points
        st.changes += len(changes)
        st.batches += 1 if len(batch) else 0
        st.detector_seconds += took
        m.batch.observe(took)
        m.points.inc(points)
        for table, rows in (
            ("telemetry", fb.telemetry),
            ("events", fb.events),
            ("device_status", fb.statuses),
            ("dead_letters", fb.dead_letters),
        ):
            if rows:
                m.rows.labels(table).inc(len(rows))
        for a in changes:
            m.anomalies.labels(a.detector).inc()
        if len(batch):
            m.lag.set(max(0.0, self.clock() - self._stream_now))
        return fb.caught_up

    def _failed_batch(
        self, conn: psycopg.Connection[Any], fb: FeedBatch, err: Exception
    ) -> list[Skipped]:
        """The detectors raised on ``fb``. Their state may be half-updated, so it is
        reloaded from the last checkpoint, and the batch is skipped: every row of it is
        recorded with the error. The rows between that checkpoint and this batch are not
        run through the detectors again (a gap in their history, not in the data); the
        caller saves a checkpoint at once so a restart does not meet the batch again."""
        log.exception(
            "analytics %s: detectors failed on a batch of %d rows; skipping it", self.shard, len(fb)
        )
        self.stats.failed_batches += 1
        reason = f"detectors failed on its batch: {type(err).__name__}: {err}"[:1000]
        cursor = fb.cursor
        self.load(conn)
        self._cursor = cursor
        out: list[Skipped] = []
        for table, rows in (
            ("telemetry", fb.telemetry),
            ("events", fb.events),
            ("device_status", fb.statuses),
        ):
            for r in rows:
                out.append(Skipped(table, [r.device_id, r.ts.isoformat(), r.seq], reason))
        out += [
            Skipped("dead_letters", [d.topic, d.received_at.isoformat()], reason)
            for d in fb.dead_letters
        ]
        return out

    def _batch(self, fb: FeedBatch) -> Batch:
        frame = TelemetryFrame.from_rows(fb.telemetry)
        newest = [frame.received.max()] if len(frame) else []
        newest += [e.received_at.timestamp() for e in fb.events]
        newest += [s.received_at.timestamp() for s in fb.statuses]
        newest += [d.received_at.timestamp() for d in fb.dead_letters]
        if newest:
            self._stream_now = max(self._stream_now, float(max(newest)))
        # caught up: the server's clock (silence is real); behind: the rows' own time
        now = self.clock() if fb.caught_up else self._stream_now
        return Batch(now, frame, fb.events, fb.statuses, fb.dead_letters)

    def _checkpoint(self, conn: psycopg.Connection[Any], *, force: bool) -> None:
        """Save engine state and cursor if due (or ``force``); inside the caller's
        transaction when there is one, so state, cursor and anomalies commit together."""
        assert self.engine is not None
        assert self._cursor is not None
        now = time.monotonic()
        if not force and now - self._saved_at < self.settings.analytics_checkpoint_s:
            return
        save_checkpoint(
            conn,
            str(self.shard),
            self._cursor.to_json(),
            self.engine.snapshot(),
            STATE_FORMAT,
            self._rows_base + self.stats.rows,
        )
        self._saved_at = now
        self.stats.checkpoints += 1
        self.metrics.checkpoints.inc()
        self.metrics.open.set(len(self.engine.open_anomalies()))
