"""A broker with authentication on for the registry's tests: started from the registry's
file (admin and ingest accounts, no device yet), its ``$CONTROL`` client, and device
connections that record what the broker answers (issue 14; ADR 0012)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from firewatch.core.settings import Settings
from firewatch.registry import credentials as service
from firewatch.registry.sync import BrokerSync
from firewatch.runtime.brokerconf import Account, Kind, write_dynsec
from firewatch.runtime.dynsec_control import DynsecControl, admin_address
from firewatch.runtime.mosquitto import Broker
from tests.builders.city import WATER
from tests.helpers import wait_until

ADMIN, ADMIN_PW = "firewatch-admin", "admin-secret-for-tests"
INGEST_PW = "ingest-secret-for-tests"
ROOT = "firewatch/v1"
OTHER_UNIT = "U-WD-002"
TIMEOUT = 15.0
NOT_AUTHORIZED = 0x87
#: PUBACK codes of an accepted publish: 0x10 is "no matching subscribers" (no ingest here).
ACCEPTED = {0x00, 0x10}


@dataclass
class Secure:
    """A broker with authentication on, its $CONTROL client and the settings to reach it."""

    broker: Broker
    control: DynsecControl
    settings: Settings
    dynsec: Path

    @property
    def host(self) -> str:
        return self.broker.host

    @property
    def port(self) -> int:
        return self.broker.port


def document(db: psycopg.Connection[Any], settings: Settings) -> dict[str, Any]:
    accounts = [
        Account(Kind.ADMIN, ADMIN, ADMIN_PW),
        Account(Kind.INGEST, settings.ingest_client_id, INGEST_PW),
    ]
    return service.broker_document(db, accounts, topic_root=ROOT, ingest_group="")


@contextmanager
def secure_broker(
    tmp_path: Path, settings: Settings, db: psycopg.Connection[Any]
) -> Iterator[Secure]:
    """Mosquitto with the production access control, from the registry (see the module
    docstring), its $CONTROL client, and ``settings`` completed to reach it."""
    dynsec = tmp_path / "dynsec.json"
    write_dynsec(dynsec, document(db, settings), mode=0o600)
    with Broker(tmp_path / "broker", dynsec=dynsec) as broker:
        url = f"mqtt://{settings.ingest_client_id}:{INGEST_PW}@{broker.host}:{broker.port}"
        ready = settings.model_copy(
            update={
                "mqtt_url": url,
                "mqtt_admin_username": ADMIN,
                "mqtt_admin_password": ADMIN_PW,
                "broker_sync_interval_s": 0.5,
            }
        )
        with DynsecControl(admin_address(url, ADMIN, ADMIN_PW)) as control:
            yield Secure(broker, control, ready, dynsec)


@dataclass
class Device:
    """A paho client that records the broker's answers and never reconnects by itself."""

    paho: mqtt.Client
    connack: int | None = None
    pubacks: dict[int, int] = field(default_factory=dict)
    subacks: dict[int, int] = field(default_factory=dict)
    disconnected: threading.Event = field(default_factory=threading.Event)

    def subscribe(self, topic_: str) -> int:
        """QoS 1; the SUBACK's reason code (1 granted QoS 1, 0x87 refused)."""
        _rc, mid = self.paho.subscribe(topic_, qos=1)
        assert mid is not None, "not connected"
        wait_until(lambda: mid in self.subacks, TIMEOUT, f"SUBACK for {topic_}")
        return self.subacks[mid]

    def publish(self, topic_: str, payload: bytes = b"{}") -> int:
        """QoS 1; the PUBACK's reason code (0 accepted, 0x87 refused)."""
        info = self.paho.publish(topic_, payload, qos=1)
        wait_until(lambda: info.mid in self.pubacks, TIMEOUT, f"PUBACK on {topic_}")
        return self.pubacks[info.mid]


@contextmanager
def device(
    secure: Secure, username: str | None, password: str | None, client_id: str | None = None
) -> Iterator[Device]:
    """A connection as ``username`` (None: anonymous), with its CONNACK received."""
    paho = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or username or f"anon-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv5,
        reconnect_on_failure=False,
    )
    if username is not None:
        paho.username_pw_set(username, password)
    dev = Device(paho)

    def on_connect(_c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        dev.connack = rc.value

    def on_publish(_c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        dev.pubacks[mid] = rc.value

    def on_subscribe(_c: Any, _u: Any, mid: int, rcs: list[ReasonCode], _p: Any) -> None:
        dev.subacks[mid] = rcs[0].value

    paho.on_connect = on_connect
    paho.on_publish = on_publish
    paho.on_subscribe = on_subscribe
    paho.on_disconnect = lambda *_a: dev.disconnected.set()
    paho.connect(secure.host, secure.port)
    paho.loop_start()
    try:
        wait_until(lambda: dev.connack is not None, TIMEOUT, f"CONNACK for {username}")
        yield dev
    finally:
        paho.disconnect()
        paho.loop_stop()


def connack(secure: Secure, username: str | None, password: str | None, **kw: Any) -> int:
    with device(secure, username, password, **kw) as dev:
        assert dev.connack is not None
        return dev.connack


@contextmanager
def running_sync(secure: Secure) -> Iterator[BrokerSync]:
    sync = BrokerSync(secure.settings, secure.control)
    stop = threading.Event()
    thread = threading.Thread(target=sync.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(sync.ready.is_set, TIMEOUT, "broker sync ready")
        yield sync
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the broker sync did not stop"


def issue(db: psycopg.Connection[Any], secure: Secure, device_id: str = WATER) -> str:
    return service.issue(db, secure.control, device_id, actor="test", topic_root=ROOT).password
