"""Inspection draws in PostgreSQL: the snapshot a draw's inputs are made of, and the draw's
steps (commit, reveal, publish, cancel), each one row update that the database guards.

What the database refuses on its own (migration 0010): an inputs hash that is not the
SHA-256 of the stored inputs, a seed whose SHA-256 is not the commitment, any change of a
committed draw's inputs, hash or commitment, any change of a revealed seed or result, a
status moving backwards, deleting a draw or its seed, and a second live draw for a period.

The seed lives in ``draw_seeds`` from the commit; :func:`committed_seed` is the only
reader, for the reveal (and a cancellation, which reveals too).

Functions run in the caller's transaction. This module owns the SQL of ``draws`` and
``draw_seeds``, and reads ``units``, ``risk_current``, ``supervision_focus`` and
``unit_credit`` for the snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from firewatch.core.supervision import Conflict, DrawRecord, DrawStatus, NotFound

#: Everything of a draw but the seed table; the API and CLI read these.
_COLUMNS = (
    "id, period, status, algorithm, inputs, inputs_hash, seed_commitment, committed_at,"
    " committed_by, seed, result, revealed_at, revealed_by, published_at, published_by,"
    " cancelled_at, cancelled_by, cancel_reason"
)


@dataclass(frozen=True)
class UnitSnapshot:
    """A unit as the draw sees it now: its current risk level (``blue`` without a score),
    whether it is on the focus list, its credit status (``good`` without a record)."""

    unit_id: str
    level: str
    focus: bool
    credit: str


def unit_snapshot(conn: psycopg.Connection[Any]) -> list[UnitSnapshot]:
    """Every unit (the inspection-object list), by id."""
    rows = conn.execute(
        "SELECT u.id, coalesce(r.level, 'blue'), f.unit_id IS NOT NULL,"
        " coalesce(c.status, 'good') FROM units u"
        " LEFT JOIN risk_current r ON r.unit_id = u.id"
        " LEFT JOIN supervision_focus f ON f.unit_id = u.id"
        " LEFT JOIN unit_credit c ON c.unit_id = u.id ORDER BY u.id"
    ).fetchall()
    return [UnitSnapshot(str(i), str(lv), bool(f), str(c)) for i, lv, f, c in rows]


def active_inspector_codes(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute("SELECT code FROM inspectors WHERE active ORDER BY code").fetchall()
    return [str(r[0]) for r in rows]


def declared_exclusions(conn: psycopg.Connection[Any]) -> set[tuple[str, str]]:
    """(inspector code, unit id) of every declared tie of an active inspector."""
    rows = conn.execute(
        "SELECT DISTINCT i.code, t.unit_id FROM inspector_ties t"
        " JOIN inspectors i ON i.id = t.inspector_id WHERE i.active"
    ).fetchall()
    return {(str(c), str(u)) for c, u in rows}


def live_draws(conn: psycopg.Connection[Any]) -> list[DrawRecord]:
    """Every draw not cancelled, oldest first (by commit): the history the next draw's
    inputs are derived from."""
    return _select(conn, "WHERE status <> 'cancelled' ORDER BY committed_at, id")


def insert_draw(
    conn: psycopg.Connection[Any],
    *,
    period: str,
    algorithm: str,
    inputs: str,
    inputs_hash: str,
    seed_commitment: str,
    seed: bytes,
    at: datetime,
    actor: str,
) -> DrawRecord:
    """Store a committed draw and its seed (apart). :class:`Conflict` when the period has a
    live draw already."""
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                "INSERT INTO draws (period, status, algorithm, inputs, inputs_hash,"
                " seed_commitment, committed_at, committed_by)"
                f" VALUES (%s, 'committed', %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                (period, algorithm, inputs, inputs_hash, seed_commitment, at, actor),
            ).fetchone()
            assert row is not None
            cur.execute("INSERT INTO draw_seeds (draw_id, seed) VALUES (%s, %s)", (row["id"], seed))
    except psycopg.errors.UniqueViolation:
        live = _select(conn, "WHERE period = %s AND status <> 'cancelled'", period)
        which = f"draw {live[0].id} ({live[0].status.value})" if live else "a draw"
        raise Conflict(
            f"period {period} has a live draw already: {which}; cancel it with a reason "
            "before drawing again"
        ) from None
    return DrawRecord.of(row)


def get_draw(conn: psycopg.Connection[Any], draw_id: int, *, lock: bool = False) -> DrawRecord:
    """The draw; :class:`NotFound` otherwise. ``lock``: FOR UPDATE (in a transaction)."""
    rows = _select(conn, "WHERE id = %s" + (" FOR UPDATE" if lock else ""), draw_id)
    if not rows:
        raise NotFound(f"no draw {draw_id}")
    return rows[0]


def list_draws(
    conn: psycopg.Connection[Any],
    *,
    period: str | None = None,
    statuses: Sequence[str] | None = None,
    limit: int = 100,
) -> list[DrawRecord]:
    """Draws, newest first."""
    wanted = None if statuses is None else list(statuses)
    return _select(
        conn,
        "WHERE (%s::text IS NULL OR period = %s) AND (%s::text[] IS NULL OR status = ANY(%s))"
        " ORDER BY committed_at DESC, id DESC LIMIT %s",
        period,
        period,
        wanted,
        wanted,
        limit,
    )


def committed_seed(conn: psycopg.Connection[Any], draw_id: int) -> bytes:
    row = conn.execute("SELECT seed FROM draw_seeds WHERE draw_id = %s", (draw_id,)).fetchone()
    if row is None:
        raise NotFound(f"draw {draw_id} has no committed seed")
    return bytes(row[0])


def set_revealed(
    conn: psycopg.Connection[Any],
    draw_id: int,
    *,
    seed_hex: str,
    result: str,
    at: datetime,
    actor: str,
    status: DrawStatus = DrawStatus.REVEALED,
) -> DrawRecord:
    """Store the seed and the result (status ``revealed``, or with ``status`` another step
    that reveals: a cancellation writes them with :func:`set_cancelled`)."""
    rows = _update(
        conn,
        "SET status = %s, seed = %s, result = %s, revealed_at = %s, revealed_by = %s WHERE id = %s",
        status.value,
        seed_hex,
        result,
        at,
        actor,
        draw_id,
    )
    return rows


def set_published(
    conn: psycopg.Connection[Any], draw_id: int, *, at: datetime, actor: str
) -> DrawRecord:
    return _update(
        conn,
        "SET status = 'published', published_at = %s, published_by = %s WHERE id = %s",
        at,
        actor,
        draw_id,
    )


def set_cancelled(
    conn: psycopg.Connection[Any],
    draw_id: int,
    *,
    at: datetime,
    actor: str,
    reason: str,
    reveal: tuple[str, str] | None = None,
) -> DrawRecord:
    """Cancel; ``reveal`` = (seed hex, result) for a draw cancelled before its reveal."""
    if reveal is None:
        return _update(
            conn,
            "SET status = 'cancelled', cancelled_at = %s, cancelled_by = %s, cancel_reason = %s"
            " WHERE id = %s",
            at,
            actor,
            reason,
            draw_id,
        )
    seed_hex, result = reveal
    return _update(
        conn,
        "SET status = 'cancelled', cancelled_at = %s, cancelled_by = %s, cancel_reason = %s,"
        " seed = %s, result = %s, revealed_at = %s, revealed_by = %s WHERE id = %s",
        at,
        actor,
        reason,
        seed_hex,
        result,
        at,
        actor,
        draw_id,
    )


def _select(conn: psycopg.Connection[Any], where: str, *params: Any) -> list[DrawRecord]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {_COLUMNS} FROM draws {where}", params).fetchall()
    return [DrawRecord.of(r) for r in rows]


def _update(conn: psycopg.Connection[Any], rest: str, *params: Any) -> DrawRecord:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"UPDATE draws {rest} RETURNING {_COLUMNS}", params).fetchone()
    if row is None:
        raise NotFound(f"no draw {params[-1]}")
    return DrawRecord.of(row)


def unit_refs(conn: psycopg.Connection[Any], unit_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Unit id -> (name, street name) for the given units (organisations, public)."""
    rows = conn.execute(
        "SELECT u.id, u.name, coalesce(s.name, '') FROM units u"
        " LEFT JOIN regions s ON s.id = u.region_id WHERE u.id = ANY(%s)",
        (unit_ids,),
    ).fetchall()
    return {str(i): (str(n), str(s)) for i, n, s in rows}
