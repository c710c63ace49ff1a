"""Versioned, idempotent schema migrations for plain PostgreSQL and TimescaleDB.

Files in ``migrations/`` are named ``NNNN_name.sql`` (both flavours) or
``NNNN_name.postgres.sql`` / ``NNNN_name.timescale.sql`` (one flavour). The flavour is
decided once, on the first upgrade of a database, and recorded so later upgrades never mix
paths: the one asked for (``FIREWATCH_STORAGE_FLAVOUR`` = ``postgres`` or ``timescale``),
or with ``auto`` TimescaleDB only where it can really run (:func:`choose_flavour`: the
extension is installed in the database, or available on the server *and* preloaded).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal, cast

import psycopg

Flavour = Literal["postgres", "timescale"]
_NAME = re.compile(
    r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)(?:\.(?P<flavour>postgres|timescale))?\.sql$"
)
_LOCK_KEY = 0x46495245  # "FIRE": serialises concurrent upgrades


class MigrationError(Exception):
    """A migration file is malformed, a migration failed to apply, or the flavour asked for
    cannot be used on this server (the message names the fix)."""


@dataclass(frozen=True)
class ServerExtension:
    """What the server says about TimescaleDB: whether its package is available, whether
    the server preloads its library (``shared_preload_libraries``), and whether this
    database has the extension already."""

    available: bool
    preloaded: bool
    installed: bool


def choose_flavour(asked: str, ext: ServerExtension) -> Flavour:
    """The flavour a new database gets: ``asked`` (``auto``, ``postgres``, ``timescale``)
    given what the server offers. ``auto`` picks TimescaleDB only where it can run (installed
    here, or available and preloaded): a server with the package but without the preload
    (a common state) would fail at ``CREATE EXTENSION``, so it gets plain PostgreSQL and the
    choice is logged by the caller. ``timescale`` that cannot run is a
    :class:`MigrationError` naming the fix."""
    runs = ext.installed or (ext.available and ext.preloaded)
    if asked == "postgres":
        return "postgres"
    if asked == "timescale":
        if not ext.available and not ext.installed:
            raise MigrationError(
                "FIREWATCH_STORAGE_FLAVOUR=timescale, but the server has no TimescaleDB "
                "package: install it (docs/deployment.md) or use FIREWATCH_STORAGE_FLAVOUR="
                "postgres"
            )
        if not runs:
            raise MigrationError(
                "FIREWATCH_STORAGE_FLAVOUR=timescale, but the server does not preload it: "
                "add shared_preload_libraries = 'timescaledb' to postgresql.conf and restart "
                "the server, or use FIREWATCH_STORAGE_FLAVOUR=postgres"
            )
        return "timescale"
    if asked != "auto":
        raise MigrationError(f"unknown storage flavour {asked!r}: auto, postgres or timescale")
    return "timescale" if runs else "postgres"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    flavour: Flavour | None  # None = applies to both
    sql: str

    def render(self, flavour: Flavour) -> str:
        partition = "PARTITION BY RANGE (ts)" if flavour == "postgres" else ""
        return self.sql.replace("@PARTITION_BY@", partition)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


def load_migrations() -> list[Migration]:
    """All migration files, ordered by version (common file before flavour file)."""
    found: list[Migration] = []
    for entry in resources.files("firewatch.storage").joinpath("migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        m = _NAME.match(entry.name)
        if m is None:
            raise MigrationError(f"bad migration file name: {entry.name}")
        flavour = cast(Flavour | None, m["flavour"])
        found.append(Migration(int(m["version"]), m["name"], flavour, entry.read_text("utf-8")))
    found.sort(key=lambda m: (m.version, m.flavour is not None, m.flavour or ""))
    return found


def server_extension(conn: psycopg.Connection[Any]) -> ServerExtension:
    """What this server and database say about TimescaleDB (see :class:`ServerExtension`)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),"
        " 'timescaledb' = ANY (string_to_array(replace("
        "current_setting('shared_preload_libraries'), ' ', ''), ',')),"
        " EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
    ).fetchone()
    assert row is not None
    return ServerExtension(bool(row[0]), bool(row[1]), bool(row[2]))


def detect_flavour(conn: psycopg.Connection[Any], asked: str = "auto") -> Flavour:
    """The flavour :func:`choose_flavour` gives this server."""
    return choose_flavour(asked, server_extension(conn))


def upgrade(conn: psycopg.Connection[tuple[object, ...]], flavour: str = "auto") -> list[str]:
    """Apply every pending migration; return the names applied (empty if up to date).

    A new database gets ``flavour`` (``auto``, ``postgres``, ``timescale``: see
    :func:`choose_flavour`); a migrated one keeps its own, and asking for the other one is a
    :class:`MigrationError` (the flavours' schemas differ: no upgrade converts one into the
    other). Safe to run concurrently from several processes (advisory lock) and repeatedly.
    Raises :class:`MigrationError` if a migration fails; that migration is rolled back.
    """
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer NOT NULL,
                   name text NOT NULL,
                   flavour text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now(),
                   PRIMARY KEY (version, name))"""
        )
        done = {
            (int(str(v)), str(n))
            for v, n in conn.execute("SELECT version, name FROM schema_migrations").fetchall()
        }
        row = conn.execute("SELECT flavour FROM schema_migrations LIMIT 1").fetchone()
        recorded = cast(Flavour | None, row[0] if row else None)
        if recorded is not None and flavour not in ("auto", recorded):
            raise MigrationError(
                f"this database was migrated for {recorded}, not {flavour}: use "
                f"FIREWATCH_STORAGE_FLAVOUR={recorded} (or auto) with it"
            )
        chosen: Flavour = recorded or detect_flavour(conn, flavour)
        if chosen == "timescale":
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        for mig in load_migrations():
            if mig.flavour not in (None, chosen):
                continue
            key = (mig.version, f"{mig.name}.{mig.flavour}" if mig.flavour else mig.name)
            if key in done:
                continue
            try:
                with conn.transaction():
                    conn.execute(mig.render(chosen).encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, flavour, checksum)"
                        " VALUES (%s, %s, %s, %s)",
                        (key[0], key[1], chosen, mig.checksum),
                    )
            except psycopg.Error as err:
                raise MigrationError(f"migration {key[0]:04d} {key[1]} failed: {err}") from err
            applied_now.append(f"{key[0]:04d}_{key[1]}")
    return applied_now


def current_flavour(conn: psycopg.Connection[tuple[object, ...]]) -> Flavour | None:
    """The flavour recorded by the first upgrade, or None on an empty database."""
    if not is_migrated(conn):
        return None
    row = conn.execute("SELECT flavour FROM schema_migrations LIMIT 1").fetchone()
    return row[0] if row else None  # type: ignore[return-value]


def is_migrated(conn: psycopg.Connection[Any]) -> bool:
    """Has ``firewatch db upgrade`` ever run on this database (is there a schema)?"""
    return conn.execute("SELECT to_regclass('schema_migrations')").fetchone() != (None,)
