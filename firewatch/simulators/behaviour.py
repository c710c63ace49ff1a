"""Per-device behaviour models of the telemetry devices — fire-water points and e-bike
charging sheds — and :func:`make_behaviour`, which picks one per device kind.

The shared contract (scheduling, silence, skew, malformed payloads, sensor faults) is in
``behaviour_base.py``; the alarm panel's behaviour in ``panel_behaviour.py``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from firewatch.core.domain import Channel, DeviceKind
from firewatch.simulators.behaviour_base import BaseBehaviour, Body, Msg, daily, demand
from firewatch.simulators.fault_shapes import ramp, ramped_s
from firewatch.simulators.faults import allowed_hours, charging_allowed, local_hour
from firewatch.simulators.model import (
    Behaviour,
    Fault,
    Intervals,
    SimDevice,
)
from firewatch.simulators.panel_behaviour import PanelBehaviour
from firewatch.simulators.realism import DeviceRealism, quantise


class WaterBehaviour(BaseBehaviour):
    """Fire-water point (``role`` pressure, tank or pump_room) on a jockey-pump system.

    The system pressure decays slowly (faster with demand); the jockey pump starts below
    95 % of ``static_kpa`` and stops at 101 %: a sawtooth of a few cycles an hour. The
    point reads system pressure minus a demand head loss (5-8 % at the 07:30 / 19:30
    peaks) plus ~0.6 % noise, in 0.1 kPa. Tanks drain with demand and refill between 70 %
    and 95 % of ``tank_capacity_m``. Room temperature 8-20 °C with a daily cycle.
    """

    def interval_of(self, intervals: Intervals) -> float:
        return intervals.water_s

    def __init__(
        self,
        device: SimDevice,
        rng: random.Random,
        faults: list[Fault],
        intervals: Intervals,
        start: float,
        realism: DeviceRealism | None = None,
    ) -> None:
        super().__init__(device, rng, faults, intervals, start, realism)
        m = device.metadata
        self.role = str(m.get("role", "pressure"))
        design = float(m.get("design_kpa", 1000.0))
        self.static = min(float(m.get("static_kpa", 350.0)), 0.9 * design)
        self.capacity = float(m.get("tank_capacity_m", 5.0))
        if realism is not None:  # its real set point, not the registered one
            self.static *= realism.set_point_factor
        n, s = self.nat, self.static
        self.amp = n.uniform(0.05, 0.08)
        self.sigma = 0.006 * s
        on, off = (realism.jockey_start, realism.jockey_stop) if realism else (0.95, 1.01)
        self.start_kpa, self.stop_kpa = on * s, off * s
        self.decay = 0.06 * s / n.uniform(900.0, 1500.0)  # kPa/s without demand
        self.refill = 0.06 * s / n.uniform(100.0, 200.0)  # kPa/s while the jockey runs
        self.system = n.uniform(self.start_kpa, self.stop_kpa)
        self.jockey = False
        self.level = self.capacity * n.uniform(0.75, 0.93)
        self.filling = False
        self.use_m_per_h = n.uniform(0.05, 0.1)
        self.fill_m_per_h = n.uniform(0.8, 1.5)
        self.room_base, self.room_amp = n.uniform(10.0, 16.0), n.uniform(2.0, 3.5)

    def tick(self, t: float, dt: float) -> list[Msg]:
        real = self.real
        d = real.water_demand(t, self.start, demand) if real else demand(t)
        leak, burst = self.active(t, "pipe_leak"), self.active(t, "pipe_burst")
        pump_fail, valve = self.active(t, "pump_failure"), self.active(t, "closed_valve")
        factor = 1 + (float(leak.params["jockey_factor"]) - 1) * ramp(leak, t) if leak else 1.0
        decay = self.decay * (1 + 0.8 * d) * factor * dt
        ran = False
        if pump_fail:
            floor = self.static * float(pump_fail.params["floor_frac"])
            self.jockey = False
            if self.system > floor:
                self.system = max(floor, self.system - decay)
        else:
            self.system -= decay
            if self.jockey or self.system < self.start_kpa:
                ran = True
                self.system = min(self.system + self.refill * dt, self.stop_kpa)
                self.jockey = self.system < self.stop_kpa
        noise = self.nat.gauss(0.0, self.sigma)
        noise = real.noise(self.sigma) if real else noise
        p = self.system - self.static * self.amp * d + noise
        if leak:
            p -= min(
                float(leak.params["rate_kpa_per_h"]) * ramped_s(leak, t) / 3600, 0.6 * self.static
            )
        if burst:
            p *= 1 - float(burst.params["drop_frac"])
        if valve:
            p = float(valve.params["residual_kpa"]) + noise * 0.02
        work = real.maintenance_at(t) if real else None
        if work is not None:
            p = self._maintained(noise, str(work.details["activity"]), work.details)
        if real:
            step = real.spec.noise.pressure_resolution_kpa
            p = quantise(p + real.pressure_offset * self.static, step)
        pressure = self.reading(t, "pressure_kpa", round(min(max(p, 0.0), 10_000.0), 1))
        if real:
            pressure = real.glitch(pressure)
        body: Body = {"pressure_kpa": min(max(pressure, -101.3), 10_000.0)}
        if self.role == "tank":
            body["level_m"] = self._level(t, dt, d)
        room = round(self.room_base + self.room_amp * daily(t, 15.0) + self.nat.gauss(0, 0.08), 1)
        room = min(max(self.reading(t, "room_temp_c", room), -60.0), 100.0)
        testing = work is not None and work.details["activity"] == "pump_test"
        body |= {
            "pump_running": burst is not None or testing,
            "jockey_running": ran or burst is not None or testing,
            "room_temp_c": room,
        }
        return [(Channel.TELEMETRY, body)]

    def _maintained(self, noise: float, activity: str, details: Any) -> float:
        """The pressure at the point during planned work: a pump test runs the pumps
        (pressure 12 % over the set point), a valve closed for work leaves a few kPa, a
        system held off nominal sits at its fraction of the set point."""
        if activity == "pump_test":
            return self.static * 1.12 + noise
        if activity == "valve_closed":
            return 5.0 + noise * 0.02
        return self.static * float(details.get("off_nominal_frac", 0.85)) + noise

    def _level(self, t: float, dt: float, d: float) -> float:
        drain = self.active(t, "tank_draining")
        extra = float(drain.params["rate_m_per_h"]) * ramp(drain, t) if drain else 0
        use = self.use_m_per_h * (0.5 + d) + extra
        self.level -= use * dt / 3600
        if drain:
            self.filling = False
        elif self.filling or self.level < 0.7 * self.capacity:
            self.level += self.fill_m_per_h * dt / 3600
            self.filling = self.level < 0.95 * self.capacity
        self.level = min(max(self.level, 0.0), self.capacity)
        level = round(max(0.0, self.level + self.nat.gauss(0.0, 0.003)), 2)
        return min(max(self.reading(t, "level_m", level, digits=2), 0.0), 100.0)


@dataclass(slots=True)
class _Port:
    """One charging port and the session on it (if ``plugged``)."""

    number: int
    k: float  # °C rise per A² at steady state
    tau: float  # thermal time constant, s
    temp: float
    offset: float = 0.0  # the temperature sensor's bias (realism), °C
    plugged: bool = False
    i_cc: float = 0.0
    dur: float = 0.0
    cc_s: float = 0.0
    tail_s: float = 0.0
    elapsed: float = 0.0

    def current(self) -> float:
        """Constant current, then an exponential taper to ~0 at ``dur``, then a trickle."""
        if self.elapsed < self.cc_s:
            return self.i_cc
        if self.elapsed < self.dur:
            return self.i_cc * math.exp(-4 * (self.elapsed - self.cc_s) / (self.dur - self.cc_s))
        return 0.02


class EbikeShedBehaviour(BaseBehaviour):
    """E-bike charging shed with ``ports`` ports rated ``port_rating_a``.

    Bikes arrive mostly in the evening (18:00-22:30 local), some in the morning, at noon
    and overnight. A session: constant 2-2.8 A (below the rating), tapering to ~0 A near
    full after 2-6 h, a short ~0 A trickle, then the bike leaves. The shed's controller
    only powers ports inside ``allowed_hours`` (default 06-23 local): bikes plugged outside
    wait. Port temperature follows ambient + k·I² with a first-order lag; smoke is false.
    """

    def interval_of(self, intervals: Intervals) -> float:
        return intervals.shed_s

    def __init__(
        self,
        device: SimDevice,
        rng: random.Random,
        faults: list[Fault],
        intervals: Intervals,
        start: float,
        realism: DeviceRealism | None = None,
    ) -> None:
        super().__init__(device, rng, faults, intervals, start, realism)
        m = device.metadata
        self.rating = float(m.get("port_rating_a", 3.0))
        self.hours = allowed_hours(device)
        n = self.nat
        self.amb_base, self.amb_amp = n.uniform(14.0, 24.0), n.uniform(2.0, 5.0)
        amb = self.amb_base + self.amb_amp * daily(start, 15.0)
        self.ports = []
        for i in range(1, int(m.get("ports", 8)) + 1):
            port = _Port(i, n.uniform(0.8, 1.2), n.uniform(600.0, 1200.0), amb)
            if realism is not None:  # ports that are simply different
                port.k, port.tau, port.offset = realism.port_constants()
            self.ports.append(port)
        self.ended: set[int] = set()  # thermal-runaway faults whose port was unplugged

    def begin(self, port: _Port, rng: random.Random) -> None:
        lo, hi = min(2.0, 0.7 * self.rating), min(2.8, 0.93 * self.rating)
        port.plugged, port.elapsed = True, 0.0
        port.i_cc, port.dur = rng.uniform(lo, hi), rng.uniform(2.0, 6.0) * 3600
        port.cc_s, port.tail_s = port.dur * rng.uniform(0.6, 0.8), rng.uniform(300.0, 1500.0)

    @staticmethod
    def arrivals_per_h(h: float) -> float:
        """Arrival rate at an idle port (per hour) by local hour."""
        if 18 <= h < 22.5:
            return 0.45
        if 6 <= h < 9:
            return 0.12
        if 11.5 <= h < 14:
            return 0.1
        return 0.05 if 9 <= h < 18 else 0.02

    def tick(self, t: float, dt: float) -> list[Msg]:
        amb = self.amb_base + self.amb_amp * daily(t, 15.0) + self.nat.gauss(0.0, 0.1)
        smoke = self.active(t, "shed_smoke")
        if smoke:
            rise = float(smoke.params["rise_c_per_min"]) * (t - smoke.start) / 60
            amb += min(rise, float(smoke.params["max_rise_c"]))
        allowed = charging_allowed(self.hours, t)
        rate = self.arrivals_per_h(local_hour(t))
        if self.real:
            rate *= self.real.charging_factor(t, self.start)
        p_arrive = 1 - math.exp(-rate * dt / 3600)
        for i, f in enumerate(self.faults):  # a runaway ends: the bike is removed
            if f.type == "thermal_runaway_precursor" and t >= f.end and i not in self.ended:
                self.ended.add(i)
                self.ports[int(f.params["port"]) - 1].plugged = False
        ports: list[Body] = []
        for port in self.ports:
            u, g1, g2 = self.nat.random(), self.nat.gauss(0, 1), self.nat.gauss(0, 1)
            forced = [
                f
                for f in self.faults
                if f.params.get("port") == port.number
                and f.active(t)
                and f.type
                in ("thermal_runaway_precursor", "over_current", "charging_outside_hours")
            ]
            excess = self._excess(port.number, t)
            if forced and not port.plugged:
                self.begin(port, self.frng)
            elif not port.plugged and u < p_arrive and excess < 1.0:  # not onto a burnt port
                self.begin(port, self.nat)
            current = self._current(port, t, dt, allowed, forced, g1)
            target = amb + port.k * current**2
            port.temp += (target - port.temp) * (1 - math.exp(-dt / port.tau))
            temp = self._port_reading(t, port, excess, g2)
            cur = round(min(max(self.reading(t, "current_a", current, port.number, 2), 0), 100), 2)
            ports.append(
                {
                    "port": port.number,
                    "temp_c": min(max(temp, -60.0), 400.0),
                    "current_a": cur,
                    "charging": current > 0,
                }
            )
        real = self.real
        if real:
            amb_read = quantise(amb + real.ambient_offset_c, real.spec.noise.temp_resolution_c)
        else:
            amb_read = round(amb, 1)
        ambient = min(max(self.reading(t, "ambient_c", amb_read), -60.0), 150.0)
        return [
            (Channel.TELEMETRY, {"ambient_c": ambient, "smoke": smoke is not None, "ports": ports})
        ]

    def _port_reading(self, t: float, port: _Port, excess: float, g: float) -> float:
        """The port's temperature as its sensor reports it (noise, bias, resolution,
        sensor faults and glitches)."""
        real = self.real
        if real is None:
            temp = round(min(port.temp + excess + 0.05 * g, 390.0), 1)
            return self.reading(t, "temp_c", temp, port.number)
        value = port.temp + port.offset + excess + real.noise(0.05)
        temp = quantise(min(value, 390.0), real.spec.noise.temp_resolution_c)
        return real.glitch(self.reading(t, "temp_c", temp, port.number))

    def _current(
        self, port: _Port, t: float, dt: float, allowed: bool, forced: list[Fault], g: float
    ) -> float:
        """This tick's current (0.0 when not charging); advances the session."""
        if not port.plugged or not (allowed or forced):
            return 0.0
        port.elapsed += dt
        if port.elapsed >= port.dur + port.tail_s and not forced:
            port.plugged = False
            return 0.0
        current = port.i_cc if forced else port.current()  # a forced session holds CC
        over = next((f for f in forced if f.type == "over_current"), None)
        if over:
            current = self.rating * float(over.params["factor"])
        return round(max(0.01, current + 0.03 * g * min(current, 1.0)), 2)

    def _excess(self, number: int, t: float) -> float:
        """Thermal-runaway precursor heat above the port's normal temperature: a slow
        linear rise, the last ``fast_s`` at ``fast_c_per_s``; decays after the window."""
        total = 0.0
        for f in self.faults:
            if f.type != "thermal_runaway_precursor" or f.params.get("port") != number:
                continue
            if t < f.start:
                continue
            slow_end = max(f.start, f.end - float(f.params["fast_s"]))
            x = min(t, f.end)
            ex = float(f.params["slow_c_per_min"]) * ramped_s(f, min(x, slow_end)) / 60
            ex += float(f.params["fast_c_per_s"]) * max(0.0, x - slow_end)
            total += ex if t < f.end else ex * math.exp(-(t - f.end) / 600)
        return total


BEHAVIOURS: dict[DeviceKind, type[BaseBehaviour]] = {
    DeviceKind.WATER: WaterBehaviour,
    DeviceKind.EBIKE_SHED: EbikeShedBehaviour,
    DeviceKind.PANEL: PanelBehaviour,
}


def make_behaviour(
    device: SimDevice,
    rng: random.Random,
    faults: list[Fault],
    intervals: Intervals,
    start: float,
    *,
    realism: DeviceRealism | None = None,
) -> Behaviour:
    """The behaviour for ``device`` (by kind) with its resolved ``faults``; all randomness
    from ``rng`` (and ``realism``'s own streams). Same arguments and rng state, same
    emissions; ``realism`` ``None`` is the simulator as it always was."""
    return BEHAVIOURS[device.kind](device, rng, faults, intervals, start, realism)
