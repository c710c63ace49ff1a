"""People, roles and API tokens: the records and rules shared by storage, the CLI and the API
(docs/people.md). Pure: no SQL, no clock (times are passed in).

A person has one :class:`Role`. Two roles are scoped: ``unit`` (a unit's fire-safety manager)
needs the unit, ``vendor`` the vendor whose devices it may see; no other role has a scope.
What each role may do is not enforced anywhere yet (issue 12 continues with it).

An API token is ``fw_`` followed by the URL-safe base64 (no padding) of 32 random bytes: 46
characters. It is shown once; only its SHA-256 and its first :data:`TOKEN_PREFIX_LEN`
characters (the *prefix*, which names it) are stored.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class PeopleError(ValueError):
    """A request about people or tokens that is refused, with a message saying why (the CLI
    prints it as one line, the API answers 4xx with it)."""


class NotFound(PeopleError, LookupError):
    """No person, unit or token has that name."""


class Conflict(PeopleError):
    """The request contradicts the records (the username is taken, the person inactive)."""


class Role(StrEnum):
    """The roles of issue 12 (``people.role`` CHECK in migration 0012)."""

    OPERATOR = "operator"  # monitoring center: handles alerts
    SHIFT_LEADER = "shift_leader"  # monitoring center: leads a shift
    SUPERVISOR = "supervisor"  # fire department
    INSPECTOR = "inspector"  # fire department: inspections
    UNIT = "unit"  # a unit's fire-safety manager: only its own unit
    VENDOR = "vendor"  # a device vendor: only its own devices
    ADMIN = "admin"


class AuthEvent(StrEnum):
    """What ``auth_events.event`` records (the audit; docs/people.md)."""

    USER_ADDED = "user_added"
    PASSWORD_SET = "password_set"
    TOKEN_CREATED = "token_created"
    TOKEN_REVOKED = "token_revoked"
    TOKEN_USED_EXPIRED = "token_used_expired"  # a known token presented after its expiry
    TOKEN_REJECTED = "token_rejected"  # a known token revoked, or its person inactive
    DEACTIVATED = "deactivated"
    ACTIVATED = "activated"
    # browser sessions and login throttling (issue 12, second slice; firewatch/core/sessions.py)
    LOGIN_OK = "login_ok"
    LOGIN_FAILED = "login_failed"  # wrong username or password; counted by throttling
    LOGIN_THROTTLED = "login_throttled"  # refused before the password was checked
    LOGOUT = "logout"


USERNAME_RE = re.compile(r"[a-z0-9._-]{3,64}")
TOKEN_MARK = "fw_"
TOKEN_BYTES = 32
TOKEN_LEN = len(TOKEN_MARK) + 43  # 32 bytes are 43 base64 characters without padding
TOKEN_PREFIX_LEN = 8
_TOKEN_RE = re.compile(r"fw_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Person:
    """An account as everyone but storage sees it: never its password hash."""

    id: int
    username: str
    display_name: str
    role: Role
    unit_id: str | None
    vendor: str | None
    active: bool
    has_password: bool
    created_at: datetime
    password_changed_at: datetime | None


@dataclass(frozen=True)
class TokenInfo:
    """An API token as listed: its prefix, never the token or its hash."""

    prefix: str
    username: str
    name: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime) -> str:
        """``revoked``, ``expired`` or ``active`` at ``now``."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        return "expired" if self.expires_at <= now else "active"


def normalise_username(text: str) -> str:
    """The stored form of a username: trimmed and lowercased, then 3-64 characters of
    ``a-z``, ``0-9``, ``.``, ``_``, ``-``; :class:`PeopleError` otherwise."""
    name = text.strip().lower()
    if USERNAME_RE.fullmatch(name) is None:
        raise PeopleError(
            f"username {text!r}: 3-64 characters of a-z, 0-9, '.', '_' or '-' (lowercase)"
        )
    return name


def parse_role(text: str) -> Role:
    """The role named ``text``; :class:`PeopleError` listing the roles otherwise."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise PeopleError(
            f"unknown role {text!r}; roles are {', '.join(r.value for r in Role)}"
        ) from None


def check_scope(
    role: Role, unit_id: str | None, vendor: str | None
) -> tuple[str | None, str | None]:
    """The (unit, vendor) scope a person of ``role`` keeps: ``unit`` needs a unit and no
    vendor, ``vendor`` a vendor and no unit, every other role neither. Blank means none."""
    unit = (unit_id or "").strip() or None
    vend = (vendor or "").strip() or None
    if role is Role.UNIT and unit is None:
        raise PeopleError("role 'unit' needs the unit it manages (--unit)")
    if role is Role.VENDOR and vend is None:
        raise PeopleError("role 'vendor' needs the vendor whose devices it sees (--vendor)")
    if role is not Role.UNIT and unit is not None:
        raise PeopleError(f"only role 'unit' has a unit, not {role.value!r}")
    if role is not Role.VENDOR and vend is not None:
        raise PeopleError(f"only role 'vendor' has a vendor, not {role.value!r}")
    return unit, vend


def new_token() -> str:
    """A fresh API token: ``fw_`` + URL-safe base64 of 32 bytes from the OS's CSPRNG."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).rstrip(b"=")
    return TOKEN_MARK + raw.decode("ascii")


def looks_like_token(text: str) -> bool:
    """Whether ``text`` has the form of a token (checked before any lookup)."""
    return len(text) == TOKEN_LEN and _TOKEN_RE.fullmatch(text) is not None


def token_prefix(token: str) -> str:
    """The public part that names a token: its first 8 characters."""
    return token[:TOKEN_PREFIX_LEN]


def token_digest(token: str) -> bytes:
    """What is stored of a token: SHA-256 of its ASCII text. A fast hash is enough: the
    token has 256 random bits, so there is nothing to guess (docs/adr/0008)."""
    return hashlib.sha256(token.encode("ascii")).digest()
