"""The supervision worker (``firewatch supervise run``): hazard work orders from confirmed
faults, reminders, escalation of overdue hazards, and the credit rules.

It runs on the worker runtime (``runtime/worker.py``: connections, LISTEN, reconnects,
ready, the summary line) and does two things:

* **step**: follows the ``alert_events`` change feed (woken by ``NOTIFY firewatch_alerts``)
  from a cursor it saves with what it did, in one transaction per batch. An alert an
  operator confirmed as a *fault* becomes a hazard work order (source ``device_fault``,
  one per alert); one confirmed as a *real fire* blacklists its unit when the unit had an
  open hazard of a related category. A decision that fails on its own is recorded in
  ``skipped_rows`` and the feed moves on. On its very first start (no saved cursor) the
  worker starts at the feed's present: older decisions are history, not work orders with
  deadlines long past.
* **tick**, every ``supervision_tick_s`` of its injected clock: reminders before a
  hazard's deadline (``supervision_remind_before_days``), escalation of overdue hazards one
  level per ``supervision_escalation_interval_days`` up to
  ``supervision_max_escalation_level`` (supervisor; the unit too from level 2), and the
  credit rules (``core/credit.py``). Notifications go through the outbox; the alerting
  dispatcher delivers them.

Several workers may run: each reminder, escalation and credit change is conditional on the
row's state, so a second worker's attempt changes nothing. No SQL here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from firewatch.core.settings import Settings
from firewatch.core.supervision import escalation_due, reminder_due
from firewatch.runtime.metrics import MetricsEndpoint, stats_registry
from firewatch.runtime.worker import Worker
from firewatch.storage import channels
from firewatch.storage import hazards as hazard_store
from firewatch.storage.changes import ChangeCursor, horizon
from firewatch.storage.errors import alone
from firewatch.storage.skipped import record_skipped
from firewatch.storage.supervision_feed import (
    CONFIRM_FAULT,
    AlertDecision,
    load_cursor,
    read_decisions,
    save_cursor,
)
from firewatch.storage.timestamps import clamp_timestamps
from firewatch.supervision.credit import evaluate_credit, on_confirmed_fire
from firewatch.supervision.inspections import hazard_from_fault

log = logging.getLogger(__name__)

CURSOR_NAME = "alert_events"
READER = "supervision"
DAY_S = 86_400.0


@dataclass
class SupervisionStats:
    events: int = 0
    fault_hazards: int = 0
    fire_blacklisted: int = 0
    reminders: int = 0
    escalations: int = 0
    credit_changes: int = 0
    skipped: int = 0
    reconnects: int = 0

    def summary(self) -> str:
        return (
            f"{self.events} alert events, {self.fault_hazards} hazards from confirmed faults, "
            f"{self.fire_blacklisted} units blacklisted for a fire with a known hazard, "
            f"{self.reminders} reminders, {self.escalations} escalations, "
            f"{self.credit_changes} credit changes, {self.skipped} events skipped, "
            f"{self.reconnects} reconnects"
        )


class SupervisionService:
    """One supervision worker (see the module docstring)."""

    def __init__(
        self, settings: Settings, conninfo: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.stats = SupervisionStats()
        self._worker = Worker(
            "supervision",
            conninfo,
            log=log,
            channels=[channels.ALERTS],
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
            metrics=MetricsEndpoint(
                stats_registry("supervision", self.stats),
                settings.metrics_host,
                settings.supervision_metrics_port,
            ),
            application_name="firewatch-supervision",
        )
        self.ready: threading.Event = self._worker.ready
        self._cursor: ChangeCursor | None = None
        self._next_tick = 0.0

    def run(self, stop: threading.Event) -> SupervisionStats:
        self._worker.run(stop, self)
        return self.stats

    def wake(self) -> None:
        """End the current sleep (tests that moved the clock)."""
        self._worker.wake()

    # -- the work (runtime.worker.Work) -------------------------------------------------

    def load(self, conn: psycopg.Connection[Any]) -> None:
        clamp_timestamps(conn)
        cursor = load_cursor(conn, CURSOR_NAME)
        if cursor == ChangeCursor():
            cursor = horizon(conn)
            save_cursor(conn, CURSOR_NAME, cursor)
        self._cursor = cursor

    def wait_s(self) -> float:
        return min(1.0, self.settings.supervision_tick_s)

    def final(self, conn: psycopg.Connection[Any] | None) -> None:
        """Nothing: every batch commits with its cursor."""

    def lost(self, err: Exception) -> None:
        self._cursor = None
        self.stats.reconnects += 1

    def summary(self) -> str:
        return self.stats.summary()

    def step(self, conn: psycopg.Connection[Any]) -> bool:
        """One batch of alert events; True when caught up."""
        assert self._cursor is not None
        batch = read_decisions(conn, self._cursor, self.settings.supervision_batch_rows)
        if batch.events or batch.cursor != self._cursor:
            skipped: list[tuple[str, Any, str]] = []
            with conn.transaction():
                for decision in batch.decisions:
                    problem = self._handle_one(conn, decision)
                    if problem is not None:
                        skipped.append(("alert_events", {"alert_id": decision.alert_id}, problem))
                if skipped:
                    record_skipped(conn, READER, skipped)
                save_cursor(conn, CURSOR_NAME, batch.cursor)
            self._cursor = batch.cursor
            self.stats.events += batch.events
            self.stats.skipped += len(skipped)
        return batch.caught_up

    def _handle_one(self, conn: psycopg.Connection[Any], decision: AlertDecision) -> str | None:
        def handle() -> None:
            if decision.action == CONFIRM_FAULT:
                if hazard_from_fault(conn, self.settings, decision) is not None:
                    self.stats.fault_hazards += 1
            elif on_confirmed_fire(conn, self.settings, decision) is not None:
                self.stats.fire_blacklisted += 1

        return alone(conn, handle, log, f"supervision: alert {decision.alert_id}")

    def tick(self, conn: psycopg.Connection[Any]) -> None:
        """Reminders, escalations and credit rules as of the injected clock, when due."""
        t = self.clock()
        if t < self._next_tick:
            return
        now = datetime.fromtimestamp(t, UTC)
        self.check(conn, now)
        self._next_tick = t + self.settings.supervision_tick_s

    def check(self, conn: psycopg.Connection[Any], now: datetime) -> None:
        """The time-driven work as of ``now`` (what :meth:`tick` runs)."""
        s = self.settings
        before = [d * DAY_S for d in s.supervision_remind_before_days]
        interval = s.supervision_escalation_interval_days * DAY_S
        for hazard in hazard_store.unverified_hazards(conn):
            count = reminder_due(hazard, now, before)
            if count is not None and hazard_store.record_reminder(conn, hazard, count, now):
                self.stats.reminders += 1
            level = escalation_due(hazard, now, interval, s.supervision_max_escalation_level)
            if level is not None and hazard_store.record_escalation(conn, hazard, level, now):
                self.stats.escalations += 1
        self.stats.credit_changes += len(evaluate_credit(conn, s, now))
