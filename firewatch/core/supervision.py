"""Supervision records shared by the supervision worker, the CLI, the API and risk scoring:
inspections, hazards (fire hazards found, as work orders with a deadline) and the per-unit
hazard summary that risk reads. Pure: no SQL, no clock (times are passed in).

A hazard's life (docs/supervision.md, "Hazards")::

    open ──submit (evidence)──▶ submitted ──verify──▶ verified (closed)
      ▲                              │
      └──────────reject──────────────┘

It is *overdue* when its deadline has passed and it is not verified. The supervision worker
reminds the unit before the deadline (:func:`reminder_due`) and escalates an overdue hazard
one level per interval (:func:`escalation_due`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class SupervisionError(ValueError):
    """A request the supervision records refuse, with a message saying why (the CLI prints
    it as one line, the API answers 4xx with it)."""


class NotFound(SupervisionError, LookupError):
    """No draw, inspection, hazard, inspector or unit has that id."""


class Conflict(SupervisionError):
    """The request contradicts the records' state (a live draw exists, a hazard is final)."""


class HazardSeverity(StrEnum):
    """重大火灾隐患 (major) and 一般火灾隐患 (general)."""

    MAJOR = "major"
    GENERAL = "general"


class HazardState(StrEnum):
    OPEN = "open"
    SUBMITTED = "submitted"  # the unit submitted rectification evidence
    VERIFIED = "verified"  # a supervisor verified the rectification: closed


class HazardSource(StrEnum):
    INSPECTION = "inspection"
    DEVICE_FAULT = "device_fault"  # an alert an operator confirmed as a fault


class HazardAction(StrEnum):
    SUBMIT = "submit"
    VERIFY = "verify"
    REJECT = "reject"


class InspectionOutcome(StrEnum):
    PASSED = "passed"  # no hazard found
    HAZARDS_FOUND = "hazards_found"
    NOT_INSPECTED = "not_inspected"  # closed, no access: recorded, to be drawn again


#: Hazard categories (``hazards.category``; a CHECK constraint in migration 0010 holds them).
HAZARD_CATEGORIES = (
    "fire_exits",  # evacuation routes and exits blocked, locked or missing signs
    "fire_facilities",  # alarm, sprinkler, hydrant or smoke control disabled or faulty
    "fire_water",  # fire water supply: pressure, tanks, pumps, valves
    "electrical",  # wiring, overloads, unsafe appliances
    "ebike_charging",  # e-bikes charged or parked indoors, in corridors or exits
    "flammables",  # storage and use of flammable materials
    "fire_separation",  # fire compartments, fire doors, penetrations
    "management",  # fire-safety duties, patrols, training, records
    "other",
)

#: action -> (states it may start from, state it leads to)
HAZARD_TRANSITIONS: dict[HazardAction, tuple[frozenset[HazardState], HazardState]] = {
    HazardAction.SUBMIT: (frozenset({HazardState.OPEN}), HazardState.SUBMITTED),
    HazardAction.VERIFY: (
        frozenset({HazardState.OPEN, HazardState.SUBMITTED}),
        HazardState.VERIFIED,
    ),
    HazardAction.REJECT: (frozenset({HazardState.SUBMITTED}), HazardState.OPEN),
}


class IllegalHazardTransition(Conflict):
    """The action is not allowed from the hazard's state."""


def next_hazard_state(state: HazardState, action: HazardAction) -> HazardState:
    """The state ``action`` leads to; raises :class:`IllegalHazardTransition` naming what is
    allowed. ``verify`` from ``open`` is a re-inspection that finds the hazard rectified."""
    sources, target = HAZARD_TRANSITIONS[action]
    if state not in sources:
        allowed = sorted(a.value for a, (src, _) in HAZARD_TRANSITIONS.items() if state in src)
        hint = f"allowed: {', '.join(allowed)}" if allowed else f"{state.value} is final"
        raise IllegalHazardTransition(
            f"cannot {action.value} a hazard that is {state.value}; {hint}"
        )
    return target


@dataclass(frozen=True)
class Hazard:
    """A ``hazards`` row."""

    id: int
    unit_id: str
    source: HazardSource
    inspection_id: int | None
    alert_id: int | None
    category: str
    severity: HazardSeverity
    description: str
    found_at: datetime
    deadline: datetime
    state: HazardState
    evidence: str | None
    submitted_at: datetime | None
    verified_at: datetime | None
    verified_by: str | None
    rejections: int
    reminders_sent: int
    escalation_level: int
    escalated_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> Hazard:
        """From a ``SELECT *`` row (a mapping; other keys are ignored)."""
        return cls(
            id=int(row["id"]),
            unit_id=row["unit_id"],
            source=HazardSource(row["source"]),
            inspection_id=row["inspection_id"],
            alert_id=row["alert_id"],
            category=row["category"],
            severity=HazardSeverity(row["severity"]),
            description=row["description"],
            found_at=row["found_at"],
            deadline=row["deadline"],
            state=HazardState(row["state"]),
            evidence=row["evidence"],
            submitted_at=row["submitted_at"],
            verified_at=row["verified_at"],
            verified_by=row["verified_by"],
            rejections=int(row["rejections"]),
            reminders_sent=int(row["reminders_sent"]),
            escalation_level=int(row["escalation_level"]),
            escalated_at=row["escalated_at"],
        )

    def overdue(self, now: datetime) -> bool:
        return self.state is not HazardState.VERIFIED and now > self.deadline

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            out[name] = v.isoformat() if isinstance(v, datetime) else v
        return out


@dataclass(frozen=True)
class NewHazard:
    """A hazard as an inspector (or a confirmed fault) reports it; the deadline comes from
    the severity (:func:`deadline_for`) unless given."""

    category: str
    severity: HazardSeverity
    description: str
    deadline: datetime | None = None

    def __post_init__(self) -> None:
        if self.category not in HAZARD_CATEGORIES:
            raise ValueError(
                f"unknown hazard category {self.category!r}; known: {', '.join(HAZARD_CATEGORIES)}"
            )
        if not self.description.strip():
            raise ValueError("a hazard needs a description")


def deadline_for(severity: HazardSeverity, found_at: datetime, days: dict[str, float]) -> datetime:
    """The rectification deadline of a hazard found at ``found_at``: ``days[severity]``
    later (``supervision_deadline_days``)."""
    return found_at + timedelta(days=days[severity.value])


# -- time-driven decisions (the supervision worker's tick) --------------------------------------


def reminder_due(hazard: Hazard, now: datetime, before_s: Sequence[float]) -> int | None:
    """The reminder count the hazard should have reached, when a reminder is due now, else
    None. ``before_s``: seconds before the deadline at which to remind (any order). Several
    thresholds passed at once (the worker was down) make one reminder, not a burst; none is
    sent once the deadline has passed (escalation takes over) or when evidence waits for
    verification."""
    if hazard.state is not HazardState.OPEN or now >= hazard.deadline:
        return None
    left = (hazard.deadline - now).total_seconds()
    passed = sum(1 for b in before_s if left <= b)
    return passed if passed > hazard.reminders_sent else None


def escalation_due(hazard: Hazard, now: datetime, interval_s: float, max_level: int) -> int | None:
    """The escalation level an overdue hazard should have reached, when above its current
    one, else None: level 1 once the deadline has passed, one more per ``interval_s`` after
    it, at most ``max_level``."""
    if hazard.state is HazardState.VERIFIED or now <= hazard.deadline:
        return None
    late = (now - hazard.deadline).total_seconds()
    level = min(max_level, 1 + math.floor(late / interval_s))
    return level if level > hazard.escalation_level else None


# -- what risk reads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HazardSummary:
    """A unit's supervision record as of a time (``storage/hazards.hazard_summary``), for
    risk scoring: open hazards by severity, how many are overdue and how old the oldest
    open one is; inspections, hazards found and false self-declarations in the 365 days up
    to that time; the unit's credit status then."""

    unit_id: str
    open_major: int = 0
    open_general: int = 0
    overdue: int = 0
    oldest_open_days: float = 0.0
    inspections_365d: int = 0
    hazards_365d: int = 0
    false_declarations_365d: int = 0
    credit_status: str = "good"


# -- draws, inspectors, inspections as stored -----------------------------------------------------


class DrawStatus(StrEnum):
    COMMITTED = "committed"  # inputs, their hash and the seed's commitment stored
    REVEALED = "revealed"  # the seed and the result stored (supervisors see them)
    PUBLISHED = "published"  # the seed and result are public
    CANCELLED = "cancelled"  # with a reason; its seed and result are public too


@dataclass(frozen=True)
class DrawRecord:
    """A ``draws`` row. ``inputs`` and ``result`` are the canonical JSON text as stored
    (exactly the bytes hashed); the seed is in ``draw_seeds`` until the reveal."""

    id: int
    period: str
    status: DrawStatus
    algorithm: str
    inputs: str
    inputs_hash: str
    seed_commitment: str
    committed_at: datetime
    committed_by: str
    seed: str | None
    result: str | None
    revealed_at: datetime | None
    revealed_by: str | None
    published_at: datetime | None
    published_by: str | None
    cancelled_at: datetime | None
    cancelled_by: str | None
    cancel_reason: str | None

    @classmethod
    def of(cls, row: Any) -> DrawRecord:
        values = {name: row[name] for name in cls.__dataclass_fields__}
        values["status"] = DrawStatus(row["status"])
        return cls(**values)

    @property
    def seed_public(self) -> bool:
        """Whether the seed and result may be served to anyone: once published, and for a
        cancelled draw (so a cancellation cannot hide a result someone disliked)."""
        return self.seed is not None and self.status in (
            DrawStatus.PUBLISHED,
            DrawStatus.CANCELLED,
        )


@dataclass(frozen=True)
class Inspector:
    """An ``inspectors`` row (name and phone are personal data: never public)."""

    id: int
    code: str
    name: str
    phone: str
    organisation: str
    active: bool


@dataclass(frozen=True)
class Tie:
    inspector_code: str
    unit_id: str
    kind: str
    note: str = ""
