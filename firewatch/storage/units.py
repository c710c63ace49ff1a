"""The units of the registry (``units``): the bulk import from CSV rows, and one unit at a
time for the API, both through one row writer.

:func:`import_units` writes the rows that ``core/unit_import.py`` validated, each in its own
savepoint inside one transaction: a row is written whole or not at all (a row the database
refuses is reported rejected, with its error, and the others go on), and the whole import
commits at the end, or rolls back for a dry run (every check, including the database's,
runs; nothing stays). Each row is compared with the stored unit first: **created**,
**updated** (with the fields that changed) or **unchanged**, so importing the same file
twice changes nothing the second time.

What a row manages: name, street (``region_id``), supervision class, type (``category``),
building class always; address, location and the ``responsible`` / ``maintenance``
entries of ``contacts`` when the file has those columns (an empty cell clears them). Other
keys of ``contacts`` (and of a contact: an e-mail …) and ``attributes`` are kept.

:func:`write_row` writes one checked row; the import calls it, and so does
:func:`write_unit`, which creates or updates one unit over the API (with the 404/409 rules
and the audit, ``credentials.audit``), so that a unit written over the API and a row of a
units file become the same record. :func:`unit_cells` gives a stored unit as the cells of
a row: what the API merges a partial change into before checking it like a row.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Collection, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from firewatch.core.csv_import import Rejected, RowResult
from firewatch.core.device_import import Conflict, NotFound
from firewatch.core.unit_import import CATEGORY_OF_SUPERVISION, Contact, UnitRow
from firewatch.storage import credentials


def street_ids(conn: psycopg.Connection[Any]) -> set[str]:
    """The ids of every region of level ``street``: where a unit may be."""
    rows = conn.execute("SELECT id FROM regions WHERE level = 'street'").fetchall()
    return {str(r[0]) for r in rows}


_SELECT = """
SELECT id, name, region_id, supervision, category, building_class, address, latitude,
       longitude, contacts
FROM units WHERE id = %s FOR UPDATE
"""
_INSERT = """
INSERT INTO units (id, name, region_id, supervision, category, building_class, address,
                   latitude, longitude, contacts)
VALUES (%(id)s, %(name)s, %(region_id)s, %(supervision)s, %(category)s, %(building_class)s,
        %(address)s, %(latitude)s, %(longitude)s, %(contacts)s::jsonb)
"""
_UPDATE = """
UPDATE units SET name = %(name)s, region_id = %(region_id)s, supervision = %(supervision)s,
       category = %(category)s, building_class = %(building_class)s, address = %(address)s,
       latitude = %(latitude)s, longitude = %(longitude)s, contacts = %(contacts)s::jsonb
WHERE id = %(id)s
"""
_FIELDS = (
    "name",
    "region_id",
    "supervision",
    "category",
    "building_class",
    "address",
    "latitude",
    "longitude",
    "contacts",
)


def _contact(old: Any, new: Contact) -> dict[str, Any]:
    kept = dict(old) if isinstance(old, dict) else {}
    return {**kept, "name": new.name, "phone": new.phone}


def _wanted(
    row: UnitRow, columns: Collection[str], stored: dict[str, Any] | None
) -> dict[str, Any]:
    """The unit as the row says it should be, keeping what the file does not manage."""
    base = stored or {"address": "", "latitude": None, "longitude": None, "contacts": {}}
    contacts = copy.deepcopy(dict(base["contacts"] or {}))
    for role, contact in (("responsible", row.responsible), ("maintenance", row.maintenance)):
        if f"{role}_name" not in columns:
            continue
        if contact is None:
            contacts.pop(role, None)
        else:
            contacts[role] = _contact(contacts.get(role), contact)
    return {
        "id": row.id,
        "name": row.name,
        "region_id": row.street,
        "supervision": row.supervision,
        "category": row.category,
        "building_class": row.building_class,
        "address": row.address if "address" in columns else base["address"],
        "latitude": row.latitude if "latitude" in columns else base["latitude"],
        "longitude": row.longitude if "longitude" in columns else base["longitude"],
        "contacts": contacts,
    }


def write_row(
    cur: psycopg.Cursor[dict[str, Any]], row: UnitRow, columns: Collection[str]
) -> RowResult:
    """Write one checked ``row`` (``columns``: the file's header, see the module docstring)
    with ``cur`` (a ``dict_row`` cursor), in the caller's transaction: insert the unit, or
    update the stored one where it differs. Returns created, updated (what changed) or
    unchanged; the database's errors propagate."""
    stored = cur.execute(_SELECT, (row.id,)).fetchone()
    wanted = _wanted(row, columns, stored)
    params = {**wanted, "contacts": json.dumps(wanted["contacts"], ensure_ascii=False)}
    if stored is None:
        cur.execute(_INSERT, params)
        return RowResult(row.line, row.id, "created")
    changed = [f for f in _FIELDS if stored[f] != wanted[f]]
    if not changed:
        return RowResult(row.line, row.id, "unchanged")
    cur.execute(_UPDATE, params)
    return RowResult(row.line, row.id, "updated", changed=changed)


class _DryRun(Exception):
    """Rolls the import's transaction back."""


def import_units(
    conn: psycopg.Connection[Any],
    rows: Sequence[UnitRow],
    columns: Collection[str],
    *,
    rejected: Sequence[Rejected] = (),
    dry_run: bool = False,
) -> list[RowResult]:
    """Write ``rows`` (see the module docstring) and return one result per row of the file,
    ``rejected`` (the rows that failed validation) included, in file order. ``columns``:
    the file's header, which decides the optional fields the import manages. Runs its own
    transaction (``conn`` autocommit or idle); database errors other than a row's own
    (an outage) propagate and nothing is written."""
    results = [RowResult(r.line, r.id, "rejected", r.reason) for r in rejected]
    done: list[RowResult] = []
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            for row in rows:
                try:
                    with conn.transaction():
                        done.append(write_row(cur, row, columns))
                except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as err:
                    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                    done.append(RowResult(row.line, row.id, "rejected", f"database: {reason}"))
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return sorted(results + done, key=lambda r: r.line)


def unit_cells(conn: psycopg.Connection[Any], unit_id: str) -> dict[str, str] | None:
    """The stored unit as the cells of a units-file row (``core/unit_import.py``), or
    None: what a partial change is merged into before it is checked like a row."""
    with conn.cursor(row_factory=dict_row) as cur:
        r = cur.execute(
            "SELECT id, name, region_id, supervision, category, building_class, address,"
            " latitude, longitude, contacts FROM units WHERE id = %s",
            (unit_id,),
        ).fetchone()
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
) -> RowResult:
    """Create (``create``: :class:`Conflict` if the id exists) or update (:class:`NotFound`
    if it does not) one unit from a checked row; ``columns`` as in the units import (the
    optional fields it manages). Audited ``created`` / ``updated`` with what changed."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        exists = cur.execute("SELECT 1 FROM units WHERE id = %s FOR UPDATE", (row.id,)).fetchone()
        if create and exists is not None:
            raise Conflict(f"unit {row.id!r} exists already")
        if not create and exists is None:
            raise NotFound(f"no unit {row.id!r}")
        result = write_row(cur, row, columns)
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
