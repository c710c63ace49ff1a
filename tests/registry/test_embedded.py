"""``firewatch up``'s broker accounts (``registry/embedded.py``): the simulated city's devices
get credentials of their own, kept and reused while they match the registry; the broker
started from the file lets each of them in as itself, and the simulator publishing with
those credentials reaches ingest (issue 14: "the embedded default runs with authentication
on")."""

from __future__ import annotations

import stat
import threading
from pathlib import Path
from typing import Any

import psycopg

from firewatch.core.broker import BrokerAddress
from firewatch.core.credentials import read_credentials
from firewatch.core.settings import Settings
from firewatch.registry.embedded import prepare_accounts
from firewatch.runtime.mosquitto import Broker
from firewatch.simulators.engine import Simulation, scenario_window
from firewatch.simulators.scenario import load_scenario
from firewatch.simulators.sinks import publish_mqtt
from firewatch.storage.seed import read_seed
from tests.builders.city import PANEL, WATER
from tests.helpers import ThreadedIngest, scalar, wait_until
from tests.registry.broker import Secure, connack

SEEDED = [d.id for unit in read_seed().units for d in unit.devices]


def test_every_simulated_device_gets_a_login_kept_across_runs(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    first = prepare_accounts(db, settings, SEEDED)
    creds = read_credentials(first.simulator_credentials)
    assert sorted(creds) == sorted(SEEDED)
    assert stat.S_IMODE(first.simulator_credentials.stat().st_mode) == 0o600
    again = prepare_accounts(db, settings, SEEDED)
    assert read_credentials(again.simulator_credentials) == creds  # still valid: kept
    assert again.admin_password != first.admin_password  # service logins: fresh every run
    versions = dict(db.execute("SELECT device_id, version FROM device_credentials").fetchall())
    assert set(versions.values()) == {1}

    # A rotation elsewhere (or a lost file) is noticed: that device gets a new password.
    db.execute(
        "UPDATE device_credentials SET salt = 'AAAAAAAAAAAAAAAA' WHERE device_id = %s", (WATER,)
    )
    third = read_credentials(prepare_accounts(db, settings, SEEDED).simulator_credentials)
    assert third[WATER] != creds[WATER]
    assert third[PANEL] == creds[PANEL]


def test_the_simulated_city_logs_in_device_by_device_and_is_stored(
    settings: Settings, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    accounts = prepare_accounts(db, settings, SEEDED)
    with Broker(tmp_path / "broker", dynsec=accounts.dynsec) as broker:
        secure = Secure(broker, None, settings, accounts.dynsec)  # type: ignore[arg-type]
        creds = read_credentials(accounts.simulator_credentials)
        assert connack(secure, WATER, creds[WATER]) == 0
        assert connack(secure, WATER, creds[PANEL]) != 0
        assert connack(secure, None, None) != 0
        url = (
            f"mqtt://{accounts.ingest_username}:{accounts.ingest_password}"
            f"@{broker.host}:{broker.port}"
        )
        ingesting = settings.model_copy(update={"mqtt_url": url})
        # The demo city without its faults (they start minutes in): readings only.
        scenario = load_scenario("builtin:demo").model_copy(update={"speedup": 60.0, "faults": []})
        start, end = scenario_window(scenario, live=False, duration=120.0)
        sim = Simulation(scenario, start=start, end=end, seed=1, root=settings.topic_root)
        with ThreadedIngest(ingesting):
            sent = publish_mqtt(sim, url, threading.Event(), 60.0, creds)
            assert sent.messages > 0
            assert sent.connections == len(SEEDED)  # one login per device, no gateway
            wait_until(
                lambda: (
                    scalar(db, "SELECT count(DISTINCT device_id) FROM telemetry")
                    == scalar(db, "SELECT count(*) FROM devices WHERE kind <> 'panel'")
                ),
                30,
                "every sensor's readings stored",
            )
    assert BrokerAddress.parse(url).username == settings.ingest_client_id
