"""Who may do what: the role matrix of the HTTP API (issue 12; docs/people.md, "Roles").

Each API route names one :class:`Access` (``firewatch/api/deps.py``: ``Allowed(...)``); the
route walk in ``tests/api/test_roles.py`` checks every route of the OpenAPI schema with
every role against its own copy of this table, so a change here that the table does not
expect fails the build.

Two roles are **scoped**: ``unit`` (a unit's fire-safety manager) sees only its own unit and
``vendor`` only its own devices. Where such a role is admitted, the route narrows what it
returns to the scope (a list is filtered; one record outside the scope answers 403, the same
as a record that exists and is not theirs: the scope must not reveal what exists). The
routes do that with :func:`unit_scope` and :func:`sees_unit`.

Pure: no SQL, no HTTP.
"""

from __future__ import annotations

from enum import StrEnum

from firewatch.core.people import Person, Role

_CENTER = frozenset({Role.OPERATOR, Role.SHIFT_LEADER, Role.ADMIN})
_FIRE_DEPT = frozenset({Role.SUPERVISOR, Role.INSPECTOR})


class Access(StrEnum):
    """What a route does, by which the matrix admits roles."""

    ALERTS_READ = "alerts_read"  # the queue, one alert, the live stream
    ALERTS_ACT = "alerts_act"  # acknowledge, confirm, false alarm, resolve, close; claim
    ALERTS_TAKE_OVER = "alerts_take_over"  # claim (or release) an alert someone else holds
    REGISTRY_READ = "registry_read"  # regions, units, their rollups, the map
    UNIT_READ = "unit_read"  # one unit: its card, rollups, telemetry (scoped roles: their own)
    DEVICE_READ = "device_read"  # device health, a device's rollups (scoped: their own)
    RISK_READ = "risk_read"  # regions' risk, warnings
    UNIT_RISK_READ = "unit_risk_read"  # one unit's risk and its history (unit: its own)
    SUPERVISION_READ = "supervision_read"  # draws and inspections
    HAZARDS_READ = "hazards_read"  # hazards and credit (unit: its own)
    REGISTRY_WRITE = "registry_write"  # units, vendors, installations (issue 14)
    VENDORS_READ = "vendors_read"  # vendors and their installations (vendor: its own)
    DEVICES_WRITE = "devices_write"  # register, import, update, decommission (vendor: own)
    CREDENTIALS_WRITE = "credentials_write"  # issue, rotate, revoke broker logins (vendor: own)
    DEAD_LETTERS_READ = "dead_letters_read"  # rejected messages (vendor: its devices')
    DEVICE_CHECK = "device_check"  # a device's conformance report (vendor: its own)
    DUTY_CHECK = "duty_check"  # ask a GB/T panel's on-duty person to answer (查岗; issue 17)
    AUTHENTICATED = "authenticated"  # anyone logged in: who am I, log out


MATRIX: dict[Access, frozenset[Role]] = {
    Access.ALERTS_READ: _CENTER | {Role.SUPERVISOR, Role.UNIT},
    Access.ALERTS_ACT: _CENTER,
    Access.ALERTS_TAKE_OVER: frozenset({Role.SHIFT_LEADER, Role.ADMIN}),
    Access.REGISTRY_READ: _CENTER | _FIRE_DEPT,
    Access.UNIT_READ: _CENTER | _FIRE_DEPT | {Role.UNIT},
    Access.DEVICE_READ: _CENTER | _FIRE_DEPT | {Role.UNIT, Role.VENDOR},
    Access.RISK_READ: _CENTER | _FIRE_DEPT,
    Access.UNIT_RISK_READ: _CENTER | _FIRE_DEPT | {Role.UNIT},
    Access.SUPERVISION_READ: _FIRE_DEPT | {Role.ADMIN},
    Access.HAZARDS_READ: _FIRE_DEPT | {Role.ADMIN, Role.UNIT},
    Access.REGISTRY_WRITE: frozenset({Role.ADMIN}),
    Access.VENDORS_READ: _CENTER | {Role.VENDOR},
    Access.DEVICES_WRITE: frozenset({Role.ADMIN, Role.VENDOR}),
    Access.CREDENTIALS_WRITE: frozenset({Role.ADMIN, Role.VENDOR}),
    Access.DEAD_LETTERS_READ: _CENTER | {Role.VENDOR},
    Access.DEVICE_CHECK: _CENTER | {Role.VENDOR},
    # The seats that act on alerts: a duty check is the center's remote patrol of a unit.
    Access.DUTY_CHECK: _CENTER,
    Access.AUTHENTICATED: frozenset(Role),
}


class Forbidden(PermissionError):
    """The person is authenticated but their role (or scope) does not allow this."""


def allowed(person: Person, access: Access) -> bool:
    """Whether ``person``'s role is admitted to ``access`` (scope aside)."""
    return person.role in MATRIX[access]


def check(person: Person, access: Access) -> None:
    """:class:`Forbidden` with a message naming the role and who may, unless allowed."""
    if not allowed(person, access):
        who = ", ".join(sorted(r.value for r in MATRIX[access]))
        raise Forbidden(f"role {person.role.value!r} may not do this ({access.value}: {who})")


def unit_scope(person: Person) -> str | None:
    """The only unit ``person`` may see (role ``unit``), or None: no unit restriction."""
    return person.unit_id if person.role is Role.UNIT else None


def vendor_scope(person: Person) -> str | None:
    """The only vendor whose devices ``person`` may see (role ``vendor``), or None."""
    return person.vendor if person.role is Role.VENDOR else None


def sees_unit(person: Person, unit_id: str) -> bool:
    """Whether ``person`` may see ``unit_id`` by scope (a vendor's units are decided by its
    devices, which the caller checks)."""
    scope = unit_scope(person)
    return scope is None or scope == unit_id


def check_unit(person: Person, unit_id: str) -> None:
    """:class:`Forbidden` unless ``person``'s scope includes ``unit_id``."""
    if not sees_unit(person, unit_id):
        raise Forbidden(f"unit {unit_id!r} is outside your scope (your unit: {person.unit_id})")


def check_device(person: Person, unit_id: str | None, vendor: str | None) -> None:
    """:class:`Forbidden` unless ``person`` may see a device of ``unit_id`` made by
    ``vendor`` (None for either: the device is unknown, which the caller answers 404)."""
    if unit_id is not None and not sees_unit(person, unit_id):
        raise Forbidden(f"that device is outside your scope (your unit: {person.unit_id})")
    own = vendor_scope(person)
    if own is not None and vendor is not None and vendor != own:
        raise Forbidden(f"that device is not one of {own}'s")
