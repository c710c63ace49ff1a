"""People, API tokens and their audit in PostgreSQL (firewatch/storage/people.py, migration
0012): scopes checked by the database too, tokens valid until expiry and not after, revoked
and inactive refused, the plaintext never stored, every change audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.core.passwords import hash_password
from firewatch.core.people import Conflict, NotFound, PeopleError, Role, token_prefix
from firewatch.storage import people as store
from tests.builders import city
from tests.helpers import scalar

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def events(db: psycopg.Connection[Any], username: str) -> list[tuple[str, str]]:
    rows = db.execute(
        "SELECT event, actor FROM auth_events WHERE username = %s ORDER BY id", (username,)
    ).fetchall()
    return [(str(e), str(a)) for e, a in rows]


def add(db: psycopg.Connection[Any], username: str = "li.wei", **kw: Any) -> Any:
    kw.setdefault("role", Role.OPERATOR)
    return store.add_person(db, username=username, actor="admin1", **kw)


def test_a_person_is_added_listed_and_found(db: psycopg.Connection[Any]) -> None:
    li = add(db, "Li.Wei", display_name="Li Wei", password_hash=hash_password("a" * 12))
    unit = add(db, "wd-manager", role=Role.UNIT, unit_id=city.UNIT)
    vendor = add(db, "acme-bot", role=Role.VENDOR, vendor="acme")
    assert li.username == "li.wei"
    assert li.display_name == "Li Wei"
    assert li.has_password
    assert li.password_changed_at is not None
    assert unit.unit_id == city.UNIT
    assert unit.display_name == "wd-manager"
    assert not unit.has_password
    assert unit.password_changed_at is None
    assert vendor.vendor == "acme"
    assert vendor.unit_id is None
    assert [p.username for p in store.list_people(db)] == ["acme-bot", "li.wei", "wd-manager"]
    assert store.get_person_by_username(db, "LI.WEI") == li
    assert store.get_person(db, li.id) == li
    assert store.get_person_by_username(db, "nobody") is None
    assert events(db, "li.wei") == [("user_added", "admin1"), ("password_set", "admin1")]
    assert events(db, "wd-manager") == [("user_added", "admin1")]


def test_refusals_say_why_and_leave_nothing(db: psycopg.Connection[Any]) -> None:
    add(db)
    with pytest.raises(Conflict, match="taken"):
        add(db, "LI.WEI")
    with pytest.raises(NotFound, match="no unit 'U-NOPE'"):
        add(db, "ghost", role=Role.UNIT, unit_id="U-NOPE")
    with pytest.raises(PeopleError, match="needs the unit"):
        add(db, "ghost", role=Role.UNIT)
    with pytest.raises(PeopleError, match="3-64"):
        add(db, "x")
    assert scalar(db, "SELECT count(*) FROM people") == 1
    assert scalar(db, "SELECT count(*) FROM auth_events") == 1


@pytest.mark.parametrize(
    ("role", "unit", "vendor"),
    [
        ("unit", None, None),
        ("vendor", None, None),
        ("operator", city.UNIT, None),
        ("operator", None, "Acme"),
        ("root", None, None),
    ],
)
def test_the_database_checks_roles_and_scopes_too(
    db: psycopg.Connection[Any], role: str, unit: str | None, vendor: str | None
) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            "INSERT INTO people (username, display_name, role, unit_id, vendor)"
            " VALUES ('x-y-z', 'x', %s, %s, %s)",
            (role, unit, vendor),
        )


def test_a_token_works_until_it_expires(db: psycopg.Connection[Any]) -> None:
    li = add(db)
    token = store.create_token(db, li, "gateway", T0 + 90 * DAY, actor="admin1", now=T0)
    assert token.startswith("fw_")
    assert len(token) == 46
    assert store.token_owner(db, token, T0) == li
    assert store.token_owner(db, token, T0 + 90 * DAY - timedelta(seconds=1)) == li
    assert store.token_owner(db, token, T0 + 90 * DAY) is None
    assert store.token_owner(db, token, T0 + 91 * DAY) is None
    assert events(db, "li.wei")[1:] == [
        ("token_created", "admin1"),
        ("token_used_expired", "api"),  # a day apart: both audited
        ("token_used_expired", "api"),
    ]
    # an unknown or malformed token is simply refused (nothing to attribute it to)
    assert store.token_owner(db, token[:-1] + ("A" if token[-1] != "A" else "B"), T0) is None
    assert store.token_owner(db, "not a token", T0) is None


def test_revoked_and_inactive_are_refused(db: psycopg.Connection[Any]) -> None:
    li, wang = add(db), add(db, "wang")
    a = store.create_token(db, li, "a", T0 + DAY, actor="admin1", now=T0)
    b = store.create_token(db, wang, "b", T0 + DAY, actor="admin1", now=T0)
    info = store.revoke_token(db, token_prefix(a), actor="admin2", now=T0 + timedelta(hours=1))
    assert info.revoked_at == T0 + timedelta(hours=1)
    assert info.username == "li.wei"
    assert store.token_owner(db, a, T0 + timedelta(hours=1)) is None
    again = store.revoke_token(db, token_prefix(a), actor="admin2", now=T0 + timedelta(hours=2))
    assert again.revoked_at == info.revoked_at  # the first revocation stands
    with pytest.raises(NotFound):
        store.revoke_token(db, "fw_zzzzz", actor="admin2", now=T0)

    assert store.token_owner(db, b, T0) == wang
    store.set_active(db, "wang", False, actor="admin2")
    assert store.token_owner(db, b, T0 + timedelta(minutes=5)) is None
    with pytest.raises(Conflict, match="deactivated"):
        store.create_token(db, "wang", "c", T0 + DAY, actor="admin1", now=T0)
    assert [e for e, _ in events(db, "li.wei")] == [
        "user_added",
        "token_created",
        "token_revoked",
        "token_rejected",
    ]
    assert events(db, "wang")[-2:] == [("deactivated", "admin2"), ("token_rejected", "api")]
    assert [t.state(T0 + DAY / 2) for t in store.list_tokens(db, "li.wei")] == ["revoked"]


def test_refused_tokens_and_last_use_are_written_at_most_once_a_minute(
    db: psycopg.Connection[Any],
) -> None:
    li = add(db)
    token = store.create_token(db, li, "gw", T0 + DAY, actor="admin1", now=T0)
    for s in (0, 10, 59, 61):
        store.token_owner(db, token, T0 + timedelta(seconds=s))
    (info,) = store.list_tokens(db, "li.wei")
    assert info.last_used_at == T0 + timedelta(seconds=61)
    store.token_owner(db, token, T0 + timedelta(seconds=90))
    assert store.list_tokens(db, "li.wei")[0].last_used_at == T0 + timedelta(seconds=61)

    for s in (0, 5, 30, 61):
        store.token_owner(db, token, T0 + DAY + timedelta(seconds=s))
    assert [e for e, _ in events(db, "li.wei")].count("token_used_expired") == 2


def test_the_plaintext_token_is_never_stored(db: psycopg.Connection[Any]) -> None:
    li = add(db)
    token = store.create_token(db, li, "gw", T0 + DAY, actor="admin1", now=T0)
    store.token_owner(db, token, T0)
    store.token_owner(db, token, T0 + 2 * DAY)
    store.revoke_token(db, token_prefix(token), actor="admin1", now=T0)
    secret = token[len(token_prefix(token)) :]
    for table in ("api_tokens", "auth_events", "people"):
        # every column of every row, as text (bytea as hex) and as raw bytes
        texts = db.execute(f"SELECT t::text FROM {table} t").fetchall()
        assert texts, table
        for (text,) in texts:
            assert secret not in text, table  # the token minus its public prefix
    stored = scalar(db, "SELECT token_sha256 FROM api_tokens")
    assert bytes(stored) != token.encode()
    assert len(bytes(stored)) == 32
    assert token.encode() not in bytes(stored)


def test_set_password_replaces_the_hash_and_is_audited(db: psycopg.Connection[Any]) -> None:
    add(db, role=Role.ADMIN)
    before = scalar(db, "SELECT password_hash FROM people WHERE username = 'li.wei'")
    assert before is None
    assert store.password_hash_of(db, "li.wei") is None
    hashed = hash_password("b" * 16)
    person = store.set_password(db, "li.wei", hashed, actor="admin2")
    assert person.has_password
    assert person.password_changed_at is not None
    assert store.password_hash_of(db, "li.wei") == hashed
    store.set_active(db, "li.wei", False, actor="admin2")
    assert store.password_hash_of(db, "li.wei") is None  # inactive: no login
    with pytest.raises(NotFound):
        store.set_password(db, "nobody", hashed, actor="admin2")
    assert events(db, "li.wei")[1:] == [("password_set", "admin2"), ("deactivated", "admin2")]
    # deactivating again changes nothing and is not audited again
    store.set_active(db, "li.wei", False, actor="admin2")
    assert len(events(db, "li.wei")) == 3


def test_a_token_must_expire_after_it_is_made_and_have_a_name(
    db: psycopg.Connection[Any],
) -> None:
    li = add(db)
    with pytest.raises(PeopleError, match="expire after"):
        store.create_token(db, li, "gw", T0, actor="admin1", now=T0)
    with pytest.raises(PeopleError, match="needs a name"):
        store.create_token(db, li, " ", T0 + DAY, actor="admin1", now=T0)
    with pytest.raises(NotFound):
        store.create_token(db, "nobody", "gw", T0 + DAY, actor="admin1", now=T0)
    assert scalar(db, "SELECT count(*) FROM api_tokens") == 0


def test_a_vendor_account_must_name_a_registered_vendor(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(NotFound, match="no vendor 'Acme': register it first"):
        add(db, "acme-typo", role=Role.VENDOR, vendor="Acme")
    assert store.get_person_by_username(db, "acme-typo") is None
