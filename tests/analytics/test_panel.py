"""Panel detectors (firewatch/analytics/panel.py): component and system flags become
reported episodes, a reset clears latched fire alarms, and more than five quickly cleared
fire alarms at one unit in 24 hours open a false-alarm storm that ages out."""

from __future__ import annotations

from firewatch.analytics.panel import PanelDetectors
from firewatch.core.anomalies import Origin
from firewatch.core.domain import DeviceKind, PanelEventType, Severity
from firewatch.core.rows import EventRow
from tests.builders.detection import of, profile, profiles, unit_of
from tests.builders.rows import DAY, HOUR, MIN, T0, event

P, P2 = "P1", "P2"  # two panels of one unit
COMP = PanelEventType.COMPONENT_STATUS
SYSTEM = PanelEventType.SYSTEM_STATUS
OPERATION = PanelEventType.OPERATION
NORMAL = 1  # bit 0: normal operation
FIRE = NORMAL | 1 << 1
MAINS = NORMAL | 1 << 8
RESET = 1  # operation bit 0
SMOKE = 40  # component type: smoke detector


def panels() -> PanelDetectors:
    ps = profiles(profile(P, DeviceKind.PANEL), profile(P2, DeviceKind.PANEL))
    return PanelDetectors(ps, unit_of(ps))


def comp(dev: str, t: float, word: int, addr: int, description: str | None = None) -> EventRow:
    return event(dev, t, COMP, word, addr=addr, ctype=SMOKE, description=description)


def test_component_fire_opens_and_a_later_status_without_fire_closes_it() -> None:
    d = panels()
    (a,) = d.process([comp(P, T0, FIRE, 1004, "2F corridor")])
    assert a.detector == "panel.fire"
    assert a.kind == "fire_alarm"
    assert a.severity is Severity.CRITICAL
    assert a.origin is Origin.REPORTED
    assert a.component == "smoke detector 1004"
    assert a.started_at == a.detected_at == T0
    assert a.explanation == "fire alarm reported by smoke detector 1004 (2F corridor)"
    assert a.ended_at is None
    assert d.process([comp(P, T0 + MIN, FIRE, 1004)]) == []  # still on: no change
    assert d.process([comp(P, T0 + 2 * MIN, FIRE, 1005)])[0].component == "smoke detector 1005"
    (closed,) = d.process([comp(P, T0 + 20 * MIN, NORMAL, 1004)])
    assert closed.key == a.key
    assert closed.revision == 2
    assert closed.ended_at == T0 + 20 * MIN
    assert closed.explanation.endswith("; cleared")
    assert [x.component for x in d.open.values()] == ["smoke detector 1005"]


def test_reset_closes_open_fire_alarms_of_that_panel_only() -> None:
    d = panels()
    d.process([comp(P, T0, FIRE, 1004), comp(P, T0 + 10, FIRE, 1005), comp(P2, T0, FIRE, 2001)])
    out = d.process([event(P, T0 + HOUR, OPERATION, RESET)])
    assert sorted(a.component for a in out) == ["smoke detector 1004", "smoke detector 1005"]
    for a in out:
        assert a.detector == "panel.fire"
        assert a.ended_at == T0 + HOUR
        assert a.explanation.endswith("; reset")
    assert of(out, "unit.false_alarms") == []  # open for an hour: not a false alarm
    assert [k[0] for k in d.open] == [P2]


def test_system_mains_power_fault() -> None:
    d = panels()
    (a,) = d.process([event(P, T0, SYSTEM, MAINS)])
    assert a.detector == "panel.mains_power_fault"
    assert a.kind == "power_fault"
    assert a.severity is Severity.HIGH
    assert a.origin is Origin.REPORTED
    assert a.component == "system"
    assert a.started_at == T0
    assert a.explanation == "power fault reported by the panel"
    (closed,) = d.process([event(P, T0 + 5 * MIN, SYSTEM, NORMAL)])
    assert closed.key == a.key
    assert closed.ended_at == T0 + 5 * MIN


def test_false_alarm_storm_opens_at_the_sixth_and_ages_out() -> None:
    d = panels()
    cleared = []
    for i in range(6):
        t = T0 + i * HOUR
        dev = P if i % 2 == 0 else P2  # one unit, two panels
        d.process([comp(dev, t, FIRE, 1000 + i)])
        out = d.process([comp(dev, t + 10 * MIN, NORMAL, 1000 + i)])  # within 15 min
        cleared.append(t + 10 * MIN)
        storm = of(out, "unit.false_alarms")
        if i < 5:
            assert storm == [], i
    assert len(storm) == 1
    a = storm[0]
    assert a.kind == "false_alarm_storm"
    assert a.component == "unit"
    assert a.unit_id == "U-1"
    assert a.severity is Severity.MEDIUM
    assert a.started_at == cleared[0]
    assert a.detected_at == cleared[5]
    assert a.evidence == {"count": 6, "limit": 5}
    assert a.explanation.startswith("6 fire alarms cleared within 15 min at this unit in 24 h")
    assert d.tick(cleared[0] + DAY - 1) == []
    (closed,) = d.tick(cleared[0] + DAY)
    assert closed.key == a.key
    assert closed.ended_at == cleared[0] + DAY
    assert d.tick(cleared[0] + 2 * DAY) == []


def test_slowly_cleared_alarms_are_not_false_alarms() -> None:
    d = panels()
    out = []
    for i in range(8):
        t = T0 + i * HOUR
        d.process([comp(P, t, FIRE, 1000 + i)])
        out += d.process([comp(P, t + 16 * MIN, NORMAL, 1000 + i)])
    assert of(out, "unit.false_alarms") == []
