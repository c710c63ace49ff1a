"""Alerts: the operator's unit of work, shared by alerting (writes) and the API (reads, acts).

An alert is one problem on one device: a fire alarm, a fault, an anomaly, a device gone
silent. Anomaly episodes (``core/anomalies.py``) are its evidence; repeats of the same
problem while it is *active* increment the alert's occurrence count instead of raising a
new one — the database enforces one active alert per ``(device_id, type)``.

The lifecycle (GB 50440's workflow: an alarm arrives, the operator checks with the unit's
control room, confirms a real fire — forwarded to the fire command center at once — or
marks a false alarm; faults go to maintenance)::

    open ──acknowledge──▶ acknowledged
    open | acknowledged ──confirm_fire──▶ confirmed_fire ──resolve──▶ resolved ──close──▶ closed
    open | acknowledged ──mark_false_alarm──▶ false_alarm ──close──▶ closed
    open | acknowledged ──confirm_fault──▶ confirmed_fault ──resolve──▶ resolved
    open | acknowledged ──resolve──▶ resolved          (the condition cleared, or the operator)
    any active state ──merge──▶ merged                 (folded into a correlated alert)

``escalate`` (not acknowledged in time) keeps the state and raises the severity. Any other
move is refused with :class:`IllegalTransition`, which names what is allowed instead.
"""

from __future__ import annotations

from enum import StrEnum

from firewatch.core.domain import Severity


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CONFIRMED_FIRE = "confirmed_fire"
    FALSE_ALARM = "false_alarm"
    CONFIRMED_FAULT = "confirmed_fault"
    RESOLVED = "resolved"
    CLOSED = "closed"
    MERGED = "merged"


#: States in which an alert is *active*: at most one per (device, type), repeats count.
ACTIVE_STATES = frozenset(
    {AlertState.OPEN, AlertState.ACKNOWLEDGED, AlertState.CONFIRMED_FIRE,
     AlertState.CONFIRMED_FAULT}
)  # fmt: skip


class AlertAction(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    CONFIRM_FIRE = "confirm_fire"
    MARK_FALSE_ALARM = "mark_false_alarm"
    CONFIRM_FAULT = "confirm_fault"
    RESOLVE = "resolve"
    CLOSE = "close"
    ESCALATE = "escalate"  # system: not acknowledged in time; state unchanged
    MERGE = "merge"  # system: folded into a correlated alert


_UNTRIAGED = frozenset({AlertState.OPEN, AlertState.ACKNOWLEDGED})

#: action -> (states it may start from, state it leads to; None = unchanged)
TRANSITIONS: dict[AlertAction, tuple[frozenset[AlertState], AlertState | None]] = {
    AlertAction.ACKNOWLEDGE: (frozenset({AlertState.OPEN}), AlertState.ACKNOWLEDGED),
    AlertAction.CONFIRM_FIRE: (_UNTRIAGED, AlertState.CONFIRMED_FIRE),
    AlertAction.MARK_FALSE_ALARM: (_UNTRIAGED, AlertState.FALSE_ALARM),
    AlertAction.CONFIRM_FAULT: (_UNTRIAGED, AlertState.CONFIRMED_FAULT),
    AlertAction.RESOLVE: (
        _UNTRIAGED | {AlertState.CONFIRMED_FIRE, AlertState.CONFIRMED_FAULT},
        AlertState.RESOLVED,
    ),
    AlertAction.CLOSE: (
        frozenset({AlertState.RESOLVED, AlertState.FALSE_ALARM}),
        AlertState.CLOSED,
    ),
    AlertAction.ESCALATE: (_UNTRIAGED, None),
    AlertAction.MERGE: (ACTIVE_STATES, AlertState.MERGED),
}

#: Actions an operator may take (the rest belong to the system).
OPERATOR_ACTIONS = frozenset(TRANSITIONS) - {AlertAction.ESCALATE, AlertAction.MERGE}


class IllegalTransition(ValueError):
    """The action is not allowed from the alert's current state."""


def next_state(state: AlertState, action: AlertAction) -> AlertState:
    """The state ``action`` leads to from ``state``.

    Raises :class:`IllegalTransition` with a message naming the allowed actions.
    """
    sources, target = TRANSITIONS[action]
    if state not in sources:
        allowed = sorted(a.value for a, (src, _) in TRANSITIONS.items()
                         if state in src and a in OPERATOR_ACTIONS)  # fmt: skip
        hint = (
            f"allowed from {state.value}: {', '.join(allowed)}"
            if allowed
            else (f"{state.value} is final")
        )
        raise IllegalTransition(f"cannot {action.value} an alert that is {state.value}; {hint}")
    return state if target is None else target


class AlertCategory(StrEnum):
    """What kind of problem an alert is; decides auto-resolution and who is notified."""

    FIRE = "fire"  # fire alarms, smoke, thermal runaway: never auto-resolved
    FAULT = "fault"  # equipment faults reported by devices: maintenance
    ANOMALY = "anomaly"  # detector findings on measured values
    OFFLINE = "offline"  # device silent, last will, patrol check failed
    UNIT = "unit"  # unit-level conditions (too many false alarms a day)


#: Alert type for anomaly kinds whose alert type differs from the kind (several detectors
#: that see one problem share one alert type, so dedup makes them one alert).
ALERT_TYPE_OF_KIND: dict[str, str] = {
    "device_silent": "device_offline",
    "device_offline": "device_offline",
}

#: Category of each alert type (types not listed: ANOMALY).
CATEGORY_OF_TYPE: dict[str, AlertCategory] = {
    "fire_alarm": AlertCategory.FIRE,
    "likely_real_fire": AlertCategory.FIRE,
    "smoke": AlertCategory.FIRE,
    "port_overheat": AlertCategory.FIRE,
    "rapid_temperature_rise": AlertCategory.FIRE,
    "panel_fault": AlertCategory.FAULT,
    "component_isolated": AlertCategory.FAULT,
    "supervisory_signal": AlertCategory.FAULT,
    "power_fault": AlertCategory.FAULT,
    "bus_fault": AlertCategory.FAULT,
    "device_offline": AlertCategory.OFFLINE,
    "patrol_failed": AlertCategory.OFFLINE,
    "mass_offline": AlertCategory.OFFLINE,
    "false_alarm_storm": AlertCategory.UNIT,
}


def alert_type(kind: str) -> str:
    """The alert type an anomaly of ``kind`` raises."""
    return ALERT_TYPE_OF_KIND.get(kind, kind)


def category_of(type_: str) -> AlertCategory:
    return CATEGORY_OF_TYPE.get(type_, AlertCategory.ANOMALY)


def auto_resolves(category: AlertCategory) -> bool:
    """Whether an alert of this category resolves itself when its condition clears (a fire
    alarm never does: an operator must confirm or dismiss it)."""
    return category is not AlertCategory.FIRE


def escalated(severity: Severity) -> Severity:
    """One level up (critical stays critical)."""
    order = [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]
    return order[min(order.index(severity) + 1, len(order) - 1)]
