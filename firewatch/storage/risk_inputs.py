"""What risk scoring reads about each unit's *current* state, in one set-based query.

The history of a unit (its daily rollups) is read through ``storage/rollups.py``, its
supervision record (hazards, inspections, credit) through the supervision storage; this
module reads what only the live tables know: which conditions hold right now. A condition
holds while its anomaly episode is open (``anomalies.ended_at IS NULL``): the episode is
what detectors and the panel's own status bits say, so it is the same truth the operators'
alerts are built from (docs/analytics.md).

* ``supervision`` / ``building_class``: the unit's registry class and building class.
* ``devices`` / ``panels``: registered devices of the unit (all kinds / fire alarm panels);
  ``detectors``: detectors behind its panels where the registry says (a panel's metadata
  ``loops`` x ``detectors_per_loop``), else 0.
* ``offline_devices`` / ``offline_panels``: devices (panels) with an open
  ``device_offline`` / ``device_silent`` episode;
  ``panel_offline_h``: how long the longest-offline panel has been offline (hours, 0 if
  none) -- the automatic fire alarm system not reporting.
* ``isolated_components`` / ``isolated_max_h``: panel components (detectors, call points)
  isolated now, and the longest isolation (hours).
* ``open_faults`` / ``oldest_fault_h``: open equipment-fault episodes (panel, power and bus
  faults: what the rollups count as faults; a supervisory signal is a state, not a fault)
  and the age of the oldest (hours).
* ``confirmed_fires`` / ``confirmed_fire_at``: alerts an operator confirmed as a real fire in
  the last ``fire_lookback``, and when the newest was confirmed (None if none). The rollups
  count them too, but only once the rollup worker has refreshed that hour; this is at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from firewatch.core.rollups import Rollup, rollup_of

OFFLINE_KINDS = ("device_offline", "device_silent")
ISOLATION_KINDS = ("component_isolated",)
FAULT_KINDS = ("panel_fault", "power_fault", "bus_fault", "transmission_fault")

_FACTS = """
WITH scope AS (
    SELECT id AS unit_id FROM units WHERE %(all)s OR id = ANY(%(units)s)
),
devs AS (
    SELECT d.unit_id, count(*) AS devices, count(*) FILTER (WHERE d.kind = 'panel') AS panels,
        -- detectors behind the panels, where the registry says (loops x detectors per loop)
        coalesce(sum(
            CASE WHEN d.kind = 'panel'
                  AND jsonb_typeof(d.metadata -> 'loops') = 'number'
                  AND jsonb_typeof(d.metadata -> 'detectors_per_loop') = 'number'
            THEN (d.metadata ->> 'loops')::numeric * (d.metadata ->> 'detectors_per_loop')::numeric
            END), 0)::bigint AS detectors
    FROM devices d JOIN scope USING (unit_id) GROUP BY d.unit_id
),
open_episodes AS (
    SELECT a.unit_id, a.device_id, a.kind, a.started_at, d.kind AS device_kind
    FROM anomalies a JOIN scope USING (unit_id)
    JOIN devices d ON d.id = a.device_id
    WHERE a.ended_at IS NULL AND a.started_at <= %(at)s
),
episodes AS (
    SELECT unit_id,
        count(DISTINCT device_id) FILTER (WHERE kind = ANY(%(offline)s)) AS offline_devices,
        count(DISTINCT device_id) FILTER (
            WHERE kind = ANY(%(offline)s) AND device_kind = 'panel') AS offline_panels,
        coalesce(extract(epoch FROM %(at)s - min(started_at) FILTER (
            WHERE kind = ANY(%(offline)s) AND device_kind = 'panel')) / 3600, 0) AS panel_offline_h,
        count(*) FILTER (WHERE kind = ANY(%(isolation)s)) AS isolated_components,
        coalesce(extract(epoch FROM %(at)s - min(started_at) FILTER (
            WHERE kind = ANY(%(isolation)s))) / 3600, 0) AS isolated_max_h,
        count(*) FILTER (WHERE kind = ANY(%(faults)s)) AS open_faults,
        coalesce(extract(epoch FROM %(at)s - min(started_at) FILTER (
            WHERE kind = ANY(%(faults)s))) / 3600, 0) AS oldest_fault_h
    FROM open_episodes GROUP BY unit_id
),
fires AS (
    SELECT al.unit_id, max(t.at) AS confirmed_fire_at,
        count(DISTINCT al.id) AS confirmed_fires
    FROM alert_transitions t JOIN alerts al ON al.id = t.alert_id
    JOIN scope ON scope.unit_id = al.unit_id
    WHERE t.to_state = 'confirmed_fire' AND t.at > %(at)s - %(lookback)s AND t.at <= %(at)s
    GROUP BY al.unit_id
)
SELECT scope.unit_id, u.supervision, u.building_class,
    coalesce(devs.devices, 0) AS devices, coalesce(devs.panels, 0) AS panels,
    coalesce(devs.detectors, 0) AS detectors,
    coalesce(e.offline_devices, 0) AS offline_devices,
    coalesce(e.offline_panels, 0) AS offline_panels,
    coalesce(e.panel_offline_h, 0)::float8 AS panel_offline_h,
    coalesce(e.isolated_components, 0) AS isolated_components,
    coalesce(e.isolated_max_h, 0)::float8 AS isolated_max_h,
    coalesce(e.open_faults, 0) AS open_faults,
    coalesce(e.oldest_fault_h, 0)::float8 AS oldest_fault_h,
    fires.confirmed_fire_at, coalesce(fires.confirmed_fires, 0) AS confirmed_fires
FROM scope
JOIN units u ON u.id = scope.unit_id
LEFT JOIN devs USING (unit_id)
LEFT JOIN episodes e USING (unit_id)
LEFT JOIN fires USING (unit_id)
ORDER BY scope.unit_id
"""


def unit_facts(
    conn: psycopg.Connection[Any],
    unit_ids: Sequence[str] | None,
    at: datetime,
    fire_lookback: timedelta = timedelta(days=365),
) -> dict[str, dict[str, Any]]:
    """The current-state facts (module docstring) of ``unit_ids`` (None: every unit) as at
    ``at``, keyed by unit id. Units that do not exist are absent."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            _FACTS,
            {
                "all": unit_ids is None,
                "units": list(unit_ids or ()),
                "at": at,
                "lookback": fire_lookback,
                "offline": list(OFFLINE_KINDS),
                "isolation": list(ISOLATION_KINDS),
                "faults": list(FAULT_KINDS),
            },
        )
        return {r["unit_id"]: r for r in cur.fetchall()}


def all_unit_ids(conn: psycopg.Connection[Any]) -> list[str]:
    """Every registered unit, in id order."""
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM units ORDER BY id")
        return [r[0] for r in cur.fetchall()]


# Significant events that make a unit's score stale before the next scheduled run: an
# operator confirmed a fire, its credit changed, one of its hazards was found, acted on
# or passed its deadline unverified. Times are the records' own (their ``at``); the caller
# overlaps its windows, because a record may commit a little after its ``at``.
_TRIGGERS = """
SELECT al.unit_id, 'confirmed_fire' AS why
FROM alert_transitions t JOIN alerts al ON al.id = t.alert_id
WHERE t.to_state = 'confirmed_fire' AND t.at > %(since)s AND t.at <= %(until)s
UNION ALL
SELECT unit_id, 'credit_' || to_status FROM credit_events
WHERE at > %(since)s AND at <= %(until)s
UNION ALL
SELECT h.unit_id, 'hazard_' || e.action
FROM hazard_events e JOIN hazards h ON h.id = e.hazard_id
WHERE e.at > %(since)s AND e.at <= %(until)s AND e.action NOT IN ('remind')
UNION ALL
SELECT unit_id, 'hazard_overdue' FROM hazards
WHERE state <> 'verified' AND deadline > %(since)s AND deadline <= %(until)s
"""


def risk_triggers(
    conn: psycopg.Connection[Any], since: datetime, until: datetime
) -> dict[str, list[str]]:
    """Units with a significant event in ``(since, until]`` (see ``_TRIGGERS``), each with
    what happened (distinct, sorted)."""
    found: dict[str, set[str]] = {}
    with conn.cursor() as cur:
        cur.execute(_TRIGGERS, {"since": since, "until": until})
        for unit_id, why in cur.fetchall():
            found.setdefault(unit_id, set()).add(why)
    return {unit: sorted(whys) for unit, whys in found.items()}


def unit_days(
    conn: psycopg.Connection[Any], unit_ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[Rollup]]:
    """The daily unit-tier rollups (``rollups`` table, ``storage/rollups.py`` writes them)
    of ``unit_ids`` whose day starts in ``[start, end)``, oldest first, per unit: what the
    risk model scores. Units without rows are absent (nothing happened, or nothing counted)."""
    out: dict[str, list[Rollup]] = {}
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT * FROM rollups WHERE tier = 'unit' AND grain = 'day'"
            " AND subject_id = ANY(%s) AND bucket >= %s AND bucket < %s"
            " ORDER BY subject_id, bucket",
            (list(unit_ids), start, end),
        )
        for row in cur.fetchall():
            out.setdefault(row["subject_id"], []).append(rollup_of(row))
    return out
