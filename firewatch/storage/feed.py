"""The committed-row feed: every stored telemetry, event, status and dead-letter row, once.

Analytics must see each committed row exactly once and never skip one, while several
ingest transactions commit concurrently and not in the order of their transaction ids.
Every row carries ``ingest_xid``, the id of the transaction that inserted it (a column
default, migration 0004), and this feed reads the four tables with the one xid read
(``storage/xid_feed.py``: in one REPEATABLE READ snapshot, each table in
``(ingest_xid, key)`` order up to ``pg_snapshot_xmin``). What this module adds: the four
tables and their keys, one cursor over them, partition pruning, sharding by unit, and
turning rows into the readers' types (skipping those that break what readers rely on).

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import psycopg

from firewatch.core.rows import DeadLetter, EventRow, Reason, StatusRow, TelemetryRow, row_problem
from firewatch.storage import channels
from firewatch.storage.xid_feed import Position as Position  # part of this feed's API
from firewatch.storage.xid_feed import Snapshot, Source, at_horizon, read_after, snapshot

PRUNE_SLACK_S = 86_400.0
"""How much later than its receipt a row may be committed and still be seen by a feed that
was caught up: the margin of the partition-pruning predicate on telemetry and events."""

DEFAULT_XID_SPAN = 1 << 16
"""xids one query looks at, at first (the window doubles while it finds too few rows)."""

_FORMAT = 1  # FeedCursor.to_json() layout version


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
        pos = at_horizon(conn)
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
    results: dict[str, list[Any]] = {}
    positions: dict[str, Position] = {}
    skipped: list[Skipped] = []
    caught_up = True
    with snapshot(conn, "read_batch") as (cur, snap):
        for spec in _TABLES:
            rows, pos, done = _read_table(
                cur,
                spec,
                getattr(cursor, spec.attr),
                snap,
                skipped,
                limit=limit,
                max_age_s=max_age_s,
                shard=shard,
                xid_span=xid_span,
            )
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
        horizon=snap.horizon,
        skipped=skipped,
    )


def listen(conn: psycopg.Connection[Any]) -> None:
    """Subscribe ``conn`` to :data:`~firewatch.storage.channels.INGEST` (idempotent). Needs
    autocommit, because LISTEN inside a transaction only takes effect at its commit."""
    channels.listen(conn, [channels.INGEST])


def wait_for_rows(conn: psycopg.Connection[Any], timeout: float) -> bool:
    """Wait until ingest commits a batch: True as soon as a notification on
    :data:`~firewatch.storage.channels.INGEST` arrives (or one arrived on ``conn`` since
    the last call, even during other queries: psycopg keeps those), False after
    ``timeout`` seconds without.

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
        if note.channel == channels.INGEST:
            notified = True
            break
    if notified:
        for _ in conn.notifies(timeout=0):  # drain the rest of a burst
            pass
    return notified


# --- implementation ----------------------------------------------------------------------

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


class _Spec(NamedTuple):
    attr: str  # FeedCursor / FeedBatch attribute
    source: Source  # table, key after ingest_xid, columns = the row type's fields in order
    pruned: bool  # telemetry/events: ts is bounded below by ingest's backlog limit
    shard_sql: str
    load_key: Callable[[Sequence[Any]], tuple[Any, ...]]  # from to_json()'s key list
    make: Callable[[tuple[Any, ...]], Any]  # selected columns -> row


def _dead_letter(values: tuple[Any, ...]) -> DeadLetter:
    received_at, topic, payload, reason, detail = values
    return DeadLetter(received_at, topic, payload, Reason(reason), detail)


def _source(table: str, key: tuple[tuple[str, str], ...], columns: Sequence[str]) -> Source:
    return Source(table, "ingest_xid", key, tuple(columns))


_STREAM_KEY = (("device_id", "text"), ("ts", "timestamptz"), ("seq", "bigint"))
_TABLES: tuple[_Spec, ...] = (
    _Spec("telemetry", _source("telemetry", _STREAM_KEY, TelemetryRow._fields), True,
          _SHARD_DEVICES, _stream_key, lambda v: TelemetryRow(*v)),
    _Spec("events", _source("events", _STREAM_KEY, EventRow._fields), True,
          _SHARD_DEVICES, _stream_key, lambda v: EventRow(*v)),
    _Spec("statuses", _source("device_status", _STREAM_KEY, StatusRow._fields), False,
          _SHARD_DEVICES, _stream_key, lambda v: StatusRow(*v)),
    _Spec("dead_letters", _source("dead_letters", (("id", "bigint"),), DeadLetter._fields),
          False, _SHARD_TOPIC, _id_key, _dead_letter),
)  # fmt: skip


def _read_table(
    cur: psycopg.Cursor[tuple[Any, ...]],
    spec: _Spec,
    pos: Position,
    snap: Snapshot,
    skipped: list[Skipped],
    *,
    limit: int,
    max_age_s: float,
    shard: Shard | None,
    xid_span: int,
) -> tuple[list[Any], Position, bool]:
    """Rows of one table after ``pos`` below the snapshot's horizon; the new position; and
    whether the table is now read up to the horizon. Rows that break the readers'
    assumptions are appended to ``skipped`` instead of returned."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if spec.pruned and pos.synced_at is not None:
        where.append("t.ts >= %(ts_floor)s")
        floor = pos.synced_at - max_age_s - PRUNE_SLACK_S
        params["ts_floor"] = datetime.fromtimestamp(floor, UTC)
    if shard is not None:
        where.append(spec.shard_sql)
        params.update(shard_count=shard.count, shard_index=shard.index)
    # Scan a window of xids, not everything up to the horizon: the stream tables are indexed
    # on ingest_xid alone, so with a long backlog each query would otherwise sort (most of)
    # the backlog to return `limit` rows.
    read = read_after(
        cur,
        spec.source,
        pos,
        snap,
        limit=limit,
        where=tuple(where),
        params=params,
        xid_span=xid_span,
    )
    rows: list[Any] = []
    nkey = len(spec.source.key)
    for r in read.rows:
        try:
            made = spec.make(r[1 + nkey :])
            problem = row_problem(made)
        except (ValueError, TypeError) as err:  # e.g. a dead letter's unknown reason
            problem = f"unreadable row: {err}"
        if problem is None:
            rows.append(made)
        else:
            key = [_dump_key(v) for v in r[1 : 1 + nkey]]
            skipped.append(Skipped(spec.source.table, key, problem))
    return rows, read.position, read.caught_up
