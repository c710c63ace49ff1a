"""Request and response bodies of the HTTP API (pydantic models: the OpenAPI schema).

An alert is one record, :class:`firewatch.core.alerts.Alert`: :class:`AlertOut` is that
record under the API's name, so the response cannot drift from what the store returns and
the live stream's ``payload.alert`` carries. The detail adds the evidence and the audit
trail as ``storage/alerts.py``'s ``alert_detail`` reads them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from firewatch.core.alerts import OPERATOR_ACTIONS, Alert, AlertAction

#: What an operator may send, in lifecycle order (the enum in the OpenAPI schema).
OPERATOR_ACTION_NAMES = tuple(a.value for a in AlertAction if a in OPERATOR_ACTIONS)
SYSTEM_ACTION_NAMES = tuple(a.value for a in AlertAction if a not in OPERATOR_ACTIONS)


class ActionRequest(BaseModel):
    """``POST /alerts/{id}/actions``: an operator's decision on an alert. Who acts is the
    authenticated person (recorded in the audit trail), never a field of the body: a body
    with ``actor`` is refused (422)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    action: Annotated[str, Field(json_schema_extra={"enum": list(OPERATOR_ACTION_NAMES)})]
    note: Annotated[str, Field(max_length=4000)] = ""

    @field_validator("action")
    @classmethod
    def _operator_action(cls, v: str) -> str:
        allowed = ", ".join(OPERATOR_ACTION_NAMES)
        if v in SYSTEM_ACTION_NAMES:
            raise ValueError(
                f"{v!r} is a system action (the alerting service does it), not an operator's;"
                f" allowed actions: {allowed}"
            )
        if v not in OPERATOR_ACTION_NAMES:
            raise ValueError(f"unknown action {v!r}; allowed actions: {allowed}")
        return v


class ClaimRequest(BaseModel):
    """``POST /alerts/{id}/claim`` and ``/release`` (the body is optional)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    force: bool = Field(
        default=False,
        description="Take over (or release) another seat's claim: shift leader and admin only.",
    )
    note: Annotated[str, Field(max_length=4000)] = ""


class AlertOut(Alert):
    """An alert (``alerts`` row)."""


class EvidenceOut(BaseModel):
    """An anomaly episode behind an alert."""

    id: int
    detector: str
    kind: str
    component: str
    severity: str
    started_at: datetime
    detected_at: datetime
    ended_at: datetime | None
    explanation: str


class TransitionOut(BaseModel):
    """One audited step of the alert's lifecycle: who, when, why."""

    action: str
    from_state: str | None
    to_state: str
    actor: str
    note: str
    at: datetime


class AlertDetailOut(BaseModel):
    alert: AlertOut
    evidence: list[EvidenceOut]
    transitions: list[TransitionOut]


class HealthOut(BaseModel):
    status: str = Field(description="ok, or unavailable (then the response is 503)")
    database: str
    stream_listener: str = Field(description="listening, or reconnecting (streams then poll)")
    stream_clients: int


class ErrorOut(BaseModel):
    detail: str
