"""The rollup tests' tools: a clock the test moves, refresh rounds until caught up, and
reading rollup rows back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from firewatch.analysis.refresh import Rollups
from firewatch.core.rows import TelemetryRow
from firewatch.storage.rollup_marks import RefreshCursor
from firewatch.storage.streams import create_staging, write_batch


class Clock:
    """Unix seconds that only move when the test says so."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def at(self, when: datetime) -> None:
        self.t = when.timestamp()


def settle(
    r: Rollups, conn: psycopg.Connection[Any], cursor: RefreshCursor | None = None
) -> RefreshCursor:
    """Refresh rounds until caught up (at most 50); the cursor after them."""
    cur = cursor or RefreshCursor()
    for _ in range(50):
        done, cur = r.run_round(conn, cur)
        if done.caught_up:
            return cur
    raise AssertionError("the refresh did not catch up in 50 rounds")


def rollup_row(
    conn: psycopg.Connection[Any], tier: str, subject: str, grain: str, bucket: datetime
) -> dict[str, Any] | None:
    """One stored rollup row as a dict, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM rollups WHERE tier = %s AND subject_id = %s AND grain = %s"
            " AND bucket = %s",
            (tier, subject, grain, bucket),
        ).fetchone()


def revisions(conn: psycopg.Connection[Any]) -> dict[tuple[str, str, str, datetime], int]:
    """Every stored row's revision, by (tier, subject, grain, bucket)."""
    rows = conn.execute("SELECT tier, subject_id, grain, bucket, revision FROM rollups").fetchall()
    return {(t, s, g, b): int(rev) for t, s, g, b, rev in rows}


def ingest(conn: psycopg.Connection[Any], rows: Sequence[TelemetryRow]) -> None:
    """Store telemetry as one ingest batch would (one transaction, ``ingest_xid`` set)."""
    create_staging(conn)
    with conn.transaction():
        write_batch(conn, {"telemetry": list(rows)})
