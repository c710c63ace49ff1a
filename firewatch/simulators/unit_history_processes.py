"""The generative processes behind the simulated unit history (``unit_history.py``): units,
hidden propensities, and the events, spells and hazards they drive.

Rates are per unit per day, log-linear in the propensities (``M`` management, ``E``
equipment, ``O`` occupancy, ``B`` e-bike exposure, ``C`` category offset) and in nuisance
factors that carry no risk (``N_det`` detector sensitivity, ``N_net`` network quality,
``N_staff`` duty-staff speed, ``N_noise`` sensor noise, ``N_shed`` charger quality).
Every coefficient is a design assumption of this simulator, not a statistic; the table in
benchmarks/risk/README.md lists which propensity enters which observable. Each process
draws from its own random stream (named below), so changing one leaves the others as they
were.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from firewatch.core.domain import MIN_STATIC_PRESSURE_KPA
from firewatch.core.rollups import Rollup
from firewatch.simulators.city import CATEGORIES, DISTRICTS

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

#: Log-rate offset of fires and hazards by category (design assumption, not a statistic).
CATEGORY_HAZARD: dict[str, float] = {
    "flammables_store": 0.8,
    "entertainment_venue": 0.6,
    "market": 0.5,
    "commercial_complex": 0.4,
    "nursing_home": 0.3,
    "hotel": 0.3,
    "hospital": 0.2,
    "residential_highrise": 0.1,
    "school": -0.2,
    "office": -0.3,
}
#: Share of units of a category that have an e-bike charging shed (others: 25 %).
SHED_SHARE: dict[str, float] = {"residential_highrise": 0.8, "market": 0.5, "school": 0.4}
#: Inspections per year by supervision class; after a fire, one more within 3-10 days.
INSPECTIONS_PER_YEAR: dict[str, float] = {"high_risk": 2.0, "key": 1.2, "general": 0.6}
#: Rectification deadline in days after a hazard is found (supervision's defaults,
#: ``FIREWATCH_SUPERVISION_DEADLINE_DAYS``).
DEADLINE_DAYS = {"major": 30.0, "general": 15.0}
#: Chance that an inspection finds a hazard that exists.
FIND_PROBABILITY = 0.8
#: Panel fault flags (``Rollup.faults_by_type``) and their shares of the faults.
FAULT_TYPES = ("fault", "power_fault", "mains_power_fault", "backup_power_fault", "bus_fault")
FAULT_TYPE_SHARES = (0.6, 0.1, 0.1, 0.1, 0.1)
#: Power and bus faults are high-severity anomalies, the rest medium (docs/domain.md).
HIGH_FAULT_TYPES = ("power_fault", "mains_power_fault", "backup_power_fault", "bus_fault")
#: Rollup fields the simulator fills, by their annotation: counts (int), sums of minutes or
#: seconds (float), gauges (float | None; NaN here while there is no reading).
_TYPES = {f.name: str(f.type) for f in fields(Rollup)}
COUNT_FIELDS = [name for name, t in _TYPES.items() if t == "int"]
SUM_FIELDS = [name for name, t in _TYPES.items() if t == "float"]
GAUGE_FIELDS = [name for name, t in _TYPES.items() if t == "float | None"]


@dataclass(frozen=True, slots=True)
class HistoryUnit:
    """A simulated unit: registry facts and its equipment."""

    unit_id: str
    category: str
    supervision: str
    building_class: str
    panels: int
    detectors: int
    water_points: int
    has_tank: bool
    has_shed: bool

    @property
    def devices_total(self) -> int:
        return self.panels + self.water_points + int(self.has_tank) + int(self.has_shed)

    @property
    def min_kpa(self) -> float:
        """The static-pressure minimum of its building class (docs/domain.md, "Fire water")."""
        return MIN_STATIC_PRESSURE_KPA.get(self.building_class, 100.0)


@dataclass(frozen=True, eq=False)
class Propensities:
    """Hidden per-unit drivers, one value per unit (z-scores, higher is worse)."""

    management: F64
    equipment: F64
    occupancy: F64
    ebike: F64
    category: F64  # CATEGORY_HAZARD of the unit's category


@dataclass(frozen=True, eq=False)
class Spells:
    """Intervals in days from the start: a fault open, detectors isolated, a device offline."""

    unit: I64
    start: F64
    end: F64
    size: I64  # detectors isolated; else 1
    panel: Bool  # offline spells: the device is an alarm panel
    device: I64 | None = None  # offline spells: the device's index in its unit


@dataclass(frozen=True, eq=False)
class Hazards:
    """Hazards found by inspections, with their fate (times in days; inf: never)."""

    unit: I64
    major: Bool
    found: F64
    deadline: F64
    rectified: F64
    false_declared: F64  # when a false self-declaration was discovered


def incident_rates(p: Propensities) -> tuple[F64, F64]:
    """Per unit per day: fires, and major hazards arising. The outcome's only drivers."""
    fire = 0.6e-4 * np.exp(
        0.45 * p.occupancy + 0.35 * p.management + 0.25 * p.equipment + 0.45 * p.ebike + p.category
    )
    major = 6.5e-4 * np.exp(
        0.8 * p.management
        + 0.3 * p.occupancy
        + 0.25 * p.equipment
        + 0.2 * p.ebike
        + 0.5 * p.category
    )
    return np.asarray(fire), np.asarray(major)


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """The random stream ``stream`` of run ``seed``."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def draw_units(n: int, rng: np.random.Generator) -> tuple[HistoryUnit, ...]:
    """``n`` units with the simulated city's categories and classes (``city.CATEGORIES``)."""
    weights = np.array([c[3] for c in CATEGORIES])
    cats = rng.choice(len(CATEGORIES), size=n, p=weights / weights.sum())
    out = []
    for i, c in enumerate(cats.tolist()):
        category, supervision, classes, _w = CATEGORIES[c]
        panels = int(rng.integers(1, 4))
        out.append(
            HistoryUnit(
                unit_id=f"U-{DISTRICTS[i % len(DISTRICTS)][1]}-{i + 1:05d}",
                category=category,
                supervision=supervision,
                building_class=classes[int(rng.integers(len(classes)))],
                panels=panels,
                detectors=panels * 2 * 8 * int(rng.integers(2, 9)),
                water_points=int(rng.integers(1, 5)),
                has_tank=bool(rng.random() < 0.4),
                has_shed=bool(rng.random() < SHED_SHARE.get(category, 0.25)),
            )
        )
    return tuple(out)


def draw_propensities(
    units: tuple[HistoryUnit, ...], rng: np.random.Generator
) -> tuple[Propensities, dict[str, F64]]:
    """The hidden propensities and the nuisance factors (``det``, ``net``, ``staff``,
    ``noise``, ``shed``), all standard normal but for the 0.4 correlation of equipment
    with management and the category offset."""
    n = len(units)
    z = rng.standard_normal((9, n))
    m = z[0]
    p = Propensities(
        management=m,
        equipment=0.4 * m + np.sqrt(1 - 0.4**2) * z[1],
        occupancy=z[2],
        ebike=z[3],
        category=np.array([CATEGORY_HAZARD[u.category] for u in units]),
    )
    nuisance = dict(zip(("det", "net", "staff", "noise", "shed"), z[4:9], strict=True))
    return p, nuisance


def events(rng: np.random.Generator, rate: F64, days: int) -> tuple[I64, F64]:
    """A Poisson process per unit at ``rate`` per day over ``[0, days)``: (unit, time),
    sorted by unit then time."""
    n = rng.poisson(rate * days)
    unit = np.repeat(np.arange(len(rate)), n)
    t = rng.uniform(0.0, days, size=unit.size)
    order = np.lexsort((t, unit))
    return unit[order], t[order]


def per_day(shape: tuple[int, int], unit: I64, t: F64, weight: Any = 1.0) -> F64:
    """Counts (or sums of ``weight``) per unit and day of events at times ``t``."""
    out = np.zeros(shape)
    keep = (t >= 0) & (t < shape[1])
    w = weight[keep] if isinstance(weight, np.ndarray) else weight
    np.add.at(out, (unit[keep], np.floor(t[keep]).astype(np.int64)), w)
    return out


def minutes_per_day(
    shape: tuple[int, int], unit: I64, start: F64, end: F64, size: Any = None
) -> F64:
    """Minutes of each day that the spells ``[start, end)`` (in days) cover, per unit, times
    the spell's ``size`` if given (component-minutes); a spell over midnight is split
    between the days."""
    s, e = np.clip(start, 0, shape[1]), np.clip(end, 0, shape[1])
    keep = e > s
    u, s, e = unit[keep], s[keep], e[keep]
    k = np.ones(u.size) if size is None else np.asarray(size, dtype=np.float64)[keep]
    d0 = np.floor(s).astype(np.int64)
    span = np.maximum(np.ceil(e).astype(np.int64) - d0, 1)
    first = np.repeat(np.cumsum(span) - span, span)
    day = np.repeat(d0, span) + (np.arange(int(span.sum())) - first)
    overlap = np.minimum(np.repeat(e, span), day + 1) - np.maximum(np.repeat(s, span), day)
    out = np.zeros(shape)
    np.add.at(
        out, (np.repeat(u, span), day), np.maximum(overlap, 0.0) * 1440.0 * np.repeat(k, span)
    )
    return out


def lognormal_sums(rng: np.random.Generator, counts: F64, log_median: F64, sigma: float) -> F64:
    """Per unit and day, the sum of ``counts`` log-normal draws with the unit's median
    ``exp(log_median)`` (response times of the alerts of that day)."""
    flat = counts.astype(np.int64).ravel()
    idx = np.repeat(np.arange(flat.size), flat)
    unit = idx // counts.shape[1]
    draws = np.exp(log_median[unit] + sigma * rng.standard_normal(idx.size))
    sums = np.bincount(idx, weights=draws, minlength=flat.size)
    return np.asarray(sums, dtype=np.float64).reshape(counts.shape)


def find_hazards(
    rng: np.random.Generator,
    arising: tuple[I64, F64],
    major: Bool,
    lifetime: F64,
    inspections: tuple[I64, F64],
    management: F64,
) -> Hazards:
    """Latent hazards (``arising``, existing for ``lifetime`` days unless found) met by the
    unit's inspections: each inspection while one exists finds it with
    :data:`FIND_PROBABILITY`. A found hazard gets its deadline and a fate driven by
    management: rectified on time, late, or never, and when not on time possibly a false
    self-declaration, discovered at a re-check 10 days after the deadline."""
    ins_u, ins_t = inspections
    a_u, a_t = arising
    starts = np.searchsorted(ins_u, a_u, side="left")
    ends = np.searchsorted(ins_u, a_u, side="right")
    found = np.full(a_u.size, np.inf)
    coin = rng.random((a_u.size, 8))
    for k in range(a_u.size):
        times = ins_t[starts[k] : ends[k]]
        seen = times[(times >= a_t[k]) & (times < a_t[k] + lifetime[k])][:8]
        hits = np.nonzero(coin[k, : seen.size] < FIND_PROBABILITY)[0]
        if hits.size:
            found[k] = seen[hits[0]]
    keep = np.isfinite(found)
    u, mj, f = a_u[keep], major[keep], found[keep]
    m = management[u]
    length = np.where(mj, DEADLINE_DAYS["major"], DEADLINE_DAYS["general"])
    deadline = f + length
    on_time = rng.random(u.size) < _sig(2.5 - 1.0 * m)
    never = rng.random(u.size) < _sig(-3.5 + 0.8 * m)
    late = deadline + np.exp(np.log(10.0) + 0.5 * m + 0.8 * rng.standard_normal(u.size))
    rectified = np.where(on_time, f + length * rng.uniform(0.2, 1.0, u.size), late)
    rectified = np.where(~on_time & never, np.inf, rectified)
    lied = ~on_time & (rng.random(u.size) < _sig(-2.5 + 0.8 * m))
    return Hazards(
        unit=u,
        major=mj,
        found=f,
        deadline=deadline,
        rectified=rectified,
        false_declared=np.where(lied, deadline + 10.0, np.inf),
    )


def _sig(x: Any) -> F64:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64))))


class HistoryBuilder:
    """Fills the daily measures process by process (rates: unit_history_processes.py)."""

    def __init__(
        self,
        seed: int,
        units: tuple[HistoryUnit, ...],
        p: Propensities,
        nuisance: dict[str, F64],
        days: int,
    ) -> None:
        self.seed, self.units, self.p, self.nz = seed, units, p, nuisance
        self.n, self.days = len(units), days
        self.shape = (self.n, days)
        self.daily: dict[str, F64] = {k: np.zeros(self.shape) for k in COUNT_FIELDS + SUM_FIELDS}
        self.by_type: dict[str, F64] = {}
        self.detectors = np.array([u.detectors for u in units], dtype=np.float64)
        self.devices = np.array([u.devices_total for u in units], dtype=np.float64)

    def rng(self, stream: str) -> np.random.Generator:
        return rng_for(self.seed, stream)

    def _add(self, key: str, values: F64) -> None:
        self.daily[key] += values

    def alarms(self, fires: tuple[I64, F64]) -> None:
        """Fires (each raising 1-5 fire alarms) and false alarms (dusty or sensitive
        detectors, poor maintenance: E, M, N_det), per detector."""
        rng = self.rng("alarms")
        fu, ft = fires
        self._add("confirmed_fires", per_day(self.shape, fu, ft))
        self._add("fire_alarms", per_day(self.shape, fu, ft, 1.0 + rng.poisson(2.0, fu.size)))
        p = self.p
        rate = (
            2e-4
            * self.detectors
            * np.exp(0.45 * p.equipment + 0.3 * p.management + 0.6 * self.nz["det"])
        )
        fa = per_day(self.shape, *events(rng, rate, self.days))
        self._add("false_alarms", fa)
        self._add("fire_alarms", fa)
        self._add("anomalies_critical", self.daily["fire_alarms"].copy())

    def faults(self) -> Spells:
        """Faults by type (E, M, N_det; more devices, more faults), open for a log-normal
        time whose median grows with M; 3 % are neglected ten times as long."""
        rng, p = self.rng("faults"), self.p
        rate = (
            0.004
            * (self.devices + self.detectors / 50)
            * np.exp(0.55 * p.equipment + 0.25 * p.management + 0.3 * self.nz["det"])
        )
        u, t = events(rng, rate, self.days)
        kind = rng.choice(len(FAULT_TYPES), size=u.size, p=FAULT_TYPE_SHARES)
        dur = np.exp(
            np.log(6 / 24)
            + 0.6 * p.management[u]
            + 0.2 * p.equipment[u]
            + 1.1 * rng.standard_normal(u.size)
        )
        dur *= np.where(rng.random(u.size) < 0.03, 10.0, 1.0)
        for k, name in enumerate(FAULT_TYPES):
            self.by_type[name] = per_day(self.shape, u[kind == k], t[kind == k])
            severity = "anomalies_high" if name in HIGH_FAULT_TYPES else "anomalies_medium"
            self._add(severity, self.by_type[name])
        self._add("faults", per_day(self.shape, u, t))
        self._add("fault_open_min", minutes_per_day(self.shape, u, t, t + dur))
        return Spells(u, t, t + dur, np.ones(u.size, dtype=np.int64), np.zeros(u.size, bool))

    def isolations(self) -> Spells:
        """Detectors isolated (M above all, E, N_det): a few at a time, or now and then a
        large share of the system (more often with poor management)."""
        rng, p = self.rng("isolations"), self.p
        rate = 0.01 * np.exp(0.7 * p.management + 0.2 * p.equipment + 0.3 * self.nz["det"])
        u, t = events(rng, rate, self.days)
        det = self.detectors[u]
        size = np.minimum(1 + rng.poisson(1.5, u.size), det)
        whole = rng.random(u.size) < np.minimum(0.5, 0.04 * np.exp(0.6 * p.management[u]))
        size = np.where(whole, np.round(rng.uniform(0.2, 0.8, u.size) * det), size)
        dur = np.exp(np.log(10 / 24) + 0.8 * p.management[u] + 1.2 * rng.standard_normal(u.size))
        self._add("isolations", per_day(self.shape, u, t))
        self._add("isolated_min", minutes_per_day(self.shape, u, t, t + dur, size))
        self._add("anomalies_medium", per_day(self.shape, u, t))
        return Spells(u, t, t + dur, size.astype(np.int64), np.zeros(u.size, bool))

    def offline(self) -> Spells:
        """Devices offline (E, N_net; per device), for a time that grows with M and N_net;
        2 % are left offline for days."""
        rng, p = self.rng("offline"), self.p
        rate = 0.008 * self.devices * np.exp(0.35 * p.equipment + 0.8 * self.nz["net"])
        u, t = events(rng, rate, self.days)
        device = np.floor(rng.random(u.size) * self.devices[u]).astype(np.int64)
        panels = np.array([x.panels for x in self.units])[u]
        dur = np.exp(
            np.log(1 / 24)
            + 0.4 * p.management[u]
            + 0.4 * self.nz["net"][u]
            + 1.3 * rng.standard_normal(u.size)
        )
        abandoned = rng.random(u.size) < 0.02
        dur += np.where(
            abandoned,
            np.exp(np.log(3.0) + 0.5 * p.management[u] + 0.7 * rng.standard_normal(u.size)),
            0.0,
        )
        self._add("offline_min", minutes_per_day(self.shape, u, t, t + dur))
        long_ = dur >= 10 / 1440
        self._add("anomalies_medium", per_day(self.shape, u[long_], t[long_]))
        return Spells(u, t, t + dur, np.ones(u.size, dtype=np.int64), device < panels, device)

    def water(self) -> None:
        """Pressure below the building class's minimum (E, M; per water point, for a time
        growing with M; 30 % of them critical) and tank low level (E, M), with the daily
        minimum and mean pressure."""
        rng, p, shape = self.rng("water"), self.p, self.shape
        points = np.array([u.water_points for u in self.units], dtype=np.float64)
        rate = 0.004 * points * np.exp(0.6 * p.equipment + 0.45 * p.management)
        u, t = events(rng, rate, self.days)
        dur = np.exp(np.log(3 / 24) + 0.6 * p.management[u] + 1.2 * rng.standard_normal(u.size))
        low = minutes_per_day(shape, u, t, t + dur)
        self._add("pressure_low_min", low)
        self._add("anomalies_high", per_day(shape, u, t))
        crit = rng.random(u.size) < 0.3
        self._add("anomalies_critical", per_day(shape, u[crit], t[crit]))
        tank = np.array([x.has_tank for x in self.units], dtype=np.float64)
        rate = 0.003 * tank * np.exp(0.5 * p.equipment + 0.4 * p.management)
        u, t = events(rng, rate, self.days)
        dur = np.exp(np.log(6 / 24) + rng.standard_normal(u.size))
        self._add("tank_low_min", minutes_per_day(shape, u, t, t + dur))
        self._add("anomalies_high", per_day(shape, u, t))
        minimum = np.array([x.min_kpa for x in self.units])[:, None]
        static = minimum * rng.uniform(2.5, 4.0, (self.n, 1))
        mean = static + rng.normal(0.0, 5.0, shape)
        lowest = mean - 20.0 - np.abs(rng.normal(0.0, 10.0, shape))
        self.daily["pressure_mean_kpa"] = mean
        self.daily["pressure_samples"] += points[:, None] * 288  # one reading per 5 min
        self.daily["pressure_min_kpa"] = np.where(
            low > 0, minimum * rng.uniform(0.3, 0.95, shape), lowest
        )

    def sheds(self) -> None:
        """E-bike sheds: over-temperature (B, E, M) and over-current (B, M, N_shed) events,
        and the day's peak port temperature (B and noise, +25 °C on an over-temperature
        day). No shed, no readings: B then acts on fires unseen."""
        rng, p, shape = self.rng("sheds"), self.p, self.shape
        shed = np.array([u.has_shed for u in self.units], dtype=np.float64)
        rate = 0.006 * shed * np.exp(0.9 * p.ebike + 0.35 * p.equipment + 0.3 * p.management)
        hot = per_day(shape, *events(rng, rate, self.days))
        rate = 0.01 * shed * np.exp(0.7 * p.ebike + 0.25 * p.management + 0.4 * self.nz["shed"])
        amps = per_day(shape, *events(rng, rate, self.days))
        self._add("shed_overtemp_events", hot)
        self._add("shed_overcurrent_events", amps)
        self._add("anomalies_critical", hot)
        self._add("anomalies_high", amps)
        peak = 30.0 + 4.0 * p.ebike[:, None] + rng.normal(0.0, 3.0, shape) + 25.0 * (hot > 0)
        self.daily["shed_peak_temp_c"] = np.where(shed[:, None] > 0, peak, np.nan)

    def responses(self) -> None:
        """Low anomalies (sensor noise, N_noise), and the response to every other alert:
        acknowledged after a log-normal time whose median grows with M and N_staff;
        fire alarms and faults confirmed likewise."""
        rng, p, d = self.rng("responses"), self.p, self.daily
        noise = 0.15 * np.exp(0.8 * self.nz["noise"])
        d["anomalies_low"] += rng.poisson(np.broadcast_to(noise[:, None], self.shape))
        acks = d["anomalies_critical"] + d["anomalies_high"] + d["anomalies_medium"]
        d["acks"] += acks
        ack_med = np.log(180.0) + 0.35 * p.management + 0.5 * self.nz["staff"]
        d["ack_s_sum"] += lognormal_sums(rng, acks, ack_med, 0.9)
        confirms = d["fire_alarms"] + d["faults"]
        d["confirms"] += confirms
        conf_med = np.log(600.0) + 0.35 * p.management + 0.4 * self.nz["staff"]
        d["confirm_s_sum"] += lognormal_sums(rng, confirms, conf_med, 0.8)

    def inspections(self, fires: tuple[I64, F64]) -> tuple[I64, F64]:
        """Inspections at random times, more in high-risk units, and one 3-10 days after
        every fire; sorted by unit then time."""
        rng = self.rng("inspections")
        per_year = np.array([INSPECTIONS_PER_YEAR[u.supervision] for u in self.units])
        rate = per_year / 365.0 * np.exp(0.3 * rng.standard_normal(self.n))
        u, t = events(rng, rate, self.days)
        fu, ft = fires
        u = np.concatenate([u, fu])
        t = np.concatenate([t, ft + rng.uniform(3.0, 10.0, fu.size)])
        order = np.lexsort((t, u))
        return u[order], t[order]

    def hazards(self, majors: tuple[I64, F64], inspections: tuple[I64, F64]) -> Hazards:
        """Major hazards (the incidents' process) and general ones (M, O, E) arise and last
        until found by an inspection or quietly removed (a log-normal lifetime, longer
        with M); what inspections find gets a deadline and a fate (``find_hazards``)."""
        rng, p = self.rng("hazards"), self.p
        rate = 0.006 * np.exp(0.6 * p.management + 0.3 * p.occupancy + 0.2 * p.equipment)
        gu, gt = events(rng, rate, self.days)
        u = np.concatenate([majors[0], gu])
        t = np.concatenate([majors[1], gt])
        major = np.concatenate([np.ones(majors[0].size, bool), np.zeros(gu.size, bool)])
        life = np.exp(np.log(120.0) + 0.4 * p.management[u] + 0.6 * rng.standard_normal(u.size))
        order = np.lexsort((t, u))
        return find_hazards(
            rng, (u[order], t[order]), major[order], life[order], inspections, p.management
        )
