"""Per-device behaviour models: plausible readings over simulated time, with injected faults.

Contract (see :class:`~firewatch.simulators.model.Behaviour`): a behaviour is a clock-driven
state machine. :meth:`~_Base.next_time` is the earlier of its next report tick (``start``
plus a stagger in ``[0, interval)``, then every interval) and its next scheduled event
(panel alarms and restorations, connection drops and reconnects). :meth:`~_Base.step`
returns that moment's emissions, all at the same time ``t``. Bodies exclude ``seq``/``ts``
and, completed with them, validate against :data:`firewatch.core.contract.MODELS` —
except the ``raw`` payloads of the ``malformed_payload`` fault, which never validate.

Determinism: three random streams are split off the given ``rng`` at construction: one for
natural behaviour, one for fault effects, one for housekeeping (stagger, status). Fault
effects draw only from their own stream, and physical state keeps evolving through silent
windows, so a device's stream before a fault starts is identical to its stream without the
fault. Fault parameters (port, detectors, offsets …) are fixed beforehand by
:func:`firewatch.simulators.faults.resolve_faults`; behaviours only read them.

Silence: during ``dropout``, ``offline_without_will`` and ``offline_with_will`` nothing is
emitted. ``offline_with_will`` also emits an :attr:`Action.DROP` at its start and an
:attr:`Action.RECONNECT` (channel status, no body) at its end; the engine turns these into
the will and the online status. A housekeeping ``status`` (online, firmware, battery, RSSI)
goes out at the first tick and every ``intervals.status_s``.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from firewatch.core.domain import Channel, DeviceKind
from firewatch.simulators.faults import (
    PanelLayout,
    allowed_hours,
    charging_allowed,
    local_hour,
    malformed_payload,
)
from firewatch.simulators.model import (
    Action,
    Behaviour,
    Emission,
    Fault,
    Intervals,
    SimDevice,
    iso,
)

Body = dict[str, Any]
Msg = tuple[Channel, Body]
SILENT = frozenset({"dropout", "offline_without_will", "offline_with_will"})
WEEK_S = 7 * 86_400.0


def daily(t: float, peak_hour: float) -> float:
    """A daily cosine in [-1, 1], 1 at ``peak_hour`` local time."""
    return math.cos(2 * math.pi * (local_hour(t) - peak_hour) / 24)


def demand(t: float) -> float:
    """Water demand in [0, ~1]: morning (07:30) and evening (19:30) peaks, a midday bump."""

    def bump(centre: float, width: float) -> float:
        x = (local_hour(t) - centre + 12) % 24 - 12
        return math.exp(-0.5 * (x / width) ** 2)

    return 0.8 * bump(7.5, 1.2) + 1.0 * bump(19.5, 1.5) + 0.35 * bump(12.5, 1.0)


class _Base(Behaviour):
    """Scheduling, housekeeping status, silence, clock skew, malformed payloads and the
    stuck/drift sensor faults shared by every kind."""

    def __init__(
        self,
        device: SimDevice,
        rng: random.Random,
        faults: list[Fault],
        intervals: Intervals,
        start: float,
    ) -> None:
        super().__init__(device, rng, faults, intervals, start)
        self.interval = max(1.0, self.interval_of(intervals))
        self.nat = random.Random(rng.getrandbits(64))  # natural behaviour
        self.frng = random.Random(rng.getrandbits(64))  # fault effects only
        self.house = random.Random(rng.getrandbits(64))  # stagger and status
        h = self.house
        self.firmware = f"{h.randint(1, 3)}.{h.randint(0, 9)}.{h.randint(0, 20)}"
        self.battery0 = h.uniform(70.0, 100.0)
        self.rssi0 = h.randint(-95, -50)
        self.first = start + h.uniform(0.0, self.interval)
        self.ticks = 0
        self.last_tick: float | None = None
        self.status_due = self.first
        self.agenda: list[tuple[float, int, str, Any]] = []
        self.order = itertools.count()
        self.malformed_seen: set[int] = set()  # malformed faults that emitted their first
        self.frozen: dict[int, float] = {}  # stuck-sensor fault index -> frozen value
        self.last_reading: dict[tuple[str, int | None], float] = {}
        for f in faults:
            if f.type == "offline_with_will":
                self.schedule(f.start, "drop", f)
                self.schedule(f.end, "reconnect", f)

    @abstractmethod
    def interval_of(self, intervals: Intervals) -> float:
        """This kind's report interval."""

    @abstractmethod
    def tick(self, t: float, dt: float) -> list[Msg]:
        """Advance the physical state by ``dt`` to ``t``; the messages of this report."""

    def on_event(self, t: float, tag: str, data: Any) -> list[Msg]:
        """Handle a scheduled event (subclasses with events override this)."""
        raise NotImplementedError(tag)

    # -- scheduling --------------------------------------------------------------------

    def schedule(self, t: float, tag: str, data: Any = None) -> None:
        heapq.heappush(self.agenda, (t, next(self.order), tag, data))

    def next_tick(self) -> float:
        return self.first + self.ticks * self.interval

    def next_time(self) -> float:
        tick = self.next_tick()
        return min(tick, self.agenda[0][0]) if self.agenda else tick

    def step(self) -> list[Emission]:
        tick = self.next_tick()
        if self.agenda and self.agenda[0][0] <= tick:
            t, _, tag, data = heapq.heappop(self.agenda)
            if tag in ("drop", "reconnect"):
                action = Action.DROP if tag == "drop" else Action.RECONNECT
                return [
                    Emission(
                        t, self.device.id, Channel.STATUS, ts_offset_s=self.skew(t), action=action
                    )
                ]
            return self.publish(t, self.on_event(t, tag, data))
        self.ticks += 1
        dt = tick - self.last_tick if self.last_tick is not None else self.interval
        self.last_tick = tick
        msgs: list[Msg] = []
        if tick >= self.status_due:
            msgs.append((Channel.STATUS, self.status_body(tick)))
            every = max(self.intervals.status_s, self.interval)
            while self.status_due <= tick:
                self.status_due += every
        return self.publish(tick, msgs + self.tick(tick, dt))

    # -- fault helpers -----------------------------------------------------------------

    def active(self, t: float, ftype: str) -> Fault | None:
        return next((f for f in self.faults if f.type == ftype and f.active(t)), None)

    def skew(self, t: float) -> float:
        f = self.active(t, "clock_skew")
        return float(f.params.get("offset_s", 600.0)) if f else 0.0

    def publish(self, t: float, msgs: list[Msg]) -> list[Emission]:
        """Emissions for ``msgs`` at ``t``, after silence, clock-skew and malformed faults."""
        if any(f.type in SILENT and f.active(t) for f in self.faults):
            return []
        skew = self.skew(t)
        out = [Emission(t, self.device.id, ch, body=body, ts_offset_s=skew) for ch, body in msgs]
        for i, f in enumerate(self.faults):
            if f.type != "malformed_payload" or not f.active(t):
                continue
            for em in out:
                if em.channel is Channel.STATUS or em.body is None:
                    continue
                if i in self.malformed_seen and self.frng.random() >= float(f.params["fraction"]):
                    continue
                self.malformed_seen.add(i)
                variant = self.frng.choice(list(f.params["variants"]))
                em.raw = malformed_payload(em.body, iso(t + skew), str(variant))
                em.body = None
        return out

    def reading(
        self, t: float, field: str, value: float, port: int | None = None, digits: int = 1
    ) -> float:
        """``value`` (already rounded) as the sensor reports it: frozen by ``stuck_sensor``
        at its last report, or scaled by ``sensor_drift`` (% of the reading per hour)."""
        for i, f in enumerate(self.faults):
            if f.params.get("field") != field or f.params.get("port") != port or not f.active(t):
                continue
            if f.type == "stuck_sensor":
                value = self.frozen.setdefault(i, self.last_reading.get((field, port), value))
            elif f.type == "sensor_drift":
                hours = (t - f.start) / 3600
                value = round(value * (1 + float(f.params["pct_per_h"]) / 100 * hours), digits)
        self.last_reading[(field, port)] = value
        return value

    def status_body(self, t: float) -> Body:
        days = max(0.0, t - self.start) / 86_400
        rssi = min(0, max(-150, self.rssi0 + self.house.randint(-3, 3)))
        return {
            "state": "online",
            "firmware": self.firmware,
            "battery_pct": round(max(5.0, self.battery0 - 0.05 * days), 1),
            "rssi_dbm": float(rssi),
        }


class WaterBehaviour(_Base):
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
    ) -> None:
        super().__init__(device, rng, faults, intervals, start)
        m = device.metadata
        self.role = str(m.get("role", "pressure"))
        design = float(m.get("design_kpa", 1000.0))
        self.static = min(float(m.get("static_kpa", 350.0)), 0.9 * design)
        self.capacity = float(m.get("tank_capacity_m", 5.0))
        n, s = self.nat, self.static
        self.amp = n.uniform(0.05, 0.08)
        self.sigma = 0.006 * s
        self.start_kpa, self.stop_kpa = 0.95 * s, 1.01 * s
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
        d = demand(t)
        leak, burst = self.active(t, "pipe_leak"), self.active(t, "pipe_burst")
        pump_fail, valve = self.active(t, "pump_failure"), self.active(t, "closed_valve")
        factor = float(leak.params["jockey_factor"]) if leak else 1.0
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
        p = self.system - self.static * self.amp * d + noise
        if leak:
            p -= min(
                float(leak.params["rate_kpa_per_h"]) * (t - leak.start) / 3600, 0.6 * self.static
            )
        if burst:
            p *= 1 - float(burst.params["drop_frac"])
        if valve:
            p = float(valve.params["residual_kpa"]) + noise * 0.02
        pressure = self.reading(t, "pressure_kpa", round(min(max(p, 0.0), 10_000.0), 1))
        body: Body = {"pressure_kpa": min(max(pressure, -101.3), 10_000.0)}
        if self.role == "tank":
            body["level_m"] = self._level(t, dt, d)
        room = round(self.room_base + self.room_amp * daily(t, 15.0) + self.nat.gauss(0, 0.08), 1)
        room = min(max(self.reading(t, "room_temp_c", room), -60.0), 100.0)
        body |= {
            "pump_running": burst is not None,
            "jockey_running": ran or burst is not None,
            "room_temp_c": room,
        }
        return [(Channel.TELEMETRY, body)]

    def _level(self, t: float, dt: float, d: float) -> float:
        drain = self.active(t, "tank_draining")
        use = self.use_m_per_h * (0.5 + d) + (float(drain.params["rate_m_per_h"]) if drain else 0)
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


class EbikeShedBehaviour(_Base):
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
    ) -> None:
        super().__init__(device, rng, faults, intervals, start)
        m = device.metadata
        self.rating = float(m.get("port_rating_a", 3.0))
        self.hours = allowed_hours(device)
        n = self.nat
        self.amb_base, self.amb_amp = n.uniform(14.0, 24.0), n.uniform(2.0, 5.0)
        amb = self.amb_base + self.amb_amp * daily(start, 15.0)
        self.ports = [
            _Port(i, n.uniform(0.8, 1.2), n.uniform(600.0, 1200.0), amb)
            for i in range(1, int(m.get("ports", 8)) + 1)
        ]
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
        p_arrive = 1 - math.exp(-self.arrivals_per_h(local_hour(t)) * dt / 3600)
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
            temp = round(min(port.temp + excess + 0.05 * g2, 390.0), 1)
            temp = self.reading(t, "temp_c", temp, port.number)
            cur = round(min(max(self.reading(t, "current_a", current, port.number, 2), 0), 100), 2)
            ports.append(
                {
                    "port": port.number,
                    "temp_c": min(max(temp, -60.0), 400.0),
                    "current_a": cur,
                    "charging": current > 0,
                }
            )
        ambient = min(max(self.reading(t, "ambient_c", round(amb, 1)), -60.0), 150.0)
        return [
            (Channel.TELEMETRY, {"ambient_c": ambient, "smoke": smoke is not None, "ports": ports})
        ]

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
            ex = float(f.params["slow_c_per_min"]) * (min(x, slow_end) - f.start) / 60
            ex += float(f.params["fast_c_per_s"]) * max(0.0, x - slow_end)
            total += ex if t < f.end else ex * math.exp(-(t - f.end) / 600)
        return total


FIRE, FAULT, ISOLATED, POWER = 1 << 1, 1 << 2, 1 << 3, 1 << 8
MAINS_FAULT, BUS_FAULT = (1 << 8) | FAULT, (1 << 10) | FAULT


class PanelBehaviour(_Base):
    """Fire alarm control panel (GB/T 26875.3 semantics): a ``system_status`` every
    ``intervals.panel_status_s`` and whenever the system word changes; component events.

    Natural, rare events (Poisson, ~3-4 per panel-week, none during a fault window on the
    panel): a false alarm from one dusty detector (fire, reset a few minutes later),
    detector faults and isolations, bus and mains power faults, each later restored.
    Detector addresses are loop*1000 + index (see :class:`PanelLayout`).
    """

    NATURAL_PER_WEEK: ClassVar[dict[str, float]] = {
        "false_alarm": 1.5,
        "detector_fault": 0.7,
        "isolation": 0.5,
        "bus_fault": 0.3,
        "mains_fault": 0.5,
    }

    def interval_of(self, intervals: Intervals) -> float:
        return intervals.panel_status_s

    def __init__(
        self,
        device: SimDevice,
        rng: random.Random,
        faults: list[Fault],
        intervals: Intervals,
        start: float,
    ) -> None:
        super().__init__(device, rng, faults, intervals, start)
        self.layout = PanelLayout.of(device)
        self.detectors = self.layout.detectors()
        self.dusty = self.nat.choice(self.detectors)
        self.operator = self.house.randint(1, 20)
        self.components: dict[int, int] = {}  # address -> status word, abnormal ones only
        self.conditions: dict[str, int] = {}  # system-level condition -> its status bits
        self.sent_word = 1
        for name, rate in self.NATURAL_PER_WEEK.items():
            self.schedule(start + self.nat.expovariate(rate / WEEK_S), name)
        for f in faults:
            if f.type == "real_fire_cascade":
                dets = [int(a) for a in f.params["detectors"]]
                for addr, off in zip(dets, f.params["offsets_s"], strict=True):
                    self.schedule(f.start + float(off), "fire", addr)
                self.schedule(f.end, "reset", dets)
            elif f.type == "false_alarm_storm":
                det = int(f.params["detector"])
                for on, off in f.params["alarms_s"]:
                    self.schedule(f.start + float(on), "fire", det)
                    self.schedule(f.start + float(off), "reset", [det])

    def word(self) -> int:
        bits = 1
        for w in self.components.values():
            bits |= (w & (FIRE | FAULT | ISOLATED)) | (FAULT if w & POWER else 0)
        for b in self.conditions.values():
            bits |= b
        return bits

    def event(self, etype: str, status: int, addr: int | None = None) -> Body:
        body: Body = {"type": etype, "system_type": 1, "system_addr": 1, "status": status}
        if addr is not None:
            loop, zone = self.layout.zone_of(addr)
            desc = f"loop {loop} zone {zone + 1} smoke detector {addr % 1000}"
            body |= {
                "component_type": 41 if addr % 4 == 0 else 40,
                "component_addr": addr,
                "description": desc,
            }
        elif etype == "operation":
            body["operator"] = self.operator
        return body

    def system_if_changed(self) -> list[Msg]:
        word = self.word()
        if word == self.sent_word:
            return []
        self.sent_word = word
        return [(Channel.EVENT, self.event("system_status", word))]

    def tick(self, t: float, dt: float) -> list[Msg]:
        self.sent_word = self.word()
        return [(Channel.EVENT, self.event("system_status", self.sent_word))]

    def set_component(self, addr: int, word: int) -> list[Msg]:
        if word == 1:
            self.components.pop(addr, None)
        else:
            self.components[addr] = word
        return [
            (Channel.EVENT, self.event("component_status", word, addr)),
            *self.system_if_changed(),
        ]

    def on_event(self, t: float, tag: str, data: Any) -> list[Msg]:
        n = self.nat
        if tag in self.NATURAL_PER_WEEK:  # natural: draws are the same whether it shows or not
            self.schedule(t + n.expovariate(self.NATURAL_PER_WEEK[tag] / WEEK_S), tag)
            addr = self.dusty if tag == "false_alarm" else n.choice(self.detectors)
            hold = {
                "false_alarm": n.uniform(120, 480),
                "detector_fault": n.uniform(1800, 21_600),
                "isolation": n.uniform(3600, 28_800),
                "bus_fault": n.uniform(600, 3600),
                "mains_fault": n.uniform(300, 7200),
            }[tag]
            if any(f.start <= t < f.end + 3600 for f in self.faults):
                return []  # none starts in a labelled window or the hour after it
            if tag in ("bus_fault", "mains_fault"):
                if tag in self.conditions:
                    return []
                self.conditions[tag] = BUS_FAULT if tag == "bus_fault" else MAINS_FAULT
                self.schedule(t + hold, "clear", tag)
                return self.system_if_changed() or [
                    (Channel.EVENT, self.event("system_status", self.word()))
                ]
            if addr in self.components:
                return []
            word = {
                "false_alarm": 1 | FIRE,
                "detector_fault": 1 | FAULT,
                "isolation": 1 | ISOLATED,
            }[tag]
            self.schedule(t + hold, "reset" if tag == "false_alarm" else "restore", [addr])
            return self.set_component(addr, word)
        if tag == "fire":
            return self.set_component(int(data), 1 | FIRE)
        if tag == "clear":
            self.conditions.pop(str(data), None)
            return self.system_if_changed()
        out: list[Msg] = []
        if tag == "reset":  # operator reset: clears latched fire alarms
            out.append((Channel.EVENT, self.event("operation", 1)))
            for addr in data:
                if self.components.get(int(addr), 0) & FIRE:
                    out += self.set_component(int(addr), 1)
        elif tag == "restore":
            for addr in data:
                if int(addr) in self.components:
                    out += self.set_component(int(addr), 1)
        return out


BEHAVIOURS: dict[DeviceKind, type[_Base]] = {
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
) -> Behaviour:
    """The behaviour for ``device`` (by kind) with its resolved ``faults``; all randomness
    from ``rng``. Same arguments and rng state, same emissions."""
    return BEHAVIOURS[device.kind](device, rng, faults, intervals, start)
