"""Which rollup buckets to recompute: the refresh cursor, the dirty ``(device, hour)``
marks read from what changed, and the queue of marked buckets (``analysis_cursor``,
``rollup_pending``; reads of ``telemetry``, ``anomalies``, ``alert_events``, ``alerts``,
``alert_transitions``).

The refresh follows the same transaction-id technique as the committed-row feed
(``storage/xid_feed.py``, ``storage/feed.py``): every stream row, anomaly version and alert
event carries the id of the transaction that wrote it, and ``horizon =
pg_snapshot_xmin(pg_current_snapshot())`` is a point below which no transaction is still
running, so nothing with a smaller id can appear later. The cursor is one number, ``xid``:
every row written by a transaction below it has been marked. A round reads the window
``[cursor.xid, upper)`` with ``upper <= horizon`` of all three sources, and queues the
``(device, hour)`` buckets those rows touch in ``rollup_pending`` together with the new
cursor, in one transaction: a crash before that commit reads the window again. Queued
buckets are recomputed later and leave the queue in the transaction that writes their rows
(``analysis/refresh.py``). The windows are read with plain statements (each sees everything
committed below the horizon taken before it), not in a write transaction: the refresh never
holds the horizon of the other feeds back while it reads.

Which buckets a row touches (docs/analysis.md, "Incremental refresh"):

* a telemetry reading at ``ts`` holds until the next reading, at most ``hold_s`` (its
  kind's offline limit): it touches the hours from ``ts - hold_s`` to ``ts + hold_s``
  (a late reading also shortens its predecessor's hold);
* an anomaly episode touches the hour it started in; a duration episode (faults,
  isolations, offline: ``core/rollups.py``) every hour from its start to now (the hours
  after its end too: they counted it while it was open);
* an alert event touches the hours of the alert's acknowledgement and of the operator's
  decision on it.

Only registered devices are marked (rollups are per registered device). Times outside
1970-2200 (``core/rows.py``) are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from firewatch.core.rollups import DECISIONS, DURATION_DETECTORS
from firewatch.core.rows import SANE_EARLIEST, SANE_LATEST
from firewatch.storage.cursors import load_cursor_json, save_cursor_json

#: A dirty bucket: a device and the start of an hour (UTC).
Mark = tuple[str, datetime]

_FORMAT = 1


@dataclass(frozen=True)
class RefreshCursor:
    """Where the refresh stands: every row whose transaction id is below ``xid`` is rolled
    up, and ongoing conditions (open duration episodes) up to ``tick`` (Unix seconds, the
    refresh's clock; None before the first round)."""

    xid: int = 0
    tick: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"format": _FORMAT, "xid": self.xid, "tick": self.tick}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> RefreshCursor:
        """Inverse of :meth:`to_json`; ValueError for anything else."""
        try:
            obj = json.loads(data) if isinstance(data, str) else data
            if obj.get("format") != _FORMAT:
                raise ValueError(f"unknown cursor format {obj.get('format')!r}")
            tick = obj["tick"]
            return cls(int(obj["xid"]), None if tick is None else float(tick))
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"not a refresh cursor: {err!r}") from err


def load_cursor(conn: psycopg.Connection[Any], name: str) -> RefreshCursor | None:
    """The saved cursor of refresh ``name``, or None if it never saved one."""
    saved = load_cursor_json(conn, "analysis_cursor", name)
    return None if saved is None else RefreshCursor.from_json(saved)


def save_cursor(conn: psycopg.Connection[Any], name: str, cursor: RefreshCursor) -> None:
    """Save the cursor, in the caller's transaction (with the rollup rows it stands for)."""
    save_cursor_json(conn, "analysis_cursor", name, cursor.to_json())


def horizon(conn: psycopg.Connection[Any]) -> tuple[int, datetime]:
    """``(horizon, database now)``: every transaction with a smaller id has finished, so
    a window below it is complete and will not change (``storage/xid_feed.py``)."""
    row = conn.execute(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, now()"
    ).fetchone()
    assert row is not None
    return int(row[0]), row[1]


_WINDOW_ROWS = """
SELECT count(*) FROM (
    SELECT 1 FROM telemetry t
    WHERE t.ingest_xid >= %(lo)s AND t.ingest_xid < %(hi)s AND t.ts >= %(floor)s
    LIMIT %(limit)s
) AS w
"""


def window_rows(
    conn: psycopg.Connection[Any], lo: int, hi: int, *, floor: datetime, limit: int
) -> int:
    """How many telemetry rows the window ``[lo, hi)`` holds, counting at most ``limit``
    (the refresh shrinks a window that holds more)."""
    row = conn.execute(_WINDOW_ROWS, {"lo": lo, "hi": hi, "floor": floor, "limit": limit})
    found = row.fetchone()
    assert found is not None
    return int(found[0])


# Readings: the hours from ts - hold to ts + hold, by the hold of the device's kind. The
# inner DISTINCT folds a device's readings of one hour into one row before the series.
_TELEMETRY = """
WITH hold (kind, secs) AS (SELECT * FROM unnest(%(kinds)s::text[], %(holds)s::float8[])),
spans AS (
    SELECT DISTINCT t.device_id,
           date_trunc('hour', t.ts - make_interval(secs => h.secs), 'UTC') AS first,
           t.ts + make_interval(secs => h.secs) AS last
    FROM telemetry t
    JOIN devices d ON d.id = t.device_id
    JOIN hold h ON h.kind = d.kind
    WHERE {where} AND t.ts >= %(sane_lo)s AND t.ts < %(sane_hi)s
)
SELECT DISTINCT s.device_id, g.hour
FROM spans s, generate_series(s.first, s.last, interval '1 hour') AS g(hour)
"""
_TELEMETRY_WINDOW = _TELEMETRY.format(
    where="t.ingest_xid >= %(lo)s AND t.ingest_xid < %(hi)s AND t.ts >= %(floor)s"
)
_TELEMETRY_SPAN = _TELEMETRY.format(where="t.ts >= %(start)s AND t.ts < %(end)s")

# Episodes: the hour they started in; duration episodes every hour from their start to now
# (an episode that ended must also take its minutes back from the hours after its end,
# counted while it was open), within [now - max_span, now + 1 day] so that an impossible
# time cannot mark years.
_EPISODE_HOURS = """
SELECT DISTINCT a.device_id, g.hour
FROM anomalies a
JOIN devices d ON d.id = a.device_id,
LATERAL generate_series(
    date_trunc('hour', greatest(a.started_at, %(oldest)s), 'UTC'),
    CASE WHEN a.detector = ANY(%(durations)s)
         THEN least(greatest(a.ended_at, %(now)s), %(now)s + interval '1 day')
         ELSE a.started_at END,
    interval '1 hour') AS g(hour)
WHERE {where} AND a.started_at >= %(sane_lo)s AND a.started_at < %(sane_hi)s
  AND (a.ended_at IS NULL OR a.ended_at < %(sane_hi)s)
"""
_ANOMALIES_WINDOW = _EPISODE_HOURS.format(where="a.change_xid >= %(lo)s AND a.change_xid < %(hi)s")
_ANOMALIES_SPAN = _EPISODE_HOURS.format(
    where="(a.started_at < %(end)s AND coalesce(a.ended_at, %(now)s) >= %(start)s)"
)

# Alerts: the hours of the acknowledgement and of the decision, of every alert with an
# event in the window.
_DECIDED = "(" + ", ".join(f"'{d}'" for d in DECISIONS) + ")"
_ALERT_HOURS = f"""
WITH changed AS ({{changed}}),
times AS (
    SELECT a.device_id, a.acknowledged_at AS at FROM alerts a JOIN changed c ON c.id = a.id
    WHERE a.acknowledged_at IS NOT NULL
    UNION ALL
    SELECT a.device_id, t.at FROM alerts a JOIN changed c ON c.id = a.id
    JOIN alert_transitions t ON t.alert_id = a.id AND t.action IN {_DECIDED}
)
SELECT DISTINCT x.device_id, date_trunc('hour', x.at, 'UTC')
FROM times x JOIN devices d ON d.id = x.device_id
WHERE x.at >= %(sane_lo)s AND x.at < %(sane_hi)s
"""
_ALERTS_WINDOW = _ALERT_HOURS.format(
    changed="SELECT DISTINCT alert_id AS id FROM alert_events WHERE xid >= %(lo)s AND xid < %(hi)s"
)
_ALERTS_SPAN = _ALERT_HOURS.format(
    changed="SELECT id FROM alerts WHERE acknowledged_at >= %(start)s"
    " AND acknowledged_at < %(end)s"
    f" UNION SELECT alert_id FROM alert_transitions WHERE action IN {_DECIDED}"
    " AND at >= %(start)s AND at < %(end)s"
)

# Ongoing conditions: the devices with an open duration episode, every hour since the last
# round (their current hour grows while the episode stays open).
_ONGOING = """
SELECT DISTINCT a.device_id, g.hour
FROM anomalies a
JOIN devices d ON d.id = a.device_id,
generate_series(date_trunc('hour', %(since)s::timestamptz, 'UTC'), %(now)s, interval '1 hour')
    AS g(hour)
WHERE a.ended_at IS NULL AND a.detector = ANY(%(durations)s)
  AND a.started_at >= %(sane_lo)s AND a.started_at < %(now)s
"""


def _base(now: datetime, max_span: timedelta) -> dict[str, Any]:
    return {
        "sane_lo": SANE_EARLIEST,
        "sane_hi": SANE_LATEST,
        "now": now,
        "oldest": now - max_span,
        "durations": list(DURATION_DETECTORS),
    }


def _marks(conn: psycopg.Connection[Any], sql: str, params: Mapping[str, Any]) -> set[Mark]:
    return {(str(d), h) for d, h in conn.execute(sql, params).fetchall()}


def marks_in_window(
    conn: psycopg.Connection[Any],
    lo: int,
    hi: int,
    *,
    floor: datetime,
    holds: Mapping[str, float],
    now: datetime,
    max_span: timedelta,
) -> set[Mark]:
    """The buckets touched by what transactions ``[lo, hi)`` wrote: telemetry rows (from
    ``floor`` on: older ones were refused by ingest), anomaly versions and alert events.
    ``holds``: a reading's longest hold by device kind (seconds)."""
    params = {
        **_base(now, max_span),
        "lo": lo,
        "hi": hi,
        "floor": floor,
        "kinds": list(holds),
        "holds": list(holds.values()),
    }
    return (
        _marks(conn, _TELEMETRY_WINDOW, params)
        | _marks(conn, _ANOMALIES_WINDOW, params)
        | _marks(conn, _ALERTS_WINDOW, params)
    )


def marks_between(
    conn: psycopg.Connection[Any],
    start: datetime,
    end: datetime,
    *,
    holds: Mapping[str, float],
    now: datetime,
    max_span: timedelta,
) -> set[Mark]:
    """The buckets touched by everything whose time lies in ``[start, end)``: readings,
    episodes (and the hours duration episodes span), acknowledgements and decisions. For
    a backfill (``firewatch analysis refresh --since``)."""
    params = {
        **_base(now, max_span),
        "start": start,
        "end": end,
        "kinds": list(holds),
        "holds": list(holds.values()),
    }
    return (
        _marks(conn, _TELEMETRY_SPAN, params)
        | _marks(conn, _ANOMALIES_SPAN, params)
        | _marks(conn, _ALERTS_SPAN, params)
    )


def marks_ongoing(conn: psycopg.Connection[Any], since: datetime, now: datetime) -> set[Mark]:
    """Every hour from ``since`` to ``now`` of the devices with an open duration episode."""
    return _marks(conn, _ONGOING, {**_base(now, timedelta(0)), "since": min(since, now)})


# -- the pending buckets ------------------------------------------------------------------

_ADD_PENDING = """
INSERT INTO rollup_pending (device_id, bucket, marked_at)
SELECT d.device_id, d.bucket, %(at)s::timestamptz
FROM unnest(%(dev)s::text[], %(bucket)s::timestamptz[]) AS d(device_id, bucket)
ON CONFLICT (device_id, bucket) DO NOTHING
"""

_DUE = """
SELECT device_id, bucket FROM rollup_pending
WHERE bucket < %(closed_before)s OR marked_at <= %(marked_before)s
ORDER BY bucket, device_id LIMIT %(limit)s
"""

_CLEAR = """
DELETE FROM rollup_pending p
USING unnest(%(dev)s::text[], %(bucket)s::timestamptz[]) AS d(device_id, bucket)
WHERE p.device_id = d.device_id AND p.bucket = d.bucket
"""


def _pairs(marks: Collection[Mark]) -> dict[str, Any]:
    ordered = sorted(marks)
    return {"dev": [d for d, _ in ordered], "bucket": [b for _, b in ordered]}


def add_pending(conn: psycopg.Connection[Any], marks: Collection[Mark], at: datetime) -> int:
    """Queue ``marks`` for recomputation (a bucket already queued keeps its first mark
    time); returns how many were new. In the caller's transaction."""
    if not marks:
        return 0
    return conn.execute(_ADD_PENDING, {**_pairs(marks), "at": at}).rowcount


def due_pending(
    conn: psycopg.Connection[Any],
    *,
    closed_before: datetime,
    marked_before: datetime,
    limit: int,
) -> list[Mark]:
    """Up to ``limit`` queued buckets to recompute now, oldest first: those that started
    before ``closed_before`` (the hour has ended and settled) and those queued at or before
    ``marked_before`` (an hour still filling, recomputed now and then)."""
    params = {"closed_before": closed_before, "marked_before": marked_before, "limit": limit}
    return [(str(d), b) for d, b in conn.execute(_DUE, params).fetchall()]


def clear_pending(conn: psycopg.Connection[Any], marks: Collection[Mark]) -> int:
    """Remove recomputed buckets from the queue, in the transaction that wrote them."""
    if not marks:
        return 0
    return conn.execute(_CLEAR, _pairs(marks)).rowcount


def pending_count(conn: psycopg.Connection[Any]) -> int:
    """How many buckets wait to be recomputed."""
    row = conn.execute("SELECT count(*) FROM rollup_pending").fetchone()
    return int(row[0]) if row else 0
