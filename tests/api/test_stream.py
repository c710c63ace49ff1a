"""The live alert stream (GET /alerts/stream) over real HTTP: a uvicorn server on a free
port, httpx streaming clients on threads, the real database. Ordering, resumption with
Last-Event-ID (none missed, none repeated), open transactions, back-pressure, the
listener reconnecting, shutdown, and the commit-to-client latency."""

from __future__ import annotations

import socket
import statistics
import time
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.api.deps import ApiOptions
from firewatch.api.server import ApiServer
from firewatch.api.stream import LISTEN_APPLICATION_NAME, AlertHub, StreamOptions
from firewatch.core.alerts import Alert
from firewatch.core.domain import Severity
from firewatch.core.settings import Settings
from firewatch.storage.changes import ChangeCursor
from tests.api.sse import Event, SseReader
from tests.builders.alerts import new_alert as raise_new_alert
from tests.builders.people import ADMIN
from tests.helpers import scalar, wait_until

# Every test calls the API as an admin (``ADMIN``; the stream needs someone, issue 12).
pytestmark = pytest.mark.usefixtures("admin_token")


def new_alert(db: psycopg.Connection[Any]) -> Alert:
    """A new smoke alert in a shed (critical)."""
    return raise_new_alert(db, type_="smoke", severity=Severity.CRITICAL)


def act(api: ApiServer, alert_id: int, action: str, note: str = "") -> dict[str, Any]:
    r = httpx.post(
        f"{api.url}/alerts/{alert_id}/actions",
        json={"action": action, "note": note},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def feed(db: psycopg.Connection[Any], after: str | None = None) -> list[tuple[str, str]]:
    """``(token, event)`` of every committed stream event, in feed order, after ``after``."""
    rows = db.execute("SELECT xid, id, event FROM alert_events ORDER BY xid, id").fetchall()
    out = [(ChangeCursor(int(x), int(i)).to_token(), str(e)) for x, i, e in rows]
    if after is not None:
        cut = ChangeCursor.from_token(after)
        out = [(t, e) for t, e in out if ChangeCursor.from_token(t) > cut]
    return out


def seen(events: list[Event]) -> list[tuple[str | None, str]]:
    return [(e.id, e.event) for e in events]


def stream(api: ApiServer, **kw: Any) -> SseReader:
    kw["headers"] = {**ADMIN, **kw.get("headers", {})}
    return SseReader(f"{api.url}/alerts/stream", **kw).start()


def hub_of(api: ApiServer) -> AlertHub:
    return api.context.require_hub()


# --- order and ids ------------------------------------------------------------------------
def test_a_client_receives_created_then_the_action_in_order_with_ids(
    live: ApiServer, db: psycopg.Connection[Any]
) -> None:
    reader = stream(live)
    alert = new_alert(db)
    act(live, alert.id, "acknowledge", "on my way")
    created, acked = reader.take(2)
    assert (created.event, acked.event) == ("created", "acknowledge")
    assert created.json()["alert"]["id"] == alert.id
    assert created.json()["alert"]["state"] == "open"
    assert acked.json()["alert"]["state"] == "acknowledged"
    assert (acked.json()["actor"], acked.json()["note"]) == ("t-admin", "on my way")
    assert seen([created, acked]) == feed(db)  # ids are the feed positions, xid-id
    assert ChangeCursor.from_token(str(created.id)) < ChangeCursor.from_token(str(acked.id))
    reader.close()


def test_without_a_last_event_id_only_new_events_and_since_beginning_all(
    live: ApiServer, db: psycopg.Connection[Any]
) -> None:
    before = [new_alert(db) for _ in range(3)]
    reader = stream(live)  # the first message (id only) arrived: the start is fixed
    after = new_alert(db)
    (ev,) = reader.take(1)
    assert ev.json()["alert"]["id"] == after.id

    everything = stream(live, params={"since": "beginning"})
    got = everything.take(4)
    assert [e.json()["alert"]["id"] for e in got] == [a.id for a in [*before, after]]
    assert seen(got) == feed(db)
    reader.close()
    everything.close()


def test_an_empty_last_event_id_counts_as_none(
    live: ApiServer, db: psycopg.Connection[Any]
) -> None:
    new_alert(db)
    reader = stream(live, headers={"Last-Event-ID": ""})  # not 400, and not since beginning
    after = new_alert(db)
    (ev,) = reader.take(1)
    assert ev.json()["alert"]["id"] == after.id
    reader.close()


def test_a_client_gone_before_any_event_resumes_from_its_start_position(
    live: ApiServer, db: psycopg.Connection[Any]
) -> None:
    """The first message carries only ``id:`` (EventSource keeps it as the last event id),
    so a client that loses its connection before any event still misses nothing."""
    reader = stream(live)
    start = reader.last_id
    assert start is not None
    reader.close()
    missed = new_alert(db)
    again = stream(live, headers={"Last-Event-ID": start})
    (ev,) = again.take(1)
    assert ev.json()["alert"]["id"] == missed.id
    again.close()


# --- resumption -----------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["header", "query"])
def test_reconnecting_with_last_event_id_gets_exactly_the_events_after_it(
    live: ApiServer, db: psycopg.Connection[Any], how: str
) -> None:
    hub = hub_of(live)
    k = 3
    reader = stream(live, stop_after=k)
    alert = new_alert(db)
    for action in ("acknowledge", "confirm_fire", "resolve", "close"):
        act(live, alert.id, action)
    got = reader.take(k)
    wait_until(
        lambda: reader.ended.is_set() and hub.subscribers == 0, 10, "the server to see it go"
    )
    last = got[-1].id
    assert last is not None
    assert seen(got) == feed(db)[:k]

    # more changes while it is away: new alerts, actions
    other = new_alert(db)
    act(live, other.id, "mark_false_alarm")
    expected = feed(db, after=last)
    assert len(expected) == 5 - k + 2

    if how == "header":
        # the header wins over a stale ?last_event_id= (EventSource keeps the URL unchanged)
        first = feed(db)[0][0]
        again = stream(live, headers={"Last-Event-ID": last}, params={"last_event_id": first})
    else:
        again = stream(live, params={"last_event_id": last})
    got_again = again.take(len(expected))
    assert seen(got_again) == expected  # none missed, none repeated, in order
    # and nothing extra: the next event is the next change
    final = new_alert(db)
    (nxt,) = again.take(1)
    assert nxt.json()["alert"]["id"] == final.id
    again.close()


def test_an_open_transaction_delays_its_events_but_no_cursor_ever_skips_them(
    live: ApiServer, db: psycopg.Connection[Any], database_url: str
) -> None:
    hub = hub_of(live)
    watching = stream(live)
    new_alert(db)
    (e0,) = watching.take(1)
    assert e0.id is not None

    with psycopg.connect(database_url, autocommit=True) as slow:
        slow.execute("BEGIN")
        in_slow = new_alert(slow)  # its xid is older than the next commit's
        resuming = stream(live, headers={"Last-Event-ID": e0.id})
        after = new_alert(db)  # commits while `slow` is still open
        # let the server read the feed (on the commit's NOTIFY and polls) while `slow` is
        # open: every subscriber's in-flight read finishes, then one more each
        reads = hub.reads
        wait_until(lambda: hub.reads >= reads + 2 * hub.subscribers + 1, 10, "feed reads")
        assert watching.received == [e0]  # held back: nothing after `slow`'s xid yet
        assert resuming.received == []
        slow.execute("COMMIT")

    for reader in (watching, resuming):
        got = reader.take(2)
        assert [e.json()["alert"]["id"] for e in got] == [in_slow.id, after.id]
        assert seen(got) == feed(db, after=e0.id)
    # and resuming from the held-back event gets the rest, still in order
    held = str(watching.received[1].id)
    mid = stream(live, headers={"Last-Event-ID": held})
    new_alert(db)
    assert seen(mid.take(2)) == feed(db, after=held)
    for reader in (watching, resuming, mid):
        reader.close()


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("banana", "Last-Event-ID 'banana' is not a stream position: expected '<xid>-<id>'"),
        ("12", "is not a stream position"),
        ("-1-2", "is not a stream position"),
        ("999999999999-1", "is ahead of this database's alert stream"),
    ],
)
def test_a_bad_last_event_id_is_400_saying_why(live: ApiServer, token: str, says: str) -> None:
    for kw in (
        {"headers": {"Last-Event-ID": token, **ADMIN}},
        {"params": {"last_event_id": token}, "headers": ADMIN},
    ):
        r = httpx.get(f"{live.url}/alerts/stream", **kw)  # type: ignore[arg-type]
        assert r.status_code == 400
        assert says in r.json()["detail"]
    r = httpx.get(f"{live.url}/alerts/stream", params={"since": "yesterday"}, headers=ADMIN)
    assert r.status_code == 422
    assert "'now' or 'beginning'" in r.text


# --- batches, back-pressure, listener, shutdown --------------------------------------------
def test_a_backlog_larger_than_a_batch_arrives_complete_and_in_order(
    settings: Settings, database_url: str, db: psycopg.Connection[Any]
) -> None:
    for _ in range(23):
        new_alert(db)
    options = ApiOptions(stream=StreamOptions(ping_s=0.2, batch=5))
    with ApiServer(settings, database_url, options=options) as api:
        reader = stream(api, params={"since": "beginning"})
        assert seen(reader.take(23)) == feed(db)
        reader.close()


def test_a_client_that_stops_reading_is_dropped_and_resumes_without_loss(
    settings: Settings, database_url: str, db: psycopg.Connection[Any]
) -> None:
    """Back-pressure: nothing queues in memory for a slow client; one whose socket does not
    drain within send_timeout is disconnected, and on reconnecting it gets everything."""
    # ~12 MB of events: more than the socket buffers between server and client hold
    db.execute(
        "INSERT INTO alert_events (alert_id, event, payload)"
        " SELECT g, 'updated', jsonb_build_object('n', g, 'pad', repeat('x', 200000))"
        " FROM generate_series(1, 60) g"
    )
    options = ApiOptions(stream=StreamOptions(ping_s=0.2, send_timeout_s=0.5))
    with ApiServer(settings, database_url, options=options) as api:
        hub = hub_of(api)
        host, port = api.url.removeprefix("http://").split(":")
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect((host, int(port)))
        auth = ADMIN["Authorization"].encode()
        stuck.sendall(
            b"GET /alerts/stream?since=beginning HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + auth
            + b"\r\n\r\n"
        )
        wait_until(lambda: hub.dropped == 1, 30, "the stuck client to be dropped")
        wait_until(lambda: hub.subscribers == 0, 10, "its subscription to end")
        stuck.close()

        reader = stream(api, params={"since": "beginning"})
        got = reader.take(60, timeout=30)
        assert [e.json()["n"] for e in got] == list(range(1, 61))
        assert seen(got) == feed(db)
        reader.close()


def test_the_stream_survives_the_listener_connection_being_killed(
    live: ApiServer, db: psycopg.Connection[Any]
) -> None:
    hub = hub_of(live)
    reader = stream(live)
    wait_until(lambda: hub.listening, 10, "the listener")

    def listener_pids() -> list[int]:
        rows = db.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database()",
            (LISTEN_APPLICATION_NAME,),
        ).fetchall()
        return [int(r[0]) for r in rows]

    (old,) = listener_pids()
    assert scalar(db, "SELECT pg_terminate_backend(%s)", old)
    first = new_alert(db)  # while the listener may be down: the poll fallback delivers it
    wait_until(lambda: hub.listening and listener_pids() not in ([], [old]), 15, "a new listener")
    second = new_alert(db)
    got = reader.take(2)
    assert [e.json()["alert"]["id"] for e in got] == [first.id, second.id]
    r = httpx.get(f"{live.url}/health")
    assert r.json()["stream_listener"] == "listening"
    assert r.json()["stream_clients"] == 1
    reader.close()


def test_shutdown_ends_live_streams_cleanly_and_promptly(
    settings: Settings, database_url: str, db: psycopg.Connection[Any]
) -> None:
    api = ApiServer(settings, database_url).start()  # production ping interval: 15 s
    reader = stream(api)
    new_alert(db)
    reader.take(1)
    began = time.monotonic()
    api.stop()
    took = time.monotonic() - began
    wait_until(reader.ended.is_set, 5, "the stream to end")
    assert reader.ended_by_server, reader.error
    assert reader.error is None
    assert took < 5, f"shutdown took {took:.1f}s"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{api.url}/health")


# --- latency --------------------------------------------------------------------------------
def test_latency_from_commit_to_the_client(live: ApiServer, db: psycopg.Connection[Any]) -> None:
    """Time from a ``raise_alert`` commit to the event parsed by an SSE client, over 50
    alerts one at a time (NOTIFY-driven: the poll fallback is 1 s). Measured from sending
    COMMIT (an upper bound: it includes the commit itself) and from COMMIT returning."""
    reader = stream(live)
    from_send: list[float] = []
    from_return: list[float] = []
    for _ in range(50):
        db.execute("BEGIN")
        alert = new_alert(db)  # inside the open transaction: a savepoint
        sent = time.perf_counter()
        db.execute("COMMIT")
        returned = time.perf_counter()
        (ev,) = reader.take(1)
        assert ev.json()["alert"]["id"] == alert.id
        from_send.append(ev.received - sent)
        from_return.append(ev.received - returned)
    reader.close()

    def summary(xs: list[float]) -> str:
        ms = sorted(x * 1000 for x in xs)
        return (
            f"median {statistics.median(ms):.2f} ms, p95 {ms[int(len(ms) * 0.95) - 1]:.2f}"
            f" ms, min {ms[0]:.2f} ms, max {ms[-1]:.2f} ms"
        )

    print(
        f"\nstream latency over {len(from_send)} alerts, commit sent -> client:"
        f" {summary(from_send)}; commit returned -> client: {summary(from_return)}"
    )
    median = statistics.median(from_send) * 1000
    assert median < 100, f"median {median:.1f} ms: the NOTIFY wake-up is not working"
