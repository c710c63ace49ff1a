"""The fire alarm control panel's behaviour (GB/T 26875.3 status words and events)."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from firewatch.core.domain import Channel
from firewatch.simulators.behaviour_base import WEEK_S, BaseBehaviour, Body, Msg
from firewatch.simulators.faults import PanelLayout
from firewatch.simulators.model import (
    Fault,
    Intervals,
    SimDevice,
)
from firewatch.simulators.realism import DeviceRealism

FIRE, FAULT, ISOLATED, POWER = 1 << 1, 1 << 2, 1 << 3, 1 << 8
MAINS_FAULT, BUS_FAULT = (1 << 8) | FAULT, (1 << 10) | FAULT


class PanelBehaviour(BaseBehaviour):
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
        realism: DeviceRealism | None = None,
    ) -> None:
        super().__init__(device, rng, faults, intervals, start, realism)
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
