"""Inspections in PostgreSQL: who inspected which unit when, for which draw, with what
outcome, and the hazards found (those are ``storage/hazards.py``'s).

Public reads (:func:`list_inspections` with ``public=True``) leave out what is not public
yet: inspections of a draw that is not published. Inspectors appear by their public code
only. Functions run in the caller's transaction. This module owns the SQL of
``inspections`` and ``inspection_inspectors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from firewatch.core.supervision import NotFound


def insert_inspection(
    conn: psycopg.Connection[Any],
    *,
    unit_id: str,
    draw_id: int | None,
    inspected_at: datetime,
    outcome: str,
    false_declaration: bool,
    reinspection_of: int | None,
    notes: str,
    actor: str,
    inspector_ids: Sequence[int],
) -> int:
    """Store an inspection and its inspectors; its id."""
    row = conn.execute(
        "INSERT INTO inspections (unit_id, draw_id, inspected_at, outcome, false_declaration,"
        " reinspection_of, notes, recorded_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id",
        (unit_id, draw_id, inspected_at, outcome, false_declaration, reinspection_of, notes, actor),
    ).fetchone()
    assert row is not None
    inspection_id = int(row[0])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO inspection_inspectors (inspection_id, inspector_id) VALUES (%s, %s)",
            [(inspection_id, i) for i in inspector_ids],
        )
    return inspection_id


def inspection_unit(conn: psycopg.Connection[Any], inspection_id: int) -> str:
    """The unit an inspection was of; :class:`NotFound` otherwise."""
    row = conn.execute("SELECT unit_id FROM inspections WHERE id = %s", (inspection_id,)).fetchone()
    if row is None:
        raise NotFound(f"no inspection {inspection_id}")
    return str(row[0])


_LIST = """
SELECT i.id, i.unit_id, u.name AS unit_name, s.name AS street, i.draw_id, i.inspected_at,
       i.outcome, i.false_declaration, i.reinspection_of, i.notes, i.recorded_by,
       i.recorded_at,
       coalesce((SELECT array_agg(p.code ORDER BY p.code) FROM inspection_inspectors ii
                 JOIN inspectors p ON p.id = ii.inspector_id
                 WHERE ii.inspection_id = i.id), '{}') AS inspectors,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                     'id', h.id, 'category', h.category, 'severity', h.severity,
                     'description', h.description, 'deadline', h.deadline, 'state', h.state,
                     'verified_at', h.verified_at) ORDER BY h.id)
                 FROM hazards h WHERE h.inspection_id = i.id), '[]') AS hazards
FROM inspections i
JOIN units u ON u.id = i.unit_id
LEFT JOIN regions s ON s.id = u.region_id
LEFT JOIN draws d ON d.id = i.draw_id
WHERE (%(id)s::bigint IS NULL OR i.id = %(id)s)
  AND (%(unit)s::text IS NULL OR i.unit_id = %(unit)s)
  AND (%(draw)s::bigint IS NULL OR i.draw_id = %(draw)s)
  AND (%(inspector)s::text IS NULL OR EXISTS (
        SELECT 1 FROM inspection_inspectors ii JOIN inspectors p ON p.id = ii.inspector_id
        WHERE ii.inspection_id = i.id AND lower(p.code) = lower(%(inspector)s)))
  AND (NOT %(public)s OR i.draw_id IS NULL OR d.status = 'published')
ORDER BY i.inspected_at DESC, i.id DESC
LIMIT %(limit)s
"""


def list_inspections(
    conn: psycopg.Connection[Any],
    *,
    unit_id: str | None = None,
    draw_id: int | None = None,
    public: bool = False,
    limit: int = 100,
    inspection_id: int | None = None,
    inspector: str | None = None,
) -> list[dict[str, Any]]:
    """Inspections, newest first, each with its unit's name and street, its inspectors'
    codes and its hazards; ``inspector``: only those that inspector (by code, any case)
    took part in. ``public``: only what may be public (see the module docstring);
    the caller leaves out the notes and hazard descriptions."""
    params = {
        "id": inspection_id,
        "unit": unit_id,
        "draw": draw_id,
        "inspector": inspector,
        "public": public,
        "limit": limit,
    }
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_LIST, params).fetchall()


def get_inspection(conn: psycopg.Connection[Any], inspection_id: int) -> dict[str, Any]:
    rows = list_inspections(conn, inspection_id=inspection_id, limit=1)
    if not rows:
        raise NotFound(f"no inspection {inspection_id}")
    return rows[0]


def false_declarations(
    conn: psycopg.Connection[Any], unit_ids: Sequence[str] | None = None
) -> dict[str, list[tuple[int, datetime]]]:
    """Per unit, the inspections that found a false self-declaration: (id, inspected at)."""
    rows = conn.execute(
        "SELECT unit_id, id, inspected_at FROM inspections WHERE false_declaration"
        " AND (%s::text[] IS NULL OR unit_id = ANY(%s)) ORDER BY inspected_at, id",
        (None if unit_ids is None else list(unit_ids),) * 2,
    ).fetchall()
    out: dict[str, list[tuple[int, datetime]]] = {}
    for unit, i, at in rows:
        out.setdefault(str(unit), []).append((int(i), at))
    return out
