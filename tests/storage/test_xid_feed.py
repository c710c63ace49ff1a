"""The one xid read behind every feed (firewatch/storage/xid_feed.py) and the channel list
(firewatch/storage/channels.py). The feeds' guarantees are tested through the feeds
(test_feed.py, test_changes.py, tests/api/test_stream.py); here: what the generic read
adds on its own — xid windows give the same rows as one scan, filters, the names it
refuses — and that only known channels can be listened to."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from firewatch.storage import channels
from firewatch.storage.xid_feed import Position, Source, read_after, snapshot
from tests.conftest import Connect
from tests.helpers import wait_until

EVENTS = Source("alert_events", "xid", (("id", "bigint"),), ("alert_id", "event"))


def add_events(conn: psycopg.Connection[Any], alert_ids: list[int]) -> None:
    with conn.transaction():
        for a in alert_ids:
            conn.execute(
                "INSERT INTO alert_events (alert_id, event, payload) VALUES (%s, 'created', '{}')",
                (a,),
            )


def drain(
    conn: psycopg.Connection[Any], *, limit: int, span: int | None, **filters: Any
) -> list[tuple[Any, ...]]:
    """Every row from the start, following positions until caught up."""
    where = ("t.alert_id %% 2 = %(parity)s",) if filters else ()
    pos, out = Position(0), []
    while True:
        with snapshot(conn) as (cur, snap):
            read = read_after(
                cur, EVENTS, pos, snap, limit=limit, where=where, params=filters, xid_span=span
            )
        assert read.position.xid >= pos.xid
        out += read.rows
        if read.rows:
            assert read.names == ["alert_id", "event"]
        pos = read.position
        if read.caught_up:
            return out


def test_xid_windows_and_one_scan_read_the_same_rows(connect: Connect) -> None:
    conn = connect()
    for first in range(0, 12, 3):  # four transactions of three rows
        add_events(conn, [first, first + 1, first + 2])
    expected = conn.execute(
        "SELECT xid, id, alert_id, event FROM alert_events ORDER BY xid, id"
    ).fetchall()
    wait_until(lambda: len(drain(conn, limit=1000, span=None)) == 12, 10, "all committed")
    for limit in (1, 2, 5, 1000):
        for span in (None, 1, 2):
            assert drain(conn, limit=limit, span=span) == expected, (limit, span)
    odd = drain(conn, limit=2, span=1, parity=1)
    assert odd == [r for r in expected if r[2] % 2 == 1]


def test_every_column_when_none_are_named(connect: Connect) -> None:
    conn = connect()
    add_events(conn, [7])
    everything = Source("alert_events", "xid", (("id", "bigint"),))
    for _ in range(100):  # a short unrelated transaction may hold the horizon a moment
        with snapshot(conn) as (cur, snap):
            read = read_after(cur, everything, Position(0), snap, limit=10)
        if read.rows:
            break
    assert {"id", "xid", "alert_id", "event", "payload"} <= set(read.names)
    assert len(read.rows[0]) == 2 + len(read.names)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Source("alert_events; DROP TABLE x", "xid", (("id", "bigint"),)),
        lambda: Source("alert_events", "Xid", (("id", "bigint"),)),
        lambda: Source("alert_events", "xid", (("id) OR (1=1", "bigint"),)),
        lambda: Source("alert_events", "xid", (("id", "bigint"),), ("event", "1; DROP")),
        lambda: Source("alert_events", "xid", ()),
    ],
)
def test_names_that_are_not_plain_identifiers_are_refused(make: Any) -> None:
    with pytest.raises(ValueError, match=r"identifier|needs a key"):
        make()


def test_a_read_needs_a_connection_without_a_transaction(connect: Connect) -> None:
    conn = connect()
    with (
        conn.transaction(),
        pytest.raises(RuntimeError, match="this reader needs a connection with no transaction"),
        snapshot(conn, "this reader"),
    ):
        pass
    with pytest.raises(ValueError, match="limit"), snapshot(conn) as (cur, snap):
        read_after(cur, EVENTS, Position(0), snap, limit=0)


def test_only_known_channels_can_be_listened_to(connect: Connect, database_url: str) -> None:
    conn = connect()
    channels.listen(conn, channels.ALL)
    with pytest.raises(ValueError, match="not a Firewatch NOTIFY channel"):
        channels.listen(conn, ["firewatch_nothing"])
    with (
        psycopg.connect(database_url) as in_transactions,
        pytest.raises(RuntimeError, match="autocommit"),
    ):
        channels.listen(in_transactions, [channels.INGEST])
