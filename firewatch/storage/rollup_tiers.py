"""Writing rollups and adding them up the tiers (``rollups``).

The refresh (``firewatch/analysis/refresh.py``) writes the device-hour rows it computed
(:func:`write_device_hours`), then each level above from the rows below, always from the
stored rows, so that a parent's bucket is exactly the sum of its children's:

* a device's **day** from its 24 hours (:func:`add_device_days`; a day starts at the
  city's local midnight, ``core/rollups.py``);
* a **unit**'s hour or day from its devices' (:func:`add_units`);
* a **street**, **district** or **city** from the units and regions under it
  (:func:`add_regions`; the row's tier is the region's ``level``).

Every row records its parent as it was when computed (``parent_id``: a device's unit, a
unit's region, a region's parent). Each function returns the parent buckets to add up next:
the new parents and, for a row whose parent changed (a unit moved to another street), the
old one too, which then loses the row's share. A bucket is recomputed with
``revision + 1``; one whose children are all gone becomes zeros rather than disappearing.
Functions run in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from firewatch.core.rollups import MEASURES, Grain, Rollup, Tier

#: A bucket of a subject: ``(subject id, bucket start)``.
Target = tuple[str, datetime]
#: A parent bucket to add up next: ``(parent id, its tier, bucket start)``.
Parent = tuple[str, str, datetime]

_SQL_TYPE = {"int": "int", "float": "float8", "float | None": "float8", "dict[str, int]": "jsonb"}
_TYPES = {f.name: _SQL_TYPE[str(f.type)] for f in fields(Rollup) if f.name in MEASURES}
_COLUMNS = ", ".join(MEASURES)
_SET = ", ".join(f"{m} = EXCLUDED.{m}" for m in MEASURES)
_CONFLICT = f"""
ON CONFLICT (tier, subject_id, grain, bucket) DO UPDATE SET parent_id = EXCLUDED.parent_id,
    {_SET}, revision = rollups.revision + 1, computed_at = now()
RETURNING subject_id, bucket, parent_id
"""


def _aggregate(name: str) -> str:
    """How children's values of a measure add up to the parent's (``c``: the children)."""
    if name == "pressure_min_kpa":
        return "min(c.pressure_min_kpa)"
    if name == "shed_peak_temp_c":
        return "max(c.shed_peak_temp_c)"
    if name == "pressure_mean_kpa":  # the mean of every reading: weighted by readings
        return (
            "sum(c.pressure_mean_kpa * c.pressure_samples)"
            " / nullif(sum(c.pressure_samples) FILTER (WHERE c.pressure_mean_kpa IS NOT NULL), 0)"
        )
    if name == "faults_by_type":
        return "firewatch_jsonb_sum(c.faults_by_type)"
    if _TYPES[name] == "int":
        return f"coalesce(sum(c.{name}), 0)::int"
    return f"coalesce(sum(c.{name}), 0)::float8"


_AGGREGATES = ",\n    ".join(f"{_aggregate(m)} AS {m}" for m in MEASURES)
_TARGET = (
    "SELECT * FROM unnest(%(subject)s::text[], %(bucket)s::timestamptz[]) AS t(subject_id, bucket)"
)


def _old(tiers: str) -> str:
    """The rows about to be replaced, with their parents (``tiers``: an SQL condition)."""
    return (
        "SELECT r.subject_id, r.bucket, r.parent_id FROM rollups r"
        " JOIN target t ON t.subject_id = r.subject_id AND t.bucket = r.bucket"
        f" WHERE {tiers} AND r.grain = %(grain)s"
    )


# An empty bucket (nothing counted) is written only over a row that exists: a reading's
# hold marks the hour before it, which mostly has nothing of its own.
_WRITE_HOURS = f"""
WITH target AS (
    SELECT * FROM unnest(%(subject)s::text[], %(bucket)s::timestamptz[], %(empty)s::bool[],
                         {", ".join(f"%({m})s::{_TYPES[m]}[]" for m in MEASURES)})
        AS t(subject_id, bucket, empty, {_COLUMNS})
),
old AS ({_old("r.tier = 'device'")}),
up AS (
    INSERT INTO rollups (tier, subject_id, grain, bucket, parent_id, {_COLUMNS})
    SELECT 'device', t.subject_id, 'hour', t.bucket, d.unit_id,
           {", ".join(f"t.{m}" for m in MEASURES)}
    FROM target t JOIN devices d ON d.id = t.subject_id
    WHERE NOT t.empty
       OR EXISTS (SELECT 1 FROM old o WHERE o.subject_id = t.subject_id AND o.bucket = t.bucket)
    {_CONFLICT}
)
SELECT subject_id, bucket, parent_id FROM up
UNION SELECT subject_id, bucket, parent_id FROM old
"""

_DEVICE_DAYS = f"""
WITH target AS ({_TARGET}),
agg AS (
    SELECT t.subject_id, t.bucket,
    {_AGGREGATES}
    FROM target t
    LEFT JOIN rollups c ON c.tier = 'device' AND c.grain = 'hour'
     AND c.subject_id = t.subject_id AND c.bucket >= t.bucket
     AND c.bucket < t.bucket + interval '1 day'
    GROUP BY t.subject_id, t.bucket
),
old AS ({_old("r.tier = 'device'")}),
up AS (
    INSERT INTO rollups (tier, subject_id, grain, bucket, parent_id, {_COLUMNS})
    SELECT 'device', a.subject_id, 'day', a.bucket, d.unit_id, {_COLUMNS}
    FROM agg a JOIN devices d ON d.id = a.subject_id
    {_CONFLICT}
)
SELECT subject_id, bucket, parent_id FROM up
UNION SELECT subject_id, bucket, parent_id FROM old
"""

# A unit's or a region's bucket from the rows whose parent it is. {children}: which rows.
_PARENTS = f"""
WITH target AS ({_TARGET}),
agg AS (
    SELECT t.subject_id, t.bucket,
    {_AGGREGATES}
    FROM target t
    LEFT JOIN rollups c ON {{children}} AND c.grain = %(grain)s
     AND c.parent_id = t.subject_id AND c.bucket = t.bucket
    GROUP BY t.subject_id, t.bucket
),
old AS ({{old}}),
up AS (
    INSERT INTO rollups (tier, subject_id, grain, bucket, parent_id, {_COLUMNS})
    SELECT {{tier}}, a.subject_id, %(grain)s, a.bucket, {{parent}}, {_COLUMNS}
    FROM agg a {{join}}
    {_CONFLICT}
),
parents AS (
    SELECT parent_id, bucket FROM up UNION SELECT parent_id, bucket FROM old
)
SELECT p.parent_id, g.level, p.bucket FROM parents p JOIN regions g ON g.id = p.parent_id
"""
_UNITS = _PARENTS.format(
    children="c.tier = 'device'",
    old=_old("r.tier = 'unit'"),
    tier="'unit'",
    parent="u.region_id",
    join="JOIN units u ON u.id = a.subject_id",
)
_REGIONS = _PARENTS.format(
    children="c.tier <> 'device'",
    old=_old("r.tier IN ('street', 'district', 'city')"),
    tier="g.level",
    parent="g.parent_id",
    join="JOIN regions g ON g.id = a.subject_id",
)


def _targets(targets: Collection[Target]) -> dict[str, Any]:
    ordered = sorted(targets)
    return {"subject": [s for s, _ in ordered], "bucket": [b for _, b in ordered]}


def write_device_hours(
    conn: psycopg.Connection[Any], rollups: Sequence[Rollup]
) -> set[tuple[str, datetime, str]]:
    """Upsert device-hour rows (devices no longer registered are skipped, and so is an
    empty bucket that has no row yet); returns ``(device, hour, unit)`` of every row
    written, and of every replaced row with its old unit: what to add up next."""
    if not rollups:
        return set()
    for r in rollups:
        if r.tier is not Tier.DEVICE or r.grain is not Grain.HOUR:
            raise ValueError(f"not a device-hour rollup: {r.tier}/{r.grain} {r.subject_id}")
    ordered = sorted(rollups, key=lambda r: (r.subject_id, r.bucket))
    params: dict[str, Any] = {
        "subject": [r.subject_id for r in ordered],
        "bucket": [r.bucket for r in ordered],
        "empty": [r == _empty(r) for r in ordered],
        "grain": Grain.HOUR.value,
    }
    for m in MEASURES:
        values = [getattr(r, m) for r in ordered]
        params[m] = [Jsonb(v) for v in values] if _TYPES[m] == "jsonb" else values
    rows = conn.execute(_WRITE_HOURS, params).fetchall()
    return {(str(dev), bucket, str(parent)) for dev, bucket, parent in rows if parent is not None}


def _empty(r: Rollup) -> Rollup:
    return Rollup(r.tier, r.subject_id, r.grain, r.bucket)


def add_device_days(conn: psycopg.Connection[Any], days: Collection[Target]) -> set[Target]:
    """Each ``(device, day start)`` from the device's stored hours of that day; returns
    the ``(unit, day)`` buckets to add up next."""
    if not days:
        return set()
    params = {**_targets(days), "grain": Grain.DAY.value}
    rows = conn.execute(_DEVICE_DAYS, params).fetchall()
    return {(str(parent), bucket) for _, bucket, parent in rows if parent is not None}


def add_units(
    conn: psycopg.Connection[Any], grain: Grain, targets: Collection[Target]
) -> set[Parent]:
    """Each ``(unit, bucket)`` from its devices' rows of ``grain``; returns the region
    buckets to add up next, with the region's tier."""
    if not targets:
        return set()
    rows = conn.execute(_UNITS, {**_targets(targets), "grain": Grain(grain).value}).fetchall()
    return {(str(p), str(level), b) for p, level, b in rows}


def add_regions(
    conn: psycopg.Connection[Any], grain: Grain, targets: Collection[Target]
) -> set[Parent]:
    """Each ``(region, bucket)`` from the units and regions under it, of ``grain``;
    returns the parent regions' buckets to add up next."""
    if not targets:
        return set()
    rows = conn.execute(_REGIONS, {**_targets(targets), "grain": Grain(grain).value}).fetchall()
    return {(str(p), str(level), b) for p, level, b in rows}


def day_start(hour: datetime, offset_h: int) -> datetime:
    """The start of the local day (UTC ``offset_h``) an hour bucket belongs to."""
    local = hour + timedelta(hours=offset_h)
    return local.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=offset_h)


_PRUNE = """
DELETE FROM rollups WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM rollups WHERE grain = %(grain)s AND bucket < %(before)s LIMIT %(limit)s
))
"""


def prune(
    conn: psycopg.Connection[Any], grain: Grain, before: datetime, *, limit: int = 10_000
) -> int:
    """Delete up to ``limit`` rows of ``grain`` whose bucket is before ``before``; returns
    how many (call again while it returns ``limit``)."""
    cur = conn.execute(_PRUNE, {"grain": Grain(grain).value, "before": before, "limit": limit})
    return cur.rowcount


def lock_refresh(conn: psycopg.Connection[Any]) -> None:
    """Take the refresh's session lock (waits for another refresh to finish its round):
    two refreshes must not write the same buckets from different snapshots."""
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,)).fetchone()


def unlock_refresh(conn: psycopg.Connection[Any]) -> None:
    """Release :func:`lock_refresh`'s lock."""
    conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,)).fetchone()


_LOCK_KEY = 0x524F4C4C  # "ROLL"
