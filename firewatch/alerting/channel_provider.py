"""The SMS and voice channels: one generic HTTP provider adapter (docs/adr/0009,
docs/escalation.md, "The SMS/voice provider").

Per attempt, ``POST`` to the channel's URL (``FIREWATCH_SMS_URL`` or
``FIREWATCH_VOICE_URL``) of the JSON ``{"to", "text", "id", "callback_url"}``: the
recipient's phone number, the payload's text (``alerting/escalation.py``), the outbox id
(the provider deduplicates on it: delivery is at least once) and where the provider posts
its delivery receipts (``FIREWATCH_PROVIDER_CALLBACK_URL``, by default this host's API:
``POST /notifications/receipts``). Headers: ``Authorization: Bearer
FIREWATCH_PROVIDER_TOKEN`` when set, and the webhook signature headers
(``X-Firewatch-Delivery``, ``-Timestamp``, ``-Signature`` over the body with
``FIREWATCH_PROVIDER_SECRET``, ``core/signatures.py``), so the provider can check the
request is ours the way we check its receipts. Redirects are not followed.

The provider answers 2xx with JSON holding its message id (``message_id``, or ``id``),
which the attempt records (``outbox_deliveries.provider_message_id``) and receipts name.
A 2xx without a readable id is still a success (the message was accepted; sending it again
would text someone twice), logged. Anything else — another status, a timeout, a refused
connection — is an attempt with its error, retried by the dispatcher. Never raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from firewatch.alerting.delivery import Attempt, clean_error, error_body, http_client, redact
from firewatch.core.settings import Settings
from firewatch.core.signatures import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from firewatch.storage.outbox import OutboxRow

log = logging.getLogger(__name__)

RECEIPTS_PATH = "/notifications/receipts"
_ID_CHARS = 200


def callback_url(settings: Settings) -> str:
    """Where the provider posts receipts: ``FIREWATCH_PROVIDER_CALLBACK_URL``, else this
    host's API (``FIREWATCH_API_HOST``:``FIREWATCH_API_PORT``)."""
    if settings.provider_callback_url:
        return settings.provider_callback_url
    return f"http://{settings.api_host}:{settings.api_port}{RECEIPTS_PATH}"


def request_body(row: OutboxRow, callback: str) -> bytes:
    """The provider request's body: compact JSON, sorted keys (the bytes signed)."""
    recipient = row.recipient if isinstance(row.recipient, dict) else {}
    payload = row.payload if isinstance(row.payload, dict) else {}
    return orjson.dumps(
        {
            "to": recipient.get("to"),
            "text": payload.get("text") or payload.get("note") or "",
            "id": str(row.id),
            "callback_url": callback,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def provider_message_id(content: bytes) -> str | None:
    """The message id in a provider's answer (``message_id`` or ``id``), or None."""
    try:
        doc: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    value = doc.get("message_id", doc.get("id"))
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()[:_ID_CHARS]
    return None


class ProviderChannel:
    """One channel (``sms`` or ``voice``) of the generic HTTP provider, over one pooled
    HTTP client (``connections`` at most). Thread-safe."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        token: str | None,
        secret: str,
        callback_url: str,
        timeout_s: float,
        connections: int,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self.url = url
        self.token = token
        self.secret = secret
        self.callback_url = callback_url
        self.timeout_s = timeout_s
        self.clock = clock
        #: connect, write, read (a timeout each), reading the answer (bounded by a deadline)
        self.attempt_bound_s = 4 * timeout_s
        self._http = http_client(timeout_s, connections)

    def send(self, row: OutboxRow) -> Attempt:
        """One request to the provider for ``row``. Never raises: every failure is a result."""
        started = time.monotonic()
        recipient = row.recipient if isinstance(row.recipient, dict) else {}
        if not recipient.get("to"):
            return Attempt(row, redact(self.url), None, "the recipient has no phone number", 0.0)
        body = request_body(row, self.callback_url)
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: str(row.id),
            TIMESTAMP_HEADER: str(timestamp),
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, timestamp, body)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        status: int | None = None
        error: str | None = None
        msg_id: str | None = None
        deadline = started + self.attempt_bound_s
        try:
            with self._http.stream("POST", self.url, content=body, headers=headers) as resp:
                status = resp.status_code
                if 200 <= status < 300:
                    msg_id = provider_message_id(_read(resp, deadline))
                    if msg_id is None:
                        log.warning(
                            "outbox %d: the %s provider accepted it (HTTP %d) without a "
                            "message id: its receipts cannot be matched",
                            row.id,
                            self.name,
                            status,
                        )
                else:
                    text = error_body(resp, deadline)
                    error = f"HTTP {status}: {text}" if text else f"HTTP {status}"
        except httpx.TimeoutException as err:
            error = f"timeout ({type(err).__name__}, {self.timeout_s:g}s)"
        except httpx.HTTPError as err:
            error = f"{type(err).__name__}: {err}"
        except Exception as err:  # a bad URL, a bug: still a result, so the row is retried
            log.exception("outbox %d: %s request to %s failed", row.id, self.name, redact(self.url))
            error = f"{type(err).__name__}: {err}"
        duration = time.monotonic() - started
        return Attempt(row, redact(self.url), status, clean_error(error), duration, msg_id)

    def close(self) -> None:
        self._http.close()


def _read(resp: httpx.Response, deadline: float, limit: int = 65_536) -> bytes:
    """A success answer's body (its first ``limit`` bytes), read within ``deadline``."""
    buf = bytearray()
    try:
        for chunk in resp.iter_bytes():
            buf += chunk
            if len(buf) >= limit or time.monotonic() > deadline:
                break
    except httpx.HTTPError:
        pass
    return bytes(buf[:limit])
