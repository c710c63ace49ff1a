"""The alerting service's time-driven checks in PostgreSQL, each one set-based statement
whatever the number of alerts or devices: the selection of alerts due for escalation, and
the offline and patrol checks over every device at once (with the mass-outage rule).
Alerts are written as in ``storage/alerts.py``: each with its audit row and stream event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from firewatch.core.alerts import Alert, AlertAction, AlertCategory
from firewatch.core.domain import Severity
from firewatch.core.escalation import EscalationPolicy
from firewatch.core.settings import Settings
from firewatch.storage import channels
from firewatch.storage.alerts import (
    ACTIVE_SQL,
    SYSTEM,
    apply_action,
    as_datetime,
    raise_alert,
)

_OVERDUE = """
WITH step (severity, level, secs) AS (
    SELECT * FROM unnest(%(sev)s::text[], %(lvl)s::int[], %(secs)s::float8[])
),
due AS (
    SELECT a.* FROM alerts a
    JOIN step s ON s.severity = a.severity AND s.level = a.escalation_level + 1
    WHERE a.state = 'open'
      AND (%(max_level)s::int IS NULL OR a.escalation_level < %(max_level)s::int)
      AND coalesce(a.escalated_at, a.first_seen) <= %(now)s - make_interval(secs => s.secs)
    ORDER BY a.id
    FOR UPDATE OF a SKIP LOCKED
)
SELECT * FROM due ORDER BY id
"""


def overdue_alerts(
    conn: psycopg.Connection[Any],
    policy: EscalationPolicy,
    *,
    now: datetime,
    max_level: int | None,
) -> list[Alert]:
    """The open alerts whose next escalation level (``escalation_level + 1`` of their
    severity's ladder, ``core/escalation.py``) is due: its ``after_s`` has passed since the
    last escalation (or since first seen), and neither the ladder nor ``max_level`` has
    ended. Locked for the caller's transaction, skipping any that another transaction
    holds: one statement, whatever their number. The set-based form of
    :func:`firewatch.alerting.decide.escalation_due` (the tests hold the two together), so
    that only the due rows are locked."""
    rows = policy.rows()
    params = {
        "sev": [r[0] for r in rows],
        "lvl": [r[1] for r in rows],
        "secs": [r[2] for r in rows],
        "now": now,
        "max_level": max_level,
    }
    with conn.cursor(row_factory=dict_row) as cur:
        return [Alert.of(r) for r in cur.execute(_OVERDUE, params).fetchall()]


_SILENT = """
WITH limits (kind, secs) AS (SELECT * FROM unnest(%(kinds)s::text[], %(secs)s::float8[]))
SELECT d.id AS device_id, d.unit_id, d.kind, ls.last_rx,
       coalesce(st.state = 'offline' AND st.updated_at >= ls.last_rx, false) AS by_will
FROM devices d
JOIN device_last_seen ls ON ls.device_id = d.id
LEFT JOIN device_state st ON st.device_id = d.id
JOIN limits l ON l.kind = d.kind
WHERE d.decommissioned_at IS NULL  -- a decommissioned device is silent by design
  AND (ls.last_rx < %(now)s - make_interval(secs => l.secs)
       OR (st.state = 'offline' AND st.updated_at >= ls.last_rx))
"""

_PATROL = """
SELECT d.id AS device_id, d.unit_id, d.kind, ls.last_rx, false AS by_will
FROM devices d JOIN device_last_seen ls ON ls.device_id = d.id
WHERE d.kind = 'panel' AND d.decommissioned_at IS NULL
  AND ls.last_rx < %(now)s - make_interval(secs => %(cycle)s)
"""

# One statement raises every alert of a check: the new alerts, their audit rows and their
# stream events (payload as store._event writes it). Devices that already have an active
# alert of the type are skipped by the unique index (ON CONFLICT DO NOTHING).
_RAISE_MANY = f"""
WITH found0 AS ({{found}}),
found AS (
    SELECT *, to_char(last_rx AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS since
    FROM found0
),
ins AS (
    INSERT INTO alerts (type, category, severity, unit_id, device_id, state, first_seen,
                        last_seen, explanation)
    SELECT %(type)s, 'offline', %(severity)s, f.unit_id, f.device_id, 'open', %(now)s,
           %(now)s, f.kind || ' ' || f.device_id || CASE
               WHEN f.by_will THEN ' lost its connection (last will)'
               WHEN %(type)s = 'patrol_failed'
                    THEN ' did not answer the patrol check: nothing since ' || f.since
               ELSE ' silent since ' || f.since END
    FROM found f
    WHERE NOT EXISTS (SELECT 1 FROM alerts a WHERE a.device_id = f.device_id
                      AND a.type = %(type)s AND a.state IN {ACTIVE_SQL})
    ON CONFLICT (device_id, type) WHERE state IN {ACTIVE_SQL} DO NOTHING
    RETURNING *
), audit AS (
    INSERT INTO alert_transitions (alert_id, action, from_state, to_state, actor, note, at)
    SELECT id, 'raise', NULL, 'open', '{SYSTEM}', explanation, first_seen FROM ins
), ev AS (
    INSERT INTO alert_events (alert_id, event, payload)
    SELECT id, 'created', jsonb_build_object('event', 'created', 'alert', to_jsonb(ins))
    FROM ins
)
SELECT id FROM ins ORDER BY id
"""

# Heard from since the alert opened, and not offline by its last will since (the same test
# as _SILENT: a will after its last message).
_HEARD_AGAIN = """ls.last_rx > a.first_seen
    AND NOT coalesce(st.state = 'offline' AND st.updated_at >= ls.last_rx, false)"""
# Taken out of service (issue 14): it will not be heard from again, and that is no fault.
_DECOMMISSIONED = "d.decommissioned_at IS NOT NULL"

# The offline and patrol alerts the system resolves, in one statement: a device heard from
# again, or decommissioned; the note says which.
_RESOLVE = f"""
WITH back AS (
    SELECT a.id, a.state,
           CASE WHEN {_HEARD_AGAIN} THEN 'device heard from again'
                ELSE 'device decommissioned' END AS note
    FROM alerts a
    LEFT JOIN devices d ON d.id = a.device_id
    LEFT JOIN device_last_seen ls ON ls.device_id = a.device_id
    LEFT JOIN device_state st ON st.device_id = a.device_id
    WHERE a.type = ANY(%(types)s) AND a.state IN {ACTIVE_SQL}
      AND (({_HEARD_AGAIN}) OR {_DECOMMISSIONED})
    FOR UPDATE OF a SKIP LOCKED
), upd AS (
    UPDATE alerts SET state = 'resolved', resolved_at = %(now)s, condition_active = false,
                      updated_at = now()
    FROM back WHERE alerts.id = back.id
    RETURNING alerts.*, back.state AS from_state, back.note AS why
), audit AS (
    INSERT INTO alert_transitions (alert_id, action, from_state, to_state, actor, note, at)
    SELECT id, 'resolve', from_state, 'resolved', '{SYSTEM}', why, %(now)s FROM upd
), ev AS (
    INSERT INTO alert_events (alert_id, event, payload)
    SELECT id, 'resolve', jsonb_build_object('event', 'resolve',
           'alert', to_jsonb(upd) - 'from_state' - 'why', 'actor', '{SYSTEM}', 'note', why)
    FROM upd
)
SELECT id FROM upd ORDER BY id
"""

MASS_DEVICE = "*"  # device_id of the one alert that stands for a mass outage


@dataclass
class OfflineResult:
    opened: list[int]
    resolved: list[int]
    silent: int = 0
    mass_outage: bool = False


def check_offline(
    conn: psycopg.Connection[Any], settings: Settings, *, now: datetime | float
) -> OfflineResult:
    """The offline and patrol checks for every device at once — a handful of statements
    whatever the number of devices: a device silent beyond its kind's
    ``alert_offline_after_s``, or whose last will said offline, gets a ``device_offline``
    alert; a panel not heard from within the patrol cycle (GB 50440: at most 2 h) a
    ``patrol_failed`` alert; a device heard from again resolves both, and so does its
    decommissioning (it will not be heard from again; its other alerts stay for operators).

    When more than ``alert_mass_offline_fraction`` of the devices heard from (and at least
    ``alert_mass_offline_min``) are silent at once, the cause is upstream (the broker, the
    network, ingest), not tens of thousands of devices: one ``mass_offline`` alert is
    raised instead of one per device, and resolved when the share falls back.
    """
    at = as_datetime(now)
    limits = settings.alert_offline_after_s
    params = {
        "kinds": list(limits),
        "secs": list(limits.values()),
        "now": at,
        "cycle": settings.alert_patrol_cycle_s,
    }
    opened: list[int] = []
    mass_alert: dict[str, Any] | None = None
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        counted = cur.execute(
            f"SELECT (SELECT count(*) FROM ({_SILENT}) s) AS silent,"
            " (SELECT count(*) FROM device_last_seen) AS heard",
            params,
        ).fetchone()
        assert counted is not None
        silent, heard = int(counted["silent"]), int(counted["heard"])
        mass = silent >= max(
            settings.alert_mass_offline_min, settings.alert_mass_offline_fraction * heard
        )
        if mass:
            text = (
                f"{silent} of {heard} devices silent at once: the broker, the network "
                "or ingest is down, not the devices"
            )
            alert, created = raise_alert(
                conn,
                type="mass_offline",
                severity=Severity.CRITICAL,
                unit_id=MASS_DEVICE,
                device_id=MASS_DEVICE,
                seen_at=at,
                explanation=text,
                repeat=False,
                category=AlertCategory.OFFLINE,
            )
            if created:
                opened.append(alert.id)
        else:
            for type_, found, severity in (
                ("device_offline", _SILENT, Severity.MEDIUM),
                ("patrol_failed", _PATROL, Severity.HIGH),
            ):
                raise_params = {**params, "type": type_, "severity": severity.value}
                rows = cur.execute(_RAISE_MANY.format(found=found), raise_params)
                opened += [int(r["id"]) for r in rows.fetchall()]
            mass_alert = cur.execute(
                f"SELECT id FROM alerts WHERE device_id = %s AND type = 'mass_offline'"
                f" AND state IN {ACTIVE_SQL}",
                (MASS_DEVICE,),
            ).fetchone()
        resolved = [
            int(r["id"])
            for r in cur.execute(
                _RESOLVE, {"types": ["device_offline", "patrol_failed"], "now": at}
            ).fetchall()
        ]
        if opened or resolved:
            cur.execute("SELECT pg_notify(%s, '')", (channels.ALERTS,))
    if not mass and mass_alert is not None:
        note = f"{silent} of {heard} devices silent: below the mass-outage share"
        apply_action(
            conn, int(mass_alert["id"]), AlertAction.RESOLVE, actor=SYSTEM, now=at, note=note
        )
        resolved.append(int(mass_alert["id"]))
    return OfflineResult(opened, resolved, silent, mass)
