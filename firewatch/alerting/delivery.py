"""Webhook delivery: one claimed outbox row (``storage/outbox.py``) as one signed HTTP POST.

``POST`` of the JSON envelope ``{"id", "channel", "alert_id", "recipient", "payload",
"created_at", "attempt"}`` (compact, sorted keys; the exact bytes sent are the bytes
signed, :func:`envelope`) with the headers ``X-Firewatch-Delivery: <outbox id>``,
``X-Firewatch-Timestamp: <unix seconds>`` and ``X-Firewatch-Signature: sha256=<hex
HMAC-SHA256(secret, "<timestamp>.<body>")>`` (``alerting/webhooks.py``: receivers check it
with ``verify``). Redirects are not followed (a signed fire report is not sent to wherever
a 3xx points).

:meth:`WebhookSender.send` never raises: a 2xx is a success; any other status (with the
start of the response body), a timeout, a refused connection or a bad URL is an
:class:`Attempt` with its error, for the dispatcher (``alerting/dispatcher.py``) to retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

import httpx
import orjson

from firewatch.alerting.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from firewatch.storage.outbox import OutboxRow

log = logging.getLogger(__name__)

USER_AGENT = "firewatch-dispatcher/1"
_ERROR_BODY_BYTES = 300
_ERROR_TEXT_CHARS = 500


def envelope(row: OutboxRow) -> bytes:
    """The request body: compact JSON with sorted keys (deterministic)."""
    return orjson.dumps(
        {
            "id": row.id,
            "channel": row.channel,
            "alert_id": row.alert_id,
            "recipient": row.recipient,
            "payload": row.payload,
            "created_at": row.created_at.astimezone(UTC).isoformat(),
            "attempt": row.attempt,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def redact(url: str) -> str:
    """The URL without user:password (for the delivery log)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url


@dataclass(frozen=True)
class Attempt:
    """The outcome of one delivery attempt, whatever the channel (``alerting/channel.py``):
    a 2xx ``status_code`` is a success (HTTP, and SMTP's 250 too)."""

    row: OutboxRow
    url: str  # where it went, without credentials (an SMTP server: smtp://host:port)
    status_code: int | None
    error: str | None
    duration_s: float
    message_id: str | None = None  # the SMS/voice provider's (or the e-mail's) message id

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def http_client(timeout_s: float, connections: int) -> httpx.Client:
    """The pooled client a channel sends through: ``timeout_s`` per phase, at most
    ``connections``, redirects not followed (a notification is not sent wherever a 3xx
    points)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    )


class WebhookSender:
    """Signed POSTs over one pooled HTTP client (``connections`` at most), each bounded by
    :attr:`attempt_bound_s`. Thread-safe: the dispatcher's pool threads share it."""

    def __init__(
        self, secret: str, *, timeout_s: float, connections: int, clock: Callable[[], float]
    ) -> None:
        self.secret = secret
        self.timeout_s = timeout_s
        self.clock = clock
        #: the longest one attempt takes: connect, write, read headers (a timeout each),
        #: reading an error body (bounded by a deadline)
        self.attempt_bound_s = 4 * timeout_s
        self._http = http_client(timeout_s, connections)

    def send(self, row: OutboxRow, url: str) -> Attempt:
        """One HTTP delivery of ``row`` to ``url``. Never raises: every failure is a result."""
        body = envelope(row)
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: str(row.id),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
        }
        status: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            with self._http.stream("POST", url, content=body, headers=headers) as resp:
                status = resp.status_code
                if not 200 <= status < 300:
                    text = error_body(resp, started + self.attempt_bound_s)
                    error = f"HTTP {status}: {text}" if text else f"HTTP {status}"
        except httpx.TimeoutException as err:
            error = f"timeout ({type(err).__name__}, {self.timeout_s:g}s)"
        except httpx.HTTPError as err:
            error = f"{type(err).__name__}: {err}"
        except Exception as err:  # a bad URL, a bug: still a result, so the row is retried
            log.exception("outbox %d: delivery to %s failed", row.id, redact(url))
            error = f"{type(err).__name__}: {err}"
        duration = time.monotonic() - started
        return Attempt(row, redact(url), status, clean_error(error), duration)

    def close(self) -> None:
        self._http.close()


def clean_error(error: str | None) -> str | None:
    """An error text as the delivery log keeps it: without NUL (text columns refuse it),
    at most 500 characters."""
    if error is None:
        return None
    return error.replace("\x00", "\\0")[:_ERROR_TEXT_CHARS]


def error_body(resp: httpx.Response, deadline: float) -> str:
    """The start of an error response's body, read within ``deadline``."""
    buf = bytearray()
    try:
        for chunk in resp.iter_bytes():
            buf += chunk
            if len(buf) >= _ERROR_BODY_BYTES or time.monotonic() > deadline:
                break
    except httpx.HTTPError:
        pass
    return " ".join(buf[:_ERROR_BODY_BYTES].decode("utf-8", "replace").split())
