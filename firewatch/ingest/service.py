"""The ingest worker: MQTT consumer -> bounded queue -> batching writer -> acks.

Threads: the MQTT network thread decodes and validates the messages of each socket read and
puts them on a bounded queue in one step; the calling thread runs the writer loop (flush by
size or after ``ingest_flush_interval_ms``), commits, then releases the acks. Shutdown is
one sequence: stop taking messages, flush what was taken, send the acks, disconnect (keeping
the broker session), close the database, log one summary line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from firewatch.core.backoff import Backoff
from firewatch.core.contract import subscription
from firewatch.core.settings import Settings
from firewatch.ingest.codec import DeadLetter, Decoder, Limits, Reason, Row
from firewatch.ingest.consumer import AckToken, Message, MqttConsumer
from firewatch.ingest.metrics import IngestMetrics
from firewatch.ingest.registry import DeviceRegistry
from firewatch.ingest.writer import Batch, BatchWriter, DatabaseUnavailable, recheck_unknown
from firewatch.storage.maintenance import maintain

log = logging.getLogger(__name__)

MAINTENANCE_EVERY_S = 3600.0

Item = tuple[Row | DeadLetter, AckToken | None]


class Inbox:
    """Bounded FIFO between the network thread (:meth:`put_many`, one call per socket read)
    and the writer (:meth:`take`). ``queue.Queue`` costs a lock round trip and a notify per
    item; this costs one per read and one per batch. It remembers when each read arrived,
    so that a batch's flush deadline counts from its oldest message's arrival."""

    def __init__(self, limit: int) -> None:
        self._items: deque[Item] = deque()
        self._arrivals: deque[list[float]] = deque()  # [items left of a read, monotonic time]
        self._cond = threading.Condition(threading.Lock())
        self._limit = limit

    def __len__(self) -> int:
        return len(self._items)

    def put_many(self, items: list[Item]) -> None:
        """Append ``items``; blocks while the inbox is full (only if the broker ignores our
        Receive Maximum: then the network thread stops reading, which is TCP backpressure)."""
        if not items:
            return
        with self._cond:
            while len(self._items) >= self._limit:
                self._cond.wait()
            self._items.extend(items)
            self._arrivals.append([len(items), time.monotonic()])
            self._cond.notify()

    def take(self, limit: int, wait: float) -> tuple[list[Item], float]:
        """Up to ``limit`` items, waiting up to ``wait`` seconds for the first; and when the
        oldest of them arrived (``time.monotonic()``; 0.0 if none)."""
        with self._cond:
            items = self._items
            if not items and wait > 0:
                self._cond.wait(wait)
            n = min(limit, len(items))
            if not n:
                return [], 0.0
            popleft = items.popleft
            out = [popleft() for _ in range(n)]
            arrivals = self._arrivals
            oldest = arrivals[0][1]
            while n:
                head = arrivals[0]
                used = min(n, int(head[0]))
                n -= used
                head[0] -= used
                if not head[0]:
                    arrivals.popleft()
            self._cond.notify()  # a producer blocked on a full inbox
            return out, oldest


@dataclass
class IngestStats:
    """Totals for the shutdown summary (and tests)."""

    received: int = 0
    stored: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    dead_letters: int = 0
    flushes: int = 0
    unflushed: int = 0
    started: float = field(default_factory=time.monotonic)

    def summary(self, consumer: MqttConsumer | None) -> str:
        stored = ", ".join(f"{k} {v}" for k, v in sorted(self.stored.items())) or "nothing"
        reconnect_note = ""
        if consumer is not None:
            reconnect_note = (
                f", acks sent {consumer.acks_sent}, acks dropped after reconnect "
                f"{consumer.acks_dropped}, left for redelivery {consumer.ignored_after_close}"
            )
        return (
            f"ingest stopped after {time.monotonic() - self.started:.1f}s: received "
            f"{self.received}, stored {stored}; duplicates {self.duplicates}, dead letters "
            f"{self.dead_letters}, flushes {self.flushes}, unflushed {self.unflushed}"
            f"{reconnect_note}"
        )


class IngestService:
    """One ingest worker. :meth:`run` blocks until ``stop`` is set, then shuts down cleanly."""

    def __init__(self, settings: Settings, database_url: str, mqtt_url: str) -> None:
        self.settings = settings
        self.database_url = database_url
        self.mqtt_url = mqtt_url
        self.metrics = IngestMetrics()
        self.registry = DeviceRegistry()
        self.stats = IngestStats()
        self.metrics_port: int | None = None
        self.ready = threading.Event()
        self._inbox = Inbox(2 * settings.ingest_max_inflight)
        self._limits = Limits(
            settings.max_payload_bytes,
            timedelta(seconds=settings.max_clock_skew_future_s),
            timedelta(seconds=settings.max_backlog_age_s),
        )
        self._decoder = Decoder(
            root=settings.topic_root,
            lookup=self.registry.lookup,
            snapshot=self.registry.snapshot,
            limits=self._limits,
        )
        self._last_maintenance = 0.0

    # --- network thread ------------------------------------------------------------------
    def _decode(self, topic: str, payload: bytes, received_at: datetime) -> Row | DeadLetter:
        return self._decoder(topic, payload, received_at)

    def _handle(self, messages: list[Message], received_at: datetime) -> None:
        """Decode one socket read's messages (``received_at``: when it was read) and queue
        them in arrival order."""
        decode_one = self._decoder
        self._inbox.put_many(
            [(decode_one(topic, payload, received_at), token) for topic, payload, token in messages]
        )

    # --- writer thread (the caller's) ----------------------------------------------------------
    def _on_db_connect(self, conn: psycopg.Connection[Any]) -> None:
        self.registry.reload(conn)
        self._maintain(conn)

    def _maintain(self, conn: psycopg.Connection[Any]) -> None:
        result = maintain(conn, self.settings)
        self._last_maintenance = time.monotonic()
        if result.created or result.dropped:
            log.info("partitions: %d created, %d dropped", result.created, result.dropped)

    def _collect(self, batch: Batch, wait: float) -> None:
        """Add queued items to ``batch``: block up to ``wait`` for the first, then drain."""
        room = self.settings.ingest_batch_size - len(batch)
        if room > 0:
            items, arrived = self._inbox.take(room, wait)
            batch.extend(items, arrived)

    def _flush(self, writer: BatchWriter, consumer: MqttConsumer, batch: Batch) -> None:
        unknown = {d.topic.split("/")[-2] for d in batch.dead if d.reason is Reason.UNKNOWN_DEVICE}
        found = 0
        if unknown:
            found = writer.call(lambda conn: self.registry.refresh_ids(conn, unknown))
        if found:
            recheck_unknown(batch, lambda d: self._decode(d.topic, d.payload, d.received_at))
        result = writer.flush(batch)
        m = self.metrics
        for table, n in result.stored.items():
            m.stored.labels(table).inc(n)
            self.stats.stored[table] = self.stats.stored.get(table, 0) + n
        for table, n in result.duplicates.items():
            m.duplicates.labels(table).inc(n)
            self.stats.duplicates += n
        for reason, n in Counter(d.reason.value for d in batch.dead).items():
            m.dead_letters.labels(reason).inc(n)
        self.stats.dead_letters += result.dead_letters
        self.stats.received += len(batch)
        self.stats.flushes += 1
        m.batch_size.observe(len(batch))
        m.flush_seconds.observe(result.seconds)
        consumer.ack(batch.acks)  # only now: the rows are committed
        committed = time.time()
        m.commit_lag.observe_many(
            [committed - row.ts.timestamp() for rows in batch.rows.values() for row in rows]
        )

    def run(self, stop: threading.Event) -> IngestStats:
        """Consume until ``stop`` is set. Raises only on programming errors."""
        s = self.settings
        if s.ingest_metrics_port:
            try:
                self.metrics_port = self.metrics.serve(s.ingest_metrics_host, s.ingest_metrics_port)
            except OSError as err:  # keep ingesting: losing /metrics must not lose data
                log.error("cannot serve /metrics on port %d: %s", s.ingest_metrics_port, err)
        flush_after = s.ingest_flush_interval_ms / 1000
        writer = BatchWriter(
            self.database_url,
            self.metrics,
            Backoff(s.backoff_initial_s, s.backoff_max_s),
            stop,
            on_connect=self._on_db_connect,
        )
        consumer = MqttConsumer(
            self.mqtt_url,
            client_id=s.ingest_client_id,
            subscription=subscription(s.topic_root, s.ingest_group),
            handler=self._handle,
            metrics=self.metrics,
            backoff=Backoff(s.backoff_initial_s, s.backoff_max_s),
            session_expiry_s=s.ingest_session_expiry_s,
            receive_maximum=s.ingest_max_inflight,
        )
        try:
            writer.connection()  # registry and partitions before the first message
        except DatabaseUnavailable:
            writer.close()
            return self.stats
        batch = Batch()
        with writer, consumer:
            self.ready.set()
            try:
                while not stop.is_set():
                    wait = flush_after - (time.monotonic() - batch.first_at) if batch else 0.1
                    self._collect(batch, max(wait, 0.0))
                    due = batch and (
                        len(batch) >= s.ingest_batch_size
                        or batch.urgent  # an alarm is committed at once
                        or time.monotonic() - batch.first_at >= flush_after
                    )
                    if due:
                        self._flush(writer, consumer, batch)
                        batch = Batch()
                    if not batch:
                        self._periodic(writer)
                # Shutdown: stop taking work -> flush -> ack -> close.
                consumer.close_intake()
                self._collect(batch, 0.0)
                while batch:
                    self._flush(writer, consumer, batch)
                    batch = Batch()
                    self._collect(batch, 0.0)
            except DatabaseUnavailable:
                self.stats.unflushed = len(batch) + len(self._inbox)
            consumer.close()
        log.info(self.stats.summary(consumer))
        return self.stats

    def _periodic(self, writer: BatchWriter) -> None:
        """Idle-time upkeep: registry refresh and hourly partition maintenance."""
        if self.registry.age() > self.settings.ingest_registry_refresh_s:
            writer.call(self.registry.reload)
        if time.monotonic() - self._last_maintenance > MAINTENANCE_EVERY_S:
            writer.call(self._maintain)
