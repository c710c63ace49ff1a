"""The committed-row feed (firewatch/storage/feed.py) on a real PostgreSQL: exactly once, in
(xid, key) order, held back by open transactions, sharded, and fed by the ingest writer."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.core.backoff import Backoff
from firewatch.core.rows import DeadLetter, EventRow, Reason, StatusRow, TelemetryRow
from firewatch.core.settings import Settings
from firewatch.ingest.ingest_metrics import IngestMetrics
from firewatch.ingest.writer import BatchWriter, WriteBatch
from firewatch.storage import channels
from firewatch.storage.feed import (
    DEFAULT_XID_SPAN,
    FeedBatch,
    FeedCursor,
    Position,
    Shard,
    listen,
    read_batch,
    wait_for_rows,
)
from firewatch.storage.maintenance import maintain
from tests.builders import city
from tests.builders.rows import status, water_reading
from tests.conftest import Connect
from tests.helpers import day_container, scalar

WEEK = 7 * 86_400.0


# --- helpers ------------------------------------------------------------------------------
_seq = iter(range(1, 10**9))


def devices(db: psycopg.Connection[Any]) -> dict[str, str]:
    """device id -> unit id of the seeded city."""
    return dict(db.execute("SELECT id, unit_id FROM devices ORDER BY id").fetchall())


def add_rows(
    db: psycopg.Connection[Any], device: str, unit: str, ts: datetime | None = None
) -> None:
    """One row in each of the four tables, through the parent tables' defaults."""
    ts = ts or datetime.now(UTC)
    seq = next(_seq)
    db.execute(
        "INSERT INTO telemetry (device_id, seq, ts, received_at, pressure_kpa)"
        " VALUES (%s, %s, %s, now(), 300)",
        (device, seq, ts),
    )
    db.execute(
        "INSERT INTO events (device_id, seq, ts, received_at, event_type, system_type,"
        " system_addr, status_word, flags)"
        " VALUES (%s, %s, %s, now(), 'system_status', 1, 1, 1, '{}')",
        (device, seq, ts),
    )
    db.execute(
        "INSERT INTO device_status (device_id, seq, ts, received_at, state)"
        " VALUES (%s, %s, %s, now(), 'online')",
        (device, seq, ts),
    )
    add_dead_letter(db, f"firewatch/v1/{unit}/{device}/telemetry", f"bad {seq}".encode())


def add_dead_letter(db: psycopg.Connection[Any], topic: str, payload: bytes) -> None:
    db.execute(
        "INSERT INTO dead_letters (received_at, topic, payload, reason, detail, payload_sha256,"
        " payload_size) VALUES (now(), %s, %s, 'not_json', 'test', %s, %s)",
        (topic, payload, hashlib.sha256(payload).digest(), len(payload)),
    )


def in_transaction(db: psycopg.Connection[Any], fn: Callable[[], None]) -> None:
    with db.transaction():
        fn()


class Expected:
    """The feed's ground truth, straight from the tables: rows with an ingest_xid, in
    (ingest_xid, key) order."""

    def __init__(self, db: psycopg.Connection[Any]) -> None:
        def q(table: str, cols: tuple[str, ...], key: str) -> list[tuple[Any, ...]]:
            return db.execute(
                f"SELECT {', '.join(cols)} FROM {table} WHERE ingest_xid IS NOT NULL"
                f" ORDER BY ingest_xid, {key}"
            ).fetchall()

        stream_key = "device_id, ts, seq"
        self.telemetry = [
            TelemetryRow(*r) for r in q("telemetry", TelemetryRow._fields, stream_key)
        ]
        self.events = [EventRow(*r) for r in q("events", EventRow._fields, stream_key)]
        self.statuses = [StatusRow(*r) for r in q("device_status", StatusRow._fields, stream_key)]
        self.dead_letters = [
            DeadLetter(r[0], r[1], r[2], Reason(r[3]), r[4])
            for r in q("dead_letters", DeadLetter._fields, "id")
        ]


class Collected:
    """Everything read so far, per table, in the order read."""

    def __init__(self) -> None:
        self.telemetry: list[TelemetryRow] = []
        self.events: list[EventRow] = []
        self.statuses: list[StatusRow] = []
        self.dead_letters: list[DeadLetter] = []

    def add(self, batch: FeedBatch) -> None:
        self.telemetry += batch.telemetry
        self.events += batch.events
        self.statuses += batch.statuses
        self.dead_letters += batch.dead_letters

    def __len__(self) -> int:
        return len(self.telemetry) + len(self.events) + len(self.statuses) + len(self.dead_letters)

    def matches(self, expected: Expected) -> bool:
        return (
            self.telemetry == expected.telemetry
            and self.events == expected.events
            and self.statuses == expected.statuses
            and self.dead_letters == expected.dead_letters
        )


def drain(
    db: psycopg.Connection[Any],
    cursor: FeedCursor,
    into: Collected,
    max_reads: int = 10_000,
    **kw: Any,
) -> FeedCursor:
    """Read until caught up; return the final cursor."""
    kw.setdefault("max_age_s", WEEK)
    for _ in range(max_reads):
        batch = read_batch(db, cursor, **kw)
        into.add(batch)
        assert batch.cursor != cursor or batch.caught_up, "the cursor must move until caught up"
        cursor = batch.cursor
        if batch.caught_up:
            return cursor
    raise AssertionError("feed never caught up")


def drain_until(
    db: psycopg.Connection[Any],
    cursor: FeedCursor,
    into: Collected,
    count: int,
    timeout: float = 10.0,
) -> FeedCursor:
    """Read until ``count`` rows in all were collected (an unrelated short transaction on
    the server may hold the horizon for a moment), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    cursor = drain(db, cursor, into)
    while len(into) < count:
        assert time.monotonic() < deadline, f"feed returned {len(into)} of {count} rows"
        cursor = drain(db, cursor, into)
    return cursor


# --- exactly once, in order ---------------------------------------------------------------
@pytest.mark.parametrize(("limit", "xid_span"), [(3, DEFAULT_XID_SPAN), (2, 1), (1000, 3)])
def test_every_row_exactly_once_in_xid_and_key_order(
    db: psycopg.Connection[Any], limit: int, xid_span: int
) -> None:
    devs = list(devices(db).items())
    # Transactions that insert devices in descending id order, so that the (xid, key) order
    # differs from key order, and with several rows per transaction (an ingest batch).
    for i in range(6):
        chosen = devs[-1 - i :: -3]

        def batch(chosen: list[tuple[str, str]] = chosen) -> None:
            for dev, unit in chosen:
                add_rows(db, dev, unit)

        in_transaction(db, batch)
    # A row from before the migration (no xid) is not part of the feed.
    db.execute(
        "INSERT INTO telemetry (device_id, seq, ts, received_at, ingest_xid)"
        " VALUES (%s, 0, now(), now(), NULL)",
        (devs[0][0],),
    )
    got = Collected()
    cursor = drain(db, FeedCursor.start(), got, limit=limit, xid_span=xid_span)
    # Rows committed after the feed caught up come next, nothing twice.
    for dev, unit in devs[:4]:
        add_rows(db, dev, unit)
    cursor = drain(db, cursor, got, limit=limit, xid_span=xid_span)

    expected = Expected(db)
    assert len(expected.telemetry) == sum(len(devs[-1 - i :: -3]) for i in range(6)) + 4
    assert got.telemetry == expected.telemetry
    assert got.events == expected.events
    assert got.statuses == expected.statuses
    assert got.dead_letters == expected.dead_letters
    assert all(r.seq != 0 for r in got.telemetry)
    # Caught up means caught up: another read returns nothing and keeps the position.
    again = read_batch(db, cursor, limit=limit, max_age_s=WEEK, xid_span=xid_span)
    assert len(again) == 0
    assert again.caught_up


def test_rows_of_one_transaction_share_its_xid_and_come_in_key_order(
    db: psycopg.Connection[Any],
) -> None:
    devs = sorted(devices(db).items(), reverse=True)[:5]
    with db.transaction():
        xid = int(scalar(db, "SELECT pg_current_xact_id()::text::bigint"))
        for dev, unit in devs:
            add_rows(db, dev, unit)
    assert scalar(db, "SELECT array_agg(DISTINCT ingest_xid) FROM telemetry") == [xid]
    assert scalar(db, "SELECT array_agg(DISTINCT ingest_xid) FROM dead_letters") == [xid]
    batch = read_batch(db, FeedCursor.start(), max_age_s=WEEK)
    assert [r.device_id for r in batch.telemetry] == sorted(d for d, _ in devs)
    assert batch.horizon > xid


# --- concurrency: the horizon -------------------------------------------------------------
def test_an_open_transaction_holds_back_later_commits_and_nothing_is_skipped(
    db: psycopg.Connection[Any], connect: Connect
) -> None:
    devs = list(devices(db).items())
    add_rows(db, *devs[0])  # committed before anything else: readable throughout
    a, b = connect(), connect()
    a.execute("BEGIN")
    add_rows(a, *devs[1])
    xid_a = int(scalar(a, "SELECT pg_current_xact_id()::text::bigint"))
    add_rows(b, *devs[2])  # autocommit: a later xid, committed first
    xid_b = int(scalar(b, "SELECT max(ingest_xid) FROM telemetry"))
    assert xid_b > xid_a

    got = Collected()
    cursor = drain_until(db, FeedCursor.start(), got, 4)
    assert [r.device_id for r in got.telemetry] == [devs[0][0]]
    assert len(got) == 4
    for _ in range(3):  # B stays invisible however often we ask, while A is open
        batch = read_batch(db, cursor, max_age_s=WEEK)
        assert batch.caught_up
        assert len(batch) == 0
        assert batch.horizon <= xid_a
        cursor = batch.cursor

    a.execute("COMMIT")
    cursor = drain_until(db, cursor, got, 12)
    assert [r.device_id for r in got.telemetry] == [d for d, _ in devs[:3]]  # A before B
    assert [r.device_id for r in got.statuses] == [d for d, _ in devs[:3]]
    assert [r.device_id for r in got.events] == [d for d, _ in devs[:3]]
    assert [r.topic.split("/")[3] for r in got.dead_letters] == [d for d, _ in devs[:3]]
    assert got.matches(Expected(db))


def test_an_aborted_transaction_never_appears_and_does_not_block(
    db: psycopg.Connection[Any], connect: Connect
) -> None:
    devs = list(devices(db).items())
    c, d = connect(), connect()
    c.execute("BEGIN")
    add_rows(c, *devs[0])
    add_rows(d, *devs[1])  # committed, but behind c's open transaction
    got = Collected()
    cursor = drain(db, FeedCursor.start(), got)
    assert len(got) == 0
    c.execute("ROLLBACK")
    cursor = drain_until(db, cursor, got, 4)
    assert [r.device_id for r in got.telemetry] == [devs[1][0]]
    assert len(got) == 4
    add_rows(db, *devs[2])
    drain_until(db, cursor, got, 8)
    assert got.matches(Expected(db))
    assert devs[0][0] not in {r.device_id for r in got.statuses}


def test_read_batch_refuses_a_connection_inside_a_transaction(
    db: psycopg.Connection[Any],
) -> None:
    with db.transaction(), pytest.raises(RuntimeError, match="no transaction"):
        read_batch(db, FeedCursor.start(), max_age_s=WEEK)
    with pytest.raises(ValueError, match="limit"):
        read_batch(db, FeedCursor.start(), max_age_s=WEEK, limit=0)


# --- cursor -------------------------------------------------------------------------------
def test_cursor_json_round_trip_resumes_at_the_same_row(db: psycopg.Connection[Any]) -> None:
    for dev, unit in list(devices(db).items())[:6]:
        add_rows(db, dev, unit)
    first = read_batch(db, FeedCursor.start(), limit=4, max_age_s=WEEK)
    assert not first.caught_up
    assert first.cursor.telemetry.key is not None  # mid-transaction: a keyed position
    text = json.dumps(first.cursor.to_json())
    restored = FeedCursor.from_json(json.loads(text))
    assert restored == first.cursor
    assert FeedCursor.from_json(text) == first.cursor
    assert FeedCursor.from_json(FeedCursor.start().to_json()) == FeedCursor.start()

    rest_a, rest_b = Collected(), Collected()
    drain(db, first.cursor, rest_a, limit=4)
    drain(db, restored, rest_b, limit=4)
    assert rest_a.telemetry == rest_b.telemetry
    assert rest_a.dead_letters == rest_b.dead_letters
    assert len(rest_a.telemetry) == 2
    caught = drain(db, restored, Collected())
    assert FeedCursor.from_json(json.loads(json.dumps(caught.to_json()))) == caught


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"format": 99},
        "not json",
        "[1, 2]",
        {"format": 1, "telemetry": {"xid": 1, "key": None, "synced_at": None}},
        {
            "format": 1,
            **{
                t: {"xid": 5, "key": ["dev", "2024-01-01T00:00:00", 1], "synced_at": None}
                for t in ("telemetry", "events", "statuses", "dead_letters")
            },
        },
    ],
)
def test_cursor_from_json_rejects_what_is_not_a_cursor(bad: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the messages differ per case
        FeedCursor.from_json(bad)


def test_at_horizon_skips_existing_rows(db: psycopg.Connection[Any]) -> None:
    devs = list(devices(db).items())
    for dev, unit in devs[:3]:
        add_rows(db, dev, unit)
    cursor = FeedCursor.at_horizon(db)
    add_rows(db, *devs[3])
    got = Collected()
    drain_until(db, cursor, got, 4)
    assert [r.device_id for r in got.telemetry] == [devs[3][0]]
    assert [r.device_id for r in got.statuses] == [devs[3][0]]
    assert len(got.dead_letters) == 1
    assert len(got.events) == 1


def test_old_device_times_are_pruned_for_telemetry_but_never_for_status(
    db: psycopg.Connection[Any],
) -> None:
    (dev, unit), (dev2, unit2) = list(devices(db).items())[:2]
    cursor = FeedCursor.at_horizon(db)  # a feed that is caught up: pruning applies
    month_ago = datetime.now(UTC) - timedelta(days=30)
    add_rows(db, dev, unit, ts=month_ago)  # older than ingest would accept, except a will
    add_rows(db, dev2, unit2)
    got = Collected()
    drain_until(db, cursor, got, 6)
    assert [r.device_id for r in got.telemetry] == [dev2]
    assert [r.device_id for r in got.events] == [dev2]
    assert [r.device_id for r in got.statuses] == [dev, dev2]  # a last will's old time
    assert len(got.dead_letters) == 2
    # A feed from the beginning has no bound on device time yet: it sees every row.
    everything = Collected()
    drain(db, FeedCursor.start(), everything)
    assert everything.matches(Expected(db))
    assert len(everything.telemetry) == 2


def test_a_feed_that_fell_behind_still_sees_rows_received_while_it_was_down(
    db: psycopg.Connection[Any],
) -> None:
    """The time bound follows the cursor (when it last caught up), not the wall clock: a
    feed resumed from a checkpoint a month old still reads what ingest accepted since."""
    dev, unit = next(iter(devices(db).items()))
    current = FeedCursor.at_horizon(db)
    month_ago = time.time() - 30 * 86_400
    stale = FeedCursor(*(replace(p, synced_at=month_ago) for p in astuple_positions(current)))
    for _ in range(4):  # as if received 25 days ago, each in its own transaction ...
        add_rows(db, dev, unit, ts=datetime.now(UTC) - timedelta(days=25))
        scalar(db, "SELECT pg_current_xact_id()")  # ... with xids in between
    got = Collected()
    cursor = stale
    for _ in range(100):  # limit 1 and tiny windows: many reads that stop mid-way
        batch = read_batch(db, cursor, limit=1, max_age_s=WEEK, xid_span=1)
        got.add(batch)
        cursor = batch.cursor
        if batch.caught_up:
            break
    assert len(got.telemetry) == 4
    assert len(got.events) == 4
    assert got.matches(Expected(db))
    assert cursor.telemetry.synced_at is not None
    assert cursor.telemetry.synced_at > month_ago + 86_400  # caught up: the bound moves on


def astuple_positions(cursor: FeedCursor) -> tuple[Position, ...]:
    return (cursor.telemetry, cursor.events, cursor.statuses, cursor.dead_letters)


# --- shards -------------------------------------------------------------------------------
def test_shard_parse() -> None:
    assert Shard.parse("1/4") == Shard(1, 4)
    assert str(Shard.parse(" 0/1 ")) == "0/1"
    for bad in ("4/4", "1", "a/b", "-1/2", "1/0", "1/2/3", ""):
        with pytest.raises(ValueError, match="shard"):
            Shard.parse(bad)


def test_shards_together_read_every_row_once_and_keep_units_together(
    db: psycopg.Connection[Any],
) -> None:
    devs = devices(db)
    for dev, unit in devs.items():
        add_rows(db, dev, unit)
        add_rows(db, dev, unit)
    add_dead_letter(db, "garbage", b"x")  # no unit segment: still in exactly one shard
    add_dead_letter(db, "firewatch/v1/U-NOPE/D-NOPE/event", b"y")  # unknown unit
    whole = Collected()
    drain(db, FeedCursor.start(), whole, limit=7)
    assert whole.matches(Expected(db))

    count = 3
    parts = []
    for index in range(count):
        part = Collected()
        drain(db, FeedCursor.start(), part, limit=7, shard=Shard(index, count))
        parts.append(part)
    for table in ("telemetry", "events", "statuses", "dead_letters"):
        union = [row for part in parts for row in getattr(part, table)]
        assert sorted(union, key=repr) == sorted(getattr(whole, table), key=repr), table
    assert sum(1 for part in parts if part.telemetry) >= 2, "hash sends every unit to 1 shard"

    shard_of_unit: dict[str, set[int]] = {}
    for index, part in enumerate(parts):
        rows: list[TelemetryRow | EventRow | StatusRow] = [
            *part.telemetry,
            *part.events,
            *part.statuses,
        ]
        for row in rows:
            shard_of_unit.setdefault(devs[row.device_id], set()).add(index)
        for dl in part.dead_letters:
            segments = dl.topic.split("/")
            if len(segments) >= 3:
                shard_of_unit.setdefault(segments[-3], set()).add(index)
    assert set(devs.values()) <= set(shard_of_unit)
    assert all(len(s) == 1 for s in shard_of_unit.values()), shard_of_unit
    # The one-shard split is the whole feed.
    single = Collected()
    drain(db, FeedCursor.start(), single, shard=Shard(0, 1))
    assert single.matches(Expected(db))


# --- the ingest path and partitions -------------------------------------------------------
def test_rows_written_by_the_ingest_writer_carry_its_xid_and_notify(
    db: psycopg.Connection[Any], connect: Connect, database_url: str
) -> None:
    listener = connect()
    listen(listener)
    now = datetime.now(UTC)
    batch = WriteBatch()
    batch.add(water_reading(1, now), ack=1)
    batch.add(status(city.WATER, now, "online", seq=2, firmware="1.0", battery=90.0, rssi=-60.0), 2)
    batch.add(
        DeadLetter(
            now, "firewatch/v1/U-WD-001/D-WD-001-W1/telemetry", b"{", Reason.NOT_JSON, "bad json"
        ),
        ack=3,
    )
    with BatchWriter(database_url, IngestMetrics(), Backoff(0.05, 0.5), threading.Event()) as w:
        result = w.flush(batch)
    assert result.stored == {"telemetry": 1, "device_status": 1}
    assert result.dead_letters == 1
    xids = {
        scalar(db, f"SELECT ingest_xid FROM {t}")
        for t in ("telemetry", "device_status", "dead_letters")
    }
    assert len(xids) == 1
    assert None not in xids
    assert wait_for_rows(listener, 10.0)
    read = read_batch(db, FeedCursor.start(), max_age_s=WEEK)
    assert read.telemetry == batch.rows["telemetry"]
    assert read.statuses == batch.rows["device_status"]
    assert read.dead_letters == batch.dead
    assert read.caught_up


@pytest.mark.flavour("postgres")  # TimescaleDB has no DEFAULT partition to move rows from
def test_new_partitions_get_the_default_and_moved_rows_keep_their_xid(
    db: psycopg.Connection[Any],
) -> None:
    dev, unit = next(iter(devices(db).items()))
    far = datetime.now(UTC) + timedelta(days=40)  # beyond the premade partitions
    add_rows(db, dev, unit, ts=far)
    assert scalar(db, "SELECT tableoid::regclass::text FROM telemetry") == "telemetry_default"
    got = Collected()
    cursor = drain_until(db, FeedCursor.start(), got, 4)

    for table in ("telemetry", "events", "device_status"):
        before = scalar(db, f"SELECT ingest_xid FROM {table}")
        assert before is not None
        assert scalar(db, "SELECT firewatch_ensure_partition(%s::regclass, %s)", table, far.date())
        part = f"{table}_p{far:%Y%m%d}"
        assert scalar(db, f"SELECT tableoid::regclass::text FROM {table}") == part
        assert scalar(db, f"SELECT ingest_xid FROM {table}") == before
        # ATTACH built the parent's ingest_xid index on the new partition.
        assert scalar(
            db,
            "SELECT count(*) FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
            part,
            "%USING btree (ingest_xid)%",
        )
    # The move is not a new row for the feed.
    assert len(read_batch(db, cursor, max_age_s=WEEK)) == 0

    # Through the parent into the new partition, and directly into it: both get the xid.
    with db.transaction():
        xid = scalar(db, "SELECT pg_current_xact_id()::text::bigint")
        add_rows(db, dev, unit, ts=far + timedelta(seconds=1))
        db.execute(
            f"INSERT INTO telemetry_p{far:%Y%m%d} (device_id, seq, ts, received_at)"
            " VALUES (%s, 999, %s, now())",
            (dev, far + timedelta(seconds=2)),
        )
    assert scalar(
        db,
        "SELECT array_agg(ingest_xid ORDER BY seq) FROM telemetry WHERE ts > %s",
        far,
    ) == [xid, xid]
    drain_until(db, cursor, got, 9)
    assert got.matches(Expected(db))


def test_maintain_creating_a_day_keeps_the_feed_exact(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    dev, unit = next(iter(devices(db).items()))
    # A day beyond the premade ones, made by maintain() once it is within premake range.
    day = datetime.now(UTC) + timedelta(days=10)
    add_rows(db, dev, unit, ts=day)
    got = Collected()
    cursor = drain_until(db, FeedCursor.start(), got, 4)
    settings = settings.model_copy(update={"partition_premake_days": 12})
    assert maintain(db, settings).created >= 3
    assert scalar(db, "SELECT tableoid::regclass::text FROM telemetry") == day_container(
        db, "telemetry", day.date()
    )
    add_rows(db, dev, unit, ts=day + timedelta(seconds=1))
    drain_until(db, cursor, got, 8)
    assert got.matches(Expected(db))
    assert scalar(db, "SELECT count(*) FROM telemetry WHERE ingest_xid IS NULL") == 0


# --- wake-ups -----------------------------------------------------------------------------
def test_wait_for_rows_wakes_on_notify_and_times_out_quickly(
    db: psycopg.Connection[Any], connect: Connect
) -> None:
    listener = connect()
    started = time.monotonic()
    assert wait_for_rows(listener, 0.2) is False  # also subscribes
    assert time.monotonic() - started < 2.0
    for _ in range(3):  # a burst of commits ...
        db.execute("SELECT pg_notify(%s, '')", (channels.INGEST,))
    db.execute("SELECT pg_notify('some_other_channel', '')")
    started = time.monotonic()
    assert wait_for_rows(listener, 10.0) is True
    assert time.monotonic() - started < 5.0
    assert wait_for_rows(listener, 0.2) is False  # ... wakes the caller once
    # Only our channel counts.
    listener.execute("LISTEN some_other_channel")
    db.execute("SELECT pg_notify('some_other_channel', '')")
    assert wait_for_rows(listener, 0.3) is False


def test_wait_for_rows_wakes_a_waiting_reader(
    db: psycopg.Connection[Any], connect: Connect
) -> None:
    listener = connect()
    listen(listener)
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(wait_for_rows(listener, 30.0)))
    waiter.start()
    dev, unit = next(iter(devices(db).items()))
    with db.transaction():  # as ingest does: the notification is part of the batch
        add_rows(db, dev, unit)
        db.execute("SELECT pg_notify(%s, '')", (channels.INGEST,))
    waiter.join(timeout=30)
    assert woke == [True]
