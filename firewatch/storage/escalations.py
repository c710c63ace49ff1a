"""The levels alerts' escalations reached, in PostgreSQL (``alert_escalations``, migration
0015; docs/escalation.md), with the notifications each level writes to the outbox, and
the per-unit rate limit's count.

The alerting service escalates in one transaction per tick (``alerting/escalation.py``):
the overdue selection locks the due alerts (``storage/alert_checks.py``), then for every
level an alert reaches it writes the alert's ``escalate`` (``storage/alerts.py``: audit
row, stream event) and, here, the level's row and its outbox rows — pending ones for the
dispatcher, ``suppressed`` ones for what the rate limit held back — so that a level is
recorded with exactly the notifications it caused, or not at all.

The rate limit counts ``notified`` over the unit's levels whose ``at`` (the alerting
worker's clock, as ``alerts.escalated_at``) lies within the window. :func:`lock_units`
takes a transaction-scoped advisory lock per unit, in a fixed order, so that two workers
escalating at once count each other's notifications instead of both spending the last
one. Functions run in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from firewatch.core.escalation import EscalationLevel
from firewatch.storage.outbox import PERSON_CHANNELS, enqueue, enqueue_suppressed
from firewatch.storage.regions import unit_contacts

OUTCOMES = ("notified", "rate_limited", "skipped")


@dataclass(frozen=True)
class Notification:
    """One outbox row a level writes: its channel, recipient and payload."""

    channel: str
    recipient: Mapping[str, Any]
    payload: Mapping[str, Any]


def lock_units(conn: psycopg.Connection[Any], unit_ids: Iterable[str]) -> None:
    """Transaction-scoped advisory locks on the units' rate-limit counts, in sorted order
    (no two callers can deadlock on them)."""
    for unit in sorted(set(unit_ids)):
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('firewatch.escalation:' || %s, 0))",
            (unit,),
        )


def notified_since(conn: psycopg.Connection[Any], unit_id: str, since: datetime) -> int:
    """How many person notifications the unit's escalation levels sent after ``since``."""
    row = conn.execute(
        "SELECT coalesce(sum(notified), 0) FROM alert_escalations WHERE unit_id = %s AND at > %s",
        (unit_id, since),
    ).fetchone()
    return int(row[0]) if row else 0


def unit_name_and_contact(
    conn: psycopg.Connection[Any], unit_id: str
) -> tuple[str | None, Mapping[str, Any] | None]:
    """The unit's name and its responsible person's contact (``units.contacts``:
    ``{"name", "phone", "email"?}``); Nones for an unknown unit or a missing contact."""
    found = unit_contacts(conn, unit_id)
    if found is None:
        return None, None
    name, contacts = found
    responsible = contacts.get("responsible")
    return name, responsible if isinstance(responsible, Mapping) else None


def record_level(
    conn: psycopg.Connection[Any],
    *,
    alert_id: int,
    unit_id: str,
    level: int,
    step: EscalationLevel,
    outcome: str,
    note: str,
    detail: Mapping[str, Any],
    at: datetime,
    send: Sequence[Notification] = (),
    suppressed: Sequence[Notification] = (),
    suppressed_reason: str = "",
) -> None:
    """The level the alert reached (``outcome``: notified, rate_limited or skipped) and
    its outbox rows: ``send`` pending (``NOTIFY firewatch_outbox``), ``suppressed`` never
    sent, with ``suppressed_reason``."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    notified = sum(1 for n in send if n.channel in PERSON_CHANNELS)
    conn.execute(
        "INSERT INTO alert_escalations (alert_id, unit_id, level, name, audience, channel,"
        " outcome, notified, suppressed, note, detail, at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            alert_id,
            unit_id,
            level,
            step.name,
            step.audience.value,
            step.channel.value,
            outcome,
            notified,
            len(suppressed),
            note,
            Jsonb(dict(detail)),
            at,
        ),
    )
    with conn.cursor() as cur:
        for n in send:
            enqueue(cur, alert_id, n.channel, n.payload, n.recipient)
    for n in suppressed:
        enqueue_suppressed(conn, alert_id, n.channel, n.payload, n.recipient, suppressed_reason)


def escalations_of(conn: psycopg.Connection[Any], alert_id: int) -> list[dict[str, Any]]:
    """The levels the alert reached, in order (``alert_escalations`` rows as dicts)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT level, name, audience, channel, outcome, notified, suppressed, note, detail,"
            " at FROM alert_escalations WHERE alert_id = %s ORDER BY level",
            (alert_id,),
        ).fetchall()
