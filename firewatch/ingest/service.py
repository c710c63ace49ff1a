"""The ingest worker: MQTT consumer -> bounded queue -> batching writer -> acks.

Threads: the MQTT network thread decodes and validates the messages of each socket read,
turns rows over their device's rate into dead letters (``rate_limit.py``), and puts them on
a bounded queue in one step; the calling thread runs the writer loop (flush by size or
after ``ingest_flush_interval_ms``), commits, then releases the acks. Shutdown is one
sequence: stop taking messages, flush what was taken, send the acks, disconnect (keeping
the broker session), close the database, log one summary line.

Its loop is its own (an MQTT network thread feeding a batching writer is not a database
worker's round), but ``/metrics`` follows the runtime's one rule and the shutdown line its
one convention (``runtime/metrics.py``, ``runtime/worker.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from firewatch.core.backoff import Backoff
from firewatch.core.contract import subscription
from firewatch.core.settings import Settings
from firewatch.ingest.codec import DeadLetter, Decoder, Limits, Reason, Row
from firewatch.ingest.consumer import AckToken, Consumer, Delivery, consumer_class
from firewatch.ingest.ingest_metrics import IngestMetrics
from firewatch.ingest.quota import DeadLetterQuota
from firewatch.ingest.rate_limit import DeviceRateLimiter, bucket_of
from firewatch.ingest.registry import DeviceRegistry
from firewatch.ingest.writer import BatchWriter, DatabaseUnavailable, WriteBatch, recheck_unknown
from firewatch.runtime.metrics import MetricsEndpoint
from firewatch.runtime.worker import stopped
from firewatch.storage.errors import database_unavailable, describe
from firewatch.storage.maintenance import maintain

log = logging.getLogger(__name__)

MAINTENANCE_EVERY_S = 3600.0

#: What the network thread queues per message (a writer ``Entry``): decoded, ack, raw bytes.
Item = tuple[Row | DeadLetter, AckToken | None, str | None, bytes | None]


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
    rejected: int = 0  # valid messages the database refused (stored as dead letters)
    rate_limited: int = 0  # valid messages over their device's rate (dead letters)
    over_quota: int = 0  # dead letters acknowledged and counted, not stored
    flushes: int = 0
    unflushed: int = 0
    started: float = field(default_factory=time.monotonic)

    def summary(self, consumer: Consumer | None) -> str:
        """What ingest did, for the shutdown line (:func:`firewatch.runtime.worker.stopped`)."""
        stored = ", ".join(f"{k} {v}" for k, v in sorted(self.stored.items())) or "nothing"
        reconnect_note = ""
        if consumer is not None:
            reconnect_note = (
                f", acks sent {consumer.acks_sent}, acks dropped after reconnect "
                f"{consumer.acks_dropped}, left for redelivery {consumer.ignored_after_close}"
            )
        return (
            f"received {self.received}, stored {stored}; duplicates {self.duplicates}, dead "
            f"letters {self.dead_letters} (refused by the database {self.rejected}, rate "
            f"limited {self.rate_limited}, over quota and not stored {self.over_quota}), "
            f"flushes {self.flushes}, unflushed {self.unflushed}"
            f"{reconnect_note}"
        )


class IngestService:
    """One ingest worker. :meth:`run` blocks until ``stop`` is set, then shuts down cleanly.

    With ``retire``, the worker takes over the broker session of ``ingest_client_id``
    without subscribing, unsubscribes it (so that nothing new is routed to it), stores
    whatever was queued for it, and once nothing has arrived for ``quiet_s`` seconds with
    everything acknowledged, disconnects asking the broker to delete the session: a worker
    identity leaves the shared group without its share of the traffic waiting in a queue
    nobody reads (``firewatch ingest retire``)."""

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        mqtt_url: str,
        *,
        retire: bool = False,
        quiet_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self.retire = retire
        self.quiet_s = quiet_s
        self.database_url = database_url
        self.mqtt_url = mqtt_url
        self.metrics = IngestMetrics()
        self.registry = DeviceRegistry()
        self.stats = IngestStats()
        self.metrics_port: int | None = None
        # Set once the broker has acknowledged our subscription (at once when retiring):
        # a message published after this is queued for us, never dropped by the broker.
        self.ready = threading.Event()
        self._inbox = Inbox(2 * settings.ingest_max_inflight)
        self._limits = Limits.from_settings(settings)
        self._quota = DeadLetterQuota(
            root=settings.topic_root,
            per_device=settings.dead_letter_quota_per_device,
            total=settings.dead_letter_quota_total,
            window_s=settings.dead_letter_window_s,
        )
        self._decoder = Decoder(
            root=settings.topic_root,
            lookup=self.registry.lookup,
            snapshot=self.registry.snapshot,
            limits=self._limits,
        )
        self._limiter = (
            DeviceRateLimiter(
                rate=settings.ingest_device_rate_per_s, burst=settings.ingest_device_burst
            )
            if settings.ingest_device_rate_per_s > 0
            else None
        )
        self._last_maintenance = 0.0
        self.consumer: Consumer | None = None  # while running (tests look at it)

    # --- network thread ------------------------------------------------------------------
    def _decode(self, topic: str, payload: bytes, received_at: datetime) -> Row | DeadLetter:
        return self._decoder(topic, payload, received_at)

    def _handle(self, messages: list[Delivery], received_at: datetime) -> None:
        """Decode one socket read's messages (``received_at``: when it was read), turn the
        rows over their device's rate into ``rate_limited`` dead letters, and queue them in
        arrival order."""
        decode_one = self._decoder
        limiter = self._limiter
        if limiter is None:
            self._inbox.put_many(
                [
                    (decode_one(topic, payload, received_at), token, topic, payload)
                    for topic, payload, token in messages
                ]
            )
            return
        # One clock read per socket read: its messages arrived together.
        now, admit, detail = limiter.clock(), limiter.admit, limiter.detail
        items: list[Item] = []
        for topic, payload, token in messages:
            item = decode_one(topic, payload, received_at)
            if type(item) is not DeadLetter:
                key = bucket_of(item)  # type: ignore[arg-type]
                if key is not None and not admit(key, now):
                    item = DeadLetter(received_at, topic, payload, Reason.RATE_LIMITED, detail)
            items.append((item, token, topic, payload))
        self._inbox.put_many(items)

    # --- writer thread (the caller's) ----------------------------------------------------------
    def _on_db_connect(self, conn: psycopg.Connection[Any]) -> None:
        self.registry.reload(conn)
        self._maintain(conn)

    def _maintain(self, conn: psycopg.Connection[Any]) -> None:
        """Partition / chunk upkeep, without compression (seconds per chunk: the analysis
        worker compresses). A failure that is not an outage is logged and retried an hour
        later: it must never stop ingest from storing what arrives now."""
        self._last_maintenance = time.monotonic()
        try:
            result = maintain(conn, self.settings, compress=False)
        except psycopg.Error as err:
            if database_unavailable(err):
                raise
            log.error("partition maintenance failed, retrying in an hour: %s", describe(err))
            return
        if result.created or result.dropped:
            log.info("maintenance: %s", result.summary())

    def _collect(self, batch: WriteBatch, wait: float) -> None:
        """Add queued items to ``batch``: block up to ``wait`` for the first, then drain."""
        room = self.settings.ingest_batch_size - len(batch)
        if room > 0:
            items, arrived = self._inbox.take(room, wait)
            batch.extend(items, arrived)

    def _flush(self, writer: BatchWriter, consumer: Consumer, batch: WriteBatch) -> None:
        unknown = {d.topic.split("/")[-2] for d in batch.dead if d.reason is Reason.UNKNOWN_DEVICE}
        found = 0
        if unknown:
            found = writer.call(lambda conn: self.registry.refresh_ids(conn, unknown))
        if found:
            recheck_unknown(batch, lambda d: self._decode(d.topic, d.payload, d.received_at))
        m = self.metrics
        if batch.dead:
            counted = Counter(d.reason.value for d in batch.dead)
            for reason, n in counted.items():
                m.dead_letters.labels(reason).inc(n)
            limited = counted.get(Reason.RATE_LIMITED.value, 0)
            if limited:
                m.rate_limited.inc(limited)
                self.stats.rate_limited += limited
            admit = self._quota.admit
            dropped: Counter[str] = Counter()

            def keep(d: DeadLetter) -> bool:
                if admit(d):
                    return True
                dropped[d.reason.value] += 1
                return False

            self.stats.over_quota += batch.keep_dead(keep)
            for reason, n in dropped.items():
                m.dead_letters_dropped.labels(reason).inc(n)
        result = writer.flush(batch)
        for table, n in result.stored.items():
            m.stored.labels(table).inc(n)
            self.stats.stored[table] = self.stats.stored.get(table, 0) + n
        for table, n in result.duplicates.items():
            m.duplicates.labels(table).inc(n)
            self.stats.duplicates += n
        for d in result.rejected:
            m.dead_letters.labels(d.reason.value).inc()
        self.stats.rejected += len(result.rejected)
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
        endpoint = MetricsEndpoint(self.metrics.registry, s.metrics_host, s.ingest_metrics_port)
        self.metrics_port = endpoint.serve(log)
        flush_after = s.ingest_flush_interval_ms / 1000
        writer = BatchWriter(
            self.database_url,
            self.metrics,
            Backoff(s.backoff_initial_s, s.backoff_max_s),
            stop,
            on_connect=self._on_db_connect,
            payload_cap=s.dead_letter_payload_cap_bytes,
        )
        ours = subscription(s.topic_root, s.ingest_group or None)
        forms = {subscription(s.topic_root), subscription(s.topic_root, s.ingest_group or "ingest")}
        consumer = consumer_class(s.ingest_consumer)(
            self.mqtt_url,
            client_id=s.ingest_client_id,
            subscription=None if self.retire else ours,
            # Retiring: every form the identity may have used. Running: the other form, so
            # a worker moved from plain to a group (or back) does not keep its old
            # subscription in its session (a second copy of the traffic).
            unsubscribe=sorted(forms) if self.retire else sorted(forms - {ours}),
            handler=self._handle,
            metrics=self.metrics,
            backoff=Backoff(s.backoff_initial_s, min(s.backoff_max_s, s.broker_backoff_max_s)),
            session_expiry_s=s.ingest_session_expiry_s,
            receive_maximum=s.ingest_max_inflight,
            ca_file=s.mqtt_ca_file,
        )
        self.consumer = consumer
        if self.retire:
            consumer.end_session()
        try:
            writer.connection()  # registry and partitions before the first message
        except DatabaseUnavailable:
            writer.close()
            return self.stats
        batch = WriteBatch()
        with writer, consumer:
            try:
                while not stop.is_set():
                    if not self.ready.is_set() and (self.retire or consumer.subscribed.is_set()):
                        self.ready.set()
                    wait = flush_after - (time.monotonic() - batch.first_at) if batch else 0.1
                    self._collect(batch, max(wait, 0.0))
                    due = batch and (
                        len(batch) >= s.ingest_batch_size
                        or batch.urgent  # an alarm is committed at once
                        or time.monotonic() - batch.first_at >= flush_after
                    )
                    if due:
                        self._flush(writer, consumer, batch)
                        batch = WriteBatch()
                    if not batch:
                        self._periodic(writer)
                        if self.retire and self._drained(consumer):
                            log.info("retire: the session of %s is drained", s.ingest_client_id)
                            break
                # Shutdown: stop taking work -> flush -> ack -> close.
                consumer.close_intake()
                self._collect(batch, 0.0)
                while batch:
                    self._flush(writer, consumer, batch)
                    batch = WriteBatch()
                    self._collect(batch, 0.0)
            except DatabaseUnavailable:
                self.stats.unflushed = len(batch) + len(self._inbox)
            consumer.close()
        elapsed = time.monotonic() - self.stats.started
        log.info(stopped("ingest", elapsed, self.stats.summary(consumer), digits=1))
        return self.stats

    def _drained(self, consumer: Consumer) -> bool:
        """Retiring: unsubscribed, nothing queued here or unacknowledged, and nothing
        arrived for ``quiet_s`` (the broker sends a queued session's messages as fast as
        acknowledgements free its window, so a quiet window means the queue is empty)."""
        return (
            consumer.unsubscribed.is_set()
            and not len(self._inbox)
            and not consumer.pending_acks()
            and time.monotonic() - consumer.last_message_at >= self.quiet_s
        )

    def _periodic(self, writer: BatchWriter) -> None:
        """Idle-time upkeep: registry refresh and hourly partition maintenance. Neither may
        stop ingest: a refresh that fails for another reason than an outage keeps the
        registry it has (and says so)."""
        if self.registry.age() > self.settings.ingest_registry_refresh_s:
            try:
                writer.call(self.registry.reload)
            except psycopg.Error as err:
                self.registry.touch()
                log.error("device registry not refreshed: %s", describe(err))
        if time.monotonic() - self._last_maintenance > MAINTENANCE_EVERY_S:
            writer.call(self._maintain)
