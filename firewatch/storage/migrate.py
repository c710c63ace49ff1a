"""Versioned, idempotent schema migrations for plain PostgreSQL and TimescaleDB.

Files in ``migrations/`` are named ``NNNN_name.sql`` (both flavours) or
``NNNN_name.postgres.sql`` / ``NNNN_name.timescale.sql`` (one flavour). The flavour is
decided once, on the first upgrade of a database: TimescaleDB if the extension can be
created, plain PostgreSQL otherwise, and it is recorded so later upgrades never mix paths.
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
    """A migration file is malformed or a migration failed to apply."""


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


def detect_flavour(conn: psycopg.Connection[tuple[object, ...]]) -> Flavour:
    """TimescaleDB if the extension is installed or installable here, else plain PostgreSQL."""
    row = conn.execute(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    return "timescale" if row and row[0] else "postgres"


def upgrade(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Apply every pending migration; return the names applied (empty if up to date).

    Safe to run concurrently from several processes (advisory lock) and repeatedly.
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
        flavour: Flavour = row[0] if row else detect_flavour(conn)  # type: ignore[assignment]
        if flavour == "timescale":
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        for mig in load_migrations():
            if mig.flavour not in (None, flavour):
                continue
            key = (mig.version, f"{mig.name}.{mig.flavour}" if mig.flavour else mig.name)
            if key in done:
                continue
            try:
                with conn.transaction():
                    conn.execute(mig.render(flavour).encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, flavour, checksum)"
                        " VALUES (%s, %s, %s, %s)",
                        (key[0], key[1], flavour, mig.checksum),
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
