"""Response models of ``/auth/...`` (firewatch/api/routes/auth.py; docs/people.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from firewatch.core.passwords import MAX_PASSWORD_LENGTH
from firewatch.core.people import Person, Role


class MeOut(BaseModel):
    """Who the presented token belongs to. No secrets: no hash, no token, no prefix."""

    username: str
    display_name: str
    role: Role
    unit_id: str | None = Field(description="The unit a 'unit' person manages, else null.")
    vendor: str | None = Field(description="The vendor a 'vendor' person stands for, else null.")

    @classmethod
    def of(cls, person: Person) -> MeOut:
        return cls(
            username=person.username,
            display_name=person.display_name,
            role=person.role,
            unit_id=person.unit_id,
            vendor=person.vendor,
        )


class LoginIn(BaseModel):
    """``POST /auth/login``: a console user's username and password (issue 12)."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
