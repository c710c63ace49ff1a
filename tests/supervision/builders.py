"""Supervision test data: inspectors, risk levels, times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from firewatch.storage.inspectors import add_inspector

#: A fixed "now" for supervision tests (2026-03-02 02:00 UTC, 10:00 in Xuchang).
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
DAY = 86_400.0


def inspectors(db: psycopg.Connection[Any], n: int = 6) -> list[str]:
    """``n`` active inspectors ``I-01`` ...; their codes."""
    codes = [f"I-{i:02d}" for i in range(1, n + 1)]
    for code in codes:
        add_inspector(
            db,
            code=code,
            name=f"检查员{code}",
            phone="13900000000",
            organisation="许昌市消防救援支队",
        )
    return codes


def set_level(db: psycopg.Connection[Any], unit_id: str, level: str) -> None:
    """Give a unit a current risk level the way the risk worker stores it (a score row and
    ``risk_current``), without the risk worker."""
    score = {"red": 90.0, "orange": 70.0, "yellow": 50.0, "blue": 10.0}[level]
    row = db.execute(
        "INSERT INTO risk_scores (unit_id, computed_at, as_of, score, level, score_level,"
        " breakdown, config_version) VALUES (%s, now(), now(), %s, %s, %s, '[]', 'test')"
        " RETURNING id",
        (unit_id, score, level, level),
    ).fetchone()
    assert row is not None
    db.execute(
        "INSERT INTO risk_current (unit_id, score_id, score, level, computed_at)"
        " VALUES (%s, %s, %s, %s, now()) ON CONFLICT (unit_id) DO UPDATE SET"
        " score_id = EXCLUDED.score_id, score = EXCLUDED.score, level = EXCLUDED.level",
        (unit_id, row[0], score, level),
    )


def unit_ids(db: psycopg.Connection[Any]) -> list[str]:
    return [str(r[0]) for r in db.execute("SELECT id FROM units ORDER BY id").fetchall()]
