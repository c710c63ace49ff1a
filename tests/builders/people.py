"""People with API tokens, for tests that call the API as someone (issue 12's roles)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from firewatch.core.people import Role
from firewatch.storage import people as store


def token_for(
    db: psycopg.Connection[Any],
    role: Role | str = Role.ADMIN,
    *,
    username: str | None = None,
    unit_id: str | None = None,
    vendor: str | None = None,
) -> str:
    """A fresh API token (valid a day) of ``username`` (made with ``role`` and its scope if
    it does not exist yet; default name: the role's)."""
    role = Role(role)
    name = username or f"t-{role.value.replace('_', '-')}"
    if store.get_person_by_username(db, name) is None:
        store.add_person(db, username=name, role=role, unit_id=unit_id, vendor=vendor, actor="test")
    now = datetime.now(UTC)
    return store.create_token(db, name, "test", now + timedelta(days=1), actor="test", now=now)


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header of ``token``."""
    return {"Authorization": f"Bearer {token}"}


def as_role(
    db: psycopg.Connection[Any], role: Role | str = Role.ADMIN, **kw: Any
) -> dict[str, str]:
    """The headers of a fresh token of someone with ``role`` (see :func:`token_for`)."""
    return bearer(token_for(db, role, **kw))


#: The header of the current test's admin, for module-level helpers of tests against a live
#: server (they have no fixture at hand): filled by the ``admin_token`` fixture
#: (tests/conftest.py) for the test that requests it, emptied after it.
ADMIN: dict[str, str] = {}
