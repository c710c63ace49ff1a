"""A change feed over one table whose rows carry the id of the transaction that last wrote
them (``anomalies.change_xid``, ``alert_events.xid``): every committed change once, in
``(xid, id)`` order, never one of an unfinished transaction.

The read is the one every feed uses (``storage/xid_feed.py``): in one REPEATABLE READ
snapshot, only rows below ``pg_snapshot_xmin`` — every transaction below it has finished,
so nothing can appear there later. A row updated again later comes back with its new xid:
a reader sees each *version* that was current at some read, always the newest last. What
this module adds: a cursor of two numbers that travels well (an SSE event id), and rows as
dicts of the table's columns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from firewatch.storage.xid_feed import Position, Source, at_horizon, read_after, snapshot

#: The id of a cursor that stands after every row of its xid (ids are bigint from 1).
AFTER_ALL = 2**62


@dataclass(frozen=True, order=True)
class ChangeCursor:
    """Every change ``(xid, id) <= (self.xid, self.id)`` has been read."""

    xid: int = 0
    id: int = 0

    def to_token(self) -> str:
        """``"xid-id"``: e.g. an SSE event id (``Last-Event-ID``)."""
        return f"{self.xid}-{self.id}"

    @classmethod
    def from_token(cls, token: str) -> ChangeCursor:
        """Inverse of :meth:`to_token`; raises ValueError for anything else."""
        m = re.fullmatch(r"\s*(\d+)-(\d+)\s*", token)
        if m is None:
            raise ValueError(f"not a change cursor: {token!r} (expected 'xid-id')")
        return cls(int(m[1]), int(m[2]))

    def to_json(self) -> dict[str, int]:
        return {"xid": self.xid, "id": self.id}

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> ChangeCursor:
        """Inverse of :meth:`to_json` (the dict or its JSON text); raises ValueError for
        anything else."""
        try:
            obj = json.loads(data) if isinstance(data, str) else data
            return cls(int(obj["xid"]), int(obj["id"]))
        except (KeyError, TypeError) as err:  # json and int() raise ValueError themselves
            raise ValueError(f"not a change cursor: {data!r} (expected xid and id)") from err


@dataclass
class Changes:
    """One read: rows (dicts, with their ``_xid`` and ``id``), the cursor after them, and
    whether the table was read up to the horizon (then wait before reading again)."""

    rows: list[dict[str, Any]]
    cursor: ChangeCursor
    caught_up: bool


def horizon(conn: psycopg.Connection[Any]) -> ChangeCursor:
    """A cursor at the current horizon: reading from it skips every change made so far."""
    return _cursor(at_horizon(conn))


def read_changes(
    conn: psycopg.Connection[Any],
    *,
    table: str,
    xid_column: str,
    cursor: ChangeCursor,
    limit: int = 1000,
    columns: Sequence[str] | None = None,
) -> Changes:
    """Up to ``limit`` committed changes of ``table`` after ``cursor``.

    ``table`` must have an ``id`` column and ``xid_column`` (with an index on both); the
    names are checked against a plain identifier pattern (ValueError otherwise). Rows carry
    ``_xid`` and every column, or ``id`` and ``columns``. Runs its own read-only REPEATABLE
    READ transaction: ``conn`` must have none open (RuntimeError).
    """
    chosen = None if columns is None else ("id", *(c for c in columns if c != "id"))
    source = Source(table, xid_column, (("id", "bigint"),), chosen)  # validates the names
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    # The (xid, id) index serves the keyset order directly: no xid windows needed.
    with snapshot(conn, "read_changes") as (cur, snap):
        read = read_after(cur, source, Position(cursor.xid, (cursor.id,)), snap, limit=limit)
    rows = [{"_xid": r[0], **dict(zip(read.names, r[2:], strict=True))} for r in read.rows]
    # max: a cursor given past every id of its xid (a hand-made token) never moves back.
    return Changes(rows, max(cursor, _cursor(read.position)), read.caught_up)


def _cursor(pos: Position) -> ChangeCursor:
    """A feed position as a change cursor: after one row, or after every row of its xid."""
    return ChangeCursor(pos.xid, AFTER_ALL if pos.key is None else int(pos.key[0]))
