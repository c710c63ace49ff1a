"""The risk model's inputs for one unit at one time, and each indicator's value from them.

Two inputs (docs/risk.md, "Where the figures come from"):

* the unit's **daily rollups** (:class:`~firewatch.core.rollups.Rollup`, tier ``unit``,
  grain ``day``) before ``as_of``: a rollup counts in a window of ``D`` days when its bucket
  (the day's start, a local midnight) lies in ``[as_of - D days, as_of)``; days without a row mean
  nothing happened. Rates are given per 30 days: the window's total × 30 / D.
* its **state** at ``as_of`` (:class:`UnitState`): what is true now, which rollups cannot
  tell (what is open, isolated or offline *now*, hazards, credit, class).

Confirmed fires come from the rollups (``confirmed_fires``) for the indicator. The forced
condition takes the larger of the rollups' count and the state's ``live_confirmed_fires``
(the alert records, counted at once): the rollups count a fire only once the rollup worker
has refreshed its hour, and a confirmed fire must force the level at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from firewatch.core.risk_config import IndicatorConfig
from firewatch.core.rollups import Grain, Rollup, Tier

#: Supervision classes; ``general`` is the registry's older name of ``ordinary``
#: (docs/domain.md, open question 9) and scores as ``ordinary``.
SUPERVISION_CLASSES = ("high_risk", "key", "ordinary", "general")
CREDIT_STATUSES = ("good", "watch", "blacklisted")


@dataclass(frozen=True, slots=True)
class UnitState:
    """What is true of a unit at the time of scoring. Counts are whole numbers >= 0;
    durations are measured back from ``as_of`` and are 0 when there is nothing open.

    ``devices_total`` / ``devices_offline``: the unit's registered devices, and those whose
    latest status is offline now. ``panels_offline``: alarm panels (the automatic alarm
    system) offline now; ``panel_offline_hours``: hours since the longest-offline of them
    went offline. ``detectors_total``: detectors behind the unit's panels;
    ``detectors_isolated``: isolated (shielded) now; ``isolation_hours``: hours since the
    oldest current isolation began. ``open_fault_alerts``: fault alerts not yet resolved;
    ``oldest_fault_hours``: age of the oldest. Hazards (supervision's records): open major /
    general ones, ``overdue_hazards`` open past their deadline, ``oldest_hazard_days`` the age
    of the oldest open one, and over the last 365 days the hazards found, inspections made
    and false self-declarations. ``credit``: good / watch / blacklisted. ``supervision``:
    high_risk / key / ordinary (``general`` is read as ordinary). ``building_class``: as in
    the registry; risk-v1 does not score it (it already sets the water minimum behind the
    rollups' ``pressure_low_min``). ``live_confirmed_fires``: fires an operator confirmed in
    the forced ``confirmed_fire`` condition's window, from the alert records (0 when the
    caller does not know; the rollups then decide alone).
    """

    supervision: str
    building_class: str = ""
    devices_total: int = 0
    devices_offline: int = 0
    panels_offline: int = 0
    panel_offline_hours: float = 0.0
    detectors_total: int = 0
    detectors_isolated: int = 0
    isolation_hours: float = 0.0
    open_fault_alerts: int = 0
    oldest_fault_hours: float = 0.0
    open_major_hazards: int = 0
    open_general_hazards: int = 0
    overdue_hazards: int = 0
    oldest_hazard_days: float = 0.0
    hazards_found_365d: int = 0
    inspections_365d: int = 0
    false_declarations_365d: int = 0
    credit: str = "good"
    live_confirmed_fires: int = 0

    def __post_init__(self) -> None:
        if self.supervision not in SUPERVISION_CLASSES:
            raise ValueError(
                f"UnitState.supervision: unknown class {self.supervision!r} "
                f"(expected {', '.join(SUPERVISION_CLASSES)})"
            )
        if self.credit not in CREDIT_STATUSES:
            raise ValueError(
                f"UnitState.credit: unknown status {self.credit!r} "
                f"(expected {', '.join(CREDIT_STATUSES)})"
            )
        for f in fields(self):
            v = getattr(self, f.name)
            number = isinstance(v, int | float) and not isinstance(v, bool)
            if number and (not math.isfinite(v) or v < 0):
                raise ValueError(f"UnitState.{f.name}: must be a number >= 0, got {v!r}")
        for part, whole in (
            ("devices_offline", "devices_total"),
            ("detectors_isolated", "detectors_total"),
        ):
            if getattr(self, part) > getattr(self, whole):
                raise ValueError(f"UnitState.{part} exceeds {whole}")

    @property
    def supervision_class(self) -> str:
        """The supervision class under its current name (``general`` -> ``ordinary``)."""
        return "ordinary" if self.supervision == "general" else self.supervision


class RollupWindows:
    """A unit's daily rollups before ``as_of``, summed over trailing windows of days.

    Sums are exact (``math.fsum``) and so do not depend on the order of the rollups:
    the same rollups give the same score in any order.
    """

    def __init__(self, unit_id: str, as_of: datetime, rollups: Sequence[Rollup]) -> None:
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        for r in rollups:
            if r.tier is not Tier.UNIT or r.grain is not Grain.DAY or r.subject_id != unit_id:
                raise ValueError(
                    f"risk for unit {unit_id!r} takes its own daily unit rollups, got "
                    f"{r.tier}/{r.grain} rollup of {r.subject_id!r} at {r.bucket.isoformat()}"
                )
            if r.bucket.tzinfo is None:
                raise ValueError(f"rollup bucket {r.bucket.isoformat()} is not timezone-aware")
        self.as_of = as_of
        self._rollups = [r for r in rollups if r.bucket < as_of]
        self._cache: dict[int, list[Rollup]] = {}

    def window(self, days: int) -> list[Rollup]:
        """The rollups whose bucket lies in ``[as_of - days, as_of)``."""
        if days not in self._cache:
            start = self.as_of - timedelta(days=days)
            self._cache[days] = [r for r in self._rollups if r.bucket >= start]
        return self._cache[days]

    def total(self, days: int, measure: Callable[[Rollup], float]) -> float:
        """The sum of ``measure`` over the window of ``days``."""
        return math.fsum(measure(r) for r in self.window(days))

    def per_30d(self, days: int, measure: Callable[[Rollup], float]) -> float:
        """The window's total as a rate per 30 days."""
        return self.total(days, measure) * 30.0 / days


Value = float | str | None
_ValueFn = Callable[[IndicatorConfig, RollupWindows, UnitState], Value]


def _days(cfg: IndicatorConfig) -> int:
    assert cfg.window_days is not None  # the loader requires it for rollup indicators
    return cfg.window_days


def _ratio(num: float, den: float, scale: float) -> float | None:
    return None if den <= 0 else num / den * scale


def _anomalies(cfg: IndicatorConfig, w: RollupWindows, _s: UnitState) -> Value:
    sw = cfg.severity_weights or {}
    return w.per_30d(
        _days(cfg),
        lambda r: (
            sw.get("critical", 0.0) * r.anomalies_critical
            + sw.get("high", 0.0) * r.anomalies_high
            + sw.get("medium", 0.0) * r.anomalies_medium
            + sw.get("low", 0.0) * r.anomalies_low
        ),
    )


def _ack_minutes(cfg: IndicatorConfig, w: RollupWindows, _s: UnitState) -> Value:
    acks = w.total(_days(cfg), lambda r: r.acks)
    return None if acks <= 0 else w.total(_days(cfg), lambda r: r.ack_s_sum) / acks / 60.0


#: How each indicator of the catalogue gets its value (None: no data, earns nothing).
VALUE_OF: dict[str, _ValueFn] = {
    "confirmed_fires": lambda c, w, s: w.total(_days(c), lambda r: r.confirmed_fires),
    "false_alarms": lambda c, w, s: _ratio(
        w.per_30d(_days(c), lambda r: r.false_alarms), s.detectors_total, 100.0
    ),
    "faults": lambda c, w, s: w.per_30d(_days(c), lambda r: r.faults),
    "fault_hours": lambda c, w, s: w.per_30d(_days(c), lambda r: r.fault_open_min) / 60.0,
    "isolated_time": lambda c, w, s: _ratio(
        w.total(_days(c), lambda r: r.isolated_min), s.detectors_total * _days(c) * 1440.0, 100.0
    ),
    "offline_hours": lambda c, w, s: _ratio(
        w.per_30d(_days(c), lambda r: r.offline_min) / 60.0, s.devices_total, 1.0
    ),
    "water_low_hours": lambda c, w, s: (
        w.per_30d(_days(c), lambda r: r.pressure_low_min + r.tank_low_min) / 60.0
    ),
    "shed_events": lambda c, w, s: w.per_30d(
        _days(c), lambda r: r.shed_overtemp_events + r.shed_overcurrent_events
    ),
    "anomalies": _anomalies,
    "ack_minutes": _ack_minutes,
    "open_faults": lambda c, w, s: float(s.open_fault_alerts),
    "oldest_fault_days": lambda c, w, s: s.oldest_fault_hours / 24.0,
    "isolated_detectors": lambda c, w, s: _ratio(s.detectors_isolated, s.detectors_total, 100.0),
    "offline_devices": lambda c, w, s: _ratio(s.devices_offline, s.devices_total, 100.0),
    "open_major_hazards": lambda c, w, s: float(s.open_major_hazards),
    "open_general_hazards": lambda c, w, s: float(s.open_general_hazards),
    "overdue_hazards": lambda c, w, s: float(s.overdue_hazards),
    "oldest_hazard_days": lambda c, w, s: s.oldest_hazard_days,
    "hazards_found": lambda c, w, s: float(s.hazards_found_365d),
    "false_declarations": lambda c, w, s: float(s.false_declarations_365d),
    "credit": lambda c, w, s: s.credit,
    "supervision_class": lambda c, w, s: s.supervision_class,
}
