"""Response models of the console's reads (issue 12): device health, a unit's telemetry
series and the map (``firewatch/api/routes/devices.py``, ``units.py``, ``map.py``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DeviceHealthOut(BaseModel):
    """One device: its latest status, last contact and active problems."""

    device_id: str
    unit_id: str
    unit_name: str
    district_id: str | None
    street_id: str
    kind: str
    vendor: str
    model: str
    status: str | None = Field(description="online or offline (its last status message or "
                               "last will); null before the first")  # fmt: skip
    status_at: datetime | None
    battery_pct: float | None
    last_seen: datetime | None = Field(description="The last accepted message of any kind.")
    open_faults: int = Field(description="Active fault alerts (isolations apart).")
    isolated: int = Field(description="Active 'component isolated' alerts.")
    offline_alerts: int = Field(description="Active offline alerts.")


class SeriesOut(BaseModel):
    """One metric of one device, averaged into buckets: ``points`` are ``[start, value]``."""

    device_id: str
    kind: str
    metric: str
    unit: str
    points: list[tuple[datetime, float]]


class TelemetryOut(BaseModel):
    unit_id: str
    since: datetime
    until: datetime
    series: list[SeriesOut]


class MapRegionOut(BaseModel):
    """A district drawn as the hull of its units (not its legal boundary)."""

    id: str
    name: str
    level: str
    outline: list[list[float]] = Field(description="Closed polygon of [lon, lat].")


class MapUnitOut(BaseModel):
    id: str
    name: str
    category: str
    district_id: str | None
    latitude: float
    longitude: float
    open_alerts: int
    max_severity: str | None
    risk_level: str | None = Field(description="red, orange, yellow, blue; null if unscored")


class MapOut(BaseModel):
    regions: list[MapRegionOut]
    units: list[MapUnitOut]
