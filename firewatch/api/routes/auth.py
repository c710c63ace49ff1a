"""``GET /auth/me``: who the bearer token belongs to (docs/people.md). The only route that
requires authentication so far; the role matrix on every route is issue 12's next slice."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from firewatch.api.auth_schemas import MeOut
from firewatch.api.deps import CurrentUser
from firewatch.api.schemas import ErrorOut

router = APIRouter(tags=["auth"])

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorOut,
        "description": "no token (authentication required), or an invalid, expired or revoked "
        "one, or its person deactivated (invalid or expired token)",
    }
}


@router.get("/auth/me", response_model=MeOut, responses=_UNAUTHORIZED)
def me(user: CurrentUser) -> MeOut:
    """The person of the token in ``Authorization: Bearer fw_...``: username, display name,
    role and scope (unit or vendor)."""
    return MeOut.of(user)
