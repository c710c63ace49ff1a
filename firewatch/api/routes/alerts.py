"""``/alerts``: list, detail, claims, operator actions and the live stream (SSE).

Who may (``firewatch/core/access.py``): the monitoring center (operator, shift leader,
admin) reads and acts; a supervisor reads; a unit's manager reads only its own unit's
alerts (the list and the stream are filtered, another unit's alert is 403). The actor of a
claim or an action is the authenticated person, never anything in the body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Path, Query, status

from firewatch.api.deps import AlertActor, AlertReader, Conn, Context
from firewatch.api.schemas import ActionRequest, AlertDetailOut, AlertOut, ClaimRequest, ErrorOut
from firewatch.api.stream import AlertStreamResponse, BadPosition
from firewatch.core.access import Access, allowed, check_unit, unit_scope
from firewatch.core.alerts import Alert, AlertAction, AlertState, ClaimedByOther, IllegalTransition
from firewatch.core.people import Person
from firewatch.storage import alert_claims as claims
from firewatch.storage import alerts as store

router = APIRouter(prefix="/alerts", tags=["alerts"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no alert has that id"}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorOut,
        "description": "not allowed in the alert's state, or another seat holds the alert",
    }
}

#: Alert ids are PostgreSQL ``bigint`` identities: anything outside cannot be an alert.
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The alert's id.")]


def _out(alert: Alert) -> AlertOut:
    return AlertOut.model_validate(alert)


@router.get("", response_model=list[AlertOut])
def list_alerts(
    conn: Conn,
    person: AlertReader,
    state: Annotated[
        list[AlertState] | None,
        Query(description="Repeat for several states; default: the active ones."),
    ] = None,
    unit_id: Annotated[str | None, Query(min_length=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlertOut]:
    """Alerts, newest first (by first seen); by default the active ones. A unit's manager
    gets its own unit's only (``unit_id`` of another unit: an empty list)."""
    own = unit_scope(person)
    if own is not None and unit_id not in (None, own):
        return []
    alerts = store.list_alerts(
        conn,
        states=[s.value for s in state] if state else None,
        unit_id=own or unit_id,
        limit=limit,
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
    person: AlertReader,
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
    A unit's manager receives only its own unit's alerts.
    """
    hub = ctx.require_hub()
    token = last_event_id_header if last_event_id_header is not None else last_event_id
    try:
        start = await hub.start_position(token, since)
    except BadPosition as err:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(err)) from None
    return AlertStreamResponse(hub, start, unit_scope(person))


def _found(conn: Conn, alert_id: int) -> Alert:
    alert = store.find_alert(conn, alert_id)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
    return alert


@router.get("/{alert_id}", response_model=AlertDetailOut, responses=_NOT_FOUND)
def get_alert(conn: Conn, person: AlertReader, alert_id: AlertId) -> AlertDetailOut:
    """The alert with its evidence (anomaly episodes) and its audit trail (who did what,
    claims included)."""
    check_unit(person, _found(conn, alert_id).unit_id)
    try:
        detail = store.alert_detail(conn, alert_id)
    except store.AlertNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}") from None
    return AlertDetailOut.model_validate(detail)


@router.post(
    "/{alert_id}/actions",
    response_model=AlertOut,
    responses={**_NOT_FOUND, **_CONFLICT},
)
def act_on_alert(
    conn: Conn, person: AlertActor, alert_id: AlertId, body: ActionRequest
) -> AlertOut:
    """An operator's action: the alert moves through its lifecycle with an audit row (the
    authenticated person, the note), a stream event and its notifications, atomically. 409
    names what is allowed from the alert's state, or who holds the alert when another seat
    claimed it."""
    try:
        alert = store.apply_action(
            conn, alert_id, AlertAction(body.action), actor=person.username, note=body.note
        )
    except store.AlertNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}") from None
    except (IllegalTransition, ClaimedByOther) as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from None
    return _out(alert)


def _claiming(
    change: Callable[..., Alert], conn: Conn, person: Person, alert_id: int, body: ClaimRequest
) -> AlertOut:
    """``claims.claim`` or ``claims.release`` as ``person``, with the route's answers."""
    if body.force and not allowed(person, Access.ALERTS_TAKE_OVER):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role {person.role.value!r} may not take over another seat's alert "
            "(shift_leader, admin)",
        )
    try:
        alert = change(conn, alert_id, actor=person.username, force=body.force, note=body.note)
    except store.AlertNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}") from None
    except (claims.NotClaimable, ClaimedByOther) as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from None
    return _out(alert)


@router.post(
    "/{alert_id}/claim",
    response_model=AlertOut,
    responses={**_NOT_FOUND, **_CONFLICT},
)
def claim_alert(
    conn: Conn, person: AlertActor, alert_id: AlertId, body: ClaimRequest | None = None
) -> AlertOut:
    """This seat works the alert: no other seat may act on it until it is released. Claiming
    an alert you hold changes nothing; one another seat holds is 409 naming them, unless a
    shift leader sends ``force`` (a take-over, audited). An alert no longer active is 409."""
    return _claiming(claims.claim, conn, person, alert_id, body or ClaimRequest())


@router.post(
    "/{alert_id}/release",
    response_model=AlertOut,
    responses={**_NOT_FOUND, **_CONFLICT},
)
def release_alert(
    conn: Conn, person: AlertActor, alert_id: AlertId, body: ClaimRequest | None = None
) -> AlertOut:
    """Give the alert back to the queue. Another seat's claim: 409, unless a shift leader
    sends ``force``. Releasing an unclaimed alert changes nothing."""
    return _claiming(claims.release, conn, person, alert_id, body or ClaimRequest())
