"""The on-duty roster and people's contact fields in PostgreSQL (firewatch/storage/roster.py,
migration 0015): who is on duty at a moment (role, active, half-open shifts), the refusals
(roles without shifts, overlaps, reversed times, unknown names), the database's own checks
of the contact columns, and the audit of every change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.core.escalation import Contact, RosterError
from firewatch.core.people import NotFound, Role
from firewatch.storage import people
from firewatch.storage import roster as store
from tests.builders import city

T0 = datetime(2026, 12, 8, 0, 0, tzinfo=UTC)
H = timedelta(hours=1)


def person(db: psycopg.Connection[Any], username: str, role: Role = Role.OPERATOR) -> None:
    unit = city.UNIT if role is Role.UNIT else None
    people.add_person(db, username=username, role=role, actor="admin1", unit_id=unit)


def events(db: psycopg.Connection[Any], username: str) -> list[tuple[str, str, Any]]:
    rows = db.execute(
        "SELECT event, actor, detail FROM auth_events WHERE username = %s AND event <> "
        "'user_added' ORDER BY id",
        (username,),
    ).fetchall()
    return [(str(e), str(a), d) for e, a, d in rows]


def test_who_is_on_duty(db: psycopg.Connection[Any]) -> None:
    for name in ("li.wei", "wang.fang", "zhao.lei"):
        person(db, name)
    person(db, "chen.jie", Role.SHIFT_LEADER)
    store.set_contact(
        db,
        "li.wei",
        email="li@example.org",
        phone="13800000011",
        set_email=True,
        set_phone=True,
        actor="admin1",
    )
    store.add_shift(db, "li.wei", T0, T0 + 8 * H, actor="admin1")
    store.add_shift(db, "wang.fang", T0 + 8 * H, T0 + 16 * H, actor="admin1")
    store.add_shift(db, "zhao.lei", T0, T0 + 8 * H, actor="admin1")
    store.add_shift(db, "chen.jie", T0 - 4 * H, T0 + 12 * H, actor="admin1")
    people.set_active(db, "zhao.lei", False, actor="admin1")  # deactivated: never on duty

    duty = store.on_duty(db, T0 + 2 * H)
    assert duty == {
        Role.OPERATOR: [Contact("li.wei", "li.wei", "operator", "li@example.org", "13800000011")],
        Role.SHIFT_LEADER: [Contact("chen.jie", "chen.jie", "shift_leader")],
    }
    # half-open: at 08:00 li.wei's shift has ended and wang.fang's begun
    assert [c.key for c in store.on_duty(db, T0 + 8 * H)[Role.OPERATOR]] == ["wang.fang"]
    assert store.on_duty(db, T0 + 20 * H) == {Role.OPERATOR: [], Role.SHIFT_LEADER: []}

    at_two = store.list_shifts(db, at=T0 + 2 * H)
    assert [(s.username, s.active) for s in at_two] == [
        ("chen.jie", True),
        ("li.wei", True),
        ("zhao.lei", False),
    ]
    coming = store.list_shifts(db, after=T0 + 9 * H)
    assert [s.username for s in coming] == ["chen.jie", "wang.fang"]
    assert len(store.list_shifts(db)) == 4
    shift = at_two[1]
    assert shift.covers(T0)
    assert not shift.covers(T0 + 8 * H)
    assert shift.to_json(T0 + H)["on_duty"] is True
    assert shift.to_json(T0 + 9 * H)["on_duty"] is False


def test_refusals(db: psycopg.Connection[Any]) -> None:
    person(db, "li.wei")
    person(db, "sup", Role.SUPERVISOR)
    person(db, "gone")
    people.set_active(db, "gone", False, actor="admin1")
    with pytest.raises(NotFound, match="no user 'nobody'"):
        store.add_shift(db, "nobody", T0, T0 + H, actor="admin1")
    with pytest.raises(RosterError, match="sup is a supervisor; only operators and shift leaders"):
        store.add_shift(db, "sup", T0, T0 + H, actor="admin1")
    with pytest.raises(RosterError, match="gone is deactivated"):
        store.add_shift(db, "gone", T0, T0 + H, actor="admin1")
    with pytest.raises(RosterError, match="must end after it starts"):
        store.add_shift(db, "li.wei", T0, T0 - H, actor="admin1")
    first = store.add_shift(db, "LI.WEI", T0, T0 + 8 * H, actor="admin1")
    with pytest.raises(RosterError, match=f"already has shift {first.id}"):
        store.add_shift(db, "li.wei", T0 + 7 * H, T0 + 9 * H, actor="admin1")
    store.add_shift(db, "li.wei", T0 + 8 * H, T0 + 9 * H, actor="admin1")  # back to back: fine
    with pytest.raises(NotFound, match="no shift 999"):
        store.remove_shift(db, 999, actor="admin1")
    with pytest.raises(NotFound, match="no user"):
        store.set_contact(db, "nobody", email="x@y", set_email=True, actor="admin1")
    assert len(store.list_shifts(db)) == 2


def test_removing_a_shift_takes_the_person_off_duty(db: psycopg.Connection[Any]) -> None:
    person(db, "li.wei")
    shift = store.add_shift(db, "li.wei", T0, T0 + 8 * H, actor="admin1")
    assert store.on_duty(db, T0 + H)[Role.OPERATOR]
    gone = store.remove_shift(db, shift.id, actor="admin2")
    assert gone == shift
    assert store.on_duty(db, T0 + H)[Role.OPERATOR] == []
    assert store.get_shift(db, shift.id) is None
    detail = {"shift": shift.id, "from": T0.isoformat(), "to": (T0 + 8 * H).isoformat()}
    assert events(db, "li.wei") == [
        ("shift_added", "admin1", detail),
        ("shift_removed", "admin2", detail),
    ]


def test_contact_fields_are_set_cleared_and_audited(db: psycopg.Connection[Any]) -> None:
    person(db, "li.wei")
    both = store.set_contact(
        db,
        "li.wei",
        email="li@example.org",
        phone="+8613800000011",
        set_email=True,
        set_phone=True,
        actor="admin1",
    )
    assert (both.email, both.phone) == ("li@example.org", "+8613800000011")
    kept = store.set_contact(db, "li.wei", email=None, set_email=True, actor="admin1")
    assert (kept.email, kept.phone) == (None, "+8613800000011")  # only the e-mail cleared
    assert [(e, d) for e, _, d in events(db, "li.wei")] == [
        ("contact_set", {"fields": ["email", "phone"]}),
        ("contact_set", {"fields": ["email"]}),
    ]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("email", "not-an-address"),
        ("email", "a@" + "b" * 260),
        ("phone", "call me"),
        ("phone", "12"),
    ],
)
def test_the_database_refuses_malformed_contacts(
    db: psycopg.Connection[Any], column: str, value: str
) -> None:
    """The columns' own checks hold whatever writes them (the CLI normalises first)."""
    person(db, "li.wei")
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(f"UPDATE people SET {column} = %s WHERE username = 'li.wei'", (value,))
