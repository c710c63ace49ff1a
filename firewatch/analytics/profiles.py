"""What the detectors know about each device: its unit, kind and resolved thresholds.

Thresholds come from the standards (docs/domain.md, ``core/domain.py``), can be overridden
per building class in Settings, per device in its registry ``metadata`` and per unit in
``units.attributes.thresholds`` (most specific wins: unit, then device, then class).
Profiles are built from the database registry (:func:`load_profiles`) or from a seed /
simulated city (:func:`profiles_from_city`), so the live service and the offline
evaluation resolve thresholds the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from firewatch.core.domain import MIN_STATIC_PRESSURE_KPA, DeviceKind
from firewatch.core.settings import Settings
from firewatch.storage.seed import CitySeed, device_profile_rows


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Resolved rule thresholds for one device (``None``: that rule does not apply)."""

    min_kpa: float | None = None  # static pressure minimum (building class, GB 50974)
    design_kpa: float | None = None  # design pressure: above it is over-pressure
    tank_low_m: float | None = None  # fire-reserve level of a tank
    room_min_c: float = 5.0  # pump room must stay at or above 5 °C
    port_alarm_c: float = 65.0  # charging-port temperature alarm level
    port_rating_a: float = 3.0  # rated current of a charging port
    over_current_factor: float = 1.2  # alarm above rating × factor
    allowed_hours: tuple[float, float] = (6.0, 23.0)  # local charging window [from, to)
    utc_offset_h: float = 8.0  # the unit's local time
    false_alarms_per_day: int = 5  # more than this at a unit needs a handling plan


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """A registered device as the detectors see it."""

    device_id: str
    unit_id: str
    kind: DeviceKind
    building_class: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def role(self) -> str:
        return str(self.metadata.get("role", "pressure"))


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def resolve_thresholds(
    settings: Settings,
    kind: DeviceKind,
    building_class: str,
    metadata: Mapping[str, Any],
    unit_overrides: Mapping[str, Any] | None = None,
) -> Thresholds:
    """Thresholds for one device; see the module docstring for precedence."""
    merged: dict[str, Any] = {**metadata, **(unit_overrides or {})}
    by_class = {**MIN_STATIC_PRESSURE_KPA, **settings.analytics_min_pressure_kpa}
    min_kpa = _num(merged.get("min_kpa"))
    if min_kpa is None and kind is DeviceKind.WATER:
        min_kpa = by_class.get(building_class, settings.analytics_default_min_kpa)
    capacity = _num(merged.get("tank_capacity_m"))
    tank_low = _num(merged.get("tank_low_m"))
    if tank_low is None and capacity is not None:
        tank_low = capacity * settings.analytics_tank_low_fraction
    hours = merged.get("allowed_hours", settings.analytics_charging_hours)
    try:
        allowed = (float(hours[0]), float(hours[1]))
    except (TypeError, ValueError, IndexError, KeyError):
        allowed = settings.analytics_charging_hours

    def get(key: str, default: float) -> float:
        v = _num(merged.get(key))
        return default if v is None else v  # an explicit 0 (a UTC city) is a value

    return Thresholds(
        min_kpa=min_kpa if kind is DeviceKind.WATER else None,
        design_kpa=_num(merged.get("design_kpa")) if kind is DeviceKind.WATER else None,
        tank_low_m=tank_low if kind is DeviceKind.WATER else None,
        room_min_c=get("room_min_c", settings.analytics_room_min_c),
        port_alarm_c=get("port_alarm_c", settings.analytics_port_alarm_c),
        port_rating_a=get("port_rating_a", settings.analytics_port_rating_a),
        over_current_factor=get("over_current_factor", settings.analytics_over_current_factor),
        allowed_hours=allowed,
        utc_offset_h=get("utc_offset_h", settings.analytics_utc_offset_h),
        false_alarms_per_day=int(
            get("false_alarms_per_day", settings.analytics_false_alarms_per_day)
        ),
    )


def profiles_from_city(city: CitySeed, settings: Settings) -> dict[str, DeviceProfile]:
    """Profiles of every device in a seed file or simulated city."""
    out: dict[str, DeviceProfile] = {}
    for unit in city.units:
        for dev in unit.devices:
            th = resolve_thresholds(settings, dev.kind, unit.building_class, dev.metadata)
            out[dev.id] = DeviceProfile(
                dev.id, unit.id, dev.kind, unit.building_class, dict(dev.metadata), th
            )
    return out


def load_profiles(conn: psycopg.Connection[Any], settings: Settings) -> dict[str, DeviceProfile]:
    """Profiles of every registered device, from the ``devices`` and ``units`` tables."""
    out: dict[str, DeviceProfile] = {}
    for dev_id, unit_id, kind, bclass, meta, overrides in device_profile_rows(conn):
        k = DeviceKind(kind)
        meta = dict(meta or {})
        th = resolve_thresholds(settings, k, bclass, meta, dict(overrides or {}))
        out[dev_id] = DeviceProfile(dev_id, unit_id, k, bclass, meta, th)
    return out
