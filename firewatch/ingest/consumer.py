"""The MQTT side of ingest, as the worker sees it: what a consumer hands over, how it is
acknowledged, and which implementation runs (``FIREWATCH_INGEST_CONSUMER``).

Two consumers meet this contract (ADR 0013):

- ``mqtt5`` (the default, :mod:`firewatch.ingest.mqtt5_consumer`): the ``mqtt5`` package
  (a sans-I/O MQTT 5 codec in Rust) turns bytes into packets and packets into bytes; our
  code is only the socket loop. One ``recv`` takes every packet the kernel holds.
- ``paho`` (:mod:`firewatch.ingest.paho_consumer`): paho-mqtt's client, the consumer
  before issue 15. Kept for one release as a fallback and as the benchmark's comparison.

Both keep the same guarantees, and the same tests run against both (tests/ingest):

- QoS 1 with acknowledgements sent only when the worker says so (after the batch commit);
- at most Receive Maximum (``ingest_max_inflight``) unacknowledged messages out to us, which
  bounds memory: when the database is slow we stop acknowledging, the broker stops sending;
- an acknowledgement belongs to the connection its message arrived on: after a reconnect
  the broker resends every unacknowledged message and packet ids may be reused, so acks of
  an earlier connection are dropped, never sent on the new one;
- the subscription is sent on every connect, session present or not (Mosquitto 2.0
  restores a persistent session after a restart but not its shared subscriptions;
  docs/reliability.md);
- the handler gets the messages of one read as one list with one receive time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal, Self

from firewatch.core.backoff import Backoff
from firewatch.core.broker import BrokerAddress
from firewatch.ingest.ingest_metrics import IngestMetrics

log = logging.getLogger(__name__)

#: Which implementation runs (Settings.ingest_consumer).
ConsumerKind = Literal["mqtt5", "paho"]

#: Identifies one received QoS 1 message on one connection: ``generation << 16 | packet id``
#: (an int rather than an object: one is made per message).
AckToken = int


def ack_token(generation: int, mid: int) -> AckToken:
    return (generation << 16) | mid


#: One received message: topic, payload, and its ack token (None for QoS 0).
Delivery = tuple[str, bytes, AckToken | None]
#: ``handler(messages, received_at)``: the messages of one read, in arrival order.
Handler = Callable[[list[Delivery], datetime], None]


class Consumer:
    """Context manager owning one MQTT connection and its network thread: what both
    consumers share (their settings, the ack queue, the lifecycle, the counters). A
    subclass supplies :meth:`_setup` (its own state) and :meth:`_run` (the network
    thread's loop).

    ``handler(messages, received_at)`` runs on the network thread while intake is open. It
    may block (that is backpressure towards the broker) but must not raise.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        subscription: str | None,
        handler: Handler,
        metrics: IngestMetrics,
        backoff: Backoff,
        session_expiry_s: int,
        receive_maximum: int,
        keepalive: int = 30,
        unsubscribe: Sequence[str] = (),
        ca_file: Path | None = None,
    ) -> None:
        self._addr = BrokerAddress.parse(url, ca_file=ca_file)  # ca_file: for mqtts:// only
        self._client_id = client_id
        self._subscription = subscription
        self._unsubscribe = list(unsubscribe)
        self._handler = handler
        self._metrics = metrics
        self._backoff = backoff
        self._keepalive = keepalive
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        #: the session expiry stated at the final DISCONNECT (0: the broker drops the
        #: session and whatever is queued for it; see :meth:`end_session`)
        self.final_session_expiry_s = session_expiry_s
        self._acks: deque[AckToken] = deque()
        self._stop = threading.Event()
        self._intake_open = True
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.unsubscribed = threading.Event()
        #: bumped on every lost connection; the high bits of this connection's ack tokens
        self.generation = 0
        self.session_present: bool | None = None
        #: ``time.monotonic()`` of the last read that carried messages
        self.last_message_at = time.monotonic()
        self.acks_sent = 0
        self.acks_dropped = 0
        self.ignored_after_close = 0
        self._setup()
        self._thread = threading.Thread(target=self._run, name="mqtt-network", daemon=True)

    def _setup(self) -> None:
        """The subclass's own state, made with the settings above (before any thread)."""

    def _run(self) -> None:
        raise NotImplementedError

    def _wake(self) -> None:
        """Tell the network thread there is work (acks, shutdown); a polling loop need not."""

    def _release(self) -> None:
        """After the network thread ended: free what the subclass holds besides it."""

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close_intake(self) -> None:
        """Stop taking messages: later arrivals are neither handed over nor acknowledged,
        so the broker redelivers them to the next session. The connection stays up."""
        self._intake_open = False
        self._metrics.ready.set(0)

    def end_session(self) -> None:
        """At :meth:`close`, ask the broker to delete this client's session (and anything
        still queued for it) instead of keeping it: retiring a worker for good."""
        self.final_session_expiry_s = 0

    def close(self, timeout: float = 5.0) -> None:
        """Send pending acks (up to ``timeout``), disconnect (keeping the session unless
        :meth:`end_session`), join the network thread."""
        self.close_intake()
        deadline = time.monotonic() + timeout
        while self._acks and self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.005)
        self._stop.set()
        self._wake()
        self._thread.join(timeout=timeout + 5)
        self._release()

    def ack(self, tokens: Sequence[AckToken | None]) -> None:
        """Queue acknowledgements (thread-safe); sent in order by the network thread."""
        self._acks.extend(t for t in tokens if t is not None)
        self._wake()

    def pending_acks(self) -> int:
        """Acknowledgements queued and not yet handed to the socket."""
        return len(self._acks)

    def _retry_wait(self, why: str) -> None:
        self._metrics.reconnects.labels("mqtt").inc()
        delay = self._backoff.next()
        log.warning("%s; retrying in %.2fs", why, delay)
        self._stop.wait(delay)


def consumer_class(kind: ConsumerKind) -> type[Consumer]:
    """The consumer implementation of ``kind``; make one with :class:`Consumer`'s
    arguments and use it as a context manager."""
    # Imported here so that a worker loads only the implementation it runs.
    if kind == "paho":
        from firewatch.ingest.paho_consumer import PahoConsumer

        return PahoConsumer
    from firewatch.ingest.mqtt5_consumer import Mqtt5Consumer

    return Mqtt5Consumer
