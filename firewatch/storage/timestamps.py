"""Reading timestamps the database can hold but Python cannot.

``timestamptz`` ranges from 4713 BC to 294276 AD and has ``±infinity``; Python's
``datetime`` covers years 1 to 9999. psycopg raises ``DataError`` on loading anything
outside (a device clock at year 1 stored in UTC is 1 BC), and that one row would fail
every read of its batch, forever: a crash loop in every reader behind it. Ingest refuses
such times at the door (``firewatch.ingest.codec.Limits``), but a reader must survive any
row the database can hold, however it got there.

:func:`clamp_timestamps` registers loaders that map every such value to :data:`EARLIEST`
or :data:`LATEST` (by which end it is off), so loading never fails; whoever reads the row
then sees an impossible time and decides (the analytics feed records and skips it). The
clamping loaders are Python, about 4 times slower than psycopg's C ones, so hot paths
register them only to retry a read that failed (:func:`fetchall_clamped`).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.abc import AdaptContext, Buffer
from psycopg.types.datetime import TimestamptzBinaryLoader, TimestamptzLoader

#: What a time before year 1 (or ``-infinity``) loads as.
EARLIEST = datetime.min.replace(tzinfo=UTC)
#: What a time after year 9999 (or ``infinity``) loads as.
LATEST = datetime.max.replace(tzinfo=UTC)


class _ClampedText(TimestamptzLoader):
    def load(self, data: Buffer) -> datetime:
        try:
            return super().load(data)
        except psycopg.DataError:
            raw = bytes(data)
            return EARLIEST if raw.startswith(b"-") or raw.endswith(b" BC") else LATEST


class _ClampedBinary(TimestamptzBinaryLoader):
    def load(self, data: Buffer) -> datetime:
        try:
            return super().load(data)
        except psycopg.DataError:
            # microseconds since 2000-01-01: below it is the early end, above the late one
            (micros,) = struct.unpack("!q", bytes(data))
            return EARLIEST if micros < 0 else LATEST


def clamp_timestamps(context: AdaptContext) -> None:
    """Make ``context`` (a connection or a cursor) load out-of-range ``timestamptz``
    values as :data:`EARLIEST` / :data:`LATEST` instead of raising."""
    context.adapters.register_loader("timestamptz", _ClampedText)
    context.adapters.register_loader("timestamptz", _ClampedBinary)


def out_of_range(value: datetime | None) -> bool:
    """True for a time that was clamped on loading (or lies at Python's very limits)."""
    return value is not None and (value <= EARLIEST or value >= LATEST)


def fetchall_clamped(
    conn: psycopg.Connection[Any], sql: str, params: Any, cursor: psycopg.Cursor[Any]
) -> list[Any]:
    """``cursor.execute(sql, params).fetchall()``; if loading a value fails (an
    out-of-range time), the same query again on a new cursor of ``conn`` (same row
    factory, same transaction) with :func:`clamp_timestamps`."""
    try:
        return cursor.execute(sql, params).fetchall()
    except psycopg.DataError as err:
        if err.sqlstate:  # raised by the server, not while loading: not ours to handle
            raise
    with conn.cursor(row_factory=cursor.row_factory) as again:
        clamp_timestamps(again)
        return again.execute(sql, params).fetchall()
