"""Unit credit in PostgreSQL: the current status per unit (``unit_credit``; a unit without a
row is ``good``) and every change (``credit_events``: from, to, rule, reason, actor, time).

:func:`change_credit` is the one writer: it locks the unit's row, writes the event and the
new status together and notifies the supervisor and the unit (``outbox``: channels
``supervisor`` and ``notify``, payload ``{"kind": "credit_changed", ...}``), in the
caller's transaction. A change to the status a unit has already is refused
(:class:`~firewatch.core.supervision.Conflict`), so every event is a real change.

This module owns the SQL of ``unit_credit`` and ``credit_events`` and reads what the credit
rules need of ``hazards`` and ``inspections`` through their modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from firewatch.core.credit import CreditFacts, CreditStatus
from firewatch.core.supervision import Conflict, NotFound, SupervisionError
from firewatch.storage.hazards import hazard_facts
from firewatch.storage.inspections import false_declarations
from firewatch.storage.outbox import NOTIFY, SUPERVISOR, enqueue
from firewatch.storage.regions import unit_contacts


@dataclass(frozen=True)
class UnitCredit:
    unit_id: str
    status: CreditStatus
    since: datetime | None  # None: never changed (good)
    reason: str
    actor: str


def get_credit(conn: psycopg.Connection[Any], unit_id: str, *, lock: bool = False) -> UnitCredit:
    """The unit's credit (``good`` without a record); :class:`NotFound` for no such unit."""
    row = conn.execute(
        "SELECT u.id, c.status, c.since, c.reason, c.actor FROM units u"
        " LEFT JOIN unit_credit c ON c.unit_id = u.id WHERE u.id = %s"
        + (" FOR UPDATE OF u" if lock else ""),
        (unit_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no unit {unit_id!r}")
    if row[1] is None:
        return UnitCredit(unit_id, CreditStatus.GOOD, None, "", "")
    return UnitCredit(unit_id, CreditStatus(row[1]), row[2], str(row[3]), str(row[4]))


def change_credit(
    conn: psycopg.Connection[Any],
    unit_id: str,
    to_status: CreditStatus,
    *,
    rule: str,
    reason: str,
    actor: str,
    at: datetime,
    hazard_id: int | None = None,
    inspection_id: int | None = None,
    alert_id: int | None = None,
) -> UnitCredit:
    """Change the unit's status (see the module docstring); the new credit."""
    if not reason.strip():
        raise SupervisionError("a credit change needs a reason")
    with conn.transaction(), conn.cursor() as cur:
        before = get_credit(conn, unit_id, lock=True)
        if before.status is to_status:
            raise Conflict(f"unit {unit_id} is {to_status.value} already")
        cur.execute(
            "INSERT INTO credit_events (unit_id, from_status, to_status, rule, reason, actor, at,"
            " hazard_id, inspection_id, alert_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                unit_id,
                before.status.value,
                to_status.value,
                rule,
                reason.strip(),
                actor,
                at,
                hazard_id,
                inspection_id,
                alert_id,
            ),
        )
        cur.execute(
            "INSERT INTO unit_credit (unit_id, status, since, reason, actor)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (unit_id) DO UPDATE SET"
            " status = EXCLUDED.status, since = EXCLUDED.since, reason = EXCLUDED.reason,"
            " actor = EXCLUDED.actor",
            (unit_id, to_status.value, at, reason.strip(), actor),
        )
        unit = unit_contacts(conn, unit_id)
        assert unit is not None
        name, contacts = unit
        payload = {
            "kind": "credit_changed",
            "at": at.isoformat(),
            "unit": {"id": unit_id, "name": name},
            "from": before.status.value,
            "to": to_status.value,
            "rule": rule,
            "reason": reason.strip(),
            "actor": actor,
        }
        enqueue(cur, alert_id, SUPERVISOR, payload, {"role": "supervisor"})
        if "responsible" in contacts:
            enqueue(
                cur, alert_id, NOTIFY, payload, {"role": "responsible", **contacts["responsible"]}
            )
    return UnitCredit(unit_id, to_status, at, reason.strip(), actor)


def credit_events(
    conn: psycopg.Connection[Any], unit_id: str, limit: int = 100
) -> list[dict[str, Any]]:
    """The unit's credit changes, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, from_status, to_status, rule, reason, actor, at, hazard_id,"
            " inspection_id, alert_id FROM credit_events WHERE unit_id = %s"
            " ORDER BY at DESC, id DESC LIMIT %s",
            (unit_id, limit),
        ).fetchall()


def list_credit(
    conn: psycopg.Connection[Any], statuses: Sequence[str] | None = None
) -> list[UnitCredit]:
    """Units with a credit record (not ``good`` by default), by unit id."""
    wanted = list(statuses) if statuses else ["watch", "blacklisted"]
    rows = conn.execute(
        "SELECT unit_id, status, since, reason, actor FROM unit_credit WHERE status = ANY(%s)"
        " ORDER BY unit_id",
        (wanted,),
    ).fetchall()
    return [UnitCredit(str(u), CreditStatus(s), t, str(r), str(a)) for u, s, t, r, a in rows]


def credit_facts(conn: psycopg.Connection[Any]) -> list[CreditFacts]:
    """What the credit rules need, for every unit they could concern: one with a hazard, a
    false self-declaration or a status other than good."""
    hazards = hazard_facts(conn)
    declarations = false_declarations(conn)
    records = {c.unit_id: c for c in list_credit(conn, ["good", "watch", "blacklisted"])}
    out: list[CreditFacts] = []
    for unit in sorted({*hazards, *declarations, *records}):
        record = records.get(unit)
        out.append(
            CreditFacts(
                unit_id=unit,
                status=record.status if record else CreditStatus.GOOD,
                since=record.since if record else None,
                hazards=hazards.get(unit, []),
                false_declarations=declarations.get(unit, []),
            )
        )
    return out
