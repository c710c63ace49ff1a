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

from firewatch.storage.changes import ChangeCursor, read_changes
from firewatch.storage.cursors import load_cursor_json, save_cursor_json

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
    saved = load_cursor_json(conn, "supervision_cursor", name)
    return ChangeCursor() if saved is None else ChangeCursor.from_json(saved)


def save_cursor(conn: psycopg.Connection[Any], name: str, cursor: ChangeCursor) -> None:
    """In the caller's transaction, with what was done with the events up to it."""
    save_cursor_json(conn, "supervision_cursor", name, cursor.to_json())


def device_kind(conn: psycopg.Connection[Any], device_id: str) -> str | None:
    """The registered device's kind (panel, water, ebike_shed), or None."""
    row = conn.execute("SELECT kind FROM devices WHERE id = %s", (device_id,)).fetchone()
    return None if row is None else str(row[0])
