"""Batching writer: COPY accepted rows into PostgreSQL, idempotently, then hand back the acks.

One transaction per batch: every row of the batch (data rows and dead letters) is committed,
or none is. Rows go by binary COPY into per-connection temporary staging tables, then
``INSERT … SELECT … ON CONFLICT DO NOTHING`` into the real tables, so a redelivered message
(same device, ts, seq) adds nothing and the batch still commits. Only after COMMIT returns
are the batch's MQTT acknowledgements released. The statements are the stream tables' own,
in :mod:`firewatch.storage.streams`; this module decides what goes into which transaction.

Poison isolation: when a batch fails for a reason other than the database being
unavailable (``firewatch.storage.errors``: a value the database refuses, a constraint, a
row the client cannot encode), retrying it would fail forever and stop everything behind
it. The writer then splits the batch in halves, commits each half that succeeds, and splits
each half that fails again, down to single messages: each message the database refuses on
its own becomes a dead letter (reason ``db_rejected``) carrying the database's error and
its raw bytes. Every message ends up stored or dead-lettered, all are acknowledged, and the
worker keeps running. With ``k`` poison messages in a batch of ``n`` that costs about
``2·k·log2(n)`` extra transactions, only on the failure path.
"""

from __future__ import annotations

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
from firewatch.ingest.codec import DeadLetter, Reason, Row
from firewatch.ingest.ingest_metrics import IngestMetrics
from firewatch.storage import streams
from firewatch.storage.errors import database_unavailable, describe
from firewatch.storage.streams import DEFAULT_PAYLOAD_CAP, STREAM_COLUMNS, TABLE_OF_ROW

log = logging.getLogger(__name__)
T = TypeVar("T")


class LastSeen:
    """When each device was last heard from, written at most every ``refresh_s`` per device
    by this worker (offline checks count in minutes): writing it on every batch made
    concurrent workers queue on the same rows' locks. A last will is the broker's word,
    not the device's, and does not count."""

    def __init__(self, refresh_s: float = 10.0) -> None:
        self.refresh_s = refresh_s
        self._written: dict[str, float] = {}

    def due(self, batch: WriteBatch) -> dict[str, datetime]:
        latest: dict[str, datetime] = {}
        for table, rows in batch.rows.items():
            for r in rows:
                if table == "device_status" and r.state == "offline":  # type: ignore[union-attr]
                    continue
                seen = latest.get(r.device_id)
                if seen is None or r.received_at > seen:
                    latest[r.device_id] = r.received_at
        written = self._written
        return {
            d: t
            for d, t in latest.items()
            if t.timestamp() - written.get(d, float("-inf")) >= self.refresh_s
        }

    def committed(self, due: dict[str, datetime]) -> None:
        for d, t in due.items():
            self._written[d] = t.timestamp()


class DatabaseUnavailable(Exception):
    """The writer gave up reaching the database because it was told to stop."""


#: One message of a batch: what it decoded to, its ack token, and its raw topic and payload
#: (None when unknown, e.g. a row built in a test): kept so that a message the database
#: refuses can still become a dead letter with its original bytes.
Entry = tuple[Row | DeadLetter, Any, str | None, bytes | None]


@dataclass
class WriteBatch:
    """Decoded messages waiting for one flush, in arrival order, with their ack tokens.

    ``urgent`` is set when a panel event carrying an alarm (fire, fault …) joins the batch:
    the service then commits at once instead of waiting out the flush window, so an alarm
    is never held back to be batched with telemetry. ``entries`` keeps every message in
    arrival order with its raw bytes (for poison isolation); ``rows``, ``dead`` and
    ``acks`` are the views the writer uses on the fast path.
    """

    rows: dict[str, list[Row]] = field(default_factory=lambda: {t: [] for t in STREAM_COLUMNS})
    dead: list[DeadLetter] = field(default_factory=list)
    acks: list[Any] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    first_at: float = 0.0
    urgent: bool = False

    @classmethod
    def of(cls, entries: Sequence[Entry]) -> WriteBatch:
        """A batch of ``entries`` (a part of another batch, in order)."""
        batch = cls()
        batch.extend(entries, time.monotonic())
        return batch

    def add(
        self,
        item: Row | DeadLetter,
        ack: Any,
        topic: str | None = None,
        payload: bytes | None = None,
    ) -> None:
        self.extend([(item, ack, topic, payload)], time.monotonic())

    def extend(self, items: Sequence[Entry], arrived: float) -> None:
        """Add many entries (the writer takes them from the inbox in bulk); ``arrived``:
        when the oldest of them was received (``time.monotonic()``), from which the flush
        deadline counts."""
        if not items:
            return
        if not self.acks:
            self.first_at = arrived
        rows, dead, acks = self.rows, self.dead.append, self.acks.append
        tables = TABLE_OF_ROW
        for entry in items:
            item = entry[0]
            table = tables.get(type(item))
            if table is None:
                dead(item)  # type: ignore[arg-type]
            else:
                rows[table].append(item)  # type: ignore[arg-type]
                if table == "events" and not ALARM_FLAGS.isdisjoint(item.flags):  # type: ignore[union-attr]
                    self.urgent = True
            acks(entry[1])
        self.entries.extend(items)

    def replace(self, items: dict[int, Row | DeadLetter]) -> None:
        """Entry ``i`` decodes to ``items[i]`` now (after a registry reload); the views
        are rebuilt once."""
        if not items:
            return
        entries = self.entries
        for i, item in items.items():
            _, ack, topic, payload = entries[i]
            entries[i] = (item, ack, topic, payload)
        rebuilt = WriteBatch.of(entries)
        self.rows, self.dead, self.urgent = rebuilt.rows, rebuilt.dead, rebuilt.urgent

    def keep_dead(self, keep: Callable[[DeadLetter], bool]) -> int:
        """Write only the dead letters ``keep`` accepts; the others stay in the batch (they
        are acknowledged with it) but are not stored. Returns how many were dropped."""
        before = len(self.dead)
        self.dead = [d for d in self.dead if keep(d)]
        return before - len(self.dead)

    def __len__(self) -> int:
        return len(self.acks)


@dataclass
class FlushResult:
    """What one flush did. ``rejected``: the poison messages it turned into dead letters
    (each also counted in ``dead_letters``); ``transactions``: commits it took (1 unless
    a poison batch was split)."""

    stored: dict[str, int]
    duplicates: dict[str, int]
    dead_letters: int
    seconds: float
    rejected: list[DeadLetter] = field(default_factory=list)
    transactions: int = 1

    def merge(self, other: FlushResult) -> None:
        for table, n in other.stored.items():
            self.stored[table] = self.stored.get(table, 0) + n
        for table, n in other.duplicates.items():
            self.duplicates[table] = self.duplicates.get(table, 0) + n
        self.dead_letters += other.dead_letters
        self.rejected.extend(other.rejected)
        self.transactions += other.transactions


class Poison(Exception):
    """A batch failed because of its data (see :func:`database_unavailable`)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(describe(cause))
        self.cause = cause


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
        *,
        payload_cap: int = DEFAULT_PAYLOAD_CAP,
    ) -> None:
        self._payload_cap = payload_cap
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
                streams.create_staging(conn)
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
        """Run ``fn(conn)``, reconnecting and retrying while the database is unavailable
        (:func:`~firewatch.storage.errors.database_unavailable`) until it succeeds or
        ``stop`` is set (then :class:`DatabaseUnavailable`). Any other error propagates
        unchanged. ``fn`` must be safe to repeat: a failed attempt's transaction was
        rolled back."""
        while True:
            conn = self.connection()
            try:
                return fn(conn)
            except psycopg.Error as err:
                if not database_unavailable(err):
                    raise
                self._metrics.flush_errors.inc()
                self.close()
                self._wait(f"database call failed: {err}".strip())

    def flush(self, batch: WriteBatch) -> FlushResult:
        """Commit the batch (idempotently). Retries through outages; isolates poison
        messages into dead letters (module docstring). Raises only
        :class:`DatabaseUnavailable` (when stopped while the database is down)."""
        started = time.perf_counter()
        due = self._last_seen.due(batch)
        try:
            result = self._attempt(batch, due)
        except Poison as err:
            log.warning(
                "batch of %d messages refused by the database (%s): isolating the offending "
                "messages",
                len(batch),
                err,
            )
            result = self._isolate(batch, err)
            try:  # advisory, written apart so that it cannot be what fails the halves
                self._attempt(WriteBatch(), due)
            except Poison as last_seen_err:
                log.error("device_last_seen not updated: %s", last_seen_err)
        self._last_seen.committed(due)
        result.seconds = time.perf_counter() - started
        return result

    def _attempt(self, batch: WriteBatch, due: dict[str, datetime] | None) -> FlushResult:
        """One transaction for ``batch``; :class:`Poison` if the data is at fault."""
        try:
            return self.call(lambda conn: self._write(conn, batch, due))
        except DatabaseUnavailable:
            raise
        except Exception as err:  # the data's fault: psycopg errors and encoding errors alike
            self._metrics.flush_errors.inc()
            self._recover_connection()
            raise Poison(err) from err

    def _recover_connection(self) -> None:
        """After a failed transaction the connection is idle again, unless the failure
        happened mid-COPY in a way that left it unusable: then start a new one."""
        conn = self._conn
        if conn is not None and (conn.closed or conn.broken):
            self.close()

    def _isolate(self, batch: WriteBatch, first: Poison) -> FlushResult:
        """Split a poison batch until each refused message stands alone (module docstring)."""
        total = FlushResult({}, {}, 0, 0.0, transactions=0)
        pending: list[tuple[list[Entry], Poison]] = []
        entries = batch.entries
        half = len(entries) // 2
        if len(entries) == 1:
            pending.append((entries, first))
        else:  # the whole batch already failed: start with its halves
            pending += [(entries[half:], first), (entries[:half], first)]
        while pending:
            part, _known = pending.pop()
            if len(part) == 1:
                total.merge(self._reject(part[0], _known))
                continue
            try:
                total.merge(self._attempt(WriteBatch.of(part), None))
            except Poison as err:
                mid = len(part) // 2
                pending += [(part[mid:], err), (part[:mid], err)]  # left half first
        return total

    def _reject(self, entry: Entry, err: Poison) -> FlushResult:
        """Try one message alone; if the database refuses it, store its dead letter."""
        item, ack, topic, payload = entry
        try:
            return self._attempt(WriteBatch.of([entry]), None)
        except Poison as alone:
            err = alone
        if isinstance(item, DeadLetter):
            topic, payload = item.topic, item.payload
        dead = DeadLetter(
            item.received_at,
            topic if topic is not None else f"(no topic: {type(item).__name__} of {item[0]})",
            payload if payload is not None else repr(item).encode("utf-8", "backslashreplace"),
            Reason.DB_REJECTED,
            f"the database refused it: {err}",
        )
        log.error("message on %s refused by the database: %s", dead.topic[:200], err)
        try:
            result = self._attempt(WriteBatch.of([(dead, ack, topic, payload)]), None)
        except Poison as again:
            # Even its dead letter is refused (a schema change nobody foresaw): keep what
            # can be kept rather than stop the stream behind it in a crash loop.
            what = f"payload {len(dead.payload)} bytes, topic {len(dead.topic)} characters"
            detail = f"{dead.detail[:400]}; its dead letter ({what}) was refused too: {again}"
            dead = DeadLetter(
                dead.received_at, dead.topic[:200], dead.payload[:256], Reason.DB_REJECTED, detail
            )
            log.critical("dead letter refused, storing a shortened one: %s", again)
            result = self._attempt(WriteBatch.of([(dead, ack, topic, payload)]), None)
        result.rejected.append(dead)
        return result

    def _write(
        self,
        conn: psycopg.Connection[Any],
        batch: WriteBatch,
        last_seen: dict[str, datetime] | None,
    ) -> FlushResult:
        """The batch in one transaction (:func:`firewatch.storage.streams.write_batch`)."""
        with conn.transaction():
            n = streams.write_batch(conn, batch.rows, batch.dead, last_seen, self._payload_cap)
        return FlushResult(n.stored, n.duplicates, n.dead_letters, 0.0)


def recheck_unknown(batch: WriteBatch, redecode: Callable[[DeadLetter], Row | DeadLetter]) -> None:
    """Re-decode unknown-device dead letters after a registry reload (a device registered
    moments ago must not be dead-lettered). Keeps arrival order of acks unchanged."""
    found: dict[int, Row | DeadLetter] = {}
    for i, entry in enumerate(batch.entries):
        item = entry[0]
        if type(item) is DeadLetter and item.reason is Reason.UNKNOWN_DEVICE:
            again = redecode(item)
            if again != item:
                found[i] = again
    batch.replace(found)
