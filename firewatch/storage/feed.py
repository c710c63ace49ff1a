"""The committed-row feed: every stored telemetry, event, status and dead-letter row, once.

Analytics must see each committed row exactly once and never skip one, while several
ingest transactions commit concurrently and not in the order of their transaction ids.
Ordering by time or by an identity column cannot do that: a transaction that started
earlier can commit later, with rows that sort before rows already read.

The technique: every row carries ``ingest_xid``, the id of the transaction that inserted it
(a column default, migration 0004). In one REPEATABLE READ, read-only transaction we take
``horizon = pg_snapshot_xmin(pg_current_snapshot())``: every transaction with a smaller id
has finished, so no new row with ``ingest_xid < horizon`` can ever appear, and all committed
ones are visible in this snapshot. Each table is read in ``(ingest_xid, key)`` order from
the cursor up to the horizon, with a LIMIT. Rows of a transaction still running (or of a
later one that already committed) wait until the horizon passes them; rows of an aborted
transaction are never visible and hold nothing back once it has ended.

Consequences worth knowing:

* Any long write transaction on the *server* (any database: xids are cluster-wide) holds
  the horizon, so the feed lags until it ends. It never skips.
* Rows inserted before migration 0004 have ``ingest_xid`` NULL and are not in the feed.
* Partition maintenance moves rows out of the DEFAULT partition with their ``ingest_xid``
  unchanged, in one transaction; a snapshot sees each row exactly once either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row

from firewatch.core.rows import DeadLetter, EventRow, Reason, StatusRow, TelemetryRow, row_problem
from firewatch.storage.timestamps import fetchall_clamped

INGEST_CHANNEL = "firewatch_ingest"
"""NOTIFY channel: ingest signals it in every batch transaction (delivered at commit)."""

PRUNE_SLACK_S = 86_400.0
"""How much later than its receipt a row may be committed and still be seen by a feed that
was caught up: the margin of the partition-pruning predicate on telemetry and events."""

DEFAULT_XID_SPAN = 1 << 16
"""xids one query looks at, at first (the window doubles while it finds too few rows)."""

_FORMAT = 1  # FeedCursor.to_json() layout version


@dataclass(frozen=True)
class Position:
    """Where one table's feed stands.

    Every row ``(ingest_xid, key) <= (xid, key)`` has been read; ``key`` None means after
    *all* rows of ``xid``. ``synced_at`` (database clock, Unix seconds) is when this table
    was last read up to the horizon, or None if never: rows not yet read were then still
    uncommitted, so they were received after about ``synced_at - PRUNE_SLACK_S``, which
    bounds their device time from below (ingest refuses older than ``max_age_s``).
    """

    xid: int
    key: tuple[Any, ...] | None = None
    synced_at: float | None = None


@dataclass(frozen=True)
class FeedCursor:
    """Positions of the four tables. Immutable; :func:`read_batch` returns the next one.

    Persist it with :meth:`to_json` (a JSON-compatible dict, e.g. into
    ``analytics_checkpoints.cursor``) and restore it with :meth:`from_json`.
    """

    telemetry: Position
    events: Position
    statuses: Position
    dead_letters: Position

    @classmethod
    def start(cls) -> FeedCursor:
        """The beginning: every row that has an ``ingest_xid`` (valid xids are >= 3)."""
        pos = Position(0)
        return cls(pos, pos, pos, pos)

    @classmethod
    def at_horizon(cls, conn: psycopg.Connection[Any]) -> FeedCursor:
        """Skip history: the first batch read from here holds only rows whose transaction
        had not finished now. Runs one statement (in the caller's transaction, if any)."""
        with conn.cursor(row_factory=tuple_row) as cur:
            row = cur.execute(_HORIZON).fetchone()
        assert row is not None
        pos = Position(int(row[0]) - 1, None, float(row[1]))
        return cls(pos, pos, pos, pos)

    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible dict; :meth:`from_json` gives back an equal cursor."""
        out: dict[str, Any] = {"format": _FORMAT}
        for spec in _TABLES:
            pos: Position = getattr(self, spec.attr)
            key = None if pos.key is None else [_dump_key(v) for v in pos.key]
            out[spec.attr] = {"xid": pos.xid, "key": key, "synced_at": pos.synced_at}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> FeedCursor:
        """Inverse of :meth:`to_json` (also accepts its ``json.dumps`` text).

        Raises ValueError if ``data`` is not such a cursor."""
        try:
            obj = json.loads(data) if isinstance(data, str) else data
            if obj.get("format") != _FORMAT:
                raise ValueError(f"unknown cursor format {obj.get('format')!r}")
            positions = {}
            for spec in _TABLES:
                p = obj[spec.attr]
                raw = p["key"]
                key = None if raw is None else spec.load_key(raw)
                synced = p["synced_at"]
                positions[spec.attr] = Position(
                    int(p["xid"]), key, None if synced is None else float(synced)
                )
            return cls(**positions)
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as err:
            raise ValueError(f"not a feed cursor: {err!r}") from err


class Skipped(NamedTuple):
    """A stored row the feed did not hand out, because it breaks what readers rely on
    (:func:`firewatch.core.rows.row_problem`): its table, its key (JSON-compatible) and
    why. The cursor moves past it like any other row: the caller records it."""

    table: str
    key: list[Any]
    reason: str


@dataclass
class FeedBatch:
    """What one :func:`read_batch` call read. Each list is in ``(ingest_xid, key)`` order.

    ``cursor`` is the position after this batch (pass it to the next call, and save it
    with whatever the rows produced); ``caught_up`` is true when every table was read up
    to ``horizon`` (each returned fewer rows than the limit): wait before reading again.
    ``len()`` is the number of rows in all four lists. ``skipped``: rows read but not
    handed out (:class:`Skipped`); record them with the rest of the batch's results.
    """

    telemetry: list[TelemetryRow]
    events: list[EventRow]
    statuses: list[StatusRow]
    dead_letters: list[DeadLetter]
    cursor: FeedCursor
    caught_up: bool
    horizon: int
    skipped: list[Skipped] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.telemetry) + len(self.events) + len(self.statuses) + len(self.dead_letters)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: the devices of the units whose
    ``(hashtext(unit_id) & 2147483647) % count == index``. Every unit (and so every device,
    via ``devices.unit_id``) belongs to exactly one shard, so the shards of one count
    together read every row once. Dead letters are assigned by the unit segment of their
    topic (``{root}/{unit}/{device}/{channel}``: the third segment from the end, or ''
    for a topic with fewer segments) with the same hash.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"bad shard {self.index}/{self.count}: need 0 <= index < count")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"k/n"`` -> ``Shard(k, n)``; raises ValueError otherwise."""
        k, sep, n = text.strip().partition("/")
        if not sep or not k.strip().isdigit() or not n.strip().isdigit():
            raise ValueError(f"shard must look like 'k/n' (e.g. '0/4'), not {text!r}")
        return cls(int(k), int(n))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def read_batch(
    conn: psycopg.Connection[Any],
    cursor: FeedCursor,
    *,
    limit: int = 5000,
    max_age_s: float,
    shard: Shard | None = None,
    xid_span: int = DEFAULT_XID_SPAN,
) -> FeedBatch:
    """Read up to ``limit`` rows per table after ``cursor``, all committed, in one snapshot.

    Guarantees: following the returned cursors from any starting cursor yields every row
    with an ``ingest_xid`` past it exactly once, per table in ``(ingest_xid, key)`` order
    (key: ``(device_id, ts, seq)``, dead letters ``id``), and only rows of committed
    transactions; with ``shard``, only that shard's rows (see :class:`Shard`).

    ``max_age_s`` must be at least ingest's ``max_backlog_age_s`` (device times older than
    that at receipt are refused): telemetry and events are read only from
    ``ts >= synced_at - max_age_s - PRUNE_SLACK_S`` so that old partitions are pruned.
    Device status is never pruned this way (a last will carries its connection time).
    ``xid_span`` is the initial xid window a query scans (an implementation detail that
    keeps a long backlog linear; tests set it small).

    Runs its own REPEATABLE READ, READ ONLY transaction, so ``conn`` must have none open
    (autocommit, or idle): raises RuntimeError otherwise, ValueError for bad arguments,
    psycopg errors unchanged (nothing is consumed then: retry with the same cursor), and
    ValueError if a dead letter's reason is not a known :class:`Reason`.
    """
    if limit < 1 or xid_span < 1 or max_age_s < 0:
        raise ValueError("need limit >= 1, xid_span >= 1 and max_age_s >= 0")
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise RuntimeError("read_batch needs a connection with no transaction open")
    results: dict[str, list[Any]] = {}
    positions: dict[str, Position] = {}
    skipped: list[Skipped] = []
    caught_up = True
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        # Must come first: the snapshot is taken by the first query below.
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # Times in keys travel as text (exact for any value, ±infinity and BC included);
        # ISO output reads back the same whatever the server's DateStyle.
        cur.execute("SET LOCAL DateStyle = 'ISO, YMD'")
        row = cur.execute(_HORIZON).fetchone()
        assert row is not None
        horizon, now = int(row[0]), float(row[1])
        for spec in _TABLES:
            rows, pos, done = _read_table(
                cur, spec, getattr(cursor, spec.attr), horizon, now, skipped,
                limit=limit, max_age_s=max_age_s, shard=shard, xid_span=xid_span,
            )  # fmt: skip
            results[spec.attr] = rows
            positions[spec.attr] = pos
            caught_up = caught_up and done
    return FeedBatch(
        telemetry=results["telemetry"],
        events=results["events"],
        statuses=results["statuses"],
        dead_letters=results["dead_letters"],
        cursor=FeedCursor(**positions),
        caught_up=caught_up,
        horizon=horizon,
        skipped=skipped,
    )


def listen(conn: psycopg.Connection[Any]) -> None:
    """Subscribe ``conn`` to :data:`INGEST_CHANNEL` (idempotent). Needs autocommit, because
    LISTEN inside a transaction only takes effect at its commit."""
    if not conn.autocommit:
        raise RuntimeError("listening needs an autocommit connection")
    conn.execute(f"LISTEN {INGEST_CHANNEL}")


def wait_for_rows(conn: psycopg.Connection[Any], timeout: float) -> bool:
    """Wait until ingest commits a batch: True as soon as a notification on
    :data:`INGEST_CHANNEL` arrives (or one arrived on ``conn`` since the last call, even
    during other queries: psycopg keeps those), False after ``timeout`` seconds without.

    It subscribes first (:func:`listen`, idempotent); call :func:`listen` once before the
    first :func:`read_batch` too, so that a commit in between is not missed. Notifications
    already received are drained, so a burst of commits wakes the caller once. Use a
    dedicated autocommit connection: notifications of other channels on it are consumed
    and ignored. A notification is only a hint (a batch of duplicates notifies too):
    always read after.
    """
    listen(conn)
    notified = False
    for note in conn.notifies(timeout=max(0.0, timeout)):
        if note.channel == INGEST_CHANNEL:
            notified = True
            break
    if notified:
        for _ in conn.notifies(timeout=0):  # drain the rest of a burst
            pass
    return notified


# --- implementation ----------------------------------------------------------------------

_HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, extract(epoch FROM now())"

# A device's shard is its unit's; the semi-join becomes one hashed scan of `devices`.
_SHARD_DEVICES = (
    "t.device_id IN (SELECT d.id FROM devices AS d"
    " WHERE (hashtext(d.unit_id) & 2147483647) %% %(shard_count)s = %(shard_index)s)"
)
# A dead letter's unit is in its topic ({root}/{unit}/{device}/{channel}; the root may hold
# slashes): split_part(.., -3) counts from the end, and is '' for a shorter topic.
_SHARD_TOPIC = (
    "(hashtext(split_part(t.topic, '/', -3)) & 2147483647) %% %(shard_count)s = %(shard_index)s"
)


def _stream_key(raw: Sequence[Any]) -> tuple[Any, ...]:
    """A stream key from JSON: ``[device_id, ts, seq]`` with ``ts`` as PostgreSQL's text
    of the ``timestamptz`` (what the feed reads; older cursors hold ISO 8601 text, which
    PostgreSQL reads the same way)."""
    device_id, ts, seq = raw
    if not isinstance(device_id, str) or not isinstance(seq, int) or not isinstance(ts, str):
        raise TypeError("stream key must be [device_id, ts, seq]")
    if ts in ("infinity", "-infinity") or ts.endswith(" BC"):
        return (device_id, ts, seq)
    try:
        when = datetime.fromisoformat(ts)
    except ValueError as err:
        if not ts[:4].isdigit():
            raise TypeError(f"stream key time {ts!r} is not a time") from err
        return (device_id, ts, seq)  # a year beyond 9999: PostgreSQL reads it
    if when.tzinfo is None:
        raise TypeError("stream key time must carry its UTC offset")
    return (device_id, ts, seq)


def _id_key(raw: Sequence[Any]) -> tuple[Any, ...]:
    (ident,) = raw
    if not isinstance(ident, int):
        raise TypeError("dead-letter key must be [id]")
    return (ident,)


def _dump_key(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _key_out(column: str, typ: str) -> str:
    """How a key column is selected: times as text, which holds every value exactly."""
    return f"t.{column}::text" if typ == "timestamptz" else f"t.{column}"


class _Spec(NamedTuple):
    attr: str  # FeedCursor / FeedBatch attribute
    table: str
    columns: Sequence[str]  # selected in this order = the row type's fields
    key: Sequence[tuple[str, str]]  # (column, SQL type) of the ordering key after ingest_xid
    pruned: bool  # telemetry/events: ts is bounded below by ingest's backlog limit
    shard_sql: str
    load_key: Callable[[Sequence[Any]], tuple[Any, ...]]  # from to_json()'s key list
    make: Callable[[tuple[Any, ...]], Any]  # selected columns -> row


def _dead_letter(values: tuple[Any, ...]) -> DeadLetter:
    received_at, topic, payload, reason, detail = values
    return DeadLetter(received_at, topic, payload, Reason(reason), detail)


_STREAM_KEY = (("device_id", "text"), ("ts", "timestamptz"), ("seq", "bigint"))
_TABLES: tuple[_Spec, ...] = (
    _Spec("telemetry", "telemetry", TelemetryRow._fields, _STREAM_KEY, True, _SHARD_DEVICES,
          _stream_key, lambda v: TelemetryRow(*v)),
    _Spec("events", "events", EventRow._fields, _STREAM_KEY, True, _SHARD_DEVICES,
          _stream_key, lambda v: EventRow(*v)),
    _Spec("statuses", "device_status", StatusRow._fields, _STREAM_KEY, False, _SHARD_DEVICES,
          _stream_key, lambda v: StatusRow(*v)),
    _Spec("dead_letters", "dead_letters", DeadLetter._fields, (("id", "bigint"),), False,
          _SHARD_TOPIC, _id_key, _dead_letter),
)  # fmt: skip


def _sql(spec: _Spec, *, keyed: bool, pruned: bool, sharded: bool) -> str:
    key = ", ".join(f"t.{c}" for c, _ in spec.key)
    key_out = ", ".join(_key_out(c, typ) for c, typ in spec.key)
    # Plain bounds on ingest_xid, which its index can use as a range (a row comparison alone
    # would not bound the scan).
    where = ["t.ingest_xid >= %(lo)s::bigint", "t.ingest_xid < %(upper)s::bigint"]
    if keyed:
        params = ", ".join(f"%(k{i})s::{typ}" for i, (_, typ) in enumerate(spec.key))
        where.append(f"(t.ingest_xid, {key}) > (%(xid)s::bigint, {params})")
    if pruned:
        where.append("t.ts >= %(ts_floor)s")
    if sharded:
        where.append(spec.shard_sql)
    return (
        f"SELECT t.ingest_xid, {key_out}, {', '.join(f't.{c}' for c in spec.columns)}"
        f" FROM {spec.table} AS t WHERE {' AND '.join(where)}"
        f" ORDER BY t.ingest_xid, {key} LIMIT %(limit)s"
    )


_SQL: dict[tuple[str, bool, bool, bool], str] = {
    (spec.attr, keyed, pruned, sharded): _sql(spec, keyed=keyed, pruned=pruned, sharded=sharded)
    for spec in _TABLES
    for keyed in (False, True)
    for pruned in (False, True)
    for sharded in (False, True)
}


def _read_table(
    cur: psycopg.Cursor[tuple[Any, ...]],
    spec: _Spec,
    pos: Position,
    horizon: int,
    now: float,
    skipped: list[Skipped],
    *,
    limit: int,
    max_age_s: float,
    shard: Shard | None,
    xid_span: int,
) -> tuple[list[Any], Position, bool]:
    """Rows of one table after ``pos`` below ``horizon``; the new position; and whether
    the table is now read up to the horizon. Rows that break the readers' assumptions are
    appended to ``skipped`` instead of returned."""
    rows: list[Any] = []
    nkey = len(spec.key)
    pruned = spec.pruned and pos.synced_at is not None
    params: dict[str, Any] = {}
    if pruned:
        assert pos.synced_at is not None
        floor = pos.synced_at - max_age_s - PRUNE_SLACK_S
        params["ts_floor"] = datetime.fromtimestamp(floor, UTC)
    if shard is not None:
        params.update(shard_count=shard.count, shard_index=shard.index)
    span = xid_span
    while True:
        # Smallest xid that may still hold unread rows.
        lo = pos.xid if pos.key is not None else pos.xid + 1
        if lo >= horizon:  # nothing below the horizon is unread
            return rows, replace(pos, synced_at=now), True
        # Scan a window of xids, not everything up to the horizon: with a long backlog,
        # each query would otherwise sort (most of) the backlog to return `limit` rows.
        upper = min(horizon, lo + span)
        want = limit - len(rows)
        params.update(lo=lo, upper=upper, limit=want, xid=pos.xid)
        if pos.key is not None:
            params.update({f"k{i}": v for i, v in enumerate(pos.key)})
        sql = _SQL[(spec.attr, pos.key is not None, pruned, shard is not None)]
        fetched = fetchall_clamped(cur.connection, sql, params, cur)
        for r in fetched:
            try:
                made = spec.make(r[1 + nkey :])
                problem = row_problem(made)
            except (ValueError, TypeError) as err:  # e.g. a dead letter's unknown reason
                problem = f"unreadable row: {err}"
            if problem is None:
                rows.append(made)
            else:
                skipped.append(Skipped(spec.table, [_dump_key(v) for v in r[1 : 1 + nkey]],
                                       problem))  # fmt: skip
        if fetched:
            last = fetched[-1]
            pos = Position(int(last[0]), tuple(last[1 : 1 + nkey]), pos.synced_at)
        if len(fetched) == want:
            return rows, pos, False
        # Fewer than asked: every row with xid < upper has been read.
        pos = Position(upper - 1, None, now if upper == horizon else pos.synced_at)
        if upper == horizon:
            return rows, pos, True
        span *= 2
