"""The on-duty roster and people's contact fields, in PostgreSQL (migration 0015;
docs/escalation.md, "The roster").

This module owns the SQL of ``shifts`` and of the ``people.email`` / ``people.phone``
columns; it writes the audit of what it changes (``shift_added``, ``shift_removed``,
``contact_set``) into ``auth_events``, the audit of accounts (``storage/people.py``), in
the same transaction, with the caller's actor. Functions run in the caller's transaction
unless they say otherwise.

A shift is one person's duty from ``starts_at`` to ``ends_at`` (half-open: the end is no
longer on duty). Only operators and shift leaders hold shifts: they are the escalation's
audiences "on-duty operators" and "on-duty shift leaders" (:func:`on_duty`). One person's
shifts never overlap. Times and validity rules: ``core/escalation.py``
(:func:`~firewatch.core.escalation.check_shift`, the contact normalisation); refusals raise
``core/people.py``'s :class:`~firewatch.core.people.NotFound` (no such person or shift) or
:class:`~firewatch.core.escalation.RosterError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from firewatch.core.escalation import Contact, RosterError, check_shift
from firewatch.core.people import NotFound, Role, normalise_username

#: The roles that hold shifts (and the on-duty audiences they make).
DUTY_ROLES = (Role.OPERATOR, Role.SHIFT_LEADER)


@dataclass(frozen=True)
class Shift:
    """A ``shifts`` row with its person."""

    id: int
    username: str
    display_name: str
    role: Role
    active: bool  # the person's account
    email: str | None
    phone: str | None
    starts_at: datetime
    ends_at: datetime
    created_by: str
    created_at: datetime

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role.value,
            "active": self.active,
            "email": self.email,
            "phone": self.phone,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "created_by": self.created_by,
        }
        if now is not None:
            out["on_duty"] = self.active and self.covers(now)
        return out


_SHIFT_COLUMNS = (
    "s.id, p.username, p.display_name, p.role, p.active, p.email, p.phone, s.starts_at,"
    " s.ends_at, s.created_by, s.created_at"
)


def _shift(row: Any) -> Shift:
    return Shift(
        id=int(row["id"]),
        username=row["username"],
        display_name=row["display_name"],
        role=Role(row["role"]),
        active=bool(row["active"]),
        email=row["email"],
        phone=row["phone"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


def _audit(
    conn: psycopg.Connection[Any], username: str, event: str, actor: str, detail: dict[str, Any]
) -> None:
    conn.execute(
        "INSERT INTO auth_events (username, event, actor, detail) VALUES (%s, %s, %s, %s)",
        (username, event, actor, Jsonb(detail)),
    )


def _person(conn: psycopg.Connection[Any], username: str, *, lock: bool = False) -> Any:
    name = normalise_username(username)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT id, username, display_name, role, active, email, phone FROM people"
            f" WHERE username = %s{' FOR UPDATE' if lock else ''}",
            (name,),
        ).fetchone()
    if row is None:
        raise NotFound(f"no user {name!r}")
    return row


def set_contact(
    conn: psycopg.Connection[Any],
    username: str,
    *,
    email: str | None = None,
    phone: str | None = None,
    set_email: bool = False,
    set_phone: bool = False,
    actor: str,
) -> Contact:
    """Set the person's e-mail address and/or phone number (already normalised:
    ``core/escalation.py``; None clears one), the fields flagged ``set_email`` /
    ``set_phone``; audited ``contact_set`` (which fields, not their values). Returns their
    contact as it now is. :class:`NotFound` for an unknown username."""
    with conn.transaction():
        row = _person(conn, username, lock=True)
        with conn.cursor(row_factory=dict_row) as cur:
            got = cur.execute(
                "UPDATE people SET email = CASE WHEN %s THEN %s ELSE email END,"
                " phone = CASE WHEN %s THEN %s ELSE phone END WHERE id = %s"
                " RETURNING username, display_name, role, email, phone",
                (set_email, email, set_phone, phone, row["id"]),
            ).fetchone()
        assert got is not None
        fields = [f for f, on in (("email", set_email), ("phone", set_phone)) if on]
        _audit(conn, got["username"], "contact_set", actor, {"fields": fields})
    return Contact(got["username"], got["display_name"], got["role"], got["email"], got["phone"])


def add_shift(
    conn: psycopg.Connection[Any],
    username: str,
    starts_at: datetime,
    ends_at: datetime,
    *,
    actor: str,
) -> Shift:
    """A shift for the person; audited ``shift_added``. Refused (:class:`RosterError`)
    for a person who is deactivated or neither an operator nor a shift leader, bad times
    (:func:`~firewatch.core.escalation.check_shift`), or a shift overlapping another of
    theirs; :class:`NotFound` for an unknown username."""
    check_shift(starts_at, ends_at)
    with conn.transaction():
        person = _person(conn, username, lock=True)  # serialises this person's shifts
        if Role(person["role"]) not in DUTY_ROLES:
            raise RosterError(
                f"{person['username']} is a {person['role']}; only operators and shift "
                "leaders hold shifts"
            )
        if not person["active"]:
            raise RosterError(f"{person['username']} is deactivated")
        clash = conn.execute(
            "SELECT id, starts_at, ends_at FROM shifts WHERE person_id = %s"
            " AND starts_at < %s AND ends_at > %s ORDER BY starts_at LIMIT 1",
            (person["id"], ends_at, starts_at),
        ).fetchone()
        if clash is not None:
            raise RosterError(
                f"{person['username']} already has shift {clash[0]} from "
                f"{clash[1].isoformat()} to {clash[2].isoformat()}"
            )
        with conn.cursor(row_factory=dict_row) as cur:
            got = cur.execute(
                "INSERT INTO shifts (person_id, starts_at, ends_at, created_by)"
                " VALUES (%s, %s, %s, %s) RETURNING id",
                (person["id"], starts_at, ends_at, actor),
            ).fetchone()
            assert got is not None
            shift = get_shift(conn, int(got["id"]))
        assert shift is not None
        _audit(
            conn,
            shift.username,
            "shift_added",
            actor,
            {"shift": shift.id, "from": starts_at.isoformat(), "to": ends_at.isoformat()},
        )
    return shift


def get_shift(conn: psycopg.Connection[Any], shift_id: int) -> Shift | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_SHIFT_COLUMNS} FROM shifts s JOIN people p ON p.id = s.person_id"
            " WHERE s.id = %s",
            (shift_id,),
        ).fetchone()
    return None if row is None else _shift(row)


def remove_shift(conn: psycopg.Connection[Any], shift_id: int, *, actor: str) -> Shift:
    """Delete the shift; audited ``shift_removed``. :class:`NotFound` if there is none."""
    with conn.transaction():
        shift = get_shift(conn, shift_id)
        if shift is None:
            raise NotFound(f"no shift {shift_id}")
        conn.execute("DELETE FROM shifts WHERE id = %s", (shift_id,))
        detail = {
            "shift": shift.id,
            "from": shift.starts_at.isoformat(),
            "to": shift.ends_at.isoformat(),
        }
        _audit(conn, shift.username, "shift_removed", actor, detail)
    return shift


def list_shifts(
    conn: psycopg.Connection[Any], *, at: datetime | None = None, after: datetime | None = None
) -> list[Shift]:
    """Shifts in time order: those covering ``at`` when it is given, else those ending
    after ``after`` (current and coming ones), else all."""
    where, params = "", cast(tuple[datetime, ...], ())
    if at is not None:
        where, params = " WHERE s.starts_at <= %s AND s.ends_at > %s", (at, at)
    elif after is not None:
        where, params = " WHERE s.ends_at > %s", (after,)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_SHIFT_COLUMNS} FROM shifts s JOIN people p ON p.id = s.person_id"
            f"{where} ORDER BY s.starts_at, p.username, s.id",
            params,
        ).fetchall()
    return [_shift(r) for r in rows]


def on_duty(conn: psycopg.Connection[Any], at: datetime) -> dict[Role, list[Contact]]:
    """The active operators and shift leaders whose shift covers ``at``, by role (each
    role present, possibly empty), by username; with their contact fields."""
    out: dict[Role, list[Contact]] = {role: [] for role in DUTY_ROLES}
    rows = conn.execute(
        "SELECT DISTINCT p.username, p.display_name, p.role, p.email, p.phone FROM shifts s"
        " JOIN people p ON p.id = s.person_id"
        " WHERE p.active AND p.role = ANY(%s) AND s.starts_at <= %s AND s.ends_at > %s"
        " ORDER BY p.username",
        ([r.value for r in DUTY_ROLES], at, at),
    ).fetchall()
    for username, display_name, role, email, phone in rows:
        out[Role(role)].append(Contact(username, display_name, role, email, phone))
    return out
