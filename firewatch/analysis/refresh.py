"""One refresh of the rollups: mark what changed, queue it, recompute what is due, add it up
the tiers (docs/analysis.md, "Incremental refresh").

A round has two steps, each committing on its own:

1. **Mark.** Read the next window of transaction ids below the horizon
   (``storage/rollup_marks.py``): the ``(device, hour)`` buckets its telemetry, anomaly
   changes and alert events touch, plus the current hours of devices with an open duration
   episode (a fault, an isolation, offline). Queue them in ``rollup_pending`` and save the
   cursor, in one transaction: a crash before the commit reads the window again.
2. **Recompute.** Take the due buckets from the queue: hours that have ended (and settled:
   a reading just after the hour still holds into it), and hours still filling that have
   waited ``analysis_live_every_s``. Compute them from the raw tables with read-only
   statements (``storage/rollups.py``), then in one short transaction write them, add up
   each touched device-day, unit, street, district and city bucket of both grains
   (``storage/rollup_tiers.py``), and remove them from the queue. A crash before the
   commit leaves them queued; recomputing gives the same rows.

Both steps run under a session advisory lock, so a one-shot backfill
(:meth:`Rollups.refresh_since`) and the service never write the same buckets from
different snapshots. Nothing here holds SQL: it calls ``firewatch/storage``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from firewatch.core.domain import CHANNELS_BY_KIND, Channel
from firewatch.core.rollups import (
    DEFAULT_HOLD_S,
    REGION_TIERS,
    DeviceLimits,
    Grain,
    day_offset_h,
    device_limits,
)
from firewatch.core.settings import Settings
from firewatch.storage import rollup_marks as marks_store
from firewatch.storage import rollup_tiers as tiers
from firewatch.storage.feed import PRUNE_SLACK_S
from firewatch.storage.rollup_marks import Mark, RefreshCursor
from firewatch.storage.rollups import compute_device_hours
from firewatch.storage.seed import device_profile_rows

CURSOR_NAME = "rollups"
INITIAL_SPAN = 1 << 16
"""Transaction ids a window spans at first; it halves while it holds more than
``analysis_round_rows`` telemetry rows and doubles while it holds few."""
HOUR = timedelta(hours=1)


@dataclass
class RefreshStats:
    """What the refresh did, for the summary line and the tests."""

    rounds: int = 0
    windows: int = 0
    marked: int = 0  # (device, hour) marks queued
    recomputed: int = 0  # device-hour buckets recomputed
    rows: int = 0  # rollup rows written, all tiers and grains
    reconnects: int = 0
    pruned: int = 0
    compressed: int = 0  # TimescaleDB chunks compressed (analysis/service.py)

    def summary(self) -> str:
        return (
            f"{self.rounds} rounds, {self.windows} windows, {self.marked} buckets marked, "
            f"{self.recomputed} device-hours recomputed, {self.rows} rollup rows written, "
            f"{self.pruned} expired, {self.compressed} chunks compressed, "
            f"{self.reconnects} reconnects"
        )


@dataclass(frozen=True)
class Round:
    """One round's outcome: whether the window reached the horizon and the queue holds
    nothing due (then the caller may wait)."""

    marked: int
    recomputed: int
    rows: int
    caught_up: bool


class Rollups:
    """The refresh logic shared by the service and ``firewatch analysis refresh``.

    ``clock``: Unix seconds (injected: tests move time). Raises ValueError at construction
    when the settings cannot give day buckets (``day_offset_h``).
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.offset_h = day_offset_h(settings)
        self.holds = dict(settings.alert_offline_after_s)
        #: a closed hour is due once the hold of its last reading has run out (the kinds
        #: that send telemetry: a panel's events hold nothing here)
        telemetry = [k for k, ch in CHANNELS_BY_KIND.items() if Channel.TELEMETRY in ch]
        self.settle = timedelta(
            seconds=max((self.holds.get(k, DEFAULT_HOLD_S) for k in telemetry), default=0.0)
        )
        self.limits: dict[str, DeviceLimits] = {}
        self.span = INITIAL_SPAN
        self.stats = RefreshStats()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def load_limits(self, conn: psycopg.Connection[Any]) -> None:
        """Every registered device's thresholds (``core/rollups.py``, ``device_limits``)."""
        self.limits = {
            r.device_id: device_limits(
                self.settings, r.device_id, r.kind, r.building_class, r.metadata, r.thresholds
            )
            for r in device_profile_rows(conn)
        }

    @contextmanager
    def locked(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        tiers.lock_refresh(conn)
        try:
            yield
        finally:
            if not conn.closed:
                tiers.unlock_refresh(conn)

    # -- the service's round ------------------------------------------------------------

    def run_round(
        self, conn: psycopg.Connection[Any], cursor: RefreshCursor
    ) -> tuple[Round, RefreshCursor]:
        """Mark the next window and recompute what is due (module docstring); the round and
        the saved cursor. ``conn``: autocommit, no transaction open."""
        with self.locked(conn):
            cursor, marked, window_done = self.mark(conn, cursor)
            recomputed, rows, drained = self.recompute_due(conn)
        self.stats.rounds += 1
        return Round(marked, recomputed, rows, window_done and drained), cursor

    def mark(
        self, conn: psycopg.Connection[Any], cursor: RefreshCursor
    ) -> tuple[RefreshCursor, int, bool]:
        """Step 1: queue the buckets of the next window and the ongoing conditions, and
        save the cursor after them; ``(cursor, marks, window reached the horizon)``."""
        limit_h, db_now = marks_store.horizon(conn)
        now = self.now()
        floor = db_now - timedelta(seconds=self.settings.max_backlog_age_s + PRUNE_SLACK_S)
        lo = cursor.xid
        hi = lo
        if lo < limit_h:
            hi = min(limit_h, lo + self.span)
            limit = self.settings.analysis_round_rows
            rows = marks_store.window_rows(conn, lo, hi, floor=floor, limit=limit + 1)
            while rows > limit and hi - lo > 1:
                self.span = max(1, (hi - lo) // 2)
                hi = lo + self.span
                rows = marks_store.window_rows(conn, lo, hi, floor=floor, limit=limit + 1)
            if rows < limit // 4 and hi < limit_h:
                self.span = min(self.span * 2, 1 << 40)
        max_span = timedelta(days=self.settings.record_retention_days)
        marks: set[Mark] = set()
        if hi > lo:
            marks = marks_store.marks_in_window(
                conn, lo, hi, floor=floor, holds=self.holds, now=now, max_span=max_span
            )
            self.stats.windows += 1
        since = now if cursor.tick is None else datetime.fromtimestamp(cursor.tick, UTC)
        marks |= marks_store.marks_ongoing(conn, since, now)
        saved = RefreshCursor(hi, now.timestamp())
        with conn.transaction():
            marks_store.add_pending(conn, marks, now)
            marks_store.save_cursor(conn, CURSOR_NAME, saved)
        self.stats.marked += len(marks)
        return saved, len(marks), hi >= limit_h

    def recompute_due(self, conn: psycopg.Connection[Any]) -> tuple[int, int, bool]:
        """Step 2: recompute up to ``analysis_round_buckets`` due buckets; ``(buckets,
        rows written, nothing more is due)``."""
        now = self.now()
        limit = self.settings.analysis_round_buckets
        due = marks_store.due_pending(
            conn,
            closed_before=now - HOUR - self.settle,
            marked_before=now - timedelta(seconds=self.settings.analysis_live_every_s),
            limit=limit,
        )
        rows = self.recompute(conn, due, clear=True)
        return len(due), rows, len(due) < limit

    # -- recomputing ----------------------------------------------------------------------

    def recompute(
        self, conn: psycopg.Connection[Any], pairs: Collection[Mark], *, clear: bool
    ) -> int:
        """Recompute the device-hour buckets ``pairs`` and everything above them; with
        ``clear``, remove them from the queue in the same transaction. Returns the rollup
        rows written."""
        if not pairs:
            return 0
        hours = compute_device_hours(conn, self._whole_old_days(pairs), self.limits, now=self.now())
        with conn.transaction():
            written = tiers.write_device_hours(conn, hours)
            unit_hours = {(unit, h) for _, h, unit in written}
            days = {(dev, tiers.day_start(h, self.offset_h)) for dev, h, _ in written}
            unit_days = tiers.add_device_days(conn, days)
            rows = len({(dev, h) for dev, h, _ in written}) + len(days)
            for grain, units in ((Grain.HOUR, unit_hours), (Grain.DAY, unit_days)):
                rows += len(units)
                rows += self._add_regions(conn, grain, tiers.add_units(conn, grain, units))
            if clear:
                marks_store.clear_pending(conn, pairs)
        self.stats.recomputed += len(pairs)
        self.stats.rows += rows
        return rows

    def _whole_old_days(self, pairs: Collection[Mark]) -> set[Mark]:
        """``pairs``, and every hour of the days whose hourly rows may have expired
        (``analysis_hour_retention_days``): a day is added up from its stored hours, so an
        old day touched again (an episode that ended after weeks) is recomputed whole."""
        out = set(pairs)
        keep = timedelta(days=self.settings.analysis_hour_retention_days - 1)
        cutoff = tiers.day_start(self.now() - keep, self.offset_h)
        for dev, day in {(d, tiers.day_start(h, self.offset_h)) for d, h in pairs}:
            if day < cutoff:
                out.update((dev, day + k * HOUR) for k in range(24))
        return out

    def _add_regions(
        self, conn: psycopg.Connection[Any], grain: Grain, parents: set[tiers.Parent]
    ) -> int:
        """Add up the region buckets ``parents`` and theirs, lowest level first (a
        street before its district); returns the rows written."""
        waiting = set(parents)
        written = 0
        for _ in range(4 * len(REGION_TIERS)):  # a tree of three levels needs three passes
            if not waiting:
                return written
            level = next(
                (t.value for t in REGION_TIERS if any(p[1] == t.value for p in waiting)),
                None,
            )
            take = {p for p in waiting if p[1] == level} if level else set(waiting)
            waiting -= take
            written += len(take)
            waiting |= tiers.add_regions(conn, grain, {(s, b) for s, _, b in take})
        raise RuntimeError(f"regions nested deeper than {len(REGION_TIERS)} levels: {waiting}")

    # -- backfill -------------------------------------------------------------------------

    def refresh_since(
        self,
        conn: psycopg.Connection[Any],
        since: datetime,
        *,
        progress: Callable[[datetime, int], None] | None = None,
    ) -> int:
        """Recompute every bucket touched by anything from ``since`` (rounded down to its
        local day) until now, one day at a time (each day one or more transactions), with
        the same statements as the service; returns the device-hours recomputed.
        ``progress(day, buckets)`` is called after each day."""
        max_span = timedelta(days=self.settings.record_retention_days)
        day = tiers.day_start(since.astimezone(UTC), self.offset_h)
        done = 0
        while day <= self.now():
            end = day + timedelta(days=1)
            with self.locked(conn):
                touched = marks_store.marks_between(
                    conn, day, end, holds=self.holds, now=self.now(), max_span=max_span
                )
                # This day's hours, and those the day's last readings hold into: the days
                # before and after are their own steps (an episode spanning days marks
                # every hour of them).
                found = {m for m in touched if day <= m[1] < end + self.settle}
                ordered = sorted(found, key=lambda m: (m[1], m[0]))
                step = self.settings.analysis_round_buckets
                for i in range(0, len(ordered), step):
                    self.recompute(conn, ordered[i : i + step], clear=False)
            done += len(found)
            if progress is not None:
                progress(day, len(found))
            day = end
        return done
