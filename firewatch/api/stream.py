"""The live alert stream: Server-Sent Events read from the ``alert_events`` change feed.

Design (one listener, per-client cursors, the backlog stays in PostgreSQL):

* **Where a client is** is nothing but its :class:`~firewatch.storage.changes.ChangeCursor`;
  the event id of every SSE message is that cursor's token (``"xid-id"``). Each client
  reads the feed (:func:`~firewatch.storage.changes.read_changes`) from its own cursor,
  so a client resuming with ``Last-Event-ID`` gets every committed event after it, in
  ``(xid, id)`` order, none twice, however far behind it is — and an event of a
  transaction still open when later ones committed is never skipped: the feed holds
  everything from that transaction's xid on back until it finishes.
* **Waking up**: one ``LISTEN firewatch_alerts`` connection per process
  (:class:`AlertHub`), not one per client. A NOTIFY sets every subscriber's wake-up flag
  (an :class:`asyncio.Event`: a queue of one that coalesces, so it can never overflow);
  each subscriber then reads its feed. Without a NOTIFY (listener reconnecting, or a
  commit whose transaction did not notify) a subscriber reads every ``poll_s`` anyway.
* **Back-pressure**: the generator reads the next batch (≤ ``batch`` rows) only after the
  previous one has been handed to the socket, so a slow client holds at most one batch
  in memory and falls behind *in the table*, not in a queue. A client whose socket does
  not drain for ``send_timeout_s`` is disconnected; it reconnects with its
  ``Last-Event-ID`` and misses nothing.
* **Keep-alive**: a comment line every ``ping_s`` (proxies close idle connections).
* **Database down**: a running stream keeps its connection (pings go on) and retries
  its read with backoff; nothing is lost because the position is the cursor.
* **Shutdown**: :meth:`AlertHub.close` ends every stream cleanly; clients reconnect
  (to another instance, or this one restarted) with their ``Last-Event-ID``.

Feed reads use the sync psycopg pool in worker threads (``anyio.to_thread``) under a
:class:`anyio.CapacityLimiter`, so streams never take more than their share of the
pool and of the thread pool that the request/response routes use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import psycopg
import psycopg_pool
from psycopg.conninfo import make_conninfo
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from firewatch.storage import channels
from firewatch.storage.changes import ChangeCursor, Changes, horizon, read_changes
from firewatch.storage.database import snapshot_xmax

log = logging.getLogger("firewatch.api.stream")
T = TypeVar("T")

LISTEN_APPLICATION_NAME = "firewatch-api-listen"
_BIGINT_MAX = 2**63 - 1  # alert_events.id is a bigint


class BadPosition(ValueError):
    """A ``Last-Event-ID`` that is not a position of this database's alert stream."""


@dataclass(frozen=True)
class StreamOptions:
    poll_s: float = 1.0  # longest wait between reads without a NOTIFY
    ping_s: float = 15.0  # keep-alive comment interval
    batch: int = 500  # rows per feed read (and at most this many events held per client)
    send_timeout_s: float = 30.0  # a client whose socket does not drain this long is dropped
    retry_ms: int = 2000  # the reconnection delay we ask EventSource clients for
    read_retry_max_s: float = 5.0  # longest backoff between reads while the database is down
    reads_in_parallel: int = 4  # feed reads running at once (threads, pool connections)


def event_of(row: dict[str, Any]) -> ServerSentEvent:
    """The SSE message of one ``alert_events`` row from the feed."""
    token = ChangeCursor(int(row["_xid"]), int(row["id"])).to_token()
    data = json.dumps(row["payload"], separators=(",", ":"), ensure_ascii=False)
    return ServerSentEvent(data=data, event=str(row["event"]), id=token)


def _unit_of(row: dict[str, Any]) -> str | None:
    alert = row["payload"].get("alert") if isinstance(row["payload"], dict) else None
    return alert.get("unit_id") if isinstance(alert, dict) else None


class AlertHub:
    """The process's stream machinery: the shared LISTEN connection (a task on the event
    loop) and the subscribers it wakes. :meth:`start` and :meth:`close` run in the app's
    lifespan; :meth:`events` is one client's stream."""

    def __init__(
        self, conninfo: str, pool: psycopg_pool.ConnectionPool[Any], options: StreamOptions
    ) -> None:
        self.options = options
        self._conninfo = make_conninfo(conninfo, application_name=LISTEN_APPLICATION_NAME)
        self._pool = pool
        self._subscribers: set[asyncio.Event] = set()
        self._closed = False
        self._listener: asyncio.Task[None] | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        #: observable state (health, tests, metrics)
        self.listening = False
        self.notifications = 0
        self.reads = 0  # feed reads completed by all subscribers
        self.dropped = 0  # clients disconnected because their socket did not drain

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._limiter = anyio.CapacityLimiter(self.options.reads_in_parallel)
        self._listener = asyncio.create_task(self._listen(), name="firewatch-api-listen")

    def close(self) -> None:
        """End every stream (each finishes its current batch and returns); new ones end at
        once. Idempotent; call from the event loop's thread."""
        self._closed = True
        self._wake_all()

    async def stop(self) -> None:
        self.close()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    def _wake_all(self) -> None:
        for wake in self._subscribers:
            wake.set()

    async def _listen(self) -> None:
        """LISTEN on the alert channel; reconnect with backoff. Every (re)connect wakes all
        subscribers: a NOTIFY may have been missed while the connection was down."""
        delay = 0.1
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {channels.ALERTS}")
                    self.listening = True
                    delay = 0.1
                    self._wake_all()
                    async for _ in conn.notifies():
                        self.notifications += 1
                        self._wake_all()
            except Exception as err:  # the listener must outlive any failure: streams poll
                log.warning("alert stream listener: %s; reconnecting in %.1fs", err, delay)
            finally:
                self.listening = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # -- positions ---------------------------------------------------------------------
    async def start_position(self, token: str | None, since: str) -> ChangeCursor:
        """Where a new stream starts: after ``token`` (a ``Last-Event-ID``), else at the
        beginning of the retained events (``since="beginning"``) or at the current horizon
        (only new events). Raises :class:`BadPosition` for a malformed token or one ahead
        of this database (from another database or a restored backup). An empty token
        counts as none (EventSource sends none after an empty ``id:`` field)."""
        if token is not None and token.strip():
            try:
                cursor = ChangeCursor.from_token(token)
            except ValueError:
                raise BadPosition(
                    f"Last-Event-ID {token!r} is not a stream position: expected"
                    " '<xid>-<id>' as sent in the id field of an event"
                ) from None
            if cursor.id > _BIGINT_MAX:
                raise BadPosition(
                    f"Last-Event-ID {token!r} is not a stream position: its event id is beyond"
                    " any event's"
                )
            xmax = await self._in_thread(self._xmax)
            if cursor.xid >= xmax:
                raise BadPosition(
                    f"Last-Event-ID {token!r} is ahead of this database's alert stream (next"
                    f" transaction id {xmax}): it does not come from this database; reconnect"
                    " without it (or with since=beginning)"
                )
            return cursor
        if since == "beginning":
            return ChangeCursor()
        return await self._in_thread(self._horizon)

    def _xmax(self) -> int:
        with self._pool.connection() as conn:
            return snapshot_xmax(conn)

    def _horizon(self) -> ChangeCursor:
        with self._pool.connection() as conn:
            return horizon(conn)

    def _read(self, cursor: ChangeCursor) -> Changes:
        with self._pool.connection() as conn:
            return read_changes(
                conn,
                table="alert_events",
                xid_column="xid",
                cursor=cursor,
                limit=self.options.batch,
                columns=("event", "payload"),
            )

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        if self._limiter is None:
            raise RuntimeError("AlertHub.start() was not called")
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    # -- one client's stream -----------------------------------------------------------
    async def events(
        self, start: ChangeCursor, unit_id: str | None = None
    ) -> AsyncIterator[ServerSentEvent]:
        """The SSE messages after ``start``, until the client goes or :meth:`close`; with
        ``unit_id``, only that unit's alerts (a unit manager's stream: the position still
        advances past the others, so a resumed stream neither repeats nor misses its own).

        The first message carries only ``id: <start token>`` (and ``retry``): EventSource
        records it as the last event id without dispatching anything, so a client that
        loses its connection before any event arrives still resumes exactly from here.
        """
        wake = asyncio.Event()
        self._subscribers.add(wake)
        try:
            yield ServerSentEvent(id=start.to_token(), retry=self.options.retry_ms)
            cursor = start
            backoff = self.options.poll_s
            while not self._closed:
                wake.clear()  # before reading: a NOTIFY during the read means read again
                try:
                    changes: Changes = await self._in_thread(self._read, cursor)
                except (psycopg.Error, psycopg_pool.PoolTimeout) as err:
                    log.warning("alert stream read failed (%s); retrying in %.1fs", err, backoff)
                    await self._wait(wake, seconds=backoff)
                    backoff = min(backoff * 2, self.options.read_retry_max_s)
                    continue
                backoff = self.options.poll_s
                self.reads += 1
                for row in changes.rows:
                    if unit_id is None or _unit_of(row) == unit_id:
                        yield event_of(row)
                cursor = changes.cursor
                if changes.caught_up:
                    await self._wait(wake, seconds=self.options.poll_s)
        finally:
            self._subscribers.discard(wake)

    async def _wait(self, wake: asyncio.Event, *, seconds: float) -> None:
        """Until woken (NOTIFY, close) or ``seconds`` passed (the poll fallback)."""
        if self._closed:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await wake.wait()


class AlertStreamResponse(EventSourceResponse):
    """The SSE response of one client: :meth:`AlertHub.events` with the hub's ping and send
    timeout; a client dropped for not draining its socket is counted and logged."""

    def __init__(self, hub: AlertHub, start: ChangeCursor, unit_id: str | None = None) -> None:
        super().__init__(
            hub.events(start, unit_id),
            ping=hub.options.ping_s,
            send_timeout=hub.options.send_timeout_s,
        )
        self._hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except* SendTimeoutError:
            # except*: the event sender and the pinger both wait on the stuck socket, and
            # when both time out together the task group raises them as one group (seen
            # under load in CI); either way it is one client dropped.
            self._hub.dropped += 1
            client = scope.get("client")
            log.warning(
                "dropped alert stream client %s: its socket did not drain for %.0fs (it"
                " resumes from its Last-Event-ID and misses nothing)",
                f"{client[0]}:{client[1]}" if client else "?",
                self._hub.options.send_timeout_s,
            )
