"""The production broker's access control (``firewatch.runtime.brokerconf``, dynamic security)
against a real Mosquitto started with it: a device credential can neither divert ingest's
traffic (``$share`` subscription) nor take over an ingest session (client id), nor read or
write another device's topics; ingest and the publishers get exactly what they need.

Ingest is the real MQTT side of the worker (``consumer_class``, both consumers: persistent
session, shared subscription, manual acks). Nothing sleeps to wait: every wait is a condition
with a deadline, and "received nothing" is checked behind a round trip on the same connection
(the broker writes to one connection in order, so anything routed to it before our SUBACK
would have arrived before it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from firewatch.core.backoff import Backoff
from firewatch.core.broker import BrokerAddress
from firewatch.core.contract import ID_PATTERN, subscription
from firewatch.ingest.consumer import Consumer, ConsumerKind, Delivery, consumer_class
from firewatch.ingest.ingest_metrics import IngestMetrics
from firewatch.runtime import brokerconf
from firewatch.runtime.brokerconf import Account, Kind, build_dynsec, write_dynsec
from firewatch.runtime.mosquitto import free_port, mosquitto, wait_for_port
from tests.helpers import wait_until

TOPIC_ROOT = brokerconf.DEFAULT_TOPIC_ROOT
GROUP = brokerconf.DEFAULT_INGEST_GROUP
INGEST_1, INGEST_2 = "firewatch-ingest-1", "firewatch-ingest-2"
DEVICE, OTHER_DEVICE = "D-WD-001-W1", "D-WD-001-W2"
UNIT = "U-WD-001"
SIMULATOR, GATEWAY = "firewatch-simulator", "gw-001"
ACCOUNTS = [
    Account(Kind.INGEST, INGEST_1, "ingest-1-secret"),
    Account(Kind.INGEST, INGEST_2, "ingest-2-secret"),
    Account(Kind.DEVICE, DEVICE, "device-secret"),
    Account(Kind.DEVICE, OTHER_DEVICE, "other-device-secret"),
    Account(Kind.PUBLISHER, SIMULATOR, "simulator-secret"),
    Account(Kind.GATEWAY, GATEWAY, "gateway-secret"),
]
PASSWORDS = {a.username: a.password for a in ACCOUNTS}
ACCEPTED = 0x00
NOT_AUTHORIZED = 0x87  # CONNACK, SUBACK and PUBACK reason code
GRANTED_QOS_1 = 0x01
TIMEOUT = 10.0


def topic(device: str, channel: str = "telemetry", unit: str = UNIT) -> str:
    return f"{TOPIC_ROOT}/{unit}/{device}/{channel}"


# --- the broker and its clients --------------------------------------------------------------
@dataclass(frozen=True)
class Broker:
    host: str
    port: int

    def url(self, username: str) -> str:
        return f"mqtt://{username}:{PASSWORDS[username]}@{self.host}:{self.port}"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto with the production access control for :data:`ACCOUNTS`."""
    dynsec = tmp_path / "dynsec.json"
    write_dynsec(dynsec, build_dynsec(ACCOUNTS))
    with mosquitto(tmp_path / "broker", dynsec=dynsec) as url:
        addr = BrokerAddress.parse(url)
        yield Broker(addr.host, addr.port)


@dataclass
class Client:
    """A paho MQTT 5 client that records what the broker answers and never reconnects by
    itself (a reconnect would hide a refusal or a takeover)."""

    username: str
    client_id: str
    paho: mqtt.Client = field(init=False)
    connack: int | None = None  # reason code: 0 accepted, 0x87 not authorized
    subacks: dict[int, list[ReasonCode]] = field(default_factory=dict)
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    disconnects: list[ReasonCode] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        self.paho.username_pw_set(self.username, PASSWORDS.get(self.username))
        self.paho.on_connect = self._on_connect
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_publish = self._on_publish
        self.paho.on_message = self._on_message
        self.paho.on_disconnect = self._on_disconnect

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.connack = rc.value

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, rcs: list[ReasonCode], _p: Any) -> None:
        self.subacks[mid] = list(rcs)

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        self.pubacks[mid] = rc

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.append(msg.topic)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.disconnects.append(rc)

    def subscribe(self, *filters: str) -> list[int]:
        """One SUBSCRIBE with ``filters`` at QoS 1; the SUBACK's reason code per filter."""
        _rc, mid = self.paho.subscribe([(f, SubscribeOptions(qos=1)) for f in filters])
        assert mid is not None, "not connected"
        wait_until(lambda: mid in self.subacks, TIMEOUT, f"SUBACK for {filters}")
        return [rc.value for rc in self.subacks[mid]]

    def publish(self, *topics: str) -> list[int]:
        """Publish ``{}`` at QoS 1 on each topic; the PUBACKs' reason codes, in order."""
        mids = [self.paho.publish(t, b"{}", qos=1).mid for t in topics]
        wait_until(lambda: all(m in self.pubacks for m in mids), TIMEOUT, f"PUBACKs {topics}")
        return [self.pubacks[m].value for m in mids]


@contextmanager
def connect(
    broker: Broker,
    username: str,
    client_id: str | None = None,
    *,
    password: str | None = None,
    persistent: bool = False,
) -> Iterator[Client]:
    """A :class:`Client` with its CONNACK received (refused or not)."""
    client = Client(username, client_id or f"{username}-{uuid.uuid4().hex[:6]}")
    if password is not None:
        client.paho.username_pw_set(username, password)
    props = None
    if persistent:  # the way ingest connects: resume the session, keep it an hour
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
    client.paho.connect(broker.host, broker.port, clean_start=not persistent, properties=props)
    client.paho.loop_start()
    try:
        wait_until(lambda: client.connack is not None, TIMEOUT, f"CONNACK for {username}")
        yield client
    finally:
        client.paho.disconnect()
        client.paho.loop_stop()


@pytest.fixture(params=["mqtt5", "paho"])
def consumer_kind(request: pytest.FixtureRequest) -> ConsumerKind:
    """Each test with an ingest worker runs on both consumers (ADR 0013)."""
    kind: ConsumerKind = request.param
    return kind


@dataclass
class Worker:
    """An ingest worker's MQTT side; ``received`` lists topics in arrival order."""

    consumer: Consumer
    received: list[str]


@contextmanager
def ingest_worker(broker: Broker, name: str, kind: ConsumerKind) -> Iterator[Worker]:
    """The real ingest consumer as account ``name`` (client id = name), subscribed, acking
    every message at once (the database side is not what this file tests)."""
    received: list[str] = []
    consumer: Consumer

    def handle(messages: list[Delivery], _at: object) -> None:
        received.extend(t for t, _payload, _token in messages)
        consumer.ack([token for _t, _payload, token in messages])

    consumer = consumer_class(kind)(
        broker.url(name),
        client_id=name,
        subscription=subscription(TOPIC_ROOT, GROUP),
        handler=handle,
        metrics=IngestMetrics(),
        backoff=Backoff(0.05, 0.5),
        session_expiry_s=3600,
        receive_maximum=1000,
    )
    with consumer:
        wait_until(consumer.subscribed.is_set, TIMEOUT, f"{name} subscribed")
        yield Worker(consumer, received)


def publish_as(broker: Broker, username: str, topics: list[str]) -> None:
    """Publish one QoS 1 message per topic as ``username``; every PUBACK must be a success."""
    with connect(broker, username) as client:
        assert client.connack == ACCEPTED
        assert client.publish(*topics) == [ACCEPTED] * len(topics)


def city_topics(n: int) -> list[str]:
    return [topic(f"D-{i % 10:03d}", unit=f"U-{i % 3}") for i in range(n)]


# --- a device credential cannot divert or disturb ingest ---------------------------------------
def test_device_cannot_divert_ingest_with_a_shared_subscription(
    broker: Broker, consumer_kind: ConsumerKind
) -> None:
    """The reported attack: a device joins ingest's group. Refused at SUBSCRIBE, so the
    broker keeps handing everything to ingest instead of half to the device."""
    with (
        ingest_worker(broker, INGEST_1, consumer_kind) as ingest,
        connect(broker, DEVICE, DEVICE) as device,
    ):
        assert device.subscribe(subscription(TOPIC_ROOT, GROUP)) == [NOT_AUTHORIZED]
        topics = city_topics(100)
        publish_as(broker, SIMULATOR, topics)
        wait_until(lambda: len(ingest.received) >= 100, TIMEOUT, "ingest got all 100")
        assert sorted(ingest.received) == sorted(topics)
        # Round trip on the device's connection: nothing was routed to it before this.
        assert device.subscribe(topic(DEVICE, "command")) == [GRANTED_QOS_1]
        assert device.messages == []


def test_device_may_subscribe_only_to_its_own_command_topic(broker: Broker) -> None:
    refused = [
        subscription(TOPIC_ROOT, GROUP),
        f"$share/other/{TOPIC_ROOT}/+/+/+",
        f"$share/ingest/{TOPIC_ROOT}/+/{DEVICE}/command",  # even its own topic, shared
        f"{TOPIC_ROOT}/#",
        "#",
        f"{TOPIC_ROOT}/+/+/+",
        f"{TOPIC_ROOT}/+/+/command",
        f"{TOPIC_ROOT}/+/{OTHER_DEVICE}/command",
        topic(OTHER_DEVICE, "command"),
        f"{TOPIC_ROOT}/+/{DEVICE}/#",
        f"{TOPIC_ROOT}/+/{DEVICE}/telemetry",
        "$SYS/#",
        "$CONTROL/dynamic-security/#",
    ]
    granted = [f"{TOPIC_ROOT}/+/{DEVICE}/command", topic(DEVICE, "command")]
    with connect(broker, DEVICE, DEVICE) as device:
        assert device.connack == ACCEPTED
        codes = device.subscribe(*refused, *granted)
    assert dict(zip(refused + granted, codes, strict=True)) == {
        **dict.fromkeys(refused, NOT_AUTHORIZED),
        **dict.fromkeys(granted, GRANTED_QOS_1),
    }


def test_device_cannot_publish_for_another_device(
    broker: Broker, consumer_kind: ConsumerKind
) -> None:
    with ingest_worker(broker, INGEST_1, consumer_kind) as ingest:
        own = [topic(DEVICE, channel) for channel in brokerconf.DEVICE_CHANNELS]
        with connect(broker, DEVICE, DEVICE) as device:
            assert device.publish(*own) == [ACCEPTED] * 3
            # Refused with PUBACK 0x87 (Mosquitto 2.0.11 then closes the connection).
            assert device.publish(topic(OTHER_DEVICE)) == [NOT_AUTHORIZED]
            wait_until(lambda: bool(device.disconnects), TIMEOUT, "the broker hanging up")
        # Published after the refusal was answered, so it queues behind anything routed.
        publish_as(broker, SIMULATOR, [topic("D-SENTINEL")])
        wait_until(lambda: topic("D-SENTINEL") in ingest.received, TIMEOUT, "the sentinel")
        assert ingest.received == [*own, topic("D-SENTINEL")]


def test_no_account_can_take_over_an_ingest_session(
    broker: Broker, consumer_kind: ConsumerKind
) -> None:
    """A client id is bound to its account: a device (or the other worker) connecting with
    ingest's client id is refused at CONNACK, before the broker touches the session."""
    with ingest_worker(broker, INGEST_1, consumer_kind) as ingest:
        for username in (DEVICE, INGEST_2, GATEWAY):
            with connect(broker, username, INGEST_1, persistent=True) as intruder:
                assert intruder.connack == NOT_AUTHORIZED, username
        with connect(broker, DEVICE, OTHER_DEVICE) as intruder:  # nor another device's
            assert intruder.connack == NOT_AUTHORIZED
        topics = city_topics(20)
        publish_as(broker, SIMULATOR, topics)
        wait_until(lambda: len(ingest.received) >= 20, TIMEOUT, "ingest got all 20")
        assert sorted(ingest.received) == sorted(topics)
        assert ingest.consumer.generation == 0, "ingest lost its connection"
        assert ingest.consumer.connected.is_set()


# --- the service accounts get what they need --------------------------------------------------
def test_ingest_account_may_subscribe_only_to_ingests_two_filters(broker: Broker) -> None:
    """The plain filter (one worker) and its own shared group (several); not another
    group, which would take a share of ingest's traffic, nor anything wider."""
    with connect(broker, INGEST_1, INGEST_1) as client:
        assert (
            client.subscribe(f"$share/other/{TOPIC_ROOT}/+/+/+", "#", f"{TOPIC_ROOT}/#")
            == [NOT_AUTHORIZED] * 3
        )
        assert client.subscribe(subscription(TOPIC_ROOT, GROUP)) == [GRANTED_QOS_1]
        assert client.subscribe(subscription(TOPIC_ROOT)) == [GRANTED_QOS_1]


def test_two_ingest_workers_split_everything_between_them(
    broker: Broker, consumer_kind: ConsumerKind
) -> None:
    with (
        ingest_worker(broker, INGEST_1, consumer_kind) as one,
        ingest_worker(broker, INGEST_2, consumer_kind) as two,
    ):
        topics = city_topics(100)
        publish_as(broker, SIMULATOR, topics)
        wait_until(lambda: len(one.received) + len(two.received) >= 100, TIMEOUT, "all 100")
        assert sorted(one.received + two.received) == sorted(topics)
        assert one.received, "the group shares the load"
        assert two.received, "the group shares the load"


def test_publishers_publish_for_many_devices_over_several_connections(
    broker: Broker, consumer_kind: ConsumerKind
) -> None:
    """The simulator's gateways: one account, several connections with their own client
    ids, every device's topics; publishing only."""
    with ingest_worker(broker, INGEST_1, consumer_kind) as ingest:
        with (
            connect(broker, SIMULATOR, "sim-gw-a") as a,
            connect(broker, SIMULATOR, "sim-gw-b") as b,
        ):
            sent: list[str] = []
            for i, client in enumerate((a, b)):
                mine = [
                    topic(f"D-{i}-{d:02d}", channel, unit=f"U-{d % 4}")
                    for d in range(25)
                    for channel in brokerconf.DEVICE_CHANNELS
                ]
                assert client.publish(*mine) == [ACCEPTED] * len(mine)
                sent += mine
            assert (
                a.subscribe(f"{TOPIC_ROOT}/#", subscription(TOPIC_ROOT, GROUP))
                == [NOT_AUTHORIZED] * 2
            )
            assert a.disconnects == b.disconnects == [], "one account's connections coexist"
        with connect(broker, GATEWAY, GATEWAY) as gateway:
            mine = [topic(f"D-GW-{d}") for d in range(5)]
            assert gateway.publish(*mine) == [ACCEPTED] * 5
            sent += mine
        with connect(broker, GATEWAY, "gw-001-second") as second:
            assert second.connack == NOT_AUTHORIZED
        wait_until(lambda: len(ingest.received) >= len(sent), TIMEOUT, "everything published")
        assert sorted(ingest.received) == sorted(sent)


def test_wrong_or_unknown_credentials_are_refused(broker: Broker) -> None:
    for username, password in ((DEVICE, "wrong"), ("nobody", PASSWORDS[DEVICE])):
        with connect(broker, username, DEVICE, password=password) as client:
            assert client.connack == NOT_AUTHORIZED
    with connect(broker, DEVICE, DEVICE) as client:
        assert client.connack == ACCEPTED


# --- the generator -----------------------------------------------------------------------------
def test_generator_agrees_with_the_contract_and_ingest() -> None:
    assert brokerconf.NAME_PATTERN == ID_PATTERN
    assert brokerconf.ingest_subscriptions(TOPIC_ROOT, GROUP) == [
        subscription(TOPIC_ROOT),
        subscription(TOPIC_ROOT, GROUP),
    ]


def test_generator_updates_keep_other_accounts_and_their_hashes() -> None:
    first = build_dynsec(ACCOUNTS)
    by_name = {c["username"]: c for c in first["clients"]}
    assert brokerconf.check_password(by_name[DEVICE], PASSWORDS[DEVICE])
    assert not brokerconf.check_password(by_name[DEVICE], "wrong")
    assert by_name[DEVICE]["clientid"] == DEVICE
    assert "clientid" not in by_name[SIMULATOR], "publishers open several connections"
    second = build_dynsec([Account(Kind.DEVICE, DEVICE, "new-secret")], existing=first)
    after = {c["username"]: c for c in second["clients"]}
    assert set(after) == set(by_name)
    assert after[INGEST_1] == by_name[INGEST_1], "an account not given is kept as it is"
    assert brokerconf.check_password(after[DEVICE], "new-secret")
    # Roles: one per device (the 2.0 plugin has no %u), the shared ones, nothing unused.
    roles = {r["rolename"] for r in second["roles"]}
    assert roles == {
        brokerconf.INGEST_ROLE,
        brokerconf.PUBLISHER_ROLE,
        brokerconf.DEVICE_ROLE_PREFIX + DEVICE,
        brokerconf.DEVICE_ROLE_PREFIX + OTHER_DEVICE,
    }
    with pytest.raises(brokerconf.BrokerConfError, match="more than once"):
        build_dynsec([ACCOUNTS[0], ACCOUNTS[0]])
    with pytest.raises(brokerconf.BrokerConfError, match="bad account name"):
        Account(Kind.DEVICE, "D/+", "x")


# --- why not acl_file (characterises Mosquitto 2.0.11, see docs/adr/0005) --------------------
def _password_line(username: str, password: str) -> str:
    """A ``password_file`` line in Mosquitto's sha512-pbkdf2 format (``$7$``)."""
    h = brokerconf.hash_password(password)
    return f"{username}:$7${h['iterations']}${h['salt']}${h['password']}\n"


def test_why_not_acl_file_and_use_username_as_clientid(tmp_path: Path) -> None:
    """The configuration this replaced, plus ``use_username_as_clientid``. acl_file grants
    the ``$share`` hijack at SUBSCRIBE and filters only at delivery, after the broker gave
    the device its share: half of what was acknowledged is gone. use_username_as_clientid
    stops the session takeover, but makes one account's connections throw each other out,
    and the simulator's gateways are one account on many connections."""
    passwd, acl, port = tmp_path / "passwd", tmp_path / "acl", free_port()
    passwd.write_text("".join(_password_line(a.username, a.password) for a in ACCOUNTS))
    acl.write_text(
        f"pattern write {TOPIC_ROOT}/+/%u/telemetry\n"
        f"pattern read {TOPIC_ROOT}/+/%u/command\n"
        f"user {INGEST_1}\ntopic read {TOPIC_ROOT}/#\n"
        f"user {SIMULATOR}\ntopic write {TOPIC_ROOT}/#\n"
    )
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npersistence false\n"
        f"password_file {passwd}\nacl_file {acl}\nuse_username_as_clientid true\n"
        f"log_dest file {tmp_path / 'mosquitto.log'}\n"
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert wait_for_port("127.0.0.1", port, TIMEOUT)
        broker = Broker("127.0.0.1", port)
        share = subscription(TOPIC_ROOT, GROUP)
        with connect(broker, INGEST_1, INGEST_1) as ingest:
            assert ingest.subscribe(share) == [GRANTED_QOS_1]
            with connect(broker, DEVICE, INGEST_1) as device:  # renamed to its username
                assert device.connack == ACCEPTED
                # Granted at SUBSCRIBE: the hijack and the firehose.
                assert device.subscribe(share, f"{TOPIC_ROOT}/#") == [GRANTED_QOS_1] * 2
                # 10 messages fit Mosquitto's default in-flight window (20), so each is
                # written to its subscriber at once, before the barrier's SUBACK.
                publish_as(broker, SIMULATOR, city_topics(10))
                assert ingest.subscribe(f"{TOPIC_ROOT}/barrier") == [GRANTED_QOS_1]
                assert len(ingest.messages) == 5, "the device's half was acknowledged, then lost"
                assert device.subscribe(f"{TOPIC_ROOT}/barrier") == [GRANTED_QOS_1]
                assert device.messages == []
            assert ingest.disconnects == [], "no takeover: the device became D-..., not ingest"
        with (
            connect(broker, SIMULATOR, "sim-gw-a") as a,
            connect(broker, SIMULATOR, "sim-gw-b") as b,
        ):
            assert b.connack == ACCEPTED
            wait_until(lambda: bool(a.disconnects), TIMEOUT, "the first connection dropped")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
