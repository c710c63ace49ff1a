"""``firewatch broker config`` in-process (``firewatch.cli.main``), as docker-compose's
``broker-config`` service runs it (docs/adr/0012-device-credentials.md): the broker's
dynamic-security file from the registry plus the service accounts given, an optional demo
publisher left out when its password is empty, and a real Mosquitto started from the file
letting the registered device in with its password only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from firewatch.cli import main
from firewatch.core.credentials import broker_hash
from firewatch.runtime import brokerconf
from firewatch.runtime.mosquitto import Broker
from firewatch.storage.credentials import store_hash
from tests.builders.city import UNIT, WATER
from tests.helpers import cli_env, wait_until

ADMIN, ADMIN_PW = "firewatch-admin", "admin-secret-for-tests"
INGEST = "firewatch-ingest-1"
GATEWAY, GATEWAY_PW = "firewatch-gateway", "gateway-secret-for-tests"
SIMULATOR = "firewatch-simulator"
DEVICE_PW = "pw"
NOT_AUTHORIZED = 0x87
TIMEOUT = 15.0


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> None:
    cli_env(monkeypatch, database_url, tmp_path / "data")


@pytest.fixture
def registered(db: psycopg.Connection[Any]) -> str:
    """The seeded city, with a credential (password ``pw``) for its water device."""
    with db.transaction():
        store_hash(db, WATER, broker_hash(DEVICE_PW), actor="test")
    return WATER


def clients(path: Path) -> dict[str, dict[str, Any]]:
    return {c["username"]: c for c in json.loads(path.read_text("utf-8"))["clients"]}


def role_acls(path: Path, rolename: str) -> list[dict[str, Any]]:
    roles = {r["rolename"]: r for r in json.loads(path.read_text("utf-8"))["roles"]}
    acls: list[dict[str, Any]] = roles[rolename]["acls"]
    return acls


@contextmanager
def connected(
    broker: Broker, username: str, password: str, client_id: str | None = None
) -> Iterator[int]:
    """Log in as ``username`` (client id = username, as devices must, unless ``client_id``);
    yields the CONNACK reason code (0: accepted, 0x87: not authorized). Never reconnects by
    itself."""
    codes: list[int] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or username,
        protocol=mqtt.MQTTv5,
        reconnect_on_failure=False,
    )
    client.username_pw_set(username, password)

    def on_connect(_c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        codes.append(rc.value)

    client.on_connect = on_connect
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        wait_until(lambda: bool(codes), TIMEOUT, f"CONNACK for {username}")
        yield codes[0]
    finally:
        client.disconnect()
        client.loop_stop()


def connack(broker: Broker, username: str, password: str, client_id: str | None = None) -> int:
    with connected(broker, username, password, client_id) as code:
        return code


@pytest.mark.usefixtures("env")
def test_the_file_holds_the_registry_and_the_service_accounts_and_the_broker_loads_it(
    registered: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "accounts" / "dynsec.json"
    argv = [
        "broker",
        "config",
        "--out",
        str(out),
        "--admin",
        f"{ADMIN}:{ADMIN_PW}",
        "--ingest",
        INGEST,  # no password: one is generated and printed once
        "--publisher",
        f"{SIMULATOR}:",  # what ${SIMULATOR_MQTT_PASSWORD:-} gives when it is unset
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()

    found = clients(out)
    assert set(found) == {ADMIN, INGEST, registered}, "no publisher without a password"
    assert brokerconf.check_password(found[ADMIN], ADMIN_PW)
    device = found[registered]
    assert device["clientid"] == registered
    assert device["textdescription"] == brokerconf.DEVICE_DESCRIPTION
    assert brokerconf.check_password(device, DEVICE_PW)
    assert not brokerconf.check_password(device, "another password")
    # The device's role pins its unit: it may publish as itself under that unit only.
    acls = role_acls(out, brokerconf.device_role(registered))
    sends = {a["topic"] for a in acls if a["acltype"] == "publishClientSend"}
    assert f"firewatch/v1/{UNIT}/{registered}/telemetry" in sends
    assert all(topic.startswith(f"firewatch/v1/{UNIT}/{registered}/") for topic in sends)
    assert not any("+" in a["topic"] or "#" in a["topic"] for a in acls)

    # Only the generated password is printed, once, on stdout; a given one never.
    printed = dict(line.split("\t", 1) for line in captured.out.splitlines())
    assert set(printed) == {INGEST}
    assert brokerconf.check_password(found[INGEST], printed[INGEST])
    assert ADMIN_PW not in captured.out + captured.err
    skipped = [line for line in captured.err.splitlines() if SIMULATOR in line]
    assert len(skipped) == 1, captured.err
    assert "not created" in skipped[0]
    assert "password is empty" in skipped[0]
    assert "1 devices from the registry" in captured.err
    assert out.stat().st_mode & 0o777 == 0o644

    with Broker(tmp_path / "broker", dynsec=out) as broker:
        assert connack(broker, registered, DEVICE_PW) == 0
        assert connack(broker, registered, "not-its-password") == NOT_AUTHORIZED
        assert connack(broker, INGEST, printed[INGEST]) == 0
        assert connack(broker, SIMULATOR, "") == NOT_AUTHORIZED


@pytest.mark.usefixtures("env")
def test_a_publisher_with_a_password_is_created_and_not_bound_to_a_client_id(
    db: psycopg.Connection[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dynsec.json"
    argv = ["broker", "config", "--out", str(out), "--mode", "600"]
    assert main([*argv, "--admin", f"{ADMIN}:{ADMIN_PW}", "--publisher", f"{SIMULATOR}:s:m"]) == 0
    captured = capsys.readouterr()
    found = clients(out)
    assert set(found) == {ADMIN, SIMULATOR}, "no device has a credential yet"
    assert brokerconf.check_password(found[SIMULATOR], "s:m")
    assert "clientid" not in found[SIMULATOR], "a publisher opens many connections"
    assert found[ADMIN]["clientid"] == ADMIN
    assert captured.out == ""
    assert "not created" not in captured.err
    assert out.stat().st_mode & 0o777 == 0o600


@pytest.mark.usefixtures("env")
def test_a_gateway_is_bound_to_its_client_id_and_publishes_for_every_device(
    registered: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--gateway`` (docker-compose's gateway service): one connection under its own name,
    publishing every device's channels, subscribing to nothing."""
    out = tmp_path / "dynsec.json"
    argv = ["broker", "config", "--out", str(out), "--gateway", f"{GATEWAY}:{GATEWAY_PW}"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == "", "a given password is never printed"
    assert GATEWAY_PW not in captured.err
    assert "1 service accounts" in captured.err
    found = clients(out)
    assert set(found) == {GATEWAY, registered}
    gateway = found[GATEWAY]
    assert gateway["clientid"] == GATEWAY, "bound: no other client may take its session"
    assert gateway["textdescription"] == f"firewatch {brokerconf.Kind.GATEWAY.value}"
    assert brokerconf.check_password(gateway, GATEWAY_PW)
    [role] = [r["rolename"] for r in gateway["roles"]]
    acls = role_acls(out, role)
    assert {a["acltype"] for a in acls} == {"publishClientSend"}, "publishes, nothing else"
    assert {a["topic"] for a in acls} == {
        f"firewatch/v1/+/+/{ch}" for ch in brokerconf.DEVICE_CHANNELS
    }

    with Broker(tmp_path / "broker", dynsec=out) as broker:
        assert connack(broker, GATEWAY, GATEWAY_PW) == 0
        assert connack(broker, GATEWAY, "not-its-password") == NOT_AUTHORIZED
        assert connack(broker, GATEWAY, GATEWAY_PW, client_id="another-id") == NOT_AUTHORIZED


@pytest.mark.usefixtures("env")
def test_bad_accounts_and_an_unwritable_path_are_one_line_and_write_nothing(
    db: psycopg.Connection[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dynsec.json"
    for accounts, message in (
        (["--admin", f"{ADMIN}:"], "empty password"),  # only the demo publisher is optional
        (["--ingest", f"{INGEST}:"], "empty password"),
        (["--gateway", f"{GATEWAY}:"], "empty password"),
        (["--publisher", "bad/name:"], "bad account name"),
        (["--admin", f"{ADMIN}:a", "--ingest", f"{ADMIN}:b"], "more than once"),
    ):
        assert main(["broker", "config", "--out", str(out), *accounts]) == 2, accounts
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1, err
        assert err[0].startswith("firewatch: ")
        assert message in err[0], (accounts, err)
        assert not out.exists()
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    argv = ["broker", "config", "--out", str(blocked / "dynsec.json"), "--admin", ADMIN]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == "", "no password shown for a file that was not written"
    err = captured.err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"firewatch: cannot write {blocked / 'dynsec.json'}: ")
