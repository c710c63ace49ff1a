"""Device-hour rollups computed from the raw tables, one statement per table family, and the
reads of the ``rollups`` table (the API, risk scoring).

:func:`compute_device_hours` recomputes a set of ``(device, hour)`` buckets from scratch:

* **telemetry** — water pressure (minimum, mean, readings, minutes below the device's
  minimum), tank level (minutes below its fire-reserve level), e-bike shed ports (peak
  temperature, over-temperature and over-current events). A reading's value holds until
  the device's next reading, at most ``DeviceLimits.hold_s``; the minutes it holds inside
  the bucket count, so a reading at 09:59:30 that holds 60 s adds 30 s to 09:00 and 30 s to
  10:00. An event is a port crossing into the condition: its previous reading (within the
  hold) was not in it;
* **anomalies** — the detectors' episodes: fire alarms (``panel.fire`` episodes that
  started in the bucket), faults by type, isolations, their open minutes, offline minutes
  (``link.offline`` and ``link.dropout``), and every episode that started in it by severity;
  an open episode counts up to ``now``;
* **alerts** — acknowledgements in the bucket and their delay after the alert's first
  sighting; operators' decisions (real fire, false alarm, fault) in it and their delay.

The statements only read, so they run outside any write transaction (the refresh writes
the results afterwards in a short one, ``storage/rollup_tiers.py``). Values the database
can hold but a reading cannot mean (NaN, ±infinity) are left out.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import dict_row

from firewatch.core.rollups import (
    DECISIONS,
    DURATION_DETECTORS,
    FAULT_DETECTORS,
    FIRE_DETECTOR,
    ISOLATION_DETECTOR,
    OFFLINE_DETECTORS,
    DeviceLimits,
    Grain,
    Rollup,
    Tier,
    rollup_of,
)

#: A bucket to compute: a device and the start of an hour.
Pair = tuple[str, datetime]


class StoredRollup(NamedTuple):
    """A stored rollup with its bookkeeping: how often it was computed (``revision``, 1
    the first time) and when last (``computed_at``, the database's time)."""

    rollup: Rollup
    revision: int
    computed_at: datetime


_FINITE = "CASE WHEN {0} > '-Infinity' AND {0} < 'Infinity' THEN {0} END"
_HOUR = "interval '1 hour'"

_TELEMETRY = f"""
WITH dirty AS (
    SELECT * FROM unnest(%(dev)s::text[], %(bucket)s::timestamptz[], %(min_kpa)s::float8[],
                         %(tank_low)s::float8[], %(alarm)s::float8[], %(over)s::float8[],
                         %(hold)s::float8[])
        AS d(device_id, bucket, min_kpa, tank_low_m, alarm_c, over_a, hold_s)
),
raw AS MATERIALIZED (
    SELECT d.device_id, d.bucket, d.min_kpa, d.tank_low_m, d.alarm_c, d.over_a,
           make_interval(secs => d.hold_s) AS hold, t.ts, t.seq,
           {_FINITE.format("t.pressure_kpa")} AS p,
           {_FINITE.format("t.level_m")} AS lvl,
           t.port_no, t.port_temp_c, t.port_current_a
    FROM dirty d
    JOIN telemetry t ON t.device_id = d.device_id
     AND t.ts >= d.bucket - make_interval(secs => d.hold_s)
     AND t.ts < d.bucket + {_HOUR} + make_interval(secs => d.hold_s)
),
held AS (
    SELECT r.*, greatest(0, extract(epoch FROM
               least(lead(r.ts) OVER w, r.ts + r.hold, r.bucket + {_HOUR})
               - greatest(r.ts, r.bucket)))::float8 AS held_s
    FROM raw r
    WINDOW w AS (PARTITION BY r.device_id, r.bucket ORDER BY r.ts, r.seq)
),
water AS (
    SELECT device_id, bucket,
           min(p) FILTER (WHERE ts >= bucket) AS pressure_min_kpa,
           avg(p) FILTER (WHERE ts >= bucket) AS pressure_mean_kpa,
           count(p) FILTER (WHERE ts >= bucket) AS pressure_samples,
           coalesce(sum(held_s) FILTER (WHERE p < min_kpa), 0) / 60 AS pressure_low_min,
           coalesce(sum(held_s) FILTER (WHERE lvl < tank_low_m), 0) / 60 AS tank_low_min
    FROM held WHERE ts < bucket + {_HOUR}
    GROUP BY device_id, bucket
),
port AS (
    SELECT r.device_id, r.bucket, r.ts, r.seq, r.hold, r.alarm_c, r.over_a, u.no,
           {_FINITE.format("u.temp")} AS temp, {_FINITE.format("u.cur")} AS cur
    FROM raw r, unnest(r.port_no, r.port_temp_c, r.port_current_a) AS u(no, temp, cur)
    WHERE r.port_no IS NOT NULL AND r.ts < r.bucket + {_HOUR} AND u.no IS NOT NULL
),
ports AS (
    SELECT p.*, lag(p.ts) OVER w AS prev_ts, lag(p.temp) OVER w AS prev_temp,
           lag(p.cur) OVER w AS prev_cur
    FROM port p
    WINDOW w AS (PARTITION BY p.device_id, p.bucket, p.no ORDER BY p.ts, p.seq)
),
shed AS (
    SELECT device_id, bucket,
           max(temp) FILTER (WHERE ts >= bucket) AS shed_peak_temp_c,
           count(*) FILTER (WHERE ts >= bucket AND temp >= alarm_c AND NOT coalesce(
               prev_ts >= ts - hold AND prev_temp >= alarm_c, false)) AS shed_overtemp_events,
           count(*) FILTER (WHERE ts >= bucket AND cur > over_a AND NOT coalesce(
               prev_ts >= ts - hold AND prev_cur > over_a, false)) AS shed_overcurrent_events
    FROM ports GROUP BY device_id, bucket
)
SELECT coalesce(w.device_id, s.device_id) AS device_id, coalesce(w.bucket, s.bucket) AS bucket,
       w.pressure_min_kpa, w.pressure_mean_kpa, w.pressure_samples, w.pressure_low_min,
       w.tank_low_min, s.shed_peak_temp_c, s.shed_overtemp_events, s.shed_overcurrent_events
FROM water w FULL JOIN shed s ON s.device_id = w.device_id AND s.bucket = w.bucket
"""

_SEVERITY = ", ".join(
    f"count(*) FILTER (WHERE started AND severity = '{s}') AS anomalies_{s}"
    for s in ("critical", "high", "medium", "low")
)
_ANOMALIES = f"""
WITH dirty AS (
    SELECT * FROM unnest(%(dev)s::text[], %(bucket)s::timestamptz[]) AS d(device_id, bucket)
),
eps AS (
    SELECT d.device_id, d.bucket, a.detector, a.severity, a.started_at, a.ended_at
    FROM dirty d JOIN anomalies a ON a.device_id = d.device_id
     AND a.started_at >= d.bucket AND a.started_at < d.bucket + {_HOUR}
    UNION ALL
    SELECT d.device_id, d.bucket, a.detector, a.severity, a.started_at, a.ended_at
    FROM dirty d JOIN anomalies a ON a.device_id = d.device_id
     AND a.detector = ANY(%(durations)s) AND a.started_at < d.bucket
     AND (a.ended_at IS NULL OR a.ended_at > d.bucket)
),
m AS (
    SELECT e.*, e.started_at >= e.bucket AS started,
           greatest(0, extract(epoch FROM
               least(coalesce(e.ended_at, %(now)s), e.bucket + {_HOUR})
               - greatest(e.started_at, e.bucket)))::float8 / 60 AS open_min
    FROM eps e
),
types AS (
    SELECT device_id, bucket, jsonb_object_agg(ftype, n) AS faults_by_type
    FROM (SELECT m.device_id, m.bucket, f.ftype, count(*) AS n
          FROM m JOIN unnest(%(fault_detectors)s::text[], %(fault_types)s::text[])
              AS f(detector, ftype) ON f.detector = m.detector
          WHERE m.started GROUP BY 1, 2, 3) AS x
    GROUP BY device_id, bucket
)
SELECT m.device_id, m.bucket,
       count(*) FILTER (WHERE started AND detector = %(fire)s) AS fire_alarms,
       count(*) FILTER (WHERE started AND detector = ANY(%(fault_detectors)s)) AS faults,
       coalesce(sum(open_min) FILTER (WHERE detector = ANY(%(fault_detectors)s)), 0)
           AS fault_open_min,
       count(*) FILTER (WHERE started AND detector = %(isolation)s) AS isolations,
       coalesce(sum(open_min) FILTER (WHERE detector = %(isolation)s), 0) AS isolated_min,
       coalesce(sum(open_min) FILTER (WHERE detector = ANY(%(offline)s)), 0) AS offline_min,
       {_SEVERITY},
       coalesce(t.faults_by_type, '{{}}'::jsonb) AS faults_by_type
FROM m LEFT JOIN types t ON t.device_id = m.device_id AND t.bucket = m.bucket
GROUP BY m.device_id, m.bucket, t.faults_by_type
"""

_DECIDED = "(" + ", ".join(f"'{d}'" for d in DECISIONS) + ")"
_ALERTS = f"""
WITH dirty AS (
    SELECT * FROM unnest(%(dev)s::text[], %(bucket)s::timestamptz[]) AS d(device_id, bucket)
),
acked AS (
    SELECT d.device_id, d.bucket, count(*) AS acks,
           sum(greatest(0, extract(epoch FROM a.acknowledged_at - a.first_seen)))::float8
               AS ack_s_sum
    FROM dirty d JOIN alerts a ON a.device_id = d.device_id
     AND a.acknowledged_at >= d.bucket AND a.acknowledged_at < d.bucket + {_HOUR}
    GROUP BY d.device_id, d.bucket
),
decided AS (
    SELECT d.device_id, d.bucket, count(*) AS confirms,
           sum(greatest(0, extract(epoch FROM t.at - a.first_seen)))::float8 AS confirm_s_sum,
           count(*) FILTER (WHERE t.action = %(fire)s) AS confirmed_fires,
           count(*) FILTER (WHERE t.action = %(false_alarm)s) AS false_alarms
    FROM dirty d
    JOIN alert_transitions t ON t.action IN {_DECIDED}
     AND t.at >= d.bucket AND t.at < d.bucket + {_HOUR}
    JOIN alerts a ON a.id = t.alert_id AND a.device_id = d.device_id
    GROUP BY d.device_id, d.bucket
)
SELECT coalesce(k.device_id, c.device_id) AS device_id, coalesce(k.bucket, c.bucket) AS bucket,
       k.acks, k.ack_s_sum, c.confirms, c.confirm_s_sum, c.confirmed_fires, c.false_alarms
FROM acked k FULL JOIN decided c ON c.device_id = k.device_id AND c.bucket = k.bucket
"""


def _rows(
    conn: psycopg.Connection[Any], sql: str, params: Mapping[str, Any]
) -> Iterable[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def compute_device_hours(
    conn: psycopg.Connection[Any],
    pairs: Collection[Pair],
    limits: Mapping[str, DeviceLimits],
    *,
    now: datetime,
) -> list[Rollup]:
    """The device-hour rollups of ``pairs`` from the raw tables (see the module docstring),
    one per pair (all zeros where nothing happened). ``limits``: each device's thresholds
    (a device without an entry gets none); ``now``: where open episodes end for now. Three
    read-only statements, in the caller's transaction if any."""
    if not pairs:
        return []
    ordered = sorted(pairs)
    devs = [d for d, _ in ordered]
    buckets = [b for _, b in ordered]
    got: dict[Pair, dict[str, Any]] = {p: {} for p in ordered}

    def merge(rows: Iterable[dict[str, Any]]) -> None:
        for r in rows:
            key = (str(r.pop("device_id")), r.pop("bucket"))
            got[key].update({k: v for k, v in r.items() if v is not None})

    none: DeviceLimits | None = None
    lim = [limits.get(d, none) for d in devs]
    merge(
        _rows(
            conn,
            _TELEMETRY,
            {
                "dev": devs,
                "bucket": buckets,
                "min_kpa": [x.min_kpa if x else None for x in lim],
                "tank_low": [x.tank_low_m if x else None for x in lim],
                "alarm": [x.port_alarm_c if x else None for x in lim],
                "over": [x.over_current_a if x else None for x in lim],
                "hold": [x.hold_s if x else 300.0 for x in lim],
            },
        )
    )
    merge(
        _rows(
            conn,
            _ANOMALIES,
            {
                "dev": devs,
                "bucket": buckets,
                "now": now,
                "durations": list(DURATION_DETECTORS),
                "fault_detectors": list(FAULT_DETECTORS),
                "fault_types": list(FAULT_DETECTORS.values()),
                "fire": FIRE_DETECTOR,
                "isolation": ISOLATION_DETECTOR,
                "offline": list(OFFLINE_DETECTORS),
            },
        )
    )
    merge(
        _rows(
            conn,
            _ALERTS,
            {
                "dev": devs,
                "bucket": buckets,
                "fire": DECISIONS[0],
                "false_alarm": DECISIONS[1],
            },
        )
    )
    out: list[Rollup] = []
    for (dev, bucket), values in got.items():
        types = values.get("faults_by_type", {})
        values["faults_by_type"] = {str(k): int(v) for k, v in types.items()}
        out.append(Rollup(Tier.DEVICE, dev, Grain.HOUR, bucket, **values))
    return out


# -- reads --------------------------------------------------------------------------------

_READ = """
SELECT * FROM rollups
WHERE tier = %(tier)s AND subject_id = %(subject)s AND grain = %(grain)s
  AND bucket >= %(start)s AND bucket < %(end)s
ORDER BY bucket
"""


def read_rollup_rows(
    conn: psycopg.Connection[Any],
    tier: Tier | str,
    subject_id: str,
    grain: Grain | str,
    start: datetime,
    end: datetime,
) -> list[StoredRollup]:
    """The stored rollups of one subject and grain whose bucket lies in ``[start, end)``,
    oldest first, with how often and when each was computed. A bucket without a row had
    nothing to count (or nothing ever touched it)."""
    params = {
        "tier": Tier(tier).value,
        "subject": subject_id,
        "grain": Grain(grain).value,
        "start": start,
        "end": end,
    }
    return [
        StoredRollup(rollup_of(r), int(r["revision"]), r["computed_at"])
        for r in _rows(conn, _READ, params)
    ]


def read_rollups(
    conn: psycopg.Connection[Any],
    tier: Tier | str,
    subject_id: str,
    grain: Grain | str,
    start: datetime,
    end: datetime,
) -> list[Rollup]:
    """:func:`read_rollup_rows` without the bookkeeping: what risk scoring reads (a unit's
    daily rollups: ``read_rollups(conn, "unit", unit_id, "day", start, end)``)."""
    return [s.rollup for s in read_rollup_rows(conn, tier, subject_id, grain, start, end)]
