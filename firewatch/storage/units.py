"""The units of the registry (``units``): the bulk import from CSV rows, one row at a time.

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
"""

from __future__ import annotations

import copy
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from firewatch.core.unit_import import Contact, Rejected, UnitRow

Outcome = Literal["created", "updated", "unchanged", "rejected"]


@dataclass(frozen=True)
class RowResult:
    """What became of one row of the file."""

    line: int
    unit_id: str
    outcome: Outcome
    reason: str = ""  # why it was rejected
    changed: list[str] = field(default_factory=list)  # what an update changed

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "id": self.unit_id, "outcome": self.outcome}
        if self.reason:
            out["reason"] = self.reason
        if self.changed:
            out["changed"] = self.changed
        return out


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


def _write(
    cur: psycopg.Cursor[dict[str, Any]], row: UnitRow, columns: Collection[str]
) -> RowResult:
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
                        done.append(_write(cur, row, columns))
                except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as err:
                    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                    done.append(RowResult(row.line, row.id, "rejected", f"database: {reason}"))
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return sorted(results + done, key=lambda r: r.line)


def summarize(results: Sequence[RowResult]) -> dict[str, int]:
    """How many rows had each outcome."""
    out = {"created": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    for r in results:
        out[r.outcome] += 1
    return out
