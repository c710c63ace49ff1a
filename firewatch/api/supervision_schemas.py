"""Response bodies of the supervision endpoints: ``/draws``, ``/inspections``, ``/hazards``,
``/credit`` and the public ``/public/...`` ones (docs/supervision.md, "API").

Public bodies carry no personal data: inspectors by public code, units by id, name and
street (organisations, not people), hazards without their free-text description.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class UnitRef(BaseModel):
    id: str
    name: str | None = None
    street: str | None = None


class DrawOut(BaseModel):
    """A draw. ``inputs`` and ``result`` are the published JSON: their canonical form
    (sorted keys, no whitespace, UTF-8) is what the hashes are of; anyone can verify the
    draw from this document alone (``firewatch supervise verify --file``)."""

    id: int
    period: str
    status: str = Field(description="committed, revealed, published or cancelled")
    algorithm: str
    inputs_hash: str = Field(description="SHA-256 of the canonical inputs, hex")
    seed_commitment: str = Field(description="SHA-256 of the 32-byte seed, hex")
    committed_at: datetime
    revealed_at: datetime | None
    published_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    inputs: dict[str, Any]
    seed: str | None = Field(description="hex; null until it may be shown")
    result: dict[str, Any] | None
    units: list[UnitRef] = Field(
        default_factory=list, description="The drawn units' names and streets (when shown)."
    )


class DrawSummaryOut(BaseModel):
    """A draw in a list (without its inputs and result)."""

    id: int
    period: str
    status: str
    algorithm: str
    inputs_hash: str
    seed_commitment: str
    committed_at: datetime
    revealed_at: datetime | None
    published_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    seed: str | None
    drawn: int | None = Field(description="Units drawn, when the result is shown.")


class HazardOut(BaseModel):
    id: int
    unit_id: str
    source: str
    inspection_id: int | None
    alert_id: int | None
    category: str
    severity: str = Field(description="major (重大火灾隐患) or general (一般火灾隐患)")
    description: str
    found_at: datetime
    deadline: datetime
    state: str = Field(description="open, submitted or verified")
    overdue: bool
    evidence: str | None
    submitted_at: datetime | None
    verified_at: datetime | None
    rejections: int
    reminders_sent: int
    escalation_level: int
    escalated_at: datetime | None


class HazardEventOut(BaseModel):
    action: str
    from_state: str | None
    to_state: str
    actor: str
    note: str
    at: datetime


class HazardDetailOut(BaseModel):
    hazard: HazardOut
    events: list[HazardEventOut]


class InspectionHazardOut(BaseModel):
    id: int
    category: str
    severity: str
    description: str
    deadline: datetime
    state: str
    verified_at: datetime | None


class InspectionOut(BaseModel):
    id: int
    unit: UnitRef
    draw_id: int | None
    inspected_at: datetime
    outcome: str = Field(description="passed, hazards_found or not_inspected")
    false_declaration: bool
    reinspection_of: int | None
    notes: str
    inspectors: list[str] = Field(description="Public codes.")
    hazards: list[InspectionHazardOut]


class PublicHazardOut(BaseModel):
    category: str
    severity: str
    deadline: datetime
    state: str
    verified_at: datetime | None


class PublicInspectionOut(BaseModel):
    """An inspection result as published: no notes, no descriptions, no names of people."""

    id: int
    unit: UnitRef
    draw_id: int | None
    inspected_at: datetime
    outcome: str
    false_declaration: bool
    reinspection_of: int | None
    inspectors: list[str] = Field(description="Public codes.")
    hazards: list[PublicHazardOut]


class CreditEventOut(BaseModel):
    from_status: str
    to_status: str
    rule: str = Field(description="What fired (overdue_major, ...), or manual.")
    reason: str
    actor: str
    at: datetime
    hazard_id: int | None
    inspection_id: int | None
    alert_id: int | None


class CreditOut(BaseModel):
    unit_id: str
    status: str = Field(description="good, watch or blacklisted")
    since: datetime | None
    reason: str
    actor: str
    events: list[CreditEventOut] = Field(default_factory=list)
