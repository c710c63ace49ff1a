"""A simulated year of unit history, then a following quarter: what the risk model reads, and
the incidents it should have seen coming (benchmarks/risk/README.md, docs/risk.md).

Every unit gets hidden **propensities** (z-scores, higher is worse), drawn once and constant
over the 15 months:

* ``management``: how the unit is run: how fast faults are repaired and hazards rectified,
  how long detectors stay isolated, how fast the duty staff answer alerts.
* ``equipment``: the condition of its fire systems (correlated 0.4 with management).
* ``occupancy``: people, fuel load and activity in the building.
* ``ebike``: e-bike charging exposure. It acts on every unit's fires, but only a unit with
  a charging shed has sensors that see it.
* ``category``: the hazard of the unit's category (a fixed offset, :data:`CATEGORY_HAZARD`).

and **nuisance** factors that move observables without touching risk: detector sensitivity
(false alarms, faults, isolations), network quality (offline time), duty-staff speed
(response times), sensor noise (low anomalies), shed charger quality (over-current).

From them, with Poisson and log-normal noise, come the daily rollups (the
:class:`~firewatch.core.rollups.Rollup` fields) and the records behind the unit state:
fault, isolation and offline spells; latent hazards that arise, are found by inspections
(more often in high-risk units, and after a fire) with a probability, get a deadline and
are rectified on time, late or never, sometimes with a false self-declaration; credit
changes by fixed rules. **Incidents** are fires and major (serious) hazards arising; their
rates are log-linear in the propensities only (:func:`incident_rates`), never in anything
the model computes. Each propensity enters several observables and no observable carries
one alone (the table in benchmarks/risk/README.md). Seeded: same arguments, same history;
each process draws from its own random stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from firewatch.core.risk_inputs import UnitState
from firewatch.core.rollups import Grain, Rollup, Tier
from firewatch.simulators.unit_history_processes import (
    COUNT_FIELDS,
    F64,
    GAUGE_FIELDS,
    I64,
    SUM_FIELDS,
    Bool,
    Hazards,
    HistoryBuilder,
    HistoryUnit,
    Propensities,
    Spells,
    draw_propensities,
    draw_units,
    events,
    incident_rates,
    rng_for,
)

#: Local midnight (UTC+8) of 1 October 2025: rollup days start at the city's midnight.
DEFAULT_START = datetime(2025, 9, 30, 16, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CreditEvent:
    unit_id: str
    day: int
    status_from: str
    status_to: str


@dataclass(frozen=True, eq=False)
class Outcomes:
    """What happened in the following quarter, per unit (the truth the score is judged by)."""

    fires: I64
    major_hazards: I64

    @property
    def incident(self) -> Bool:
        """A fire or a serious (major) hazard in the following quarter."""
        return np.asarray((self.fires > 0) | (self.major_hazards > 0))


class UnitHistory:
    """The simulated history of ``units``: daily measures, spells, hazards, outcomes.

    Days count from ``start`` (a local midnight); the history is days ``[0, history_days)``, the
    cut-off is ``start + history_days`` and the following quarter is the next
    ``follow_days``. :meth:`rollups` and :meth:`states_at` give what the risk model reads.
    """

    def __init__(
        self,
        *,
        seed: int,
        start: datetime,
        history_days: int,
        follow_days: int,
        units: tuple[HistoryUnit, ...],
        propensities: Propensities,
        daily: dict[str, F64],
        faults_by_type: dict[str, F64],
        faults: Spells,
        isolations: Spells,
        offline: Spells,
        hazards: Hazards,
        inspections: tuple[I64, F64],
        fires: tuple[I64, F64],
        majors: tuple[I64, F64],
    ) -> None:
        self.seed, self.start = seed, start
        self.history_days, self.follow_days = history_days, follow_days
        self.units, self.propensities = units, propensities
        self.daily, self.faults_by_type = daily, faults_by_type
        self.faults, self.isolations, self.offline = faults, isolations, offline
        self.hazards, self.inspections = hazards, inspections
        self.fires, self.majors = fires, majors
        self._detectors = np.array([u.detectors for u in units], dtype=np.int64)

    @property
    def days(self) -> int:
        return self.history_days + self.follow_days

    @property
    def cutoff(self) -> datetime:
        """The end of the history year: scores are computed here from what came before."""
        return self.start + timedelta(days=self.history_days)

    def rollups(self, i: int, first_day: int = 0, end_day: int | None = None) -> list[Rollup]:
        """Unit ``i``'s daily rollups for days ``[first_day, end_day)`` (default: the
        history), one per day with anything to report (days without a row: nothing)."""
        end = self.history_days if end_day is None else end_day
        sl = slice(first_day, end)
        names = COUNT_FIELDS + SUM_FIELDS + GAUGE_FIELDS
        counts = [self.daily[k][i, sl].astype(np.int64) for k in COUNT_FIELDS]
        sums = [self.daily[k][i, sl] for k in SUM_FIELDS]
        gauges = [np.round(self.daily[k][i, sl], 1) for k in GAUGE_FIELDS]
        active = np.zeros(end - first_day, dtype=bool)
        for c in counts + sums:
            active |= c != 0
        for g in gauges:
            active |= ~np.isnan(g)
        days = np.nonzero(active)[0]
        cols = [c[days].tolist() for c in counts + sums]
        cols += [[None if x != x else x for x in g[days].tolist()] for g in gauges]
        types = {
            k: v[i, sl][days].astype(np.int64).tolist() for k, v in self.faults_by_type.items()
        }
        uid, out = self.units[i].unit_id, []
        for j, (day, values) in enumerate(zip(days.tolist(), zip(*cols, strict=True), strict=True)):
            out.append(
                Rollup(
                    tier=Tier.UNIT,
                    subject_id=uid,
                    grain=Grain.DAY,
                    bucket=self.start + timedelta(days=first_day + day),
                    faults_by_type={t: v[j] for t, v in types.items() if v[j]},
                    **dict(zip(names, values, strict=True)),
                )
            )
        return out

    def credit_at(self, t: float) -> list[str]:
        """Each unit's credit at day ``t``, by rules close to supervision's defaults
        (``FIREWATCH_SUPERVISION_CREDIT_*``) but without memory (no clean period):
        blacklisted after a false self-declaration in the last 365 days, with an overdue
        open major hazard or a hazard overdue by more than 30 days; watch with any overdue
        hazard or 3+ hazards found in 180 days (supervision blacklists for that); else good."""
        h, n = self.hazards, len(self.units)
        open_ = (h.found <= t) & (h.rectified > t)
        overdue = open_ & (h.deadline < t)
        fd = (h.false_declared <= t) & (h.false_declared > t - 365)
        black = np.zeros(n, dtype=bool)
        black[h.unit[fd | (overdue & h.major) | (open_ & (h.deadline < t - 30))]] = True
        watch = np.bincount(h.unit[overdue], minlength=n) > 0
        watch |= np.bincount(h.unit[(h.found <= t) & (h.found > t - 180)], minlength=n) >= 3
        return [
            "blacklisted" if b else "watch" if w else "good"
            for b, w in zip(black, watch, strict=True)
        ]

    def credit_events(self) -> list[CreditEvent]:
        """Every change of credit status at day boundaries over the whole horizon."""
        events: list[CreditEvent] = []
        before = ["good"] * len(self.units)
        for day in range(1, self.days + 1):
            now = self.credit_at(float(day))
            events += [
                CreditEvent(self.units[i].unit_id, day, b, a)
                for i, (b, a) in enumerate(zip(before, now, strict=True))
                if a != b
            ]
            before = now
        return events

    def states_at(self, t: float | None = None) -> list[UnitState]:
        """Every unit's :class:`UnitState` at day ``t`` (default: the cut-off)."""
        t = float(self.history_days) if t is None else t
        n = len(self.units)

        def cnt(idx: I64) -> I64:
            return np.bincount(idx, minlength=n).astype(np.int64)

        def oldest(s: Spells, mask: Bool) -> F64:
            out = np.zeros(n)
            np.maximum.at(out, s.unit[mask], (t - s.start[mask]) * 24.0)
            return out

        f = self.faults
        f_open = (f.start <= t) & (f.end > t)
        iso = self.isolations
        i_open = (iso.start <= t) & (iso.end > t)
        isolated = np.minimum(np.bincount(iso.unit[i_open], iso.size[i_open], n), self._detectors)
        isolated = isolated.astype(np.int64)
        off = self.offline
        o_open = (off.start <= t) & (off.end > t)
        p_open = o_open & off.panel

        def distinct(mask: Bool) -> I64:  # spells can overlap on one device
            assert off.device is not None
            pairs = np.unique(off.unit[mask] * 100_000 + off.device[mask])
            return cnt(pairs // 100_000)

        h = self.hazards
        h_open = (h.found <= t) & (h.rectified > t)
        age = np.zeros(n)
        np.maximum.at(age, h.unit[h_open], t - h.found[h_open])
        ins_u, ins_t = self.inspections
        credit = self.credit_at(t)

        def last_year(x: F64) -> Bool:
            return np.asarray((x <= t) & (x > t - 365))

        cols = {
            "devices_offline": distinct(o_open),
            "panels_offline": distinct(p_open),
            "panel_offline_hours": oldest(off, p_open),
            "detectors_isolated": isolated,
            "isolation_hours": oldest(iso, i_open),
            "open_fault_alerts": cnt(f.unit[f_open]),
            "oldest_fault_hours": oldest(f, f_open),
            "open_major_hazards": cnt(h.unit[h_open & h.major]),
            "open_general_hazards": cnt(h.unit[h_open & ~h.major]),
            "overdue_hazards": cnt(h.unit[h_open & (h.deadline < t)]),
            "oldest_hazard_days": age,
            "hazards_found_365d": cnt(h.unit[last_year(h.found)]),
            "inspections_365d": cnt(ins_u[last_year(ins_t)]),
            "false_declarations_365d": cnt(h.unit[last_year(h.false_declared)]),
        }
        lists = {k: v.tolist() for k, v in cols.items()}
        return [
            UnitState(
                supervision=u.supervision,
                building_class=u.building_class,
                devices_total=u.devices_total,
                detectors_total=u.detectors,
                credit=credit[i],
                **{k: v[i] for k, v in lists.items()},
            )
            for i, u in enumerate(self.units)
        ]

    def outcomes(self) -> Outcomes:
        """Fires and major hazards arising in the following quarter, per unit."""
        lo, hi, n = self.history_days, self.days, len(self.units)

        def count(ev: tuple[I64, F64]) -> I64:
            u, t = ev
            return np.bincount(u[(t >= lo) & (t < hi)], minlength=n).astype(np.int64)

        return Outcomes(fires=count(self.fires), major_hazards=count(self.majors))


def simulate_unit_history(
    units: int,
    seed: int,
    *,
    start: datetime = DEFAULT_START,
    history_days: int = 365,
    follow_days: int = 91,
) -> UnitHistory:
    """Simulate ``units`` units for ``history_days`` and the ``follow_days`` after them.
    Same arguments, same history. ``start`` is the first day's start (a local midnight)."""
    if units < 1 or history_days < 1 or follow_days < 0:
        raise ValueError("units and history_days must be at least 1, follow_days at least 0")
    if start.tzinfo is None:
        raise ValueError(f"start must be timezone-aware, got {start.isoformat()}")
    days = history_days + follow_days
    us = draw_units(units, rng_for(seed, "units"))
    p, nz = draw_propensities(us, rng_for(seed, "propensities"))
    b = HistoryBuilder(seed, us, p, nz, days)
    fire_rate, major_rate = incident_rates(p)
    fires = events(rng_for(seed, "fires"), fire_rate, days)
    majors = events(rng_for(seed, "majors"), major_rate, days)
    b.alarms(fires)
    faults = b.faults()
    isolations = b.isolations()
    offline = b.offline()
    b.water()
    b.sheds()
    b.responses()
    inspections = b.inspections(fires)
    hazards = b.hazards(majors, inspections)
    return UnitHistory(
        seed=seed,
        start=start,
        history_days=history_days,
        follow_days=follow_days,
        units=us,
        propensities=p,
        daily=b.daily,
        faults_by_type=b.by_type,
        faults=faults,
        isolations=isolations,
        offline=offline,
        hazards=hazards,
        inspections=inspections,
        fires=fires,
        majors=majors,
    )
