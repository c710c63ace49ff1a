"""The gateway's MQTT 5 publisher: against the production access control (a broker account
of kind gateway), its refusals, and its bound when the broker is away."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firewatch import cli
from firewatch.core.backoff import Backoff
from firewatch.core.broker import BrokerAddress
from firewatch.core.settings import Settings
from firewatch.gateway.publisher import MqttPublisher, PublisherClosed, PublishRefused
from firewatch.runtime.brokerconf import Account, Kind, build_dynsec, write_dynsec
from firewatch.runtime.mosquitto import Broker, TlsFiles, free_port, mosquitto
from tests.builders.city import PANEL, UNIT
from tests.gateway.conftest import CONFIRM, Device, GatewayThread, build_frame, system_status_adu
from tests.helpers import wait_until

GATEWAY, INGEST = "gw-001", "firewatch-ingest-1"
ACCOUNTS = [
    Account(Kind.GATEWAY, GATEWAY, "gateway-secret"),
    Account(Kind.INGEST, INGEST, "ingest-secret"),
]


@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[str]:
    """A Mosquitto with the production access control; its URL carries no login."""
    dynsec = tmp_path / "dynsec.json"
    write_dynsec(dynsec, build_dynsec(ACCOUNTS))
    with mosquitto(tmp_path / "broker", dynsec=dynsec) as url:
        yield url


def _subscriber(url: str, login: str | None = None) -> tuple[mqtt.Client, list[str]]:
    """A paho client on every device topic (as ``login``, an account of :data:`ACCOUNTS`,
    whose client id is its name); the topics of what it receives."""
    addr = BrokerAddress.parse(url)
    got: list[str] = []
    ready = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=login or "t-sub", protocol=mqtt.MQTTv5
    )
    if login:
        client.username_pw_set(login, {a.username: a.password for a in ACCOUNTS}[login])
    client.on_message = lambda _c, _u, m: got.append(m.topic)
    client.on_subscribe = lambda *_a: ready.set()
    client.on_connect = lambda c, *_a: c.subscribe("firewatch/v1/+/+/+", qos=1)
    client.connect(addr.host, addr.port)
    client.loop_start()
    assert ready.wait(10)
    return client, got


def test_the_gateway_logs_in_with_its_account_and_publishes(
    secured_broker: str, settings: Settings, gbt_db: psycopg.Connection[Any]
) -> None:
    gw_settings = settings.model_copy(
        update={
            "mqtt_url": secured_broker,
            "gateway_mqtt_username": GATEWAY,
            "gateway_mqtt_password": "gateway-secret",
            "gateway_host": "127.0.0.1",
            "gateway_port": 0,
            "gateway_metrics_port": 0,
        }
    )
    sub, got = _subscriber(secured_broker, INGEST)
    try:
        with (
            GatewayThread(gw_settings, duty_fraction=lambda _d: 0.99) as gw,
            Device(gw.port) as dev,
        ):
            assert gw.publisher is not None
            assert gw.publisher.client_id == GATEWAY
            dev.send(build_frame(1, system_status_adu(1)))
            dev.expect(CONFIRM, 1)
            wait_until(lambda: got == [f"firewatch/v1/{UNIT}/{PANEL}/event"], 10, "message")
    finally:
        sub.disconnect()
        sub.loop_stop()


def test_a_topic_outside_the_account_is_refused(secured_broker: str) -> None:
    addr = BrokerAddress.parse(secured_broker)
    addr = BrokerAddress(addr.host, addr.port, GATEWAY, "gateway-secret")

    async def run() -> None:
        async with MqttPublisher(addr, GATEWAY, backoff=Backoff(0.05, 0.2)) as pub:
            with pytest.raises(PublishRefused) as refused:
                await asyncio.wait_for(pub.publish("elsewhere/topic", b"{}"), 10)
            assert refused.value.code == 0x87  # not authorized
            assert pub.pending == 0

    asyncio.run(run())


def test_a_full_queue_makes_publish_wait_and_close_fails_what_is_left() -> None:
    """Nothing listens on the port: nothing is acknowledged; two messages fill the queue,
    the third publish waits for room (backpressure); closing fails them all."""
    addr = BrokerAddress("127.0.0.1", free_port())

    async def run() -> None:
        pub = MqttPublisher(addr, "t", queue_limit=2, backoff=Backoff(0.05, 0.1))
        async with pub:
            tasks = [asyncio.create_task(pub.publish(f"t/{i}", b"x")) for i in range(3)]
            for _ in range(10):  # let every task run up to where it waits
                await asyncio.sleep(0)
            assert pub.pending == 2  # the third is not even queued
            assert not any(t.done() for t in tasks)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, PublisherClosed) for r in results), results
        with pytest.raises(PublisherClosed):
            await pub.publish("t/late", b"x")

    asyncio.run(run())


def test_mqtts_publishes_over_verified_tls(tmp_path: Path) -> None:
    """``mqtts://`` with the CA ``firewatch broker certs`` made: the broker's certificate
    is verified and the PUBACK comes back over TLS."""
    certs = tmp_path / "certs"
    assert cli.main(["broker", "certs", "--out", str(certs)]) == 0
    with Broker(tmp_path / "broker", tls=TlsFiles.in_dir(certs)) as broker:
        assert broker.tls_url is not None
        sub, got = _subscriber(broker.url)
        addr = BrokerAddress.parse(broker.tls_url, ca_file=certs / "ca.crt")
        assert addr.tls

        async def run() -> None:
            async with MqttPublisher(addr, "tls-gw", backoff=Backoff(0.05, 0.2)) as pub:
                await asyncio.wait_for(pub.publish("firewatch/v1/U/D/event", b"{}"), 20)

        try:
            asyncio.run(run())
            wait_until(lambda: got == ["firewatch/v1/U/D/event"], 10, "the message")
        finally:
            sub.disconnect()
            sub.loop_stop()
