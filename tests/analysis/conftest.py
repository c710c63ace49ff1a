"""Fixtures of the rollup tests: a clock the test moves, the refresh on it, and an hour to
put crafted data in (a whole UTC hour a day and a half ago: inside ingest's backlog window
and the partitions ``maintain`` made, so the refresh's window reads see it)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.analysis.refresh import Rollups
from firewatch.core.settings import Settings
from tests.builders.rollups import Clock


@pytest.fixture
def hour() -> datetime:
    """The start of a UTC hour 36 hours before the current one."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=36)


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture
def rollups(settings: Settings, db: psycopg.Connection[Any], clock: Clock) -> Rollups:
    """The refresh on the test's clock, with the seeded registry's thresholds."""
    r = Rollups(settings, clock=clock)
    r.load_limits(db)
    return r
