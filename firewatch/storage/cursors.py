"""Where each feed reader stands: the saved cursors of the alerting, rollup and supervision
workers, written in the transaction that did the work up to them (so a restart resumes
exactly after what was committed).

Each worker keeps its cursors in a table of its own (``alerting_cursor``,
``analysis_cursor``, ``supervision_cursor``: ``name`` text primary key, ``cursor`` jsonb,
``saved_at``), and each has its own cursor type; this module only reads and writes the JSON.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

TABLES = frozenset({"alerting_cursor", "analysis_cursor", "supervision_cursor"})
"""The cursor tables (a name outside them is refused: the table name is not a parameter)."""


def _table(table: str) -> sql.Identifier:
    if table not in TABLES:
        raise ValueError(f"not a cursor table: {table!r}")
    return sql.Identifier(table)


def load_cursor_json(conn: psycopg.Connection[Any], table: str, name: str) -> Any | None:
    """The JSON of cursor ``name`` in ``table``, or None if it was never saved."""
    query = sql.SQL("SELECT cursor FROM {} WHERE name = %s").format(_table(table))
    row = conn.execute(query, (name,)).fetchone()
    return None if row is None else row[0]


def save_cursor_json(conn: psycopg.Connection[Any], table: str, name: str, value: Any) -> None:
    """Save cursor ``name`` in ``table``, in the caller's transaction."""
    query = sql.SQL(
        "INSERT INTO {} (name, cursor) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET cursor = EXCLUDED.cursor, saved_at = now()"
    ).format(_table(table))
    conn.execute(query, (name, Jsonb(value)))
