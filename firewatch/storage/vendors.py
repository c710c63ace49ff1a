"""Vendors and their installations in PostgreSQL (migration 0017; issue 14,
docs/registry.md): who makes devices, and which units each serves now and served before.

This module owns the SQL of ``vendors`` and ``installations``. An installation says that a
vendor serves a unit from ``since`` until ``until`` (open while ``until`` is NULL); a vendor
registers devices only into units it serves now (``storage/devices.py`` asks
:func:`served_units`). Installations are never deleted: ending one keeps it as history, and
the vendor's devices there stay registered and its own. Every change is audited
(``credentials.audit``) in the transaction that makes it. Functions that write run their own
transaction (``conn`` autocommit or idle) unless their docstring says otherwise. They take
no ``as_vendor``: registering a vendor and opening or ending an installation are an admin's
(``registry_write`` in the API, ``firewatch vendor add|install|uninstall``).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from firewatch.core.device_import import Conflict, NotFound, RegistryError, check_id
from firewatch.storage import credentials


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
