"""The vendor tools' reads (issue 14): one device's stored messages and dead letters over a
window of receive time (for ``firewatch/core/conformance.py``), and the dead-letter list of
the API, for everyone or for one vendor's devices.

``dead_letters`` has no device column: a dead letter's device is its topic's device segment,
``{topic_root}/{unit}/{device}/{channel}``. The table is small (a quota per device and
window, expired with the streams), so it is read by ``topic LIKE`` on the root and the
topic split in SQL, without an index of its own. A topic outside the root, or not of four
levels, belongs to no device: the center sees it, no vendor does.

The stream tables are keyed by ``(device_id, ts, seq)`` and partitioned by ``ts``; a window
of *receive* time is bounded in ``ts`` by what ingest accepts (``ts`` at most
``max_ahead`` after and ``max_backlog`` before its receive time), so the scan stays within
the device's index range of those days. Status rows are read without the lower bound: a
last will carries its connection's start, which may be older than the backlog limit.

Read-only; every function runs its statements in the caller's connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import psycopg

from firewatch.core.conformance_report import Device, Message
from firewatch.core.rows import DeadLetter, Reason

#: The most messages read per channel for one report (a day at one message a second fits).
MESSAGE_CAP = 100_000

_STREAMS = (("telemetry", "telemetry"), ("event", "events"), ("status", "device_status"))

_DEVICE = "SELECT id, unit_id, kind, vendor, decommissioned_at FROM devices WHERE id = %s"


def _stream_sql(select: str, table: str) -> str:
    """``select`` over ``table``'s rows of one device in a receive-time window, with ``ts``
    bounded by what ingest accepts (status rows from above only: see the module docstring)."""
    lower = "" if table == "device_status" else "AND ts >= %(ts_from)s "
    return (
        f"SELECT {select} FROM {table} WHERE device_id = %(device)s {lower}AND ts < %(ts_to)s"
        " AND received_at >= %(since)s AND received_at < %(until)s"
    )


_MESSAGES = {
    t: _stream_sql("seq, ts, received_at", t) + " ORDER BY received_at, seq LIMIT %(limit)s"
    for _c, t in _STREAMS
}
_COUNT = {t: _stream_sql("count(*)", t) for _c, t in _STREAMS}

# A dead letter's (unit, device, channel) from its topic, NULLs unless the topic is under the
# root and has exactly those three levels below it.
_PARTS = """
CROSS JOIN LATERAL (
    SELECT CASE WHEN ok THEN p[1] END AS unit_id, CASE WHEN ok THEN p[2] END AS device_id,
           CASE WHEN ok THEN p[3] END AS channel
    FROM (SELECT p, dl.topic LIKE %(prefix)s ESCAPE '\\' AND cardinality(p) = 3 AS ok
          FROM (SELECT string_to_array(substr(dl.topic, %(skip)s), '/') AS p) s1) s2
) t
"""

_DEVICE_DEAD = (
    "SELECT dl.received_at, dl.topic, dl.payload, dl.reason, dl.detail FROM dead_letters dl"
    + _PARTS
    + """
WHERE dl.received_at >= %(since)s AND dl.received_at < %(until)s
  AND dl.topic LIKE %(device_like)s ESCAPE '\\' AND t.device_id = %(device)s
ORDER BY dl.received_at, dl.id
LIMIT %(limit)s
"""
)

_DEVICE_DEAD_COUNT = (
    "SELECT count(*) FROM dead_letters dl"
    + _PARTS
    + """
WHERE dl.received_at >= %(since)s AND dl.received_at < %(until)s
  AND dl.topic LIKE %(device_like)s ESCAPE '\\' AND t.device_id = %(device)s
"""
)

_LIST = (
    """
SELECT dl.id, dl.received_at, dl.topic, t.unit_id, t.device_id, t.channel, d.vendor,
       dl.reason, dl.detail, substring(dl.payload FROM 1 FOR %(cap)s), dl.payload_size,
       encode(dl.payload_sha256, 'hex')
FROM dead_letters dl"""
    + _PARTS
    + """
LEFT JOIN devices d ON d.id = t.device_id
WHERE (%(since)s::timestamptz IS NULL OR dl.received_at >= %(since)s)
  AND (%(reason)s::text IS NULL OR dl.reason = %(reason)s)
  AND (%(device)s::text IS NULL OR t.device_id = %(device)s)
  AND (%(vendor)s::text IS NULL OR d.vendor = %(vendor)s)
ORDER BY dl.received_at DESC, dl.id DESC
LIMIT %(limit)s
"""
)


def like_escape(text: str) -> str:
    """``text`` matched literally by ``LIKE … ESCAPE '\\'`` (``_`` and ``%`` are wildcards,
    and ids may contain ``_``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _topic_params(topic_root: str) -> dict[str, Any]:
    root = topic_root.rstrip("/")
    # substr is 1-based: the root, its slash, then the unit starts.
    return {"prefix": like_escape(root) + "/%", "skip": len(root) + 2}


@dataclass(frozen=True)
class Traffic:
    """One device's messages and dead letters in a window; ``truncated``: a channel had
    more than the cap (the first ones by receive time are here)."""

    messages: list[Message]
    dead_letters: list[DeadLetter]
    truncated: bool


@dataclass(frozen=True)
class StoredDeadLetter:
    """A dead letter as the API lists it. ``unit_id``, ``device_id`` and ``channel`` are
    the topic's (None when the topic is not ``{root}/{unit}/{device}/{channel}``);
    ``vendor`` is the registered device's (None when no device has that id). ``payload``
    is at most the cap asked for; ``payload_size`` is what arrived."""

    id: int
    received_at: datetime
    topic: str
    unit_id: str | None
    device_id: str | None
    channel: str | None
    vendor: str | None
    reason: str
    detail: str
    payload: bytes
    payload_size: int
    payload_sha256: str


def device(conn: psycopg.Connection[Any], device_id: str) -> Device | None:
    """The registered device (decommissioned ones too), or None."""
    row = conn.execute(_DEVICE, (device_id,)).fetchone()
    if row is None:
        return None
    return Device(str(row[0]), str(row[1]), str(row[2]), str(row[3]), row[4])


def _window(
    device_id: str,
    since: datetime,
    until: datetime,
    max_backlog: timedelta,
    max_ahead: timedelta,
    topic_root: str,
) -> dict[str, Any]:
    return {
        "device": device_id,
        "since": since,
        "until": until,
        "ts_from": since - max_backlog,
        "ts_to": until + max_ahead,
        "device_like": like_escape(topic_root.rstrip("/")) + "/%/" + like_escape(device_id) + "/%",
        **_topic_params(topic_root),
    }


def _reason(text: str) -> Reason:
    # A reason this version's enum does not know yet (a newer ingest wrote it) stays text:
    # the report reads it by value.
    try:
        return Reason(text)
    except ValueError:
        return cast(Reason, text)


def traffic(
    conn: psycopg.Connection[Any],
    device_id: str,
    since: datetime,
    until: datetime,
    *,
    topic_root: str,
    max_backlog: timedelta,
    max_ahead: timedelta,
    cap: int = MESSAGE_CAP,
) -> Traffic:
    """``device_id``'s stored messages (every channel) and dead letters received in
    ``[since, until)``, at most ``cap`` of each channel and of dead letters.
    ``max_backlog`` / ``max_ahead``: ingest's bounds on ``ts`` around the receive time
    (``Settings.max_backlog_age_s`` and ``max_clock_skew_future_s``)."""
    params = _window(device_id, since, until, max_backlog, max_ahead, topic_root)
    params["limit"] = cap + 1
    messages: list[Message] = []
    truncated = False
    for channel, table in _STREAMS:
        rows = conn.execute(_MESSAGES[table], params).fetchall()
        truncated = truncated or len(rows) > cap
        messages += [Message(channel, int(s), ts, rx) for s, ts, rx in rows[:cap]]
    dead_rows = conn.execute(_DEVICE_DEAD, params).fetchall()
    truncated = truncated or len(dead_rows) > cap
    dead = [
        DeadLetter(rx, topic, bytes(payload), _reason(reason), detail)
        for rx, topic, payload, reason, detail in dead_rows[:cap]
    ]
    return Traffic(messages, dead, truncated)


def traffic_counts(
    conn: psycopg.Connection[Any],
    device_id: str,
    since: datetime,
    until: datetime,
    *,
    topic_root: str,
    max_backlog: timedelta,
    max_ahead: timedelta,
) -> tuple[int, int]:
    """How many messages and dead letters of ``device_id`` were received in ``[since,
    until)`` (the CLI's progress line while it watches)."""
    params = _window(device_id, since, until, max_backlog, max_ahead, topic_root)
    stored = 0
    for _channel, table in _STREAMS:
        row = conn.execute(_COUNT[table], params).fetchone()
        stored += int(row[0]) if row else 0
    row = conn.execute(_DEVICE_DEAD_COUNT, params).fetchone()
    return stored, int(row[0]) if row else 0


def dead_letters(
    conn: psycopg.Connection[Any],
    *,
    topic_root: str,
    vendor: str | None = None,
    device_id: str | None = None,
    reason: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    payload_cap: int = 4096,
) -> list[StoredDeadLetter]:
    """Dead letters, newest first, at most ``limit``: of ``vendor``'s registered devices
    only when it is given (a topic that names no device of the vendor is left out), of
    ``device_id`` (the topic's device segment), of ``reason``, received at or after
    ``since``. Each payload is cut at ``payload_cap`` bytes."""
    params = {
        "vendor": vendor,
        "device": device_id,
        "reason": reason,
        "since": since,
        "limit": limit,
        "cap": payload_cap,
        **_topic_params(topic_root),
    }
    return [
        StoredDeadLetter(
            id=int(r[0]),
            received_at=r[1],
            topic=r[2],
            unit_id=r[3],
            device_id=r[4],
            channel=r[5],
            vendor=r[6],
            reason=r[7],
            detail=r[8],
            payload=bytes(r[9]),
            payload_size=int(r[10]),
            payload_sha256=r[11],
        )
        for r in conn.execute(_LIST, params).fetchall()
    ]
