"""What the alerting service decides: commands, produced by the pure decision functions
(``alerting/decide.py``) and applied through the alert store (``storage/alerts.py``) in the
transaction of the change or tick that caused them.

Each command is one change of one alert with its audit row, stream event and
notifications (the store writes those). A command names its alert by id, except a raise,
which names it by ``(device_id, type)``: whether it opens a new alert or counts an
occurrence of the active one is the database's decision (its partial unique index), so
that racing writers make one alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from firewatch.core.domain import Severity


@dataclass(frozen=True, slots=True)
class RaiseAlert:
    """Open an alert of ``type`` on the device, or count an occurrence of the active one;
    ``anomaly_id`` becomes its evidence. The severity never goes down.

    ``merge_active``: when this raise *creates* the alert, the device's active alert of
    that type (if any) is merged into it — a correlated fire takes over the panel's plain
    fire alarm (:func:`firewatch.alerting.decide.merge_into_correlated`)."""

    type: str
    severity: Severity
    unit_id: str
    device_id: str
    seen_at: datetime
    explanation: str
    anomaly_id: int | None
    merge_active: str | None = None

    @property
    def correlates(self) -> bool:
        return self.merge_active is not None


@dataclass(frozen=True, slots=True)
class RefreshAlert:
    """A changed episode raised the active alert's severity: set it (and the explanation
    and last seen) without counting a new occurrence."""

    type: str
    severity: Severity
    unit_id: str
    device_id: str
    seen_at: datetime
    explanation: str


@dataclass(frozen=True, slots=True)
class SetCondition:
    """Whether the alert's condition still holds; ``explanation`` None keeps the old one,
    ``seen_at`` moves last seen forward (never back)."""

    alert_id: int
    active: bool
    seen_at: datetime
    explanation: str | None = None


@dataclass(frozen=True, slots=True)
class Resolve:
    """The system resolves the alert (its condition cleared). Refused without effect when
    the alert moved on meanwhile: an operator's decision stands."""

    alert_id: int
    at: datetime
    note: str


@dataclass(frozen=True, slots=True)
class MergeInto:
    """Fold the alert into the correlated alert ``parent_id``."""

    alert_id: int
    parent_id: int
    at: datetime
    note: str


@dataclass(frozen=True, slots=True)
class Escalate:
    """Nobody acknowledged the alert in time: severity up to ``severity``, escalation
    level to ``level``, the supervisor notified."""

    alert_id: int
    severity: Severity
    level: int
    at: datetime
    note: str


#: The commands on an alert that exists (all but a raise, whose result decides what follows).
AlertUpdate = RefreshAlert | SetCondition | Resolve | MergeInto | Escalate
#: Every command the decision functions produce.
AlertCommand = RaiseAlert | AlertUpdate
