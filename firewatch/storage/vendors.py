"""Vendors, installations and the registry's devices, in PostgreSQL (migration 0017; issue
14, docs/registry.md); also the writes of one unit for the API.

This module owns the SQL of ``vendors`` and ``installations`` and the registry's writes of
``devices`` (``storage/seed.py`` loads a TOML city; ``storage/credentials.py`` owns
credentials and ``registry_events``). Every change is audited (``credentials.audit``) in
the transaction that makes it. Functions that write run their own transaction (``conn``
autocommit or idle) unless their docstring says otherwise.

**Who may.** Writers take ``as_vendor``: None for an admin (anything), or the id of the
vendor acting (role ``vendor``). A vendor registers devices only into a unit it serves now
(an open installation), always as its own (a row naming another vendor is refused), and
changes or decommissions only devices whose ``vendor`` is its own:
:class:`~firewatch.core.access.Forbidden` otherwise (``"device 'X' is not one of acme's"``).
An id taken by another vendor's device is a :class:`Conflict` ("taken"), not a 403: a
registration must say why it failed, and that says no more than any global id space does.

**Devices.** Ids are never reused: a decommissioned device keeps its row, its readings and
its history, and registering or updating its id is a :class:`Conflict`. A device's kind
never changes (its stored readings are of that kind). Moving a device to another unit and
decommissioning it wake the broker sync (``NOTIFY firewatch_broker``, in the same
transaction: the broker pins a device's topics to its unit); decommissioning also revokes
its broker credential.

**Import.** :func:`import_devices` writes each valid row in its own savepoint inside one
transaction, so a refused row (by the rules above or by the database) is reported and the
others go on; a dry run rolls everything back after every check has run. Each row is
**created**, **updated** (with what changed), **unchanged** or **rejected** with the reason.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from firewatch.core.access import Forbidden
from firewatch.core.device_import import (
    Conflict,
    DeviceRow,
    NotFound,
    RegistryError,
    Rejected,
    check_id,
    check_metadata,
    device_row,
)
from firewatch.core.domain import DeviceKind
from firewatch.core.unit_import import CATEGORY_OF_SUPERVISION, UnitRow
from firewatch.storage import credentials
from firewatch.storage import units as unit_store

Outcome = Literal["created", "updated", "unchanged", "rejected"]
Mode = Literal["create", "update", "upsert"]


@dataclass(frozen=True)
class RowResult:
    """What became of one device row (the shape of ``storage/units.py``'s report)."""

    line: int
    device_id: str
    outcome: Outcome
    reason: str = ""  # why it was rejected
    changed: list[str] = field(default_factory=list)  # what an update changed

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "id": self.device_id, "outcome": self.outcome}
        if self.reason:
            out["reason"] = self.reason
        if self.changed:
            out["changed"] = self.changed
        return out


def summarize(results: Sequence[RowResult]) -> dict[str, int]:
    """How many rows had each outcome."""
    out = {"created": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    for r in results:
        out[r.outcome] += 1
    return out


def _rows(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def _one(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> dict[str, Any] | None:
    found = _rows(conn, sql, params)
    return found[0] if found else None


# -- vendors ---------------------------------------------------------------------------------

_VENDORS = """
SELECT v.id, v.name, v.contact, v.created_at,
       COALESCE(array_agg(i.unit_id ORDER BY i.unit_id) FILTER (WHERE i.id IS NOT NULL),
                '{}') AS units
FROM vendors v LEFT JOIN installations i ON i.vendor_id = v.id AND i.until IS NULL
WHERE %(only)s::text IS NULL OR v.id = %(only)s
GROUP BY v.id ORDER BY v.id
"""


def list_vendors(conn: psycopg.Connection[Any], *, only: str | None = None) -> list[dict[str, Any]]:
    """Every vendor (or only ``only``) as ``{id, name, contact, created_at, units}``, where
    ``units`` are the units it serves now, by id."""
    return _rows(conn, _VENDORS, {"only": only})


def get_vendor(conn: psycopg.Connection[Any], vendor_id: str) -> dict[str, Any] | None:
    """One vendor as :func:`list_vendors` gives it, or None."""
    found = list_vendors(conn, only=vendor_id)
    return found[0] if found else None


def add_vendor(
    conn: psycopg.Connection[Any],
    vendor_id: str,
    name: str,
    *,
    actor: str,
    contact: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Register a vendor (audited ``added``); :class:`Conflict` if the id is taken,
    :class:`RegistryError` for a bad id or an empty name."""
    check_id(vendor_id, "vendor id")
    name = name.strip()
    if not name or len(name) > 200 or "\x00" in name:
        raise RegistryError("a vendor's name is 1 to 200 characters")
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO vendors (id, name, contact) VALUES (%s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING RETURNING id",
            (vendor_id, name, Jsonb(contact or {})),
        ).fetchone()
        if row is None:
            raise Conflict(f"vendor {vendor_id!r} is already registered")
        credentials.audit(
            conn,
            actor=actor,
            subject="vendor",
            subject_id=vendor_id,
            event="added",
            detail={"name": name, "contact": contact or {}},
        )
    found = get_vendor(conn, vendor_id)
    assert found is not None
    return found


def vendor_ids(conn: psycopg.Connection[Any]) -> set[str]:
    """The ids of every registered vendor."""
    return {str(r[0]) for r in conn.execute("SELECT id FROM vendors").fetchall()}


# -- installations ---------------------------------------------------------------------------

_INSTALLATION = "id, vendor_id, unit_id, since, until, created_by, note"


def installations(
    conn: psycopg.Connection[Any], vendor_id: str, *, open_only: bool = False
) -> list[dict[str, Any]]:
    """The vendor's installations, open ones first, then by unit and start."""
    return _rows(
        conn,
        f"SELECT {_INSTALLATION} FROM installations"
        " WHERE vendor_id = %s AND (NOT %s OR until IS NULL)"
        " ORDER BY until IS NOT NULL, unit_id, since",
        (vendor_id, open_only),
    )


def get_installation(conn: psycopg.Connection[Any], installation_id: int) -> dict[str, Any] | None:
    """One installation, or None."""
    return _one(
        conn, f"SELECT {_INSTALLATION} FROM installations WHERE id = %s", (installation_id,)
    )


def served_units(conn: psycopg.Connection[Any], vendor_id: str) -> set[str]:
    """The units ``vendor_id`` serves now (its open installations). Runs in the caller's
    transaction."""
    rows = conn.execute(
        "SELECT unit_id FROM installations WHERE vendor_id = %s AND until IS NULL", (vendor_id,)
    ).fetchall()
    return {str(r[0]) for r in rows}


def install(
    conn: psycopg.Connection[Any], vendor_id: str, unit_id: str, *, actor: str, note: str = ""
) -> dict[str, Any]:
    """Open an installation: ``vendor_id`` serves ``unit_id`` from now (audited
    ``opened``). :class:`NotFound` for an unknown vendor or unit, :class:`Conflict` if it
    serves the unit already."""
    with conn.transaction():
        if get_vendor(conn, vendor_id) is None:
            raise NotFound(f"no vendor {vendor_id!r}")
        if conn.execute("SELECT 1 FROM units WHERE id = %s", (unit_id,)).fetchone() is None:
            raise NotFound(f"no unit {unit_id!r}")
        row = _one(
            conn,
            "INSERT INTO installations (vendor_id, unit_id, created_by, note)"
            " VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (vendor_id, unit_id) WHERE until IS NULL DO NOTHING"
            f" RETURNING {_INSTALLATION}",
            (vendor_id, unit_id, actor, note),
        )
        if row is None:
            since = conn.execute(
                "SELECT id, since FROM installations"
                " WHERE vendor_id = %s AND unit_id = %s AND until IS NULL",
                (vendor_id, unit_id),
            ).fetchone()
            when = f" (installation {since[0]}, since {since[1]:%Y-%m-%d})" if since else ""
            raise Conflict(f"{vendor_id} already serves {unit_id}{when}")
        credentials.audit(
            conn,
            actor=actor,
            subject="installation",
            subject_id=str(row["id"]),
            event="opened",
            detail={"vendor_id": vendor_id, "unit_id": unit_id, "note": note},
        )
    return row


def end_installation(
    conn: psycopg.Connection[Any], installation_id: int, *, actor: str, note: str = ""
) -> dict[str, Any]:
    """End an open installation now (audited ``ended``); it stays as history. The vendor's
    devices in that unit stay registered and its own; it can no longer register devices
    there or move devices there. :class:`NotFound`, or :class:`Conflict` if it has ended."""
    with conn.transaction():
        row = _one(
            conn,
            "UPDATE installations SET until = greatest(now(), since)"
            f" WHERE id = %s AND until IS NULL RETURNING {_INSTALLATION}",
            (installation_id,),
        )
        if row is None:
            old = get_installation(conn, installation_id)
            if old is None:
                raise NotFound(f"no installation {installation_id}")
            raise Conflict(f"installation {installation_id} ended at {old['until']:%Y-%m-%d %H:%M}")
        credentials.audit(
            conn,
            actor=actor,
            subject="installation",
            subject_id=str(installation_id),
            event="ended",
            detail={"vendor_id": row["vendor_id"], "unit_id": row["unit_id"], "note": note},
        )
    return row


def uninstall(
    conn: psycopg.Connection[Any], vendor_id: str, unit_id: str, *, actor: str, note: str = ""
) -> dict[str, Any]:
    """End the open installation of ``vendor_id`` in ``unit_id`` (:func:`end_installation`);
    :class:`NotFound` if there is none."""
    row = conn.execute(
        "SELECT id FROM installations WHERE vendor_id = %s AND unit_id = %s AND until IS NULL",
        (vendor_id, unit_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"{vendor_id} does not serve {unit_id} (no open installation)")
    return end_installation(conn, int(row[0]), actor=actor, note=note)


# -- devices: reads --------------------------------------------------------------------------

_DEVICE = (
    "id, unit_id, kind, vendor, model, metadata, created_at, decommissioned_at,"
    " decommissioned_by, decommission_note"
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
        conn.execute(
            "INSERT INTO devices (id, unit_id, kind, vendor, model, metadata)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (row.id, row.unit_id, row.kind.value, vendor, row.model or "", Jsonb(meta)),
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
    wanted = {
        "unit_id": row.unit_id,
        "vendor": _vendor(scope, row, stored["vendor"]),
        "model": stored["model"] if row.model is None else row.model,
    }
    if wanted["unit_id"] != stored["unit_id"]:
        _check_unit(conn, scope, row.unit_id)
    fields = [f for f, v in wanted.items() if stored[f] != v]
    keys = sorted(k for k in old_meta.keys() | meta.keys() if old_meta.get(k) != meta.get(k))
    changed = fields + keys
    if not changed:
        return RowResult(row.line, row.id, "unchanged")
    conn.execute(
        "UPDATE devices SET unit_id = %s, vendor = %s, model = %s, metadata = %s WHERE id = %s",
        (wanted["unit_id"], wanted["vendor"], wanted["model"], Jsonb(meta), row.id),
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
) -> tuple[dict[str, Any], list[str]]:
    """Change a device in service: what is given (None: keep; a metadata value None:
    remove the key). Returns the device and what changed (``[]``: nothing). Moving it to
    another unit signals the broker. Audited ``updated`` or ``moved``. :class:`NotFound`,
    :class:`Conflict` (decommissioned), :class:`Forbidden`, :class:`RegistryError`."""
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


# -- units: one at a time (the API) ----------------------------------------------------------
# The import's own row writer (storage/units.py), so that one unit written over the API and
# a row of a units file become the same record; here only the audit and the 404/409 rules.


def unit_cells(conn: psycopg.Connection[Any], unit_id: str) -> dict[str, str] | None:
    """The stored unit as the cells of a units-file row (``core/unit_import.py``), or
    None: what a partial change is merged into before it is checked like a row."""
    r = _one(
        conn,
        "SELECT id, name, region_id, supervision, category, building_class, address,"
        " latitude, longitude, contacts FROM units WHERE id = %s",
        (unit_id,),
    )
    if r is None:
        return None
    cells = {
        "id": r["id"],
        "name": r["name"],
        "street": r["region_id"],
        "category": CATEGORY_OF_SUPERVISION.get(r["supervision"], r["supervision"]),
        "type": r["category"],
        "building_class": r["building_class"],
        "address": r["address"],
        "latitude": "" if r["latitude"] is None else repr(float(r["latitude"])),
        "longitude": "" if r["longitude"] is None else repr(float(r["longitude"])),
    }
    contacts = r["contacts"] if isinstance(r["contacts"], dict) else {}
    for role in ("responsible", "maintenance"):
        found = contacts.get(role)
        c: dict[str, Any] = found if isinstance(found, dict) else {}
        cells[f"{role}_name"] = str(c.get("name") or "")
        cells[f"{role}_phone"] = str(c.get("phone") or "")
    return cells


def write_unit(
    conn: psycopg.Connection[Any],
    row: UnitRow,
    columns: Collection[str],
    *,
    actor: str,
    create: bool,
) -> unit_store.RowResult:
    """Create (``create``: :class:`Conflict` if the id exists) or update (:class:`NotFound`
    if it does not) one unit from a checked row; ``columns`` as in the units import (the
    optional fields it manages). Audited ``created`` / ``updated`` with what changed."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        exists = cur.execute("SELECT 1 FROM units WHERE id = %s FOR UPDATE", (row.id,)).fetchone()
        if create and exists is not None:
            raise Conflict(f"unit {row.id!r} exists already")
        if not create and exists is None:
            raise NotFound(f"no unit {row.id!r}")
        result = unit_store._write(cur, row, columns)
        if result.outcome != "unchanged":
            credentials.audit(
                conn,
                actor=actor,
                subject="unit",
                subject_id=row.id,
                event=result.outcome,
                detail={"changed": result.changed} if result.changed else {},
            )
    return result
