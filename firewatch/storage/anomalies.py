"""Anomaly episodes and analytics checkpoints in PostgreSQL.

Transactions: every function here is exactly one SQL statement and never begins, commits
or rolls back. In autocommit mode that statement is its own transaction; inside the
caller's transaction it is part of it. The intended use is the analytics service saving
what a batch produced together with the feed position that produced it::

    with conn.transaction():
        upsert_anomalies(conn, anomalies)
        save_checkpoint(conn, shard, batch.cursor.to_json(), state, fmt, rows)

so that after a crash the anomalies, the detectors' state and the cursor agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from firewatch.core.anomalies import Anomaly, AnomalyKey
from firewatch.storage import channels

# One statement for the whole batch: the rows arrive as parallel arrays. A conflicting
# episode is updated only by a newer revision, so replaying an older version (analytics
# restarted from an earlier checkpoint) never overwrites what is stored. unit_id, kind,
# origin and detected_at keep their first values: they describe how the episode began.
_UPSERT = """
WITH incoming AS (
    SELECT * FROM unnest(
        %(device_id)s::text[], %(unit_id)s::text[], %(detector)s::text[], %(kind)s::text[],
        %(metric)s::text[], %(component)s::text[], %(origin)s::text[], %(severity)s::text[],
        %(score)s::float8[], %(started_at)s::float8[], %(detected_at)s::float8[],
        %(last_at)s::float8[], %(ended_at)s::float8[], %(explanation)s::text[],
        %(evidence)s::text[], %(model_version)s::int8[], %(revision)s::int4[]
    ) AS i (device_id, unit_id, detector, kind, metric, component, origin, severity, score,
            started_at, detected_at, last_at, ended_at, explanation, evidence, model_version,
            revision)
), changed AS (
    INSERT INTO anomalies AS a (
        device_id, unit_id, detector, kind, metric, component, origin, severity, score,
        started_at, detected_at, last_at, ended_at, explanation, evidence, model_version,
        revision)
    SELECT device_id, unit_id, detector, kind, metric, component, origin, severity, score,
           to_timestamp(started_at), to_timestamp(detected_at), to_timestamp(last_at),
           to_timestamp(ended_at), explanation, evidence::jsonb, model_version, revision
    FROM incoming
    ON CONFLICT (device_id, detector, metric, component, started_at) DO UPDATE SET
        severity = EXCLUDED.severity,
        score = EXCLUDED.score,
        last_at = EXCLUDED.last_at,
        ended_at = EXCLUDED.ended_at,
        explanation = EXCLUDED.explanation,
        evidence = EXCLUDED.evidence,
        model_version = EXCLUDED.model_version,
        revision = EXCLUDED.revision,
        updated_at = now(),
        change_xid = pg_current_xact_id()::text::bigint
    WHERE EXCLUDED.revision > a.revision
    RETURNING 1
), notified AS (
    -- At most one notification, and only when something changed; delivered at commit.
    SELECT pg_notify(%(channel)s, '')
    FROM (SELECT 1 FROM changed LIMIT 1) AS first_change
)
SELECT (SELECT count(*) FROM changed), (SELECT count(*) FROM notified)
"""

_SAVE = """
INSERT INTO analytics_checkpoints (shard, cursor, state, state_format, rows_processed)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (shard) DO UPDATE SET
    cursor = EXCLUDED.cursor, state = EXCLUDED.state, state_format = EXCLUDED.state_format,
    rows_processed = EXCLUDED.rows_processed, saved_at = now()
"""

_LOAD = """
SELECT shard, cursor, state, state_format, rows_processed, saved_at
FROM analytics_checkpoints WHERE shard = %s
"""


@dataclass(frozen=True)
class Checkpoint:
    """One shard's saved analytics state (a row of ``analytics_checkpoints``)."""

    shard: str
    cursor: dict[str, Any]
    state: bytes
    state_format: int
    rows_processed: int
    saved_at: datetime


def upsert_anomalies(conn: psycopg.Connection[Any], anomalies: Sequence[Anomaly]) -> int:
    """Insert new episodes and apply newer revisions of known ones; return how many rows
    were inserted or updated (older or equal revisions are ignored and not counted).

    One round trip for the whole sequence. If it holds several versions of one episode
    (same :class:`AnomalyKey`), only the highest revision (the last of equals) is sent.
    Sends NOTIFY :data:`~firewatch.storage.channels.ANOMALIES` (delivered at commit) when
    the count is > 0.
    Times are Unix seconds, stored with microsecond precision by ``to_timestamp``.

    Raises ValueError for a non-finite time or score (before touching the database) and
    psycopg errors unchanged, e.g. :class:`psycopg.errors.CheckViolation` for a score
    outside [0, 1]. No transaction handling: see the module docstring.
    """
    latest: dict[AnomalyKey, Anomaly] = {}
    for a in anomalies:
        times = (a.started_at, a.detected_at, a.last_at, a.score)
        if not all(math.isfinite(t) for t in times) or (
            a.ended_at is not None and not math.isfinite(a.ended_at)
        ):
            raise ValueError(f"anomaly {a.key} has a non-finite time or score")
        prev = latest.get(a.key)
        if prev is None or a.revision >= prev.revision:
            latest[a.key] = a
    if not latest:
        return 0
    rows = list(latest.values())
    params = {
        "device_id": [a.device_id for a in rows],
        "unit_id": [a.unit_id for a in rows],
        "detector": [a.detector for a in rows],
        "kind": [a.kind for a in rows],
        "metric": [a.metric for a in rows],
        "component": [a.component for a in rows],
        "origin": [a.origin.value for a in rows],
        "severity": [a.severity.value for a in rows],
        "score": [float(a.score) for a in rows],
        "started_at": [float(a.started_at) for a in rows],
        "detected_at": [float(a.detected_at) for a in rows],
        "last_at": [float(a.last_at) for a in rows],
        "ended_at": [None if a.ended_at is None else float(a.ended_at) for a in rows],
        "explanation": [a.explanation for a in rows],
        # Detectors put numpy scalars and arrays into evidence; orjson serialises them.
        "evidence": [
            orjson.dumps(a.evidence, option=orjson.OPT_SERIALIZE_NUMPY).decode() for a in rows
        ],
        "model_version": [a.model_version for a in rows],
        "revision": [a.revision for a in rows],
        "channel": channels.ANOMALIES,
    }
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(_UPSERT, params).fetchone()
    assert row is not None
    return int(row[0])


def save_checkpoint(
    conn: psycopg.Connection[Any],
    shard: str,
    cursor_json: dict[str, Any],
    state: bytes,
    state_format: int,
    rows_processed: int,
) -> None:
    """Create or replace ``shard``'s checkpoint (``saved_at`` = the transaction's now()).

    ``cursor_json`` is stored as jsonb (e.g. ``FeedCursor.to_json()``), ``state`` as
    opaque bytes whose layout ``state_format`` names. No transaction handling: see the
    module docstring. Raises psycopg errors unchanged."""
    conn.execute(_SAVE, (shard, Jsonb(cursor_json), state, state_format, rows_processed))


def load_checkpoint(conn: psycopg.Connection[Any], shard: str) -> Checkpoint | None:
    """``shard``'s checkpoint, or None if it has never saved one."""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(_LOAD, (shard,)).fetchone()
    if row is None:
        return None
    name, cursor, state, state_format, rows_processed, saved_at = row
    return Checkpoint(name, cursor, bytes(state), int(state_format), int(rows_processed), saved_at)


_RECENT = """
SELECT a.detected_at, a.severity, a.kind, a.device_id, a.unit_id, a.component, a.detector,
       a.started_at, a.ended_at, a.explanation
FROM anomalies a
WHERE (NOT %(open_only)s OR a.ended_at IS NULL)
ORDER BY a.detected_at DESC, a.id DESC
LIMIT %(limit)s
"""


def recent_anomalies(
    conn: psycopg.Connection[Any], *, limit: int = 20, open_only: bool = False
) -> list[dict[str, Any]]:
    """The newest anomaly episodes (or only the open ones), newest first, as dicts with
    ISO times; for ``firewatch db anomalies``."""
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(_RECENT, {"limit": limit, "open_only": open_only}).fetchall()
    names = (
        "detected_at",
        "severity",
        "kind",
        "device_id",
        "unit_id",
        "component",
        "detector",
        "started_at",
        "ended_at",
        "explanation",
    )
    out = []
    for row in rows:
        d = dict(zip(names, row, strict=True))
        for k in ("detected_at", "started_at", "ended_at"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        out.append(d)
    return out
