"""``/draws``, ``/inspections``, ``/hazards``, ``/credit``: the supervisors' read side of
focused supervision (docs/supervision.md, "API").

Read-only: draws are made, inspections recorded and hazards worked with the CLI
(``firewatch supervise ...``) until operators authenticate (the write functions are in
``firewatch/supervision/``, ready for the API). These endpoints show a revealed draw's
seed and result before they are public, so they belong on the operators' network like
``/alerts``; what may face the public is under ``/public`` (``routes/public.py``). Even
here inspectors appear by code only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status

from firewatch.api.deps import Conn, HazardReader, SupervisionReader
from firewatch.api.schemas import ErrorOut
from firewatch.api.supervision_schemas import (
    CreditEventOut,
    CreditOut,
    DrawOut,
    DrawSummaryOut,
    HazardDetailOut,
    HazardEventOut,
    HazardOut,
    InspectionOut,
    UnitRef,
)
from firewatch.core.access import check_unit, unit_scope
from firewatch.core.supervision import DrawRecord, Hazard, NotFound
from firewatch.storage import credit as credit_store
from firewatch.storage import draws as draw_store
from firewatch.storage import hazards as hazard_store
from firewatch.storage import inspections as inspection_store
from firewatch.supervision.draws import draw_document

router = APIRouter(tags=["supervision"])

Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
UnitId = Annotated[str, Path(min_length=1, max_length=200, description="A unit id.")]
Limit = Annotated[int, Query(ge=1, le=1000)]
DrawStatusName = Literal["committed", "revealed", "published", "cancelled"]
HazardStateName = Literal["open", "submitted", "verified"]


def _404(what: str) -> dict[int | str, dict[str, Any]]:
    return {404: {"model": ErrorOut, "description": f"no {what} has that id"}}


def draw_out(conn: Any, draw: DrawRecord, *, public: bool) -> DrawOut:
    """The draw document (``supervision/draws.py``) with the drawn units' names."""
    doc = draw_document(draw, public=public)
    ids = [u["id"] for u in (doc["result"] or {}).get("units", [])]
    refs = draw_store.unit_refs(conn, ids) if ids else {}
    units = [
        UnitRef(id=i, name=refs.get(i, (None, None))[0], street=refs.get(i, (None, None))[1])
        for i in ids
    ]
    return DrawOut.model_validate({**doc, "units": units})


def draw_summary(draw: DrawRecord, *, public: bool) -> DrawSummaryOut:
    doc = draw_document(draw, public=public)
    drawn = len(doc["result"].get("units", [])) if doc["result"] else None
    return DrawSummaryOut.model_validate({**doc, "drawn": drawn})


@router.get("/draws", response_model=list[DrawSummaryOut])
def list_draws(
    conn: Conn,
    _person: SupervisionReader,
    period: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    state: Annotated[list[DrawStatusName] | None, Query(alias="status")] = None,
    limit: Limit = 100,
) -> list[DrawSummaryOut]:
    """Draws, newest first (a revealed draw with its seed)."""
    draws = draw_store.list_draws(conn, period=period, statuses=state, limit=limit)
    return [draw_summary(d, public=False) for d in draws]


@router.get("/draws/{draw_id}", response_model=DrawOut, responses=_404("draw"))
def get_draw(conn: Conn, _person: SupervisionReader, draw_id: Id) -> DrawOut:
    """A draw with its inputs, and its seed and result once revealed."""
    try:
        return draw_out(conn, draw_store.get_draw(conn, draw_id), public=False)
    except NotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None


def inspection_out(row: dict[str, Any]) -> InspectionOut:
    unit = UnitRef(id=row["unit_id"], name=row["unit_name"], street=row["street"])
    return InspectionOut.model_validate({**row, "unit": unit, "hazards": _json(row["hazards"])})


def _json(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


@router.get("/inspections", response_model=list[InspectionOut])
def list_inspections(
    conn: Conn,
    _person: SupervisionReader,
    unit: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    inspector: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            description="Only inspections this inspector (by code) took part in: an "
            "inspector's day, with their username as the code.",
        ),
    ] = None,
    draw: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Limit = 100,
) -> list[InspectionOut]:
    """Inspections, newest first, with their hazards."""
    rows = inspection_store.list_inspections(
        conn, unit_id=unit, draw_id=draw, inspector=inspector, limit=limit
    )
    return [inspection_out(r) for r in rows]


@router.get(
    "/inspections/{inspection_id}", response_model=InspectionOut, responses=_404("inspection")
)
def get_inspection(conn: Conn, _person: SupervisionReader, inspection_id: Id) -> InspectionOut:
    try:
        return inspection_out(inspection_store.get_inspection(conn, inspection_id))
    except NotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None


def hazard_out(h: Hazard, now: datetime) -> HazardOut:
    return HazardOut.model_validate({**h.to_json(), "overdue": h.overdue(now)})


@router.get("/hazards", response_model=list[HazardOut])
def list_hazards(
    conn: Conn,
    person: HazardReader,
    unit: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    state: Annotated[list[HazardStateName] | None, Query()] = None,
    overdue: Annotated[bool, Query(description="Only hazards past their deadline.")] = False,
    limit: Limit = 100,
) -> list[HazardOut]:
    """Hazards (work orders), newest first; ``overdue``: past the deadline, not verified.
    A unit's manager gets its own unit's: the hazards it has to rectify."""
    now = datetime.now(UTC)
    own = unit_scope(person)
    if own is not None and unit not in (None, own):
        return []
    hazards = hazard_store.list_hazards(
        conn, unit_id=own or unit, states=state, overdue_at=now if overdue else None, limit=limit
    )
    return [hazard_out(h, now) for h in hazards]


@router.get("/hazards/{hazard_id}", response_model=HazardDetailOut, responses=_404("hazard"))
def get_hazard(conn: Conn, person: HazardReader, hazard_id: Id) -> HazardDetailOut:
    """A hazard with every step of it: found, submitted, verified, rejected, reminded,
    escalated (who, when, why)."""
    try:
        h = hazard_store.get_hazard(conn, hazard_id)
    except NotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None
    check_unit(person, h.unit_id)
    events = [HazardEventOut.model_validate(e) for e in hazard_store.hazard_events(conn, hazard_id)]
    return HazardDetailOut(hazard=hazard_out(h, datetime.now(UTC)), events=events)


@router.get("/credit", response_model=list[CreditOut])
def list_credit(
    conn: Conn,
    person: HazardReader,
    state: Annotated[
        list[Literal["good", "watch", "blacklisted"]] | None,
        Query(alias="status", description="Default: watch and blacklisted."),
    ] = None,
) -> list[CreditOut]:
    """Units by credit status (default: the watch list and the blacklist); a unit's
    manager: its own unit, if listed."""
    own = unit_scope(person)
    return [
        CreditOut(
            unit_id=c.unit_id, status=c.status.value, since=c.since, reason=c.reason, actor=c.actor
        )
        for c in credit_store.list_credit(conn, state)
        if own is None or c.unit_id == own
    ]


@router.get("/units/{unit_id}/credit", response_model=CreditOut, responses=_404("unit"))
def get_credit(conn: Conn, person: HazardReader, unit_id: UnitId) -> CreditOut:
    """A unit's credit status and every change of it (reason, actor, time), newest first."""
    check_unit(person, unit_id)
    try:
        c = credit_store.get_credit(conn, unit_id)
    except NotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None
    events = [CreditEventOut.model_validate(e) for e in credit_store.credit_events(conn, unit_id)]
    return CreditOut(
        unit_id=unit_id,
        status=c.status.value,
        since=c.since,
        reason=c.reason,
        actor=c.actor,
        events=events,
    )
