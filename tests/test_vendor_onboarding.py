"""Issue 14's "done when", end to end: a vendor with an API token registers a device,
gets its credential, connects over TLS, publishes, runs the conformance check and reads its
dead letters, against a real Mosquitto (dynamic security, a TLS listener with a CA made by
``firewatch broker certs``), the real ingest worker and the API, as the vendor guide says.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firewatch.api.app import create_app
from firewatch.core.broker import BrokerAddress
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from firewatch.registry.credentials import broker_document
from firewatch.runtime.brokerconf import Account, Kind, write_dynsec
from firewatch.runtime.certs import make_certs
from firewatch.runtime.mosquitto import Broker, TlsFiles
from tests.api.conftest import TEST_OPTIONS
from tests.builders.payloads import water
from tests.builders.people import as_role
from tests.helpers import ThreadedIngest, scalar, wait_until

pytestmark = pytest.mark.anyio
DEVICE, UNIT = "D-ACME-9001", "U-WD-002"  # acme serves U-WD-002 (the demo seed)
ADMIN_PW, INGEST_PW = "admin-secret-onboarding", "ingest-secret-onboarding"
TIMEOUT = 20.0


@dataclass
class Platform:
    api: httpx.AsyncClient
    broker: Broker
    ca: Path
    settings: Settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def platform(
    tmp_path: Path, settings: Settings, db: psycopg.Connection[Any]
) -> AsyncIterator[Platform]:
    """The operator's side: certificates, the broker from the registry with its TLS
    listener, ingest and the API holding the broker's admin account."""
    certs = make_certs(tmp_path / "certs", ["localhost"])
    accounts = [
        Account(Kind.ADMIN, settings.mqtt_admin_username, ADMIN_PW),
        Account(Kind.INGEST, settings.ingest_client_id, INGEST_PW),
    ]
    dynsec = tmp_path / "dynsec.json"
    doc = broker_document(db, accounts, topic_root=settings.topic_root, ingest_group="")
    write_dynsec(dynsec, doc, mode=0o600)
    tls = TlsFiles.in_dir(tmp_path / "certs")
    with Broker(tmp_path / "broker", dynsec=dynsec, tls=tls) as broker:
        url = f"mqtt://{settings.ingest_client_id}:{INGEST_PW}@{broker.host}:{broker.port}"
        ready = settings.model_copy(update={"mqtt_url": url, "mqtt_admin_password": ADMIN_PW})
        assert ready.database_url
        app = create_app(ready, ready.database_url, options=TEST_OPTIONS)
        with ThreadedIngest(ready):
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://api"
                ) as api,
            ):
                yield Platform(api, broker, certs.ca_cert, ready)


def connect_over_tls(p: Platform, password: str) -> tuple[mqtt.Client, dict[int, int]]:
    """The device, as the guide's Python example: TLS with the CA and host-name check,
    client id = username = device id, MQTT 5."""
    assert p.broker.tls_url
    addr = BrokerAddress.parse(p.broker.tls_url.replace("127.0.0.1", "localhost"))
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=DEVICE, protocol=mqtt.MQTTv5)
    client.username_pw_set(DEVICE, password)
    client.tls_set(ca_certs=str(p.ca), cert_reqs=ssl.CERT_REQUIRED)
    acks: dict[int, int] = {}
    connacks: list[int] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: connacks.append(rc.value)
    client.on_publish = lambda _c, _u, mid, rc, _p: acks.__setitem__(mid, rc.value)
    client.connect(addr.host, addr.port)
    client.loop_start()
    wait_until(lambda: bool(connacks), TIMEOUT, "CONNACK over TLS")
    assert connacks == [0]
    return client, acks


async def test_a_vendor_onboards_a_device_from_the_guide(
    platform: Platform, db: psycopg.Connection[Any]
) -> None:
    api = platform.api
    acme = as_role(db, Role.VENDOR, username=f"acme-{uuid.uuid4().hex[:4]}", vendor="acme")

    # 2. register the device in a unit acme serves
    r = await api.post(
        "/devices",
        headers=acme,
        json={"id": DEVICE, "unit_id": UNIT, "kind": "water", "metadata": {"design_kpa": 1200}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["vendor"] == "acme"

    # 3. its broker login, shown once
    r = await api.post(f"/devices/{DEVICE}/credentials", headers=acme)
    assert r.status_code == 201, r.text
    login = r.json()
    assert login["publish_topics"][0] == f"firewatch/v1/{UNIT}/{DEVICE}/telemetry"

    # 4. connect over TLS and publish: five readings and one broken message
    client, acks = connect_over_tls(platform, login["password"])
    try:
        topic = login["publish_topics"][0]
        mids = [client.publish(topic, water(seq), qos=1).mid for seq in range(1, 6)]
        mids.append(client.publish(topic, b"{not json", qos=1).mid)
        wait_until(lambda: all(m in acks for m in mids), TIMEOUT, "PUBACKs")
        assert {acks[m] for m in mids} == {0}
    finally:
        client.disconnect()
        client.loop_stop()
    wait_until(
        lambda: scalar(db, "SELECT count(*) FROM telemetry WHERE device_id = %s", DEVICE) == 5,
        TIMEOUT,
        "the five readings stored",
    )
    wait_until(
        lambda: scalar(db, "SELECT count(*) FROM dead_letters WHERE topic = %s", topic) == 1,
        TIMEOUT,
        "the broken message kept as a dead letter",
    )

    # 7. the conformance check over the API
    r = await api.get(f"/devices/{DEVICE}/conformance", params={"minutes": 5}, headers=acme)
    assert r.status_code == 200, r.text
    report = r.json()
    telemetry = next(c for c in report["channels"] if c["channel"] == "telemetry")
    assert telemetry["messages"] == 5
    assert report["dead_letters"] == 1
    assert [(d["reason"], d["count"]) for d in report["dead_letter_reasons"]] == [("not_json", 1)]

    # 6. its dead letters
    r = await api.get("/dead-letters", params={"device": DEVICE}, headers=acme)
    assert r.status_code == 200, r.text
    (dead,) = r.json()
    assert dead["reason"] == "not_json"
    assert dead["payload_text"] == "{not json"
