"""``/devices/{device_id}/duty-checks``: duty checks (查岗) of a panel connected through the
GB/T 26875.3 gateway (issue 17; docs/console.md, docs/registry.md).

A duty check asks the on-duty person at the unit's fire control room to press the answer
key on the panel's transmission device (GB 50440's remote patrol). ``POST`` queues one for
the gateway (202: it is sent when the gateway next reads the queue, at once when it is
listening) and answers the row; ``GET`` lists the panel's latest ones with their outcome.

Who may (``firewatch/core/access.py``): asking is ``duty_check``, the monitoring center's
seats that act on alerts; reading is ``device_read`` (a unit's manager its unit's panels, a
vendor its own devices: 403 outside the scope, also for an id nobody has).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, Field

from firewatch.api.deps import Conn, DeviceReader, DutyChecker
from firewatch.api.schemas import ErrorOut
from firewatch.core.access import Forbidden, check_device, unit_scope, vendor_scope
from firewatch.core.device_import import Conflict, NotFound
from firewatch.core.people import Person
from firewatch.storage import gateway as store
from firewatch.storage.device_health import device_owner

router = APIRouter(tags=["gateway"])

DeviceId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "outside your scope"},
    404: {"model": ErrorOut, "description": "no device has that id"},
}


class DutyCheckOut(BaseModel):
    """One duty check of a panel, and what became of it."""

    id: int
    device_id: str
    requested_by: str = Field(description="The username who asked, or 'schedule'.")
    requested_at: datetime
    state: Literal["queued", "sent", "closed"] = Field(
        description="queued: waiting for the gateway; sent: awaiting the answer; closed:"
        " see outcome"
    )
    sent_at: datetime | None
    outcome: Literal["answered", "late", "missed", "not_connected"] | None = Field(
        description="answered (in time), late, missed (no answer in time), not_connected (the"
        " panel had no connection to send it on); null while open"
    )
    answered_at: datetime | None
    closed_at: datetime | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> DutyCheckOut:
        state = (
            "closed"
            if row["closed_at"] is not None
            else "sent"
            if row["sent_at"] is not None
            else "queued"
        )
        return cls.model_validate({**row, "state": state})


def _seen(conn: Conn, person: Person, device_id: str) -> None:
    """404 for an unknown device to the unscoped roles; 403 unless ``person`` may see it
    (for a scoped role also when no device has that id: the scope reveals no ids)."""
    owner = device_owner(conn, device_id)
    if owner is None:
        if vendor_scope(person) is not None or unit_scope(person) is not None:
            raise Forbidden("that device is outside your scope")
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
    check_device(person, owner[0], owner[1])


@router.post(
    "/devices/{device_id}/duty-checks",
    response_model=DutyCheckOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **_ERRORS,
        409: {
            "model": ErrorOut,
            "description": "the device has no GB/T address (no downlink) or is decommissioned",
        },
    },
)
def request_duty_check(conn: Conn, person: DutyChecker, device_id: DeviceId) -> DutyCheckOut:
    """Queue a duty check of the panel for the gateway, asked by you; answers the row
    (202: its outcome comes later, read it with ``GET``). 409 for a device without a GB/T
    address (there is no downlink to send it on) or decommissioned."""
    _seen(conn, person, device_id)
    try:
        check_id = store.request_duty_check(conn, device_id, person.username)
    except NotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None
    except Conflict as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from None
    row = store.get_duty_check(conn, check_id)
    assert row is not None  # rows are never deleted
    return DutyCheckOut.of(row)


@router.get(
    "/devices/{device_id}/duty-checks", response_model=list[DutyCheckOut], responses=_ERRORS
)
def list_duty_checks(
    conn: Conn,
    person: DeviceReader,
    device_id: DeviceId,
    limit: Annotated[int, Query(ge=1, le=100, description="How many, newest first.")] = 20,
) -> list[DutyCheckOut]:
    """The panel's latest duty checks, newest first: asked when and by whom, sent when,
    and their outcome (empty for a device that never had one)."""
    _seen(conn, person, device_id)
    return [DutyCheckOut.of(r) for r in store.list_duty_checks(conn, device_id, limit)]
