"""Scratch databases for the benchmarks: each run gets a fresh database of its own on a
server, dropped when the run ends, so that no bench depends on (or disturbs) the data of a
running system."""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from contextlib import ExitStack
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo


def throwaway_server(stack: ExitStack) -> str:
    """A new embedded PostgreSQL in a temporary directory (as the tests start one), stopped
    and deleted when ``stack`` closes; its URL."""
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fw-apibench-")))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about runtime dirs it picks
        import pgserver
    server = pgserver.get_server(tmp / "pgdata", cleanup_mode="delete")  # type: ignore[attr-defined]
    stack.callback(server.cleanup)
    return str(server.get_uri())


def scratch_database(stack: ExitStack, admin: str, prefix: str) -> str:
    """Create ``<prefix>_<random>`` on the server at ``admin`` (a URL where databases may be
    created) and return its URL; it is dropped, with any connection still open to it, when
    ``stack`` closes."""
    name = f"{prefix}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    stack.callback(drop)
    return make_conninfo(admin, dbname=name)
