"""What the supervision worker follows of alerting: operators' decisions on alerts.

The worker reads the ``alert_events`` change feed (``storage/changes.py``: every committed
event once, in order) from a cursor it saves in ``supervision_cursor`` in the same
transaction as what it does with the events, and keeps the two decisions it acts on: an
alert confirmed as a fault (it becomes a hazard work order) and an alert confirmed as a
real fire (the credit rule for a fire with a known hazard). The event's payload carries the
alert as it was after the decision (``storage/alerts.py``).

This module owns the SQL of ``supervision_cursor`` and reads ``devices``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from firewatch.storage.changes import ChangeCursor, read_changes

CONFIRM_FAULT = "confirm_fault"
CONFIRM_FIRE = "confirm_fire"


@dataclass(frozen=True)
class AlertDecision:
    """An operator confirmed an alert as a fault or as a real fire."""

    alert_id: int
    action: str  # confirm_fault | confirm_fire
    unit_id: str
    device_id: str
    type: str
    explanation: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class Decisions:
    decisions: list[AlertDecision]
    events: int  # feed rows read (decisions and everything else)
    cursor: ChangeCursor
    caught_up: bool


def read_decisions(conn: psycopg.Connection[Any], cursor: ChangeCursor, limit: int) -> Decisions:
    """The next ``limit`` alert events after ``cursor``, keeping the decisions. Runs its own
    read transaction (``read_changes``)."""
    changes = read_changes(
        conn,
        table="alert_events",
        xid_column="xid",
        cursor=cursor,
        limit=limit,
        columns=("alert_id", "event", "payload", "at"),
    )
    out: list[AlertDecision] = []
    for row in changes.rows:
        if row["event"] not in (CONFIRM_FAULT, CONFIRM_FIRE):
            continue
        alert = (row["payload"] or {}).get("alert") or {}
        out.append(
            AlertDecision(
                alert_id=int(row["alert_id"]),
                action=str(row["event"]),
                unit_id=str(alert.get("unit_id", "")),
                device_id=str(alert.get("device_id", "")),
                type=str(alert.get("type", "")),
                explanation=str(alert.get("explanation", "")),
                actor=str((row["payload"] or {}).get("actor", "")),
                at=row["at"],
            )
        )
    return Decisions(out, len(changes.rows), changes.cursor, changes.caught_up)


def load_cursor(conn: psycopg.Connection[Any], name: str) -> ChangeCursor:
    row = conn.execute("SELECT cursor FROM supervision_cursor WHERE name = %s", (name,)).fetchone()
    return ChangeCursor.from_json(row[0]) if row else ChangeCursor()


def save_cursor(conn: psycopg.Connection[Any], name: str, cursor: ChangeCursor) -> None:
    """In the caller's transaction, with what was done with the events up to it."""
    conn.execute(
        "INSERT INTO supervision_cursor (name, cursor) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET cursor = EXCLUDED.cursor, saved_at = now()",
        (name, Jsonb(cursor.to_json())),
    )


def device_kind(conn: psycopg.Connection[Any], device_id: str) -> str | None:
    """The registered device's kind (panel, water, ebike_shed), or None."""
    row = conn.execute("SELECT kind FROM devices WHERE id = %s", (device_id,)).fetchone()
    return None if row is None else str(row[0])


def unit_exists(conn: psycopg.Connection[Any], unit_id: str) -> bool:
    return conn.execute("SELECT 1 FROM units WHERE id = %s", (unit_id,)).fetchone() is not None
