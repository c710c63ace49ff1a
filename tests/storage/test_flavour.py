"""Choosing the storage flavour (issue 13): what ``auto`` takes on each kind of server,
``timescale`` refused with the fix where it cannot run, a migrated database keeping its
own flavour; and maintenance runs started together taking turns instead of racing. Run on
both passes of ``make test``; a test of one flavour's server is marked and has its
counterpart beside it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from firewatch.core.settings import Settings
from firewatch.storage.migrate import (
    MigrationError,
    ServerExtension,
    choose_flavour,
    current_flavour,
    server_extension,
    upgrade,
)
from tests.helpers import day_container, maintain_at_once

NONE = ServerExtension(available=False, preloaded=False, installed=False)
PACKAGE_ONLY = ServerExtension(available=True, preloaded=False, installed=False)
READY = ServerExtension(available=True, preloaded=True, installed=False)
INSTALLED = ServerExtension(available=True, preloaded=True, installed=True)


@pytest.mark.parametrize(
    ("server", "auto"),
    [
        (NONE, "postgres"),
        (PACKAGE_ONLY, "postgres"),
        (READY, "timescale"),
        (INSTALLED, "timescale"),
    ],
)
def test_auto_takes_timescaledb_only_where_it_can_run(server: ServerExtension, auto: str) -> None:
    # the package without the preload is the state where CREATE EXTENSION fails
    assert choose_flavour("auto", server) == auto
    assert choose_flavour("postgres", server) == "postgres"


def test_timescale_where_it_cannot_run_names_the_fix() -> None:
    with pytest.raises(MigrationError, match="no TimescaleDB package: install it"):
        choose_flavour("timescale", NONE)
    with pytest.raises(MigrationError, match="shared_preload_libraries = 'timescaledb'"):
        choose_flavour("timescale", PACKAGE_ONLY)
    assert choose_flavour("timescale", READY) == "timescale"
    with pytest.raises(MigrationError, match="unknown storage flavour 'hyper'"):
        choose_flavour("hyper", READY)


def test_this_server_is_read_as_it_is(db: psycopg.Connection[Any], flavour: str) -> None:
    # the embedded PostgreSQL has no TimescaleDB at all; the TimescaleDB pass's cluster
    # preloads it and the test databases have the extension
    ext = server_extension(db)
    assert ext == (NONE if flavour == "postgres" else INSTALLED)
    assert choose_flavour("auto", ext) == flavour


@pytest.mark.flavour("postgres")
def test_a_new_database_refuses_timescale_here_and_changes_nothing(
    pg_server: str, database_url: str
) -> None:
    with new_database(pg_server) as url, psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(MigrationError, match="no TimescaleDB package"):
            upgrade(conn, "timescale")
        assert conn.execute("SELECT to_regclass('telemetry')").fetchone() == (None,)
        assert upgrade(conn, "postgres")  # the same database, the flavour that runs


@pytest.mark.flavour("timescale")
def test_a_timescaledb_server_still_gives_plain_postgresql_when_asked(pg_server: str) -> None:
    with new_database(pg_server) as url, psycopg.connect(url, autocommit=True) as conn:
        assert server_extension(conn) == READY
        assert upgrade(conn, "postgres")
        assert current_flavour(conn) == "postgres"
        # no extension, plain partitions (the DEFAULT one catches any day)
        assert server_extension(conn) == READY
        assert conn.execute("SELECT to_regclass('telemetry_default')").fetchone() != (None,)
    with new_database(pg_server) as url, psycopg.connect(url, autocommit=True) as conn:
        assert upgrade(conn)  # auto
        assert current_flavour(conn) == "timescale"
        assert conn.execute(
            "SELECT count(*) FROM timescaledb_information.hypertables"
        ).fetchone() == (3,)


@contextmanager
def new_database(pg_server: str) -> Iterator[str]:
    """An empty database (not from the migrated template), dropped afterwards."""
    name = "fw_flavour_" + datetime.now(UTC).strftime("%H%M%S%f")
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(pg_server, dbname=name)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_a_migrated_database_keeps_its_flavour(db: psycopg.Connection[Any], flavour: str) -> None:
    other = "timescale" if flavour == "postgres" else "postgres"
    assert upgrade(db, flavour) == []
    assert upgrade(db, "auto") == []
    with pytest.raises(MigrationError, match=f"migrated for {flavour}, not {other}"):
        upgrade(db, other)


def test_maintenance_runs_started_together_take_turns(
    db: psycopg.Connection[Any], settings: Settings, database_url: str, flavour: str
) -> None:
    """Six runs at once (as several workers starting together do), each with days to make:
    every one succeeds, each day's partition (or chunk) is made once."""
    today = datetime.now(UTC).date()
    ahead = [today + timedelta(days=d) for d in range(1, settings.partition_premake_days + 1)]
    for day in ahead:
        if flavour == "postgres":
            db.execute(f'DROP TABLE IF EXISTS "telemetry_p{day:%Y%m%d}"')
    if flavour == "timescale":
        db.execute("SELECT drop_chunks('telemetry', newer_than => %s::date)", (ahead[0],))
    assert all(day_container(db, "telemetry", day) is None for day in ahead)
    results = maintain_at_once(database_url, settings, 6)
    # the first run made the missing days (of telemetry), the others found them made
    assert sorted(r.created for r in results)[:5] == [0] * 5
    assert max(r.created for r in results) >= len(ahead)
    for day in ahead:
        assert day_container(db, "telemetry", day) is not None
