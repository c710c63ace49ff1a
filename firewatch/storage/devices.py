"""The registry's devices in PostgreSQL (migration 0017; issue 14, docs/registry.md): list
and read them; register, change, decommission and import them, with a report per row.

This module owns the registry's reads and writes of ``devices`` (``storage/seed.py`` loads
a TOML city; ``storage/vendors.py`` owns vendors and installations;
``storage/credentials.py`` owns credentials and ``registry_events``). Every change is
audited (``credentials.audit``) in the transaction that makes it. Functions that write run
their own transaction (``conn`` autocommit or idle) unless their docstring says otherwise.

**Who may.** Writers take ``as_vendor``: None for an admin (anything), or the id of the
vendor acting (role ``vendor``). A vendor registers devices only into a unit it serves now
(an open installation), always as its own (a row naming another vendor is refused), and
changes or decommissions only devices whose ``vendor`` is its own:
:class:`~firewatch.core.access.Forbidden` otherwise (``"device 'X' is not one of acme's"``).
An id taken by another vendor's device is a :class:`Conflict` ("taken"), not a 403: a
registration must say why it failed, and that says no more than any global id space does.

**Devices.** Ids are never reused: a decommissioned device keeps its row, its readings and
its history, and registering or updating its id is a :class:`Conflict`. A device's kind
never changes (its stored readings are of that kind). A panel's GB/T 26875.3 address
(``storage/gateway.py`` reads it for the gateway) is held by one device in service at a
time: a :class:`Conflict` names the holder (to a vendor, only its own). Moving a device
to another unit and decommissioning it wake the broker sync (``NOTIFY firewatch_broker``,
in the same transaction: the broker pins a device's topics to its unit); decommissioning
also revokes its broker credential.

**Import.** :func:`import_devices` writes each valid row in its own savepoint inside one
transaction, so a refused row (by the rules above or by the database) is reported and the
others go on; a dry run rolls everything back after every check has run. Each row is
**created**, **updated** (with what changed), **unchanged** or **rejected** with the reason
(:class:`RowResult`; :func:`summarize` counts them).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from firewatch.core.access import Forbidden
from firewatch.core.csv_import import Rejected, RowResult
from firewatch.core.device_import import (
    Conflict,
    DeviceRow,
    NotFound,
    RegistryError,
    check_metadata,
    device_row,
)
from firewatch.core.domain import DeviceKind
from firewatch.core.gateway_rows import DEFAULT_PROFILE
from firewatch.storage import credentials
from firewatch.storage.gateway import address_holder
from firewatch.storage.vendors import served_units, vendor_ids

Mode = Literal["create", "update", "upsert"]


def _rows(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def _one(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> dict[str, Any] | None:
    found = _rows(conn, sql, params)
    return found[0] if found else None


# -- devices: reads --------------------------------------------------------------------------

_DEVICE = (
    "id, unit_id, kind, vendor, model, metadata, gbt_address, gbt_profile, created_at,"
    " decommissioned_at, decommissioned_by, decommission_note"
)


def list_devices(
    conn: psycopg.Connection[Any],
    *,
    unit_id: str | None = None,
    vendor: str | None = None,
    kind: str | None = None,
    include_decommissioned: bool = False,
    after: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Devices by id, filtered (None: any), in service only unless
    ``include_decommissioned``; a page: at most ``limit``, ids after ``after`` (the last
    id of the previous page)."""
    return _rows(
        conn,
        f"SELECT {_DEVICE} FROM devices"
        " WHERE (%(unit)s::text IS NULL OR unit_id = %(unit)s)"
        " AND (%(vendor)s::text IS NULL OR vendor = %(vendor)s)"
        " AND (%(kind)s::text IS NULL OR kind = %(kind)s)"
        " AND (%(all)s OR decommissioned_at IS NULL)"
        " AND (%(after)s::text IS NULL OR id > %(after)s)"
        " ORDER BY id LIMIT %(limit)s",
        {
            "unit": unit_id,
            "vendor": vendor,
            "kind": kind,
            "all": include_decommissioned,
            "after": after,
            "limit": limit,
        },
    )


def get_device(conn: psycopg.Connection[Any], device_id: str) -> dict[str, Any] | None:
    """One device (decommissioned or not), or None."""
    return _one(conn, f"SELECT {_DEVICE} FROM devices WHERE id = %s", (device_id,))


# -- devices: writes -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    """Who writes, and what the rules need to know about them (read once per transaction)."""

    actor: str
    as_vendor: str | None
    served: frozenset[str]  # the acting vendor's units ({} for an admin)
    vendors: frozenset[str]  # every registered vendor

    @classmethod
    def of(cls, conn: psycopg.Connection[Any], actor: str, as_vendor: str | None) -> _Scope:
        served = served_units(conn, as_vendor) if as_vendor is not None else set()
        return cls(actor, as_vendor, frozenset(served), frozenset(vendor_ids(conn)))


def _lock(conn: psycopg.Connection[Any], device_id: str) -> dict[str, Any] | None:
    return _one(conn, f"SELECT {_DEVICE} FROM devices WHERE id = %s FOR UPDATE", (device_id,))


def _not_theirs(device_id: str, vendor: str) -> Forbidden:
    return Forbidden(f"device {device_id!r} is not one of {vendor}'s")


def _decommissioned(stored: dict[str, Any]) -> Conflict:
    return Conflict(
        f"device {stored['id']!r} was decommissioned on {stored['decommissioned_at']:%Y-%m-%d}"
        f" by {stored['decommissioned_by']}; ids are never reused: register the replacement"
        " under a new id"
    )


def _check_unit(conn: psycopg.Connection[Any], scope: _Scope, unit_id: str) -> None:
    """The device may go into ``unit_id``: the acting vendor serves it, or it exists."""
    if scope.as_vendor is not None:
        if unit_id not in scope.served:
            raise Forbidden(
                f"{scope.as_vendor} does not serve unit {unit_id!r} (no open installation;"
                " an admin opens one)"
            )
    elif conn.execute("SELECT 1 FROM units WHERE id = %s", (unit_id,)).fetchone() is None:
        raise RegistryError(f"unknown unit {unit_id!r}")


def _vendor(scope: _Scope, row: DeviceRow, stored: str | None) -> str:
    """The vendor the device will have: the acting vendor's own, or the row's (a
    registered vendor, or '' for unknown), or the stored one when the row names none."""
    if scope.as_vendor is not None:
        if row.vendor not in (None, "", scope.as_vendor):
            raise Forbidden(
                f"vendor {row.vendor!r} is not yours: you register devices as {scope.as_vendor}"
            )
        return scope.as_vendor
    if row.vendor is None:
        return stored if stored is not None else ""
    if row.vendor and row.vendor != stored and row.vendor not in scope.vendors:
        raise RegistryError(
            f"unknown vendor {row.vendor!r}: register it first (firewatch vendor add,"
            " POST /vendors)"
        )
    return row.vendor


def _check_address(
    conn: psycopg.Connection[Any], scope: _Scope, device_id: str, address: str | None
) -> None:
    """:class:`Conflict` if another device in service holds GB/T ``address``: named to an
    admin and to the vendor that owns it, "another device" to any other vendor."""
    if address is None:
        return
    holder = address_holder(conn, address, other_than=device_id)
    if holder is None:
        return
    other, unit, vendor = holder
    mine = scope.as_vendor in (None, vendor)
    who = f"device {other!r} (unit {unit})" if mine else "another device"
    raise Conflict(
        f"gbt_address {address} is taken: {who} has it (an address belongs to one device in"
        " service: change that one's address or decommission it first)"
    )


def _gbt(row: DeviceRow, stored: dict[str, Any] | None) -> tuple[str | None, str]:
    """The GB/T address and profile the device will have: the row's (``''``: no address,
    the default profile), or the stored ones where the row gives none."""
    if row.gbt_address is None:
        address = stored["gbt_address"] if stored is not None else None
    else:
        address = row.gbt_address or None
    if row.gbt_profile is None:
        profile = stored["gbt_profile"] if stored is not None else DEFAULT_PROFILE
    else:
        profile = row.gbt_profile or DEFAULT_PROFILE
    return address, profile


def _apply(conn: psycopg.Connection[Any], scope: _Scope, row: DeviceRow, mode: Mode) -> RowResult:
    """Write one device (in the caller's transaction): create it, or update the stored
    one; see the module docstring for the rules. Raises :class:`RegistryError` (and its
    :class:`NotFound`, :class:`Conflict`) or :class:`Forbidden`."""
    stored = _lock(conn, row.id)
    if stored is None:
        if mode == "update":
            raise NotFound(f"no device {row.id!r}")
        vendor = _vendor(scope, row, None)
        _check_unit(conn, scope, row.unit_id)
        meta = dict(row.meta)
        address, profile = _gbt(row, None)
        _check_address(conn, scope, row.id, address)
        conn.execute(
            "INSERT INTO devices (id, unit_id, kind, vendor, model, metadata, gbt_address,"
            " gbt_profile) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                row.id,
                row.unit_id,
                row.kind.value,
                vendor,
                row.model or "",
                Jsonb(meta),
                address,
                profile,
            ),
        )
        credentials.audit(
            conn,
            actor=scope.actor,
            subject="device",
            subject_id=row.id,
            event="registered",
            detail={
                "unit_id": row.unit_id,
                "kind": row.kind.value,
                "vendor": vendor,
                "model": row.model or "",
                "metadata": meta,
                "gbt_address": address,
                "gbt_profile": profile,
            },
        )
        return RowResult(row.line, row.id, "created")

    if scope.as_vendor is not None and stored["vendor"] != scope.as_vendor:
        if mode == "create":
            raise Conflict(f"device id {row.id!r} is taken")
        raise _not_theirs(row.id, scope.as_vendor)
    if stored["decommissioned_at"] is not None:
        raise _decommissioned(stored)
    if mode == "create":
        raise Conflict(f"device {row.id!r} is already registered (unit {stored['unit_id']})")
    if row.kind.value != stored["kind"]:
        raise RegistryError(
            f"kind cannot change ({stored['kind']} → {row.kind.value}): decommission the"
            " device and register the new one under a new id"
        )
    old_meta: dict[str, Any] = dict(stored["metadata"] or {})
    meta = {k: v for k, v in old_meta.items() if k not in row.clear} | dict(row.meta)
    check_metadata(row.kind, meta)
    address, profile = _gbt(row, stored)
    wanted = {
        "unit_id": row.unit_id,
        "vendor": _vendor(scope, row, stored["vendor"]),
        "model": stored["model"] if row.model is None else row.model,
        "gbt_address": address,
        "gbt_profile": profile,
    }
    if wanted["unit_id"] != stored["unit_id"]:
        _check_unit(conn, scope, row.unit_id)
    if address != stored["gbt_address"]:
        _check_address(conn, scope, row.id, address)
    fields = [f for f, v in wanted.items() if stored[f] != v]
    keys = sorted(k for k in old_meta.keys() | meta.keys() if old_meta.get(k) != meta.get(k))
    changed = fields + keys
    if not changed:
        return RowResult(row.line, row.id, "unchanged")
    conn.execute(
        "UPDATE devices SET unit_id = %s, vendor = %s, model = %s, metadata = %s,"
        " gbt_address = %s, gbt_profile = %s WHERE id = %s",
        (
            wanted["unit_id"],
            wanted["vendor"],
            wanted["model"],
            Jsonb(meta),
            address,
            profile,
            row.id,
        ),
    )
    moved = wanted["unit_id"] != stored["unit_id"]
    if moved:
        # The broker pins a device's topics to its unit: re-pin it at commit.
        credentials.signal_broker(conn)
    credentials.audit(
        conn,
        actor=scope.actor,
        subject="device",
        subject_id=row.id,
        event="moved" if moved else "updated",
        detail={
            "changed": changed,
            "from": {f: stored[f] for f in fields} | {k: old_meta.get(k) for k in keys},
            "to": {f: wanted[f] for f in fields} | {k: meta.get(k) for k in keys},
        },
    )
    return RowResult(row.line, row.id, "updated", changed=changed)


def register_device(
    conn: psycopg.Connection[Any], row: DeviceRow, *, actor: str, as_vendor: str | None
) -> dict[str, Any]:
    """Register a new device (audited ``registered``) and return it. :class:`Conflict` if
    the id is registered (or was: ids are not reused), :class:`Forbidden` for a vendor
    outside its units or naming another vendor, :class:`RegistryError` for an unknown unit
    or vendor."""
    with conn.transaction():
        _apply(conn, _Scope.of(conn, actor, as_vendor), row, "create")
    found = get_device(conn, row.id)
    assert found is not None
    return found


def update_device(
    conn: psycopg.Connection[Any],
    device_id: str,
    *,
    actor: str,
    as_vendor: str | None,
    unit_id: str | None = None,
    vendor: str | None = None,
    model: str | None = None,
    metadata: dict[str, Any] | None = None,
    gbt_address: str | None = None,
    gbt_profile: str | None = None,
    profiles: Collection[str] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Change a device in service: what is given (None: keep; a metadata value None:
    remove the key; ``gbt_address`` / ``gbt_profile`` ``''``: no address, the default
    profile, which must be one of ``profiles``: None, the built-in ones). Returns the
    device and what changed (``[]``: nothing). Moving it to another unit signals the
    broker. Audited ``updated`` or ``moved``. :class:`NotFound`, :class:`Conflict`
    (decommissioned, a GB/T address another device holds), :class:`Forbidden`,
    :class:`RegistryError`."""
    with conn.transaction():
        stored = _lock(conn, device_id)
        if stored is None:
            raise NotFound(f"no device {device_id!r}")
        if as_vendor is not None and stored["vendor"] != as_vendor:
            raise _not_theirs(device_id, as_vendor)
        row = device_row(
            line=1,
            device_id=device_id,
            unit_id=stored["unit_id"] if unit_id is None else unit_id,
            kind=DeviceKind(stored["kind"]),
            vendor=vendor,
            model=model,
            meta=metadata,
            gbt_address=gbt_address,
            gbt_profile=gbt_profile,
            profiles=profiles,
        )
        result = _apply(conn, _Scope.of(conn, actor, as_vendor), row, "update")
    found = get_device(conn, device_id)
    assert found is not None
    return found, result.changed


def decommission_device(
    conn: psycopg.Connection[Any],
    device_id: str,
    *,
    actor: str,
    as_vendor: str | None,
    note: str = "",
) -> dict[str, Any]:
    """Take a device out of service for good: its row, readings, alerts and audit stay;
    ingest stops routing it, its broker credential is revoked and the broker sync is
    signalled, in this transaction (audited ``decommissioned``). Returns the device.
    :class:`NotFound`, :class:`Forbidden` (another vendor's), :class:`Conflict` (done
    already)."""
    with conn.transaction():
        stored = _lock(conn, device_id)
        if stored is None:
            raise NotFound(f"no device {device_id!r}")
        if as_vendor is not None and stored["vendor"] != as_vendor:
            raise _not_theirs(device_id, as_vendor)
        if stored["decommissioned_at"] is not None:
            raise Conflict(
                f"device {device_id!r} was decommissioned already, on"
                f" {stored['decommissioned_at']:%Y-%m-%d} by {stored['decommissioned_by']}"
            )
        conn.execute(
            "UPDATE devices SET decommissioned_at = now(), decommissioned_by = %s,"
            " decommission_note = %s WHERE id = %s",
            (actor, note, device_id),
        )
        revoked = credentials.revoke(conn, device_id, actor=actor)
        # Also without a credential: the broker drops the device's topics.
        credentials.signal_broker(conn)
        credentials.audit(
            conn,
            actor=actor,
            subject="device",
            subject_id=device_id,
            event="decommissioned",
            detail={"unit_id": stored["unit_id"], "note": note, "credential_revoked": revoked},
        )
    found = get_device(conn, device_id)
    assert found is not None
    return found


class _DryRun(Exception):
    """Rolls the import's transaction back."""


def import_devices(
    conn: psycopg.Connection[Any],
    rows: Sequence[DeviceRow],
    *,
    actor: str,
    as_vendor: str | None,
    rejected: Sequence[Rejected] = (),
    dry_run: bool = False,
) -> list[RowResult]:
    """Create or update ``rows`` (see the module docstring) and return one result per row
    of the file, ``rejected`` (the rows that failed parsing) included, in file order. Each
    row's change is audited like a single registration or update. Database errors other
    than a row's own (an outage) propagate and nothing is written."""
    results = [RowResult(r.line, r.id, "rejected", r.reason) for r in rejected]
    done: list[RowResult] = []
    try:
        with conn.transaction():
            scope = _Scope.of(conn, actor, as_vendor)
            for row in rows:
                try:
                    with conn.transaction():
                        done.append(_apply(conn, scope, row, "upsert"))
                except (RegistryError, Forbidden) as err:
                    done.append(RowResult(row.line, row.id, "rejected", str(err)))
                except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as err:
                    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                    done.append(RowResult(row.line, row.id, "rejected", f"database: {reason}"))
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return sorted(results + done, key=lambda r: r.line)
