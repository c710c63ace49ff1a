"""A device's traffic as ingest stores it, for the vendor tools' tests (conformance report,
dead-letter list): rows and dead letters written as one ingest batch, a regular water
device's recent readings, a dead letter on a device's topic."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg

from firewatch.core.rows import DeadLetter, Reason, Row, TelemetryRow
from firewatch.storage.streams import TABLE_OF_ROW, create_staging, write_batch
from tests.builders import city
from tests.builders.rows import water_reading

ROOT = "firewatch/v1"


def store_batch(
    db: psycopg.Connection[Any], rows: Sequence[Row] = (), dead: Sequence[DeadLetter] = ()
) -> None:
    """Write ``rows`` and ``dead`` in one transaction through ingest's own batch write."""
    by_table: dict[str, list[Row]] = {}
    for r in rows:
        by_table.setdefault(TABLE_OF_ROW[type(r)], []).append(r)
    create_staging(db)
    with db.transaction():
        write_batch(db, by_table, dead)


def letter(
    device: str,
    rx: datetime,
    reason: Reason = Reason.NOT_JSON,
    *,
    unit: str = city.UNIT,
    channel: str = "telemetry",
    payload: bytes = b"\xff\xfe",
    topic: str | None = None,
    seq: int | None = None,
) -> DeadLetter:
    """A dead letter of ``device`` received at ``rx`` (with ``seq``: a JSON payload naming
    it, as a message refused for its values would)."""
    if seq is not None:
        payload = orjson.dumps({"seq": seq, "ts": rx.isoformat(), "pressure_kpa": -500})
    return DeadLetter(
        rx, topic or f"{ROOT}/{unit}/{device}/{channel}", payload, reason, f"{reason} here"
    )


def regular_water(
    minutes: int = 15,
    *,
    dev: str = city.WATER,
    step_s: float = 60.0,
    delay_s: float = 0.5,
    skip: Sequence[int] = (),
    now: datetime | None = None,
) -> list[TelemetryRow]:
    """Readings numbered 1, 2, … every ``step_s`` over the last ``minutes`` (the newest
    ``step_s / 2`` ago), each received ``delay_s`` after its ts; the numbers in ``skip``
    left out."""
    now = now or datetime.now(UTC)
    n = int(minutes * 60 // step_s)
    first = now - timedelta(seconds=step_s / 2 + (n - 1) * step_s + delay_s)
    rows = []
    for i in range(n):
        if i + 1 in skip:
            continue
        ts = first + timedelta(seconds=i * step_s)
        rows.append(
            water_reading(i + 1, ts, dev=dev)._replace(received_at=ts + timedelta(seconds=delay_s))
        )
    return rows
