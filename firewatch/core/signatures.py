"""HMAC-SHA256 signatures of HTTP bodies: the one scheme Firewatch uses both ways.

Outgoing, the dispatcher signs every webhook and every request to the SMS/voice provider
(``alerting/delivery.py``, ``alerting/channel_provider.py``); incoming, the API checks the
provider's delivery receipts with the same scheme and the provider's shared secret
(``api/routes/notifications.py``). Pure: no I/O; the clock is read only when the caller
gives no ``now``.

The headers: ``X-Firewatch-Timestamp: <unix seconds>`` and ``X-Firewatch-Signature:
sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>``; ``X-Firewatch-Delivery``
names the outbox row (receivers deduplicate on it: delivery is at least once).
``alerting/webhooks.py`` re-exports these names for webhook receivers.
"""

from __future__ import annotations

import hashlib
import hmac
import time

DELIVERY_HEADER = "X-Firewatch-Delivery"
TIMESTAMP_HEADER = "X-Firewatch-Timestamp"
SIGNATURE_HEADER = "X-Firewatch-Signature"

SIGNATURE_TOLERANCE_S = 300.0
"""How far a signature's timestamp may be from the receiver's clock (replay window)."""


def sign(secret: str | bytes, timestamp: int | str, body: bytes | str) -> str:
    """``sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>``: the signature header."""
    key = secret.encode() if isinstance(secret, str) else secret
    raw = body.encode() if isinstance(body, str) else body
    message = str(timestamp).encode("ascii") + b"." + raw
    return "sha256=" + hmac.new(key, message, hashlib.sha256).hexdigest()


def verify(
    secret: str | bytes,
    timestamp: int | str,
    body: bytes | str,
    signature: str,
    *,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """For receivers: is ``signature`` (the ``X-Firewatch-Signature`` header) the sender's
    signature of ``body`` (the raw request body) at ``timestamp`` (the
    ``X-Firewatch-Timestamp`` header), and is that timestamp within ``tolerance_s`` of
    ``now`` (default: this machine's clock)? Constant-time comparison; a stale or future
    timestamp, or a malformed one, is refused, and so is an empty secret (nothing it signs
    authenticates anyone). Deduplicate by ``X-Firewatch-Delivery`` besides: a delivery may
    be retried."""
    if not secret:
        return False
    text = str(timestamp).strip()
    if not (text.isascii() and text.isdigit()):
        return False
    current = time.time() if now is None else now
    if abs(current - int(text)) > tolerance_s:
        return False
    expected = sign(secret, text, body).encode("ascii")
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))
