"""The ``firewatch`` command as an operator meets it (issue 9, hardening): the real
``python -m firewatch`` in a subprocess, run from a temporary directory with no
``.firewatch`` anywhere above it and no ``FIREWATCH_`` variables but the test's own.

Checked: the data directory is found from a subdirectory; commands that need a database and
find none, an unmigrated or unreachable database, bad settings, missing files and an
insecure webhook secret each end with one line on stderr, no traceback (unless ``-v``), the
documented exit code, and nothing created on disk; only ``db upgrade`` creates an embedded
database. Also the dispatcher's refusal of insecure webhook secrets, and the secret
``firewatch up`` generates once and reuses."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from firewatch.alerting.dispatcher import (
    MIN_WEBHOOK_SECRET_BYTES,
    InsecureWebhookSecretError,
    OutboxDispatcher,
    check_webhook_secret,
)
from firewatch.core.passwords import verify_password
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from firewatch.runtime.mosquitto import free_port
from firewatch.runtime.postgres import DATA_DIR_NAME, find_data_dir
from firewatch.storage.people import (
    add_person,
    get_person_by_username,
    list_people,
    password_hash_of,
)
from firewatch.up import (
    WEBHOOK_SECRET_FILE,
    WebhookSecretFileError,
    ensure_first_admin,
    load_or_create_webhook_secret,
    with_webhook_secret,
)

DEFAULT_SECRET = Settings.model_fields["webhook_secret"].default
CC_URL = "http://127.0.0.1:9/command-center"  # never contacted: the tests stop before sending


def run_cli(cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m firewatch argv`` in ``cwd``, with the environment's ``FIREWATCH_``
    variables replaced by ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FIREWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "firewatch", *argv],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Assert ``result`` failed with ``code`` and exactly one stderr line, no traceback;
    return that line."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("firewatch: "), lines[0]
    return lines[0]


def data_dirs(root: Path) -> list[Path]:
    return sorted(root.rglob(DATA_DIR_NAME))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory outside any checkout: no ``.firewatch`` in it or above it."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    found = find_data_dir(work)
    assert found is None, f"{found} above the test directory would be found; remove it"
    return work


@pytest.fixture
def empty_database_url(pg_server: str) -> Iterator[str]:
    """A database with no Firewatch schema (``firewatch db upgrade`` never ran there)."""
    name = f"fw_empty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield make_conninfo(pg_server, dbname=name)
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- finding (and not creating) the data directory -----------------------------------------


# one-shot commands (through the CLI's connection) and services (their own connections)
@pytest.mark.parametrize(
    "argv", [["db", "stats"], ["db", "seed"], ["alerting"], ["api"], ["ingest"]], ids=" ".join
)
def test_without_a_data_dir_a_command_says_what_is_missing(outside: Path, argv: list[str]) -> None:
    result = run_cli(outside, *argv, FIREWATCH_MQTT_URL="mqtt://127.0.0.1:9")
    line = one_line_error(result, 2)
    assert f"no Firewatch data directory ({DATA_DIR_NAME}) in {outside.resolve()}" in line
    assert "FIREWATCH_DATA_DIR" in line
    assert "FIREWATCH_DATABASE_URL" in line
    assert data_dirs(outside.parent) == []  # no new empty database was created


def test_verbose_shows_the_traceback_too(outside: Path) -> None:
    result = run_cli(outside, "-v", "db", "stats")
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("firewatch: no Firewatch data directory")
    assert data_dirs(outside.parent) == []


def test_db_upgrade_creates_the_database_and_a_subdirectory_finds_it(outside: Path) -> None:
    upgraded = run_cli(outside, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "applied" in upgraded.stdout
    assert (outside / DATA_DIR_NAME / "pgdata" / "PG_VERSION").is_file()

    below = outside / "reports" / "2026"
    below.mkdir(parents=True)
    stats = run_cli(below, "db", "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["telemetry"]["rows"] == 0  # the migrated database
    assert data_dirs(outside.parent) == [outside / DATA_DIR_NAME]  # no second one


def test_a_data_dir_without_a_database_is_named(outside: Path) -> None:
    (outside / DATA_DIR_NAME).mkdir()
    below = outside / "sub"
    below.mkdir()
    line = one_line_error(run_cli(below, "db", "stats"), 2)
    pgdata = outside.resolve() / DATA_DIR_NAME / "pgdata"
    assert f"no embedded database in {pgdata}" in line
    assert "firewatch db upgrade" in line
    assert not pgdata.exists()


def test_a_configured_data_dir_that_does_not_exist_is_named(outside: Path) -> None:
    missing = outside / "nowhere"
    line = one_line_error(run_cli(outside, "db", "stats", FIREWATCH_DATA_DIR=str(missing)), 2)
    assert f"the data directory {missing.resolve()} does not exist" in line
    assert not missing.exists()


def test_a_database_url_needs_no_data_dir(outside: Path, database_url: str) -> None:
    result = run_cli(outside, "db", "stats", FIREWATCH_DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["telemetry", "0"]
    assert data_dirs(outside.parent) == []


# --- the database: no schema, an old schema, unreachable ------------------------------------


@pytest.mark.parametrize("argv", [["db", "stats"], ["db", "anomalies"]], ids=" ".join)
def test_a_database_without_the_schema_asks_for_db_upgrade(
    outside: Path, empty_database_url: str, argv: list[str]
) -> None:
    line = one_line_error(run_cli(outside, *argv, FIREWATCH_DATABASE_URL=empty_database_url), 2)
    assert "has no Firewatch schema" in line
    assert "firewatch db upgrade" in line


def test_a_database_missing_tables_asks_for_db_upgrade(
    outside: Path, empty_database_url: str
) -> None:
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version integer)")  # a partial schema
    result = run_cli(outside, "db", "stats", FIREWATCH_DATABASE_URL=empty_database_url)
    line = one_line_error(result, 2)
    assert "schema is missing or older than this version" in line
    assert "does not exist" in line  # psycopg's reason, kept
    assert "firewatch db upgrade" in line


def test_an_unreachable_database_is_one_line(outside: Path) -> None:
    url = f"postgresql://firewatch@127.0.0.1:{free_port()}/firewatch?connect_timeout=5"
    line = one_line_error(run_cli(outside, "db", "stats", FIREWATCH_DATABASE_URL=url), 1)
    assert line.startswith("firewatch: cannot use the database: ")
    assert "127.0.0.1" in line


# --- settings and files ------------------------------------------------------------------------


def test_bad_settings_give_one_line_per_variable(outside: Path) -> None:
    result = run_cli(
        outside,
        "db",
        "stats",
        FIREWATCH_INGEST_BATCH_SIZE="lots",
        FIREWATCH_RECORD_RETENTION_DAYS="30",
        FIREWATCH_ALERT_OFFLINE_AFTER_S='{"panel": "soon", "water": "later"}',
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = sorted(result.stderr.splitlines())
    assert [line.split(":")[1].strip() for line in lines] == [
        "FIREWATCH_ALERT_OFFLINE_AFTER_S",
        "FIREWATCH_INGEST_BATCH_SIZE",
        "FIREWATCH_RECORD_RETENTION_DAYS",
    ]
    assert "[panel]" in lines[0]  # both keys, one line
    assert "[water]" in lines[0]
    assert "365 days" in lines[2]
    assert "lots" not in result.stderr  # values are not echoed: they may be secrets


def test_a_value_that_is_not_json_names_its_variable(outside: Path) -> None:
    line = one_line_error(run_cli(outside, "db", "stats", FIREWATCH_ALERT_ACK_TIMEOUT_S="{"), 2)
    assert line.startswith("firewatch: FIREWATCH_ALERT_ACK_TIMEOUT_S: cannot parse the value")


def test_a_missing_seed_file_is_one_line(outside: Path) -> None:
    line = one_line_error(run_cli(outside, "db", "seed", "city.toml"), 1)
    assert "No such file or directory" in line
    assert "city.toml" in line


# --- the webhook secret -------------------------------------------------------------------------


def test_alerting_refuses_the_public_default_secret(outside: Path) -> None:
    result = run_cli(outside, "alerting", FIREWATCH_WEBHOOK_COMMAND_CENTER_URL=CC_URL)
    line = one_line_error(result, 2)
    assert "FIREWATCH_WEBHOOK_SECRET is the public development default" in line
    assert "FIREWATCH_WEBHOOK_COMMAND_CENTER_URL" in line
    assert data_dirs(outside.parent) == []  # refused before touching a database


def test_up_refuses_a_short_configured_secret_before_starting_anything(outside: Path) -> None:
    result = run_cli(
        outside, "up", FIREWATCH_WEBHOOK_NOTIFY_URL=CC_URL, FIREWATCH_WEBHOOK_SECRET="tooshort"
    )
    line = one_line_error(result, 2)
    assert f"shorter than {MIN_WEBHOOK_SECRET_BYTES} bytes" in line
    assert "FIREWATCH_WEBHOOK_NOTIFY_URL" in line
    assert data_dirs(outside.parent) == []


def webhook_settings(**update: Any) -> Settings:
    """Settings with no webhook URL unless ``update`` sets one (the environment's ignored)."""
    base: dict[str, Any] = {
        "webhook_command_center_url": None,
        "webhook_notify_url": None,
        "webhook_supervisor_url": None,
        "alerting_metrics_port": 0,
    }
    return Settings(**{**base, **update})


@pytest.mark.parametrize(
    "url_field", ["webhook_command_center_url", "webhook_notify_url", "webhook_supervisor_url"]
)
@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (DEFAULT_SECRET, "public development default"),
        ("", "shorter than"),
        ("x" * (MIN_WEBHOOK_SECRET_BYTES - 1), "shorter than"),
        ("é" * 7 + "x", "shorter than"),  # 8 characters but 15 bytes
    ],
)
def test_the_dispatcher_refuses_an_insecure_secret_with_a_url(
    url_field: str, secret: str, problem: str
) -> None:
    settings = webhook_settings(**{url_field: CC_URL, "webhook_secret": secret})
    with pytest.raises(InsecureWebhookSecretError, match=problem):
        OutboxDispatcher(settings, "dbname=never-connected")
    with pytest.raises(InsecureWebhookSecretError, match=f"FIREWATCH_{url_field.upper()}"):
        check_webhook_secret(settings)


@pytest.mark.parametrize(
    "update",
    [
        {},  # the embedded demo: nothing is sent, so nothing is signed
        {"webhook_secret": ""},
        {"webhook_command_center_url": CC_URL, "webhook_secret": "k" * MIN_WEBHOOK_SECRET_BYTES},
        {
            "webhook_notify_url": CC_URL,
            "webhook_supervisor_url": CC_URL,
            "webhook_secret": os.urandom(24).hex(),
        },
    ],
    ids=["no-url-default", "no-url-empty", "url-16-bytes", "urls-random"],
)
def test_the_dispatcher_accepts(update: dict[str, Any], database_url: str) -> None:
    settings = webhook_settings(**update)
    with OutboxDispatcher(settings, database_url) as dispatcher:
        assert dispatcher.pending() == {}  # it starts and works against the database


def test_up_generates_the_webhook_secret_once_and_reuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREWATCH_WEBHOOK_SECRET", raising=False)
    data = tmp_path / "data"  # does not exist yet: `firewatch up` creates it
    first = with_webhook_secret(Settings(data_dir=data))
    path = data / WEBHOOK_SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == first.webhook_secret
    assert first.webhook_secret != DEFAULT_SECRET
    assert len(first.webhook_secret.encode()) >= 32
    check_webhook_secret(first.model_copy(update={"webhook_command_center_url": CC_URL}))
    inode = path.stat().st_ino

    again = with_webhook_secret(Settings(data_dir=data))
    assert again.webhook_secret == first.webhook_secret
    assert path.stat().st_ino == inode  # read back, not rewritten
    assert sorted(p.name for p in data.iterdir()) == [WEBHOOK_SECRET_FILE]  # no temp files

    other = with_webhook_secret(Settings(data_dir=tmp_path / "other"))
    assert other.webhook_secret != first.webhook_secret  # random per data directory


def test_a_configured_secret_wins_and_no_file_is_written(tmp_path: Path) -> None:
    configured = "c" * 40
    settings = with_webhook_secret(Settings(data_dir=tmp_path / "data", webhook_secret=configured))
    assert settings.webhook_secret == configured
    assert not (tmp_path / "data").exists()


def test_a_spoiled_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / WEBHOOK_SECRET_FILE).write_text("short\n")
    with pytest.raises(WebhookSecretFileError, match="delete it"):
        load_or_create_webhook_secret(tmp_path)


def test_up_makes_a_first_admin_once_and_shows_its_password_until_the_file_goes(
    db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    password = ensure_first_admin(db, tmp_path)
    assert password is not None
    assert len(password) >= 16
    stored = password_hash_of(db, "admin")
    assert stored is not None
    assert verify_password(password, stored)[0]
    assert (tmp_path / "first-admin-password").stat().st_mode & 0o777 == 0o600
    assert ensure_first_admin(db, tmp_path) == password  # shown again, not made again
    assert [p.username for p in list_people(db) if p.role is Role.ADMIN] == ["admin"]
    (tmp_path / "first-admin-password").unlink()
    assert ensure_first_admin(db, tmp_path) is None  # an admin exists: nothing is made


def test_up_makes_no_first_admin_when_someone_administers_already(
    db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    add_person(db, username="chief", role=Role.ADMIN, actor="test")
    assert ensure_first_admin(db, tmp_path) is None
    assert get_person_by_username(db, "admin") is None
    assert not (tmp_path / "first-admin-password").exists()
