"""A Server-Sent Events client for tests: a real HTTP connection (httpx, streaming) read
on a thread, events parsed as EventSource does and handed over through a queue."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    id: str | None
    event: str
    data: str
    received: float = field(compare=False)  # time.perf_counter() when parsed

    def json(self) -> Any:
        return json.loads(self.data)


class SseReader:
    """``GET url`` as an event stream. ``stop_after``: disconnect right after that many
    events (what a client that goes away after event k looks like to the server)."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        stop_after: int | None = None,
    ) -> None:
        self._url, self._headers, self._params = url, dict(headers or {}), dict(params or {})
        self._stop_after = stop_after
        self.events: queue.Queue[Event] = queue.Queue()
        self.received: list[Event] = []
        self.last_id: str | None = None  # as EventSource keeps it (id-only messages too)
        self.first_id: str | None = None  # the id of the first message (the start position)
        self.pings = 0
        self.status: int | None = None
        self.error: BaseException | None = None
        self.connected = threading.Event()  # the first message (or an error) arrived
        self.ended = threading.Event()  # the stream ended (server, stop_after or close)
        self.ended_by_server = False
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sse-reader", daemon=True)

    def start(self, timeout: float = 10.0) -> SseReader:
        self._thread.start()
        if not self.connected.wait(timeout):
            raise AssertionError(f"no first message from {self._url} within {timeout}s")
        if self.error is not None:
            raise AssertionError(f"stream failed: {self.error!r}") from self.error
        assert self.status == 200, f"stream answered {self.status}"
        return self

    def take(self, n: int, timeout: float = 10.0) -> list[Event]:
        """The next ``n`` events, failing after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        out: list[Event] = []
        while len(out) < n:
            left = deadline - time.monotonic()
            try:
                out.append(self.events.get(timeout=max(left, 0.0)))
            except queue.Empty:
                raise AssertionError(
                    f"received {len(out)} of {n} events within {timeout}s: "
                    f"{[(e.event, e.id) for e in out]}; reader error: {self.error!r}"
                ) from None
        return out

    def close(self, timeout: float = 10.0) -> None:
        """Disconnect (at the next message: the server pings often in these tests)."""
        self._closing.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the reader did not stop"

    def _run(self) -> None:
        fields: dict[str, str] = {}
        data: list[str] = []
        try:
            timeout = httpx.Timeout(10.0, read=None)
            with (
                httpx.Client(timeout=timeout) as client,
                client.stream("GET", self._url, headers=self._headers, params=self._params) as r,
            ):
                self.status = r.status_code
                if r.status_code != 200:
                    r.read()
                    self.connected.set()
                    return
                for line in r.iter_lines():
                    if self._closing.is_set():
                        return
                    if line.startswith(":"):
                        self.pings += 1
                        continue
                    if line:
                        name, _, value = line.partition(":")
                        value = value.removeprefix(" ")
                        if name == "data":
                            data.append(value)
                        else:
                            fields[name] = value
                        continue
                    # a blank line dispatches the message
                    if "id" in fields:
                        self.last_id = fields["id"]
                        if self.first_id is None:
                            self.first_id = fields["id"]
                    self.connected.set()
                    if data:
                        ev = Event(
                            fields.get("id"),
                            fields.get("event", "message"),
                            "\n".join(data),
                            time.perf_counter(),
                        )
                        self.received.append(ev)
                        self.events.put(ev)
                        if self._stop_after is not None and len(self.received) >= self._stop_after:
                            return
                    fields, data = {}, []
                self.ended_by_server = True
        except BaseException as err:
            self.error = err
        finally:
            self.connected.set()
            self.ended.set()
