"""Choosing the storage flavour (issue 13): what ``auto`` takes on each kind of server,
``timescale`` refused with the fix where it cannot run, a migrated database keeping its
own flavour; and maintenance runs started together taking turns instead of racing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.core.settings import Settings
from firewatch.storage.maintenance import MaintenanceResult, maintain
from firewatch.storage.migrate import (
    MigrationError,
    ServerExtension,
    choose_flavour,
    server_extension,
    upgrade,
)

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


def test_this_server_is_read_as_it_is(db: psycopg.Connection[Any]) -> None:
    # the embedded PostgreSQL of the tests has no TimescaleDB at all
    ext = server_extension(db)
    assert ext == NONE
    assert choose_flavour("auto", ext) == "postgres"


def test_a_new_database_refuses_timescale_here_and_changes_nothing(
    pg_server: str, database_url: str
) -> None:
    name = "fw_flavour_" + datetime.now(UTC).strftime("%H%M%S%f")
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = psycopg.conninfo.make_conninfo(database_url, dbname=name)
        with psycopg.connect(url, autocommit=True) as conn:
            with pytest.raises(MigrationError, match="no TimescaleDB package"):
                upgrade(conn, "timescale")
            assert conn.execute("SELECT to_regclass('telemetry')").fetchone() == (None,)
            assert upgrade(conn, "postgres")  # the same database, the flavour that runs
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_a_migrated_database_keeps_its_flavour(db: psycopg.Connection[Any]) -> None:
    assert upgrade(db, "postgres") == []
    assert upgrade(db, "auto") == []
    with pytest.raises(MigrationError, match="migrated for postgres, not timescale"):
        upgrade(db, "timescale")


def test_maintenance_runs_started_together_take_turns(
    db: psycopg.Connection[Any], settings: Settings, database_url: str
) -> None:
    """Six runs at once (as several workers starting together do), each with days to make:
    every one succeeds, each day's partition is made once."""
    today = datetime.now(UTC).date()
    ahead = [today + timedelta(days=d) for d in range(1, settings.partition_premake_days + 1)]
    for day in ahead:
        db.execute(f'DROP TABLE IF EXISTS "telemetry_p{day:%Y%m%d}"')
    barrier = threading.Barrier(6)
    results: list[MaintenanceResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                barrier.wait()
                results.append(maintain(conn, settings))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(results) == 6
    # the first run made the missing days (of telemetry), the others found them made
    assert sorted(r.created for r in results)[:5] == [0] * 5
    assert max(r.created for r in results) >= len(ahead)
    for day in ahead:
        assert db.execute("SELECT to_regclass(%s)", (f"telemetry_p{day:%Y%m%d}",)).fetchone() != (
            None,
        )
