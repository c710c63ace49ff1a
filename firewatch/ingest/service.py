"""The ingest worker: MQTT consumer -> bounded queue -> batching writer -> acks.

Threads: the MQTT network thread decodes and validates each message and puts it on a
bounded queue; the calling thread runs the writer loop (flush by size or after
``ingest_flush_interval_ms``), commits, then releases the acks. Shutdown is one sequence:
stop taking messages, flush what was taken, send the acks, disconnect (keeping the broker
session), close the database, log one summary line.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from firewatch.core.backoff import Backoff
from firewatch.core.contract import subscription
from firewatch.core.settings import Settings
from firewatch.ingest.codec import DeadLetter, Limits, Reason, Row, decode
from firewatch.ingest.consumer import AckToken, MqttConsumer
from firewatch.ingest.metrics import IngestMetrics
from firewatch.ingest.registry import DeviceRegistry
from firewatch.ingest.writer import Batch, BatchWriter, DatabaseUnavailable, recheck_unknown
from firewatch.storage.maintenance import maintain

log = logging.getLogger(__name__)

MAINTENANCE_EVERY_S = 3600.0

Item = tuple[Row | DeadLetter, AckToken | None]


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
        self._queue: queue.Queue[Item] = queue.Queue(maxsize=2 * settings.ingest_max_inflight)
        self._limits = Limits(
            settings.max_payload_bytes,
            timedelta(seconds=settings.max_clock_skew_future_s),
            timedelta(seconds=settings.max_backlog_age_s),
        )
        self._last_maintenance = 0.0

    # --- network thread ------------------------------------------------------------------
    def _decode(self, topic: str, payload: bytes, received_at: datetime) -> Row | DeadLetter:
        return decode(
            topic,
            payload,
            received_at,
            root=self.settings.topic_root,
            lookup=self.registry.lookup,
            limits=self._limits,
        )

    def _handle(self, topic: str, payload: bytes, token: AckToken | None) -> None:
        item = self._decode(topic, payload, datetime.now(UTC))
        # Blocks only if the broker ignores our Receive Maximum: then TCP backpressure.
        self._queue.put((item, token))

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
        limit = self.settings.ingest_batch_size
        try:
            item, token = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
        except queue.Empty:
            return
        batch.add(item, token)
        while len(batch) < limit:
            try:
                item, token = self._queue.get_nowait()
            except queue.Empty:
                return
            batch.add(item, token)

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
        for d in batch.dead:
            m.dead_letters.labels(d.reason.value).inc()
        self.stats.dead_letters += result.dead_letters
        self.stats.received += len(batch)
        self.stats.flushes += 1
        m.batch_size.observe(len(batch))
        m.flush_seconds.observe(result.seconds)
        consumer.ack(batch.acks)  # only now: the rows are committed
        committed = time.time()
        observe = m.commit_lag.observe
        for rows in batch.rows.values():
            for row in rows:
                observe(committed - row.ts.timestamp())

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
                self.stats.unflushed = len(batch) + self._queue.qsize()
            consumer.close()
        log.info(self.stats.summary(consumer))
        return self.stats

    def _periodic(self, writer: BatchWriter) -> None:
        """Idle-time upkeep: registry refresh and hourly partition maintenance."""
        if self.registry.age() > self.settings.ingest_registry_refresh_s:
            writer.call(self.registry.reload)
        if time.monotonic() - self._last_maintenance > MAINTENANCE_EVERY_S:
            writer.call(self._maintain)
