"""Device credentials the broker enforces, synced from the registry (issue 14; ADR 0012),
against a real Mosquitto with the dynamic-security plugin and the real database.

The broker starts from the registry's file (``broker_document``: admin and ingest accounts,
no device yet); credentials are issued over ``$CONTROL`` (``registry.credentials``) and the
broker sync (``registry.sync``) applies revocations and moves. Every wait is a condition
with a deadline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from firewatch.core.credentials import DeviceLogin, broker_hash
from firewatch.registry import credentials as service
from firewatch.registry.sync import plan
from firewatch.runtime.brokerconf import device_acls, write_dynsec
from firewatch.runtime.mosquitto import Broker
from firewatch.storage import credentials as store
from tests.builders.city import UNIT, WATER, WATER_2, topic
from tests.builders.payloads import water
from tests.helpers import ThreadedIngest, scalar, wait_until
from tests.registry.broker import (
    ACCEPTED,
    ADMIN,
    ADMIN_PW,
    NOT_AUTHORIZED,
    OTHER_UNIT,
    ROOT,
    TIMEOUT,
    Secure,
    connack,
    device,
    document,
    issue,
    running_sync,
)


# --- the tests ------------------------------------------------------------------------------
def test_a_provisioned_device_publishes_and_is_stored(
    secure: Secure, db: psycopg.Connection[Any]
) -> None:
    password = issue(db, secure)
    assert store.hash_of(db, WATER) is not None
    assert password not in str(db.execute("SELECT * FROM device_credentials").fetchall())
    with ThreadedIngest(secure.settings), device(secure, WATER, password) as dev:
        assert dev.connack == 0
        assert dev.publish(topic(WATER), water(1)) == 0
        wait_until(
            lambda: scalar(db, "SELECT count(*) FROM telemetry WHERE device_id = %s", WATER) == 1,
            TIMEOUT,
            "the reading stored",
        )


def test_publishing_as_another_device_or_unit_is_refused(
    secure: Secure, db: psycopg.Connection[Any]
) -> None:
    password = issue(db, secure)
    issue(db, secure, WATER_2)
    with device(secure, WATER, password) as dev:
        assert dev.publish(topic(WATER_2), water(1)) == NOT_AUTHORIZED
    with device(secure, WATER, password) as dev:
        assert dev.publish(topic(WATER, unit=OTHER_UNIT), water(1)) == NOT_AUTHORIZED
    with device(secure, WATER, password) as dev:  # its own topics still work
        assert dev.publish(topic(WATER, "status"), b'{"seq":1}') in ACCEPTED
        # It may listen to its own command topic only: not another device's, not another
        # unit's, not everything.
        assert dev.subscribe(topic(WATER, "command")) == 1
        assert dev.subscribe(topic(WATER_2, "command")) == NOT_AUTHORIZED
        assert dev.subscribe(topic(WATER, "command", unit=OTHER_UNIT)) == NOT_AUTHORIZED
        assert dev.subscribe("firewatch/v1/#") == NOT_AUTHORIZED
    # Nor can it log in under another device's client id.
    assert connack(secure, WATER, password, client_id=WATER_2) == NOT_AUTHORIZED


def test_anonymous_and_wrong_password_connects_are_refused(
    secure: Secure, db: psycopg.Connection[Any]
) -> None:
    password = issue(db, secure)
    assert connack(secure, None, None) != 0
    assert connack(secure, WATER, password + "x") != 0
    assert connack(secure, WATER_2, password) != 0  # a device with no credential
    assert connack(secure, WATER, password) == 0


def test_a_rotated_password_works_at_once_and_the_old_one_does_not(
    secure: Secure, db: psycopg.Connection[Any]
) -> None:
    old = issue(db, secure)
    with device(secure, WATER, old) as dev:
        new = issue(db, secure)
        # A rotation disconnects whoever holds the old password.
        assert dev.disconnected.wait(TIMEOUT), "the old login stayed connected"
    assert new != old
    assert connack(secure, WATER, new) == 0
    assert connack(secure, WATER, old) != 0
    row = store.credential_of(db, WATER)
    assert row is not None
    assert row["version"] == 2


def test_a_revoked_device_is_cut_off_and_cannot_reconnect(
    secure: Secure, db: psycopg.Connection[Any]
) -> None:
    password = issue(db, secure)
    with running_sync(secure) as sync, device(secure, WATER, password) as dev:
        assert dev.connack == 0
        # Without $CONTROL: the database change and its NOTIFY alone reach the broker.
        assert service.revoke(db, None, WATER, actor="test")
        assert dev.disconnected.wait(TIMEOUT), "the revoked device stayed connected"
        wait_until(lambda: sync.stats.deleted == 1, TIMEOUT, "the round counted")
    assert connack(secure, WATER, password) != 0
    events = db.execute(
        "SELECT event FROM registry_events WHERE subject_id = %s ORDER BY id", (WATER,)
    ).fetchall()
    assert [e for (e,) in events] == ["issued", "revoked"]


def test_a_device_moved_to_another_unit_may_publish_there_only(
    secure: Secure, db: psycopg.Connection[Any]
) -> None:
    password = issue(db, secure)
    with running_sync(secure) as sync:
        with db.transaction():
            db.execute("UPDATE devices SET unit_id = %s WHERE id = %s", (OTHER_UNIT, WATER))
            store.signal_broker(db)
        wait_until(lambda: sync.stats.roles_fixed == 1, TIMEOUT, "the role rewritten")
    with device(secure, WATER, password) as dev:
        assert dev.publish(topic(WATER, unit=OTHER_UNIT), water(1)) in ACCEPTED
    with device(secure, WATER, password) as dev:
        assert dev.publish(topic(WATER, unit=UNIT), water(2)) == NOT_AUTHORIZED


def test_the_sync_removes_device_accounts_the_registry_does_not_know(
    secure: Secure, db: psycopg.Connection[Any]
) -> None:
    # An account made at the broker behind the registry's back (by hand, or left over).
    service.push(secure.control, service.account_commands("D-ROGUE", UNIT, "rogue-pw", ROOT))
    assert connack(secure, "D-ROGUE", "rogue-pw") == 0
    issue(db, secure)
    with db.transaction():  # a device that may log in but whose account the broker lost
        store.store_hash(db, WATER_2, broker_hash("lost"), actor="test")
    with running_sync(secure) as sync:
        wait_until(lambda: sync.stats.rounds >= 1, TIMEOUT, "a round")
        assert sync.stats.deleted == 1
        assert sync.stats.last_missing == [WATER_2]
    assert connack(secure, "D-ROGUE", "rogue-pw") != 0
    # Not the registry's, and not a device: the service accounts are left alone.
    assert connack(secure, ADMIN, ADMIN_PW) == 0


def test_a_broker_started_from_the_registry_lets_issued_devices_in(
    secure: Secure, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    password = issue(db, secure)
    with db.transaction():
        db.execute("UPDATE devices SET decommissioned_at = now() WHERE id = %s", (WATER_2,))
    restarted = tmp_path / "from-registry.json"
    write_dynsec(restarted, document(db, secure.settings), mode=0o600)
    secure.broker.stop()
    with Broker(tmp_path / "broker2", dynsec=restarted) as broker:
        again = Secure(broker, secure.control, secure.settings, restarted)
        # The stored hash is the broker's own format: the password works with no push.
        assert connack(again, WATER, password) == 0
        assert connack(again, WATER, "not-it") != 0


def test_issue_refuses_unknown_and_decommissioned_devices_and_stores_nothing(
    secure: Secure, db: psycopg.Connection[Any]
) -> None:
    with pytest.raises(service.NoSuchDevice):
        issue(db, secure, "D-NOPE")
    db.execute("UPDATE devices SET decommissioned_at = now() WHERE id = %s", (WATER,))
    with pytest.raises(service.Decommissioned):
        issue(db, secure)
    assert scalar(db, "SELECT count(*) FROM device_credentials") == 0


def test_nothing_is_stored_when_the_broker_does_not_confirm(
    secure: Secure, db: psycopg.Connection[Any]
) -> None:
    secure.broker.stop()
    wait_until(lambda: not secure.control._ready.is_set(), TIMEOUT, "control sees the outage")
    with pytest.raises(service.BrokerUnavailable):
        issue(db, secure)
    assert store.credential_of(db, WATER) is None
    assert scalar(db, "SELECT count(*) FROM registry_events") == 0


def test_plan_only_touches_device_accounts() -> None:
    wanted = [DeviceLogin("D-1", "U-1", broker_hash("x"))]
    clients = [
        {"username": "D-1", "textdescription": "firewatch device", "roles": []},
        {"username": "D-OLD", "textdescription": "firewatch device", "roles": []},
        {"username": "firewatch-ingest-1", "textdescription": "firewatch ingest", "roles": []},
    ]
    roles: list[dict[str, Any]] = [
        {"rolename": "firewatch-device:D-1", "acls": device_acls("D-1", ROOT, "U-OLD")},
        {"rolename": "firewatch-device:D-GONE", "acls": []},
        {"rolename": "firewatch-ingest", "acls": []},
    ]
    commands, missing, counts = plan(wanted, clients, roles, ROOT)
    assert missing == []
    assert counts == {"deleted": 1, "roles_fixed": 1, "roles_dropped": 1}
    assert {"command": "deleteClient", "username": "D-OLD"} in commands
    fixed = next(c for c in commands if c["command"] == "modifyRole")
    assert {a["topic"] for a in fixed["acls"]} >= {f"{ROOT}/U-1/D-1/telemetry"}
    assert {"command": "deleteRole", "rolename": "firewatch-device:D-GONE"} in commands
    assert not any(c.get("username") == "firewatch-ingest-1" for c in commands)
