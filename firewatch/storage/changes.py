"""A change feed over one table whose rows carry the id of the transaction that last wrote
them (``anomalies.change_xid``, ``alert_events.xid``): every committed change once, in
``(xid, id)`` order, never one of an unfinished transaction.

The technique is the ingest feed's (``storage/feed.py``): in one REPEATABLE READ snapshot,
only rows below ``pg_snapshot_xmin`` are read — every transaction below it has finished,
so nothing can appear there later. A row updated again later comes back with its new xid:
a reader sees each *version* that was current at some read, always the newest last.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


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
    row = conn.execute(_HORIZON).fetchone()
    assert row is not None
    return ChangeCursor(int(row[0]) - 1, 2**62)


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
    names are checked against a plain identifier pattern (ValueError otherwise). Runs its
    own read-only REPEATABLE READ transaction: ``conn`` must have none open (RuntimeError).
    """
    for name in (table, xid_column, *(columns or ())):
        if not _IDENT.match(name):
            raise ValueError(f"not a plain SQL identifier: {name!r}")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise RuntimeError("read_changes needs a connection with no transaction open")
    cols = "*" if columns is None else ", ".join({"id", *columns})
    sql = (
        f"SELECT {xid_column} AS _xid, {cols} FROM {table}"
        f" WHERE {xid_column} >= %(xid)s AND ({xid_column}, id) > (%(xid)s, %(id)s)"
        f" AND {xid_column} < %(horizon)s ORDER BY {xid_column}, id LIMIT %(limit)s"
    )
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = cur.execute(_HORIZON).fetchone()
        assert row is not None
        top = int(next(iter(row.values())))
        rows = cur.execute(
            sql, {"xid": cursor.xid, "id": cursor.id, "horizon": top, "limit": limit}
        ).fetchall()
    if len(rows) == limit:
        last = rows[-1]
        return Changes(rows, ChangeCursor(int(last["_xid"]), int(last["id"])), False)
    # Everything below the horizon has been read: move past it, so the next read starts
    # at the first transaction that had not finished now.
    return Changes(rows, max(cursor, ChangeCursor(top - 1, 2**62)), True)
