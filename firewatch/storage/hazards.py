"""Hazards in PostgreSQL: work orders with a deadline, their audited steps, the
notifications they cause, and the per-unit summary risk scoring reads.

Every step of a hazard (found, submit, verify, reject, remind, escalate) writes a
``hazard_events`` row and, where someone must act, an ``outbox`` notification
(``storage/outbox.py``: ``alert_id`` is the fault alert for a device-fault hazard and NULL
otherwise), in the caller's transaction: the step and its notification commit together.

* the unit (channel ``notify``, its responsible contact; its maintenance contact too for a
  device fault): a new hazard, a reminder, a rejection;
* the supervisor (channel ``supervisor``): an escalation, a submission to verify.

Payloads: ``{"kind": "hazard_<step>", "hazard": {...}, "unit": {"id", "name"}, "at", ...}``.

This module owns the SQL of ``hazards`` and ``hazard_events``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from firewatch.core.credit import HazardFact
from firewatch.core.supervision import (
    Hazard,
    HazardAction,
    HazardSeverity,
    HazardSource,
    HazardState,
    HazardSummary,
    NewHazard,
    NotFound,
    next_hazard_state,
)
from firewatch.storage.outbox import NOTIFY, SUPERVISOR, enqueue
from firewatch.storage.regions import unit_contacts

YEAR = timedelta(days=365)


def notify_hazard(
    cur: psycopg.Cursor[Any],
    hazard: Hazard,
    kind: str,
    at: datetime,
    *,
    unit: bool = False,
    supervisor: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> int:
    """Outbox rows for one hazard step; how many were written."""
    name, contacts = unit_contacts(cur.connection, hazard.unit_id) or (None, {})
    payload = {
        "kind": kind,
        "at": at.isoformat(),
        "hazard": hazard.to_json(),
        "unit": {"id": hazard.unit_id, "name": name},
        **(extra or {}),
    }
    n = 0
    if unit:
        roles = ["responsible"]
        if hazard.source is HazardSource.DEVICE_FAULT:
            roles.append("maintenance")
        for role in roles:
            if role in contacts:
                enqueue(cur, hazard.alert_id, NOTIFY, payload, {"role": role, **contacts[role]})
                n += 1
    if supervisor:
        enqueue(cur, hazard.alert_id, SUPERVISOR, payload, {"role": "supervisor"})
        n += 1
    return n


def _event(
    cur: psycopg.Cursor[Any],
    hazard_id: int,
    action: str,
    from_state: str | None,
    to_state: str,
    actor: str,
    note: str,
    at: datetime,
) -> None:
    cur.execute(
        "INSERT INTO hazard_events (hazard_id, action, from_state, to_state, actor, note, at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (hazard_id, action, from_state, to_state, actor, note, at),
    )


def insert_hazard(
    conn: psycopg.Connection[Any],
    *,
    unit_id: str,
    source: HazardSource,
    new: NewHazard,
    found_at: datetime,
    deadline: datetime,
    actor: str,
    inspection_id: int | None = None,
    alert_id: int | None = None,
) -> Hazard | None:
    """A new open hazard with its ``found`` event and the unit's notification; None when
    the fault alert has its hazard already (one per alert)."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "INSERT INTO hazards (unit_id, source, inspection_id, alert_id, category, severity,"
            " description, found_at, deadline) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (alert_id) WHERE alert_id IS NOT NULL DO NOTHING RETURNING *",
            (
                unit_id,
                source.value,
                inspection_id,
                alert_id,
                new.category,
                new.severity.value,
                new.description,
                found_at,
                deadline,
            ),
        ).fetchone()
        if row is None:
            return None
        hazard = Hazard.of(row)
        _event(cur, hazard.id, "found", None, hazard.state.value, actor, new.description, found_at)
        notify_hazard(cur, hazard, "hazard_opened", found_at, unit=True)
    return hazard


def get_hazard(conn: psycopg.Connection[Any], hazard_id: int, *, lock: bool = False) -> Hazard:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT * FROM hazards WHERE id = %s" + (" FOR UPDATE" if lock else ""), (hazard_id,)
        ).fetchone()
    if row is None:
        raise NotFound(f"no hazard {hazard_id}")
    return Hazard.of(row)


def apply_hazard_action(
    conn: psycopg.Connection[Any],
    hazard_id: int,
    action: HazardAction,
    *,
    actor: str,
    at: datetime,
    note: str = "",
    evidence: str | None = None,
) -> Hazard:
    """One step of the hazard's lifecycle (``core/supervision.py``), audited, with its
    notification: a submission goes to the supervisor to verify, a rejection back to the
    unit. Raises :class:`NotFound`, ``IllegalHazardTransition`` (nothing changed)."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        before = get_hazard(conn, hazard_id, lock=True)
        state = next_hazard_state(before.state, action)
        if action is HazardAction.SUBMIT:
            sql = "state = %s, evidence = %s, submitted_at = %s"
            params: tuple[Any, ...] = (state.value, evidence, at)
        elif action is HazardAction.VERIFY:
            sql = "state = %s, verified_at = %s, verified_by = %s"
            params = (state.value, at, actor)
        else:
            sql = "state = %s, rejections = rejections + 1"
            params = (state.value,)
        row = cur.execute(
            f"UPDATE hazards SET {sql} WHERE id = %s RETURNING *", (*params, hazard_id)
        ).fetchone()
        assert row is not None
        hazard = Hazard.of(row)
        text = note if action is not HazardAction.SUBMIT else (note or evidence or "")
        _event(cur, hazard_id, action.value, before.state.value, state.value, actor, text, at)
        extra = {"actor": actor, "note": note}
        if action is HazardAction.SUBMIT:
            notify_hazard(cur, hazard, "hazard_submitted", at, supervisor=True, extra=extra)
        elif action is HazardAction.REJECT:
            notify_hazard(cur, hazard, "hazard_rejected", at, unit=True, extra=extra)
    return hazard


def unverified_hazards(conn: psycopg.Connection[Any]) -> list[Hazard]:
    """Every hazard not verified yet (the worker's reminders and escalations look at them)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM hazards WHERE state <> 'verified' ORDER BY deadline, id"
        ).fetchall()
    return [Hazard.of(r) for r in rows]


def record_reminder(
    conn: psycopg.Connection[Any], hazard: Hazard, count: int, at: datetime
) -> bool:
    """Remind the unit (``hazard_reminder``); False when another worker did it first."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE hazards SET reminders_sent = %s WHERE id = %s AND reminders_sent < %s"
            " AND state = 'open' RETURNING *",
            (count, hazard.id, count),
        ).fetchone()
        if row is None:
            return False
        updated = Hazard.of(row)
        left = max(0.0, (updated.deadline - at).total_seconds() / 86_400)
        note = f"reminder {count}: {left:.1f} days to the deadline"
        _event(
            cur, hazard.id, "remind", updated.state.value, updated.state.value, "system", note, at
        )
        notify_hazard(
            cur, updated, "hazard_reminder", at, unit=True, extra={"days_left": round(left, 2)}
        )
    return True


def record_escalation(
    conn: psycopg.Connection[Any], hazard: Hazard, level: int, at: datetime
) -> bool:
    """Escalate an overdue hazard to ``level`` (the supervisor, and the unit again from
    level 2); False when it was at that level already (another worker)."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE hazards SET escalation_level = %s, escalated_at = %s WHERE id = %s"
            " AND escalation_level < %s AND state <> 'verified' RETURNING *",
            (level, at, hazard.id, level),
        ).fetchone()
        if row is None:
            return False
        updated = Hazard.of(row)
        late = (at - updated.deadline).total_seconds() / 86_400
        note = f"escalation level {level}: {late:.1f} days past the deadline"
        _event(
            cur, hazard.id, "escalate", updated.state.value, updated.state.value, "system", note, at
        )
        notify_hazard(
            cur,
            updated,
            "hazard_escalation",
            at,
            supervisor=True,
            unit=level >= 2,
            extra={"level": level, "days_overdue": round(late, 2)},
        )
    return True


def list_hazards(
    conn: psycopg.Connection[Any],
    *,
    unit_id: str | None = None,
    states: Sequence[str] | None = None,
    overdue_at: datetime | None = None,
    limit: int = 100,
) -> list[Hazard]:
    """Hazards, newest first; ``overdue_at``: only those overdue at that time."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM hazards WHERE (%(unit)s::text IS NULL OR unit_id = %(unit)s)"
            " AND (%(states)s::text[] IS NULL OR state = ANY(%(states)s))"
            " AND (%(at)s::timestamptz IS NULL OR (state <> 'verified' AND deadline < %(at)s))"
            " ORDER BY found_at DESC, id DESC LIMIT %(limit)s",
            {
                "unit": unit_id,
                "states": None if states is None else list(states),
                "at": overdue_at,
                "limit": limit,
            },
        ).fetchall()
    return [Hazard.of(r) for r in rows]


def hazard_events(conn: psycopg.Connection[Any], hazard_id: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT action, from_state, to_state, actor, note, at FROM hazard_events"
            " WHERE hazard_id = %s ORDER BY id",
            (hazard_id,),
        ).fetchall()


def hazard_facts(
    conn: psycopg.Connection[Any], unit_ids: Sequence[str] | None = None
) -> dict[str, list[HazardFact]]:
    """Per unit, what the credit rules need of each of its hazards."""
    rows = conn.execute(
        "SELECT unit_id, id, severity, state, found_at, deadline, submitted_at, verified_at,"
        " category FROM hazards WHERE %s::text[] IS NULL OR unit_id = ANY(%s) ORDER BY id",
        (None if unit_ids is None else list(unit_ids),) * 2,
    ).fetchall()
    out: dict[str, list[HazardFact]] = {}
    for unit, i, sev, state, found, deadline, submitted, verified, category in rows:
        out.setdefault(str(unit), []).append(
            HazardFact(
                id=int(i),
                severity=HazardSeverity(sev),
                state=HazardState(state),
                found_at=found,
                deadline=deadline,
                submitted_at=submitted,
                verified_at=verified,
                category=str(category),
            )
        )
    return out


_SUMMARY = """
WITH wanted AS (SELECT unnest(%(units)s::text[]) AS unit_id),
h AS (
    SELECT unit_id, severity, found_at, deadline
    FROM hazards
    WHERE unit_id = ANY(%(units)s) AND found_at <= %(at)s
      AND (verified_at IS NULL OR verified_at > %(at)s)
),
i AS (
    SELECT unit_id, count(*) AS n, count(*) FILTER (WHERE false_declaration) AS false_n
    FROM inspections
    WHERE unit_id = ANY(%(units)s) AND inspected_at <= %(at)s AND inspected_at > %(since)s
    GROUP BY unit_id
),
f AS (
    SELECT unit_id, count(*) AS n FROM hazards
    WHERE unit_id = ANY(%(units)s) AND found_at <= %(at)s AND found_at > %(since)s
    GROUP BY unit_id
),
c AS (
    SELECT DISTINCT ON (unit_id) unit_id, to_status FROM credit_events
    WHERE unit_id = ANY(%(units)s) AND at <= %(at)s
    ORDER BY unit_id, at DESC, id DESC
)
SELECT w.unit_id,
       (SELECT count(*) FROM h WHERE h.unit_id = w.unit_id AND severity = 'major'),
       (SELECT count(*) FROM h WHERE h.unit_id = w.unit_id AND severity = 'general'),
       (SELECT count(*) FROM h WHERE h.unit_id = w.unit_id AND deadline < %(at)s),
       (SELECT extract(epoch FROM %(at)s - min(found_at)) / 86400 FROM h
         WHERE h.unit_id = w.unit_id),
       coalesce(i.n, 0), coalesce(f.n, 0), coalesce(i.false_n, 0),
       coalesce(c.to_status, 'good')
FROM wanted w
LEFT JOIN i ON i.unit_id = w.unit_id
LEFT JOIN f ON f.unit_id = w.unit_id
LEFT JOIN c ON c.unit_id = w.unit_id
"""


def hazard_summary(
    conn: psycopg.Connection[Any], unit_ids: Sequence[str], at: datetime
) -> dict[str, HazardSummary]:
    """Each unit's supervision record as of ``at`` (:class:`HazardSummary`), for risk
    scoring: one entry per requested unit (zeros and ``good`` for a unit without records).

    Point-in-time: a hazard counts as open at ``at`` when found by then and not verified by
    then, overdue when also past its deadline; the credit status is the last change made
    by then. So a score recomputed for a past time sees what was known then (except
    states the records do not keep: a submission pending at ``at`` but rejected later
    counts as open, which it was). Reads ``inspections`` and ``credit_events`` too."""
    units = sorted(set(unit_ids))
    if not units:
        return {}
    rows = conn.execute(_SUMMARY, {"units": units, "at": at, "since": at - YEAR}).fetchall()
    return {
        str(r[0]): HazardSummary(
            unit_id=str(r[0]),
            open_major=int(r[1]),
            open_general=int(r[2]),
            overdue=int(r[3]),
            oldest_open_days=float(r[4] or 0.0),
            inspections_365d=int(r[5]),
            hazards_365d=int(r[6]),
            false_declarations_365d=int(r[7]),
            credit_status=str(r[8]),
        )
        for r in rows
    }
