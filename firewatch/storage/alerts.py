"""Alerts in PostgreSQL: raise (with dedup), act (the lifecycle, audited), escalate, and the
set-based offline and patrol checks.

Every change of an alert is written together with, in the same transaction: its audit row
(``alert_transitions``), its live-stream event (``alert_events``, then ``NOTIFY
firewatch_alerts``) and any notification it causes (``outbox``, then ``NOTIFY
firewatch_outbox``). Functions here run in the caller's transaction when there is one and
in their own otherwise (``conn.transaction()`` nests as a savepoint).

One active alert per ``(device_id, type)`` is the database's rule (a partial unique index):
:func:`raise_alert` inserts or, on conflict, counts an occurrence, so any number of writers
racing over the same problem make one alert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from firewatch.core.alerts import (
    ACTIVE_STATES,
    AlertAction,
    AlertCategory,
    AlertState,
    category_of,
    escalated,
    next_state,
)
from firewatch.core.domain import Severity
from firewatch.core.settings import Settings

ALERT_CHANNEL = "firewatch_alerts"
OUTBOX_CHANNEL = "firewatch_outbox"
"""NOTIFY channel the outbox writers signal in the transaction that inserts rows."""
SYSTEM = "system"

_ACTIVE_SQL = "(" + ", ".join(f"'{s.value}'" for s in sorted(ACTIVE_STATES)) + ")"
_RANK = "CASE {0} WHEN 'critical' THEN 3 WHEN 'high' THEN 2 WHEN 'medium' THEN 1 ELSE 0 END"


class AlertNotFound(LookupError):
    """No alert has that id."""


@dataclass(frozen=True)
class Alert:
    """An ``alerts`` row."""

    id: int
    type: str
    category: str
    severity: str
    unit_id: str
    device_id: str
    state: str
    first_seen: datetime
    last_seen: datetime
    occurrences: int
    explanation: str
    condition_active: bool
    escalation_level: int
    escalated_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    parent_id: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Alert:
        return cls(**{f: row[f] for f in cls.__dataclass_fields__})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in self.__dataclass_fields__:
            v = getattr(self, f)
            out[f] = v.isoformat() if isinstance(v, datetime) else v
        return out


def _ts(t: datetime | float) -> datetime:
    return t if isinstance(t, datetime) else datetime.fromtimestamp(t, UTC)


def _event(cur: psycopg.Cursor[Any], alert: Alert, event: str, extra: Mapping[str, Any]) -> None:
    payload = {"event": event, "alert": alert.to_json(), **extra}
    cur.execute(
        "INSERT INTO alert_events (alert_id, event, payload) VALUES (%s, %s, %s)",
        (alert.id, event, Jsonb(payload)),
    )
    cur.execute("SELECT pg_notify(%s, '')", (ALERT_CHANNEL,))


def _audit(
    cur: psycopg.Cursor[Any],
    alert_id: int,
    action: str,
    from_state: str | None,
    to_state: str,
    actor: str,
    note: str,
    at: datetime,
) -> None:
    cur.execute(
        "INSERT INTO alert_transitions (alert_id, action, from_state, to_state, actor, note, at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (alert_id, action, from_state, to_state, actor, note, at),
    )


def enqueue(
    cur: psycopg.Cursor[Any],
    alert_id: int | None,
    channel: str,
    payload: Mapping[str, Any],
    recipient: Mapping[str, Any] | None = None,
) -> None:
    """A notification for the dispatcher, in the caller's transaction."""
    cur.execute(
        "INSERT INTO outbox (alert_id, channel, recipient, payload) VALUES (%s, %s, %s, %s)",
        (alert_id, channel, Jsonb(dict(recipient or {})), Jsonb(dict(payload))),
    )
    cur.execute("SELECT pg_notify(%s, '')", (OUTBOX_CHANNEL,))


_RAISE = f"""
INSERT INTO alerts AS a (type, category, severity, unit_id, device_id, state, first_seen,
                         last_seen, explanation)
VALUES (%(type)s, %(category)s, %(severity)s, %(unit_id)s, %(device_id)s, 'open',
        %(seen)s, %(seen)s, %(explanation)s)
ON CONFLICT (device_id, type) WHERE state IN {_ACTIVE_SQL} DO UPDATE SET
    occurrences = a.occurrences + CASE WHEN %(repeat)s THEN 1 ELSE 0 END,
    last_seen = greatest(a.last_seen, EXCLUDED.last_seen),
    severity = CASE WHEN {_RANK.format("EXCLUDED.severity")} > {_RANK.format("a.severity")}
                    THEN EXCLUDED.severity ELSE a.severity END,
    explanation = EXCLUDED.explanation,
    condition_active = true,
    updated_at = now()
RETURNING *, (xmax = 0) AS inserted
"""


def raise_alert(
    conn: psycopg.Connection[Any],
    *,
    type: str,
    severity: Severity | str,
    unit_id: str,
    device_id: str,
    seen_at: datetime | float,
    explanation: str,
    anomaly_id: int | None = None,
    repeat: bool = True,
    category: AlertCategory | None = None,
) -> tuple[Alert, bool]:
    """Open an alert, or count an occurrence of the active one of ``(device_id, type)``.

    ``repeat``: whether this is a new occurrence (a new anomaly episode) or an update of one
    already counted. The severity never goes down; ``anomaly_id`` is linked as evidence.
    Returns the alert and whether it was created. Writes the audit row (creation only),
    the stream event and, for a new critical fire alert, nothing else: operators see it on
    the stream; forwarding waits for their confirmation (GB 50440).
    """
    cat = category or category_of(type)
    params = {"type": type, "category": cat.value, "severity": Severity(severity).value,
              "unit_id": unit_id, "device_id": device_id, "seen": _ts(seen_at),
              "explanation": explanation, "repeat": repeat}  # fmt: skip
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_RAISE, params).fetchone()
        assert row is not None
        alert = Alert.of(row)
        created = bool(row["inserted"])
        if anomaly_id is not None:
            cur.execute(
                "INSERT INTO alert_evidence (alert_id, anomaly_id) VALUES (%s, %s)"
                " ON CONFLICT DO NOTHING",
                (alert.id, anomaly_id),
            )
        if created:
            _audit(cur, alert.id, "raise", None, AlertState.OPEN.value, SYSTEM, explanation,
                   alert.first_seen)  # fmt: skip
        _event(cur, alert, "created" if created else "occurrence" if repeat else "updated", {})
    return alert, created


def get_alert(conn: psycopg.Connection[Any], alert_id: int) -> Alert:
    """The alert; raises :class:`AlertNotFound`."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    if row is None:
        raise AlertNotFound(f"no alert {alert_id}")
    return Alert.of(row)


def _contacts(cur: psycopg.Cursor[Any], unit_id: str) -> dict[str, Any]:
    row = cur.execute("SELECT name, contacts FROM units WHERE id = %s", (unit_id,)).fetchone()
    return {"unit_name": row["name"], **dict(row["contacts"] or {})} if row else {}


def _evidence(cur: psycopg.Cursor[Any], alert_id: int) -> list[dict[str, Any]]:
    rows = cur.execute(
        "SELECT n.id, n.detector, n.kind, n.component, n.severity, n.started_at,"
        " n.detected_at, n.ended_at, n.explanation FROM alert_evidence e"
        " JOIN anomalies n ON n.id = e.anomaly_id WHERE e.alert_id = %s ORDER BY n.id",
        (alert_id,),
    ).fetchall()
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
            for r in rows]  # fmt: skip


def apply_action(
    conn: psycopg.Connection[Any],
    alert_id: int,
    action: AlertAction | str,
    *,
    actor: str,
    note: str = "",
    now: datetime | float | None = None,
    parent_id: int | None = None,
) -> Alert:
    """Move an alert through its lifecycle (``core/alerts.py``), with its audit row, stream
    event and notifications, atomically.

    * ``confirm_fire``: forwarded to the fire command center (``command_center``) and the
      unit's responsible contact notified (``notify``);
    * ``confirm_fault``: the unit's maintenance contact notified;
    * ``escalate``: severity one level up, escalation count + 1, the supervisor notified;
    * ``merge``: folded into ``parent_id`` (a correlated alert).

    Raises :class:`AlertNotFound`, :class:`~firewatch.core.alerts.IllegalTransition` (the
    alert is unchanged), ``ValueError`` for an unknown action or a merge without parent.
    """
    act = AlertAction(action)
    at = _ts(now) if now is not None else datetime.now(UTC)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM alerts WHERE id = %s FOR UPDATE", (alert_id,)).fetchone()
        if row is None:
            raise AlertNotFound(f"no alert {alert_id}")
        before = Alert.of(row)
        state = next_state(AlertState(before.state), act)
        sets: dict[str, Any] = {"state": state.value}
        if act is AlertAction.ACKNOWLEDGE:
            sets["acknowledged_at"] = at
        elif act is AlertAction.RESOLVE:
            sets["resolved_at"] = at
        elif act is AlertAction.CLOSE:
            sets["closed_at"] = at
        elif act is AlertAction.ESCALATE:
            sets.update(severity=escalated(Severity(before.severity)).value,
                        escalation_level=before.escalation_level + 1, escalated_at=at)  # fmt: skip
        elif act is AlertAction.MERGE:
            if parent_id is None:
                raise ValueError("merge needs the parent alert's id")
            sets["parent_id"] = parent_id
        if act in (AlertAction.CONFIRM_FIRE, AlertAction.CONFIRM_FAULT,
                   AlertAction.MARK_FALSE_ALARM) and before.acknowledged_at is None:  # fmt: skip
            sets["acknowledged_at"] = at  # a decision implies it was seen
        assign = ", ".join(f"{k} = %({k})s" for k in sets)
        row = cur.execute(
            f"UPDATE alerts SET {assign}, updated_at = now() WHERE id = %(id)s RETURNING *",
            {**sets, "id": alert_id},
        ).fetchone()
        assert row is not None
        alert = Alert.of(row)
        _audit(cur, alert_id, act.value, before.state, alert.state, actor, note, at)
        _event(cur, alert, act.value, {"actor": actor, "note": note})
        _notify_for(cur, alert, act, actor, note, at)
    return alert


def _notify_for(
    cur: psycopg.Cursor[Any], alert: Alert, act: AlertAction, actor: str, note: str, at: datetime
) -> None:
    """The notifications an action causes (written to the outbox, same transaction)."""
    if act not in (AlertAction.CONFIRM_FIRE, AlertAction.CONFIRM_FAULT, AlertAction.ESCALATE):
        return
    contacts = _contacts(cur, alert.unit_id)
    base = {"action": act.value, "actor": actor, "note": note, "at": at.isoformat(),
            "alert": alert.to_json(), "unit": {"id": alert.unit_id,
                                               "name": contacts.get("unit_name")}}  # fmt: skip
    if act is AlertAction.CONFIRM_FIRE:
        enqueue(cur, alert.id, "command_center", {**base, "evidence": _evidence(cur, alert.id)})
        for role in ("responsible", "manager"):
            if role in contacts:
                enqueue(cur, alert.id, "notify", base, {"role": role, **contacts[role]})
    elif act is AlertAction.CONFIRM_FAULT:
        who = contacts.get("maintenance") or contacts.get("responsible")
        if who:
            enqueue(cur, alert.id, "notify", base, {"role": "maintenance", **who})
    else:
        enqueue(cur, alert.id, "supervisor", base, {"role": "supervisor"})


def set_condition(
    conn: psycopg.Connection[Any],
    alert_id: int,
    active: bool,
    *,
    explanation: str | None = None,
    seen_at: datetime | float | None = None,
) -> Alert:
    """Record whether the alert's condition still holds (and its latest explanation)."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE alerts SET condition_active = %s, explanation = coalesce(%s, explanation),"
            " last_seen = greatest(last_seen, coalesce(%s, last_seen)), updated_at = now()"
            " WHERE id = %s RETURNING *",
            (active, explanation, _ts(seen_at) if seen_at is not None else None, alert_id),
        ).fetchone()
        if row is None:
            raise AlertNotFound(f"no alert {alert_id}")
        alert = Alert.of(row)
        _event(cur, alert, "condition_active" if active else "condition_cleared", {})
    return alert


# -- time-driven checks: one statement each, whatever the number of alerts or devices ------

_ESCALATE = """
WITH timeout (severity, secs) AS (SELECT * FROM unnest(%(sev)s::text[], %(secs)s::float8[])),
due AS (
    SELECT a.id FROM alerts a JOIN timeout t ON t.severity = a.severity
    WHERE a.state = 'open'
      AND coalesce(a.escalated_at, a.first_seen) <= %(now)s - make_interval(secs => t.secs)
    ORDER BY a.id
    FOR UPDATE OF a SKIP LOCKED
)
SELECT id FROM due
"""


def escalate_due(
    conn: psycopg.Connection[Any], settings: Settings, *, now: datetime | float
) -> list[int]:
    """Escalate every open alert not acknowledged within its severity's timeout
    (``alert_ack_timeout_s``, counted from the last escalation); returns their ids. The
    selection is one query; each escalation is then one :func:`apply_action`."""
    at = _ts(now)
    timeouts = settings.alert_ack_timeout_s
    with conn.transaction():
        ids = [
            int(r[0])
            for r in conn.execute(
                _ESCALATE,
                {"sev": list(timeouts), "secs": list(timeouts.values()), "now": at},
            ).fetchall()
        ]
        for alert_id in ids:
            apply_action(conn, alert_id, AlertAction.ESCALATE, actor=SYSTEM, now=at,
                         note="not acknowledged in time")  # fmt: skip
    return ids


_SILENT = """
WITH limits (kind, secs) AS (SELECT * FROM unnest(%(kinds)s::text[], %(secs)s::float8[]))
SELECT d.id AS device_id, d.unit_id, d.kind, ls.last_rx,
       coalesce(st.state = 'offline' AND st.updated_at >= ls.last_rx, false) AS by_will
FROM devices d
JOIN device_last_seen ls ON ls.device_id = d.id
LEFT JOIN device_state st ON st.device_id = d.id
JOIN limits l ON l.kind = d.kind
WHERE ls.last_rx < %(now)s - make_interval(secs => l.secs)
   OR (st.state = 'offline' AND st.updated_at >= ls.last_rx)
"""

_PATROL = """
SELECT d.id AS device_id, d.unit_id, d.kind, ls.last_rx, false AS by_will
FROM devices d JOIN device_last_seen ls ON ls.device_id = d.id
WHERE d.kind = 'panel' AND ls.last_rx < %(now)s - make_interval(secs => %(cycle)s)
"""

# One statement raises every alert of a check: the new alerts, their audit rows and their
# stream events (payload as store._event writes it). Devices that already have an active
# alert of the type are skipped by the unique index (ON CONFLICT DO NOTHING).
_RAISE_MANY = f"""
WITH found0 AS ({{found}}),
found AS (
    SELECT *, to_char(last_rx AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS since
    FROM found0
),
ins AS (
    INSERT INTO alerts (type, category, severity, unit_id, device_id, state, first_seen,
                        last_seen, explanation)
    SELECT %(type)s, 'offline', %(severity)s, f.unit_id, f.device_id, 'open', %(now)s,
           %(now)s, f.kind || ' ' || f.device_id || CASE
               WHEN f.by_will THEN ' lost its connection (last will)'
               WHEN %(type)s = 'patrol_failed'
                    THEN ' did not answer the patrol check: nothing since ' || f.since
               ELSE ' silent since ' || f.since END
    FROM found f
    WHERE NOT EXISTS (SELECT 1 FROM alerts a WHERE a.device_id = f.device_id
                      AND a.type = %(type)s AND a.state IN {_ACTIVE_SQL})
    ON CONFLICT (device_id, type) WHERE state IN {_ACTIVE_SQL} DO NOTHING
    RETURNING *
), audit AS (
    INSERT INTO alert_transitions (alert_id, action, from_state, to_state, actor, note, at)
    SELECT id, 'raise', NULL, 'open', '{SYSTEM}', explanation, first_seen FROM ins
), ev AS (
    INSERT INTO alert_events (alert_id, event, payload)
    SELECT id, 'created', jsonb_build_object('event', 'created', 'alert', to_jsonb(ins))
    FROM ins
)
SELECT id FROM ins ORDER BY id
"""

_RESOLVE_BACK = f"""
WITH back AS (
    SELECT a.id, a.state FROM alerts a JOIN device_last_seen ls ON ls.device_id = a.device_id
    LEFT JOIN device_state st ON st.device_id = a.device_id
    WHERE a.type = ANY(%(types)s) AND a.state IN {_ACTIVE_SQL}
      AND ls.last_rx > a.first_seen
      -- not offline by its last will (the same test as _SILENT: a will after its last message)
      AND NOT coalesce(st.state = 'offline' AND st.updated_at >= ls.last_rx, false)
    FOR UPDATE OF a SKIP LOCKED
), upd AS (
    UPDATE alerts SET state = 'resolved', resolved_at = %(now)s, condition_active = false,
                      updated_at = now()
    FROM back WHERE alerts.id = back.id
    RETURNING alerts.*, back.state AS from_state
), audit AS (
    INSERT INTO alert_transitions (alert_id, action, from_state, to_state, actor, note, at)
    SELECT id, 'resolve', from_state, 'resolved', '{SYSTEM}', %(note)s, %(now)s FROM upd
), ev AS (
    INSERT INTO alert_events (alert_id, event, payload)
    SELECT id, 'resolve', jsonb_build_object('event', 'resolve',
           'alert', to_jsonb(upd) - 'from_state', 'actor', '{SYSTEM}', 'note', %(note)s)
    FROM upd
)
SELECT id FROM upd ORDER BY id
"""

MASS_DEVICE = "*"  # device_id of the one alert that stands for a mass outage


@dataclass
class OfflineResult:
    opened: list[int]
    resolved: list[int]
    silent: int = 0
    mass_outage: bool = False


def check_offline(
    conn: psycopg.Connection[Any], settings: Settings, *, now: datetime | float
) -> OfflineResult:
    """The offline and patrol checks for every device at once — a handful of statements
    whatever the number of devices: a device silent beyond its kind's
    ``alert_offline_after_s``, or whose last will said offline, gets a ``device_offline``
    alert; a panel not heard from within the patrol cycle (GB 50440: at most 2 h) a
    ``patrol_failed`` alert; a device heard from again resolves both.

    When more than ``alert_mass_offline_fraction`` of the devices heard from (and at least
    ``alert_mass_offline_min``) are silent at once, the cause is upstream (the broker, the
    network, ingest), not tens of thousands of devices: one ``mass_offline`` alert is
    raised instead of one per device, and resolved when the share falls back.
    """
    at = _ts(now)
    limits = settings.alert_offline_after_s
    params = {"kinds": list(limits), "secs": list(limits.values()), "now": at,
              "cycle": settings.alert_patrol_cycle_s}  # fmt: skip
    opened: list[int] = []
    mass_alert: dict[str, Any] | None = None
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        counted = cur.execute(
            f"SELECT (SELECT count(*) FROM ({_SILENT}) s) AS silent,"
            " (SELECT count(*) FROM device_last_seen) AS heard",
            params,
        ).fetchone()
        assert counted is not None
        silent, heard = int(counted["silent"]), int(counted["heard"])
        mass = silent >= max(settings.alert_mass_offline_min,
                             settings.alert_mass_offline_fraction * heard)  # fmt: skip
        if mass:
            text = (f"{silent} of {heard} devices silent at once: the broker, the network "
                    "or ingest is down, not the devices")  # fmt: skip
            alert, created = raise_alert(conn, type="mass_offline", severity=Severity.CRITICAL,
                                         unit_id=MASS_DEVICE, device_id=MASS_DEVICE,
                                         seen_at=at, explanation=text, repeat=False,
                                         category=AlertCategory.OFFLINE)  # fmt: skip
            if created:
                opened.append(alert.id)
        else:
            for type_, found, severity in (("device_offline", _SILENT, Severity.MEDIUM),
                                           ("patrol_failed", _PATROL, Severity.HIGH)):  # fmt: skip
                raise_params = {**params, "type": type_, "severity": severity.value}
                rows = cur.execute(_RAISE_MANY.format(found=found), raise_params)
                opened += [int(r["id"]) for r in rows.fetchall()]
            mass_alert = cur.execute(
                f"SELECT id FROM alerts WHERE device_id = %s AND type = 'mass_offline'"
                f" AND state IN {_ACTIVE_SQL}",
                (MASS_DEVICE,),
            ).fetchone()
        resolved = [int(r["id"]) for r in cur.execute(
            _RESOLVE_BACK,
            {"types": ["device_offline", "patrol_failed"], "now": at,
             "note": "device heard from again"},
        ).fetchall()]  # fmt: skip
        if opened or resolved:
            cur.execute("SELECT pg_notify(%s, '')", (ALERT_CHANNEL,))
    if not mass and mass_alert is not None:
        note = f"{silent} of {heard} devices silent: below the mass-outage share"
        apply_action(conn, int(mass_alert["id"]), AlertAction.RESOLVE, actor=SYSTEM, now=at,
                     note=note)  # fmt: skip
        resolved.append(int(mass_alert["id"]))
    return OfflineResult(opened, resolved, silent, mass)


def list_alerts(
    conn: psycopg.Connection[Any],
    *,
    states: Sequence[str] | None = None,
    unit_id: str | None = None,
    limit: int = 100,
) -> list[Alert]:
    """Alerts, newest first; by default the active ones."""
    wanted = list(states) if states else [s.value for s in ACTIVE_STATES]
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM alerts WHERE state = ANY(%s) AND (%s::text IS NULL OR unit_id = %s)"
            " ORDER BY first_seen DESC, id DESC LIMIT %s",
            (wanted, unit_id, unit_id, limit),
        ).fetchall()
    return [Alert.of(r) for r in rows]


def alert_detail(conn: psycopg.Connection[Any], alert_id: int) -> dict[str, Any]:
    """The alert with its evidence (anomaly episodes) and audit trail; raises
    :class:`AlertNotFound`."""
    alert = get_alert(conn, alert_id)
    with conn.cursor(row_factory=dict_row) as cur:
        evidence = _evidence(cur, alert_id)
        trail = cur.execute(
            "SELECT action, from_state, to_state, actor, note, at FROM alert_transitions"
            " WHERE alert_id = %s ORDER BY id",
            (alert_id,),
        ).fetchall()
    return {
        "alert": alert.to_json(),
        "evidence": evidence,
        "transitions": [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
            for r in trail
        ],
    }
