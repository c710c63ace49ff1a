"""The alerting decisions (firewatch/alerting/decide.py) without a database: records and facts
in, commands out. Every branch the service takes on an anomaly change (new episode,
correlation, refresh, end) and on a tick (escalation); the service tests run the same
decisions against PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from firewatch.alerting.decide import (
    BACKFILL_S,
    ESCALATION_NOTE,
    FireFacts,
    correlate_fire,
    episode_ended,
    escalation_due,
    escalations,
    is_backfill,
    merge_into_correlated,
    new_episode,
    refresh,
    zone_of,
)
from firewatch.core.alert_commands import (
    Escalate,
    MergeInto,
    RaiseAlert,
    RefreshAlert,
    Resolve,
    SetCondition,
)
from firewatch.core.alerts import Alert, AlertCategory, AlertState, AnomalyChange, category_of
from firewatch.core.domain import Severity
from firewatch.core.escalation import (
    Audience,
    EscalationLevel,
    EscalationPolicy,
    Medium,
    default_policy,
)

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
PANEL, WATER, UNIT = "D-WD-001-P1", "D-WD-001-W1", "U-WD-001"
LAYOUT = {"detectors_per_loop": 16, "zones_per_loop": 4}  # 4 detectors a zone
TIMEOUTS = {"critical": 60.0, "high": 300.0, "medium": 900.0, "low": 3600.0}
POLICY = default_policy(TIMEOUTS)  # the built-in ladders with the default timeouts
TOP: int | None = None  # no cap beyond the ladders' own length


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def change(
    kind: str = "low_pressure",
    *,
    id: int = 7,
    device: str = WATER,
    component: str = "",
    severity: Severity = Severity.HIGH,
    detected: datetime = T0,
    last: datetime | None = None,
    ended: datetime | None = None,
    text: str = "",
) -> AnomalyChange:
    return AnomalyChange(
        id=id,
        device_id=device,
        unit_id=UNIT,
        kind=kind,
        component=component,
        severity=severity,
        detected_at=detected,
        last_at=last or detected,
        ended_at=ended,
        explanation=text or f"{kind} at {component or device}",
    )


def fire(component: str, *, id: int = 7, at: datetime = T0) -> AnomalyChange:
    return change(
        "fire_alarm",
        id=id,
        device=PANEL,
        component=component,
        severity=Severity.CRITICAL,
        detected=at,
    )


def alert(
    type_: str = "low_pressure",
    *,
    id: int = 3,
    state: AlertState = AlertState.OPEN,
    severity: Severity = Severity.MEDIUM,
    first_seen: datetime = T0,
    escalated_at: datetime | None = None,
    level: int = 0,
    device: str = WATER,
) -> Alert:
    return Alert(
        id=id,
        type=type_,
        category=category_of(type_),
        severity=severity,
        unit_id=UNIT,
        device_id=device,
        state=state,
        first_seen=first_seen,
        last_seen=first_seen,
        occurrences=1,
        explanation=f"{type_} on {device}",
        condition_active=True,
        escalation_level=level,
        escalated_at=escalated_at,
        acknowledged_at=None,
        resolved_at=None,
        closed_at=None,
        parent_id=None,
        created_at=first_seen,
        updated_at=first_seen,
    )


def facts(*recent: str, active: bool = False, metadata: Any = None) -> FireFacts:
    meta = LAYOUT if metadata is None else metadata
    return FireFacts(
        metadata=meta, likely_fire_active=active, recent_components=recent, window_s=300.0
    )


INACTIVE = [AlertState.FALSE_ALARM, AlertState.RESOLVED, AlertState.CLOSED, AlertState.MERGED]
ACTIVE = [
    AlertState.OPEN,
    AlertState.ACKNOWLEDGED,
    AlertState.CONFIRMED_FIRE,
    AlertState.CONFIRMED_FAULT,
]


# --- zones --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("component", "metadata", "zone"),
    [
        ("point smoke detector 2001", LAYOUT, "loop 2 zone 1"),
        ("smoke detector 2004", LAYOUT, "loop 2 zone 1"),
        ("smoke detector 2005", LAYOUT, "loop 2 zone 2"),
        ("smoke detector 1009", LAYOUT, "loop 1 zone 3"),
        ("smoke detector 1004 ", LAYOUT, "loop 1 zone 1"),  # trailing space
        ("smoke detector 12", {"zones": {"12": "stairwell B"}, **LAYOUT}, "stairwell B"),
        ("smoke detector 1001", {"zones": {"12": "stairwell B"}, **LAYOUT}, "loop 1 zone 1"),
        ("smoke detector 12", {"zones": {"13": "stairwell B"}}, "panel"),
        ("smoke detector 2001", {}, "panel"),
        ("smoke detector 2001", {"detectors_per_loop": "16", "zones_per_loop": 4}, "panel"),
        ("smoke detector 2001", {"detectors_per_loop": 16, "zones_per_loop": 0}, "panel"),
        ("loop 1", {"zones": "not a map", **LAYOUT}, "loop 0 zone 1"),
        ("manual call point", LAYOUT, "panel"),  # no address
        ("smoke detector 2001", {"detectors_per_loop": 2, "zones_per_loop": 4}, "loop 2 zone 1"),
    ],
)
def test_zone_of(component: str, metadata: dict[str, Any], zone: str) -> None:
    assert zone_of(component, metadata) == zone


# --- a new episode ------------------------------------------------------------------------
def test_an_episode_that_ended_long_before_it_was_seen_is_backfill() -> None:
    now = (T0 + s(BACKFILL_S)).timestamp()
    assert not is_backfill(change(), now)  # still open
    assert not is_backfill(change(ended=T0), now)  # exactly at the limit
    assert not is_backfill(change(ended=T0 + s(10)), now)
    assert is_backfill(change(ended=T0 - s(1)), now)


def test_a_new_episode_raises_its_alert_type() -> None:
    c = change(severity=Severity.HIGH, detected=T0 + s(5), last=T0 + s(9))
    assert new_episode(c) == RaiseAlert(
        type="low_pressure",
        severity=Severity.HIGH,
        unit_id=UNIT,
        device_id=WATER,
        seen_at=T0 + s(5),  # when it was detected, not its latest point
        explanation="low_pressure at D-WD-001-W1",
        anomaly_id=7,
    )
    assert not new_episode(c).correlates
    # several detectors of one problem share an alert type
    assert new_episode(change("device_silent")).type == "device_offline"
    # an ended episode that is not backfill is raised all the same
    assert new_episode(change(ended=T0 + s(60))).type == "low_pressure"


def test_a_fire_alarm_without_facts_or_alone_in_its_zone_is_a_plain_fire_alarm() -> None:
    alarm = fire("smoke detector 2001")
    plain = new_episode(alarm)
    assert (plain.type, plain.severity, plain.merge_active) == ("fire_alarm", "critical", None)
    assert new_episode(alarm, facts()) == plain  # nothing else in fire
    assert new_episode(alarm, facts("smoke detector 1009")) == plain  # another zone
    assert new_episode(alarm, facts("smoke detector 2001")) == plain  # the same detector again
    assert correlate_fire(alarm, facts("smoke detector 1009")) is None


def test_a_second_detector_of_the_zone_makes_a_likely_real_fire() -> None:
    alarm = fire("smoke detector 2004", id=9, at=T0 + s(20))
    got = new_episode(alarm, facts("smoke detector 2001", "smoke detector 1009"))
    assert got == RaiseAlert(
        type="likely_real_fire",
        severity=Severity.CRITICAL,
        unit_id=UNIT,
        device_id=PANEL,
        seen_at=T0 + s(20),
        explanation="2 detectors in fire in loop 2 zone 1 within 5 min"
        " (latest: smoke detector 2004): likely a real fire",
        anomaly_id=9,
        merge_active="fire_alarm",
    )
    assert got.correlates
    three = new_episode(alarm, facts("smoke detector 2001", "smoke detector 2002"))
    assert three.explanation.startswith("3 detectors in fire in loop 2 zone 1 within 5 min")


def test_without_zone_metadata_the_panel_is_one_zone() -> None:
    got = new_episode(fire("smoke detector 2004"), facts("smoke detector 1009", metadata={}))
    assert got.type == "likely_real_fire"
    assert "2 detectors in fire in panel within 5 min" in got.explanation


def test_a_later_alarm_joins_the_active_likely_real_fire() -> None:
    got = new_episode(fire("smoke detector 1009"), facts(active=True))
    assert (got.type, got.merge_active) == ("likely_real_fire", "fire_alarm")
    assert got.explanation.startswith("1 detectors in fire in loop 1 zone 3")


def test_only_fire_alarms_are_correlated() -> None:
    smoke = change("smoke", device=PANEL, component="smoke detector 2004")
    assert new_episode(smoke, facts("smoke detector 2001", active=True)).type == "smoke"


def test_a_created_likely_real_fire_takes_over_the_plain_fire_alarm() -> None:
    parent = alert("likely_real_fire", id=12, device=PANEL, severity=Severity.CRITICAL)
    assert merge_into_correlated(parent, 5, T0 + s(20)) == [
        MergeInto(5, parent_id=12, at=T0 + s(20), note="correlated into likely real fire #12")
    ]
    assert merge_into_correlated(parent, None, T0) == []  # the panel has no plain one


# --- a changed episode --------------------------------------------------------------------
def test_a_higher_severity_raises_the_alerts_severity() -> None:
    known = alert(severity=Severity.MEDIUM)
    later = change(severity=Severity.CRITICAL, last=T0 + s(30), text="pressure 0.05 MPa")
    expected = RefreshAlert(
        type="low_pressure",
        severity=Severity.CRITICAL,
        unit_id=UNIT,
        device_id=WATER,
        seen_at=T0 + s(30),
        explanation="pressure 0.05 MPa",
    )
    assert refresh(later, known) == [expected]
    # also when that version ended the episode: the severity first, the end after
    assert refresh(replace(later, ended_at=T0 + s(30)), known) == [expected]


@pytest.mark.parametrize("state", ACTIVE)
def test_a_continuing_episode_keeps_the_condition_active(state: AlertState) -> None:
    known = alert(state=state, severity=Severity.HIGH)
    for severity in (Severity.HIGH, Severity.LOW):  # the same or lower: never lowered
        later = change(severity=severity, last=T0 + s(30), text="still low")
        assert refresh(later, known) == [
            SetCondition(3, active=True, seen_at=T0 + s(30), explanation="still low")
        ]


def test_an_ended_version_at_the_same_severity_refreshes_nothing() -> None:
    assert refresh(change(severity=Severity.MEDIUM, ended=T0 + s(9)), alert()) == []


@pytest.mark.parametrize("state", INACTIVE)
def test_an_inactive_or_missing_alert_is_not_refreshed(state: AlertState) -> None:
    assert refresh(change(severity=Severity.CRITICAL), alert(state=state)) == []
    assert refresh(change(severity=Severity.CRITICAL), None) == []


# --- an ended episode ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("type_", "category"),
    [
        ("low_pressure", AlertCategory.ANOMALY),
        ("panel_fault", AlertCategory.FAULT),
        ("device_offline", AlertCategory.OFFLINE),
        ("false_alarm_storm", AlertCategory.UNIT),
    ],
)
def test_the_last_evidence_ending_clears_and_resolves(type_: str, category: str) -> None:
    known = alert(type_)
    assert known.category == category
    ended = change(type_, last=T0 + s(50), ended=T0 + s(60), text="pressure back to 0.3 MPa")
    assert episode_ended(ended, known, open_evidence=0) == [
        SetCondition(3, active=False, seen_at=T0 + s(50)),
        Resolve(3, at=T0 + s(60), note="condition cleared: pressure back to 0.3 MPa"),
    ]


@pytest.mark.parametrize("type_", ["fire_alarm", "likely_real_fire", "smoke", "port_overheat"])
def test_fire_alerts_clear_but_wait_for_an_operator(type_: str) -> None:
    ended = change(type_, last=T0 + s(50), ended=T0 + s(60))
    assert episode_ended(ended, alert(type_), open_evidence=0) == [
        SetCondition(3, active=False, seen_at=T0 + s(50))
    ]


def test_nothing_clears_while_other_evidence_is_open_or_the_alert_moved_on() -> None:
    ended = change(ended=T0 + s(60))
    assert episode_ended(ended, alert(), open_evidence=1) == []
    assert episode_ended(ended, None, open_evidence=2) == []
    assert episode_ended(ended, None, open_evidence=0) == []
    for state in INACTIVE:
        assert episode_ended(ended, alert(state=state), open_evidence=0) == []
    for state in ACTIVE:  # an operator's confirmation does not stop the system's resolve
        assert len(episode_ended(ended, alert(state=state), open_evidence=0)) == 2


# --- escalation ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("severity", "timeout"),
    [(Severity.CRITICAL, 60), (Severity.HIGH, 300), (Severity.MEDIUM, 900), (Severity.LOW, 3600)],
)
def test_an_open_alert_is_due_at_its_severitys_timeout(severity: Severity, timeout: int) -> None:
    a = alert(severity=severity)
    assert escalation_due(a, POLICY, T0 + s(timeout - 1), TOP) is None
    first = POLICY.level(severity, 1)
    assert first is not None
    assert escalation_due(a, POLICY, T0 + s(timeout), TOP) == first  # at the timeout itself
    assert escalation_due(a, POLICY, T0 + s(timeout + 1), TOP) == first


def test_the_next_escalation_counts_from_the_last() -> None:
    a = alert(severity=Severity.HIGH, escalated_at=T0 + s(400), level=1)
    assert escalation_due(a, POLICY, T0 + s(699), TOP) is None
    assert escalation_due(a, POLICY, T0 + s(700), TOP) == POLICY.level(Severity.HIGH, 2)


def test_each_level_waits_its_own_time() -> None:
    quick, slow = (
        EscalationLevel("operators", Audience.ON_DUTY_OPERATORS, Medium.EMAIL, 10.0),
        EscalationLevel("supervisor", Audience.SUPERVISOR, Medium.WEBHOOK, 500.0),
    )
    policy = EscalationPolicy({sev: (quick, slow) for sev in Severity})
    assert escalation_due(alert(), policy, T0 + s(10), TOP) == quick
    up = alert(level=1, escalated_at=T0 + s(10))
    assert escalation_due(up, policy, T0 + s(509), TOP) is None
    assert escalation_due(up, policy, T0 + s(510), TOP) == slow


@pytest.mark.parametrize("state", [*ACTIVE[1:], *INACTIVE])
def test_only_open_alerts_escalate(state: AlertState) -> None:
    """Acknowledging (or deciding) an alert stops its escalation."""
    assert escalation_due(alert(state=state), POLICY, T0 + timedelta(days=30), TOP) is None


def test_a_severity_without_a_timeout_never_escalates() -> None:
    policy = default_policy({"critical": 60.0})
    assert escalation_due(alert(severity=Severity.LOW), policy, T0 + s(10**6), TOP) is None
    assert escalation_due(alert(severity=Severity.CRITICAL), policy, T0 + s(60), TOP)


def test_escalation_stops_at_the_ladders_last_level() -> None:
    """No endless re-escalation: an alert at the last level of its ladder stays there
    however long nobody acknowledges it (a demo alert once reached level 13 and 28
    supervisor notifications); FIREWATCH_ALERT_MAX_ESCALATION_LEVEL cuts it shorter."""
    later = T0 + timedelta(days=30)
    last = POLICY.length(Severity.CRITICAL)
    assert last == 5
    fire = Severity.CRITICAL
    assert escalation_due(alert(severity=fire, level=4, escalated_at=T0), POLICY, later, TOP)
    assert (
        escalation_due(alert(severity=fire, level=5, escalated_at=T0), POLICY, later, TOP) is None
    )
    assert escalation_due(alert(level=2, escalated_at=T0), POLICY, later, 3)
    assert escalation_due(alert(level=3, escalated_at=T0), POLICY, later, 3) is None
    assert escalation_due(alert(), POLICY, later, 0) is None  # 0: never escalates
    due = [alert(id=1, level=2, escalated_at=T0), alert(id=2, level=3, escalated_at=T0)]
    assert [e.alert_id for e in escalations(due, POLICY, later, 3)] == [1]
    assert escalations(due, POLICY, later, 3)[0].level == 3


def test_escalations_go_one_level_up_in_order_keeping_the_severity() -> None:
    now = T0 + s(1000)
    due = [
        alert(id=1, severity=Severity.LOW, first_seen=T0 - s(3600)),
        alert(id=2, severity=Severity.MEDIUM),
        alert(id=3, severity=Severity.HIGH, level=2, escalated_at=T0 + s(600)),
        alert(id=4, severity=Severity.CRITICAL, level=4, escalated_at=T0 + s(900)),
        alert(id=5, severity=Severity.CRITICAL, level=5, escalated_at=T0),  # at the end
        alert(id=6, severity=Severity.HIGH, escalated_at=T0 + s(900)),  # not yet
        alert(id=7, state=AlertState.ACKNOWLEDGED),  # seen: never
    ]

    def note(level: int, what: str) -> str:
        return f"{ESCALATION_NOTE}: level {level}, {what}"

    assert escalations(due, POLICY, now, TOP) == [
        Escalate(1, Severity.LOW, 1, now, note(1, "on-duty operators by email")),
        Escalate(2, Severity.MEDIUM, 1, now, note(1, "on-duty operators by email")),
        Escalate(3, Severity.HIGH, 3, now, note(3, "unit's responsible person by sms")),
        Escalate(4, Severity.CRITICAL, 5, now, note(5, "supervisor by webhook")),
    ]
    assert escalations([], POLICY, now, TOP) == []
