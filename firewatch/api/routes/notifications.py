"""``POST /notifications/receipts``: the SMS/voice provider's delivery receipts
(docs/escalation.md, "Receipts").

The dispatcher sends each text or call to the provider with a ``callback_url`` pointing
here, and records the message id the provider answers with
(``outbox_deliveries.provider_message_id``). Later the provider posts a receipt for that
message id: ``{"message_id", "status": "delivered" | "failed", "at", "detail"?}``, signed
like our webhooks (``core/signatures.py``): ``X-Firewatch-Timestamp`` and
``X-Firewatch-Signature: sha256=HMAC(FIREWATCH_PROVIDER_SECRET, "<timestamp>.<raw body>")``,
the timestamp within 5 minutes of this host's clock.

Checked in this order, so that nothing about the records leaks to an unsigned caller:

1. the signature over the raw body: missing, wrong, stale, or no secret configured → 401;
2. the body: not JSON, another field, a missing one, a status other than ``delivered`` /
   ``failed``, a time without its UTC offset → 422;
3. the message id: no delivery got it → 404.

Then the receipt is stored (``storage/receipts.py``) and answered with 200; the same
receipt posted again (providers retry) is answered the same way with ``"duplicate": true``
and stored once. Receipts are recorded, not acted on: a ``failed`` one does not resend.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from firewatch.api.deps import Conn, Context
from firewatch.api.schemas import ErrorOut
from firewatch.core.signatures import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from firewatch.storage.receipts import record_receipt

log = logging.getLogger("firewatch.api")

router = APIRouter(tags=["notifications"])

UNSIGNED = "missing or invalid signature"


class ReceiptIn(BaseModel):
    """A delivery receipt as the provider posts it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    message_id: str = Field(min_length=1, max_length=200, description="The provider's id.")
    status: Literal["delivered", "failed"]
    at: AwareDatetime = Field(description="When the provider delivered it or gave up.")
    detail: str | None = Field(default=None, max_length=500, description="The provider's words.")


class ReceiptOut(BaseModel):
    """The stored receipt and the notification it belongs to."""

    id: int
    outbox_id: int
    channel: str
    message_id: str
    status: str
    at: datetime
    detail: str | None
    received_at: datetime
    duplicate: bool = Field(description="The same receipt had been recorded before.")


_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no valid signature (or no provider secret set)"},
    404: {"model": ErrorOut, "description": "no notification was sent with that message id"},
}


async def raw_body(request: Request) -> bytes:
    """The request's body as sent: the signature covers these bytes."""
    return await request.body()


@router.post(
    "/notifications/receipts",
    response_model=ReceiptOut,
    responses=_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ReceiptIn.model_json_schema()}},
        }
    },
)
def post_receipt(
    body: Annotated[bytes, Depends(raw_body)],
    conn: Conn,
    ctx: Context,
    timestamp: Annotated[
        str | None, Header(alias=TIMESTAMP_HEADER, description="Unix seconds of the signature.")
    ] = None,
    signature: Annotated[
        str | None,
        Header(
            alias=SIGNATURE_HEADER,
            description='sha256=<hex HMAC-SHA256(provider secret, "<timestamp>.<body>")>',
        ),
    ] = None,
) -> ReceiptOut:
    """Record the SMS/voice provider's delivery receipt for a message it was sent (see the
    module docstring): 401 without a valid signature, 422 for a malformed body, 404 for an
    unknown message id, else 200 with the stored receipt."""
    secret = ctx.settings.provider_secret or ""
    if not (timestamp and signature and verify(secret, timestamp, body, signature)):
        if not secret:
            log.warning("receipt refused: FIREWATCH_PROVIDER_SECRET is not set")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, UNSIGNED)
    try:
        receipt = ReceiptIn.model_validate_json(body)
    except ValidationError as err:
        errors = err.errors(include_url=False)
        raise RequestValidationError(
            [{**e, "loc": ("body", *e.get("loc", ()))} for e in errors]
        ) from None
    found = record_receipt(
        conn,
        message_id=receipt.message_id,
        status=receipt.status,
        at=receipt.at,
        detail=receipt.detail,
    )
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no notification has message id {receipt.message_id!r}"
        )
    stored, new = found
    return ReceiptOut(
        id=stored.id,
        outbox_id=stored.outbox_id,
        channel=stored.channel,
        message_id=stored.message_id,
        status=stored.status,
        at=stored.at,
        detail=stored.detail,
        received_at=stored.received_at,
        duplicate=not new,
    )
