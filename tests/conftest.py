"""Fixtures: a real PostgreSQL (embedded pgserver, or FIREWATCH_TEST_DATABASE_URL) with a
fresh database per test, and a real Mosquitto per test on a free port with the project's
config. Nothing here mocks the broker or the database."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from firewatch.core.settings import Settings
from firewatch.runtime.mosquitto import mosquitto
from firewatch.storage.maintenance import maintain
from firewatch.storage.migrate import upgrade
from firewatch.storage.seed import load_seed, read_seed


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Conninfo of a server where tests may CREATE/DROP DATABASE."""
    url = os.environ.get("FIREWATCH_TEST_DATABASE_URL")
    if url:
        yield url
        return
    # Not under pytest's basetemp: a second pytest session started meanwhile (another
    # terminal, an editor's test runner) prunes old basetemps and would delete the data
    # directory of a server that is still running.
    base = Path(tempfile.mkdtemp(prefix="firewatch-test-pg-"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(base / "run"))
    (base / "run").mkdir(exist_ok=True, mode=0o700)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    server = pgserver.get_server(base / "data", cleanup_mode="delete")  # type: ignore[attr-defined]
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    """A migrated database used as the template for each test's fresh database."""
    name = f"fw_template_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(make_conninfo(pg_admin_url, dbname=name), autocommit=True) as conn:
        upgrade(conn)
    yield name
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated (not seeded) database for one test; dropped afterwards."""
    name = f"fw_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield make_conninfo(pg_admin_url, dbname=name)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mqtt_url(tmp_path: Path) -> Iterator[str]:
    """A throwaway Mosquitto on a free loopback port, using mosquitto/conf.d."""
    with mosquitto(tmp_path / "mosquitto") as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str, mqtt_url: str) -> Settings:
    """Settings pointing at this test's database and broker (env ignored for these)."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        mqtt_url=mqtt_url,
        ingest_client_id=f"test-ingest-{uuid.uuid4().hex[:8]}",
        ingest_metrics_port=0,
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to this test's database, seeded with the demo city."""
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        load_seed(conn, read_seed())
        maintain(conn, settings)
        yield conn


Connect = Callable[[], psycopg.Connection[Any]]


@pytest.fixture
def connect(database_url: str) -> Iterator[Connect]:
    """Opens autocommit connections to this test's database (migrated, not seeded); closes
    them afterwards. For tests that need several connections (concurrency) and no broker."""
    opened: list[psycopg.Connection[Any]] = []

    def _connect() -> psycopg.Connection[Any]:
        conn = psycopg.connect(database_url, autocommit=True)
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()
