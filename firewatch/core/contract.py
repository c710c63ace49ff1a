"""The device contract, version 1: topics and JSON payloads (docs/contract.md shows examples).

Topic: ``{topic_root}/{unit_id}/{device_id}/{channel}`` with ``topic_root`` = ``firewatch/v1``.
Every payload is a JSON object with ``seq`` (per-device counter) and ``ts`` (the device's
time, RFC 3339 with an offset, or Unix seconds/milliseconds). Models are strict: a string
where a number belongs is a wrong type, not something to guess at. Unknown extra keys are
ignored so that vendors can add fields without breaking ingest.

Physical ranges are deliberately wide: they reject impossible readings (a sensor fault or a
unit mix-up), not unusual ones. Detectors decide what is unusual.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from firewatch.core.domain import BYTE_STATUS_TYPES, Channel, DeviceKind, PanelEventType

CONTRACT_VERSION = 1
ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_ID_RE = re.compile(ID_PATTERN)

Seq = Annotated[int, Field(ge=0, lt=2**63)]
DeviceTime = Annotated[AwareDatetime, Field(strict=False)]


def _storable_text(value: str) -> str:
    """Refuse what PostgreSQL ``text`` cannot hold: NUL, and unpaired surrogates (which
    have no UTF-8 form). Every string field of the contract goes through this, so such a
    message is a dead letter at the door instead of a failed COPY."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must not contain unpaired surrogates") from None
    return value


#: A string the database can store (see :func:`_storable_text`); max length per field.
Text = Annotated[str, AfterValidator(_storable_text)]


#: ``detail`` of a panel event: at most 16 keys of ``[a-z_]{1,32}``, flat (no nested objects
#: or lists). See :func:`_detail_value` for the values.
DETAIL_MAX_KEYS = 16
# 2,048: a raw object carries its whole application data unit (at most 1,024 bytes) in hex.
DETAIL_MAX_TEXT = 2048
DetailScalar = str | bool | int | float | None


def _detail_value(value: object) -> DetailScalar:
    """One ``detail`` value: a string of at most 2,048 characters that the database can store
    (as :data:`Text`), a boolean, an integer that fits in 64 bits, a finite number, or null.
    The error types are pydantic's own, so ingest's dead-letter reasons are the usual ones
    (``not_finite``, ``out_of_range``, ``wrong_type``, ``invalid``)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise PydanticCustomError(
                "less_than", "Input should fit in 64 bits (less than 2**63 in magnitude)"
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PydanticCustomError("finite_number", "Input should be a finite number")
        return value
    if isinstance(value, str):
        if len(value) > DETAIL_MAX_TEXT:
            raise PydanticCustomError(
                "string_too_long", f"String should have at most {DETAIL_MAX_TEXT} characters"
            )
        return _storable_text(value)
    raise PydanticCustomError(
        "detail_value_type", "Input should be a string, a number, a boolean or null"
    )


DetailKey = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")]
DetailValue = Annotated[
    DetailScalar,
    PlainValidator(_detail_value),
    WithJsonSchema(
        {"anyOf": [{"type": t} for t in ("string", "integer", "number", "boolean", "null")]}
    ),
]
Detail = Annotated[dict[DetailKey, DetailValue], Field(max_length=DETAIL_MAX_KEYS)]


def is_valid_id(value: str) -> bool:
    """True if ``value`` is usable as a unit or device id inside a topic."""
    # fullmatch: with match, '$' also matches before a trailing newline, so "D-1\n" passed
    return bool(_ID_RE.fullmatch(value))


class _Payload(BaseModel):
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", frozen=True)

    seq: Seq
    ts: DeviceTime
    device_id: Text | None = Field(
        default=None, description="Optional; if present it must equal the topic's device id."
    )


class WaterTelemetry(_Payload):
    """Fire-water pressure point, tank or pump room."""

    pressure_kpa: float = Field(ge=-101.3, le=10_000.0, description="Gauge pressure, kPa.")
    level_m: float | None = Field(default=None, ge=0.0, le=100.0, description="Tank level, m.")
    pump_running: bool | None = None
    jockey_running: bool | None = None
    room_temp_c: float | None = Field(default=None, ge=-60.0, le=100.0)


class ChargingPort(BaseModel):
    """One charging port of an e-bike shed."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", frozen=True)

    port: int = Field(ge=1, le=1024)
    temp_c: float = Field(ge=-60.0, le=400.0, description="Socket/battery temperature, °C.")
    current_a: float = Field(ge=0.0, le=100.0, description="Charging current, A.")
    charging: bool


class EbikeShedTelemetry(_Payload):
    """E-bike charging shed: ambient, smoke and per-port readings."""

    ambient_c: float | None = Field(default=None, ge=-60.0, le=150.0)
    smoke: bool | None = None
    ports: list[ChargingPort] = Field(default_factory=list, max_length=256)

    @model_validator(mode="after")
    def _unique_ports(self) -> EbikeShedTelemetry:
        numbers = [p.port for p in self.ports]
        if len(set(numbers)) != len(numbers):
            raise ValueError("port numbers must be unique within one message")
        return self


class PanelEvent(_Payload):
    """A fire alarm control panel event with GB/T 26875.3 semantics.

    ``system_status`` is also sent periodically as the panel's heartbeat status.
    """

    type: PanelEventType = Field(strict=False)
    system_type: int = Field(ge=0, le=255)
    system_addr: int = Field(ge=0, le=255)
    component_type: int | None = Field(default=None, ge=0, le=255)
    component_addr: int | None = Field(default=None, ge=0, le=2**32 - 1)
    status: int = Field(
        ge=0,
        le=0xFFFF,
        description="16-bit status word (8-bit for operation, transmission_status and "
        "transmission_operation; 0 for a type without one).",
    )
    operator: int | None = Field(default=None, ge=0, le=255)
    description: Text | None = Field(default=None, max_length=256)
    detail: Detail | None = Field(
        default=None,
        description="What a type carries beyond the status word (analog value, version, "
        "clock, duty-check times …): at most 16 flat key/value pairs.",
    )

    @model_validator(mode="after")
    def _component_fields(self) -> PanelEvent:
        if self.type is PanelEventType.COMPONENT_STATUS and (
            self.component_type is None or self.component_addr is None
        ):
            raise ValueError("component_status needs component_type and component_addr")
        if self.type in BYTE_STATUS_TYPES and self.status > 0xFF:
            if self.type is PanelEventType.OPERATION:
                raise ValueError("an operation word has 8 bits")
            raise ValueError(f"a {self.type.value} word has 8 bits")
        return self


class DeviceStatus(_Payload):
    """Online/offline state and housekeeping. Last-will payloads use ``seq`` 0 and the
    connect time as ``ts`` so that a redelivered will is still one row."""

    state: Literal["online", "offline"]
    firmware: Text | None = Field(default=None, max_length=64)
    battery_pct: float | None = Field(default=None, ge=0.0, le=100.0)
    rssi_dbm: float | None = Field(default=None, ge=-150.0, le=0.0)
    reason: Text | None = Field(default=None, max_length=128)


Payload = WaterTelemetry | EbikeShedTelemetry | PanelEvent | DeviceStatus

#: The model that validates each (kind, channel) pair the contract allows.
MODELS: dict[tuple[DeviceKind, Channel], type[_Payload]] = {
    (DeviceKind.WATER, Channel.TELEMETRY): WaterTelemetry,
    (DeviceKind.EBIKE_SHED, Channel.TELEMETRY): EbikeShedTelemetry,
    (DeviceKind.PANEL, Channel.EVENT): PanelEvent,
    (DeviceKind.WATER, Channel.STATUS): DeviceStatus,
    (DeviceKind.EBIKE_SHED, Channel.STATUS): DeviceStatus,
    (DeviceKind.PANEL, Channel.STATUS): DeviceStatus,
}


def topic_for(root: str, unit_id: str, device_id: str, channel: Channel) -> str:
    """The topic a device publishes ``channel`` messages on."""
    return f"{root}/{unit_id}/{device_id}/{channel.value}"


def subscription(root: str, group: str | None = None) -> str:
    """The ingest subscription filter, shared by ``group`` when given."""
    filt = f"{root}/+/+/+"
    return f"$share/{group}/{filt}" if group else filt
