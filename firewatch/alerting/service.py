"""The alerting worker: anomaly episodes -> alerts (dedup, correlation, auto-resolution),
plus the time-driven escalation and offline/patrol checks.

It follows the ``anomalies`` table's change feed (``storage/changes.py``: every committed
change once, woken by analytics' ``NOTIFY firewatch_anomalies``) on the worker runtime
(``runtime/worker.py``: connections, LISTEN, reconnects, ready, the summary) and, per
change, in one transaction with its cursor:

* a **new episode** raises an alert of its type on its device, or — if one is active —
  counts an occurrence (``store.raise_alert``; the database keeps one active alert per
  device and type); the episode becomes the alert's evidence;
* a **fire alarm** first looks at its panel's zone: when another detector of the same zone
  went into fire within ``alert_correlation_window_s``, the operator gets one critical
  ``likely_real_fire`` alert, and the panel's plain ``fire_alarm`` alert is merged into it;
* a **changed episode** refreshes its alert (explanation, last seen, a higher severity);
* an **ended episode**: once no evidence of an alert is still open, the alert's condition
  has cleared; faults, anomalies and offline alerts then resolve themselves (and say so in
  the audit trail); fire alarms wait for an operator.

Every ``alert_tick_s`` (injected clock): escalation of alerts nobody acknowledged in time
along the escalation policy's levels (``alerting/escalation.py``, docs/escalation.md), and
the offline and patrol checks over every device at once.

Decide, then execute: per change, the service gathers the facts through the alert store
(``storage/alerts.py``), asks the pure decision functions (``alerting/decide.py``) what to
do, and applies the commands they return (``core/alert_commands.py``) through the store,
all inside the change's savepoint. No SQL here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from firewatch.alerting import decide
from firewatch.alerting.escalation import escalate, unconfigured_media
from firewatch.core.alert_commands import (
    AlertUpdate,
    MergeInto,
    RaiseAlert,
    RefreshAlert,
    Resolve,
    SetCondition,
)
from firewatch.core.alerts import AlertAction, AnomalyChange, IllegalTransition
from firewatch.core.escalation import load_policy
from firewatch.core.rows import SANE_EARLIEST, SANE_LATEST
from firewatch.core.settings import Settings
from firewatch.runtime.worker import Worker
from firewatch.storage import alerts as store
from firewatch.storage import channels
from firewatch.storage.alert_checks import check_offline
from firewatch.storage.changes import ChangeCursor, read_changes
from firewatch.storage.errors import alone
from firewatch.storage.skipped import record_skipped
from firewatch.storage.timestamps import clamp_timestamps

log = logging.getLogger(__name__)

CURSOR_NAME = "anomalies"


@dataclass
class AlertingStats:
    changes: int = 0
    raised: int = 0
    occurrences: int = 0
    correlated: int = 0
    auto_resolved: int = 0
    escalated: int = 0  # escalation levels reached (docs/escalation.md)
    levels_skipped: int = 0  # levels that could reach nobody (the next one followed at once)
    suppressed: int = 0  # person notifications the per-unit rate limit held back
    offline_opened: int = 0
    offline_resolved: int = 0
    reconnects: int = 0
    skipped: int = 0  # anomaly changes recorded in skipped_rows instead of handled
    by_type: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """What the worker did, for the shutdown line (:func:`firewatch.runtime.worker.stopped`)."""
        return (
            f"{self.changes} anomaly changes, "
            f"{self.raised} alerts raised ({self.correlated} correlated fires), "
            f"{self.occurrences} repeats, {self.auto_resolved} auto-resolved, "
            f"{self.escalated} escalation levels ({self.levels_skipped} skipped, "
            f"{self.suppressed} notifications rate limited), "
            f"offline {self.offline_opened} opened / "
            f"{self.offline_resolved} resolved, {self.reconnects} reconnects, "
            f"{self.skipped} changes skipped"
        )


class AlertingService:
    """One alerting worker (see the module docstring). Several may run: the database's
    unique index and row locks keep their writes consistent, but each reads the whole
    anomaly feed, so one is the normal deployment."""

    def __init__(
        self, settings: Settings, conninfo: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.conninfo = conninfo
        self.clock = clock
        self.stats = AlertingStats()
        #: the escalation policy (core/escalation.py): the file's, else the built-in one
        self.policy = load_policy(settings.escalation_policy_file, settings.alert_ack_timeout_s)
        for medium, variable in unconfigured_media(self.policy, settings).items():
            log.warning(
                "escalation policy (%s) notifies by %s but %s is not set: those "
                "notifications wait in the outbox until it is",
                self.policy.source,
                medium.value,
                variable,
            )
        # No /metrics of its own: the dispatcher beside it serves the process's.
        self._worker = Worker(
            "alerting",
            conninfo,
            log=log,
            channels=[channels.ANOMALIES],
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
        )
        self.ready: threading.Event = self._worker.ready
        self._cursor: ChangeCursor | None = None
        self._metadata: dict[str, Mapping[str, Any]] = {}
        self._next_tick = 0.0

    def run(self, stop: threading.Event) -> AlertingStats:
        """Until ``stop`` is set; reconnects with jittered backoff through outages."""
        self._worker.run(stop, self)
        return self.stats

    # -- the work (runtime.worker.Work): step and tick are below ------------------------

    def load(self, conn: psycopg.Connection[Any]) -> None:
        """On every (re)connect: the saved cursor (what was not committed is read again)
        and the panels' metadata (zones)."""
        clamp_timestamps(conn)  # any stored time loads (docs/reliability.md)
        self._cursor = store.load_cursor(conn, CURSOR_NAME)
        self._metadata = store.panel_metadata(conn)

    def wait_s(self) -> float:
        return min(1.0, self.settings.alert_tick_s)

    def final(self, conn: psycopg.Connection[Any] | None) -> None:
        """Nothing: every change commits with its cursor as it is handled."""

    def lost(self, err: Exception) -> None:
        self._cursor = None
        self.stats.reconnects += 1

    def summary(self) -> str:
        return self.stats.summary()

    # -- the anomaly feed -----------------------------------------------------------------

    def step(self, conn: psycopg.Connection[Any]) -> bool:
        """Read and handle one batch of anomaly changes; True when caught up."""
        assert self._cursor is not None
        changes = read_changes(
            conn,
            table="anomalies",
            xid_column="change_xid",
            cursor=self._cursor,
            limit=self.settings.alert_batch_rows,
        )
        if changes.rows or changes.cursor != self._cursor:
            skipped: list[tuple[str, Any, str]] = []
            with conn.transaction():
                for row in changes.rows:
                    problem = self._handle_one(conn, row)
                    if problem is not None:
                        skipped.append(("anomalies", {"id": row.get("id")}, problem))
                if skipped:
                    record_skipped(conn, "alerting", skipped)
                store.save_cursor(conn, CURSOR_NAME, changes.cursor)
            self._cursor = changes.cursor
            self.stats.changes += len(changes.rows)
            if skipped:
                self.stats.skipped += len(skipped)
                log.warning(
                    "alerting: %d anomaly changes skipped (recorded in skipped_rows), e.g. %s: %s",
                    len(skipped),
                    skipped[0][1],
                    skipped[0][2],
                )
        return changes.caught_up

    def _handle_one(self, conn: psycopg.Connection[Any], n: Mapping[str, Any]) -> str | None:
        """Handle one change in its own savepoint; None when done, else why it was skipped
        (its partial writes undone). Database outages propagate: the whole batch is
        retried after reconnecting; only a change that fails on its own is skipped."""
        for column in ("started_at", "detected_at", "last_at", "ended_at"):
            value = n.get(column)
            if value is not None and not SANE_EARLIEST <= value < SANE_LATEST:
                return f"{column} {value.isoformat()} is not a plausible time"
        return alone(
            conn,
            lambda: self._handle(conn, AnomalyChange.of(n)),
            log,
            f"alerting: anomaly {n.get('id')}",
        )

    def _handle(self, conn: psycopg.Connection[Any], change: AnomalyChange) -> None:
        """Facts, decision, commands: the episode raises or refreshes its alert, and when it
        ended, the alert's condition may have cleared."""
        alert_id = store.evidence_alert_id(conn, change.id)
        if alert_id is None:
            if decide.is_backfill(change, self.clock()):
                return
            fire = (
                self._fire_facts(conn, change) if change.alert_type == decide.FIRE_ALARM else None
            )
            alert_id = self._raise(conn, decide.new_episode(change, fire))
        else:
            self._apply(conn, decide.refresh(change, store.find_alert(conn, alert_id)))
        if change.ended:
            still_open = store.open_evidence(conn, alert_id)
            alert = None if still_open else store.get_alert(conn, alert_id)
            self._apply(conn, decide.episode_ended(change, alert, open_evidence=still_open))

    def _fire_facts(self, conn: psycopg.Connection[Any], change: AnomalyChange) -> decide.FireFacts:
        window = self.settings.alert_correlation_window_s
        active = store.active_alert_id(conn, change.device_id, decide.LIKELY_REAL_FIRE)
        recent = store.recent_fire_components(
            conn, change.device_id, at=change.detected_at, window_s=window, excluding=change.id
        )
        return decide.FireFacts(
            metadata=self._metadata.get(change.device_id, {}),
            likely_fire_active=active is not None,
            recent_components=recent,
            window_s=window,
        )

    # -- executing commands ---------------------------------------------------------------

    def _raise(self, conn: psycopg.Connection[Any], cmd: RaiseAlert) -> int:
        """Apply a raise; the id of the alert the episode is now evidence of."""
        alert, created = store.raise_alert(
            conn,
            type=cmd.type,
            severity=cmd.severity,
            unit_id=cmd.unit_id,
            device_id=cmd.device_id,
            seen_at=cmd.seen_at,
            explanation=cmd.explanation,
            anomaly_id=cmd.anomaly_id,
        )
        self._count(alert.type, created)
        if created and cmd.merge_active is not None:
            self.stats.correlated += 1
            plain = store.active_alert_id(conn, cmd.device_id, cmd.merge_active)
            self._apply(conn, decide.merge_into_correlated(alert, plain, cmd.seen_at))
        return alert.id

    def _apply(self, conn: psycopg.Connection[Any], commands: Sequence[AlertUpdate]) -> None:
        for cmd in commands:
            if apply_update(conn, cmd) and isinstance(cmd, Resolve):
                self.stats.auto_resolved += 1

    def _count(self, type_: str, created: bool) -> None:
        if created:
            self.stats.raised += 1
            self.stats.by_type[type_] = self.stats.by_type.get(type_, 0) + 1
        else:
            self.stats.occurrences += 1

    # -- time-driven checks -------------------------------------------------------------

    def tick(self, conn: psycopg.Connection[Any]) -> None:
        """Escalation and the offline/patrol checks as of the injected clock, when due
        (every ``alert_tick_s`` of it; the first round runs them at once)."""
        t = self.clock()  # one reading: the next tick counts from the time this one judged
        if t < self._next_tick:
            return
        now = datetime.fromtimestamp(t, UTC)
        reached = escalate(conn, self.settings, self.policy, now=now)
        self.stats.escalated += len(reached)
        self.stats.levels_skipped += sum(r.plan.outcome == "skipped" for r in reached)
        self.stats.suppressed += sum(len(r.plan.suppressed) for r in reached)
        result = check_offline(conn, self.settings, now=now)
        self.stats.offline_opened += len(result.opened)
        self.stats.offline_resolved += len(result.resolved)
        self._next_tick = t + self.settings.alert_tick_s


def apply_update(conn: psycopg.Connection[Any], cmd: AlertUpdate) -> bool:
    """Apply one command on an existing alert through the store, in the caller's
    transaction; False when it was dropped: a system resolve that the alert's state no
    longer allows (an operator's decision stands)."""
    if isinstance(cmd, RefreshAlert):
        store.raise_alert(
            conn,
            type=cmd.type,
            severity=cmd.severity,
            unit_id=cmd.unit_id,
            device_id=cmd.device_id,
            seen_at=cmd.seen_at,
            explanation=cmd.explanation,
            repeat=False,
        )
    elif isinstance(cmd, SetCondition):
        store.set_condition(
            conn, cmd.alert_id, cmd.active, explanation=cmd.explanation, seen_at=cmd.seen_at
        )
    elif isinstance(cmd, Resolve):
        try:
            store.apply_action(
                conn,
                cmd.alert_id,
                AlertAction.RESOLVE,
                actor=store.SYSTEM,
                now=cmd.at,
                note=cmd.note,
            )
        except IllegalTransition:
            return False
    elif isinstance(cmd, MergeInto):
        store.apply_action(
            conn,
            cmd.alert_id,
            AlertAction.MERGE,
            actor=store.SYSTEM,
            parent_id=cmd.parent_id,
            now=cmd.at,
            note=cmd.note,
        )
    else:
        store.escalate(
            conn, cmd.alert_id, severity=cmd.severity, level=cmd.level, at=cmd.at, note=cmd.note
        )
    return True
