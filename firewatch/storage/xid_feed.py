"""The one read behind every feed: the committed rows of one xid-stamped table after a
position, each once, in ``(xid, key)`` order, never a row of an unfinished transaction.

Every table a reader follows carries the id of the transaction that (last) wrote each row,
a column default of ``pg_current_xact_id()``: ``ingest_xid`` on the four stream tables
(``storage/feed.py``, for analytics), ``anomalies.change_xid`` and ``alert_events.xid``
(``storage/changes.py``, for alerting and the API's live stream). Ordering by time or by an
identity column cannot give "each committed row once": a transaction that started earlier
can commit later, with rows that sort before rows already read.

The technique: in one REPEATABLE READ, READ ONLY transaction (:func:`snapshot`) take
``horizon = pg_snapshot_xmin(pg_current_snapshot())``. Every transaction with a smaller id
has finished, so no row with ``xid < horizon`` can appear (or change) later, and all the
committed ones are visible in this snapshot. :func:`read_after` reads a table in
``(xid, key)`` order from a :class:`Position` up to the horizon, with a LIMIT. Rows of a
transaction still running (or of a later one that already committed) wait until the
horizon passes them; rows of an aborted transaction are never visible and hold nothing
back once it has ended. A row written again later comes back with its new xid: a reader
sees each *version* that was current at some read, the newest last.

Consequences worth knowing: any long write transaction on the *server* (xids are
cluster-wide) holds the horizon, so every feed lags until it ends; none skips. Rows with a
NULL xid (written before their table had the column) are not in any feed.

The feeds on top choose the table, the key, the columns and any filter (partition pruning,
sharding), turn the rows into their own types, and keep their own cursor format.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row

from firewatch.storage.timestamps import fetchall_clamped

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, extract(epoch FROM now())"


@dataclass(frozen=True)
class Position:
    """Where a feed stands in one table.

    Every row ``(xid, key) <= (self.xid, self.key)`` has been read; ``key`` None means after
    *all* rows of ``xid``. ``synced_at`` (database clock, Unix seconds) is when the table
    was last read up to the horizon, or None if never: rows not yet read were then still
    uncommitted (the ingest feed bounds their time from below with it).
    """

    xid: int
    key: tuple[Any, ...] | None = None
    synced_at: float | None = None


@dataclass(frozen=True)
class Source:
    """One xid-stamped table as a feed reads it.

    ``key``: the ordering key after the xid, as ``(column, SQL type)`` pairs; with the xid
    it must identify a row version. ``columns``: what each row carries after the xid and
    the key, in this order; None selects every column of the table (``t.*``). Names must be
    plain lowercase SQL identifiers (ValueError otherwise), so none can inject SQL.
    """

    table: str
    xid_column: str
    key: tuple[tuple[str, str], ...]
    columns: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("a feed source needs a key")
        names = (self.table, self.xid_column, *(c for c, _ in self.key), *(self.columns or ()))
        for name in names:
            if not _IDENT.match(name):
                raise ValueError(f"not a plain SQL identifier: {name!r}")


@dataclass(frozen=True)
class Snapshot:
    """One read's snapshot: its ``horizon`` (every xid below it has finished) and the
    database's ``now()`` (Unix seconds)."""

    horizon: int
    now: float


@dataclass
class Read:
    """What :func:`read_after` read from one table.

    ``rows``: tuples ``(xid, *key, *columns)`` in ``(xid, key)`` order, key times as
    PostgreSQL's text (exact for every value); ``names``: the column names of the part
    after the key (empty when nothing was queried); ``position``: where the table stands
    after them; ``caught_up``: the table was read up to the horizon (fewer rows than the
    limit): wait before reading again.
    """

    rows: list[tuple[Any, ...]]
    names: list[str]
    position: Position
    caught_up: bool


@contextmanager
def snapshot(
    conn: psycopg.Connection[Any], reader: str = "a feed read"
) -> Iterator[tuple[psycopg.Cursor[tuple[Any, ...]], Snapshot]]:
    """A REPEATABLE READ, READ ONLY transaction on ``conn``: a tuple-row cursor in it and
    its :class:`Snapshot`. Every :func:`read_after` with that cursor sees the same
    committed state. ``conn`` must have no transaction open (autocommit, or idle):
    RuntimeError naming ``reader`` otherwise."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise RuntimeError(f"{reader} needs a connection with no transaction open")
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        # Must come first: the snapshot is taken by the first query below.
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # Times in keys travel as text (exact for any value, ±infinity and BC included);
        # ISO output reads back the same whatever the server's DateStyle.
        cur.execute("SET LOCAL DateStyle = 'ISO, YMD'")
        row = cur.execute(_HORIZON).fetchone()
        assert row is not None
        yield cur, Snapshot(int(row[0]), float(row[1]))


def at_horizon(conn: psycopg.Connection[Any]) -> Position:
    """A position at the current horizon: reading from it skips every row written so far
    by a transaction that has finished. One statement, in the caller's transaction if any."""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(_HORIZON).fetchone()
    assert row is not None
    return Position(int(row[0]) - 1, None, float(row[1]))


def read_after(
    cur: psycopg.Cursor[tuple[Any, ...]],
    source: Source,
    position: Position,
    snap: Snapshot,
    *,
    limit: int,
    where: tuple[str, ...] = (),
    params: Mapping[str, Any] | None = None,
    xid_span: int | None = None,
) -> Read:
    """Up to ``limit`` rows of ``source`` after ``position`` and below ``snap.horizon``,
    with ``cur`` from :func:`snapshot`.

    Guarantee: following the returned positions from any starting position yields every
    row whose xid is past it exactly once, in ``(xid, key)`` order, and only rows of
    committed transactions. ``where``: extra predicates on the table's alias ``t`` (their
    ``%(name)s`` parameters in ``params``), e.g. partition pruning or a shard; they must
    not depend on the position. ``xid_span``: scan a window of that many xids at first,
    doubling while it finds too few rows, instead of everything up to the horizon at once
    (for tables indexed on the xid alone, where one query would sort most of a long
    backlog to return ``limit`` rows); None for tables indexed on ``(xid, key)``.

    Raises ValueError for ``limit`` or ``xid_span`` below 1, psycopg errors unchanged
    (nothing is consumed then: retry from the same position). A time the database holds
    but Python cannot (±infinity, BC, past 9999) loads clamped
    (``storage/timestamps.py``) rather than failing the read.
    """
    if limit < 1 or (xid_span is not None and xid_span < 1):
        raise ValueError("need limit >= 1 and xid_span >= 1")
    nkey = len(source.key)
    args: dict[str, Any] = dict(params or {})
    rows: list[tuple[Any, ...]] = []
    names: list[str] = []
    pos = position
    span = xid_span
    while True:
        # Smallest xid that may still hold unread rows.
        lo = pos.xid if pos.key is not None else pos.xid + 1
        if lo >= snap.horizon:  # nothing below the horizon is unread
            return Read(rows, names, replace(pos, synced_at=snap.now), True)
        upper = snap.horizon if span is None else min(snap.horizon, lo + span)
        want = limit - len(rows)
        args.update(lo=lo, upper=upper, limit=want, xid=pos.xid)
        if pos.key is not None:
            args.update({f"k{i}": v for i, v in enumerate(pos.key)})
        sql = _sql(source, pos.key is not None, where)
        fetched = fetchall_clamped(cur.connection, sql, args, cur)
        if not names and cur.description is not None:
            names = [d.name for d in cur.description[1 + nkey :]]
        rows += fetched
        if fetched:
            last = fetched[-1]
            pos = Position(int(last[0]), tuple(last[1 : 1 + nkey]), pos.synced_at)
        if len(fetched) == want:
            return Read(rows, names, pos, False)
        # Fewer than asked: every row with xid < upper has been read.
        pos = Position(upper - 1, None, snap.now if upper == snap.horizon else pos.synced_at)
        if upper == snap.horizon:
            return Read(rows, names, pos, True)
        assert span is not None
        span *= 2


def _key_out(column: str, typ: str) -> str:
    """How a key column is selected: times as text, which holds every value exactly."""
    return f"t.{column}::text" if typ == "timestamptz" else f"t.{column}"


@lru_cache(maxsize=256)
def _sql(source: Source, keyed: bool, where: Sequence[str]) -> str:
    xid = f"t.{source.xid_column}"
    key = ", ".join(f"t.{c}" for c, _ in source.key)
    key_out = ", ".join(_key_out(c, typ) for c, typ in source.key)
    columns = "t.*" if source.columns is None else ", ".join(f"t.{c}" for c in source.columns)
    # Plain bounds on the xid, which its index can use as a range (a row comparison alone
    # would not bound the scan).
    conditions = [f"{xid} >= %(lo)s::bigint", f"{xid} < %(upper)s::bigint"]
    if keyed:
        params = ", ".join(f"%(k{i})s::{typ}" for i, (_, typ) in enumerate(source.key))
        conditions.append(f"({xid}, {key}) > (%(xid)s::bigint, {params})")
    conditions += where
    return (
        f"SELECT {xid}, {key_out}, {columns} FROM {source.table} AS t"
        f" WHERE {' AND '.join(conditions)} ORDER BY {xid}, {key} LIMIT %(limit)s"
    )
