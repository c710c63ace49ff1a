"""Bodies of the tier endpoints (``/regions``, ``/units``, ``/devices/{id}/rollups``) and the
time range a rollup request takes.

A rollup is :class:`firewatch.core.rollups.Rollup`, the record the refresh writes and risk
scoring reads; :class:`RollupOut` is its measures with the bucket, the two mean response
times worked out, and when the row was last computed.

Phone numbers are masked (``138****0001``): the API has no operator authentication yet
(docs/next.md), and a unit's contacts are personal data. The CLI and the database hold
them in full.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, Field

from firewatch.core.rollups import Grain, Rollup
from firewatch.storage.rollups import StoredRollup

#: 422 (Starlette renamed its constant; the number is what clients see).
UNPROCESSABLE = 422
#: The longest range one request may cover, by grain: a year and a month of days, a month
#: of hours (the hourly rows are kept 35 days by default).
MAX_SPAN = {Grain.DAY: timedelta(days=400), Grain.HOUR: timedelta(days=31)}
#: Without ``from``: this far back from ``to``.
DEFAULT_SPAN = {Grain.DAY: timedelta(days=30), Grain.HOUR: timedelta(hours=24)}


class RegionNodeOut(BaseModel):
    """A region of the tree, with the units in it and below it."""

    id: str
    name: str
    level: str = Field(description="city, district or street")
    units: int = Field(description="Units in this region and every region below it.")
    children: list[RegionNodeOut]


class RegionChildOut(BaseModel):
    id: str
    name: str
    level: str
    units: int


class UnitSummaryOut(BaseModel):
    """A unit as lists show it."""

    id: str
    name: str
    street: str = Field(description="The region (a street) the unit is in.")
    category: str = Field(description="Supervision class: high_risk, key or ordinary.")
    type: str = Field(description="What the unit is: hotel, school, hospital …")
    building_class: str


class RegionOut(BaseModel):
    id: str
    name: str
    level: str
    parent_id: str | None
    units: int = Field(description="Units in this region and every region below it.")
    children: list[RegionChildOut]
    unit_list: list[UnitSummaryOut] | None = Field(
        default=None, description="A street's units (streets only)."
    )


class ContactOut(BaseModel):
    name: str | None
    phone: str | None = Field(description="Masked until the API authenticates operators.")


class DeviceOut(BaseModel):
    id: str
    kind: str
    vendor: str
    model: str
    gbt_address: str | None = Field(
        default=None, description="A panel's GB/T 26875.3 address (duty checks need one)."
    )


class UnitOut(UnitSummaryOut):
    """A unit with its location, contacts and devices."""

    district: str | None
    address: str
    latitude: float | None
    longitude: float | None
    responsible: ContactOut | None
    maintenance: ContactOut | None
    devices: list[DeviceOut]


class RollupOut(BaseModel):
    """One bucket's measures (docs/analysis.md, "Measures")."""

    bucket: datetime = Field(description="Start of the hour (UTC) or of the local day.")
    fire_alarms: int
    confirmed_fires: int
    false_alarms: int
    faults: int
    faults_by_type: dict[str, int]
    fault_open_min: float
    isolations: int
    isolated_min: float
    offline_min: float
    pressure_min_kpa: float | None
    pressure_mean_kpa: float | None
    pressure_samples: int
    pressure_low_min: float
    tank_low_min: float
    shed_peak_temp_c: float | None
    shed_overtemp_events: int
    shed_overcurrent_events: int
    anomalies_critical: int
    anomalies_high: int
    anomalies_medium: int
    anomalies_low: int
    acks: int
    ack_s_sum: float
    ack_mean_s: float | None = Field(description="ack_s_sum / acks")
    confirms: int
    confirm_s_sum: float
    confirm_mean_s: float | None = Field(description="confirm_s_sum / confirms")
    revision: int = Field(description="How often this bucket was computed.")
    computed_at: datetime

    @classmethod
    def of(cls, stored: StoredRollup) -> RollupOut:
        r: Rollup = stored.rollup
        values: dict[str, Any] = {
            name: getattr(r, name) for name in cls.model_fields if hasattr(r, name)
        }
        return cls(
            **values,
            ack_mean_s=r.ack_s_sum / r.acks if r.acks else None,
            confirm_mean_s=r.confirm_s_sum / r.confirms if r.confirms else None,
            revision=stored.revision,
            computed_at=stored.computed_at,
        )


class RollupsOut(BaseModel):
    """A subject's rollups of one grain over ``[from, to)``; a bucket without a row had
    nothing to count."""

    tier: str = Field(description="device, unit, street, district or city")
    subject_id: str
    grain: Grain
    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    rollups: list[RollupOut]

    model_config = {"populate_by_name": True}


def mask_phone(phone: Any) -> str | None:
    """``13800000001`` -> ``138****0001``; a landline keeps its area code and last four."""
    if not isinstance(phone, str) or not phone:
        return None
    head, _, local = phone.rpartition("-")
    if head:
        return f"{head}-{'*' * max(0, len(local) - 4)}{local[-4:]}"
    return f"{phone[:3]}{'*' * max(0, len(phone) - 7)}{phone[-4:]}"


def contact_out(contact: Any, *, full_phone: bool = False) -> ContactOut | None:
    """The contact as the API shows it: the phone masked unless ``full_phone`` (the people
    who call the unit: the monitoring center, and the unit itself)."""
    if not isinstance(contact, dict):
        return None
    name = contact.get("name")
    raw = contact.get("phone")
    phone = (raw if isinstance(raw, str) and raw else None) if full_phone else mask_phone(raw)
    return ContactOut(name=name if isinstance(name, str) else None, phone=phone)


def _when(text: str, what: str, offset_h: int, *, end: bool) -> datetime:
    """A date (a local day: its start, or for ``to`` the start of the next day) or a time
    with a UTC offset."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        local = datetime.combine(day, time(0), UTC) - timedelta(hours=offset_h)
        return local + timedelta(days=1) if end else local
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise HTTPException(
            UNPROCESSABLE,
            f"{what}={text!r}: not a date (2026-11-05) or a time (2026-11-05T08:00:00+08:00)",
        ) from None
    if when.tzinfo is None:
        raise HTTPException(
            UNPROCESSABLE,
            f"{what}={text!r}: a time needs its UTC offset (Z or +08:00)",
        )
    return when.astimezone(UTC)


def rollup_range(
    grain: Grain, start: str | None, end: str | None, *, offset_h: int, now: datetime
) -> tuple[datetime, datetime]:
    """``[from, to)`` of a rollup request: ``to`` defaults to now, ``from`` to
    :data:`DEFAULT_SPAN` before ``to``. 422 when ``from`` is not before ``to`` or the range
    is longer than :data:`MAX_SPAN` for the grain."""
    stop = now if end is None else _when(end, "to", offset_h, end=True)
    if start is None:
        begin = stop - DEFAULT_SPAN[grain]
    else:
        begin = _when(start, "from", offset_h, end=False)
    if begin >= stop:
        raise HTTPException(
            UNPROCESSABLE,
            f"from ({begin.isoformat()}) must be before to ({stop.isoformat()})",
        )
    if stop - begin > MAX_SPAN[grain]:
        raise HTTPException(
            UNPROCESSABLE,
            f"{grain.value} rollups: at most {MAX_SPAN[grain].days} days per request, "
            f"asked for {(stop - begin) / timedelta(days=1):.1f}",
        )
    return begin, stop
