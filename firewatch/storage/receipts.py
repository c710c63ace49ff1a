"""Delivery receipts of person notifications, in PostgreSQL (``notification_receipts``,
migration 0015; docs/escalation.md, "Receipts").

The SMS/voice provider answers each request of the dispatcher with its own message id,
which the attempt's ``outbox_deliveries`` row keeps (``provider_message_id``); later it
posts a receipt — that message id, ``delivered`` or ``failed``, and when — to
``POST /notifications/receipts`` (``api/routes/notifications.py``), which records it
here. A receipt names its outbox row through the delivery that got the id. The same
receipt posted again (same message id, status and time: providers retry) is recorded once.
Functions run in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

RECEIPT_STATUSES = ("delivered", "failed")


@dataclass(frozen=True)
class Receipt:
    """A ``notification_receipts`` row, with its outbox row's channel."""

    id: int
    outbox_id: int
    channel: str
    message_id: str
    status: str
    at: datetime
    detail: str | None
    received_at: datetime


_COLUMNS = (
    "r.id, r.outbox_id, o.channel, r.provider_message_id AS message_id, r.status, r.at,"
    " r.detail, r.received_at"
)

_RECORD = """
WITH sent AS (
    SELECT outbox_id FROM outbox_deliveries WHERE provider_message_id = %(id)s
    ORDER BY id DESC LIMIT 1
)
INSERT INTO notification_receipts (outbox_id, provider_message_id, status, at, detail)
SELECT outbox_id, %(id)s, %(status)s, %(at)s, %(detail)s FROM sent
ON CONFLICT (provider_message_id, status, at) DO NOTHING
RETURNING id
"""


def _receipt(row: Any) -> Receipt:
    return Receipt(
        id=int(row["id"]),
        outbox_id=int(row["outbox_id"]),
        channel=row["channel"],
        message_id=row["message_id"],
        status=row["status"],
        at=row["at"],
        detail=row["detail"],
        received_at=row["received_at"],
    )


def record_receipt(
    conn: psycopg.Connection[Any],
    *,
    message_id: str,
    status: str,
    at: datetime,
    detail: str | None = None,
) -> tuple[Receipt, bool] | None:
    """Record a receipt: the stored receipt and whether it is new (False: the same one was
    recorded before); None when no delivery got ``message_id`` (nothing is written)."""
    if status not in RECEIPT_STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(RECEIPT_STATUSES)}")
    params = {"id": message_id, "status": status, "at": at, "detail": detail}
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        inserted = cur.execute(_RECORD, params).fetchone()
        row = cur.execute(
            f"SELECT {_COLUMNS} FROM notification_receipts r JOIN outbox o ON o.id = r.outbox_id"
            " WHERE r.provider_message_id = %(id)s AND r.status = %(status)s AND r.at = %(at)s",
            params,
        ).fetchone()
    if row is None:
        return None
    return _receipt(row), inserted is not None


def receipts_of(conn: psycopg.Connection[Any], outbox_id: int) -> list[Receipt]:
    """The receipts of an outbox row, in the order they arrived."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_COLUMNS} FROM notification_receipts r JOIN outbox o ON o.id = r.outbox_id"
            " WHERE r.outbox_id = %s ORDER BY r.id",
            (outbox_id,),
        ).fetchall()
    return [_receipt(r) for r in rows]
