"""``/devices/{device_id}/credentials``: a device's broker login, issued, rotated and revoked
by its vendor or an admin (issue 14; docs/adr/0012-device-credentials.md).

``POST`` makes a new random password and answers it **once** (201): the database keeps only
the broker's hash, and the broker has the password before the answer leaves. A 503 means the
broker did not confirm: nothing was stored, and if the broker did apply it (only its answer
was lost) the old password no longer works there, so retry until you get a 201 (ADR 0012).
A second ``POST`` is a rotation: the old password stops working at once and whoever used it
is disconnected. ``DELETE`` revokes: the
broker disconnects the device and refuses it from then on (at once, or within a second by the
broker sync). ``GET`` tells whether a credential is in force, without any secret.

A vendor may do this for its own devices only (403 otherwise, as for every scoped record).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status

from firewatch.api.credential_schemas import CredentialOut, IssuedOut
from firewatch.api.deps import Conn, Context, CredentialWriter, DeviceReader
from firewatch.api.schemas import ErrorOut
from firewatch.core.access import Forbidden, check_device, unit_scope, vendor_scope
from firewatch.core.people import Person
from firewatch.registry import credentials as service
from firewatch.runtime.dynsec_control import ControlError
from firewatch.storage import credentials as store
from firewatch.storage.device_health import device_owner

log = logging.getLogger(__name__)
router = APIRouter(tags=["registry"])

DeviceId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "the device is not yours"},
    404: {"model": ErrorOut, "description": "no such device (or no credential, for DELETE)"},
}


def _own_device(conn: Conn, person: Person, device_id: str) -> str:
    """The device's unit after the scope check: 403 unless it is the caller's (for a scoped
    role also when no device has that id: the scope must not reveal which ids exist), 404
    for an unknown id to the unscoped roles."""
    owner = device_owner(conn, device_id)
    if owner is None:
        if vendor_scope(person) is not None or unit_scope(person) is not None:
            raise Forbidden("that device is outside your scope")
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
    check_device(person, owner[0], owner[1])
    return owner[0]


@router.post(
    "/devices/{device_id}/credentials",
    response_model=IssuedOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        **_ERRORS,
        409: {"model": ErrorOut, "description": "the device is decommissioned"},
        503: {"model": ErrorOut, "description": "the broker did not confirm: retry until 201"},
    },
)
def issue_credential(
    conn: Conn, ctx: Context, person: CredentialWriter, device_id: DeviceId
) -> IssuedOut:
    """Issue (or rotate) the device's broker password: shown in this answer only."""
    _own_device(conn, person, device_id)
    try:
        control = ctx.require_control().get()
        issued = service.issue(
            conn,
            control,
            device_id,
            actor=person.username,
            topic_root=ctx.settings.topic_root,
        )
    except service.NoSuchDevice as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None
    except service.Decommissioned as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from None
    except (service.BrokerUnavailable, ControlError) as err:
        log.warning("credential of %s not issued: %s", device_id, err)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the broker did not confirm the new password, so none was stored; retry until "
            f"you get one (201): {err}",
        ) from None
    return IssuedOut(
        device_id=issued.device_id,
        unit_id=issued.unit_id,
        username=issued.username,
        client_id=issued.client_id,
        password=issued.password,
        version=issued.version,
        publish_topics=[f"{issued.topic_prefix}{ch}" for ch in ("telemetry", "event", "status")],
        command_topic=f"{issued.topic_prefix}command",
    )


@router.get("/devices/{device_id}/credentials", response_model=CredentialOut, responses=_ERRORS)
def get_credential(conn: Conn, person: DeviceReader, device_id: DeviceId) -> CredentialOut:
    """Whether the device has a credential in force, its version and who issued or revoked
    it; never the password (it was shown once)."""
    _own_device(conn, person, device_id)
    row = store.credential_of(conn, device_id)
    if row is None:
        return CredentialOut(device_id=device_id, state="none")
    return CredentialOut(
        device_id=device_id,
        state="revoked" if row["revoked_at"] is not None else "active",
        version=row["version"],
        issued_at=row["issued_at"],
        issued_by=row["issued_by"],
        revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"],
    )


@router.delete(
    "/devices/{device_id}/credentials",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ERRORS,
)
def revoke_credential(
    conn: Conn, ctx: Context, person: CredentialWriter, device_id: DeviceId
) -> Response:
    """Revoke the device's broker login: it is disconnected and refused from now on."""
    _own_device(conn, person, device_id)
    try:
        control = ctx.require_control().get()
    except ControlError:
        control = None  # the broker sync applies it when the broker is back
    try:
        revoked = service.revoke(conn, control, device_id, actor=person.username)
    except service.NoSuchDevice as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None
    if not revoked:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"device {device_id!r} has no credential in force"
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
