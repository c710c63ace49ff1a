"""GB/T 26875.3 information objects -> the MQTT contract's panel events (docs/gateway.md,
docs/contract.md).

One object is one message on ``{topic_root}/{unit}/{device}/event``::

    {"seq": serial*256 + index + 1, "ts": "...Z", "type": kind, "system_type": ...,
     "system_addr": ..., "component_type": ..., "component_addr": ..., "status": ...,
     "operator": ..., "description": ..., "detail": {...}}

(``None`` fields left out). ``ts`` is the object's own time, else the frame's time tag, read
in the device's zone (its profile's UTC offset) and sent in UTC. The same frame sent twice
gives the same (device, ts, seq), so ingest stores it once.

Every message is validated with the contract's model (:class:`PanelEvent`) before it is
published; an object that fails is published as type ``raw`` with the reason and the
original fields in ``detail``: nothing a device sends is lost, and ingest never has to
dead-letter what the gateway built.

Clock sanity: a device time further ahead of the receive time than
``max_clock_skew_future_s``, or older than ``max_backlog_age_s``, would be refused by
ingest. Such an object gets the receive time as ``ts`` and its device time in
``detail["device_time"]`` (:attr:`Outgoing.skewed`: the session counts it and has the
device's clock set). Its ``seq`` stays, but a resent copy gets another receive time: the
one case where a duplicate frame can be stored twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from pydantic import ValidationError

from firewatch.core.contract import DETAIL_MAX_TEXT, PanelEvent, topic_for
from firewatch.core.domain import Channel
from firewatch.core.gbt_frame import Frame
from firewatch.core.gbt_objects import InfoObject
from firewatch.core.gbt_profiles import Profile

log = logging.getLogger(__name__)

#: Object kinds that only the center sends (downlink): from a device they are kept as raw
#: (a ``duty_check`` event from a device would read as a missed check).
DOWNLINK_KINDS = frozenset({"clock_sync", "duty_check"})


#: ``duty_check`` events the gateway makes itself number from here: above every frame
#: object's ``serial * 256 + index + 1`` (< 2**24), so the two can never share a ``seq``.
DUTY_SEQ_BASE = 1 << 32


@dataclass(frozen=True, slots=True)
class ClockLimits:
    """How far a device time may be from the receive time (the ingest contract's limits)."""

    future_s: float
    backlog_s: float


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish."""

    topic: str
    payload: bytes
    type: str  # the event type published (``raw`` when the object did not validate)
    skewed: bool = False  # the device time was replaced by the receive time


def device_zone(profile: Profile) -> timezone:
    """The fixed zone of the device's clock."""
    return timezone(timedelta(minutes=profile.utc_offset_minutes))


def device_now(profile: Profile, now: float) -> datetime:
    """Unix time ``now`` as the device's naive local time (what its clock should show)."""
    return datetime.fromtimestamp(now, device_zone(profile)).replace(tzinfo=None)


def to_utc(local: datetime, profile: Profile) -> datetime:
    """A naive device-local time as an aware UTC time."""
    return local.replace(tzinfo=device_zone(profile)).astimezone(UTC)


def iso_z(t: datetime) -> str:
    """RFC 3339 in UTC with ``Z``: whole seconds, milliseconds when there are any."""
    utc = t.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="milliseconds" if utc.microsecond else "seconds") + "Z"


def event_topic(root: str, unit_id: str, device_id: str) -> str:
    return topic_for(root, unit_id, device_id, Channel.EVENT)


def validated(payload: dict[str, Any]) -> bytes | str:
    """``payload`` as JSON if the contract accepts it, else the reason it does not."""
    data = orjson.dumps(payload)
    try:
        PanelEvent.model_validate_json(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return data


def translate_frame(
    frame: Frame,
    objects: Sequence[InfoObject],
    *,
    unit_id: str,
    device_id: str,
    profile: Profile,
    root: str,
    received: datetime,
    limits: ClockLimits,
) -> list[Outgoing]:
    """The messages of one data frame's ``objects`` (in their order), received at
    ``received`` (aware)."""
    topic = event_topic(root, unit_id, device_id)
    return [
        translate_object(
            obj,
            seq=frame.serial * 256 + index + 1,
            frame_time=frame.time,
            topic=topic,
            profile=profile,
            received=received,
            limits=limits,
        )
        for index, obj in enumerate(objects)
    ]


def translate_object(
    obj: InfoObject,
    *,
    seq: int,
    frame_time: datetime | None,
    topic: str,
    profile: Profile,
    received: datetime,
    limits: ClockLimits,
) -> Outgoing:
    """One object as one message (see the module docstring)."""
    detail: dict[str, Any] = dict(obj.detail)
    if obj.component_type is not None and obj.component_type in profile.component_types:
        # a vendor's own component code (128..254 are user-defined): name it, so that the
        # detectors' explanations and the console say what the component is
        detail["component_name"] = profile.component_types[obj.component_type]
    local = obj.time if obj.time is not None else frame_time
    skewed = False
    if local is None:
        ts = received
        detail["device_time"] = None  # the device sent no valid time
        skewed = True
    else:
        ts = to_utc(local, profile)
        ahead = (ts - received).total_seconds()
        if ahead > limits.future_s or -ahead > limits.backlog_s:
            detail["device_time"] = iso_z(ts)
            ts = received
            skewed = True
    payload: dict[str, Any] = {
        "seq": seq,
        "ts": iso_z(ts),
        "type": obj.kind,
        "system_type": obj.system_type,
        "system_addr": obj.system_addr,
        "component_type": obj.component_type,
        "component_addr": obj.component_addr,
        "status": obj.status,
        "operator": obj.operator,
        "description": obj.description,
        "detail": detail or None,
    }
    payload = {k: v for k, v in payload.items() if v is not None}
    if obj.kind in DOWNLINK_KINDS:
        return _raw(topic, payload, obj, "a center-only object type sent by a device", skewed)
    result = validated(payload)
    if isinstance(result, str):
        return _raw(topic, payload, obj, result, skewed)
    return Outgoing(topic, result, obj.kind, skewed)


def _raw(
    topic: str, original: dict[str, Any], obj: InfoObject, reason: str, skewed: bool
) -> Outgoing:
    """``original`` kept as a ``raw`` event: the reason, the object's type and kind, and its
    fields as JSON text (cut to the contract's string limit) in ``detail``."""
    fields = {k: v for k, v in original.items() if k not in ("seq", "ts")}
    detail: dict[str, Any] = {
        "reason": reason[:DETAIL_MAX_TEXT],
        "type_flag": obj.type_flag,
        "kind": obj.kind,
        "original": json.dumps(fields, ensure_ascii=False, default=str)[:DETAIL_MAX_TEXT],
    }
    original_detail = original.get("detail", {})
    if "device_time" in original_detail:
        detail["device_time"] = original_detail["device_time"]
    payload = {
        "seq": original["seq"],
        "ts": original["ts"],
        "type": "raw",
        "system_type": obj.system_type if 0 <= obj.system_type <= 255 else 0,
        "system_addr": obj.system_addr if 0 <= obj.system_addr <= 255 else 0,
        "status": 0,
        "detail": detail,
    }
    result = validated(payload)
    if isinstance(result, str):
        # Only a contract without the raw type gets here: send it anyway, ingest keeps it
        # as a dead letter (still not lost).
        log.error("a raw event does not validate either (%s): published as is", result)
        return Outgoing(topic, orjson.dumps(payload), "raw", skewed)
    return Outgoing(topic, result, "raw", skewed)


def duty_check_event(
    *,
    request_id: int,
    decided_at: datetime,
    status: int,
    asked_at: datetime,
    answered_at: datetime | None,
    timeout_s: float,
    requested_by: str,
) -> bytes:
    """The ``duty_check`` panel event of one check's outcome (docs/contract.md): status
    bit0 answered, bit1 late; ``seq`` is :data:`DUTY_SEQ_BASE` + the request id and ``ts`` the
    time of the decision, so a missed check answered late gives two distinct events."""
    payload: dict[str, Any] = {
        "seq": DUTY_SEQ_BASE + request_id,
        "ts": iso_z(decided_at),
        "type": "duty_check",
        "system_type": 0,
        "system_addr": 0,
        "status": status,
        "detail": {
            "asked_at": iso_z(asked_at),
            "answered_at": iso_z(answered_at) if answered_at is not None else None,
            "timeout_s": timeout_s,
            "requested_by": requested_by[:DETAIL_MAX_TEXT],
            "request_id": request_id,
        },
    }
    result = validated(payload)
    if isinstance(result, str):
        log.error("a duty_check event does not validate (%s): published as is", result)
        return orjson.dumps(payload)
    return result
