"""``skipped_rows``: stored rows a reader could not process, recorded instead of retried.

A reader that fails on a row and retries it stops everything behind that row, forever.
Readers (the analytics feed, the alerting worker) instead record the row's table, key and
the reason here, in the same transaction as the rest of what they commit, and move on.
One record per (reader, table, key): a replay after a crash does not record twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

_INSERT = """
INSERT INTO skipped_rows (reader, source, row_key, reason)
SELECT %s, s, k, r FROM unnest(%s::text[], %s::jsonb[], %s::text[]) AS u(s, k, r)
ON CONFLICT (reader, source, row_key) DO NOTHING
"""


def record_skipped(
    conn: psycopg.Connection[Any], reader: str, rows: Sequence[tuple[str, Any, str]]
) -> int:
    """Record ``(table, key, reason)`` rows skipped by ``reader``; returns how many were
    new. ``key`` must be JSON-compatible. Runs in the caller's transaction, if any."""
    if not rows:
        return 0
    cur = conn.execute(
        _INSERT,
        (
            reader,
            [t for t, _, _ in rows],
            [Jsonb(k) for _, k, _ in rows],
            [r[:1000] for _, _, r in rows],
        ),
    )
    return cur.rowcount


def recent_skipped(conn: psycopg.Connection[Any], limit: int = 50) -> list[dict[str, Any]]:
    """The newest records, newest first, as JSON-compatible dicts."""
    rows = conn.execute(
        "SELECT reader, source, row_key, reason, skipped_at FROM skipped_rows"
        " ORDER BY skipped_at DESC, id DESC LIMIT %s",
        (limit,),
    ).fetchall()
    return [
        {"reader": r[0], "table": r[1], "key": r[2], "reason": r[3], "skipped_at": r[4].isoformat()}
        for r in rows
    ]
