"""The alert lifecycle (firewatch/core/alerts.py): transitions, refusals, categories."""

from __future__ import annotations

import itertools

import pytest

from firewatch.core.alerts import (
    ACTIVE_STATES,
    OPERATOR_ACTIONS,
    TRANSITIONS,
    AlertAction,
    AlertCategory,
    AlertState,
    IllegalTransition,
    alert_type,
    auto_resolves,
    category_of,
    escalated,
    next_state,
)
from firewatch.core.domain import Severity

S, A = AlertState, AlertAction

#: The lifecycle as the module docstring draws it: (state, action) -> state.
DOCUMENTED: dict[tuple[AlertState, AlertAction], AlertState] = {
    (S.OPEN, A.ACKNOWLEDGE): S.ACKNOWLEDGED,
    **{(s, A.CONFIRM_FIRE): S.CONFIRMED_FIRE for s in (S.OPEN, S.ACKNOWLEDGED)},
    **{(s, A.MARK_FALSE_ALARM): S.FALSE_ALARM for s in (S.OPEN, S.ACKNOWLEDGED)},
    **{(s, A.CONFIRM_FAULT): S.CONFIRMED_FAULT for s in (S.OPEN, S.ACKNOWLEDGED)},
    **{
        (s, A.RESOLVE): S.RESOLVED
        for s in (S.OPEN, S.ACKNOWLEDGED, S.CONFIRMED_FIRE, S.CONFIRMED_FAULT)
    },
    (S.RESOLVED, A.CLOSE): S.CLOSED,
    (S.FALSE_ALARM, A.CLOSE): S.CLOSED,
    **{(s, A.ESCALATE): s for s in (S.OPEN, S.ACKNOWLEDGED)},
    **{(s, A.MERGE): S.MERGED for s in ACTIVE_STATES},
}
ILLEGAL = [p for p in itertools.product(AlertState, AlertAction) if p not in DOCUMENTED]


def test_transitions_table_is_exactly_the_documented_lifecycle() -> None:
    legal = {(s, a) for a, (sources, _) in TRANSITIONS.items() for s in sources}
    assert legal == set(DOCUMENTED)
    assert set(TRANSITIONS) == set(AlertAction)


@pytest.mark.parametrize(("state", "action"), sorted(DOCUMENTED))
def test_every_legal_transition_leads_to_the_documented_state(
    state: AlertState, action: AlertAction
) -> None:
    assert next_state(state, action) is DOCUMENTED[state, action]


@pytest.mark.parametrize(("state", "action"), ILLEGAL)
def test_every_illegal_pair_is_refused_naming_action_state_and_alternatives(
    state: AlertState, action: AlertAction
) -> None:
    with pytest.raises(IllegalTransition) as info:
        next_state(state, action)
    msg = str(info.value)
    assert f"cannot {action.value} an alert that is {state.value}" in msg
    allowed = sorted(a.value for (s, a) in DOCUMENTED if s is state and a in OPERATOR_ACTIONS)
    if allowed:
        assert f"allowed from {state.value}: {', '.join(allowed)}" in msg
    else:
        assert f"{state.value} is final" in msg
    assert isinstance(info.value, ValueError)  # callers may catch it as a bad request


def test_illegal_pairs_cover_every_state() -> None:
    assert len(ILLEGAL) == len(AlertState) * len(AlertAction) - len(DOCUMENTED)
    assert {s for s, _ in ILLEGAL} == set(AlertState)


@pytest.mark.parametrize("state", [S.CLOSED, S.MERGED])
def test_final_states_refuse_everything_and_say_they_are_final(state: AlertState) -> None:
    for action in AlertAction:
        with pytest.raises(IllegalTransition, match=f"{state.value} is final"):
            next_state(state, action)


def test_hint_lists_only_operator_actions() -> None:
    # merge is legal from confirmed_fire, but it is the system's: not offered to operators
    with pytest.raises(IllegalTransition) as info:
        next_state(S.CONFIRMED_FIRE, A.ACKNOWLEDGE)
    assert str(info.value).endswith("allowed from confirmed_fire: resolve")
    with pytest.raises(IllegalTransition) as info:
        next_state(S.ACKNOWLEDGED, A.ACKNOWLEDGE)
    assert str(info.value).endswith(
        "allowed from acknowledged: confirm_fault, confirm_fire, mark_false_alarm, resolve"
    )


@pytest.mark.parametrize("state", [S.OPEN, S.ACKNOWLEDGED])
def test_escalate_keeps_the_state(state: AlertState) -> None:
    assert next_state(state, A.ESCALATE) is state
    assert TRANSITIONS[A.ESCALATE][1] is None


def test_operator_actions_exclude_the_systems() -> None:
    assert set(AlertAction) - {A.ESCALATE, A.MERGE} == OPERATOR_ACTIONS
    assert A.ESCALATE not in OPERATOR_ACTIONS
    assert A.MERGE not in OPERATOR_ACTIONS


def test_active_states() -> None:
    assert {S.OPEN, S.ACKNOWLEDGED, S.CONFIRMED_FIRE, S.CONFIRMED_FAULT} == ACTIVE_STATES
    # every way out of the active set ends somewhere inactive, and nothing inactive leads back
    for (state, _), target in DOCUMENTED.items():
        if state not in ACTIVE_STATES:
            assert target not in ACTIVE_STATES


@pytest.mark.parametrize(
    ("severity", "up"),
    [
        (Severity.LOW, Severity.MEDIUM),
        (Severity.MEDIUM, Severity.HIGH),
        (Severity.HIGH, Severity.CRITICAL),
        (Severity.CRITICAL, Severity.CRITICAL),
    ],
)
def test_escalated_goes_one_level_up_and_caps_at_critical(severity: Severity, up: Severity) -> None:
    assert escalated(severity) is up


@pytest.mark.parametrize(
    ("kind", "type_", "category"),
    [
        ("device_silent", "device_offline", AlertCategory.OFFLINE),
        ("device_offline", "device_offline", AlertCategory.OFFLINE),
        ("patrol_failed", "patrol_failed", AlertCategory.OFFLINE),
        ("fire_alarm", "fire_alarm", AlertCategory.FIRE),
        ("smoke", "smoke", AlertCategory.FIRE),
        ("port_overheat", "port_overheat", AlertCategory.FIRE),
        ("likely_real_fire", "likely_real_fire", AlertCategory.FIRE),
        ("panel_fault", "panel_fault", AlertCategory.FAULT),
        ("power_fault", "power_fault", AlertCategory.FAULT),
        ("transmission_fault", "transmission_fault", AlertCategory.FAULT),
        ("duty_check_missed", "duty_check_missed", AlertCategory.OFFLINE),
        ("false_alarm_storm", "false_alarm_storm", AlertCategory.UNIT),
        ("low_pressure", "low_pressure", AlertCategory.ANOMALY),
        ("something_new", "something_new", AlertCategory.ANOMALY),
    ],
)
def test_alert_type_and_category(kind: str, type_: str, category: AlertCategory) -> None:
    assert alert_type(kind) == type_
    assert category_of(alert_type(kind)) is category


def test_device_silent_and_device_offline_share_one_alert_type() -> None:
    assert alert_type("device_silent") == alert_type("device_offline")


@pytest.mark.parametrize("category", list(AlertCategory))
def test_only_fire_never_auto_resolves(category: AlertCategory) -> None:
    assert auto_resolves(category) is (category is not AlertCategory.FIRE)
