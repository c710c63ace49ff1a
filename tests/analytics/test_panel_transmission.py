"""Panel detectors of the transmission device (UITD) and of duty checks (issue 17,
firewatch/analytics/panel.py): the UITD's own faults on component ``transmission``, a manual
alarm pressed on it until its reset, and a duty check (查岗) not answered in time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from firewatch.analytics.panel import PanelDetectors
from firewatch.core.anomalies import Origin
from firewatch.core.domain import DeviceKind, PanelEventType, Severity
from firewatch.core.rows import EventRow
from tests.builders.detection import of, profile, profiles, unit_of
from tests.builders.rows import HOUR, MIN, T0, event

P = "P1"
TS = PanelEventType.TRANSMISSION_STATUS
TOP = PanelEventType.TRANSMISSION_OPERATION
DUTY = PanelEventType.DUTY_CHECK
SYSTEM = PanelEventType.SYSTEM_STATUS
OPERATION = PanelEventType.OPERATION
NORMAL = 1  # bit 0: normal monitoring
MAINS = NORMAL | 1 << 3
LINE, LINK = NORMAL | 1 << 6, NORMAL | 1 << 5
UITD_FIRE = NORMAL | 1 << 1
RESET, MANUAL_ALARM, ALARM_CLEARED = 1, 1 << 2, 1 << 3
MISSED, ANSWERED, LATE = 0b00, 0b01, 0b11


def panels() -> PanelDetectors:
    ps = profiles(profile(P, DeviceKind.PANEL))
    return PanelDetectors(ps, unit_of(ps))


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def duty(
    t: float, word: int, asked: float, answered: float | None = None, seq: int = 1
) -> EventRow:
    """A duty-check outcome as the gateway publishes it (asked at ``asked``, 10 min)."""
    detail: dict[str, Any] = {
        "asked_at": iso(asked),
        "answered_at": iso(answered) if answered is not None else None,
        "timeout_s": 600,
        "requested_by": "schedule",
        "request_id": seq,
    }
    return event(P, t, DUTY, word, seq=seq, detail=detail)


def test_a_missed_duty_check_opens_an_episode_that_the_next_answer_in_time_closes() -> None:
    d = panels()
    asked = T0
    (a,) = d.process([duty(asked + 10 * MIN, MISSED, asked)])
    assert a.detector == "panel.duty_check"
    assert a.kind == "duty_check_missed"
    assert a.severity is Severity.HIGH
    assert a.component == "duty"
    assert a.origin is Origin.REPORTED
    assert a.unit_id == "U-1"
    assert a.started_at == asked + 10 * MIN
    assert a.ended_at is None
    assert a.explanation == (
        "the on-duty person did not answer the duty check (查岗) asked at "
        "2026-11-19T16:00:00+00:00 within 10 min"
    )
    assert a.evidence["detail"]["request_id"] == 1
    assert a.evidence["unanswered"] == 1

    # missed again two hours later: the same episode, counted
    (again,) = d.process([duty(asked + 2 * HOUR + 10 * MIN, MISSED, asked + 2 * HOUR, seq=2)])
    assert again.key == a.key
    assert again.revision == 2
    assert again.evidence["unanswered"] == 2
    assert again.explanation.endswith("(2 duty checks in a row not answered in time)")

    # answered in time: closed
    asked3 = asked + 4 * HOUR
    (closed,) = d.process([duty(asked3 + 2 * MIN, ANSWERED, asked3, asked3 + 2 * MIN, seq=3)])
    assert closed.key == a.key
    assert closed.ended_at == asked3 + 2 * MIN
    assert closed.revision == 3
    assert closed.explanation.endswith(
        "; the duty check asked at 2026-11-19T20:00:00+00:00 was answered in time"
    )
    assert d.open == {}
    # answered in time again: nothing to close
    assert d.process([duty(asked3 + HOUR, ANSWERED, asked3 + HOUR - MIN, seq=4)]) == []


def test_a_late_answer_opens_it_too_and_says_how_late() -> None:
    d = panels()
    (a,) = d.process([duty(T0 + 15 * MIN, LATE, T0, T0 + 15 * MIN)])
    assert a.kind == "duty_check_missed"
    assert a.explanation.endswith("within 10 min: answered late, after 900 s")


def test_a_missed_check_answered_late_afterwards_is_still_one_check() -> None:
    # the gateway publishes "missed" at the timeout, then "late" when the answer comes
    d = panels()
    (a,) = d.process([duty(T0 + 10 * MIN, MISSED, T0, seq=5)])
    (late,) = d.process([duty(T0 + 12 * MIN, LATE, T0, T0 + 12 * MIN, seq=5)])
    assert late.key == a.key
    assert late.evidence["unanswered"] == 1
    assert late.explanation.endswith("within 10 min: answered late, after 720 s")
    (other,) = d.process([duty(T0 + 2 * HOUR + 10 * MIN, MISSED, T0 + 2 * HOUR, seq=6)])
    assert other.evidence["unanswered"] == 2


def test_duty_checks_are_outside_the_panels_clock_check() -> None:
    # the gateway times duty checks by its own clock: a panel clock running ahead must not
    # make them look like the past
    d = panels()
    d.process([event(P, T0 + HOUR, SYSTEM, NORMAL)])
    assert len(d.process([duty(T0 + 10 * MIN, MISSED, T0)])) == 1


def test_transmission_mains_power_fault_is_a_power_fault_on_component_transmission() -> None:
    d = panels()
    (a,) = d.process([event(P, T0, TS, MAINS)])
    assert a.detector == "panel.mains_power_fault"
    assert a.kind == "power_fault"
    assert a.severity is Severity.HIGH
    assert a.component == "transmission"
    assert a.explanation == "power fault reported by the transmission device"
    # the panel's own system word does not touch the UITD's episode
    assert d.process([event(P, T0 + MIN, SYSTEM, NORMAL)]) == []
    (closed,) = d.process([event(P, T0 + 5 * MIN, TS, NORMAL)])
    assert closed.key == a.key
    assert closed.ended_at == T0 + 5 * MIN


def test_line_and_link_faults_are_transmission_faults() -> None:
    d = panels()
    out = d.process([event(P, T0, TS, LINE | LINK)])
    assert sorted(a.detector for a in out) == ["panel.line_fault", "panel.link_fault"]
    assert {(a.kind, a.severity, a.component) for a in out} == {
        ("transmission_fault", Severity.MEDIUM, "transmission")
    }
    (closed,) = d.process([event(P, T0 + MIN, TS, LINE)])
    assert closed.detector == "panel.link_fault"
    assert closed.ended_at == T0 + MIN


def test_a_fault_of_the_device_itself_is_a_panel_fault() -> None:
    d = panels()
    (a,) = d.process([event(P, T0, TS, NORMAL | 1 << 2)])
    assert (a.detector, a.kind, a.component) == ("panel.fault", "panel_fault", "transmission")


def test_a_manual_alarm_is_a_fire_alarm_until_its_reset() -> None:
    d = panels()
    (a,) = d.process([event(P, T0, TOP, MANUAL_ALARM)])
    assert a.detector == "panel.fire"
    assert a.kind == "fire_alarm"
    assert a.severity is Severity.CRITICAL
    assert a.component == "transmission"
    assert a.explanation == "manual fire alarm raised at the transmission device"
    # the status byte without its fire bit does not clear a manual alarm
    assert d.process([event(P, T0 + MIN, TS, NORMAL)]) == []
    assert d.process([event(P, T0 + 2 * MIN, TOP, MANUAL_ALARM)]) == []  # still on
    (closed,) = d.process([event(P, T0 + 5 * MIN, TOP, RESET)])
    assert closed.key == a.key
    assert closed.ended_at == T0 + 5 * MIN
    assert closed.explanation.endswith("; reset")
    # cleared quickly, but the UITD's own alarm is not a component's false alarm
    assert of([closed], "unit.false_alarms") == []
    assert not d.false_alarms.get("U-1")


def test_alarm_cleared_closes_a_manual_alarm_too() -> None:
    d = panels()
    d.process([event(P, T0, TOP, MANUAL_ALARM)])
    (closed,) = d.process([event(P, T0 + HOUR, TOP, ALARM_CLEARED)])
    assert closed.explanation.endswith("; alarm cleared")
    assert d.open == {}


def test_the_transmission_fire_bit_is_the_system_words_fire_for_panels_without_components() -> None:
    d = panels()
    (a,) = d.process([event(P, T0, TS, UITD_FIRE)])
    assert (a.detector, a.component) == ("panel.fire", "system")
    assert a.explanation == "fire alarm reported by the transmission device"
    # the panel's system word reporting the same fire: one episode, not two
    assert d.process([event(P, T0 + 1, SYSTEM, NORMAL | 1 << 1)]) == []
    (closed,) = d.process([event(P, T0 + HOUR, OPERATION, RESET)])
    assert closed.key == a.key
    # a panel that reports components: the UITD's fire bit is left to them
    d.process([event(P, T0 + 2 * HOUR, PanelEventType.COMPONENT_STATUS, NORMAL, addr=1, ctype=40)])
    assert d.process([event(P, T0 + 3 * HOUR, TS, UITD_FIRE)]) == []


def test_the_state_survives_a_checkpoint() -> None:
    d = panels()
    d.process([duty(T0 + 10 * MIN, MISSED, T0), event(P, T0, TOP, MANUAL_ALARM)])
    restored = panels()
    restored.restore(d.state())
    assert restored.open.keys() == d.open.keys()
    (closed,) = restored.process([duty(T0 + 3 * HOUR, ANSWERED, T0 + 3 * HOUR - MIN, seq=2)])
    assert closed.detector == "panel.duty_check"
    assert closed.ended_at == T0 + 3 * HOUR


def test_a_vendor_component_code_is_named_by_the_profiles_name_in_the_gateways_detail() -> None:
    d = panels()
    detail = {"component_name": "vendor gas detector"}
    fire = event(P, T0, PanelEventType.COMPONENT_STATUS, 0b11, addr=7, ctype=201, detail=detail)
    (a,) = d.process([fire])
    assert a.component == "vendor gas detector 7"
    assert "vendor gas detector 7" in a.explanation
    # without the gateway's name, a code the standard does not know is a "component"
    other = event(P, T0, PanelEventType.COMPONENT_STATUS, 0b11, addr=8, ctype=201, seq=2)
    (b,) = d.process([other])
    assert b.component == "component 8"
