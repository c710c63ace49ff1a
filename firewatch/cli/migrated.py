"""A connection to a database that has the Firewatch schema, for the commands that read or
write the registry (``registry ...``, ``vendor add|install|uninstall``, ``analysis
refresh``): a database without it is an expected refusal (:class:`Refused`: one line, exit
2), not a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from firewatch.core.settings import Settings


class Refused(Exception):
    """An expected refusal: the command prints it as one line and exits 2."""


@contextmanager
def migrated_db(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to a migrated database (:class:`Refused` otherwise)."""
    from firewatch.runtime.postgres import resolve_database_url
    from firewatch.storage.migrate import is_migrated

    with psycopg.connect(resolve_database_url(settings), autocommit=True) as conn:
        if not is_migrated(conn):
            raise Refused(
                f"the database {conn.info.dbname!r} has no Firewatch schema; run "
                "`firewatch db upgrade` with the same settings first"
            )
        yield conn
