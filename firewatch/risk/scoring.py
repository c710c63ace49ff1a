"""Score units from the database: gather each unit's inputs, run the model, keep the result.

The model is pure (``core/risk.py``: :func:`~firewatch.core.risk.assess` with the versioned
config, docs/risk.md). This module feeds it what the database knows *as at* a time:

* the unit's daily rollups before that time (``storage/risk_inputs.unit_days``: the tiered
  analysis database the rollup worker keeps);
* its current state (``storage/risk_inputs.unit_facts``: open episodes of offline devices,
  isolated components and faults, its class; a fire an operator confirmed);
* its supervision record (``storage/hazards.hazard_summary``: open and overdue hazards,
  inspections, false self-declarations, credit);

and stores the assessment through ``storage/risk.record_score``, which raises a warning
when the level rose. All units are read with a handful of set-based queries, however many.

**What is kept.** Every run scores every unit it is asked about, but the history keeps a
score only when it says something new (``Keep``): a different level or set of forced
conditions, a score moved by ``change`` points, or the unit's newest kept score older than
``every``; a manual run keeps everything. So an hourly schedule leaves about one row per
unit per day in a quiet city, and every change in a busy one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from firewatch.core.risk import RiskAssessment, assess, explain
from firewatch.core.risk_config import RiskConfig
from firewatch.core.risk_inputs import UnitState
from firewatch.core.risk_levels import level_rose
from firewatch.core.supervision import HazardSummary
from firewatch.storage import risk as store
from firewatch.storage.hazards import hazard_summary
from firewatch.storage.risk_inputs import all_unit_ids, unit_days, unit_facts


@dataclass(frozen=True, slots=True)
class Keep:
    """When a recomputed score is written to the history (module docstring)."""

    change: float = 0.5
    every: timedelta = timedelta(days=1)
    always: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """One unit's assessment in a run: whether it was kept, the level it had before, and the
    warning raised (None when the level did not rise or the score was not kept)."""

    assessment: RiskAssessment
    kept: bool
    previous_level: str | None
    warning_id: int | None


def unit_state(facts: Mapping[str, Any], record: HazardSummary | None) -> UnitState:
    """The model's view of a unit now, from its facts (``unit_facts``) and supervision
    record (None: none, i.e. no hazards and good credit)."""
    record = record or HazardSummary(unit_id=str(facts["unit_id"]))
    isolated = int(facts["isolated_components"])
    devices = int(facts["devices"])
    return UnitState(
        supervision=str(facts["supervision"]),
        building_class=str(facts["building_class"]),
        devices_total=devices,
        devices_offline=min(int(facts["offline_devices"]), devices),
        panels_offline=int(facts["offline_panels"]),
        panel_offline_hours=float(facts["panel_offline_h"]),
        # a panel whose registry entry does not say how many detectors it has still has
        # the ones it reports isolated
        detectors_total=max(int(facts["detectors"]), isolated),
        detectors_isolated=isolated,
        isolation_hours=float(facts["isolated_max_h"]),
        open_fault_alerts=int(facts["open_faults"]),
        oldest_fault_hours=float(facts["oldest_fault_h"]),
        open_major_hazards=record.open_major,
        open_general_hazards=record.open_general,
        overdue_hazards=record.overdue,
        oldest_hazard_days=record.oldest_open_days,
        hazards_found_365d=record.hazards_365d,
        inspections_365d=record.inspections_365d,
        false_declarations_365d=record.false_declarations_365d,
        credit=record.credit_status,
        live_confirmed_fires=int(facts["confirmed_fires"]),
    )


def _worth_keeping(
    a: RiskAssessment, last: store.ScoreRow | None, keep: Keep, computed_at: datetime
) -> bool:
    if keep.always or last is None:
        return True
    return (
        a.level.value != last.level
        or sorted(a.forced_by) != sorted(last.forced_by)
        or abs(a.score - last.score) >= keep.change
        or computed_at - last.computed_at >= keep.every
    )


def assess_units(
    conn: psycopg.Connection[Any],
    config: RiskConfig,
    unit_ids: Sequence[str] | None,
    at: datetime,
) -> list[tuple[RiskAssessment, UnitState]]:
    """Assess ``unit_ids`` (None: every unit; unknown ids are left out) as at ``at``,
    without storing anything."""
    units = list(unit_ids) if unit_ids is not None else all_unit_ids(conn)
    fire = next((f for f in config.forced if f.name == "confirmed_fire"), None)
    window = timedelta(days=float(fire.limits["window_days"]) if fire else 365.0)
    facts = unit_facts(conn, units, at, fire_lookback=window)
    known = sorted(facts)
    records = hazard_summary(conn, known, at)
    days = unit_days(conn, known, at - timedelta(days=config.lookback_days + 1), at)
    out = []
    for unit in known:
        state = unit_state(facts[unit], records.get(unit))
        out.append((assess(unit, at, days.get(unit, []), state, config), state))
    return out


def score_units(
    conn: psycopg.Connection[Any],
    config: RiskConfig,
    unit_ids: Sequence[str] | None,
    at: datetime,
    *,
    trigger: str,
    keep: Keep = Keep(),
) -> list[Outcome]:
    """Assess and store (see the module docstring); each unit in its own transaction, so
    one unit's failure (a bug, bad data) does not lose the others' scores -- it propagates
    after the units before it were stored."""
    assessed = assess_units(conn, config, unit_ids, at)
    last = store.last_scores(conn, [a.unit_id for a, _ in assessed])
    outcomes = []
    for a, _state in assessed:
        previous = last.get(a.unit_id)
        if not _worth_keeping(a, previous, keep, at):
            outcomes.append(Outcome(a, False, previous.level if previous else None, None))
            continue
        stored = store.record_score(
            conn,
            unit_id=a.unit_id,
            computed_at=at,
            as_of=a.as_of,
            score=a.score,
            level=a.level.value,
            score_level=a.score_level.value,
            forced_by=a.forced_by,
            breakdown=a.breakdown_json(),
            config_version=a.config_version,
            trigger=trigger,
            rises=level_rose,
            warning_reason=explain(a),
        )
        outcomes.append(Outcome(a, True, stored.previous_level, stored.warning_id))
    return outcomes
