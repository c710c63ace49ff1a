"""Fire alarm control panel detectors (GB/T 26875.3 status words; GB 50440).

Panels report their own conditions; these detectors turn the decoded status flags into
episodes and count false alarms per unit:

* per component (a detector, a manual call point …): fire, fault, isolation, supervisory
  and power fault, open while the component's latest status carries the flag (an
  operator *reset* clears latched fire alarms);
* per panel, system-level conditions no component explains: mains / backup power fault
  and bus fault, and — for panels that never report components — the system word's
  fire / fault / isolation / supervisory bits;
* per unit: more than ``false_alarms_per_day`` probable false alarms in 24 hours (a fire
  alarm from one component cleared within ``false_alarm_max_s``) — GB 50440 asks for a
  handling plan then.

Events are rare next to telemetry, so this module works per event in Python.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from firewatch.analytics.episodes import anomaly_from_json, anomaly_to_json
from firewatch.analytics.profiles import DeviceProfile
from firewatch.core.anomalies import Anomaly, Origin
from firewatch.core.domain import COMPONENT_TYPES, Severity
from firewatch.core.rows import EventRow

#: flag -> (detector, kind, severity) for component-level and system-level episodes
FLAG_EPISODES: dict[str, tuple[str, str, Severity]] = {
    "fire": ("panel.fire", "fire_alarm", Severity.CRITICAL),
    "fault": ("panel.fault", "panel_fault", Severity.MEDIUM),
    "isolated": ("panel.isolated", "component_isolated", Severity.MEDIUM),
    "supervisory": ("panel.supervisory", "supervisory_signal", Severity.MEDIUM),
    "power_fault": ("panel.power_fault", "power_fault", Severity.HIGH),
    "mains_power_fault": ("panel.mains_power_fault", "power_fault", Severity.HIGH),
    "backup_power_fault": ("panel.backup_power_fault", "power_fault", Severity.HIGH),
    "bus_fault": ("panel.bus_fault", "bus_fault", Severity.HIGH),
}
SYSTEM_ONLY = ("mains_power_fault", "backup_power_fault", "bus_fault")
COMPONENT_LIKE = ("fire", "fault", "isolated", "supervisory")
DAY_S = 86_400.0


class PanelDetectors:
    """Panel events to episodes (see the module docstring)."""

    def __init__(
        self,
        profiles: Mapping[str, DeviceProfile],
        unit_of: Callable[[str], str],
        false_alarm_max_s: float = 900.0,
    ) -> None:
        self.profiles = profiles
        self.unit_of = unit_of
        self.false_alarm_max_s = false_alarm_max_s
        self.open: dict[tuple[str, str, str], Anomaly] = {}  # (device, flag, component)
        self.has_components: set[str] = set()
        self.last_ts: dict[str, float] = {}
        self.false_alarms: dict[str, deque[float]] = {}  # unit -> close times (24 h)
        self.unit_open: dict[str, Anomaly] = {}

    def set_profiles(self, profiles: Mapping[str, DeviceProfile]) -> None:
        self.profiles = profiles

    def process(self, events: list[EventRow]) -> list[Anomaly]:
        """Feed events in any order (sorted here by device time); return changes."""
        out: list[Anomaly] = []
        for ev in sorted(events, key=lambda e: (e.ts, e.seq)):
            t = ev.ts.timestamp()
            rx = ev.received_at.timestamp()
            dev = ev.device_id
            if t < self.last_ts.get(dev, float("-inf")) - 1.0:
                continue  # the panel's clock went back: keep the state moving forward
            self.last_ts[dev] = max(t, self.last_ts.get(dev, t))
            flags = set(ev.flags)
            if ev.event_type == "component_status" and ev.component_addr is not None:
                self.has_components.add(dev)
                comp = _component(ev)
                for flag in ("fire", "fault", "isolated", "supervisory", "power_fault"):
                    out += self._set(dev, flag, comp, flag in flags, t, rx, ev)
            elif ev.event_type == "system_status":
                for flag in SYSTEM_ONLY:
                    out += self._set(dev, flag, "system", flag in flags, t, rx, ev)
                if dev not in self.has_components:
                    for flag in COMPONENT_LIKE:
                        out += self._set(dev, flag, "system", flag in flags, t, rx, ev)
            elif ev.event_type == "operation" and "reset" in flags:
                for (d, flag, comp), _a in list(self.open.items()):
                    if d == dev and flag == "fire":
                        out += self._set(dev, flag, comp, False, t, rx, ev, why="reset")
        return out

    def _set(
        self,
        dev: str,
        flag: str,
        comp: str,
        on: bool,
        t: float,
        rx: float,
        ev: EventRow,
        why: str = "cleared",
    ) -> list[Anomaly]:
        key = (dev, flag, comp)
        a = self.open.get(key)
        if on and a is None:
            detector, kind, sev = FLAG_EPISODES[flag]
            where = "the panel" if comp == "system" else comp
            text = f"{kind.replace('_', ' ')} reported by {where}"
            if ev.description:
                text += f" ({ev.description})"
            a = Anomaly(
                device_id=dev,
                unit_id=self.unit_of(dev),
                detector=detector,
                kind=kind,
                metric="status",
                component=comp,
                origin=Origin.REPORTED,
                severity=sev,
                score=1.0,
                started_at=t,
                detected_at=rx,
                last_at=t,
                explanation=text,
                evidence={
                    "event_type": ev.event_type,
                    "status_word": ev.status_word,
                    "seq": ev.seq,
                    "flags": list(ev.flags),
                },
            )
            self.open[key] = a
            return [dataclasses.replace(a)]
        if not on and a is not None:
            del self.open[key]
            a.ended_at, a.last_at, a.revision = t, t, a.revision + 1
            a.explanation += f"; {why}"
            out = [dataclasses.replace(a)]
            if flag == "fire" and comp != "system" and t - a.started_at <= self.false_alarm_max_s:
                out += self._false_alarm(dev, t, rx, comp)
            return out
        return []

    def _false_alarm(self, dev: str, t: float, rx: float, comp: str) -> list[Anomaly]:
        unit = self.unit_of(dev)
        times = self.false_alarms.setdefault(unit, deque())
        times.append(t)
        while times and times[0] <= t - DAY_S:
            times.popleft()
        p = self.profiles.get(dev)
        limit = p.thresholds.false_alarms_per_day if p else 5
        a = self.unit_open.get(unit)
        if len(times) > limit and a is None:
            a = Anomaly(
                device_id=dev,
                unit_id=unit,
                detector="unit.false_alarms",
                kind="false_alarm_storm",
                metric="fire_alarms",
                component="unit",
                origin=Origin.INFERRED,
                severity=Severity.MEDIUM,
                score=min(1.0, len(times) / (2 * limit)),
                started_at=times[0],
                detected_at=rx,
                last_at=t,
                explanation=self._storm_text(len(times), limit, comp),
                evidence={"count": len(times), "limit": limit},
            )
            self.unit_open[unit] = a
            return [dataclasses.replace(a)]
        if a is not None:
            a.last_at, a.revision = t, a.revision + 1
            a.score = max(a.score, min(1.0, len(times) / (2 * limit)))
            a.evidence = {"count": len(times), "limit": limit}
            a.explanation = self._storm_text(len(times), limit, comp)
            return [dataclasses.replace(a)]
        return []

    def _storm_text(self, count: int, limit: int, comp: str) -> str:
        return (
            f"{count} fire alarms cleared within {self.false_alarm_max_s / 60:.0f} min at "
            f"this unit in 24 h (more than {limit}: a handling plan is required); "
            f"latest {comp}"
        )

    def tick(self, now: float) -> list[Anomaly]:
        """Close unit episodes whose 24-hour count fell back to the limit."""
        out: list[Anomaly] = []
        for unit, a in list(self.unit_open.items()):
            times = self.false_alarms.get(unit, deque())
            while times and times[0] <= now - DAY_S:
                times.popleft()
            p = self.profiles.get(a.device_id)
            if len(times) <= (p.thresholds.false_alarms_per_day if p else 5):
                del self.unit_open[unit]
                a.ended_at, a.revision = now, a.revision + 1
                out.append(dataclasses.replace(a))
        return out

    # -- checkpoint ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "open": [[list(k), anomaly_to_json(a)] for k, a in self.open.items()],
            "has_components": sorted(self.has_components),
            "last_ts": self.last_ts,
            "false_alarms": {u: list(v) for u, v in self.false_alarms.items()},
            "unit_open": {u: anomaly_to_json(a) for u, a in self.unit_open.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.open = {(k[0], k[1], k[2]): anomaly_from_json(a) for k, a in state["open"]}
        self.has_components = set(state["has_components"])
        self.last_ts = {k: float(v) for k, v in state["last_ts"].items()}
        self.false_alarms = {u: deque(map(float, v)) for u, v in state["false_alarms"].items()}
        self.unit_open = {u: anomaly_from_json(a) for u, a in state["unit_open"].items()}


def _component(ev: EventRow) -> str:
    """'smoke detector 1004' style label of an event's component."""
    name = COMPONENT_TYPES.get(ev.component_type or 0, "component")
    return f"{name} {ev.component_addr}"
