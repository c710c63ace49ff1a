"""Recording inspections and working hazards (docs/supervision.md, "Inspections" and
"Hazards"): the write side that the CLI calls today and the API will call once operators
authenticate.

An inspection report (:class:`InspectionReport`, from a TOML or JSON file with
:func:`read_report`) names the unit, the inspectors (public codes), the time, the outcome,
whether a false self-declaration was found, the hazards found, and for a re-inspection the
hazards it verified or rejected. :func:`record_inspection` checks it against the records
and stores it in one transaction:

* a unit drawn in a draw is inspected by the inspectors drawn for it, unless the report
  gives a ``substitution`` reason (kept in the notes); a unit not in the draw is refused;
* no inspector with a declared tie to the unit may inspect it, draw or not;
* each hazard gets its deadline from its severity (``supervision_deadline_days``) unless
  the report sets one.
"""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import psycopg
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from firewatch.core.settings import Settings
from firewatch.core.supervision import (
    Conflict,
    DrawStatus,
    Hazard,
    HazardAction,
    HazardSeverity,
    HazardSource,
    InspectionOutcome,
    NewHazard,
    SupervisionError,
    deadline_for,
)
from firewatch.storage import draws as draw_store
from firewatch.storage import hazards as hazard_store
from firewatch.storage import inspections as store
from firewatch.storage import inspectors as inspector_store
from firewatch.storage.regions import unit_exists
from firewatch.storage.supervision_feed import AlertDecision, device_kind

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class HazardIn(BaseModel):
    """A hazard as the inspector reports it."""

    model_config = ConfigDict(extra="forbid")

    category: str
    severity: HazardSeverity
    description: Text
    deadline: datetime | None = None


class InspectionReport(BaseModel):
    """An inspection as recorded (the file ``supervise inspect`` reads)."""

    model_config = ConfigDict(extra="forbid")

    unit: Text
    inspected_at: datetime
    inspectors: list[Text] = Field(min_length=1)
    draw: int | None = Field(default=None, ge=1)
    outcome: InspectionOutcome | None = None
    false_declaration: bool = False
    notes: str = ""
    substitution: str | None = None
    reinspection_of: int | None = Field(default=None, ge=1)
    verified: list[int] = Field(default_factory=list)
    rejected: list[int] = Field(default_factory=list)
    hazards: list[HazardIn] = Field(default_factory=list)


def read_report(path: Path) -> InspectionReport:
    """A report from a ``.toml`` or ``.json`` file; :class:`SupervisionError` saying what
    is wrong (``OSError`` for a file that cannot be read)."""
    text = path.read_text("utf-8")
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise SupervisionError(f"{path}: not valid {kind}: {err}") from None
    try:
        return InspectionReport.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "the report"
        raise SupervisionError(f"{path}: {where}: {first['msg']}") from None


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise SupervisionError(f"time {t.isoformat()} needs an offset (e.g. +08:00)")
    return t


def _outcome(report: InspectionReport) -> InspectionOutcome:
    found = InspectionOutcome.HAZARDS_FOUND if report.hazards else InspectionOutcome.PASSED
    if report.outcome is None:
        return found
    if report.outcome is InspectionOutcome.NOT_INSPECTED:
        if report.hazards or report.false_declaration or report.verified or report.rejected:
            raise SupervisionError("a unit not inspected has no findings")
        return report.outcome
    if report.outcome is not found:
        raise SupervisionError(
            f"outcome {report.outcome.value} does not match the report: "
            f"{len(report.hazards)} hazards listed"
        )
    return found


def _check_draw(conn: psycopg.Connection[Any], report: InspectionReport) -> str:
    """The notes to add: a substitution reason; raises when the draw does not allow it."""
    if report.draw is None:
        return ""
    draw = draw_store.get_draw(conn, report.draw)
    if draw.status not in (DrawStatus.REVEALED, DrawStatus.PUBLISHED) or draw.result is None:
        raise Conflict(f"draw {draw.id} is {draw.status.value}: its inspections cannot be recorded")
    drawn = {u["id"]: u["inspectors"] for u in json.loads(draw.result)["units"]}
    if report.unit not in drawn:
        raise SupervisionError(f"unit {report.unit} was not drawn in draw {draw.id}")
    if sorted(drawn[report.unit]) == sorted(report.inspectors):
        return ""
    if not (report.substitution or "").strip():
        raise SupervisionError(
            f"draw {draw.id} drew {', '.join(drawn[report.unit])} for {report.unit}, not "
            f"{', '.join(report.inspectors)}; give a substitution reason to record it"
        )
    return f"substitution: {report.substitution.strip() if report.substitution else ''}"


def record_inspection(
    conn: psycopg.Connection[Any], settings: Settings, report: InspectionReport, *, actor: str
) -> tuple[int, list[Hazard]]:
    """Store the inspection, its hazards and the re-inspection's verdicts in one
    transaction (see the module docstring); the inspection's id and the new hazards."""
    at = _aware(report.inspected_at)
    outcome = _outcome(report)
    new = [
        NewHazard(h.category, h.severity, h.description, h.deadline and _aware(h.deadline))
        for h in _checked(report.hazards)
    ]
    with conn.transaction():
        if not unit_exists(conn, report.unit):
            raise SupervisionError(f"no unit {report.unit!r}")
        if len(set(report.inspectors)) != len(report.inspectors):
            raise SupervisionError("an inspector is listed twice")
        ids = inspector_store.inspector_ids(conn, report.inspectors)
        tied = inspector_store.tied_codes(conn, report.unit) & set(report.inspectors)
        if tied:
            raise SupervisionError(
                f"{', '.join(sorted(tied))} declared a tie to {report.unit} and may not inspect it"
            )
        again = report.reinspection_of
        if again is not None and store.inspection_unit(conn, again) != report.unit:
            raise SupervisionError(f"inspection {again} was not of {report.unit}")
        extra = _check_draw(conn, report)
        notes = "\n".join(x for x in (report.notes.strip(), extra) if x)
        inspection_id = store.insert_inspection(
            conn,
            unit_id=report.unit,
            draw_id=report.draw,
            inspected_at=at,
            outcome=outcome.value,
            false_declaration=report.false_declaration,
            reinspection_of=report.reinspection_of,
            notes=notes,
            actor=actor,
            inspector_ids=[ids[c] for c in report.inspectors],
        )
        note = f"re-inspection {inspection_id}"
        for hazard_id, action in [
            *((h, HazardAction.VERIFY) for h in report.verified),
            *((h, HazardAction.REJECT) for h in report.rejected),
        ]:
            if hazard_store.get_hazard(conn, hazard_id).unit_id != report.unit:
                raise SupervisionError(f"hazard {hazard_id} is not of {report.unit}")
            hazard_store.apply_hazard_action(conn, hazard_id, action, actor=actor, at=at, note=note)
        created = []
        for h in new:
            deadline = h.deadline or deadline_for(
                h.severity, at, settings.supervision_deadline_days
            )
            if deadline <= at:
                raise SupervisionError(f"hazard deadline {deadline.isoformat()} is not after {at}")
            hazard = hazard_store.insert_hazard(
                conn,
                unit_id=report.unit,
                source=HazardSource.INSPECTION,
                new=h,
                found_at=at,
                deadline=deadline,
                actor=actor,
                inspection_id=inspection_id,
            )
            assert hazard is not None
            created.append(hazard)
    return inspection_id, created


def _checked(hazards: list[HazardIn]) -> list[HazardIn]:
    for h in hazards:
        try:
            NewHazard(h.category, h.severity, h.description)
        except ValueError as err:
            raise SupervisionError(str(err)) from None
    return hazards


def act_on_hazard(
    conn: psycopg.Connection[Any],
    hazard_id: int,
    action: HazardAction,
    *,
    actor: str,
    at: datetime | None = None,
    note: str = "",
    evidence: str | None = None,
) -> Hazard:
    """A unit submits rectification evidence, a supervisor verifies or rejects it (a
    rejection needs a note saying what is missing)."""
    if action is HazardAction.SUBMIT and not (evidence or "").strip():
        raise SupervisionError("a submission needs the rectification evidence")
    if action is HazardAction.REJECT and not note.strip():
        raise SupervisionError("a rejection needs a note saying what is missing")
    when = at or datetime.now(UTC)
    return hazard_store.apply_hazard_action(
        conn, hazard_id, action, actor=actor, at=when, note=note.strip(), evidence=evidence
    )


def hazard_from_fault(
    conn: psycopg.Connection[Any], settings: Settings, decision: AlertDecision
) -> Hazard | None:
    """The work order for an alert an operator confirmed as a fault (one per alert; None
    when it exists, or when the alert's unit is not registered)."""
    if not unit_exists(conn, decision.unit_id):
        return None
    kind = device_kind(conn, decision.device_id) or ""
    category = settings.supervision_fault_categories.get(kind, "fire_facilities")
    new = NewHazard(
        category=category,
        severity=HazardSeverity.GENERAL,
        description=f"confirmed device fault on {decision.device_id} ({decision.type}): "
        f"{decision.explanation}",
    )
    days = settings.supervision_deadline_days[HazardSeverity.GENERAL.value]
    return hazard_store.insert_hazard(
        conn,
        unit_id=decision.unit_id,
        source=HazardSource.DEVICE_FAULT,
        new=new,
        found_at=decision.at,
        deadline=decision.at + timedelta(days=days),
        actor=decision.actor or "system",
        alert_id=decision.alert_id,
    )
