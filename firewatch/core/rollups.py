"""Rollup records: what the tiered fire-analysis database keeps per bucket.

A rollup summarises one device, one unit or one region over one bucket (an hour or a day).
Hours are UTC-aligned; a day starts at the city's local midnight
(``FIREWATCH_ANALYTICS_UTC_OFFSET_H``, UTC+8 by default: the day of 5 November starts at
2026-11-04T16:00Z), and ``bucket`` is that instant. The rollup worker writes them
(``firewatch/analysis/``); risk scoring reads a unit's recent days of them
(``firewatch/risk/``); the API serves them per tier. The field names here are the column
names of the ``rollups`` table, so the same record travels from SQL to scoring to JSON
without renaming. Where each measure comes from: docs/analysis.md, "Measures".

Counts are events whose time falls in the bucket. Durations are minutes *inside* the
bucket: a fault open from 09:40 to 11:10 adds 20 minutes to the 09:00 hour, 60 to the 10:00
hour and 10 to the 11:00 hour. For a unit or a region the counts and durations add up over
its devices (device-minutes), minima and maxima are taken over them, and the mean pressure
is the mean of all readings (``pressure_samples`` of them). A day is the sum of its hours
in the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from firewatch.core.domain import MIN_STATIC_PRESSURE_KPA, DeviceKind
from firewatch.core.settings import Settings


class Grain(StrEnum):
    """Bucket size of a rollup."""

    HOUR = "hour"
    DAY = "day"


class Tier(StrEnum):
    """Levels of the fire-analysis database, from the top."""

    CITY = "city"
    DISTRICT = "district"
    STREET = "street"
    UNIT = "unit"
    DEVICE = "device"


#: The region tiers (``regions.level``), from the bottom.
REGION_TIERS = (Tier.STREET, Tier.DISTRICT, Tier.CITY)


@dataclass(frozen=True, slots=True)
class Rollup:
    """One subject (device, unit or region) over one bucket.

    ``faults_by_type`` maps a fault type (the panel's fault flag: ``fault``,
    ``power_fault``, ``mains_power_fault``, ``backup_power_fault``, ``bus_fault``) to how
    many started in the bucket; ``faults`` is their total. ``isolated_min`` is how long
    components were isolated (shielded) inside the bucket, ``isolations`` how many
    isolations began in it. ``ack_s_sum`` / ``acks`` is the mean time from an alert's first
    sighting to its acknowledgement, over the alerts acknowledged in the bucket; likewise
    ``confirm_s_sum`` / ``confirms`` up to an operator's decision (real fire, false alarm or
    fault), over the decisions made in the bucket. ``pressure_samples`` is how many readings
    ``pressure_mean_kpa`` is the mean of.
    """

    tier: Tier
    subject_id: str
    grain: Grain
    bucket: datetime
    fire_alarms: int = 0
    confirmed_fires: int = 0
    false_alarms: int = 0
    faults: int = 0
    faults_by_type: dict[str, int] = field(default_factory=dict)
    fault_open_min: float = 0.0
    isolations: int = 0
    offline_min: float = 0.0
    pressure_min_kpa: float | None = None
    pressure_mean_kpa: float | None = None
    pressure_low_min: float = 0.0
    tank_low_min: float = 0.0
    shed_peak_temp_c: float | None = None
    shed_overtemp_events: int = 0
    shed_overcurrent_events: int = 0
    anomalies_critical: int = 0
    anomalies_high: int = 0
    anomalies_medium: int = 0
    anomalies_low: int = 0
    acks: int = 0
    ack_s_sum: float = 0.0
    confirms: int = 0
    confirm_s_sum: float = 0.0
    isolated_min: float = 0.0
    pressure_samples: int = 0


#: The measure fields of :class:`Rollup` (everything after the key), in column order.
MEASURES: tuple[str, ...] = tuple(f.name for f in fields(Rollup))[4:]


def rollup_of(row: Mapping[str, Any]) -> Rollup:
    """A :class:`Rollup` from a ``rollups`` row (a dict with at least its fields)."""
    values = {name: row[name] for name in MEASURES}
    values["faults_by_type"] = {str(k): int(v) for k, v in dict(row["faults_by_type"]).items()}
    return Rollup(
        Tier(row["tier"]), str(row["subject_id"]), Grain(row["grain"]), row["bucket"], **values
    )


# -- what the panel and link detectors' episodes mean to a rollup ---------------------------
# The detector names are analytics' (firewatch/analytics/panel.py FLAG_EPISODES, link.py);
# tests/analysis/test_sources.py holds the two together.

#: A fire alarm: one component (or a panel without components) going into fire.
FIRE_DETECTOR = "panel.fire"
#: Fault episodes, by the fault type they count as in ``faults_by_type``.
FAULT_DETECTORS: dict[str, str] = {
    "panel.fault": "fault",
    "panel.power_fault": "power_fault",
    "panel.mains_power_fault": "mains_power_fault",
    "panel.backup_power_fault": "backup_power_fault",
    "panel.bus_fault": "bus_fault",
    "panel.line_fault": "line_fault",  # the UITD's line to the fire system
    "panel.link_fault": "link_fault",  # the UITD's channel to the center
}
#: An isolated (shielded) component.
ISOLATION_DETECTOR = "panel.isolated"
#: Offline: the device or its last will said so, or it went silent.
OFFLINE_DETECTORS = ("link.offline", "link.dropout")
#: Episodes whose minutes a rollup counts: they make every bucket they span dirty, and an
#: open one makes the current hour dirty until it ends.
DURATION_DETECTORS = (*FAULT_DETECTORS, ISOLATION_DETECTOR, *OFFLINE_DETECTORS)

#: Operator decisions on an alert (``alert_transitions.action``).
CONFIRM_FIRE = "confirm_fire"
MARK_FALSE_ALARM = "mark_false_alarm"
DECISIONS = (CONFIRM_FIRE, MARK_FALSE_ALARM, "confirm_fault")


# -- per-device limits ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceLimits:
    """The thresholds a device's telemetry is rolled up against, and how long one of its
    readings holds.

    ``min_kpa``: static-pressure minimum (water); ``tank_low_m``: fire-reserve level (water
    tanks); ``port_alarm_c``: charging-port alarm temperature; ``over_current_a``: a port's
    current limit (rating × factor); None where a limit does not apply. ``hold_s``: a
    reading's value holds until the next reading, at most this long (the offline limit of
    the device's kind, ``FIREWATCH_ALERT_OFFLINE_AFTER_S``).
    """

    device_id: str
    min_kpa: float | None
    tank_low_m: float | None
    port_alarm_c: float | None
    over_current_a: float | None
    hold_s: float


DEFAULT_HOLD_S = 300.0
"""A reading's hold for a kind ``FIREWATCH_ALERT_OFFLINE_AFTER_S`` does not name."""


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def device_limits(
    settings: Settings,
    device_id: str,
    kind: str,
    building_class: str,
    metadata: Mapping[str, Any] | None,
    unit_overrides: Mapping[str, Any] | None = None,
) -> DeviceLimits:
    """A device's limits, resolved as the detectors resolve theirs
    (``firewatch/analytics/profiles.py``, ``resolve_thresholds``: the unit's
    ``attributes.thresholds`` over the device's ``metadata`` over the settings over the
    building-class table in ``core/domain.py``), so that a rollup's "minutes below the
    minimum" and the detector's low-pressure rule agree. A kind this version does not know
    gets no limits."""
    merged: dict[str, Any] = {**(metadata or {}), **(unit_overrides or {})}
    hold = settings.alert_offline_after_s.get(kind, DEFAULT_HOLD_S)
    if kind == DeviceKind.WATER:
        by_class = {**MIN_STATIC_PRESSURE_KPA, **settings.analytics_min_pressure_kpa}
        min_kpa = _num(merged.get("min_kpa"))
        if min_kpa is None:
            min_kpa = by_class.get(building_class, settings.analytics_default_min_kpa)
        tank_low = _num(merged.get("tank_low_m"))
        capacity = _num(merged.get("tank_capacity_m"))
        if tank_low is None and capacity is not None:
            tank_low = capacity * settings.analytics_tank_low_fraction
        return DeviceLimits(device_id, min_kpa, tank_low, None, None, hold)
    if kind == DeviceKind.EBIKE_SHED:
        alarm = _num(merged.get("port_alarm_c"))
        rating = _num(merged.get("port_rating_a"))
        factor = _num(merged.get("over_current_factor"))
        return DeviceLimits(
            device_id,
            None,
            None,
            settings.analytics_port_alarm_c if alarm is None else alarm,
            (settings.analytics_port_rating_a if rating is None else rating)
            * (settings.analytics_over_current_factor if factor is None else factor),
            hold,
        )
    return DeviceLimits(device_id, None, None, None, None, hold)


def day_offset_h(settings: Settings) -> int:
    """Hours from UTC to the city's local midnight, where a day bucket starts
    (``FIREWATCH_ANALYTICS_UTC_OFFSET_H``). Days are sums of UTC hours, so the offset must
    be a whole number of hours: ValueError otherwise."""
    offset = settings.analytics_utc_offset_h
    if offset != int(offset) or not -14 <= offset <= 14:
        raise ValueError(
            f"FIREWATCH_ANALYTICS_UTC_OFFSET_H={offset}: daily rollups need a whole number of "
            "hours between -14 and 14 (a day is the sum of its UTC hours)"
        )
    return int(offset)
