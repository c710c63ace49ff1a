"""Embedded PostgreSQL from the ``pgserver`` package (when ``FIREWATCH_DATABASE_URL`` is unset).

pgserver keeps one server per data directory and reference-counts the processes using it:
the server stops when the last of them exits, so ``firewatch db stats`` run beside
``firewatch up`` attaches to the same server without stopping it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from firewatch.core.settings import Settings


class EmbeddedDatabaseError(Exception):
    """The embedded PostgreSQL server could not be started."""


def embedded_url(pgdata: Path) -> str:
    """Start (or attach to) the pgserver cluster at ``pgdata`` and return its URL."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(pgdata.parent / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about runtime dirs it picks
        import pgserver
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    except Exception as err:  # pgserver raises bare subprocess/assert errors
        raise EmbeddedDatabaseError(
            f"embedded PostgreSQL failed to start in {pgdata}: {err}"
        ) from err
    return str(server.get_uri())


def resolve_database_url(settings: Settings) -> str:
    """``FIREWATCH_DATABASE_URL`` if set, else the embedded server's URL (starting it)."""
    return settings.database_url or embedded_url(settings.pg_dir)
