"""Unit risk in PostgreSQL: scores with their breakdown and history, the current level per
unit, warnings, and the per-tier views supervisors read.

**Writing** (the risk worker, ``firewatch/risk/service.py``). :func:`record_score` stores
one assessment: the history row (``risk_scores``), the unit's current level
(``risk_current``), and — when the level rose — a warning (``risk_warnings``) with its
notifications in the outbox (the supervisor, and the unit's contacts through the notify
gateway), all in one transaction: a warning exists exactly when its score does.

The unit's current row is locked while its new score is written, so two workers scoring
the same unit at once serialise: each sees the other's level as the previous one, and a
rise is warned about once.

**Reading** (the API). Every region tier is read through the regions tree: a unit belongs
to a street, a street to a district, a district to the city (migration 0001), so "the units
of region R" is one join over at most three levels (:data:`_UNITS_OF`).

This module owns the SQL of ``risk_scores``, ``risk_current`` and ``risk_warnings``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from firewatch.storage.outbox import NOTIFY, SUPERVISOR, enqueue
from firewatch.storage.regions import unit_contacts

LEVELS = ("red", "orange", "yellow", "blue")
"""Risk levels, worst first."""

# The units of region %(region)s, whatever its tier: a street holds units, a district
# streets, the city districts (at most three levels; CHECK constraints in 0001 fix them).
_UNITS_OF = """
SELECT u.id FROM units u
JOIN regions s ON s.id = u.region_id
LEFT JOIN regions d ON d.id = s.parent_id
LEFT JOIN regions c ON c.id = d.parent_id
WHERE %(region)s IN (s.id, d.id, c.id)
"""


@dataclass(frozen=True, slots=True)
class StoredScore:
    """What :func:`record_score` wrote: the history row's id, the level the unit had before
    (None for its first score) and the warning raised (None when the level did not rise)."""

    score_id: int
    previous_level: str | None
    warning_id: int | None


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """One stored score, as supervisors read it."""

    id: int
    unit_id: str
    computed_at: datetime
    as_of: datetime
    score: float
    level: str
    score_level: str
    forced_by: list[str]
    breakdown: Any
    config_version: str
    trigger: str


def record_score(
    conn: psycopg.Connection[Any],
    *,
    unit_id: str,
    computed_at: datetime,
    as_of: datetime,
    score: float,
    level: str,
    score_level: str,
    forced_by: Sequence[str],
    breakdown: Any,
    config_version: str,
    trigger: str,
    rises: Callable[[str | None, str], bool],
    warning_reason: str,
) -> StoredScore:
    """Store one assessment of ``unit_id`` (see the module docstring).

    ``rises(previous, level)`` decides whether ``level`` is a rise over the unit's previous
    level (None before its first score), read here under the row lock; when it is, a
    warning and its two notifications are written with the score."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT level FROM risk_current WHERE unit_id = %s FOR UPDATE", (unit_id,))
        row = cur.fetchone()
        previous = row[0] if row else None
        cur.execute(
            "INSERT INTO risk_scores (unit_id, computed_at, as_of, score, level, score_level,"
            " forced_by, breakdown, config_version, trigger)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                unit_id,
                computed_at,
                as_of,
                score,
                level,
                score_level,
                list(forced_by),
                Jsonb(breakdown),
                config_version,
                trigger,
            ),
        )
        (score_id,) = cur.fetchone() or (0,)
        cur.execute(
            "INSERT INTO risk_current (unit_id, score_id, score, level, computed_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (unit_id) DO UPDATE SET"
            " score_id = excluded.score_id, score = excluded.score, level = excluded.level,"
            " computed_at = excluded.computed_at",
            (unit_id, score_id, score, level, computed_at),
        )
        warning_id = None
        if rises(previous, level):
            cur.execute(
                "INSERT INTO risk_warnings (unit_id, score_id, from_level, to_level, reason,"
                " raised_at) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (unit_id, score_id, previous, level, warning_reason, computed_at),
            )
            (warning_id,) = cur.fetchone() or (0,)
            unit = unit_contacts(conn, unit_id)
            payload = {
                "kind": "risk_warning",
                "warning_id": warning_id,
                "unit_id": unit_id,
                "unit_name": unit[0] if unit else unit_id,
                "from_level": previous,
                "to_level": level,
                "score": round(score, 1),
                "forced_by": list(forced_by),
                "reason": warning_reason,
                "raised_at": computed_at.isoformat(),
            }
            enqueue(cur, None, SUPERVISOR, payload)
            contacts = unit[1] if unit else {}
            enqueue(cur, None, NOTIFY, payload, {"unit_id": unit_id, **contacts})
    return StoredScore(score_id, previous, warning_id)


def current_levels(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """The newest level of every scored unit."""
    with conn.cursor() as cur:
        cur.execute("SELECT unit_id, level FROM risk_current")
        return {unit: level for unit, level in cur.fetchall()}


def last_scores(conn: psycopg.Connection[Any], unit_ids: Sequence[str]) -> dict[str, ScoreRow]:
    """The newest stored score of each of ``unit_ids`` that has one."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_SCORE_COLUMNS} FROM risk_current c JOIN risk_scores s ON s.id = c.score_id"
            " WHERE c.unit_id = ANY(%s)",
            (list(unit_ids),),
        )
        return {r["unit_id"]: ScoreRow(**r) for r in cur.fetchall()}


_SCORE_COLUMNS = (
    "s.id, s.unit_id, s.computed_at, s.as_of, s.score, s.level, s.score_level, s.forced_by,"
    " s.breakdown, s.config_version, s.trigger"
)


def unit_history(
    conn: psycopg.Connection[Any], unit_id: str, since: datetime, until: datetime, limit: int
) -> list[ScoreRow]:
    """A unit's stored scores in ``[since, until]``, newest first, at most ``limit``."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_SCORE_COLUMNS} FROM risk_scores s WHERE s.unit_id = %s"
            " AND s.computed_at BETWEEN %s AND %s ORDER BY s.computed_at DESC, s.id DESC"
            " LIMIT %s",
            (unit_id, since, until, limit),
        )
        return [ScoreRow(**r) for r in cur.fetchall()]


def level_distribution(conn: psycopg.Connection[Any], region_id: str) -> list[dict[str, Any]]:
    """For each child of ``region_id`` (districts of a city, streets of a district, units of
    a street: for a street, each unit is its own row): how many units are at each level, how
    many are not scored yet, and the mean score. Children without units are listed too."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT level FROM regions WHERE id = %s", (region_id,))
        row = cur.fetchone()
        if row is None:
            return []
        if row["level"] == "street":
            cur.execute(
                "SELECT u.id AS child_id, u.name, 'unit' AS tier,"
                " count(*) FILTER (WHERE c.level = 'red') AS red,"
                " count(*) FILTER (WHERE c.level = 'orange') AS orange,"
                " count(*) FILTER (WHERE c.level = 'yellow') AS yellow,"
                " count(*) FILTER (WHERE c.level = 'blue') AS blue,"
                " count(*) FILTER (WHERE c.level IS NULL) AS unscored,"
                " avg(c.score) AS mean_score"
                " FROM units u LEFT JOIN risk_current c ON c.unit_id = u.id"
                " WHERE u.region_id = %s GROUP BY u.id, u.name ORDER BY u.id",
                (region_id,),
            )
            return list(cur.fetchall())
        cur.execute(
            """
            WITH children AS (SELECT id, name, level FROM regions WHERE parent_id = %(region)s),
            membership AS (
                SELECT ch.id AS child_id, u.id AS unit_id
                FROM children ch
                JOIN regions s ON s.id = ch.id OR s.parent_id = ch.id
                JOIN units u ON u.region_id = s.id
            )
            SELECT ch.id AS child_id, ch.name, ch.level AS tier,
                count(c.unit_id) FILTER (WHERE c.level = 'red') AS red,
                count(c.unit_id) FILTER (WHERE c.level = 'orange') AS orange,
                count(c.unit_id) FILTER (WHERE c.level = 'yellow') AS yellow,
                count(c.unit_id) FILTER (WHERE c.level = 'blue') AS blue,
                count(m.unit_id) FILTER (WHERE c.unit_id IS NULL) AS unscored,
                avg(c.score) AS mean_score
            FROM children ch
            LEFT JOIN membership m ON m.child_id = ch.id
            LEFT JOIN risk_current c ON c.unit_id = m.unit_id
            GROUP BY ch.id, ch.name, ch.level ORDER BY ch.id
            """,
            {"region": region_id},
        )
        return list(cur.fetchall())


def top_units(conn: psycopg.Connection[Any], region_id: str, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` highest-risk units of ``region_id`` (any tier): worst level first, then
    highest score; with the unit's name, street and the conditions that forced its level."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"""
            SELECT u.id AS unit_id, u.name, u.region_id AS street_id, c.level, c.score,
                   s.score_level, s.forced_by, c.computed_at
            FROM ({_UNITS_OF}) r
            JOIN units u ON u.id = r.id
            JOIN risk_current c ON c.unit_id = u.id
            JOIN risk_scores s ON s.id = c.score_id
            ORDER BY array_position(%(levels)s::text[], c.level), c.score DESC, u.id
            LIMIT %(limit)s
            """,
            {"region": region_id, "levels": list(LEVELS), "limit": limit},
        )
        return list(cur.fetchall())


def level_trend(
    conn: psycopg.Connection[Any], region_id: str, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Per day in ``[since, until]`` (UTC days): how many units of ``region_id`` were at each
    level at the end of that day (each unit's last score of that day or before). Days before
    a unit's first score do not count it."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"""
            WITH days AS (
                SELECT d::date AS day
                FROM generate_series(%(since)s::date, %(until)s::date, interval '1 day') d
            ),
            members AS ({_UNITS_OF}),
            at_end AS (
                SELECT days.day, last.level
                FROM days CROSS JOIN members m
                CROSS JOIN LATERAL (
                    SELECT s.level FROM risk_scores s
                    WHERE s.unit_id = m.id
                      AND s.computed_at < (days.day + 1)::timestamp AT TIME ZONE 'UTC'
                    ORDER BY s.computed_at DESC, s.id DESC LIMIT 1
                ) last
            )
            SELECT day,
                count(*) FILTER (WHERE level = 'red') AS red,
                count(*) FILTER (WHERE level = 'orange') AS orange,
                count(*) FILTER (WHERE level = 'yellow') AS yellow,
                count(*) FILTER (WHERE level = 'blue') AS blue
            FROM days LEFT JOIN at_end USING (day)
            GROUP BY day ORDER BY day
            """,
            {"region": region_id, "since": since, "until": until},
        )
        return list(cur.fetchall())


def warnings(
    conn: psycopg.Connection[Any], region_id: str | None, since: datetime | None, limit: int
) -> list[dict[str, Any]]:
    """Risk warnings, newest first: of ``region_id``'s units (any tier; None: all), raised at
    or after ``since`` (None: any time), at most ``limit``."""
    where = ["TRUE"]
    params: dict[str, Any] = {"limit": limit}
    if region_id is not None:
        where.append(f"w.unit_id IN ({_UNITS_OF})")
        params["region"] = region_id
    if since is not None:
        where.append("w.raised_at >= %(since)s")
        params["since"] = since
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT w.id, w.unit_id, u.name AS unit_name, w.score_id, w.from_level, w.to_level,"
            " w.reason, w.raised_at, w.acknowledged_at, w.acknowledged_by"
            " FROM risk_warnings w JOIN units u ON u.id = w.unit_id"
            f" WHERE {' AND '.join(where)} ORDER BY w.raised_at DESC, w.id DESC"
            " LIMIT %(limit)s",
            params,
        )
        return list(cur.fetchall())
