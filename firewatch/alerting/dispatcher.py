"""The outbox dispatcher: ``outbox`` rows -> webhooks, e-mails, texts and calls, at least
once, with retries.

Alert changes write their notifications as ``outbox`` rows in their own transaction and
``NOTIFY firewatch_outbox`` (delivered at commit). The dispatcher hands each row to its
channel's adapter (``alerting/channel.py``: one interface, ``send(row) -> Attempt``):

* ``command_center`` (``FIREWATCH_WEBHOOK_COMMAND_CENTER_URL``): a confirmed real fire, for
  the fire command center (GB 50440: within 3 s of the operator's confirmation);
* ``supervisor`` (``FIREWATCH_WEBHOOK_SUPERVISOR_URL``): escalations' supervisor level;
* ``notify`` (``FIREWATCH_WEBHOOK_NOTIFY_URL``): a notification gateway for the unit's
  contacts (``recipient`` = ``{"role", "name", "phone"}``);
* ``voice``, ``sms`` (``FIREWATCH_VOICE_URL``, ``FIREWATCH_SMS_URL``: the SMS/voice
  provider) and ``email`` (``FIREWATCH_SMTP_HOST``): escalation levels that reach a person
  (docs/escalation.md); ``recipient`` = ``{"to", "name", ...}``.

**Claiming** (``storage/outbox.py``): one autocommit statement takes due rows with ``FOR
UPDATE SKIP LOCKED``, sets a lease and counts the attempt, and commits at once: no
transaction is open while HTTP requests run. Any number of dispatchers may run; a dispatcher
that dies mid-delivery leaves a lease that expires, and the row is tried again. Delivery is
therefore *at least once*: receivers deduplicate by the outbox id (``X-Firewatch-Delivery``).
All due, lease and retry times are the database's clock; the injected ``clock`` only stamps
signatures (``X-Firewatch-Timestamp``).

**Delivery**: a webhook is one signed ``POST`` of the row's JSON envelope per attempt
(``alerting/delivery.py``), an e-mail one SMTP message (``alerting/channel_email.py``), SMS
and voice one signed request to the provider (``alerting/channel_provider.py``), whose
message id the log keeps (``outbox_deliveries.provider_message_id``, named by receipts).

**Results.** 2xx: ``delivered``. Anything else (another status, a timeout, a connection error):
retried after a jittered exponential backoff (``outbox_backoff_initial_s * 2**(attempt-1)``,
capped at ``outbox_backoff_max_s``, drawn from [delay/2, delay]) until
``outbox_max_attempts``, then ``dead``. 4xx responses are retried too, deliberately: a 401
(a rotated secret), 403 or 404 (a receiver being redeployed) is usually a configuration
matter that someone fixes, and a confirmed fire must not be dropped at the first refusal; the
cost of retrying a truly permanent refusal is at most ``outbox_max_attempts`` requests.
``last_error`` says what happened ("HTTP 401: ..."). Every attempt writes an
``outbox_deliveries`` row (attempt, url without credentials, status code, error, duration,
the provider's message id).
A result is only applied while the row is still this dispatcher's claim (same attempt
number); a late result of an expired lease is logged but does not override the newer claim,
except a success, which always marks the row delivered.

**A channel without a URL** is never claimed: its rows stay ``pending`` with their attempts
untouched, and the dispatcher logs once per channel that rows wait for a URL. Configuring the
URL later (and restarting) delivers that backlog. Rows of an unknown channel are treated the
same way.

**Latency.** :meth:`OutboxDispatcher.run` is woken by ``NOTIFY`` (polling every ``poll_s``
for retries that became due) and keeps up to ``concurrency`` deliveries in flight *per
channel*, claiming as soon as a slot frees: a hanging notification gateway fills only the
``notify`` slots and a confirmed fire is claimed and sent at once beside them. It does not
wait for a whole batch to finish, which is why it does not loop over :meth:`dispatch_once`
(which claims one batch across all channels, ``command_center`` first, sends it
concurrently, waits for every result and records them; it is for tests and one-shot use).

**Secret.** The dispatcher refuses to start (:class:`InsecureWebhookSecretError`) when a
webhook URL is configured and ``FIREWATCH_WEBHOOK_SECRET`` is the public development default
or shorter than :data:`MIN_WEBHOOK_SECRET_BYTES`: a receiver could not tell a forged fire
report from ours. Without URLs nothing is sent and any secret is accepted (the embedded demo;
``firewatch up`` generates a random secret anyway, ``firewatch/up.py``).

Shutdown: stop claiming, finish the deliveries in flight, record their results, close, one
summary line.

:meth:`OutboxDispatcher.run` is the worker runtime's loop (``runtime/worker.py``:
connections, the LISTEN thread, reconnects, ``/metrics``, ready, the summary); the
dispatcher supplies the rounds (record finished deliveries, claim into free slots) and
wakes the loop itself when a delivery finishes.
"""

from __future__ import annotations

import logging
import math
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

import psycopg

from firewatch.alerting.channel import Channel, ChannelSet, missing_setting, webhook_urls
from firewatch.alerting.delivery import Attempt
from firewatch.alerting.dispatch_metrics import DispatcherMetrics, DispatchStats
from firewatch.core.backoff import Backoff
from firewatch.core.settings import Settings
from firewatch.runtime.metrics import MetricsEndpoint
from firewatch.runtime.worker import Worker
from firewatch.storage import channels, outbox
from firewatch.storage.outbox import CHANNELS, OutboxRow

log = logging.getLogger(__name__)


APPLICATION_NAME = "firewatch-dispatcher"
LEASE_MARGIN_S = 10.0  # beyond the longest attempt: time to record the result
PENDING_CHECK_S = 5.0  # pending gauge / "no URL" check period in run()

#: The shortest webhook secret accepted while a webhook URL is configured (UTF-8 bytes).
MIN_WEBHOOK_SECRET_BYTES = 16


class InsecureWebhookSecretError(ValueError):
    """Webhook (or SMS/voice provider) URLs are configured but the signing secret is the
    public default, missing or too short."""


def check_webhook_secret(settings: Settings) -> None:
    """Raise :class:`InsecureWebhookSecretError` (one-line message naming the variables) if
    any ``FIREWATCH_WEBHOOK_*_URL`` is set and ``settings.webhook_secret`` is the public
    default of :class:`Settings` or shorter than :data:`MIN_WEBHOOK_SECRET_BYTES`, or if
    ``FIREWATCH_SMS_URL`` or ``FIREWATCH_VOICE_URL`` is set and
    ``FIREWATCH_PROVIDER_SECRET`` (which signs our requests and checks the provider's
    receipts) is unset or shorter; return otherwise (also for any secret when no URL is
    set: nothing would be signed)."""
    check_provider_secret(settings)
    configured = [f"FIREWATCH_WEBHOOK_{channel.upper()}_URL" for channel in webhook_urls(settings)]
    if not configured:
        return
    secret = settings.webhook_secret
    # The default is in the README and the source: signing with it authenticates nothing.
    if secret == Settings.model_fields["webhook_secret"].default:
        problem = "is the public development default"
    elif len(secret.encode()) < MIN_WEBHOOK_SECRET_BYTES:
        problem = f"is shorter than {MIN_WEBHOOK_SECRET_BYTES} bytes"
    else:
        return
    raise InsecureWebhookSecretError(
        f"FIREWATCH_WEBHOOK_SECRET {problem} while {', '.join(configured)} is set; set it to "
        "a random value the receivers share, e.g. "
        "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
    )


def check_provider_secret(settings: Settings) -> None:
    """The SMS/voice provider's half of :func:`check_webhook_secret`."""
    urls = {"FIREWATCH_SMS_URL": settings.sms_url, "FIREWATCH_VOICE_URL": settings.voice_url}
    secret = (settings.provider_secret or "").encode()
    if not any(urls.values()) or len(secret) >= MIN_WEBHOOK_SECRET_BYTES:
        return
    problem = f"is shorter than {MIN_WEBHOOK_SECRET_BYTES} bytes" if secret else "is not set"
    raise InsecureWebhookSecretError(
        f"FIREWATCH_PROVIDER_SECRET {problem} while {', '.join(k for k, v in urls.items() if v)}"
        " is set; set it to the random value the provider shares (it signs our requests and "
        "its receipts)"
    )


def retry_delay(
    attempt: int, initial: float, maximum: float, rng: random.Random | None = None
) -> float:
    """Seconds before the retry that follows failed attempt number ``attempt`` (1-based):
    drawn from [c/2, c] with ``c = min(maximum, initial * 2**(attempt-1))``, the jittered
    backoff of :class:`firewatch.core.backoff.Backoff`."""
    backoff = Backoff(initial, maximum, rng)
    backoff.attempts = max(0, attempt - 1)
    return backoff.next()


# -- the dispatcher -----------------------------------------------------------------------


class OutboxDispatcher:
    """Delivers outbox rows (see the module docstring). One instance is either :meth:`run`
    or driven by :meth:`dispatch_once` calls from one thread, not both at once. Use it as a
    context manager (or call :meth:`close`) when not using :meth:`run`, which closes it.

    ``poll_s``: longest wait between claims without a NOTIFY (retries that became due are
    found by it). ``concurrency``: deliveries in flight per channel. ``metrics_port``: None
    means ``settings.alerting_metrics_port``; 0 serves no ``/metrics`` (embed
    ``self.metrics.registry`` elsewhere). ``rng``: the backoff jitter's source.
    Raises :class:`InsecureWebhookSecretError` (see :func:`check_webhook_secret`) before it
    opens anything.
    """

    def __init__(
        self,
        settings: Settings,
        conninfo: str,
        *,
        clock: Callable[[], float] = time.time,
        poll_s: float = 1.0,
        concurrency: int = 4,
        metrics_port: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if poll_s <= 0 or concurrency < 1:
            raise ValueError("need poll_s > 0 and concurrency >= 1")
        Backoff(settings.outbox_backoff_initial_s, settings.outbox_backoff_max_s)  # validates
        check_webhook_secret(settings)
        self.settings = settings
        self.conninfo = conninfo
        self.clock = clock
        self.poll_s = poll_s
        self.concurrency = concurrency
        self.metrics_port = settings.alerting_metrics_port if metrics_port is None else metrics_port
        self.metrics = DispatcherMetrics()
        self.stats = DispatchStats()
        self._worker = Worker(
            "dispatcher",
            conninfo,
            log=log,
            channels=[channels.OUTBOX],
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
            metrics=MetricsEndpoint(
                self.metrics.registry, settings.metrics_host, self.metrics_port
            ),
            application_name=APPLICATION_NAME,
        )
        #: set in run() once connected, listening, and earlier results recorded
        self.ready: threading.Event = self._worker.ready
        self._workers = concurrency * len(CHANNELS)
        self._channel_set = ChannelSet(settings, clock=clock, connections=self._workers)
        #: channel -> its adapter, only the configured ones, in priority order
        self.channels: dict[str, Channel] = self._channel_set.by_name
        #: the longest one attempt of any channel takes
        self.attempt_bound_s = self._channel_set.attempt_bound_s
        self._rng = rng or random.Random()
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="outbox-deliver")
        self._conn: psycopg.Connection[Any] | None = None  # dispatch_once()'s connection
        self._done: queue.SimpleQueue[Attempt] = queue.SimpleQueue()  # run(): finished
        self._inflight: Counter[str] = Counter()  # run(): per channel
        self._unrecorded: list[Attempt] = []  # finished, not yet recorded (database down)
        self._drained: dict[str, bool] = {}  # run(): claimed fewer than asked last time
        self._polled_at = -math.inf  # run(): the last round that looked for due rows anew
        self._pending_at = -math.inf  # run(): the last pending() check
        self._warned: set[str] = set()
        self._closed = False

    # -- one batch ------------------------------------------------------------------------

    def dispatch_once(self, limit: int = 32) -> int:
        """Claim up to ``limit`` due rows of the configured channels (``command_center``
        first), deliver them concurrently, record every result; the number claimed."""
        conn = self._db()
        self._flush(conn, [])  # results an earlier call could not record
        if not self.channels or limit < 1:
            return 0
        rows = self._claim(conn, list(self.channels), limit)
        if rows:
            self._flush(conn, list(self._pool.map(self._attempt, rows)))
        return len(rows)

    def pending(self, conn: psycopg.Connection[Any] | None = None) -> dict[str, int]:
        """Pending rows per channel; updates the pending and suppressed gauges and logs, once
        per channel, rows that wait for a channel that is not configured."""
        db = conn if conn is not None else self._db()
        counts = outbox.pending_counts(db)
        for ch in {*CHANNELS, *counts}:
            self.metrics.pending.labels(ch).set(counts.get(ch, 0))
        for ch, n in outbox.suppressed_counts(db).items():
            self.metrics.suppressed.labels(ch).set(n)
        for ch, n in sorted(counts.items()):
            if ch not in self.channels and ch not in self._warned:
                self._warned.add(ch)
                log.warning(
                    "outbox: %d pending rows for channel %r wait: %s; they stay pending and "
                    "are delivered once it is configured",
                    n,
                    ch,
                    missing_setting(ch),
                )
        return counts

    # -- the service ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> DispatchStats:
        """Deliver until ``stop`` is set; reconnects with jittered backoff through database
        outages. Then finishes the deliveries in flight, records them, closes, logs one
        summary line."""
        if unconfigured := [ch for ch in CHANNELS if ch not in self.channels]:
            log.info("outbox: %s not configured: those rows stay pending", ", ".join(unconfigured))
        try:
            self._worker.run(stop, self)
        finally:
            self.close()
        return self.stats

    # -- the work (runtime.worker.Work) -------------------------------------------------

    def load(self, conn: psycopg.Connection[Any]) -> None:
        """On every (re)connect: record what an earlier session could not, and look for
        due rows at once."""
        self._flush(conn, [])
        self._polled_at = self._pending_at = -math.inf

    def step(self, conn: psycopg.Connection[Any]) -> bool:
        """Record finished deliveries, then claim due rows into each channel's free slots
        (priority order). A channel that had fewer due rows than free slots is not asked
        again until a NOTIFY or the poll: finished deliveries alone wake this too."""
        self._flush(conn, self._drain())
        now = time.monotonic()
        if self._worker.notified() or now - self._polled_at >= self.poll_s:
            self._polled_at = now
            self._drained = dict.fromkeys(self.channels, False)
        for ch in self.channels:  # priority order
            free = self.concurrency - self._inflight[ch]
            if self._drained.get(ch, False) or free <= 0:
                continue
            rows = self._claim(conn, [ch], free)
            self._drained[ch] = len(rows) < free
            for row in rows:
                self._inflight[ch] += 1
                self._pool.submit(self._job, row)
        return True  # the rest waits for a NOTIFY, a finished delivery or the poll

    def tick(self, conn: psycopg.Connection[Any]) -> None:
        """The pending gauge and the "no URL" warning, every ``PENDING_CHECK_S``."""
        now = time.monotonic()
        if now - self._pending_at >= PENDING_CHECK_S:
            self._pending_at = now
            self.pending(conn)

    def wait_s(self) -> float:
        return max(0.0, self._polled_at + self.poll_s - time.monotonic())

    def final(self, conn: psycopg.Connection[Any] | None) -> None:
        """Finish the deliveries in flight and record every result; without a live session
        (the database went away), try once on a new connection, else count them as not
        recorded (their rows are sent again after their lease)."""
        if conn is not None:
            self._flush(conn, self._finish_inflight())
            return
        self._unrecorded += self._finish_inflight()
        if not self._unrecorded:
            return
        try:
            with self._connect() as fresh:
                self._flush(fresh, [])
        except psycopg.OperationalError as err:
            self.stats.unrecorded = len(self._unrecorded)
            log.warning(
                "database: %s; %d delivery results not recorded (those rows "
                "are sent again after their lease)",
                str(err).strip(),
                len(self._unrecorded),
            )

    def lost(self, err: Exception) -> None:
        self.stats.reconnects += 1
        self.metrics.reconnects.inc()

    def summary(self) -> str:
        return self.stats.summary()

    # -- deliveries ---------------------------------------------------------------------

    def _job(self, row: OutboxRow) -> None:
        self._done.put(self._attempt(row))
        self._worker.wake()

    def _drain(self) -> list[Attempt]:
        out: list[Attempt] = []
        while True:
            try:
                attempt = self._done.get_nowait()
            except queue.Empty:
                return out
            self._inflight[attempt.row.channel] -= 1
            out.append(attempt)

    def _finish_inflight(self) -> list[Attempt]:
        """Wait for the deliveries in flight (each is bounded by its timeouts)."""
        out = self._drain()
        while sum(self._inflight.values()) > 0:
            try:
                attempt = self._done.get(timeout=self.attempt_bound_s + LEASE_MARGIN_S)
            except queue.Empty:
                log.warning(
                    "outbox: %d deliveries did not finish; their rows are sent again "
                    "after their lease",
                    sum(self._inflight.values()),
                )
                self._inflight.clear()
                break
            self._inflight[attempt.row.channel] -= 1
            out.append(attempt)
        return out

    # -- claim, attempt, record --------------------------------------------------------------

    def _claim(self, conn: psycopg.Connection[Any], channels: list[str], n: int) -> list[OutboxRow]:
        # every claimed row starts at once when n <= the pool; otherwise they queue
        lease = self.attempt_bound_s * math.ceil(n / self._workers) + LEASE_MARGIN_S
        rows = outbox.claim(conn, channels, n, lease)
        rows.sort(key=lambda r: (CHANNELS.index(r.channel) if r.channel in CHANNELS else 9, r.id))
        self.stats.claimed += len(rows)
        return rows

    def _attempt(self, row: OutboxRow) -> Attempt:
        """One delivery (a pool thread). Never raises: every failure is a result."""
        attempt = self.channels[row.channel].send(row)
        self.metrics.delivery_seconds.labels(row.channel).observe(attempt.duration_s)
        return attempt

    def _flush(self, conn: psycopg.Connection[Any], attempts: Sequence[Attempt]) -> None:
        """Record ``attempts`` and any left unrecorded; kept for later if this fails."""
        todo = [*self._unrecorded, *attempts]
        if not todo:
            return
        self._unrecorded = todo
        outcomes = self._record(conn, todo)
        self._unrecorded = []
        st, m = self.stats, self.metrics
        for attempt, (outcome, latency) in zip(todo, outcomes, strict=True):
            ch = attempt.row.channel
            st.attempts += 1
            if outcome == "superseded":
                st.superseded += 1
                continue
            m.deliveries.labels(ch, outcome).inc()
            if outcome == "delivered":
                st.delivered += 1
                if latency is not None:
                    m.latency.labels(ch).observe(latency)
            elif outcome == "retry":
                st.retried += 1
            else:
                st.dead += 1
                m.dead.labels(ch).inc()
                log.warning(
                    "outbox %d (%s) is dead after %d attempts: %s",
                    attempt.row.id,
                    ch,
                    attempt.row.attempt,
                    attempt.error,
                )

    def _record(
        self, conn: psycopg.Connection[Any], attempts: Sequence[Attempt]
    ) -> list[tuple[str, float | None]]:
        """One transaction: each row's new state and each attempt's log row."""
        s = self.settings
        out: list[tuple[str, float | None]] = []
        with conn.transaction():
            for a in attempts:
                row = a.row
                latency: float | None = None
                if a.ok:
                    latency = outbox.mark_delivered(conn, row)
                    outcome = "delivered" if latency is not None else "superseded"
                elif row.attempt >= s.outbox_max_attempts:
                    outcome = "dead" if outbox.mark_dead(conn, row, a.error) else "superseded"
                else:
                    delay = retry_delay(
                        row.attempt, s.outbox_backoff_initial_s, s.outbox_backoff_max_s, self._rng
                    )
                    retried = outbox.schedule_retry(conn, row, delay, a.error)
                    outcome = "retry" if retried else "superseded"
                outbox.log_attempt(
                    conn,
                    row,
                    url=a.url,
                    status_code=a.status_code,
                    error=a.error,
                    duration_s=a.duration_s,
                    message_id=a.message_id,
                )
                out.append((outcome, latency))
        return out

    # -- connections, lifetime -----------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        return self._worker.connect()

    def _db(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise RuntimeError("the dispatcher is closed")
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        """Wait for deliveries still running, close the HTTP client and the connection."""
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True)
        self._channel_set.close()
        if self._conn is not None:
            self._conn.close()

    def __enter__(self) -> OutboxDispatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
