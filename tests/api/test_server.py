"""Running the API programmatically: serve() until a stop event, ready callback, a port
already taken."""

from __future__ import annotations

import socket
import threading
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.api.server import ApiServer, ApiStartupError, bind, serve
from firewatch.core.settings import Settings
from tests.helpers import scalar, wait_until


def test_serve_runs_until_stop_and_reports_its_url(
    settings: Settings, database_url: str, db: psycopg.Connection[Any]
) -> None:
    stop = threading.Event()
    urls: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            serve(settings, database_url, stop, ready=urls.append)
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_until(lambda: bool(urls or errors), 30, "the server to be ready")
    assert not errors
    (url,) = urls
    assert url.startswith("http://127.0.0.1:")
    assert not url.endswith(":0")
    r = httpx.get(f"{url}/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["stream_listener"] in ("listening", "reconnecting")
    stop.set()
    thread.join(15)
    assert not thread.is_alive()
    assert not errors
    # the pool and the listener are closed with it
    api_conns = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'firewatch-api%'"
    wait_until(lambda: scalar(db, api_conns) == 0, 10, "the API's connections to close")


def test_a_port_in_use_is_a_clear_startup_error(settings: Settings, database_url: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ApiStartupError, match=f"cannot listen on 127.0.0.1:{port}"):
            ApiServer(settings, database_url, port=port).start()


def test_the_listening_socket_says_tcp_so_asyncio_turns_nagle_off() -> None:
    """asyncio sets TCP_NODELAY only on accepted sockets whose protocol is IPPROTO_TCP;
    with protocol 0 (socket.create_server) Nagle held every response body behind its
    headers until the client's delayed ACK, 40 ms per request."""
    sock = bind("127.0.0.1", 0)
    with sock, socket.create_connection(sock.getsockname()[:2]):
        accepted, _ = sock.accept()
        with accepted:
            assert accepted.proto == socket.IPPROTO_TCP
