"""``/dead-letters`` and ``/devices/{id}/conformance``: what a vendor needs to bring its
devices onto the contract (issue 14; docs/vendor-check.md).

Who may (``firewatch/core/access.py``): the monitoring center and vendors. A vendor sees
only its own devices: the dead-letter list is filtered to the devices registered with its
name (forced, whatever the filters say), and the conformance report of another vendor's
device is 403. The center sees every dead letter, those whose topic names no registered
device included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from firewatch.api.deps import Conn, Context, DeadLetterReader, DeviceChecker
from firewatch.api.schemas import ErrorOut
from firewatch.api.vendor_schemas import ConformanceOut, DeadLetterOut
from firewatch.core.access import Forbidden, check_device, vendor_scope
from firewatch.core.conformance import check
from firewatch.core.conformance_report import Limits
from firewatch.core.contract import ID_PATTERN
from firewatch.core.dead_letter_help import DEAD_LETTER_REASONS
from firewatch.storage import conformance as store

router = APIRouter(tags=["vendor tools"])

#: The longest window one conformance report covers (a day).
MAX_MINUTES = 1440
UNPROCESSABLE = 422


@router.get(
    "/dead-letters",
    response_model=list[DeadLetterOut],
    responses={422: {"model": ErrorOut, "description": "a bad filter"}},
)
def list_dead_letters(
    conn: Conn,
    ctx: Context,
    person: DeadLetterReader,
    device: Annotated[
        str | None,
        Query(
            pattern=ID_PATTERN,
            description="A device id (the topic's device segment).",
        ),
    ] = None,
    reason: Annotated[
        str | None,
        Query(max_length=64, description="A dead-letter reason (docs/vendor-check.md)."),
    ] = None,
    since: Annotated[
        datetime | None, Query(description="Received at or after (ISO 8601 with offset).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    payload_bytes: Annotated[
        int, Query(ge=0, le=65_536, description="Bytes of each payload to return.")
    ] = 1024,
) -> list[DeadLetterOut]:
    """Refused messages, newest first, with why and their raw bytes (base64, and as text
    when UTF-8). A vendor gets only its own devices' (a dead letter whose topic names a
    device nobody registered is the center's to see)."""
    if reason is not None and reason not in DEAD_LETTER_REASONS:
        known = ", ".join(sorted(DEAD_LETTER_REASONS))
        raise HTTPException(UNPROCESSABLE, f"unknown reason {reason!r} (one of: {known})")
    if since is not None and since.tzinfo is None:
        raise HTTPException(UNPROCESSABLE, "since needs a UTC offset (Z, +08:00)")
    rows = store.dead_letters(
        conn,
        topic_root=ctx.settings.topic_root,
        vendor=vendor_scope(person),
        device_id=device,
        reason=reason,
        since=since,
        limit=limit,
        payload_cap=payload_bytes,
    )
    return [DeadLetterOut.of(r) for r in rows]


@router.get(
    "/devices/{device_id}/conformance",
    response_model=ConformanceOut,
    responses={
        403: {"model": ErrorOut, "description": "not your device (or, to a vendor, no such id)"},
        404: {"model": ErrorOut, "description": "no registered device has that id"},
    },
)
def device_conformance(
    conn: Conn,
    ctx: Context,
    person: DeviceChecker,
    device_id: Annotated[str, Path(min_length=1, max_length=200, description="A device id.")],
    minutes: Annotated[
        int, Query(ge=1, le=MAX_MINUTES, description="The window: the last N minutes.")
    ] = 15,
) -> ConformanceOut:
    """The device's conformance report over the last ``minutes`` (receive time), from what
    is stored: per channel what arrived, its intervals and clock offset; the sequence's gaps,
    repeats and restarts; its dead letters by reason; and the findings in plain words."""
    dev = store.device(conn, device_id)
    if dev is None:
        if vendor_scope(person) is not None:  # the scope must not reveal which ids exist
            raise Forbidden("that device is outside your scope")
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
    check_device(person, dev.unit_id, dev.vendor)
    settings = ctx.settings
    until = datetime.now(UTC)
    since = until - timedelta(minutes=minutes)
    seen = store.traffic(
        conn,
        dev.id,
        since,
        until,
        topic_root=settings.topic_root,
        max_backlog=timedelta(seconds=settings.max_backlog_age_s),
        max_ahead=timedelta(seconds=settings.max_clock_skew_future_s),
    )
    report = check(
        dev,
        seen.messages,
        seen.dead_letters,
        since,
        until,
        Limits.of(settings),
        truncated=seen.truncated,
    )
    return ConformanceOut.model_validate(report.to_json())
