"""The notification outbox in PostgreSQL: ``outbox`` rows and their ``outbox_deliveries`` log.

**Writing.** Alert changes write their notifications with :func:`enqueue` in their own
transaction (``storage/alerts.py``) and ``NOTIFY firewatch_outbox`` (delivered at commit):
roll the change back and its notifications vanish.

**Claiming** (the dispatcher, ``alerting/dispatcher.py``). :func:`claim` is one autocommit
statement: it takes due rows with ``FOR UPDATE SKIP LOCKED``, sets a lease
(``lease_until``), counts the attempt, and commits at once: no transaction is open while
HTTP requests run (a long transaction would hold back the xmin horizon that the row feeds
follow, ``storage/feed.py``). Any number of dispatchers (threads, processes, hosts) may
claim: SKIP LOCKED and the lease give each row to one of them. A dispatcher that dies
mid-delivery leaves a lease that expires, and the row is tried again: delivery is *at least
once*.

**Results.** :func:`mark_delivered`, :func:`schedule_retry` and :func:`mark_dead` apply one
attempt's outcome only while the row is still that attempt's claim (same attempt number); a
late result of an expired lease does not override the newer claim, except a success, which
always marks the row delivered. :func:`log_attempt` writes the attempt's log row.

**Suppressed** rows (:func:`enqueue_suppressed`) are person notifications that the
escalation's per-unit rate limit held back: recorded with the reason, never claimed.

All due, lease and retry times are the **database's** clock (``now()``), the one clock all
dispatchers share whatever host they run on, and the clock of the ``available_at`` default
of the rows :func:`enqueue` inserts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from firewatch.storage import channels

COMMAND_CENTER = "command_center"  # a confirmed real fire, for the fire command center
SUPERVISOR = "supervisor"  # escalations' supervisor level, warnings, hazards
NOTIFY = "notify"  # a notification gateway for the unit's contacts
# escalation to a person (issue 12, docs/escalation.md): recipient {"to", "name", ...}
VOICE = "voice"  # a call through the SMS/voice provider
SMS = "sms"  # a text through the SMS/voice provider
EMAIL = "email"  # an e-mail over SMTP
CHANNELS = (COMMAND_CENTER, SUPERVISOR, NOTIFY, VOICE, SMS, EMAIL)
"""Known outbox channels (``outbox.channel``), in delivery priority order."""
PERSON_CHANNELS = (VOICE, SMS, EMAIL)
"""The channels that reach a person (the per-unit rate limit counts them)."""


@dataclass(frozen=True)
class OutboxRow:
    """A claimed outbox row; ``attempt`` is its attempt number (``outbox.attempts`` after
    the claim)."""

    id: int
    channel: str
    alert_id: int | None
    recipient: Any
    payload: Any
    created_at: datetime
    attempt: int


def enqueue(
    cur: psycopg.Cursor[Any],
    alert_id: int | None,
    channel: str,
    payload: Mapping[str, Any],
    recipient: Mapping[str, Any] | None = None,
) -> None:
    """A notification for the dispatcher, in the caller's transaction."""
    cur.execute(
        "INSERT INTO outbox (alert_id, channel, recipient, payload) VALUES (%s, %s, %s, %s)",
        (alert_id, channel, Jsonb(dict(recipient or {})), Jsonb(dict(payload))),
    )
    cur.execute("SELECT pg_notify(%s, '')", (channels.OUTBOX,))


def enqueue_suppressed(
    conn: psycopg.Connection[Any],
    alert_id: int | None,
    channel: str,
    payload: Mapping[str, Any],
    recipient: Mapping[str, Any],
    reason: str,
) -> int:
    """A notification that is recorded but never sent (status ``suppressed``, ``reason``
    in ``last_error``; the escalation's rate limit), in the caller's transaction; its id.
    The dispatcher never claims it."""
    row = conn.execute(
        "INSERT INTO outbox (alert_id, channel, recipient, payload, status, last_error)"
        " VALUES (%s, %s, %s, %s, 'suppressed', %s) RETURNING id",
        (alert_id, channel, Jsonb(dict(recipient)), Jsonb(dict(payload)), reason),
    ).fetchone()
    assert row is not None
    return int(row[0])


_CLAIM = """
WITH due AS (
    SELECT id FROM outbox
    WHERE status = 'pending' AND channel = ANY(%(channels)s) AND available_at <= now()
      AND (lease_until IS NULL OR lease_until < now())
    ORDER BY {order}
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox o SET lease_until = now() + make_interval(secs => %(lease)s),
                    attempts = o.attempts + 1
FROM due WHERE o.id = due.id
RETURNING o.id, o.channel, o.alert_id, o.recipient, o.payload, o.created_at, o.attempts
"""
_CLAIM_ONE_CHANNEL = _CLAIM.format(order="available_at, id")  # the partial index's order
_CLAIM_CHANNELS = _CLAIM.format(order="(channel = 'command_center') DESC, available_at, id")

_DELIVERED = """
UPDATE outbox SET status = 'delivered', delivered_at = now(), lease_until = NULL
WHERE id = %s AND status = 'pending'
RETURNING extract(epoch FROM now() - created_at)::float8
"""
_RETRY = """
UPDATE outbox SET available_at = now() + make_interval(secs => %s), lease_until = NULL,
                  last_error = %s
WHERE id = %s AND status = 'pending' AND attempts = %s
"""
_DEAD = """
UPDATE outbox SET status = 'dead', lease_until = NULL, last_error = %s
WHERE id = %s AND status = 'pending' AND attempts = %s
"""
_LOG = """
INSERT INTO outbox_deliveries (outbox_id, attempt, url, status_code, error, duration_ms,
                               provider_message_id)
SELECT %s, %s, %s, %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM outbox WHERE id = %s)
"""


def claim(
    conn: psycopg.Connection[Any], channels: Sequence[str], n: int, lease_s: float
) -> list[OutboxRow]:
    """Claim up to ``n`` due rows of ``channels`` for ``lease_s`` seconds (several channels:
    ``command_center`` first), in the database's order of due rows."""
    sql = _CLAIM_ONE_CHANNEL if len(channels) == 1 else _CLAIM_CHANNELS
    got = conn.execute(sql, {"channels": list(channels), "n": n, "lease": lease_s}).fetchall()
    return [OutboxRow(*r) for r in got]


def mark_delivered(conn: psycopg.Connection[Any], row: OutboxRow) -> float | None:
    """The row was delivered: seconds from its creation to now, or None when it was no
    longer pending (another claim delivered it first)."""
    got = conn.execute(_DELIVERED, (row.id,)).fetchone()
    return float(got[0]) if got is not None else None


def schedule_retry(
    conn: psycopg.Connection[Any], row: OutboxRow, delay_s: float, error: str | None
) -> bool:
    """Make the row due again in ``delay_s``; False when the claim was superseded."""
    return conn.execute(_RETRY, (delay_s, error, row.id, row.attempt)).rowcount > 0


def mark_dead(conn: psycopg.Connection[Any], row: OutboxRow, error: str | None) -> bool:
    """Give the row up; False when the claim was superseded."""
    return conn.execute(_DEAD, (error, row.id, row.attempt)).rowcount > 0


def log_attempt(
    conn: psycopg.Connection[Any],
    row: OutboxRow,
    *,
    url: str,
    status_code: int | None,
    error: str | None,
    duration_s: float,
    message_id: str | None = None,
) -> None:
    """The attempt's ``outbox_deliveries`` row (none if the outbox row is gone), with the
    id the SMS/voice provider or the SMTP server gave the message (delivery receipts name
    it, ``storage/receipts.py``)."""
    conn.execute(
        _LOG,
        (row.id, row.attempt, url, status_code, error, duration_s * 1000.0, message_id, row.id),
    )


def pending_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Pending rows per channel (channels without any are absent)."""
    rows = conn.execute(
        "SELECT channel, count(*) FROM outbox WHERE status = 'pending' GROUP BY channel"
    ).fetchall()
    return {str(ch): int(n) for ch, n in rows}


def suppressed_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Rows the rate limit suppressed, per channel (channels without any are absent)."""
    rows = conn.execute(
        "SELECT channel, count(*) FROM outbox WHERE status = 'suppressed' GROUP BY channel"
    ).fetchall()
    return {str(ch): int(n) for ch, n in rows}
