"""The API's front door: every HTTP request passes :class:`Guard` (pure ASGI middleware)
before routing, so no route can forget a check and bad input or load never reaches the
database as an error.

In order, for each request:

1. **Body size, up front.** A ``Content-Length`` above ``api_max_body_bytes`` is refused
   with 413 before a byte of the body is read (and the connection closed). A chunked body
   is counted while it arrives; reading stops at the limit with the same 413.
2. **Text the API can store.** PostgreSQL ``text`` cannot hold NUL, and an unpaired UTF-16
   surrogate (JSON ``"\\ud800"``) is not a character at all: the database refuses both with
   an error that used to surface as 500. Every string the API accepts passes
   :func:`text_problem` here, once: query names and values (as the app decodes them), the
   path, every header value (RFC 9110 forbids NUL in fields; ``Last-Event-ID`` is read by
   the stream), and every key and string of a JSON body. A bad one is a 422 in FastAPI's
   error shape whose ``loc`` names the field (``["query", "unit_id"]``, ``["body",
   "note"]``, ``["header", "last-event-id"]``).
3. **Admission.** The request/response routes run at most ``api_max_concurrency`` at once
   (:class:`Admission`); up to ``api_max_waiting`` more queue, first come first served, for
   at most ``api_queue_timeout_s``; everything beyond is answered at once with 503 and
   ``Retry-After``. The database pool has a connection for every admitted request, so an
   admitted request never waits for the pool and a burst is never left to time out there.
   Live streams (routes whose response is an ``EventSourceResponse``) are long-lived and
   read the database through their own bounded worker set; they take no request slot but
   are counted separately: more than ``api_max_streams`` open is a 503 with
   ``Retry-After``.

The body is read (bounded, with a deadline) before admission, so a client that sends its
body slowly holds no slot.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from firewatch.api.errors import clip_input, error_response, unprocessable
from firewatch.core.settings import Settings

#: ``Retry-After`` (seconds) of a request refused because the API is busy.
RETRY_AFTER_BUSY_S = 1
#: ``Retry-After`` (seconds) of a live stream refused because too many are open.
RETRY_AFTER_STREAMS_S = 5
#: Longest wait for a request's body to arrive (then 408); it holds no slot meanwhile.
BODY_TIMEOUT_S = 30.0
#: At most this many bad strings are reported per request.
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class Limits:
    """What :class:`Guard` enforces (``api_*`` settings; see README, Configuration)."""

    max_body_bytes: int
    max_concurrency: int
    max_waiting: int
    queue_timeout_s: float
    max_streams: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            max_body_bytes=settings.api_max_body_bytes,
            max_concurrency=settings.api_max_concurrency,
            max_waiting=settings.api_max_waiting,
            queue_timeout_s=settings.api_queue_timeout_s,
            max_streams=settings.api_max_streams,
        )


# --- text ---------------------------------------------------------------------------------
def text_problem(text: str) -> tuple[str, str] | None:
    """``(type, message)`` if ``text`` cannot be stored as PostgreSQL text, else None."""
    if "\x00" in text:
        return "string_nul", "must not contain NUL characters (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return (
                "string_unpaired_surrogate",
                "must not contain unpaired UTF-16 surrogates (\\ud800-\\udfff): they are not"
                " characters; send the character itself or its surrogate pair",
            )
    return None


def _problem(loc: tuple[str | int, ...], text: str, what: str) -> dict[str, Any] | None:
    found = text_problem(text)
    if found is None:
        return None
    kind, message = found
    return {"type": kind, "loc": list(loc), "msg": f"{what} {message}", "input": text}


def url_and_header_problems(scope: Scope) -> Iterator[dict[str, Any]]:
    """Bad strings in the path, the query (names and values, decoded as the app decodes
    them) and the header values."""
    path: str = scope.get("path", "")
    if (p := _problem(("path",), path, "The URL path")) is not None:
        yield p
    for name, value in QueryParams(scope.get("query_string", b"")).multi_items():
        if (p := _problem(("query", name), name, "A query parameter name")) is not None:
            yield p
        if (p := _problem(("query", name), value, f"Query parameter {name!r}")) is not None:
            yield p
    for name, value in Headers(scope=scope).items():
        if (p := _problem(("header", name), value, f"Header {name!r}")) is not None:
            yield p


def json_problems(body: bytes) -> Iterator[dict[str, Any]]:
    """Bad keys and strings of a JSON body, with their place (``["body", "note"]``, as
    FastAPI names body fields). A body that is not JSON is left to FastAPI (its 422)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return
    # Iterative: a 64 KiB body can nest deeper than Python's recursion limit.
    stack: list[tuple[tuple[str | int, ...], Any]] = [(("body",), doc)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, str):
            if (p := _problem(loc, value, f"Field {_name(loc)}")) is not None:
                yield p
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                if (p := _problem((*loc, key), key, f"A key of {_name(loc)}")) is not None:
                    yield p
                stack.append(((*loc, key), item))
        elif isinstance(value, list):
            stack.extend(((*loc, i), item) for i, item in reversed(list(enumerate(value))))


def _name(loc: tuple[str | int, ...]) -> str:
    return "the body" if len(loc) == 1 else repr(".".join(str(p) for p in loc[1:]))


# --- admission ------------------------------------------------------------------------------
class Admission:
    """At most ``slots`` holders at once; up to ``max_waiting`` more wait in FIFO order for
    at most ``timeout_s``. Lives on one event loop (no locks: the loop serialises it)."""

    def __init__(self, slots: int, max_waiting: int, timeout_s: float) -> None:
        self.slots, self.max_waiting, self.timeout_s = slots, max_waiting, timeout_s
        self._free = slots
        self._waiters: deque[asyncio.Future[None]] = deque()
        #: counters since start (tests, the benchmark)
        self.admitted = 0
        self.refused_full = 0  # the queue was full: refused at once
        self.refused_timeout = 0  # waited ``timeout_s`` in the queue

    @property
    def active(self) -> int:
        return self.slots - self._free

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> bool:
        """True with a slot held (call :meth:`release`), False when refused."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            self.admitted += 1
            return True
        if len(self._waiters) >= self.max_waiting:
            self.refused_full += 1
            return False
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        try:
            await asyncio.wait((granted,), timeout=self.timeout_s)
        except BaseException:  # cancelled while waiting: give back a slot handed to us
            self._abandon(granted)
            raise
        if granted.done():
            self.admitted += 1
            return True
        self._abandon(granted)
        self.refused_timeout += 1
        return False

    def release(self) -> None:
        """Give the slot to the longest waiter, or free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    def _abandon(self, granted: asyncio.Future[None]) -> None:
        if granted.done():  # handed over while we were leaving: pass it on
            self.release()
        else:
            granted.cancel()
            self._waiters.remove(granted)


# --- the middleware -------------------------------------------------------------------------
class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


@dataclass
class Gate:
    """The guard's shared state: what it enforces, the request slots and the open streams
    (one per app; ``ApiContext.gate``)."""

    limits: Limits
    stream_paths: frozenset[str]
    admission: Admission
    streams: int = 0
    refused_streams: int = 0

    @classmethod
    def of(cls, limits: Limits, stream_paths: frozenset[str]) -> Gate:
        admission = Admission(limits.max_concurrency, limits.max_waiting, limits.queue_timeout_s)
        return cls(limits, stream_paths, admission)


class Guard:
    """The ASGI middleware (see the module docstring); ``gate`` holds its state."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.gate.limits
        headers = Headers(scope=scope)
        length = _content_length(headers)
        if length is not None and length > limits.max_body_bytes:
            await _too_large(limits, scope, receive, send)
            return
        problems = list(_first(url_and_header_problems(scope)))
        if problems:
            await unprocessable(problems)(scope, receive, send)
            return
        if (length or 0) > 0 or "transfer-encoding" in headers:
            try:
                async with asyncio.timeout(BODY_TIMEOUT_S):
                    body = await _read_body(receive, limits.max_body_bytes)
            except BodyTooLarge:
                await _too_large(limits, scope, receive, send)
                return
            except TimeoutError:
                detail = f"the request body did not arrive within {BODY_TIMEOUT_S:.0f} s"
                await error_response(408, detail, close=True)(scope, receive, send)
                return
            except ClientGone:
                return
            problems = list(_first(json_problems(body)))
            if problems:
                await unprocessable(problems)(scope, receive, send)
                return
            receive = _replay(body, receive)
        if scope["method"] == "GET" and scope["path"] in self.gate.stream_paths:
            await self._stream(scope, receive, send)
        else:
            await self._request(scope, receive, send)

    async def _request(self, scope: Scope, receive: Receive, send: Send) -> None:
        admission = self.gate.admission
        if not await admission.acquire():
            detail = (
                f"the API is busy ({admission.slots} requests in progress, {admission.waiting}"
                " waiting); retry shortly"
            )
            busy = error_response(503, detail, retry_after=RETRY_AFTER_BUSY_S)
            await busy(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            admission.release()

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.gate
        if gate.streams >= gate.limits.max_streams:
            gate.refused_streams += 1
            detail = (
                f"too many live streams open ({gate.limits.max_streams}); reconnect later"
                " with your Last-Event-ID"
            )
            full = error_response(503, detail, retry_after=RETRY_AFTER_STREAMS_S)
            await full(scope, receive, send)
            return
        gate.streams += 1
        try:
            await self.app(scope, receive, send)
        finally:
            gate.streams -= 1


def _first(problems: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for n, problem in enumerate(problems):
        if n == MAX_PROBLEMS:
            return
        problem["input"] = clip_input(problem["input"])
        yield problem


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:  # the server (h11) refuses these before us; be total anyway
        return None


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, or :class:`BodyTooLarge` as soon as more than ``limit`` bytes came."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app: the body read already, then the server's own messages
    (``http.disconnect``, which the live stream listens for)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _too_large(limits: Limits, scope: Scope, receive: Receive, send: Send) -> None:
    detail = f"the request body is larger than {limits.max_body_bytes} bytes"
    await error_response(413, detail, close=True)(scope, receive, send)
