"""Running the API: :func:`serve` (uvicorn, programmatically, until ``stop`` or a signal)
and :class:`ApiServer` (the same in a background thread, on a free port if asked).

Graceful shutdown: stop accepting connections, end every live stream cleanly (clients
reconnect elsewhere with their ``Last-Event-ID``), let requests in progress finish (at most
``GRACEFUL_S``), then close the stream listener and the pool.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from firewatch.api.app import create_app
from firewatch.api.deps import ApiContext, ApiOptions
from firewatch.core.settings import Settings

log = logging.getLogger("firewatch.api")

#: Longest wait for requests in progress at shutdown (streams end at once).
GRACEFUL_S = 10.0


class ApiStartupError(RuntimeError):
    """The API server could not start (port taken, lifespan failed)."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Protocol IPPROTO_TCP, not 0 (socket.create_server's): asyncio sets TCP_NODELAY only on
    # accepted sockets whose protocol says TCP. Without it Nagle holds each response body
    # behind its unacknowledged headers until the client's delayed ACK: +40 ms per request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise ApiStartupError(f"cannot listen on {host}:{port}: {err}") from err
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve_app(
    app: FastAPI,
    sock: socket.socket,
    stop: threading.Event | None = None,
    *,
    ready: Callable[[str], None] | None = None,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve ``app`` (made by :func:`~firewatch.api.app.create_app`) on the listening
    ``sock`` until ``stop`` is set or, in the main thread, SIGINT/SIGTERM. ``ready`` is
    called with the base URL once connections are accepted. The socket is closed after."""
    config = uvicorn.Config(
        app,
        loop="asyncio",
        lifespan="on",
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=int(GRACEFUL_S),
    )
    server = uvicorn.Server(config)
    url = url_of(sock)
    ctx: ApiContext = app.state.ctx

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        announced = draining = False
        while not task.done():
            if stop is not None and stop.is_set():
                server.should_exit = True
            if server.should_exit and not draining and ctx.hub is not None:
                ctx.hub.close()  # streams end now; uvicorn waits for their connections
                draining = True
            if server.started and not announced:
                announced = True
                log.info("API listening on %s", url)
                if ready is not None:
                    ready(url)
            await asyncio.wait({task}, timeout=0.05)
        await task

    try:
        asyncio.run(main())
    except SystemExit as err:  # uvicorn exits the process when startup fails
        raise ApiStartupError(f"the API server on {url} failed to start (exit {err.code})") from err
    finally:
        sock.close()


def serve(
    settings: Settings,
    conninfo: str,
    stop: threading.Event | None = None,
    *,
    options: ApiOptions | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """``firewatch api``: the API on ``settings.api_host:api_port`` until ``stop`` (or a
    signal, when called from the main thread)."""
    app = create_app(settings, conninfo, options=options)
    serve_app(app, bind(settings.api_host, settings.api_port), stop, ready=ready)


class ApiServer:
    """:func:`serve_app` in a background thread (tests, or beside other services)::

    with ApiServer(settings, conninfo) as api:
        httpx.get(f"{api.url}/health")
    """

    def __init__(
        self,
        settings: Settings,
        conninfo: str,
        *,
        options: ApiOptions | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.app = create_app(settings, conninfo, options=options)
        self._host = settings.api_host if host is None else host
        self._port = settings.api_port if port is None else port
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.url = ""

    @property
    def context(self) -> ApiContext:
        ctx: ApiContext = self.app.state.ctx
        return ctx

    def start(self, timeout: float = 30.0) -> ApiServer:
        sock = bind(self._host, self._port)
        self.url = url_of(sock)

        def run() -> None:
            try:
                serve_app(
                    self.app,
                    sock,
                    self._stop,
                    ready=lambda _url: self._ready.set(),
                    log_level="warning",
                )
            except BaseException as err:  # reported by start()/stop() in the caller's thread
                self._error = err
            finally:
                self._ready.set()

        self._thread = threading.Thread(target=run, name="firewatch-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise ApiStartupError(f"the API server did not start within {timeout}s")
        if self._error is not None:
            raise ApiStartupError(f"the API server failed: {self._error}") from self._error
        return self

    def stop(self, timeout: float = GRACEFUL_S + 5) -> None:
        """Shut down gracefully; raises if the thread does not end within ``timeout``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"the API server did not stop within {timeout}s")
            self._thread = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
