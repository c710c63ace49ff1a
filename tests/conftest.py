"""The fixtures every test directory shares: one name per resource, all real (nothing here
mocks the database or the broker).

Database (one embedded PostgreSQL per session; a fresh database per test):

* ``pg_server`` (session): conninfo of the server where tests may CREATE and DROP databases:
  ``FIREWATCH_TEST_DATABASE_URL``, else by ``FIREWATCH_TEST_FLAVOUR`` an embedded pgserver
  (``postgres``, the default) or a throwaway PostgreSQL 15 cluster with TimescaleDB
  (``timescale``: ``firewatch.lab.timescale``). ``make test`` runs the suite once on each.
* ``flavour`` (session): the storage flavour this session's databases have.
* ``migrated_template`` (session): the database ``database_url`` clones, migrated once.

On the TimescaleDB pass only the tests that use a database run (the others cannot differ);
a test of one flavour's internals is marked ``@pytest.mark.flavour("postgres")`` (or
``"timescale"``) and reported skipped on the other pass, beside its counterpart.
* ``database_url``: URL of this test's fresh database: migrated (no day partitions yet),
  not seeded. Dropped afterwards.
* ``db``: an autocommit connection to it, seeded with the demo city
  (``firewatch/storage/seeds/``, ids in ``tests/builders/city.py``) and with the
  partitions ``maintain`` makes around today.
* ``connect``: a factory of more autocommit connections to it, closed afterwards: for
  concurrency tests, or for one connection to the unseeded database.
* ``settings``: :class:`Settings` for it and **no broker** (``mqtt_url=None``), tuned for
  tests: quick backoff and polls, no /metrics servers, the API on a free loopback port.

Broker (only the tests that ask for one start one):

* ``mqtt_url``: URL of a throwaway Mosquitto on a free loopback port, with the project's
  config (``mosquitto/conf.d``).
* ``mqtt_settings``: ``settings`` with that broker, for tests that run ingest or publish.

Builders of payloads, rows, episodes and alerts live in ``tests/builders/``; waiting,
publishing and services on threads in ``tests/helpers.py``.
"""

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

from firewatch.core.people import Role
from firewatch.core.settings import Settings
from firewatch.lab.timescale import TimescaleUnavailable, timescale_cluster
from firewatch.runtime.mosquitto import mosquitto
from firewatch.storage.maintenance import maintain
from firewatch.storage.migrate import Flavour, current_flavour, upgrade
from firewatch.storage.seed import load_seed, read_seed
from tests.builders.people import ADMIN, as_role

Connect = Callable[[], psycopg.Connection[Any]]

# The flavour asked for: "auto" with a given server (whatever it runs), else the embedded one.
ASKED_FLAVOUR = os.environ.get(
    "FIREWATCH_TEST_FLAVOUR",
    "auto" if os.environ.get("FIREWATCH_TEST_DATABASE_URL") else "postgres",
)
if ASKED_FLAVOUR not in ("auto", "postgres", "timescale"):
    raise pytest.UsageError(
        f"FIREWATCH_TEST_FLAVOUR={ASKED_FLAVOUR!r}: use postgres, timescale or auto"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the TimescaleDB pass keep only the tests that use a database, in reverse order:
    ``make test`` runs both passes at once, and reversed, their CPU-heavy stretches (the
    detectors, the browser) do not coincide."""
    if ASKED_FLAVOUR == "timescale":
        kept = [i for i in items if "pg_server" in getattr(i, "fixturenames", ())]
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept[::-1]


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Conninfo of a server where tests may CREATE/DROP DATABASE."""
    url = os.environ.get("FIREWATCH_TEST_DATABASE_URL")
    if url:
        yield url
        return
    if ASKED_FLAVOUR == "timescale":
        try:
            with timescale_cluster() as ts_url:
                yield ts_url
        except TimescaleUnavailable as err:
            # On CI the TimescaleDB pass must run; elsewhere say why it cannot.
            if os.environ.get("CI"):
                raise
            pytest.skip(f"no TimescaleDB pass: {err}")
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


_TEMPLATE_FLAVOUR: dict[str, Flavour] = {}


@pytest.fixture(scope="session")
def migrated_template(pg_server: str) -> Iterator[str]:
    """Name of a database migrated once per session: the template ``database_url`` clones.

    Once migrated it accepts no connections: on a TimescaleDB server of a user's own the
    extension's job scheduler connects to every database with the extension, and a template
    with a connection cannot be cloned ("being accessed by other users")."""
    name = f"fw_template_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(make_conninfo(pg_server, dbname=name), autocommit=True) as conn:
        upgrade(conn, ASKED_FLAVOUR)
        found = current_flavour(conn)
    assert found is not None
    _TEMPLATE_FLAVOUR[name] = found
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
    yield name
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def flavour(migrated_template: str) -> Flavour:
    """The storage flavour of this session's databases."""
    return _TEMPLATE_FLAVOUR[migrated_template]


@pytest.fixture(autouse=True)
def _only_on_its_flavour(request: pytest.FixtureRequest) -> None:
    """Skip a test marked ``flavour(name)`` on the other flavour's pass."""
    mark = request.node.get_closest_marker("flavour")
    if mark is None:
        return
    here = request.getfixturevalue("flavour")
    if mark.args[0] != here:
        pytest.skip(f"tests {mark.args[0]} internals; this pass runs on {here}")


@pytest.fixture
def database_url(pg_server: str, migrated_template: str) -> Iterator[str]:
    """A fresh, migrated (not seeded) database for one test; dropped afterwards."""
    name = f"fw_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    yield make_conninfo(pg_server, dbname=name)
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for this test's database and no broker (the environment is ignored for the
    fields set here). Tuned so that services start and react quickly: backoff from 50 ms,
    analytics polling every 50 ms and checkpointing every 0.2 s, alerting ticking every
    50 ms, no /metrics servers, the API on 127.0.0.1 and a free port, and no per-device
    rate limit (tests push thousands of messages through one device to test ingest, not
    the limit; tests/ingest/test_rate_limit.py sets it)."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        mqtt_url=None,
        ingest_client_id=f"test-ingest-{uuid.uuid4().hex[:8]}",
        ingest_metrics_port=0,
        analytics_metrics_port=0,
        alerting_metrics_port=0,
        analysis_metrics_port=0,
        risk_metrics_port=0,
        supervision_metrics_port=0,
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
        analytics_poll_s=0.05,
        analytics_checkpoint_s=0.2,
        alert_tick_s=0.05,
        api_host="127.0.0.1",
        api_port=0,
        ingest_device_rate_per_s=0.0,
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to this test's database, seeded with the demo city and
    with today's partitions (``maintain``)."""
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        load_seed(conn, read_seed())
        maintain(conn, settings)
        yield conn


@pytest.fixture
def admin_token(db: psycopg.Connection[Any]) -> Iterator[dict[str, str]]:
    """An admin with a fresh API token in ``db``; its header, also in
    ``tests.builders.people.ADMIN`` for module-level helpers while the test runs. Every API
    route but health, login and the public pages needs someone (issue 12); an admin may
    call them all."""
    ADMIN.update(as_role(db, Role.ADMIN, username="t-admin"))
    try:
        yield dict(ADMIN)
    finally:
        ADMIN.clear()


@pytest.fixture
def connect(database_url: str) -> Iterator[Connect]:
    """Opens autocommit connections to this test's database; closes them afterwards. For
    tests that need several connections (concurrency), or one on the unseeded database."""
    opened: list[psycopg.Connection[Any]] = []

    def _connect() -> psycopg.Connection[Any]:
        conn = psycopg.connect(database_url, autocommit=True)
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()


@pytest.fixture
def mqtt_url(tmp_path: Path) -> Iterator[str]:
    """A throwaway Mosquitto on a free loopback port, using mosquitto/conf.d."""
    with mosquitto(tmp_path / "mosquitto") as url:
        yield url


@pytest.fixture
def mqtt_settings(settings: Settings, mqtt_url: str) -> Settings:
    """``settings`` with this test's broker."""
    return settings.model_copy(update={"mqtt_url": mqtt_url})
