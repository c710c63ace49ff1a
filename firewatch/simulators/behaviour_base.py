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
from typing import Any

from firewatch.core.domain import Channel
from firewatch.simulators.fault_shapes import malformed_payload, ramped_s
from firewatch.simulators.faults import local_hour
from firewatch.simulators.model import (
    Action,
    Behaviour,
    Emission,
    Fault,
    Intervals,
    SimDevice,
    iso,
)
from firewatch.simulators.realism import DeviceRealism

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


class BaseBehaviour(Behaviour):
    """Scheduling, housekeeping status, silence, clock skew, malformed payloads and the
    stuck/drift sensor faults shared by every kind."""

    def __init__(
        self,
        device: SimDevice,
        rng: random.Random,
        faults: list[Fault],
        intervals: Intervals,
        start: float,
        realism: DeviceRealism | None = None,
    ) -> None:
        super().__init__(device, rng, faults, intervals, start)
        self.real = realism  # None: no realism, and no draw of its own
        base = self.interval_of(intervals)
        self.interval = max(1.0, realism.interval(base) if realism else base)
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
        tele = [em for em in out if em.channel is Channel.TELEMETRY]
        if self.real is not None and tele and self.real.lost(t):
            for em in tele:
                em.lost = True
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
                hours = ramped_s(f, t) / 3600
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
