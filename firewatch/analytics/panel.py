"""Fire alarm control panel detectors (GB/T 26875.3 status words; GB 50440).

Panels report their own conditions; these detectors turn the decoded status flags into
episodes and count false alarms per unit:

* per component (a detector, a manual call point …): fire, fault, isolation, supervisory
  and power fault, open while the component's latest status carries the flag (an
  operator *reset* clears latched fire alarms);
* per panel, system-level conditions no component explains: mains / backup power fault
  and bus fault, and — for panels that never report components — the system word's
  fire / fault / isolation / supervisory bits;
* per user information transmission device (UITD, component ``transmission``): its status
  byte's fault, mains / backup power fault and line / link fault (``transmission_fault``);
  for panels that never report components its fire bit counts as the system word's (one
  episode on ``system``); a *manual alarm* pressed on it is a fire alarm on
  ``transmission`` until its *reset* or *alarm cleared* operation;
* per panel, duty checks (查岗, GB 50440's patrol of the control room): a check the on-duty
  person did not answer, or answered late, opens ``duty_check_missed`` until a later one is
  answered in time;
* per unit: more than ``false_alarms_per_day`` probable false alarms in 24 hours (a fire
  alarm from one component cleared within ``false_alarm_max_s``) — GB 50440 asks for a
  handling plan then.

Events are rare next to telemetry, so this module works per event in Python.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
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
    "line_fault": ("panel.line_fault", "transmission_fault", Severity.MEDIUM),
    "link_fault": ("panel.link_fault", "transmission_fault", Severity.MEDIUM),
}
SYSTEM_ONLY = ("mains_power_fault", "backup_power_fault", "bus_fault")
COMPONENT_LIKE = ("fire", "fault", "isolated", "supervisory")
#: The UITD's own conditions (type 21 status byte), on component :data:`TRANSMISSION`.
TRANSMISSION_FLAGS = (
    "fault",
    "mains_power_fault",
    "backup_power_fault",
    "line_fault",
    "link_fault",
)
TRANSMISSION = "transmission"
#: State slot of a manual alarm pressed on the UITD (apart from its status byte's fire bit:
#: the status byte does not clear it, its reset or alarm-cleared operation does).
MANUAL_ALARM = "manual_alarm"
#: The duty-check episode: (detector, kind, severity), its state slot and component.
DUTY_EPISODE = ("panel.duty_check", "duty_check_missed", Severity.HIGH)
DUTY = "duty"
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
            if ev.event_type == "duty_check":
                # timed by the gateway's clock, not the panel's: outside the clock check
                out += self._duty(dev, t, rx, ev)
                continue
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
            elif ev.event_type == "transmission_status":
                for flag in TRANSMISSION_FLAGS:
                    out += self._set(dev, flag, TRANSMISSION, flag in flags, t, rx, ev)
                if dev not in self.has_components:
                    # the UITD forwards the panel's fire: the system word's episode, not a
                    # second one (which alerting would take for a second detector in fire)
                    on, text = "fire" in flags, "fire alarm reported by the transmission device"
                    out += self._set(dev, "fire", "system", on, t, rx, ev, text=text)
            elif ev.event_type == "transmission_operation":
                out += self._transmission_operation(dev, flags, t, rx, ev)
        return out

    def _transmission_operation(
        self, dev: str, flags: set[str], t: float, rx: float, ev: EventRow
    ) -> list[Anomaly]:
        """A manual alarm on the UITD opens a fire alarm on it (unless one is open); its
        reset or alarm-cleared operation closes it (a record that also says manual alarm
        is one more alarm, not a clearing)."""
        slot = MANUAL_ALARM
        out: list[Anomaly] = []
        clear = "reset" if "reset" in flags else "alarm cleared" if "alarm_cleared" in flags else ""
        if clear and "manual_alarm" not in flags:
            out += self._set(dev, "fire", TRANSMISSION, False, t, rx, ev, why=clear, slot=slot)
        elif "manual_alarm" in flags:
            text = "manual fire alarm raised at the transmission device"
            out += self._set(dev, "fire", TRANSMISSION, True, t, rx, ev, slot=slot, text=text)
        return out

    def _duty(self, dev: str, t: float, rx: float, ev: EventRow) -> list[Anomaly]:
        """A duty check not answered in time opens (or extends) the device's duty episode;
        one answered in time closes it."""
        key = (dev, DUTY, DUTY)
        a = self.open.get(key)
        late = "duty_late" in ev.flags
        if "duty_missed" not in ev.flags and not late:
            if a is None:
                return []
            del self.open[key]
            a.ended_at, a.last_at, a.revision = t, t, a.revision + 1
            a.explanation += f"; the duty check asked at {_asked_at(ev)} was answered in time"
            return [dataclasses.replace(a)]
        text = _duty_text(ev, late)
        evidence = {
            "event_type": ev.event_type,
            "status_word": ev.status_word,
            "seq": ev.seq,
            "flags": list(ev.flags),
            "detail": ev.detail or {},
        }
        if a is not None:
            # the gateway reports a missed check, then its late answer: one check, not two
            request = (ev.detail or {}).get("request_id")
            same = request is not None and request == a.evidence["detail"].get("request_id")
            count = int(a.evidence.get("unanswered", 1)) + (0 if same else 1)
            a.last_at, a.revision = max(a.last_at, t), a.revision + 1
            a.evidence = {**evidence, "unanswered": count}
            if count > 1:
                text += f" ({count} duty checks in a row not answered in time)"
            a.explanation = text
            return [dataclasses.replace(a)]
        a = self._reported(
            dev, DUTY_EPISODE, "duty_check", DUTY, t, rx, text, {**evidence, "unanswered": 1}
        )
        self.open[key] = a
        return [dataclasses.replace(a)]

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
        slot: str | None = None,
        text: str | None = None,
    ) -> list[Anomaly]:
        """Open or close the episode of ``flag`` on ``comp`` (state kept under ``slot``,
        by default the flag itself); ``text`` replaces the default explanation."""
        key = (dev, slot or flag, comp)
        a = self.open.get(key)
        if on and a is None:
            kind = FLAG_EPISODES[flag][1]
            text = text or f"{kind.replace('_', ' ')} reported by {_WHERE.get(comp, comp)}"
            if ev.description:
                text += f" ({ev.description})"
            evidence = {
                "event_type": ev.event_type,
                "status_word": ev.status_word,
                "seq": ev.seq,
                "flags": list(ev.flags),
            }
            a = self._reported(dev, FLAG_EPISODES[flag], "status", comp, t, rx, text, evidence)
            self.open[key] = a
            return [dataclasses.replace(a)]
        if not on and a is not None:
            del self.open[key]
            a.ended_at, a.last_at, a.revision = t, t, a.revision + 1
            a.explanation += f"; {why}"
            out = [dataclasses.replace(a)]
            # a component's alarm, not the panel's or the UITD's own (as the system word's)
            if flag == "fire" and comp not in _WHERE and t - a.started_at <= self.false_alarm_max_s:
                out += self._false_alarm(dev, t, rx, comp)
            return out
        return []

    def _reported(
        self,
        dev: str,
        episode: tuple[str, str, Severity],
        metric: str,
        comp: str,
        t: float,
        rx: float,
        text: str,
        evidence: dict[str, Any],
    ) -> Anomaly:
        """A new episode of something the panel reported (score 1: no inference)."""
        detector, kind, sev = episode
        return Anomaly(
            device_id=dev,
            unit_id=self.unit_of(dev),
            detector=detector,
            kind=kind,
            metric=metric,
            component=comp,
            origin=Origin.REPORTED,
            severity=sev,
            score=1.0,
            started_at=t,
            detected_at=rx,
            last_at=t,
            explanation=text,
            evidence=evidence,
        )

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


_WHERE = {"system": "the panel", TRANSMISSION: "the transmission device"}


def _asked_at(ev: EventRow) -> str:
    """When the duty check of ``ev`` was asked (its ``asked_at``, else the event's time)."""
    asked = _time((ev.detail or {}).get("asked_at")) or ev.ts
    return asked.isoformat(timespec="seconds")


def _duty_text(ev: EventRow, late: bool) -> str:
    detail = ev.detail or {}
    timeout = _seconds(detail.get("timeout_s"))
    within = f" within {_duration(timeout)}" if timeout else " in time"
    text = f"the on-duty person did not answer the duty check (查岗) asked at {_asked_at(ev)}"
    text += within
    asked, answered = _time(detail.get("asked_at")), _time(detail.get("answered_at"))
    if late and asked and answered:
        text += f": answered late, after {(answered - asked).total_seconds():.0f} s"
    elif late:
        text += ": answered late"
    return text


def _time(value: object) -> datetime | None:
    """An aware time from a detail value (ISO 8601 text), or None."""
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def _seconds(value: object) -> float | None:
    """A positive number of seconds from a detail value, or None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds % 60 == 0 else f"{seconds:g} s"


def _component(ev: EventRow) -> str:
    """'smoke detector 1004' style label of an event's component; a vendor's own component
    code is named by ``detail.component_name`` (the gateway's vendor profile sets it)."""
    vendor_name = (ev.detail or {}).get("component_name")
    if isinstance(vendor_name, str) and vendor_name:
        name = vendor_name
    else:
        name = COMPONENT_TYPES.get(ev.component_type or 0, "component")
    return f"{name} {ev.component_addr}"
