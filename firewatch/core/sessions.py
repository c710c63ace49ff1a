"""Browser sessions and login throttling: the names, secrets and rules shared by storage and
the API (docs/people.md, "Sessions"). Pure: no SQL, no clock (times are passed in).

A session is a cookie ``fw_session`` holding 32 random bytes in URL-safe base64 (no
padding: 43 characters); only its SHA-256 is stored. With it comes a CSRF token, readable
by the console's script from the ``fw_csrf`` cookie, which every unsafe request made with
the session cookie must echo in the ``X-CSRF-Token`` header.

Throttling counts failed logins (``login_failed`` audit rows) within a sliding window, per
username and per client address; an attempt over either limit is refused before the
password is checked, with the seconds until enough failures have left the window.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

SESSION_COOKIE = "fw_session"
CSRF_COOKIE = "fw_csrf"
CSRF_HEADER = "X-CSRF-Token"
#: Methods that change nothing (RFC 9110): the only ones a session cookie may use without
#: the CSRF header.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

SESSION_BYTES = 32
_SESSION_RE = re.compile(r"[A-Za-z0-9_-]{43}")
#: ``last_seen_at`` is written at most this often per session: a console polling every few
#: seconds would otherwise write on every request.
TOUCH_EVERY = timedelta(minutes=1)


def new_session_secret() -> str:
    """A fresh cookie value: URL-safe base64 (no padding) of 32 bytes from the OS's CSPRNG."""
    return base64.urlsafe_b64encode(secrets.token_bytes(SESSION_BYTES)).rstrip(b"=").decode()


def new_csrf_token() -> str:
    """A fresh CSRF token (32 random bytes, URL-safe base64: 43 characters)."""
    return secrets.token_urlsafe(SESSION_BYTES)


def looks_like_session(text: str) -> bool:
    """Whether ``text`` has the form of a session cookie (checked before any lookup)."""
    return _SESSION_RE.fullmatch(text) is not None


def session_digest(secret: str) -> bytes:
    """What is stored of a session cookie: the SHA-256 of its ASCII text (256 random bits
    leave nothing to guess, so a fast hash is enough; docs/adr/0008)."""
    return hashlib.sha256(secret.encode("ascii")).digest()


def login_key(username: str) -> str:
    """The form a typed username is looked up, audited and throttled in: trimmed and
    lowercased (so ``Li.Wei`` and ``li.wei`` share one failure count)."""
    return username.strip().lower()


class RecentFailures(NamedTuple):
    """The times of the failed logins within the window, oldest first: of the username, and
    of the client address."""

    by_user: tuple[datetime, ...]
    by_ip: tuple[datetime, ...]


def _wait_s(times: Sequence[datetime], limit: int, window: timedelta, now: datetime) -> int:
    """Whole seconds (at least 1) until fewer than ``limit`` of ``times`` (oldest first) are
    within the window; 0 when already fewer."""
    if len(times) < limit:
        return 0
    # The attempt is allowed again once this failure (and every older one) has left it.
    leaves = times[len(times) - limit] + window
    return max(1, math.ceil((leaves - now).total_seconds()))


def retry_after_s(
    failures: RecentFailures,
    *,
    max_user: int,
    max_ip: int,
    window: timedelta,
    now: datetime,
) -> int:
    """0 when a login may be tried; else the seconds to wait (``Retry-After``): until the
    oldest counted failure that keeps the count at its limit leaves the window, for the
    username or the address, whichever is later."""
    return max(
        _wait_s(failures.by_user, max_user, window, now),
        _wait_s(failures.by_ip, max_ip, window, now),
    )
