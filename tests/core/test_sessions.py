"""The pure rules of sessions and throttling (firewatch/core/sessions.py): cookie values,
and how long a throttled login waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from firewatch.core.sessions import (
    RecentFailures,
    login_key,
    looks_like_session,
    new_session_secret,
    retry_after_s,
)

NOW = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=900)
S = timedelta(seconds=1)


def wait(by_user: list[float], by_ip: tuple[float, ...] = ()) -> int:
    """Retry-After for failures that many seconds ago (oldest first), limits 3 and 5."""
    failures = RecentFailures(
        tuple(NOW - s * S for s in by_user), tuple(NOW - s * S for s in by_ip)
    )
    return retry_after_s(failures, max_user=3, max_ip=5, window=WINDOW, now=NOW)


def test_below_the_limits_nothing_waits() -> None:
    assert wait([]) == 0
    assert wait([100, 50]) == 0
    assert wait([100, 50], (9, 8, 7, 6)) == 0


def test_at_a_limit_the_wait_lasts_until_enough_failures_leave_the_window() -> None:
    assert wait([600, 50, 10]) == 300  # the oldest leaves in 300 s
    # Five failures, limit three: allowed again once the third newest has left.
    assert wait([800, 700, 600, 50, 10]) == 300
    assert wait([10, 9, 8], (890, 500, 400, 300, 1)) == 890  # the later of the two
    assert wait([899.5, 5, 1]) == 1  # rounded up, never 0


def test_session_values_and_login_keys() -> None:
    secret = new_session_secret()
    assert looks_like_session(secret)
    assert secret != new_session_secret()
    assert not looks_like_session(secret[:-1])
    assert not looks_like_session(secret + "=")
    assert login_key("  Li.Wei ") == "li.wei"
