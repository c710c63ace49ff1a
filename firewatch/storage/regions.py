"""Reading the registry's tiers for the API (``regions``, ``units``, ``devices``): the
region tree with unit counts, one region with its children, units by region and class, a
unit with its devices. Writing the registry is ``storage/seed.py`` (a TOML city) and
``storage/units.py`` (the CSV import).

Units are returned with the supervision class under the import's and the API's name
(``ordinary`` for the registry's ``general``, ``core/unit_import.py``) and their type
(``units.category``) as ``type``.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from firewatch.core.unit_import import CATEGORY_OF_SUPERVISION, SUPERVISION_OF_CATEGORY

_REGIONS = """
SELECT g.id, g.parent_id, g.level, g.name, count(u.id) AS own_units
FROM regions g LEFT JOIN units u ON u.region_id = g.id
GROUP BY g.id ORDER BY g.level, g.id
"""


def _rows(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def region_tree(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every region as a tree, roots (cities) first: ``{id, name, level, units, children}``
    where ``units`` counts the units in the region and below it. Children are ordered by
    id."""
    rows = _rows(conn, _REGIONS)
    nodes = {
        r["id"]: {
            "id": r["id"],
            "name": r["name"],
            "level": r["level"],
            "units": int(r["own_units"]),
            "children": [],
        }
        for r in rows
    }
    roots: list[dict[str, Any]] = []
    for r in sorted(rows, key=lambda r: r["id"]):
        node = nodes[r["id"]]
        parent = nodes.get(r["parent_id"]) if r["parent_id"] else None
        (parent["children"] if parent is not None else roots).append(node)

    def total(node: dict[str, Any]) -> int:
        node["units"] += sum(total(c) for c in node["children"])
        return int(node["units"])

    for root in roots:
        total(root)
    return roots


def find_region(conn: psycopg.Connection[Any], region_id: str) -> dict[str, Any] | None:
    """The region (``{id, name, level, parent_id, units, children}``, ``units`` counting
    the whole subtree), its direct children with their unit counts, and for a street its
    units (``unit_list``); None if there is no such region."""
    tree = region_tree(conn)
    stack = list(tree)
    parent_of: dict[str, str | None] = {n["id"]: None for n in tree}
    found: dict[str, Any] | None = None
    while stack:
        node = stack.pop()
        if node["id"] == region_id:
            found = node
            break
        for c in node["children"]:
            parent_of[c["id"]] = node["id"]
            stack.append(c)
    if found is None:
        return None
    children = [{k: c[k] for k in ("id", "name", "level", "units")} for c in found["children"]]
    out = {
        "id": found["id"],
        "name": found["name"],
        "level": found["level"],
        "parent_id": parent_of.get(region_id),
        "units": found["units"],
        "children": children,
    }
    if found["level"] == "street":
        out["unit_list"] = list_units(conn, region=region_id, limit=10_000)
    return out


_UNITS = """
WITH RECURSIVE scope (id) AS (
    SELECT id FROM regions WHERE id = %(region)s
    UNION ALL
    SELECT g.id FROM regions g JOIN scope s ON g.parent_id = s.id
)
SELECT u.id, u.name, u.region_id, u.supervision, u.category, u.building_class
FROM units u
WHERE (%(region)s::text IS NULL OR u.region_id IN (SELECT id FROM scope))
  AND (%(supervision)s::text IS NULL OR u.supervision = %(supervision)s)
ORDER BY u.id
LIMIT %(limit)s
"""


def _unit_out(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "name": r["name"],
        "street": r["region_id"],
        "category": CATEGORY_OF_SUPERVISION.get(r["supervision"], r["supervision"]),
        "type": r["category"],
        "building_class": r["building_class"],
    }


def list_units(
    conn: psycopg.Connection[Any],
    *,
    region: str | None = None,
    category: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Units in ``region`` (any level: everything below it) of supervision class
    ``category`` (``high_risk``, ``key``, ``ordinary``), ordered by id, at most ``limit``:
    ``{id, name, street, category, type, building_class}``."""
    supervision = SUPERVISION_OF_CATEGORY.get(category) if category is not None else None
    if category is not None and supervision is None:
        return []
    params = {"region": region, "supervision": supervision, "limit": limit}
    return [_unit_out(r) for r in _rows(conn, _UNITS, params)]


def region_exists(conn: psycopg.Connection[Any], region_id: str) -> str | None:
    """The region's level, or None if there is no such region."""
    row = conn.execute("SELECT level FROM regions WHERE id = %s", (region_id,)).fetchone()
    return None if row is None else str(row[0])


_UNIT = """
SELECT u.id, u.name, u.region_id, u.supervision, u.category, u.building_class, u.address,
       u.latitude, u.longitude, u.contacts, s.parent_id AS district_id
FROM units u LEFT JOIN regions s ON s.id = u.region_id
WHERE u.id = %s
"""


def find_unit(conn: psycopg.Connection[Any], unit_id: str) -> dict[str, Any] | None:
    """The unit with its address, location, district, contacts (``responsible`` and
    ``maintenance``: name and phone) and devices (``{id, kind, vendor, model, gbt_address}``),
    or None."""
    rows = _rows(conn, _UNIT, (unit_id,))
    if not rows:
        return None
    r = rows[0]
    devices = _rows(
        conn,
        "SELECT id, kind, vendor, model, gbt_address FROM devices WHERE unit_id = %s ORDER BY id",
        (unit_id,),
    )
    contacts = r["contacts"] if isinstance(r["contacts"], dict) else {}
    return {
        **_unit_out(r),
        "district": r["district_id"],
        "address": r["address"],
        "latitude": r["latitude"],
        "longitude": r["longitude"],
        "responsible": contacts.get("responsible"),
        "maintenance": contacts.get("maintenance"),
        "devices": devices,
    }


def unit_exists(conn: psycopg.Connection[Any], unit_id: str) -> bool:
    """Whether there is a unit with that id."""
    return conn.execute("SELECT 1 FROM units WHERE id = %s", (unit_id,)).fetchone() is not None


def unit_contacts(conn: psycopg.Connection[Any], unit_id: str) -> tuple[str, dict[str, Any]] | None:
    """The unit's name and contacts (``responsible``, ``maintenance``: name and phone), for
    the notifications written about it; None if there is no such unit. Runs in the
    caller's transaction."""
    row = conn.execute("SELECT name, contacts FROM units WHERE id = %s", (unit_id,)).fetchone()
    if row is None:
        return None
    return str(row[0]), dict(row[1] or {})


def device_unit(conn: psycopg.Connection[Any], device_id: str) -> str | None:
    """The unit a registered device belongs to, or None if there is no such device."""
    row = conn.execute("SELECT unit_id FROM devices WHERE id = %s", (device_id,)).fetchone()
    return None if row is None else str(row[0])
