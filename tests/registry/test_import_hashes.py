"""Upgrading a broker whose devices were provisioned offline (``mosquitto/passwd.py
--from-seed``) before the registry kept credentials: ``firewatch broker import-accounts``
takes their hashes into the registry, so the devices keep their passwords when the broker
starts from the registry (ADR 0012)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from firewatch.core.credentials import broker_hash, matches
from firewatch.core.settings import Settings
from firewatch.registry.credentials import import_hashes
from firewatch.runtime.brokerconf import Account, Kind, build_dynsec, read_dynsec, write_dynsec
from firewatch.runtime.mosquitto import Broker
from firewatch.storage import credentials as store
from tests.builders.city import PANEL, WATER, WATER_2
from tests.helpers import cli_env, scalar
from tests.registry.broker import Secure, connack, document

OLD = {WATER: "water-from-passwd-py", WATER_2: "water2-from-passwd-py", "D-GONE": "x" * 12}


def old_file(tmp_path: Path) -> Path:
    """What ``passwd.py --device ID:PW ... --ingest ...`` wrote before issue 14."""
    accounts = [Account(Kind.DEVICE, d, pw) for d, pw in OLD.items()]
    accounts.append(Account(Kind.INGEST, "firewatch-ingest-1", "ingest-secret"))
    path = tmp_path / "old-dynsec.json"
    write_dynsec(path, build_dynsec(accounts))
    return path


def test_old_device_hashes_are_imported_and_the_broker_from_the_registry_accepts_them(
    tmp_path: Path, settings: Settings, db: psycopg.Connection[Any]
) -> None:
    with db.transaction():  # WATER_2 was given a credential through the API already
        store.store_hash(db, WATER_2, broker_hash("issued-by-the-api"), actor="test")
    doc = read_dynsec(old_file(tmp_path))
    dry = import_hashes(db, doc, actor="test", dry_run=True)
    assert (dry.imported, dry.kept, dry.unknown) == ([WATER], [WATER_2], ["D-GONE"])
    assert store.hash_of(db, WATER) is None  # the dry run wrote nothing

    done = import_hashes(db, doc, actor="ops", dry_run=False)
    assert done.imported == [WATER]
    stored = store.hash_of(db, WATER)
    assert stored is not None
    assert matches(stored, OLD[WATER])
    kept = store.hash_of(db, WATER_2)
    assert kept is not None
    assert matches(kept, "issued-by-the-api")
    event = db.execute(
        "SELECT event, actor FROM registry_events WHERE subject_id = %s", (WATER,)
    ).fetchone()
    assert event == ("issued", "ops")

    dynsec = tmp_path / "from-registry.json"
    write_dynsec(dynsec, document(db, settings), mode=0o600)
    with Broker(tmp_path / "broker", dynsec=dynsec) as broker:
        secure = Secure(broker, None, settings, dynsec)  # type: ignore[arg-type]
        assert connack(secure, WATER, OLD[WATER]) == 0  # the installer changes nothing
        assert connack(secure, WATER_2, "issued-by-the-api") == 0
        assert connack(secure, WATER_2, OLD[WATER_2]) != 0
        assert connack(secure, PANEL, "anything") != 0


def test_the_command_reports_and_refuses_an_unreadable_file(
    tmp_path: Path,
    database_url: str,
    db: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from firewatch.cli import main

    cli_env(monkeypatch, database_url, tmp_path / "data")
    path = old_file(tmp_path)
    assert main(["broker", "import-accounts", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run, nothing written: 2 imported" in out
    assert scalar(db, "SELECT count(*) FROM device_credentials") == 0
    assert main(["broker", "import-accounts", str(path)]) == 0
    assert scalar(db, "SELECT count(*) FROM device_credentials") == 2
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    assert main(["broker", "import-accounts", str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err
