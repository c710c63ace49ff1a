"""The database server as a whole, no table of ours: is it answering, and where its
transaction ids are."""

from __future__ import annotations

from typing import Any

import psycopg

_PING = "SELECT 1"
_XMAX = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"


def ping(conn: psycopg.Connection[Any]) -> None:
    """One trivial query: returns if the server answers on ``conn``, raises psycopg's
    error if not (a health check)."""
    conn.execute(_PING).fetchone()


def snapshot_xmax(conn: psycopg.Connection[Any]) -> int:
    """The next transaction id this server will assign (as of a fresh snapshot): no
    committed row carries an id at or above it."""
    row = conn.execute(_XMAX).fetchone()
    assert row is not None
    return int(row[0])
