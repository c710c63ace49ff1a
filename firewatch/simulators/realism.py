"""Realism, opt-in per scenario: the ``[realism]`` table (``scenario.RealismSpec``).

The plain simulator is kind to detectors: Gaussian noise, every message arrives, every
device of a kind behaves alike, every day is the same, nobody ever works on a pump. This
module makes it less kind, per device, through one :class:`DeviceRealism` object that a
behaviour consults at a few points (noise, readings, demand, arrivals, loss, maintenance):

* **noise** — Student-t instead of Gaussian (same variance, heavier tails), single-sample
  glitches, quantisation to the sensor's resolution;
* **loss** — telemetry lost in transit at a rate and in bursts (the device sent it, so its
  ``seq`` advances and ingest sees a gap); not an offline fault and not labelled;
* **maintenance** — planned windows on fire-water points (:func:`plan_maintenance`),
  labelled with ``fault = "maintenance"`` in :attr:`Simulation.maintenance`, never among the
  fault labels;
* **seasonal** — weekend water demand and bike arrivals, a slow trend of daily demand;
* **devices** — per-device interval, set point, jockey sawtooth, port thermal constants and
  sensor offsets drawn from wide ranges.

Determinism and isolation: every draw comes from the ``rng`` handed in (the engine seeds it
with ``realism:<seed>:<device>``), never from the behaviour's own streams, so the natural
draws happen in the same order with or without realism — and a scenario without
``[realism]`` builds no :class:`DeviceRealism` at all: its streams are byte-identical to
what they were before this module existed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from firewatch.core.domain import DeviceKind, Severity
from firewatch.simulators.faults import LOCAL_UTC_OFFSET_S, local_hour
from firewatch.simulators.model import Label, SimDevice
from firewatch.simulators.scenario import MaintenanceSpec, RealismSpec

DAY_S = 86_400.0
MAINTENANCE = "maintenance"


def local_weekday(t: float) -> int:
    """Day of the week in city local time: Monday 0 … Sunday 6 (1970-01-01 was a Thursday)."""
    return (int((t + LOCAL_UTC_OFFSET_S) // DAY_S) + 3) % 7


def student_t(rng: random.Random, df: float) -> float:
    """A Student-t variate with ``df`` degrees of freedom, scaled to unit variance
    (``df > 2``): heavier tails than a standard normal, the same spread."""
    z = rng.gauss(0.0, 1.0)
    chi2 = rng.gammavariate(df / 2.0, 2.0)
    return z / math.sqrt(chi2 / df) * math.sqrt((df - 2.0) / df)


def quantise(value: float, step: float, digits: int = 1) -> float:
    """``value`` on the sensor's grid of ``step`` (``step <= 0``: rounded to ``digits``)."""
    if step <= 0:
        return round(value, digits)
    return round(round(value / step) * step, 6)


class DeviceRealism:
    """One device's realism: its drawn parameters and its own random streams.

    ``maintenance`` holds this device's maintenance labels (:func:`plan_maintenance`).
    Per-device parameters are drawn at construction in a fixed order, so they depend only
    on the spec, the device and ``rng``.
    """

    def __init__(
        self,
        spec: RealismSpec,
        device: SimDevice,
        rng: random.Random,
        maintenance: Sequence[Label] = (),
    ) -> None:
        self.spec = spec
        self.device = device
        self.maintenance = sorted(maintenance, key=lambda lb: lb.start)
        dv = spec.devices
        self.params = random.Random(rng.getrandbits(64))  # per-device / per-port parameters
        self.noise_rng = random.Random(rng.getrandbits(64))
        self.loss_rng = random.Random(rng.getrandbits(64))
        p = self.params
        self.interval_factor = p.uniform(*dv.interval_factor)
        self.set_point_factor = p.uniform(*dv.set_point_factor)
        self.jockey_start = p.uniform(*dv.jockey_start)
        self.jockey_stop = p.uniform(*dv.jockey_stop)
        self.pressure_offset = p.uniform(-dv.pressure_offset, dv.pressure_offset)
        self.ambient_offset_c = p.uniform(-dv.temp_offset_c, dv.temp_offset_c)
        self._burst_end = -math.inf
        self._next_burst: float | None = None

    # -- per-device parameters ---------------------------------------------------------

    def interval(self, base: float) -> float:
        """This device's reporting interval for the kind's ``base`` interval."""
        return base * self.interval_factor

    def port_constants(self) -> tuple[float, float, float]:
        """A port's ``(k °C/A², tau s, temperature sensor offset °C)``."""
        dv, p = self.spec.devices, self.params
        return (
            p.uniform(*dv.port_k),
            p.uniform(*dv.port_tau_s),
            p.uniform(-dv.temp_offset_c, dv.temp_offset_c),
        )

    # -- noise -------------------------------------------------------------------------

    def noise(self, sigma: float) -> float:
        """Sensor noise of standard deviation ``sigma``: Student-t if configured."""
        df = self.spec.noise.student_t_df
        if df is None:
            return self.noise_rng.gauss(0.0, sigma)
        return sigma * student_t(self.noise_rng, df)

    def glitch(self, value: float) -> float:
        """``value``, or — at ``glitch_rate`` — a single-sample outlier: a third of them a 0
        read, the others off by a fraction drawn from ``glitch_size``, up or down."""
        nz = self.spec.noise
        if nz.glitch_rate <= 0 or self.noise_rng.random() >= nz.glitch_rate:
            return value
        if self.noise_rng.random() < 1 / 3:
            return 0.0
        sign = 1.0 if self.noise_rng.random() < 0.5 else -1.0
        return round(value * (1 + sign * self.noise_rng.uniform(*nz.glitch_size)), 2)

    # -- loss --------------------------------------------------------------------------

    def lost(self, t: float) -> bool:
        """Is this device's telemetry at ``t`` lost in transit? Call with non-decreasing
        ``t`` (once per report)."""
        loss = self.spec.loss
        if loss.bursts_per_day > 0:
            rate = loss.bursts_per_day / DAY_S
            if self._next_burst is None:
                self._next_burst = t + self.loss_rng.expovariate(rate)
            while t >= self._next_burst:
                self._burst_end = self._next_burst + self.loss_rng.uniform(*loss.burst_duration)
                self._next_burst = self._burst_end + self.loss_rng.expovariate(rate)
            if t < self._burst_end:
                return True
        return loss.drop_rate > 0 and self.loss_rng.random() < loss.drop_rate

    # -- seasonal demand ---------------------------------------------------------------

    def trend(self, t: float, start: float) -> float:
        """The slow change of daily demand since ``start`` (a factor, at least 0.2)."""
        return max(0.2, 1.0 + self.spec.seasonal.demand_trend_per_day * (t - start) / DAY_S)

    def water_demand(self, t: float, start: float, base: Callable[[float], float]) -> float:
        """``base`` demand with the weekend rhythm and the trend applied."""
        se = self.spec.seasonal
        if local_weekday(t) >= 5:
            d = se.weekend_water * base(t - se.weekend_shift_h * 3600.0)
        else:
            d = base(t)
        return d * self.trend(t, start)

    def charging_factor(self, t: float, start: float) -> float:
        """Scale of bike arrivals at ``t``: the weekend factor and the trend."""
        weekend = self.spec.seasonal.weekend_charging if local_weekday(t) >= 5 else 1.0
        return weekend * self.trend(t, start)

    # -- maintenance -------------------------------------------------------------------

    def maintenance_at(self, t: float) -> Label | None:
        """The maintenance window this device is in at ``t``, if any."""
        return next((m for m in self.maintenance if m.start <= t < m.end), None)


def plan_maintenance(
    spec: MaintenanceSpec,
    devices: Sequence[SimDevice],
    rng: random.Random,
    start: float,
    end: float,
    busy: Sequence[tuple[str, float, float]] = (),
) -> list[Label]:
    """Planned maintenance windows on the fire-water devices over ``[start, end)``.

    Per device, windows arrive as a Poisson process of ``per_device_per_week``; each is
    moved to the same local day's working ``hours`` (a start drawn in them), lasts a time
    drawn from ``duration`` and is one of ``activities``. A window that would overlap
    another on the device, a fault on it (``busy``: ``(device_id, start, end)``, with an
    hour's margin so that fault and maintenance stay apart) or the span's end is left out.
    Labels have ``fault = "maintenance"``, severity low, ``details``: the activity, the
    off-nominal fraction (``pressure_off_nominal``) and ``planned: true``.
    """
    if spec.per_device_per_week <= 0:
        return []
    rate = spec.per_device_per_week / (7 * DAY_S)
    taken: dict[str, list[tuple[float, float]]] = {}
    for dev, a, b in busy:
        taken.setdefault(dev, []).append((a - 3600.0, b + 3600.0))
    out: list[Label] = []
    for d in devices:
        if d.kind is not DeviceKind.WATER:
            continue
        t = start + rng.expovariate(rate)
        while t < end:
            day0 = t - local_hour(t) * 3600.0
            s = day0 + rng.uniform(*spec.hours) * 3600.0
            e = s + rng.uniform(*spec.duration)
            activity = rng.choice(spec.activities)
            frac = round(rng.uniform(*spec.off_nominal_frac), 3)
            spans = taken.setdefault(d.id, [])
            if start <= s and e <= end and all(e <= a or s >= b for a, b in spans):
                spans.append((s, e))
                details: dict[str, object] = {"activity": activity, "planned": True}
                if activity == "pressure_off_nominal":
                    details["off_nominal_frac"] = frac
                out.append(Label(d.id, d.unit_id, d.kind, MAINTENANCE, s, e, Severity.LOW, details))
            t += rng.expovariate(rate)
    return sorted(out, key=lambda lb: (lb.start, lb.device_id))
