"""Anomaly records: what a detector found. Analytics writes them, alerting reads them.

An anomaly is an *episode*: it opens when a detector's condition starts to hold on one
device (one metric, one component such as a charging port or a panel detector), is
updated while the condition lasts and closes (``ended_at``) when it clears. Its identity
is :class:`AnomalyKey`, which is also the database's unique key, so writing the same
episode twice (a replay after a restart) updates one row instead of adding a second.

Times are Unix seconds (``float``) here and ``timestamptz`` in the ``anomalies`` table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from firewatch.core.domain import Severity

SEVERITY_RANK: dict[Severity, int] = {
    Severity.LOW: 0,
    Severity.MEDIUM: 1,
    Severity.HIGH: 2,
    Severity.CRITICAL: 3,
}


class Origin(StrEnum):
    """Whether the device reported the condition itself or a detector inferred it."""

    REPORTED = "reported"  # panel status bits, the shed's smoke flag, a last will
    INFERRED = "inferred"  # statistics, rules on measured values, learned models


class AnomalyKey(NamedTuple):
    """Identity of one episode (the ``anomalies`` table's unique key)."""

    device_id: str
    detector: str
    metric: str
    component: str
    started_at: float


@dataclass(slots=True)
class Anomaly:
    """One anomaly episode as a detector reports it.

    ``detector`` names the algorithm (``rule.pressure_low``, ``stat.cusum``,
    ``model.iforest`` …); ``kind`` names the condition an operator sees and alerting
    deduplicates on (``low_pressure``, ``thermal_runaway_risk`` …). ``started_at`` and
    ``last_at`` are the device times of the first and latest points in the condition
    (server time for connectivity anomalies); ``detected_at`` is the server time at which
    the episode was raised; ``ended_at`` is ``None`` while the condition holds.
    ``revision`` grows with every change of the episode, so a replayed older version never
    overwrites a newer one in the database.
    """

    device_id: str
    unit_id: str
    detector: str
    kind: str
    metric: str
    component: str
    origin: Origin
    severity: Severity
    score: float
    started_at: float
    detected_at: float
    last_at: float
    explanation: str
    evidence: dict[str, Any] = field(default_factory=dict)
    ended_at: float | None = None
    model_version: int | None = None
    revision: int = 1

    @property
    def key(self) -> AnomalyKey:
        return AnomalyKey(
            self.device_id, self.detector, self.metric, self.component, self.started_at
        )

    @property
    def active(self) -> bool:
        return self.ended_at is None
