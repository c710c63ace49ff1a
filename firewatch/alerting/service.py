"""The alerting worker: anomaly episodes -> alerts (dedup, correlation, auto-resolution),
plus the time-driven escalation and offline/patrol checks.

It follows the ``anomalies`` table's change feed (``storage/changes.py``: every committed
change once, woken by analytics' ``NOTIFY firewatch_anomalies``) and, per change, in one
transaction with its cursor:

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

Every ``alert_tick_s`` (injected clock): escalation of alerts nobody acknowledged in time,
and the offline and patrol checks over every device at once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from firewatch.alerting.store import (
    SYSTEM,
    AlertNotFound,
    apply_action,
    check_offline,
    escalate_due,
    get_alert,
    raise_alert,
    set_condition,
)
from firewatch.core.alerts import (
    ACTIVE_STATES,
    AlertAction,
    AlertState,
    IllegalTransition,
    alert_type,
    auto_resolves,
    category_of,
)
from firewatch.core.anomalies import SEVERITY_RANK
from firewatch.core.backoff import Backoff
from firewatch.core.domain import Severity
from firewatch.core.rows import SANE_EARLIEST, SANE_LATEST
from firewatch.core.settings import Settings
from firewatch.storage.anomalies import ANOMALY_CHANNEL
from firewatch.storage.changes import ChangeCursor, read_changes
from firewatch.storage.errors import database_unavailable, describe
from firewatch.storage.skipped import record_skipped
from firewatch.storage.timestamps import clamp_timestamps

log = logging.getLogger(__name__)

CURSOR_NAME = "anomalies"
#: Episodes that ended longer ago than this when first seen (a fresh start over old
#: history) raise nothing: the alert list is for what needs attention now.
BACKFILL_S = 3600.0
_ADDR = re.compile(r"(\d+)\s*$")


@dataclass
class AlertingStats:
    changes: int = 0
    raised: int = 0
    occurrences: int = 0
    correlated: int = 0
    auto_resolved: int = 0
    escalated: int = 0
    offline_opened: int = 0
    offline_resolved: int = 0
    reconnects: int = 0
    skipped: int = 0  # anomaly changes recorded in skipped_rows instead of handled
    by_type: dict[str, int] = field(default_factory=dict)

    def summary(self, elapsed: float) -> str:
        return (
            f"alerting stopped after {elapsed:.0f}s: {self.changes} anomaly changes, "
            f"{self.raised} alerts raised ({self.correlated} correlated fires), "
            f"{self.occurrences} repeats, {self.auto_resolved} auto-resolved, "
            f"{self.escalated} escalations, offline {self.offline_opened} opened / "
            f"{self.offline_resolved} resolved, {self.reconnects} reconnects, "
            f"{self.skipped} changes skipped"
        )


def zone_of(component: str, metadata: Mapping[str, Any]) -> str:
    """The zone of a panel component (``"point smoke detector 1004"``).

    From the device's registry metadata: an explicit ``zones`` map (address -> zone), or
    the addressing ``loop * 1000 + index`` with ``detectors_per_loop`` and
    ``zones_per_loop``; without either the whole panel is one zone.
    """
    m = _ADDR.search(component)
    if m is None:
        return "panel"
    addr = int(m[1])
    zones = metadata.get("zones")
    if isinstance(zones, Mapping) and str(addr) in zones:
        return str(zones[str(addr)])
    per_loop, per_zone = metadata.get("detectors_per_loop"), metadata.get("zones_per_loop")
    if isinstance(per_loop, int) and isinstance(per_zone, int) and per_loop and per_zone:
        size = max(1, per_loop // per_zone)
        return f"loop {addr // 1000} zone {(addr % 1000 - 1) // size + 1}"
    return "panel"


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
        self.ready = threading.Event()
        self._cursor: ChangeCursor | None = None
        self._metadata: dict[str, Mapping[str, Any]] = {}
        self._next_tick = 0.0

    def run(self, stop: threading.Event) -> AlertingStats:
        """Until ``stop`` is set; reconnects with jittered backoff through outages."""
        started = time.monotonic()
        backoff = Backoff(self.settings.backoff_initial_s, self.settings.backoff_max_s)
        while not stop.is_set():
            try:
                self._session(stop, backoff)
            except psycopg.Error as err:
                self._cursor = None  # reload it: what was not committed is read again
                self.stats.reconnects += 1
                delay = backoff.next()
                if database_unavailable(err):
                    log.warning("database: %s; retrying in %.2fs", str(err).strip(), delay)
                else:  # not an outage, and not one change's fault: say so loudly, go on
                    log.error("alerting failed: %s; retrying in %.2fs", describe(err), delay)
                stop.wait(delay)
        log.info(self.stats.summary(time.monotonic() - started))
        return self.stats

    def _session(self, stop: threading.Event, backoff: Backoff) -> None:
        with (
            psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn,
            psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as wake,
        ):
            clamp_timestamps(conn)  # any stored time loads (docs/reliability.md)
            wake.execute(f"LISTEN {ANOMALY_CHANNEL}")
            if self._cursor is None:
                self._cursor = self._load_cursor(conn)
            self._metadata = self._load_metadata(conn)
            backoff.reset()
            self.ready.set()
            while not stop.is_set():
                caught_up = self.step(conn)
                if self.clock() >= self._next_tick:
                    self.tick(conn)
                if caught_up and not stop.is_set():
                    self._wait(wake, min(1.0, self.settings.alert_tick_s))

    @staticmethod
    def _wait(wake: psycopg.Connection[Any], timeout: float) -> None:
        for _ in wake.notifies(timeout=timeout, stop_after=1):
            break

    def _load_cursor(self, conn: psycopg.Connection[Any]) -> ChangeCursor:
        row = conn.execute(
            "SELECT cursor FROM alerting_cursor WHERE name = %s", (CURSOR_NAME,)
        ).fetchone()
        return ChangeCursor.from_json(row[0]) if row else ChangeCursor()

    def _load_metadata(self, conn: psycopg.Connection[Any]) -> dict[str, Mapping[str, Any]]:
        rows = conn.execute("SELECT id, metadata FROM devices WHERE kind = 'panel'").fetchall()
        return {str(r[0]): dict(r[1] or {}) for r in rows}

    # -- the anomaly feed -----------------------------------------------------------------

    def step(self, conn: psycopg.Connection[Any]) -> bool:
        """Read and handle one batch of anomaly changes; True when caught up."""
        assert self._cursor is not None
        changes = read_changes(
            conn, table="anomalies", xid_column="change_xid", cursor=self._cursor,
            limit=self.settings.alert_batch_rows,
        )  # fmt: skip
        if changes.rows or changes.cursor != self._cursor:
            skipped: list[tuple[str, Any, str]] = []
            with conn.transaction():
                for row in changes.rows:
                    problem = self._handle_one(conn, row)
                    if problem is not None:
                        skipped.append(("anomalies", {"id": row.get("id")}, problem))
                if skipped:
                    record_skipped(conn, "alerting", skipped)
                conn.execute(
                    "INSERT INTO alerting_cursor (name, cursor) VALUES (%s, %s)"
                    " ON CONFLICT (name) DO UPDATE SET cursor = EXCLUDED.cursor,"
                    " saved_at = now()",
                    (CURSOR_NAME, Jsonb(changes.cursor.to_json())),
                )
            self._cursor = changes.cursor
            self.stats.changes += len(changes.rows)
            if skipped:
                self.stats.skipped += len(skipped)
                log.warning("alerting: %d anomaly changes skipped (recorded in skipped_rows), "
                            "e.g. %s: %s", len(skipped), skipped[0][1], skipped[0][2])  # fmt: skip
        return changes.caught_up

    def _handle_one(self, conn: psycopg.Connection[Any], n: Mapping[str, Any]) -> str | None:
        """Handle one change in its own savepoint; None when done, else why it was skipped
        (its partial writes undone). Database outages propagate: the whole batch is
        retried after reconnecting; only a change that fails on its own is skipped."""
        for column in ("started_at", "detected_at", "last_at", "ended_at"):
            value = n.get(column)
            if value is not None and not SANE_EARLIEST <= value < SANE_LATEST:
                return f"{column} {value.isoformat()} is not a plausible time"
        try:
            with conn.transaction():
                self._handle(conn, n)
        except Exception as err:
            if isinstance(err, psycopg.Error) and database_unavailable(err):
                raise
            log.exception("alerting: anomaly %s could not be handled", n.get("id"))
            return describe(err)
        return None

    def _handle(self, conn: psycopg.Connection[Any], n: Mapping[str, Any]) -> None:
        row = conn.execute(
            "SELECT alert_id FROM alert_evidence WHERE anomaly_id = %s", (n["id"],)
        ).fetchone()
        if row is None:
            if n["ended_at"] is not None and n["ended_at"].timestamp() < self.clock() - BACKFILL_S:
                return
            alert_id = self._new_episode(conn, n)
        else:
            alert_id = int(row[0])
            self._refresh(conn, alert_id, n)
        if n["ended_at"] is not None:
            self._ended(conn, alert_id, n)

    def _new_episode(self, conn: psycopg.Connection[Any], n: Mapping[str, Any]) -> int:
        type_ = alert_type(n["kind"])
        if type_ == "fire_alarm":
            correlated = self._correlate_fire(conn, n)
            if correlated is not None:
                return correlated
        alert, created = raise_alert(conn, type=type_, severity=n["severity"],
                                     unit_id=n["unit_id"], device_id=n["device_id"],
                                     seen_at=n["detected_at"], explanation=n["explanation"],
                                     anomaly_id=n["id"])  # fmt: skip
        self._count(alert.type, created)
        return alert.id

    def _correlate_fire(self, conn: psycopg.Connection[Any], n: Mapping[str, Any]) -> int | None:
        """A fire alarm in a zone where another detector is in fire within the window: one
        critical likely-real-fire alert (returned); None when this alarm stands alone."""
        device, window = n["device_id"], self.settings.alert_correlation_window_s
        meta = self._metadata.get(device, {})
        zone = zone_of(n["component"], meta)
        with conn.cursor(row_factory=dict_row) as cur:
            active = cur.execute(
                "SELECT id FROM alerts WHERE device_id = %s AND type = 'likely_real_fire'"
                " AND state = ANY(%s)",
                (device, [s.value for s in ACTIVE_STATES]),
            ).fetchone()
            recent = cur.execute(
                "SELECT DISTINCT component FROM anomalies WHERE device_id = %s"
                " AND kind = 'fire_alarm' AND id <> %s"
                " AND detected_at BETWEEN %s - make_interval(secs => %s) AND %s",
                (device, n["id"], n["detected_at"], window, n["detected_at"]),
            ).fetchall()
        same_zone = {r["component"] for r in recent if zone_of(r["component"], meta) == zone}
        same_zone.discard(n["component"])
        if active is None and not same_zone:
            return None
        count = len(same_zone) + 1
        text = (f"{count} detectors in fire in {zone} within {window / 60:.0f} min "
                f"(latest: {n['component']}): likely a real fire")  # fmt: skip
        alert, created = raise_alert(conn, type="likely_real_fire", severity=Severity.CRITICAL,
                                     unit_id=n["unit_id"], device_id=device,
                                     seen_at=n["detected_at"], explanation=text,
                                     anomaly_id=n["id"])  # fmt: skip
        self._count(alert.type, created)
        if created:
            self.stats.correlated += 1
            plain = conn.execute(
                "SELECT id FROM alerts WHERE device_id = %s AND type = 'fire_alarm'"
                " AND state = ANY(%s)",
                (device, [s.value for s in ACTIVE_STATES]),
            ).fetchone()
            if plain is not None:
                apply_action(conn, int(plain[0]), AlertAction.MERGE, actor=SYSTEM,
                             parent_id=alert.id, now=n["detected_at"],
                             note=f"correlated into likely real fire #{alert.id}")  # fmt: skip
        return alert.id

    def _refresh(self, conn: psycopg.Connection[Any], alert_id: int, n: Mapping[str, Any]) -> None:
        try:
            alert = get_alert(conn, alert_id)
        except AlertNotFound:
            return
        if AlertState(alert.state) not in ACTIVE_STATES:
            return
        if SEVERITY_RANK[Severity(n["severity"])] > SEVERITY_RANK[Severity(alert.severity)]:
            raise_alert(conn, type=alert.type, severity=n["severity"], unit_id=alert.unit_id,
                        device_id=alert.device_id, seen_at=n["last_at"],
                        explanation=n["explanation"], repeat=False)  # fmt: skip
        elif n["ended_at"] is None:
            set_condition(conn, alert_id, True, explanation=n["explanation"],
                          seen_at=n["last_at"])  # fmt: skip

    def _ended(self, conn: psycopg.Connection[Any], alert_id: int, n: Mapping[str, Any]) -> None:
        still_open = conn.execute(
            "SELECT count(*) FROM alert_evidence e JOIN anomalies a ON a.id = e.anomaly_id"
            " WHERE e.alert_id = %s AND a.ended_at IS NULL",
            (alert_id,),
        ).fetchone()
        if still_open and still_open[0]:
            return
        alert = get_alert(conn, alert_id)
        if AlertState(alert.state) not in ACTIVE_STATES:
            return
        set_condition(conn, alert_id, False, seen_at=n["last_at"])
        if auto_resolves(category_of(alert.type)):
            try:
                apply_action(conn, alert_id, AlertAction.RESOLVE, actor=SYSTEM,
                             now=n["ended_at"],
                             note=f"condition cleared: {n['explanation']}")  # fmt: skip
                self.stats.auto_resolved += 1
            except IllegalTransition:
                pass  # an operator's decision stands

    def _count(self, type_: str, created: bool) -> None:
        if created:
            self.stats.raised += 1
            self.stats.by_type[type_] = self.stats.by_type.get(type_, 0) + 1
        else:
            self.stats.occurrences += 1

    # -- time-driven checks -------------------------------------------------------------

    def tick(self, conn: psycopg.Connection[Any]) -> None:
        """Escalation and the offline/patrol checks as of the injected clock."""
        t = self.clock()  # one reading: the next tick counts from the time this one judged
        now = datetime.fromtimestamp(t, UTC)
        self.stats.escalated += len(escalate_due(conn, self.settings, now=now))
        result = check_offline(conn, self.settings, now=now)
        self.stats.offline_opened += len(result.opened)
        self.stats.offline_resolved += len(result.resolved)
        self._next_tick = t + self.settings.alert_tick_s
