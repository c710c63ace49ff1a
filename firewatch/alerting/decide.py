"""What alerting does about an anomaly change or an overdue alert: pure functions from the
records (``core/alerts.py``) and the facts the service gathered through the store to
commands (``core/alert_commands.py``). No I/O, no clock: the caller passes the time.

Per anomaly change (the service calls them in this order, each on facts read just before):

* :func:`is_backfill` — an episode first seen long after it ended raises nothing;
* :func:`new_episode` — an episode no alert knows yet raises its alert or, for a fire
  alarm whose zone is already in fire (:func:`correlate_fire`), one critical
  ``likely_real_fire``; once that one is created, :func:`merge_into_correlated` folds the
  panel's plain fire alarm into it;
* :func:`refresh` — a changed episode of a known alert raises its severity or keeps its
  condition active;
* :func:`episode_ended` — when the last open evidence episode of an alert ends, its
  condition has cleared; every category but fire then resolves itself.

Per tick: :func:`escalations` — which open alerts nobody acknowledged in time, and to
which level of their severity's escalation policy (``core/escalation.py``) they go.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from firewatch.core.alert_commands import (
    AlertUpdate,
    Escalate,
    MergeInto,
    RaiseAlert,
    RefreshAlert,
    Resolve,
    SetCondition,
)
from firewatch.core.alerts import (
    Alert,
    AlertState,
    AnomalyChange,
    auto_resolves,
    category_of,
)
from firewatch.core.anomalies import SEVERITY_RANK
from firewatch.core.domain import Severity
from firewatch.core.escalation import EscalationLevel, EscalationPolicy

#: Episodes that ended longer ago than this when first seen (a fresh start over old
#: history) raise nothing: the alert list is for what needs attention now.
BACKFILL_S = 3600.0
FIRE_ALARM = "fire_alarm"
LIKELY_REAL_FIRE = "likely_real_fire"
ESCALATION_NOTE = "not acknowledged in time"
_ADDR = re.compile(r"(\d+)\s*$")


def zone_of(component: str, metadata: Mapping[str, Any]) -> str:
    """The zone of a panel component (``"point smoke detector 1004"``).

    From the device's registry metadata: an explicit ``zones`` map (address -> zone), or
    the addressing ``loop * 1000 + index`` with ``detectors_per_loop`` and
    ``zones_per_loop``; without either the whole panel is one zone.
    """
    m = _ADDR.search(component)
    if m is None:
        return "panel"
    addr = int(m[1])
    zones = metadata.get("zones")
    if isinstance(zones, Mapping) and str(addr) in zones:
        return str(zones[str(addr)])
    per_loop, per_zone = metadata.get("detectors_per_loop"), metadata.get("zones_per_loop")
    if isinstance(per_loop, int) and isinstance(per_zone, int) and per_loop and per_zone:
        size = max(1, per_loop // per_zone)
        return f"loop {addr // 1000} zone {(addr % 1000 - 1) // size + 1}"
    return "panel"


@dataclass(frozen=True, slots=True)
class FireFacts:
    """What correlating a new fire alarm needs to know about its panel."""

    metadata: Mapping[str, Any]  # the panel's registry metadata (its zones)
    likely_fire_active: bool  # the panel has an active likely_real_fire alert
    recent_components: Sequence[str]  # the panel's other fire alarms within the window
    window_s: float  # alert_correlation_window_s


# -- anomaly changes ------------------------------------------------------------------------


def is_backfill(change: AnomalyChange, now: float) -> bool:
    """An episode no alert knows that ended more than :data:`BACKFILL_S` before ``now``
    (Unix seconds): old history, not something to raise now."""
    return change.ended_at is not None and change.ended_at.timestamp() < now - BACKFILL_S


def correlate_fire(change: AnomalyChange, facts: FireFacts) -> RaiseAlert | None:
    """A fire alarm in a zone where another detector went into fire within the window, or
    on a panel whose likely real fire is still active: one critical ``likely_real_fire``
    raise, which merges the panel's plain fire alarm once it is created. None when this
    alarm stands alone."""
    zone = zone_of(change.component, facts.metadata)
    same_zone = {c for c in facts.recent_components if zone_of(c, facts.metadata) == zone}
    same_zone.discard(change.component)
    if not facts.likely_fire_active and not same_zone:
        return None
    text = (
        f"{len(same_zone) + 1} detectors in fire in {zone} within {facts.window_s / 60:.0f} min"
        f" (latest: {change.component}): likely a real fire"
    )
    return RaiseAlert(
        type=LIKELY_REAL_FIRE,
        severity=Severity.CRITICAL,
        unit_id=change.unit_id,
        device_id=change.device_id,
        seen_at=change.detected_at,
        explanation=text,
        anomaly_id=change.id,
        merge_active=FIRE_ALARM,
    )


def new_episode(change: AnomalyChange, fire: FireFacts | None = None) -> RaiseAlert:
    """The raise for an episode no alert knows yet: its own alert type on its device (an
    occurrence if that alert is active), unless it is a fire alarm that ``fire`` (the
    panel's facts, gathered for fire alarms) correlates."""
    if change.alert_type == FIRE_ALARM and fire is not None:
        correlated = correlate_fire(change, fire)
        if correlated is not None:
            return correlated
    return RaiseAlert(
        type=change.alert_type,
        severity=change.severity,
        unit_id=change.unit_id,
        device_id=change.device_id,
        seen_at=change.detected_at,
        explanation=change.explanation,
        anomaly_id=change.id,
    )


def merge_into_correlated(parent: Alert, plain_id: int | None, at: datetime) -> list[AlertUpdate]:
    """After a correlated raise created ``parent``: the panel's active plain fire alarm
    (``plain_id``; None if it has none) is folded into it."""
    if plain_id is None:
        return []
    note = f"correlated into likely real fire #{parent.id}"
    return [MergeInto(alert_id=plain_id, parent_id=parent.id, at=at, note=note)]


def refresh(change: AnomalyChange, alert: Alert | None) -> list[AlertUpdate]:
    """A new version of an episode that is evidence of ``alert`` (None: the alert is gone).
    An inactive alert is left alone; a higher severity raises the alert's; otherwise, while
    the episode lasts, the condition stays active with the episode's latest explanation."""
    if alert is None or not alert.active:
        return []
    if SEVERITY_RANK[change.severity] > SEVERITY_RANK[alert.severity]:
        return [
            RefreshAlert(
                type=alert.type,
                severity=change.severity,
                unit_id=alert.unit_id,
                device_id=alert.device_id,
                seen_at=change.last_at,
                explanation=change.explanation,
            )
        ]
    if change.ended_at is None:
        return [
            SetCondition(
                alert.id, active=True, seen_at=change.last_at, explanation=change.explanation
            )
        ]
    return []


def episode_ended(
    change: AnomalyChange, alert: Alert | None, *, open_evidence: int
) -> list[AlertUpdate]:
    """The episode ``change`` ended. While ``open_evidence`` other episodes of the alert are
    still open, nothing changes; after the last one, the active alert's condition has
    cleared, and it resolves itself unless it is a fire alert (an operator confirms or
    dismisses those)."""
    if open_evidence or alert is None or not alert.active:
        return []
    commands: list[AlertUpdate] = [SetCondition(alert.id, active=False, seen_at=change.last_at)]
    if auto_resolves(category_of(alert.type)):
        assert change.ended_at is not None
        note = f"condition cleared: {change.explanation}"
        commands.append(Resolve(alert.id, at=change.ended_at, note=note))
    return commands


# -- escalation -----------------------------------------------------------------------------


def escalation_due(
    alert: Alert, policy: EscalationPolicy, now: datetime, max_level: int | None
) -> EscalationLevel | None:
    """The level of ``policy`` (``core/escalation.py``) that is due for ``alert`` at
    ``now``, or None. Only open alerts escalate (acknowledging or deciding one stops its
    escalation); the next level is ``escalation_level + 1`` of the ladder of the alert's
    severity, due ``after_s`` after the last escalation or else after the alert was first
    seen. An alert at the end of its ladder, or at ``max_level``
    (``alert_max_escalation_level``, None: no extra cap), stays there."""
    if alert.state is not AlertState.OPEN:
        return None
    level = policy.level(alert.severity, alert.escalation_level + 1, max_level)
    if level is None:
        return None
    since = alert.escalated_at or alert.first_seen
    return level if since <= now - timedelta(seconds=level.after_s) else None


def escalations(
    alerts: Sequence[Alert], policy: EscalationPolicy, now: datetime, max_level: int | None
) -> list[Escalate]:
    """The escalations due at ``now``, in the order given: each due alert to its next level
    (its severity unchanged: the severity says how bad the problem is, the level how far
    its notification went). What the level notifies, and whether later levels follow at
    once because nobody could be reached, is ``alerting/escalation.py``'s."""
    out: list[Escalate] = []
    for a in alerts:
        level = escalation_due(a, policy, now, max_level)
        if level is not None:
            note = f"{ESCALATION_NOTE}: level {a.escalation_level + 1}, {level.describe()}"
            out.append(
                Escalate(
                    alert_id=a.id,
                    severity=a.severity,
                    level=a.escalation_level + 1,
                    at=now,
                    note=note,
                )
            )
    return out
