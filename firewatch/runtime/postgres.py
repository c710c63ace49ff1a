"""Embedded PostgreSQL from the ``pgserver`` package (when ``FIREWATCH_DATABASE_URL`` is unset).

pgserver keeps one server per data directory and reference-counts the processes using it:
the server stops when the last of them exits, so ``firewatch db stats`` run beside
``firewatch up`` attaches to the same server without stopping it.

**Finding the data directory.** Without ``FIREWATCH_DATA_DIR``, :func:`locate_data_dir` takes
the nearest ``.firewatch/`` in the current directory or its parents, as git finds ``.git``,
so the CLI works from any subdirectory of the checkout. **Creating a database** is explicit:
:func:`resolve_database_url` starts an embedded server only where one was already
initialised, unless the caller passes ``create=True`` (``firewatch up`` and
``firewatch db upgrade``); everything else gets a :class:`DatabaseNotFoundError` saying what
is missing instead of a new, empty database in whatever directory it was run from.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from firewatch.core.settings import Settings

#: The data directory's name, looked up from the current directory upwards.
DATA_DIR_NAME = ".firewatch"


class EmbeddedDatabaseError(Exception):
    """The embedded PostgreSQL server could not be started."""


class DatabaseNotFoundError(Exception):
    """No ``FIREWATCH_DATABASE_URL`` and no embedded database where the settings point: the
    message (one line) says what is missing and how to point the command at a database."""


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


def find_data_dir(start: Path) -> Path | None:
    """The nearest ``.firewatch`` directory in ``start`` or one of its parents (absolute), or
    None if there is none up to the filesystem root."""
    here = start.resolve()
    for directory in (here, *here.parents):
        candidate = directory / DATA_DIR_NAME
        if candidate.is_dir():
            return candidate
    return None


def locate_data_dir(settings: Settings, cwd: Path | None = None) -> Settings:
    """``settings`` with ``data_dir`` set to the nearest ``.firewatch/`` in ``cwd`` (default:
    the current directory) or its parents, unless ``data_dir`` was configured
    (``FIREWATCH_DATA_DIR``) or no such directory exists; then ``settings`` unchanged.

    A found directory counts as configured afterwards (it is in ``model_fields_set``), which
    :class:`DatabaseNotFoundError`'s message relies on."""
    if "data_dir" in settings.model_fields_set:
        return settings
    found = find_data_dir(cwd or Path.cwd())
    return settings if found is None else settings.model_copy(update={"data_dir": found})


def has_embedded_database(pgdata: Path) -> bool:
    """Whether ``pgdata`` holds an initialised cluster (pgserver's own test: ``PG_VERSION``)."""
    return (pgdata / "PG_VERSION").is_file()


def _missing_database(settings: Settings) -> str:
    if "data_dir" not in settings.model_fields_set:  # the lookup found nothing
        return (
            f"no Firewatch data directory ({DATA_DIR_NAME}) in {Path.cwd()} or its parents; "
            "run this from the checkout where `firewatch up` ran, or set FIREWATCH_DATA_DIR "
            "or FIREWATCH_DATABASE_URL"
        )
    if not settings.data_dir.is_dir():
        return (
            f"the data directory {settings.data_dir.resolve()} does not exist; check "
            "FIREWATCH_DATA_DIR, or set FIREWATCH_DATABASE_URL"
        )
    return (
        f"no embedded database in {settings.pg_dir}; `firewatch up` or `firewatch db upgrade` "
        "creates one, or set FIREWATCH_DATABASE_URL"
    )


def resolve_database_url(settings: Settings, *, create: bool = False) -> str:
    """``FIREWATCH_DATABASE_URL`` if set, else the embedded server's URL (starting it).

    Without ``create``, an embedded database must already exist under ``settings.data_dir``
    (else :class:`DatabaseNotFoundError`, and nothing is written); with it, one is
    initialised there if needed. Raises :class:`EmbeddedDatabaseError` if it fails to start.
    """
    if settings.database_url:
        return settings.database_url
    if not create and not has_embedded_database(settings.pg_dir):
        raise DatabaseNotFoundError(_missing_database(settings))
    return embedded_url(settings.pg_dir)
