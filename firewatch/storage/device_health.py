"""The console's device reads (issue 12): device health per unit and district, a unit's
recent telemetry as chart series, the map's units, and who a device belongs to.

* **Health** joins the registry with what ingest and alerting keep: the device's latest
  status (``device_state``, from its status messages and last will), when it was last heard
  from (``device_last_seen``), and its active alerts by category (faults, isolated
  components, offline).
* **Telemetry** is averaged into at most :data:`MAX_POINTS` buckets per series
  (``date_bin``), so a day of 5-second readings is a few hundred points, not 17,000.
* **Map units** carry their coordinates, open alerts (count and worst severity) and their
  current risk level.

Read-only; every function runs one or two statements in the caller's connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from firewatch.storage.alerts import ACTIVE_SQL

MAX_POINTS = 240

#: (metric, unit of measure, SQL over ``telemetry`` rows) per device kind.
SERIES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "water": (
        ("pressure_kpa", "kPa", "avg(pressure_kpa)"),
        ("level_m", "m", "avg(level_m)"),
    ),
    "ebike_shed": (
        ("ambient_c", "°C", "avg(ambient_c)"),
        (
            "port_temp_max_c",
            "°C",
            "max((SELECT max(t) FROM unnest(port_temp_c) AS t))",
        ),
    ),
}

_HEALTH = f"""
SELECT d.id AS device_id, d.unit_id, u.name AS unit_name, d.kind, d.vendor, d.model,
       s.region_id AS street_id, s.parent_id AS district_id,
       st.state AS status, st.ts AS status_at, st.battery_pct, ls.last_rx AS last_seen,
       coalesce(a.faults, 0) AS open_faults, coalesce(a.isolated, 0) AS isolated,
       coalesce(a.offline, 0) AS offline_alerts
FROM devices d
JOIN units u ON u.id = d.unit_id
JOIN LATERAL (SELECT r.id AS region_id, r.parent_id FROM regions r WHERE r.id = u.region_id) s
     ON true
LEFT JOIN device_state st ON st.device_id = d.id
LEFT JOIN device_last_seen ls ON ls.device_id = d.id
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE category = 'fault' AND type <> 'component_isolated') AS faults,
           count(*) FILTER (WHERE type = 'component_isolated') AS isolated,
           count(*) FILTER (WHERE category = 'offline') AS offline
    FROM alerts WHERE device_id = d.id AND state IN {ACTIVE_SQL}
) a ON true
WHERE (%(unit)s::text IS NULL OR d.unit_id = %(unit)s)
  AND (%(vendor)s::text IS NULL OR d.vendor = %(vendor)s)
  AND (%(region)s::text IS NULL OR u.region_id IN (
        WITH RECURSIVE below AS (
            SELECT id FROM regions WHERE id = %(region)s
            UNION ALL SELECT r.id FROM regions r JOIN below b ON r.parent_id = b.id)
        SELECT id FROM below))
ORDER BY d.unit_id, d.id
LIMIT %(limit)s
"""


def device_health(
    conn: psycopg.Connection[Any],
    *,
    unit_id: str | None = None,
    vendor: str | None = None,
    region: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Devices (of a unit, a vendor, a region at any level: every filter given applies)
    with their latest status, last contact and active fault / isolation / offline alerts,
    ordered by unit and device."""
    params = {"unit": unit_id, "vendor": vendor, "region": region, "limit": limit}
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_HEALTH, params).fetchall()


def device_owner(conn: psycopg.Connection[Any], device_id: str) -> tuple[str, str] | None:
    """The registered device's (unit, vendor), or None: whose scope it is in."""
    row = conn.execute("SELECT unit_id, vendor FROM devices WHERE id = %s", (device_id,)).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def unit_telemetry(
    conn: psycopg.Connection[Any], unit_id: str, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """The unit's telemetry over ``[since, until)`` as series ``{device_id, kind, metric,
    unit, points: [(bucket start, value)]}``: one per device and metric of its kind
    (:data:`SERIES`), averaged into at most :data:`MAX_POINTS` buckets; a series with no
    value in the range is left out."""
    step = max(timedelta(seconds=5), (until - since) / MAX_POINTS)
    devices = conn.execute(
        "SELECT id, kind FROM devices WHERE unit_id = %s ORDER BY id", (unit_id,)
    ).fetchall()
    out: list[dict[str, Any]] = []
    for device_id, kind in devices:
        metrics: Sequence[tuple[str, str, str]] = SERIES.get(str(kind), ())
        if not metrics:
            continue
        cols = ", ".join(f"{expr} AS {name}" for name, _, expr in metrics)
        rows = conn.execute(
            f"SELECT date_bin(%s, ts, %s) AS at, {cols} FROM telemetry"
            " WHERE device_id = %s AND ts >= %s AND ts < %s GROUP BY 1 ORDER BY 1",
            (step, since, device_id, since, until),
        ).fetchall()
        for i, (name, uom, _) in enumerate(metrics, start=1):
            points = [(r[0], float(r[i])) for r in rows if r[i] is not None]
            if points:
                out.append(
                    {"device_id": device_id, "kind": kind, "metric": name, "unit": uom,
                     "points": points}
                )  # fmt: skip
    return out


_MAP_UNITS = f"""
SELECT u.id, u.name, u.supervision AS category, u.latitude, u.longitude,
       r.parent_id AS district_id,
       coalesce(a.open_alerts, 0) AS open_alerts, a.max_severity,
       rc.level AS risk_level
FROM units u
JOIN regions r ON r.id = u.region_id
LEFT JOIN LATERAL (
    SELECT count(*) AS open_alerts,
           (array_agg(severity ORDER BY CASE severity WHEN 'critical' THEN 3 WHEN 'high' THEN 2
                                      WHEN 'medium' THEN 1 ELSE 0 END DESC))[1] AS max_severity
    FROM alerts WHERE unit_id = u.id AND state IN {ACTIVE_SQL}
) a ON true
LEFT JOIN risk_current rc ON rc.unit_id = u.id
WHERE u.latitude IS NOT NULL AND u.longitude IS NOT NULL
ORDER BY u.id
"""


def map_units(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every unit with coordinates: its district, open alerts (count, worst severity) and
    current risk level (None before its first score)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_MAP_UNITS).fetchall()


def districts(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """The city's districts (``id``, ``name``, ``parent_id``)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, name, parent_id FROM regions WHERE level = 'district' ORDER BY id"
        ).fetchall()
