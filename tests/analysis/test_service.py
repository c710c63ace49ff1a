"""The analysis worker on the worker runtime: it rolls up what is stored, follows late data,
reconnects after its connection is killed, and says what it did when it stops."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.analysis.service import AnalysisService
from firewatch.core.settings import Settings
from tests.builders import city
from tests.builders.rollups import Clock, ingest, rollup_row
from tests.builders.rows import water_row
from tests.helpers import ThreadedService

H = timedelta(hours=1)


def test_the_worker_rolls_up_follows_late_data_and_reconnects(
    settings: Settings,
    db: psycopg.Connection[Any],
    clock: Clock,
    hour: datetime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert settings.database_url
    quick = settings.model_copy(update={"analysis_poll_s": 0.05})
    ingest(
        db, [water_row(city.WATER, hour + i * timedelta(minutes=2), 90.0, seq=i) for i in range(30)]
    )
    clock.at(hour + 3 * H)
    service = AnalysisService(quick, settings.database_url, clock=clock)

    def samples(bucket: datetime) -> int:
        row = rollup_row(db, "unit", city.UNIT, "hour", bucket)
        return -1 if row is None else int(row["pressure_samples"])

    caplog.set_level(logging.INFO, logger="firewatch.analysis.service")
    with ThreadedService(service, "analysis") as running:
        running.wait(lambda: samples(hour) == 30, 20, "the hour rolled up")
        ingest(db, [water_row(city.WATER, hour + 31 * timedelta(minutes=1), 95.0, seq=500)])
        running.wait(lambda: samples(hour) == 31, 20, "the late reading rolled up")
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'firewatch-analysis'"
        )
        ingest(db, [water_row(city.WATER, hour + 33 * timedelta(minutes=1), 95.0, seq=501)])
        running.wait(lambda: samples(hour) == 32, 20, "rolled up after a reconnect")
        stats = running.stop()
    assert stats.reconnects >= 1
    assert stats.recomputed >= 3
    assert any("analysis stopped after" in r.getMessage() for r in caplog.records)
