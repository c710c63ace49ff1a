"""Response shapes of ``/devices/{device_id}/credentials`` (firewatch/api/routes/credentials.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class IssuedOut(BaseModel):
    """A new broker login. ``password`` is shown here once and stored nowhere: keep it."""

    device_id: str
    unit_id: str
    username: str = Field(description="The MQTT username: the device id.")
    client_id: str = Field(description="The only MQTT client id this login may use.")
    password: str = Field(description="Shown once; only the broker's hash of it is kept.")
    version: int = Field(description="1 for the first credential, +1 for every rotation.")
    publish_topics: list[str] = Field(description="The only topics the device may publish to.")
    command_topic: str = Field(description="The only topic it may subscribe to.")


class CredentialOut(BaseModel):
    """Whether a device has a broker login in force (never the password)."""

    device_id: str
    state: Literal["none", "active", "revoked"]
    version: int | None = None
    issued_at: datetime | None = None
    issued_by: str | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None
