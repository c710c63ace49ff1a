"""``/alerts``: list, detail, operator actions and the live stream (SSE)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Path, Query, status

from firewatch.api.deps import Conn, Context
from firewatch.api.schemas import ActionRequest, AlertDetailOut, AlertOut, ErrorOut
from firewatch.api.stream import AlertStreamResponse, BadPosition
from firewatch.core.alerts import Alert, AlertAction, AlertState, IllegalTransition
from firewatch.storage import alerts as store

router = APIRouter(prefix="/alerts", tags=["alerts"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no alert has that id"}
}

#: Alert ids are PostgreSQL ``bigint`` identities: anything outside cannot be an alert.
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The alert's id.")]


def _out(alert: Alert) -> AlertOut:
    return AlertOut.model_validate(alert)


@router.get("", response_model=list[AlertOut])
def list_alerts(
    conn: Conn,
    state: Annotated[
        list[AlertState] | None,
        Query(description="Repeat for several states; default: the active ones."),
    ] = None,
    unit_id: Annotated[str | None, Query(min_length=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlertOut]:
    """Alerts, newest first (by first seen); by default the active ones."""
    alerts = store.list_alerts(
        conn, states=[s.value for s in state] if state else None, unit_id=unit_id, limit=limit
    )
    return [_out(a) for a in alerts]


@router.get(
    "/stream",
    response_class=AlertStreamResponse,
    status_code=status.HTTP_200_OK,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "the alert event stream"},
        400: {"model": ErrorOut, "description": "Last-Event-ID is not a position"},
    },
)
async def stream_alerts(
    ctx: Context,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[
        str | None, Query(description="For clients that cannot send the Last-Event-ID header.")
    ] = None,
    since: Annotated[
        Literal["now", "beginning"],
        Query(description="Without a last event id: only new events, or all retained ones."),
    ] = "now",
) -> AlertStreamResponse:
    """Server-Sent Events of every alert change: ``id: <xid-id>``, ``event: <what
    happened>`` (created, occurrence, updated, acknowledge, confirm_fire, …), ``data:
    <payload JSON>`` with the alert as it is after the change.

    Resuming with ``Last-Event-ID`` (the header a browser's EventSource sends on reconnect;
    it takes precedence over ``?last_event_id=``, which the browser keeps resending
    unchanged) delivers every event after that id, in order, none missed or repeated.
    """
    hub = ctx.require_hub()
    token = last_event_id_header if last_event_id_header is not None else last_event_id
    try:
        start = await hub.start_position(token, since)
    except BadPosition as err:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(err)) from None
    return AlertStreamResponse(hub, start)


@router.get("/{alert_id}", response_model=AlertDetailOut, responses=_NOT_FOUND)
def get_alert(conn: Conn, alert_id: AlertId) -> AlertDetailOut:
    """The alert with its evidence (anomaly episodes) and its audit trail."""
    try:
        detail = store.alert_detail(conn, alert_id)
    except store.AlertNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}") from None
    return AlertDetailOut.model_validate(detail)


@router.post(
    "/{alert_id}/actions",
    response_model=AlertOut,
    responses={
        **_NOT_FOUND,
        409: {"model": ErrorOut, "description": "the action is not allowed in this state"},
    },
)
def act_on_alert(conn: Conn, alert_id: AlertId, body: ActionRequest) -> AlertOut:
    """An operator's action: the alert moves through its lifecycle with an audit row (who,
    note), a stream event and its notifications, atomically. 409 names what is allowed
    from the alert's state."""
    try:
        alert = store.apply_action(
            conn, alert_id, AlertAction(body.action), actor=body.actor, note=body.note
        )
    except store.AlertNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}") from None
    except IllegalTransition as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from None
    return _out(alert)
