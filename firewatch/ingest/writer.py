"""Batching writer: COPY accepted rows into PostgreSQL, idempotently, then hand back the acks.

One transaction per batch: every row of the batch (data rows and dead letters) is committed,
or none is. Rows go by binary COPY into per-connection temporary staging tables, then
``INSERT … SELECT … ON CONFLICT DO NOTHING`` into the real tables, so a redelivered message
(same device, ts, seq) adds nothing and the batch still commits. Only after COMMIT returns
are the batch's MQTT acknowledgements released.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from firewatch.core.backoff import Backoff
from firewatch.core.domain import ALARM_FLAGS
from firewatch.ingest.codec import DeadLetter, EventRow, Reason, Row, StatusRow, TelemetryRow
from firewatch.ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")

_COLUMNS: dict[str, tuple[Sequence[str], Sequence[str]]] = {
    # table: (columns in row-tuple order, binary COPY types)
    "telemetry": (
        TelemetryRow._fields,
        ("text", "int8", "timestamptz", "timestamptz", "float4", "float4", "bool", "bool",
         "float4", "float4", "bool", "int2[]", "float4[]", "float4[]", "bool[]"),
    ),
    "events": (
        EventRow._fields,
        ("text", "int8", "timestamptz", "timestamptz", "text", "int2", "int2", "int2", "int8",
         "int4", "text[]", "int2", "text"),
    ),
    "device_status": (
        StatusRow._fields,
        ("text", "int8", "timestamptz", "timestamptz", "text", "text", "float4", "float4",
         "text"),
    ),
}  # fmt: skip
_TABLE_OF: dict[type, str] = {
    TelemetryRow: "telemetry",
    EventRow: "events",
    StatusRow: "device_status",
}

# Device status rows are inserted by this statement rather than the generic one: only rows
# actually inserted (not redeliveries) move device_state, and the latest *received* status
# wins. Server receive order, not device time, because a last will carries its connect time.
_INSERT_STATUS = """
WITH inserted AS (
    INSERT INTO device_status ({cols}) SELECT {cols} FROM _stage_device_status
    ON CONFLICT DO NOTHING RETURNING *
), latest AS (
    SELECT DISTINCT ON (device_id) * FROM inserted ORDER BY device_id, received_at DESC, seq DESC
), upsert AS (
    INSERT INTO device_state (device_id, state, ts, seq, firmware, battery_pct, updated_at)
    SELECT device_id, state, ts, seq, firmware, battery_pct, received_at FROM latest
    ON CONFLICT (device_id) DO UPDATE SET
        state = EXCLUDED.state, ts = EXCLUDED.ts, seq = EXCLUDED.seq,
        firmware = COALESCE(EXCLUDED.firmware, device_state.firmware),
        battery_pct = COALESCE(EXCLUDED.battery_pct, device_state.battery_pct),
        updated_at = EXCLUDED.updated_at
    WHERE device_state.updated_at <= EXCLUDED.updated_at
)
SELECT count(*) FROM inserted
"""

_LAST_SEEN = """
INSERT INTO device_last_seen (device_id, last_rx)
SELECT * FROM unnest(%s::text[], %s::timestamptz[])
ON CONFLICT (device_id) DO UPDATE SET last_rx = EXCLUDED.last_rx
WHERE device_last_seen.last_rx < EXCLUDED.last_rx
"""


class LastSeen:
    """When each device was last heard from, written at most every ``refresh_s`` per device
    by this worker (offline checks count in minutes): writing it on every batch made
    concurrent workers queue on the same rows' locks. A last will is the broker's word,
    not the device's, and does not count."""

    def __init__(self, refresh_s: float = 10.0) -> None:
        self.refresh_s = refresh_s
        self._written: dict[str, float] = {}

    def due(self, batch: Batch) -> dict[str, datetime]:
        latest: dict[str, datetime] = {}
        for table, rows in batch.rows.items():
            for r in rows:
                if table == "device_status" and r.state == "offline":  # type: ignore[union-attr]
                    continue
                seen = latest.get(r.device_id)
                if seen is None or r.received_at > seen:
                    latest[r.device_id] = r.received_at
        written = self._written
        return {d: t for d, t in latest.items()
                if t.timestamp() - written.get(d, float("-inf")) >= self.refresh_s}  # fmt: skip

    def committed(self, due: dict[str, datetime]) -> None:
        for d, t in due.items():
            self._written[d] = t.timestamp()


_INSERT_DEAD = """
INSERT INTO dead_letters (received_at, topic, payload, reason, detail, payload_sha256)
SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::bytea[], %s::text[], %s::text[],
                     %s::bytea[])
ON CONFLICT (topic, payload_sha256) DO NOTHING
"""


class DatabaseUnavailable(Exception):
    """The writer gave up reaching the database because it was told to stop."""


@dataclass
class Batch:
    """Decoded messages waiting for one flush, in arrival order, with their ack tokens.

    ``urgent`` is set when a panel event carrying an alarm (fire, fault …) joins the batch:
    the service then commits at once instead of waiting out the flush window, so an alarm
    is never held back to be batched with telemetry."""

    rows: dict[str, list[Row]] = field(default_factory=lambda: {t: [] for t in _COLUMNS})
    dead: list[DeadLetter] = field(default_factory=list)
    acks: list[Any] = field(default_factory=list)
    first_at: float = 0.0
    urgent: bool = False

    def add(self, item: Row | DeadLetter, ack: Any) -> None:
        if not self.acks:
            self.first_at = time.monotonic()
        if isinstance(item, DeadLetter):
            self.dead.append(item)
        else:
            self.rows[_TABLE_OF[type(item)]].append(item)
            if isinstance(item, EventRow) and not ALARM_FLAGS.isdisjoint(item.flags):
                self.urgent = True
        self.acks.append(ack)

    def extend(self, items: Sequence[tuple[Row | DeadLetter, Any]], arrived: float) -> None:
        """:meth:`add` for many items (the writer takes them from the inbox in bulk);
        ``arrived``: when the oldest of them was received (``time.monotonic()``), from
        which the flush deadline counts."""
        if not items:
            return
        if not self.acks:
            self.first_at = arrived
        rows, dead, acks = self.rows, self.dead.append, self.acks.append
        tables = _TABLE_OF
        for item, ack in items:
            table = tables.get(type(item))
            if table is None:
                dead(item)  # type: ignore[arg-type]
            else:
                rows[table].append(item)  # type: ignore[arg-type]
                if table == "events" and not ALARM_FLAGS.isdisjoint(item.flags):  # type: ignore[union-attr]
                    self.urgent = True
            acks(ack)

    def __len__(self) -> int:
        return len(self.acks)


@dataclass
class FlushResult:
    stored: dict[str, int]
    duplicates: dict[str, int]
    dead_letters: int
    seconds: float


class BatchWriter:
    """Owns one database connection; flushes batches, reconnecting with jittered backoff.

    Use as a context manager. :meth:`flush` retries until it succeeds or ``stop`` is set,
    in which case it raises :class:`DatabaseUnavailable` and the batch stays unacknowledged
    (the broker will redeliver it).
    """

    def __init__(
        self,
        conninfo: str,
        metrics: IngestMetrics,
        backoff: Backoff,
        stop: threading.Event,
        on_connect: Callable[[psycopg.Connection[Any]], None] | None = None,
    ) -> None:
        self._conninfo = conninfo
        self._metrics = metrics
        self._backoff = backoff
        self._stop = stop
        self._on_connect = on_connect
        self._conn: psycopg.Connection[Any] | None = None
        self._last_seen = LastSeen()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def connection(self) -> psycopg.Connection[Any]:
        """The live connection, (re)connecting with backoff; raises DatabaseUnavailable."""
        while self._conn is None or self._conn.closed or self._conn.broken:
            self.close()
            try:
                conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
                for table in _COLUMNS:
                    conn.execute(
                        f"CREATE TEMP TABLE IF NOT EXISTS _stage_{table} "
                        f"(LIKE {table}) ON COMMIT DELETE ROWS"
                    )
                if self._on_connect:
                    self._on_connect(conn)
                self._conn = conn
                self._backoff.reset()
            except psycopg.OperationalError as err:
                self._wait(f"database unreachable: {err}".strip())
        return self._conn

    def _wait(self, why: str) -> None:
        self._metrics.reconnects.labels("database").inc()
        delay = self._backoff.next()
        log.warning("%s; retrying in %.2fs", why, delay)
        if self._stop.wait(delay):
            raise DatabaseUnavailable(why)

    def call(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``fn(conn)``, reconnecting and retrying through connection failures until it
        succeeds or ``stop`` is set (then :class:`DatabaseUnavailable`). ``fn`` must be
        safe to repeat: a failed attempt's transaction was rolled back."""
        while True:
            conn = self.connection()
            try:
                return fn(conn)
            except psycopg.OperationalError as err:
                self._metrics.flush_errors.inc()
                self.close()
                self._wait(f"database call failed: {err}".strip())

    def flush(self, batch: Batch) -> FlushResult:
        """Commit the batch (idempotently). Retries through outages; see class docstring."""
        started = time.perf_counter()
        due = self._last_seen.due(batch)
        result = self.call(lambda conn: self._write(conn, batch, due))
        self._last_seen.committed(due)
        result.seconds = time.perf_counter() - started
        return result

    @staticmethod
    def _write(
        conn: psycopg.Connection[Any], batch: Batch, last_seen: dict[str, datetime] | None = None
    ) -> FlushResult:
        stored: dict[str, int] = {}
        dups: dict[str, int] = {}
        dead = 0
        with conn.transaction(), conn.cursor() as cur:
            for table, rows in batch.rows.items():
                if not rows:
                    continue
                cols, types = _COLUMNS[table]
                collist = ", ".join(cols)
                with cur.copy(
                    f"COPY _stage_{table} ({collist}) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(list(types))
                    for row in rows:
                        copy.write_row(row)
                if table == "device_status":
                    counted = cur.execute(_INSERT_STATUS.format(cols=collist)).fetchone()
                    inserted = int(counted[0]) if counted else 0
                else:
                    cur.execute(
                        f"INSERT INTO {table} ({collist}) SELECT {collist} FROM _stage_{table} "
                        "ON CONFLICT DO NOTHING"
                    )
                    inserted = cur.rowcount
                stored[table] = inserted
                dups[table] = len(rows) - inserted
            if last_seen:
                cur.execute(_LAST_SEEN, (list(last_seen), list(last_seen.values())))
            if batch.dead:
                cur.execute(
                    _INSERT_DEAD,
                    (
                        [d.received_at for d in batch.dead],
                        [d.topic for d in batch.dead],
                        [d.payload for d in batch.dead],
                        [d.reason.value for d in batch.dead],
                        [d.detail for d in batch.dead],
                        [hashlib.sha256(d.payload).digest() for d in batch.dead],
                    ),
                )
                dead = cur.rowcount
            cur.execute("SELECT pg_notify('firewatch_ingest', '')")  # delivered at COMMIT
        return FlushResult(stored, dups, dead, 0.0)


def recheck_unknown(batch: Batch, redecode: Callable[[DeadLetter], Row | DeadLetter]) -> None:
    """Re-decode unknown-device dead letters after a registry reload (a device registered
    moments ago must not be dead-lettered). Keeps arrival order of acks unchanged."""
    keep: list[DeadLetter] = []
    for d in batch.dead:
        if d.reason is Reason.UNKNOWN_DEVICE:
            item = redecode(d)
            if not isinstance(item, DeadLetter):
                batch.rows[_TABLE_OF[type(item)]].append(item)
                continue
            d = item
        keep.append(d)
    batch.dead = keep
