"""The webhook contract between the dispatcher and its receivers: headers and the
HMAC-SHA256 signature. Receivers (the fire command center, a notification gateway) check a
delivery with :func:`verify` and deduplicate it by ``X-Firewatch-Delivery``.

The scheme itself lives in ``core/signatures.py``, because the API checks the SMS/voice
provider's delivery receipts with it too (and the API may not import alerting); the names
are re-exported here for receivers that know this module.
"""

from __future__ import annotations

from firewatch.core.signatures import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_TOLERANCE_S,
    TIMESTAMP_HEADER,
    sign,
    verify,
)

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_TOLERANCE_S",
    "TIMESTAMP_HEADER",
    "sign",
    "verify",
]
