"""Alerts in PostgreSQL: the alert store. Raise (with dedup), act (the lifecycle, audited),
record whether a condition still holds, the set-based offline and patrol checks, the
reads the API serves, and the facts the alerting service decides on (``alerting/decide.py``):
which alert an episode is evidence of, how many of an alert's episodes are still open, a
panel's recent fire alarms, the alerts due for escalation.

Every change of an alert is written together with, in the same transaction: its audit row
(``alert_transitions``), its live-stream event (``alert_events``, then ``NOTIFY
firewatch_alerts``) and any notification it causes (``outbox``, ``storage/outbox.py``, then
``NOTIFY firewatch_outbox``). Functions here run in the caller's transaction when there is
one and in their own otherwise (``conn.transaction()`` nests as a savepoint).

One active alert per ``(device_id, type)`` is the database's rule (a partial unique index):
:func:`raise_alert` inserts or, on conflict, counts an occurrence, so any number of writers
racing over the same problem make one alert. The time-driven checks (escalation's selection,
offline and patrol) are in ``storage/alert_checks.py``.

This module owns the SQL of the alert tables (``alerts``, ``alert_evidence``,
``alert_transitions``, ``alert_events``, ``alerting_cursor``) and alerting's reads of
``anomalies`` and ``devices``; the outbox's is in ``storage/outbox.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from firewatch.core.alerts import (
    ACTIVE_STATES,
    OPERATOR_ACTIONS,
    Alert,
    AlertAction,
    AlertCategory,
    AlertState,
    ClaimedByOther,
    category_of,
    escalated,
    next_state,
)
from firewatch.core.domain import Severity
from firewatch.storage import channels
from firewatch.storage.changes import ChangeCursor
from firewatch.storage.cursors import load_cursor_json, save_cursor_json
from firewatch.storage.outbox import COMMAND_CENTER, NOTIFY, enqueue
from firewatch.storage.regions import unit_contacts

SYSTEM = "system"

#: ``ACTIVE_STATES`` as an SQL list: the partial unique index's predicate, ``state IN …``.
ACTIVE_SQL = "(" + ", ".join(f"'{s.value}'" for s in sorted(ACTIVE_STATES)) + ")"
_RANK = "CASE {0} WHEN 'critical' THEN 3 WHEN 'high' THEN 2 WHEN 'medium' THEN 1 ELSE 0 END"


class AlertNotFound(LookupError):
    """No alert has that id."""


def as_datetime(t: datetime | float) -> datetime:
    """A time given as a datetime or as Unix seconds."""
    return t if isinstance(t, datetime) else datetime.fromtimestamp(t, UTC)


def stream_event(
    cur: psycopg.Cursor[Any], alert: Alert, event: str, extra: Mapping[str, Any]
) -> None:
    """The alert's live-stream event (``alert_events``, then ``NOTIFY``), in ``cur``'s
    transaction."""
    payload = {"event": event, "alert": alert.to_json(), **extra}
    cur.execute(
        "INSERT INTO alert_events (alert_id, event, payload) VALUES (%s, %s, %s)",
        (alert.id, event, Jsonb(payload)),
    )
    cur.execute("SELECT pg_notify(%s, '')", (channels.ALERTS,))


def audit_transition(
    cur: psycopg.Cursor[Any],
    alert_id: int,
    action: str,
    from_state: str | None,
    to_state: str,
    actor: str,
    note: str,
    at: datetime,
) -> None:
    """The alert's audit row (``alert_transitions``: who, when, why), in ``cur``'s
    transaction."""
    cur.execute(
        "INSERT INTO alert_transitions (alert_id, action, from_state, to_state, actor, note, at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (alert_id, action, from_state, to_state, actor, note, at),
    )


_RAISE = f"""
INSERT INTO alerts AS a (type, category, severity, unit_id, device_id, state, first_seen,
                         last_seen, explanation)
VALUES (%(type)s, %(category)s, %(severity)s, %(unit_id)s, %(device_id)s, 'open',
        %(seen)s, %(seen)s, %(explanation)s)
ON CONFLICT (device_id, type) WHERE state IN {ACTIVE_SQL} DO UPDATE SET
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
    params = {
        "type": type,
        "category": cat.value,
        "severity": Severity(severity).value,
        "unit_id": unit_id,
        "device_id": device_id,
        "seen": as_datetime(seen_at),
        "explanation": explanation,
        "repeat": repeat,
    }
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
            audit_transition(
                cur,
                alert.id,
                "raise",
                None,
                AlertState.OPEN.value,
                SYSTEM,
                explanation,
                alert.first_seen,
            )
        stream_event(
            cur, alert, "created" if created else "occurrence" if repeat else "updated", {}
        )
    return alert, created


def find_alert(conn: psycopg.Connection[Any], alert_id: int) -> Alert | None:
    """The alert, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    return None if row is None else Alert.of(row)


def get_alert(conn: psycopg.Connection[Any], alert_id: int) -> Alert:
    """The alert; raises :class:`AlertNotFound`."""
    alert = find_alert(conn, alert_id)
    if alert is None:
        raise AlertNotFound(f"no alert {alert_id}")
    return alert


def _contacts(cur: psycopg.Cursor[Any], unit_id: str) -> dict[str, Any]:
    unit = unit_contacts(cur.connection, unit_id)
    return {"unit_name": unit[0], **unit[1]} if unit else {}


def _evidence(cur: psycopg.Cursor[Any], alert_id: int) -> list[dict[str, Any]]:
    rows = cur.execute(
        "SELECT n.id, n.detector, n.kind, n.component, n.severity, n.started_at,"
        " n.detected_at, n.ended_at, n.explanation FROM alert_evidence e"
        " JOIN anomalies n ON n.id = e.anomaly_id WHERE e.alert_id = %s ORDER BY n.id",
        (alert_id,),
    ).fetchall()
    return [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()} for r in rows
    ]


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
    * ``escalate``: escalation count + 1 (its notifications: :func:`escalate`);
    * ``merge``: folded into ``parent_id`` (a correlated alert).

    Raises :class:`AlertNotFound`, :class:`~firewatch.core.alerts.IllegalTransition` (the
    alert is unchanged), ``ValueError`` for an unknown action or a merge without parent.
    """
    act = AlertAction(action)
    at = as_datetime(now) if now is not None else datetime.now(UTC)
    return _act(conn, alert_id, act, actor=actor, note=note, at=at, parent_id=parent_id)


def escalate(
    conn: psycopg.Connection[Any],
    alert_id: int,
    *,
    severity: Severity,
    level: int,
    at: datetime,
    note: str,
) -> Alert:
    """The system's ``escalate`` with the severity and level decided for it
    (``alerting/decide.py``), audited and on the stream; as :func:`apply_action`. It writes
    no notification: the escalation policy's level does (``storage/escalations.py``, in
    the same transaction)."""
    act = AlertAction.ESCALATE
    return _act(conn, alert_id, act, actor=SYSTEM, note=note, at=at, escalation=(severity, level))


def _act(
    conn: psycopg.Connection[Any],
    alert_id: int,
    act: AlertAction,
    *,
    actor: str,
    note: str,
    at: datetime,
    parent_id: int | None = None,
    escalation: tuple[Severity, int] | None = None,
) -> Alert:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM alerts WHERE id = %s FOR UPDATE", (alert_id,)).fetchone()
        if row is None:
            raise AlertNotFound(f"no alert {alert_id}")
        before = Alert.of(row)
        if act in OPERATOR_ACTIONS and before.claimed_by not in (None, actor):
            raise ClaimedByOther(alert_id, before.claimed_by or "", before.claimed_at)
        state = next_state(before.state, act)
        sets: dict[str, Any] = {"state": state.value}
        if act is AlertAction.ACKNOWLEDGE:
            sets["acknowledged_at"] = at
        elif act is AlertAction.RESOLVE:
            sets["resolved_at"] = at
        elif act is AlertAction.CLOSE:
            sets["closed_at"] = at
        elif act is AlertAction.ESCALATE:
            severity, level = escalation or (
                escalated(before.severity),
                before.escalation_level + 1,
            )
            sets.update(severity=severity.value, escalation_level=level, escalated_at=at)
        elif act is AlertAction.MERGE:
            if parent_id is None:
                raise ValueError("merge needs the parent alert's id")
            sets["parent_id"] = parent_id
        if (
            act
            in (AlertAction.CONFIRM_FIRE, AlertAction.CONFIRM_FAULT, AlertAction.MARK_FALSE_ALARM)
            and before.acknowledged_at is None
        ):
            sets["acknowledged_at"] = at  # a decision implies it was seen
        assign = ", ".join(f"{k} = %({k})s" for k in sets)
        row = cur.execute(
            f"UPDATE alerts SET {assign}, updated_at = now() WHERE id = %(id)s RETURNING *",
            {**sets, "id": alert_id},
        ).fetchone()
        assert row is not None
        alert = Alert.of(row)
        audit_transition(
            cur, alert_id, act.value, before.state.value, alert.state.value, actor, note, at
        )
        stream_event(cur, alert, act.value, {"actor": actor, "note": note})
        _notify_for(cur, alert, act, actor, note, at)
    return alert


def _notify_for(
    cur: psycopg.Cursor[Any], alert: Alert, act: AlertAction, actor: str, note: str, at: datetime
) -> None:
    """The notifications an action causes (written to the outbox, same transaction)."""
    if act not in (AlertAction.CONFIRM_FIRE, AlertAction.CONFIRM_FAULT):
        return  # an escalation's notifications follow its policy (storage/escalations.py)
    contacts = _contacts(cur, alert.unit_id)
    base = {
        "action": act.value,
        "actor": actor,
        "note": note,
        "at": at.isoformat(),
        "alert": alert.to_json(),
        "unit": {"id": alert.unit_id, "name": contacts.get("unit_name")},
    }
    if act is AlertAction.CONFIRM_FIRE:
        enqueue(cur, alert.id, COMMAND_CENTER, {**base, "evidence": _evidence(cur, alert.id)})
        for role in ("responsible", "manager"):
            if role in contacts:
                enqueue(cur, alert.id, NOTIFY, base, {"role": role, **contacts[role]})
    else:
        who = contacts.get("maintenance") or contacts.get("responsible")
        if who:
            enqueue(cur, alert.id, NOTIFY, base, {"role": "maintenance", **who})


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
            (active, explanation, as_datetime(seen_at) if seen_at is not None else None, alert_id),
        ).fetchone()
        if row is None:
            raise AlertNotFound(f"no alert {alert_id}")
        alert = Alert.of(row)
        stream_event(cur, alert, "condition_active" if active else "condition_cleared", {})
    return alert


# -- what the alerting service decides on (alerting/service.py, alerting/decide.py) --------


def evidence_alert_id(conn: psycopg.Connection[Any], anomaly_id: int) -> int | None:
    """The alert the anomaly episode is evidence of, or None (a new episode)."""
    row = conn.execute(
        "SELECT alert_id FROM alert_evidence WHERE anomaly_id = %s", (anomaly_id,)
    ).fetchone()
    return None if row is None else int(row[0])


def open_evidence(conn: psycopg.Connection[Any], alert_id: int) -> int:
    """How many of the alert's evidence episodes have not ended."""
    row = conn.execute(
        "SELECT count(*) FROM alert_evidence e JOIN anomalies a ON a.id = e.anomaly_id"
        " WHERE e.alert_id = %s AND a.ended_at IS NULL",
        (alert_id,),
    ).fetchone()
    return int(row[0]) if row else 0


def active_alert_id(conn: psycopg.Connection[Any], device_id: str, type_: str) -> int | None:
    """The id of the device's active alert of ``type_``, or None."""
    row = conn.execute(
        "SELECT id FROM alerts WHERE device_id = %s AND type = %s AND state = ANY(%s)",
        (device_id, type_, [s.value for s in ACTIVE_STATES]),
    ).fetchone()
    return None if row is None else int(row[0])


def recent_fire_components(
    conn: psycopg.Connection[Any],
    device_id: str,
    *,
    at: datetime,
    window_s: float,
    excluding: int,
) -> list[str]:
    """The components of the device's fire-alarm episodes (other than ``excluding``)
    detected within ``window_s`` seconds up to ``at``."""
    rows = conn.execute(
        "SELECT DISTINCT component FROM anomalies WHERE device_id = %s"
        " AND kind = 'fire_alarm' AND id <> %s"
        " AND detected_at BETWEEN %s - make_interval(secs => %s) AND %s",
        (device_id, excluding, at, window_s, at),
    ).fetchall()
    return [str(r[0]) for r in rows]


def panel_metadata(conn: psycopg.Connection[Any]) -> dict[str, Mapping[str, Any]]:
    """Every panel's registry metadata (its zones), by device id."""
    rows = conn.execute("SELECT id, metadata FROM devices WHERE kind = 'panel'").fetchall()
    return {str(r[0]): dict(r[1] or {}) for r in rows}


def load_cursor(conn: psycopg.Connection[Any], name: str) -> ChangeCursor:
    """Where the alerting service stands in a change feed (the start if it never saved)."""
    saved = load_cursor_json(conn, "alerting_cursor", name)
    return ChangeCursor() if saved is None else ChangeCursor.from_json(saved)


def save_cursor(conn: psycopg.Connection[Any], name: str, cursor: ChangeCursor) -> None:
    """Save the position, in the caller's transaction (with what was read up to it)."""
    save_cursor_json(conn, "alerting_cursor", name, cursor.to_json())


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
