"""Inspectors, their declared ties to units, and the focus list, in PostgreSQL: what a draw
draws from besides the units (``firewatch/core/draw.py``).

Functions run in the caller's transaction. This module owns the SQL of ``inspectors``,
``inspector_ties`` and ``supervision_focus``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from firewatch.core.draw import DECLARED_TIE_KINDS
from firewatch.core.supervision import Conflict, Inspector, NotFound, SupervisionError, Tie
from firewatch.storage.regions import unit_exists


def _inspector(row: Any) -> Inspector:
    return Inspector(
        id=int(row["id"]),
        code=row["code"],
        name=row["name"],
        phone=row["phone"],
        organisation=row["organisation"],
        active=bool(row["active"]),
    )


def add_inspector(
    conn: psycopg.Connection[Any],
    *,
    code: str,
    name: str,
    phone: str = "",
    organisation: str = "",
) -> Inspector:
    """A new active inspector; :class:`Conflict` when the code is taken,
    :class:`SupervisionError` when it is not a valid public code."""
    if not name.strip():
        raise SupervisionError("an inspector needs a name")
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                "INSERT INTO inspectors (code, name, phone, organisation) VALUES (%s, %s, %s, %s)"
                " RETURNING *",
                (code, name.strip(), phone.strip(), organisation.strip()),
            ).fetchone()
    except psycopg.errors.UniqueViolation:
        raise Conflict(f"inspector code {code!r} is taken") from None
    except psycopg.errors.CheckViolation:
        raise SupervisionError(
            f"inspector code {code!r}: 1-32 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        ) from None
    assert row is not None
    return _inspector(row)


def set_active(conn: psycopg.Connection[Any], code: str, active: bool) -> Inspector:
    """Take an inspector out of (or back into) future draws."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE inspectors SET active = %s WHERE code = %s RETURNING *", (active, code)
        ).fetchone()
    if row is None:
        raise NotFound(f"no inspector {code!r}")
    return _inspector(row)


def get_inspector(conn: psycopg.Connection[Any], code: str) -> Inspector:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM inspectors WHERE code = %s", (code,)).fetchone()
    if row is None:
        raise NotFound(f"no inspector {code!r}")
    return _inspector(row)


def list_inspectors(conn: psycopg.Connection[Any], *, active_only: bool = False) -> list[Inspector]:
    """Inspectors by code."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM inspectors WHERE active OR NOT %s ORDER BY code", (active_only,)
        ).fetchall()
    return [_inspector(r) for r in rows]


def inspector_ids(conn: psycopg.Connection[Any], codes: Sequence[str]) -> dict[str, int]:
    """Code -> id; :class:`NotFound` naming the codes nobody has."""
    rows = conn.execute(
        "SELECT code, id FROM inspectors WHERE code = ANY(%s)", (list(codes),)
    ).fetchall()
    found = {str(code): int(i) for code, i in rows}
    missing = sorted(set(codes) - set(found))
    if missing:
        raise NotFound(f"no inspector {', '.join(repr(c) for c in missing)}")
    return found


def _unit_exists(conn: psycopg.Connection[Any], unit_id: str) -> None:
    if not unit_exists(conn, unit_id):
        raise NotFound(f"no unit {unit_id!r}")


def add_tie(
    conn: psycopg.Connection[Any],
    *,
    code: str,
    unit_id: str,
    kind: str,
    actor: str,
    note: str = "",
) -> Tie:
    """Declare a tie (idempotent: declaring it again keeps the first declaration)."""
    if kind not in DECLARED_TIE_KINDS:
        raise SupervisionError(
            f"unknown tie kind {kind!r}; declared ties are {', '.join(DECLARED_TIE_KINDS)} "
            "(inspected_last_period is derived from the previous draw)"
        )
    inspector = get_inspector(conn, code)
    _unit_exists(conn, unit_id)
    conn.execute(
        "INSERT INTO inspector_ties (inspector_id, unit_id, kind, note, declared_by)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (inspector.id, unit_id, kind, note, actor),
    )
    return Tie(code, unit_id, kind, note)


def remove_tie(conn: psycopg.Connection[Any], *, code: str, unit_id: str, kind: str) -> bool:
    """Withdraw a declared tie; False when there was none."""
    inspector = get_inspector(conn, code)
    cur = conn.execute(
        "DELETE FROM inspector_ties WHERE inspector_id = %s AND unit_id = %s AND kind = %s",
        (inspector.id, unit_id, kind),
    )
    return cur.rowcount > 0


def ties(conn: psycopg.Connection[Any], *, code: str | None = None) -> list[Tie]:
    """Declared ties (of one inspector, or all), by inspector code and unit."""
    rows = conn.execute(
        "SELECT i.code, t.unit_id, t.kind, t.note FROM inspector_ties t"
        " JOIN inspectors i ON i.id = t.inspector_id"
        " WHERE %s::text IS NULL OR i.code = %s ORDER BY i.code, t.unit_id, t.kind",
        (code, code),
    ).fetchall()
    return [Tie(str(c), str(u), str(k), str(n)) for c, u, k, n in rows]


def tied_codes(conn: psycopg.Connection[Any], unit_id: str) -> set[str]:
    """Codes of the inspectors with a declared tie to the unit."""
    rows = conn.execute(
        "SELECT i.code FROM inspector_ties t JOIN inspectors i ON i.id = t.inspector_id"
        " WHERE t.unit_id = %s",
        (unit_id,),
    ).fetchall()
    return {str(r[0]) for r in rows}


# -- the focus list -----------------------------------------------------------------------------


def add_focus(conn: psycopg.Connection[Any], *, unit_id: str, reason: str, actor: str) -> None:
    """Put a unit on the focus list (again: the reason is updated)."""
    if not reason.strip():
        raise SupervisionError("putting a unit on the focus list needs a reason")
    _unit_exists(conn, unit_id)
    conn.execute(
        "INSERT INTO supervision_focus (unit_id, reason, added_by) VALUES (%s, %s, %s)"
        " ON CONFLICT (unit_id) DO UPDATE SET reason = EXCLUDED.reason,"
        " added_by = EXCLUDED.added_by, added_at = now()",
        (unit_id, reason.strip(), actor),
    )


def remove_focus(conn: psycopg.Connection[Any], unit_id: str) -> bool:
    """Take a unit off the focus list; False when it was not on it."""
    cur = conn.execute("DELETE FROM supervision_focus WHERE unit_id = %s", (unit_id,))
    return cur.rowcount > 0


def focus_list(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """The focus list with each unit's name and current risk level (blue without one)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT f.unit_id, u.name, coalesce(r.level, 'blue') AS level, f.reason,"
            " f.added_by, f.added_at FROM supervision_focus f JOIN units u ON u.id = f.unit_id"
            " LEFT JOIN risk_current r ON r.unit_id = f.unit_id ORDER BY f.unit_id"
        ).fetchall()
