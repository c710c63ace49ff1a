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

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from firewatch.core.backoff import Backoff
from firewatch.ingest.ingest_metrics import IngestMetrics

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


class Consumer(Protocol):
    """Context manager owning one MQTT connection and its network thread.

    ``handler(messages, received_at)`` runs on the network thread while intake is open. It
    may block (that is backpressure towards the broker) but must not raise.
    """

    connected: threading.Event
    subscribed: threading.Event
    unsubscribed: threading.Event
    #: bumped on every lost connection; the high bits of this connection's ack tokens
    generation: int
    session_present: bool | None
    #: ``time.monotonic()`` of the last read that carried messages
    last_message_at: float
    acks_sent: int
    acks_dropped: int
    ignored_after_close: int

    def __enter__(self) -> Consumer: ...

    def __exit__(self, *exc: object) -> None: ...

    def close_intake(self) -> None:
        """Stop taking messages: later arrivals are neither handed over nor acknowledged,
        so the broker redelivers them to the next session. The connection stays up."""

    def end_session(self) -> None:
        """At :meth:`close`, ask the broker to delete this client's session (and anything
        still queued for it) instead of keeping it: retiring a worker for good."""

    def close(self, timeout: float = 5.0) -> None:
        """Send pending acks (up to ``timeout``), disconnect, join the network thread."""

    def ack(self, tokens: Sequence[AckToken | None]) -> None:
        """Queue acknowledgements (thread-safe); sent in order by the network thread."""

    def pending_acks(self) -> int:
        """Acknowledgements queued and not yet handed to the socket."""


def open_consumer(
    kind: ConsumerKind,
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
) -> Consumer:
    """The consumer of ``kind`` (not yet started: use it as a context manager)."""
    # Imported here so that a worker loads only the implementation it runs.
    if kind == "paho":
        from firewatch.ingest.paho_consumer import PahoConsumer as cls
    else:
        from firewatch.ingest.mqtt5_consumer import Mqtt5Consumer as cls  # type: ignore[assignment]
    return cls(
        url,
        client_id=client_id,
        subscription=subscription,
        handler=handler,
        metrics=metrics,
        backoff=backoff,
        session_expiry_s=session_expiry_s,
        receive_maximum=receive_maximum,
        keepalive=keepalive,
        unsubscribe=unsubscribe,
        ca_file=ca_file,
    )
