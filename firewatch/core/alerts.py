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

The records: :class:`Alert` (an ``alerts`` row; the API's response model is derived from it)
and :class:`AnomalyChange` (an anomaly episode as the alerting service reads it from the
change feed). What alerting decides about them is in ``core/alert_commands.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, WithJsonSchema

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
    {
        AlertState.OPEN,
        AlertState.ACKNOWLEDGED,
        AlertState.CONFIRMED_FIRE,
        AlertState.CONFIRMED_FAULT,
    }
)


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


class ClaimedByOther(Exception):
    """Another console seat holds the alert (``alerts.claimed_by``): an operator acts only on
    an alert that is unclaimed or theirs; a shift leader may take a claim over."""

    def __init__(self, alert_id: int, holder: str, since: datetime | None) -> None:
        at = f" since {since.isoformat(timespec='seconds')}" if since else ""
        super().__init__(f"alert {alert_id} is claimed by {holder}{at}")
        self.holder = holder
        self.since = since


def next_state(state: AlertState, action: AlertAction) -> AlertState:
    """The state ``action`` leads to from ``state``.

    Raises :class:`IllegalTransition` with a message naming the allowed actions.
    """
    sources, target = TRANSITIONS[action]
    if state not in sources:
        allowed = sorted(
            a.value for a, (src, _) in TRANSITIONS.items() if state in src and a in OPERATOR_ACTIONS
        )
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
    "transmission_fault": AlertCategory.FAULT,  # the UITD's line to the panel or to the center
    "device_offline": AlertCategory.OFFLINE,
    "patrol_failed": AlertCategory.OFFLINE,
    "mass_offline": AlertCategory.OFFLINE,
    "duty_check_missed": AlertCategory.OFFLINE,  # nobody answered at the control room
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


def _text(title: str) -> WithJsonSchema:
    """An enum field's JSON schema: a plain string, as the API has documented these fields
    since issue 5 (the values are the enum's; the database's CHECK constraints hold them)."""
    return WithJsonSchema({"type": "string", "title": title})


class Alert(BaseModel):
    """An ``alerts`` row: what the store returns, the live stream's ``payload.alert`` and the
    API's response (``api/schemas.py``: ``AlertOut`` is this record under the API's name)."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    type: str
    category: Annotated[AlertCategory, _text("Category")]
    severity: Annotated[Severity, _text("Severity")]
    unit_id: str
    device_id: str
    state: Annotated[AlertState, _text("State")]
    first_seen: datetime
    last_seen: datetime
    occurrences: int
    explanation: str
    condition_active: bool
    escalation_level: int
    escalated_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    parent_id: int | None
    created_at: datetime
    updated_at: datetime
    #: The console seat working on it (``POST /alerts/{id}/claim``): a username, and since when.
    claimed_by: str | None = None
    claimed_at: datetime | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Alert:
        """From a ``SELECT *`` row (other keys are ignored)."""
        return cls.model_validate(row)

    @property
    def active(self) -> bool:
        """Whether it is the one active alert of its ``(device_id, type)``."""
        return self.state in ACTIVE_STATES

    def to_json(self) -> dict[str, Any]:
        """The JSON the stream events and the outbox carry: times in ISO 8601 (with their
        offset), enums as their values."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            v = getattr(self, name)
            if isinstance(v, datetime):
                v = v.isoformat()
            elif isinstance(v, StrEnum):
                v = v.value
            out[name] = v
        return out


@dataclass(frozen=True, slots=True)
class AnomalyChange:
    """One committed version of an anomaly episode (``core/anomalies.py``) as the alerting
    service reads it from the ``anomalies`` change feed: what it raises, refreshes or
    clears. Times are the table's ``timestamptz`` values."""

    id: int
    device_id: str
    unit_id: str
    kind: str
    component: str
    severity: Severity
    detected_at: datetime
    last_at: datetime
    ended_at: datetime | None
    explanation: str

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> AnomalyChange:
        """From a feed row (an ``anomalies`` row; other keys are ignored)."""
        return cls(
            id=int(row["id"]),
            device_id=row["device_id"],
            unit_id=row["unit_id"],
            kind=row["kind"],
            component=row["component"],
            severity=Severity(row["severity"]),
            detected_at=row["detected_at"],
            last_at=row["last_at"],
            ended_at=row["ended_at"],
            explanation=row["explanation"],
        )

    @property
    def alert_type(self) -> str:
        """The type of alert this episode raises."""
        return alert_type(self.kind)

    @property
    def ended(self) -> bool:
        return self.ended_at is not None
