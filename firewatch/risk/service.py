"""The risk worker: every unit rescored on a schedule, and soon after significant events.

On the worker runtime (``runtime/worker.py``: connections, reconnects, ready, the summary):

* **Schedule.** At start and then every ``risk_interval_s`` (injected clock), every unit is
  scored as at that moment (``risk/scoring.py``).
* **Events.** Every ``risk_event_check_s``, the units with a significant event since the
  previous check (an operator confirmed a fire; a credit change; a hazard found, acted on or
  past its deadline unverified: ``storage/risk_inputs.risk_triggers``) are rescored at once,
  with the trigger ``event:<what>``. Each check looks back ``risk_event_overlap_s`` further
  than the previous one ended, for records committed a little after their time; rescoring a
  unit twice changes nothing (an unchanged score is not kept again).

A confirmed fire is also in the rollups once the rollup worker has refreshed that hour, and
the scheduled run picks it up from there; the event run sees it at once through the unit's
facts (``unit_facts``' confirmed fire), so the level is forced without waiting.

Warnings (a level rose) are written with their score and notified through the outbox
(``storage/risk.py``). Nothing is kept in memory that the database does not have: a
restarted worker scores everything again at start, and events older than the overlap are
covered by that run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from firewatch.core.risk_config import RiskConfig, load_risk_config
from firewatch.core.settings import Settings
from firewatch.risk.scoring import Keep, Outcome, score_units
from firewatch.runtime.metrics import MetricsEndpoint, stats_registry
from firewatch.runtime.worker import Worker
from firewatch.storage import channels
from firewatch.storage.risk_inputs import risk_triggers

log = logging.getLogger(__name__)


@dataclass
class RiskStats:
    runs: int = 0
    event_runs: int = 0
    scored: int = 0
    kept: int = 0
    warnings: int = 0
    reconnects: int = 0

    def add(self, outcomes: list[Outcome]) -> None:
        self.scored += len(outcomes)
        self.kept += sum(o.kept for o in outcomes)
        self.warnings += sum(o.warning_id is not None for o in outcomes)

    def summary(self) -> str:
        return (
            f"{self.runs} scheduled runs, {self.event_runs} event runs, {self.scored} unit "
            f"scores ({self.kept} kept), {self.warnings} warnings, {self.reconnects} reconnects"
        )


class RiskService:
    """The worker (module docstring). ``config`` defaults to ``settings.risk_model``, loaded
    (and validated) here, so a bad model file stops the command before it starts."""

    def __init__(
        self,
        settings: Settings,
        conninfo: str,
        *,
        clock: Callable[[], float] = time.time,
        config: RiskConfig | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.config = config or load_risk_config(settings.risk_model)
        self.keep = Keep(
            change=settings.risk_keep_change, every=timedelta(seconds=settings.risk_keep_every_s)
        )
        self.stats = RiskStats()
        # Woken by alert changes: a confirmed fire should not wait for the next check.
        self._worker = Worker(
            "risk",
            conninfo,
            log=log,
            channels=[channels.ALERTS],
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
            metrics=MetricsEndpoint(
                stats_registry("risk", self.stats),
                settings.metrics_host,
                settings.risk_metrics_port,
            ),
            application_name="firewatch-risk",
        )
        self.ready: threading.Event = self._worker.ready
        self._next_full = 0.0
        self._checked_until: float | None = None
        self._next_check = 0.0
        self._alert_changed = False

    def run(self, stop: threading.Event) -> RiskStats:
        """Until ``stop`` is set; reconnects with jittered backoff through outages."""
        self._worker.run(stop, self)
        return self.stats

    # -- the work (runtime.worker.Work) ---------------------------------------------------

    def load(self, conn: psycopg.Connection[Any]) -> None:
        """On every (re)connect: score everything now (what happened while disconnected is
        covered by that run), and look for events from now on."""
        now = self.clock()
        self._next_full = now
        self._checked_until = now
        self._next_check = now

    def step(self, conn: psycopg.Connection[Any]) -> bool:
        """The scheduled run when it is due; always caught up afterwards."""
        now = self.clock()
        if now >= self._next_full:
            outcomes = score_units(
                conn, self.config, None, _at(now), trigger="schedule", keep=self.keep
            )
            self.stats.runs += 1
            self.stats.add(outcomes)
            self._next_full = now + self.settings.risk_interval_s
            log.info(
                "risk: scored %d units (%d kept, %d warnings)",
                len(outcomes),
                sum(o.kept for o in outcomes),
                sum(o.warning_id is not None for o in outcomes),
            )
        return True

    def tick(self, conn: psycopg.Connection[Any]) -> None:
        """The event check when it is due, or at once when an alert changed."""
        now = self.clock()
        self._alert_changed |= self._worker.notified()
        # an alert change brings the check forward, but not to more than one a second
        soon = self._alert_changed and now >= (self._checked_until or 0.0) + 1.0
        if now < self._next_check and not soon:
            return
        self._alert_changed = False
        since = (self._checked_until or now) - self.settings.risk_event_overlap_s
        triggers = risk_triggers(conn, _at(since), _at(now))
        self._checked_until = now
        self._next_check = now + self.settings.risk_event_check_s
        if not triggers:
            return
        by_reason: dict[str, list[str]] = {}
        for unit, whys in triggers.items():
            by_reason.setdefault("event:" + "+".join(whys), []).append(unit)
        for trigger, units in sorted(by_reason.items()):
            outcomes = score_units(
                conn, self.config, sorted(units), _at(now), trigger=trigger, keep=self.keep
            )
            self.stats.add(outcomes)
        self.stats.event_runs += 1

    def wait_s(self) -> float:
        now = self.clock()
        due = min(self._next_full, self._next_check)
        if self._alert_changed:
            due = min(due, (self._checked_until or now) + 1.0)
        return max(0.0, due - now)

    def final(self, conn: psycopg.Connection[Any] | None) -> None:
        """Nothing: every score commits as it is made."""

    def lost(self, err: Exception) -> None:
        self.stats.reconnects += 1

    def summary(self) -> str:
        return self.stats.summary()


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)
