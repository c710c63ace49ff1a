"""The unit fire-risk model: a score from weighted indicators, a level, forced conditions, and
the breakdown that explains it (docs/risk.md). Pure code: no database, no clock.

:func:`assess` takes one unit's daily rollups and its state at ``as_of``
(``core/risk_inputs.py``) and a loaded model (``core/risk_config.py``) and returns a
:class:`RiskAssessment`:

* each indicator has a **value** in its natural unit, a **normalised** share 0..1 of its
  weight (a ramp from ``zero_at`` to ``full_at``, or a share per category), its **weight**
  (points at full scale; the weights sum to 100) and its **points** = weight × normalised,
  rounded half up to 0.01. The **score** (0..100) is the sum of the points, computed in
  hundredths of a point, so the breakdown adds up to the score exactly at two decimals.
* the **score level** comes from the cut-offs (a boundary belongs to the higher level).
* **forced conditions** that hold raise the level to at least their configured level;
  ``forced_by`` lists every condition that holds (also when the score alone already gives
  that level), in the configuration's order. ``level`` is the higher of the two.

Same inputs and configuration, same result: sums are exact (``math.fsum``) and independent of
the order of the rollups.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from firewatch.core.risk_config import (
    INDICATOR_SPECS,
    ForcedConfig,
    RiskConfig,
    RiskConfigError,
    load_risk_config,
)
from firewatch.core.risk_inputs import VALUE_OF, RollupWindows, UnitState
from firewatch.core.risk_levels import Cutoffs, Level, as_level, compare_levels, highest, level_rose
from firewatch.core.rollups import Rollup

__all__ = [
    "Contribution",
    "Cutoffs",
    "Level",
    "RiskAssessment",
    "RiskConfig",
    "RiskConfigError",
    "UnitState",
    "assess",
    "compare_levels",
    "explain",
    "level_rose",
    "load_risk_config",
]


@dataclass(frozen=True, slots=True)
class Contribution:
    """One indicator's line of a breakdown.

    ``value`` is in ``unit`` (None when there is no data to compute it, e.g. no detectors
    for a per-detector rate; it then earns nothing); ``normalised`` is rounded to 4
    decimals for display, ``points`` are computed from the unrounded share.
    """

    indicator: str
    label: str
    value: float | str | None
    unit: str
    source: str  # "rollups, 90 d" or "state"
    normalised: float
    weight: float
    points: float

    def to_json(self) -> dict[str, Any]:
        return {
            "indicator": self.indicator,
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "source": self.source,
            "normalised": self.normalised,
            "weight": self.weight,
            "points": self.points,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Contribution:
        value = d["value"]
        return cls(
            indicator=str(d["indicator"]),
            label=str(d["label"]),
            value=value if value is None or isinstance(value, str) else float(value),
            unit=str(d["unit"]),
            source=str(d["source"]),
            normalised=float(d["normalised"]),
            weight=float(d["weight"]),
            points=float(d["points"]),
        )


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """A unit's risk at ``as_of``: what ``risk_scores`` keeps (one row per assessment)."""

    unit_id: str
    as_of: datetime
    score: float  # 0..100, two decimals, = sum of the breakdown's points
    score_level: Level  # what the score alone gives
    level: Level  # the score level, raised by forced conditions
    forced_by: tuple[str, ...]  # every forced condition that holds
    breakdown: tuple[Contribution, ...]  # one per indicator, in catalogue order
    config_version: str

    def breakdown_json(self) -> list[dict[str, Any]]:
        """The ``risk_scores.breakdown`` column: one object per indicator."""
        return [c.to_json() for c in self.breakdown]

    def to_json(self) -> dict[str, Any]:
        """The whole assessment as JSON-able values (``as_of`` in ISO 8601)."""
        return {
            "unit_id": self.unit_id,
            "as_of": self.as_of.isoformat(),
            "score": self.score,
            "score_level": self.score_level.value,
            "level": self.level.value,
            "forced_by": list(self.forced_by),
            "breakdown": self.breakdown_json(),
            "config_version": self.config_version,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RiskAssessment:
        """The inverse of :meth:`to_json`; also rebuilds an assessment from a
        ``risk_scores`` row given as a mapping of its columns (``as_of`` may be a datetime)."""
        as_of = d["as_of"]
        return cls(
            unit_id=str(d["unit_id"]),
            as_of=as_of if isinstance(as_of, datetime) else datetime.fromisoformat(as_of),
            score=float(d["score"]),
            score_level=as_level(d["score_level"]),
            level=as_level(d["level"]),
            forced_by=tuple(str(x) for x in d["forced_by"]),
            breakdown=tuple(Contribution.from_json(c) for c in d["breakdown"]),
            config_version=str(d["config_version"]),
        )

    def top(self, n: int = 3) -> list[Contribution]:
        """The ``n`` indicators that gave the most points (ties in catalogue order)."""
        earning = [c for c in self.breakdown if c.points > 0]
        return sorted(earning, key=lambda c: -c.points)[:n]


def assess(
    unit_id: str,
    as_of: datetime,
    rollups: Sequence[Rollup],
    state: UnitState,
    config: RiskConfig,
) -> RiskAssessment:
    """Score one unit at ``as_of`` from its daily rollups and its state (module docstring).

    ``rollups`` must be the unit's own daily unit-tier rollups (ValueError otherwise);
    those at or after ``as_of`` are ignored, so the score uses data before ``as_of`` only.
    Pass at least ``config.lookback_days`` days of them.
    """
    windows = RollupWindows(unit_id, as_of, rollups)
    lines: list[Contribution] = []
    total_cents = 0
    for ind in config.indicators:
        spec = INDICATOR_SPECS[ind.name]
        value = VALUE_OF[ind.name](ind, windows, state)
        share = ind.normalise(value)
        cents = math.floor(ind.weight * share * 100 + 0.5)
        total_cents += cents
        lines.append(
            Contribution(
                indicator=ind.name,
                label=spec.label,
                value=round(value, 4) if isinstance(value, float) else value,
                unit=spec.unit,
                source=f"rollups, {ind.window_days} d" if ind.window_days else "state",
                normalised=round(share, 4),
                weight=ind.weight,
                points=cents / 100,
            )
        )
    score = total_cents / 100
    score_level = config.cutoffs.level_of(score)
    forcing = [f for f in config.forced if f.enabled and _holds(f, windows, state)]
    level = highest([score_level, *(f.level for f in forcing)])
    return RiskAssessment(
        unit_id=unit_id,
        as_of=as_of,
        score=score,
        score_level=score_level,
        level=level,
        forced_by=tuple(f.name for f in forcing),
        breakdown=tuple(lines),
        config_version=config.version,
    )


def _holds(cond: ForcedConfig, w: RollupWindows, s: UnitState) -> bool:
    """Whether a forced condition holds (its limits: docs/risk.md, "Forced conditions")."""
    lim = cond.limits
    match cond.name:
        case "confirmed_fire":
            fires = w.total(int(lim["window_days"]), lambda r: r.confirmed_fires)
            return max(fires, s.live_confirmed_fires) >= lim["fires"]
        case "alarm_system_offline":
            return s.panels_offline > 0 and s.panel_offline_hours >= lim["hours"]
        case "alarm_system_isolated":
            if s.detectors_total <= 0 or s.detectors_isolated <= 0:
                return False
            share = 100.0 * s.detectors_isolated / s.detectors_total
            return share >= lim["share_pct"] and s.isolation_hours >= lim["hours"]
        case "water_pressure_low":
            low_min = w.total(int(lim["window_days"]), lambda r: r.pressure_low_min)
            return low_min >= lim["hours"] * 60.0
        case "blacklisted":
            return s.credit == "blacklisted"
    raise AssertionError(f"forced condition {cond.name} has no rule")  # the loader prevents it


def explain(a: RiskAssessment, top: int = 3) -> str:
    """One line for a supervisor: level, score, what forced it, the largest contributions."""
    parts = [f"{a.level.value} (score {a.score:.2f}, {a.score_level.value} by score"]
    if a.forced_by:
        parts.append(f"; forced by {', '.join(a.forced_by)}")
    parts.append(")")
    lines = a.top(top)
    if lines:
        parts.append(
            ": "
            + ", ".join(
                f"{c.indicator} {c.points:.2f}/{c.weight:g} ({_show(c.value)} {c.unit})"
                for c in lines
            )
        )
    return "".join(parts)


def _show(value: float | str | None) -> str:
    if value is None:
        return "no data"
    return value if isinstance(value, str) else f"{value:g}"
