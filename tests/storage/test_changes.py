"""The change feed over xid-stamped tables (firewatch/storage/changes.py) on a real
PostgreSQL: every committed change once, in (xid, id) order, held back by open
transactions, newest version last."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from firewatch.core.anomalies import Anomaly
from firewatch.storage.anomalies import upsert_anomalies
from firewatch.storage.changes import ChangeCursor, Changes, horizon, read_changes
from tests.builders.alerts import EPOCH, anomaly
from tests.conftest import Connect
from tests.helpers import scalar

Change = tuple[int, int, int]  # (xid, id, revision)
T0 = EPOCH
_n = itertools.count(1)


def episode(device: str | None = None, **changes: Any) -> Anomaly:
    """A fresh anomaly episode (a new row unless ``device`` and times repeat one)."""
    fields: dict[str, Any] = {"unit_id": "U-X", "score": 0.5, "explanation": "low"}
    return anomaly(device or f"D-X-{next(_n):05d}", T0, **{**fields, **changes})


def add(conn: psycopg.Connection[Any], *eps: Anomaly) -> None:
    assert upsert_anomalies(conn, list(eps)) == len(eps)


def truth(conn: psycopg.Connection[Any]) -> list[Change]:
    """The current version of every row, in feed order, straight from the table."""
    rows = conn.execute(
        "SELECT change_xid, id, revision FROM anomalies ORDER BY change_xid, id"
    ).fetchall()
    return [(int(x), int(i), int(r)) for x, i, r in rows]


def as_changes(batch: Changes) -> list[Change]:
    return [(int(r["_xid"]), int(r["id"]), int(r["revision"])) for r in batch.rows]


def drain(
    conn: psycopg.Connection[Any], cursor: ChangeCursor, into: list[Change], limit: int = 1000
) -> ChangeCursor:
    """Read until caught up; return the final cursor."""
    for _ in range(10_000):
        batch = read_changes(
            conn, table="anomalies", xid_column="change_xid", cursor=cursor, limit=limit
        )
        assert len(batch.rows) <= limit
        into += as_changes(batch)
        assert batch.cursor >= cursor, "the cursor never moves back"
        assert batch.cursor != cursor or batch.caught_up, "the cursor must move until caught up"
        cursor = batch.cursor
        if batch.caught_up:
            return cursor
    raise AssertionError("never caught up")


def drain_until(
    conn: psycopg.Connection[Any],
    cursor: ChangeCursor,
    into: list[Change],
    count: int,
    limit: int = 1000,
    timeout: float = 10.0,
) -> ChangeCursor:
    """Read until ``count`` changes were collected (an unrelated short transaction on the
    server may hold the horizon for a moment), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    cursor = drain(conn, cursor, into, limit)
    while len(into) < count:
        assert time.monotonic() < deadline, f"read {len(into)} of {count} changes"
        cursor = drain(conn, cursor, into, limit)
    return cursor


def xid_of(conn: psycopg.Connection[Any]) -> int:
    return int(scalar(conn, "SELECT pg_current_xact_id()::text::bigint"))


# --- exactly once, in order ---------------------------------------------------------------
@pytest.mark.parametrize("limit", [1, 2, 3, 1000])
def test_every_committed_change_once_in_xid_and_id_order(connect: Connect, limit: int) -> None:
    conn = connect()
    # A takes its xid first but writes last: its rows get higher ids but come first.
    a = connect()
    a.execute("BEGIN")
    xid_a = xid_of(a)
    for _ in range(3):  # transactions of several rows each, and single-row ones
        with conn.transaction():
            add(conn, episode(), episode(), episode())
        add(conn, episode())
    add(a, episode(), episode())
    a.execute("COMMIT")
    expected = truth(conn)
    assert len(expected) == 14
    assert expected[0][0] == xid_a
    assert [i for _, i, _ in expected] != sorted(i for _, i, _ in expected)

    got: list[Change] = []
    cursor = drain_until(conn, ChangeCursor(), got, 14, limit=limit)
    assert got == expected
    # Changes committed after catching up come next, nothing twice.
    add(conn, episode(), episode())
    cursor = drain_until(conn, cursor, got, 16, limit=limit)
    assert got == truth(conn)
    assert len(set(got)) == 16
    again = read_changes(conn, table="anomalies", xid_column="change_xid", cursor=cursor)
    assert again.rows == []
    assert again.caught_up
    assert again.cursor == cursor


def test_rows_carry_every_column_or_the_chosen_ones(connect: Connect) -> None:
    conn = connect()
    add(conn, episode(kind="leak"))
    full = read_changes(conn, table="anomalies", xid_column="change_xid", cursor=ChangeCursor())
    assert len(full.rows) == 1
    assert full.rows[0]["kind"] == "leak"
    assert full.rows[0]["_xid"] == full.rows[0]["change_xid"]
    some = read_changes(
        conn, table="anomalies", xid_column="change_xid", cursor=ChangeCursor(), columns=["kind"]
    )
    assert set(some.rows[0]) == {"_xid", "id", "kind"}


def test_a_row_updated_later_comes_back_with_its_new_version(connect: Connect) -> None:
    conn = connect()
    first = episode()
    add(conn, first, episode())
    got: list[Change] = []
    cursor = drain_until(conn, ChangeCursor(), got, 2)
    assert [r for _, _, r in got] == [1, 1]
    add(conn, replace(first, revision=2, last_at=T0 + 5))
    cursor = drain_until(conn, cursor, got, 3)
    (xid1, id1, _), (xid3, id3, rev3) = got[0], got[2]
    assert id3 == id1
    assert rev3 == 2
    assert xid3 > xid1
    # Updated twice before the next read: only the newest version, once.
    add(conn, replace(first, revision=3, last_at=T0 + 6))
    add(conn, replace(first, revision=4, last_at=T0 + 7))
    drain_until(conn, cursor, got, 4)
    assert len(got) == 4
    assert got[3][1:] == (id1, 4)
    assert got[3] == truth(conn)[-1]


# --- concurrency: the horizon -------------------------------------------------------------
def test_an_open_transaction_holds_back_its_changes_and_later_commits(connect: Connect) -> None:
    conn = connect()
    add(conn, episode(device="D-BEFORE"))  # committed before anything else: readable throughout
    a, b = connect(), connect()
    a.execute("BEGIN")
    add(a, episode(device="D-A"))
    xid_a = xid_of(a)
    add(b, episode(device="D-B"))  # autocommit: a later xid, committed first
    xid_b = int(scalar(b, "SELECT change_xid FROM anomalies WHERE device_id = 'D-B'"))
    assert xid_b > xid_a

    got: list[Change] = []
    cursor = drain_until(conn, ChangeCursor(), got, 1)
    for _ in range(3):  # B stays invisible however often we ask, while A is open
        batch = read_changes(conn, table="anomalies", xid_column="change_xid", cursor=cursor)
        assert batch.caught_up
        assert batch.rows == []
        assert batch.cursor.xid < xid_a  # the cursor never passes the open transaction
        cursor = batch.cursor
    assert len(got) == 1

    a.execute("COMMIT")
    drain_until(conn, cursor, got, 3)
    assert [x for x, _, _ in got[1:]] == [xid_a, xid_b]  # A before B, nothing skipped
    assert got == truth(conn)


def test_an_aborted_transaction_never_appears_and_does_not_block(connect: Connect) -> None:
    conn = connect()
    c, d = connect(), connect()
    c.execute("BEGIN")
    add(c, episode(device="D-ABORTED"))
    add(d, episode(device="D-KEPT"))
    got: list[Change] = []
    cursor = drain(conn, ChangeCursor(), got)
    assert got == []
    c.execute("ROLLBACK")
    cursor = drain_until(conn, cursor, got, 1)
    add(conn, episode(device="D-AFTER"))
    drain_until(conn, cursor, got, 2)
    assert got == truth(conn)
    assert len(got) == 2


def test_read_changes_refuses_a_connection_inside_a_transaction(connect: Connect) -> None:
    conn = connect()
    with conn.transaction(), pytest.raises(RuntimeError, match="no transaction"):
        read_changes(conn, table="anomalies", xid_column="change_xid", cursor=ChangeCursor())


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_refused(connect: Connect, limit: int) -> None:
    conn = connect()
    add(conn, episode())
    with pytest.raises(ValueError, match="limit"):
        read_changes(
            conn, table="anomalies", xid_column="change_xid", cursor=ChangeCursor(), limit=limit
        )


def test_another_xid_stamped_table_alert_events(connect: Connect) -> None:
    conn = connect()
    with conn.transaction():
        for i in range(3):
            conn.execute(
                "INSERT INTO alert_events (alert_id, event, payload) VALUES (%s, 'created', '{}')",
                (i,),
            )
    batch = read_changes(conn, table="alert_events", xid_column="xid", cursor=ChangeCursor())
    for _ in range(100):  # a short unrelated transaction may hold the horizon a moment
        if batch.rows:
            break
        batch = read_changes(conn, table="alert_events", xid_column="xid", cursor=ChangeCursor())
    assert [r["alert_id"] for r in batch.rows] == [0, 1, 2]
    assert len({r["_xid"] for r in batch.rows}) == 1


# --- cursor -------------------------------------------------------------------------------
def test_cursor_token_and_json_round_trip(connect: Connect) -> None:
    conn = connect()
    for _ in range(5):
        add(conn, episode())
    first = read_changes(
        conn, table="anomalies", xid_column="change_xid", cursor=ChangeCursor(), limit=2
    )
    for _ in range(100):
        if len(first.rows) == 2:
            break
        first = read_changes(
            conn, table="anomalies", xid_column="change_xid", cursor=ChangeCursor(), limit=2
        )
    assert not first.caught_up
    c = first.cursor
    assert c == ChangeCursor(int(first.rows[-1]["_xid"]), int(first.rows[-1]["id"]))
    assert ChangeCursor.from_token(c.to_token()) == c
    assert c.to_token() == f"{c.xid}-{c.id}"
    assert ChangeCursor.from_json(c.to_json()) == c
    assert ChangeCursor.from_json(json.dumps(c.to_json())) == c
    assert ChangeCursor.from_token(" 12-34 ") == ChangeCursor(12, 34)
    assert ChangeCursor.from_json(ChangeCursor().to_json()) == ChangeCursor()
    rest_a: list[Change] = []
    rest_b: list[Change] = []
    drain(conn, c, rest_a, limit=2)
    drain(conn, ChangeCursor.from_token(c.to_token()), rest_b, limit=2)
    assert rest_a == rest_b
    assert len(rest_a) == 3
    assert as_changes(first) + rest_a == truth(conn)


def test_cursors_order_by_xid_then_id() -> None:
    assert ChangeCursor(1, 99) < ChangeCursor(2, 0) < ChangeCursor(2, 1)
    assert max(ChangeCursor(5, 1), ChangeCursor(4, 2**62)) == ChangeCursor(5, 1)


@pytest.mark.parametrize("bad", ["", "12", "12-", "-12-3", "a-b", "1-2-3", "1_2", "1 - 2", "0x1-2"])
def test_bad_tokens_raise_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="not a change cursor"):
        ChangeCursor.from_token(bad)


@pytest.mark.parametrize(
    "bad",
    ["not json", "[1, 2]", "{}", {}, {"xid": 1}, {"xid": "x", "id": 2}, {"xid": None, "id": 1}],
)
def test_bad_json_raises_value_error(bad: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the messages differ per case
        ChangeCursor.from_json(bad)


def test_horizon_skips_existing_changes(connect: Connect) -> None:
    conn = connect()
    for _ in range(3):
        add(conn, episode())
    cursor = horizon(conn)
    add(conn, episode(device="D-NEW"))
    got: list[Change] = []
    drain_until(conn, cursor, got, 1)
    new_id = int(scalar(conn, "SELECT id FROM anomalies WHERE device_id = 'D-NEW'"))
    assert [i for _, i, _ in got] == [new_id]


# --- identifiers --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "xid_column", "columns"),
    [
        ("anomalies; DROP TABLE anomalies", "change_xid", None),
        ("anomalies", "change_xid) OR (1=1", None),
        ("anomalies", "change_xid", ["kind", "1; DROP TABLE anomalies"]),
        ("Anomalies", "change_xid", None),
        ("public.anomalies", "change_xid", None),
        ("", "change_xid", None),
    ],
)
def test_identifiers_are_validated(
    connect: Connect, table: str, xid_column: str, columns: list[str] | None
) -> None:
    conn = connect()
    add(conn, episode())
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        read_changes(
            conn, table=table, xid_column=xid_column, cursor=ChangeCursor(), columns=columns
        )
    assert scalar(conn, "SELECT count(*) FROM anomalies") == 1
