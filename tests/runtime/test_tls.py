"""TLS between MQTT clients and a real Mosquitto: the certificates ``firewatch broker certs``
makes, the broker's TLS listener (``firewatch.runtime.mosquitto.TlsFiles``), and Firewatch's
clients on ``mqtts://`` URLs (``firewatch.runtime.mqtt_tls.apply_tls``): the ingest worker
and the simulator, end to end into the database.

Nothing is mocked and nothing sleeps to wait: every wait is a condition with a deadline.
A refused TLS handshake is an exception from ``connect`` (paho shakes hands before it
returns), so those checks need no waiting at all.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from firewatch import cli
from firewatch.core.backoff import Backoff
from firewatch.core.broker import BrokerAddress, BrokerUrlError
from firewatch.core.settings import Settings
from firewatch.ingest.ingest_metrics import IngestMetrics
from firewatch.ingest.mqtt5_consumer import Mqtt5Consumer
from firewatch.runtime import certs
from firewatch.runtime.mosquitto import Broker, TlsFiles
from firewatch.runtime.mqtt_tls import apply_tls
from firewatch.simulators.engine import Simulation, scenario_window
from firewatch.simulators.scenario import IntervalsSpec, MixSpec, Scenario
from firewatch.simulators.sinks import publish_mqtt
from firewatch.storage.seed import load_seed
from tests.helpers import ThreadedIngest, scalar, wait_until

TIMEOUT = 10.0
#: Names the tests' certificates carry besides localhost and 127.0.0.1.
HOSTS = ("broker.test", "10.1.2.3")


def run_certs(out: Path, *args: str) -> int:
    """``firewatch broker certs --out OUT ARGS`` in-process; its exit code."""
    return cli.main(["broker", "certs", "--out", str(out), *args])


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def cert_dir(tmp_path: Path) -> Path:
    """A CA and a broker certificate for :data:`HOSTS`, made by the command."""
    out = tmp_path / "certs"
    args = [arg for host in HOSTS for arg in ("--host", host)]
    assert run_certs(out, *args) == 0
    return out


@pytest.fixture
def tls_broker(tmp_path: Path, cert_dir: Path) -> Iterator[Broker]:
    """A real Mosquitto (project config, anonymous) with a plain loopback listener and a
    TLS listener serving :func:`cert_dir`'s files."""
    with Broker(tmp_path / "broker", tls=TlsFiles.in_dir(cert_dir)) as broker:
        yield broker


# --- a client that records what happened ---------------------------------------------------
@dataclass
class Client:
    """A paho MQTT 5 client that never reconnects by itself (a retry would hide a refusal)."""

    url: str
    ca_file: Path | None = None
    paho: mqtt.Client = field(init=False)
    connack: int | None = None
    subscribed: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    messages: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.addr = BrokerAddress.parse(self.url, ca_file=self.ca_file)
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"tls-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        apply_tls(self.paho, self.addr)
        self.paho.on_connect = self._on_connect
        self.paho.on_subscribe = lambda *_a: self.subscribed.set()
        self.paho.on_message = lambda _c, _u, m: self.messages.append((m.topic, bytes(m.payload)))
        self.paho.on_disconnect = lambda *_a: self.disconnected.set()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.connack = rc.value

    def connect(self) -> None:
        """TCP connect, TLS handshake (raises if refused) and CONNECT; the loop then runs."""
        self.paho.connect(self.addr.host, self.addr.port)
        self.paho.loop_start()

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


# --- the certificates ------------------------------------------------------------------------
def test_the_command_makes_a_ca_and_a_server_certificate_for_the_hosts(cert_dir: Path) -> None:
    ca, server = load_cert(cert_dir / certs.CA_CERT), load_cert(cert_dir / certs.SERVER_CERT)
    server.verify_directly_issued_by(ca)  # raises if not signed by this CA
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert set(certs.san_hosts(server)) == {"localhost", "127.0.0.1", *HOSTS}
    # The IP is an iPAddress entry: clients never match an address against a DNS name.
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.1.2.3" not in san.get_values_for_type(x509.DNSName)
    days = server.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=certs.DEFAULT_SERVER_DAYS - 1) < days
    assert days <= dt.timedelta(days=certs.DEFAULT_SERVER_DAYS)
    # The CA's key is the operator's alone; the broker (group 1883 in its container) reads
    # its own key.
    assert (cert_dir / certs.CA_KEY).stat().st_mode & 0o777 == 0o600
    assert (cert_dir / certs.SERVER_KEY).stat().st_mode & 0o777 == 0o640
    if os.geteuid() == 0:
        assert (cert_dir / certs.SERVER_KEY).stat().st_gid == certs.MOSQUITTO_GID
    for public in (certs.CA_CERT, certs.SERVER_CERT):
        assert (cert_dir / public).stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in cert_dir.iterdir()) == sorted(
        [certs.CA_CERT, certs.CA_KEY, certs.SERVER_CERT, certs.SERVER_KEY]
    ), "no temporary files left behind"


def test_running_again_keeps_the_ca_and_force_replaces_it(
    cert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_before = load_cert(cert_dir / certs.CA_CERT)
    server_before = load_cert(cert_dir / certs.SERVER_CERT)
    capsys.readouterr()

    assert run_certs(cert_dir, "--host", "other.test", "--days", "30") == 0
    ca_again = load_cert(cert_dir / certs.CA_CERT)
    assert certs.fingerprint(ca_again) == certs.fingerprint(ca_before)
    assert "kept the existing CA" in capsys.readouterr().out
    server_again = load_cert(cert_dir / certs.SERVER_CERT)
    assert server_again.serial_number != server_before.serial_number, "issued anew"
    assert set(certs.san_hosts(server_again)) == {"localhost", "127.0.0.1", "other.test"}
    assert server_again.not_valid_after_utc - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)
    server_again.verify_directly_issued_by(ca_before)  # devices keep trusting the broker

    assert run_certs(cert_dir, "--force") == 0
    ca_new = load_cert(cert_dir / certs.CA_CERT)
    assert certs.fingerprint(ca_new) != certs.fingerprint(ca_before)
    assert ca_new.subject != ca_before.subject
    assert "made a new CA" in capsys.readouterr().out
    load_cert(cert_dir / certs.SERVER_CERT).verify_directly_issued_by(ca_new)


def test_an_unusable_ca_is_refused_and_left_alone(
    tmp_path: Path, cert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Half a CA: the key is gone. Making a new one silently would strand every device.
    (cert_dir / certs.CA_KEY).unlink()
    before = {p.name: p.read_bytes() for p in cert_dir.iterdir()}
    capsys.readouterr()
    assert run_certs(cert_dir) == 2
    err = capsys.readouterr().err
    assert "ca.key is missing" in err
    assert "--force" in err
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in cert_dir.iterdir()} == before

    # A key that is not the certificate's.
    other = tmp_path / "other"
    assert run_certs(other) == 0
    (cert_dir / certs.CA_KEY).write_bytes((other / certs.CA_KEY).read_bytes())
    assert run_certs(cert_dir) == 2
    assert "is not the key of" in capsys.readouterr().err

    # Not a host name.
    assert run_certs(tmp_path / "new", "--host", "mqtts://broker.test:8883") == 2
    assert "not a host name or IP address" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


# --- the broker's TLS listener ---------------------------------------------------------------
def test_a_client_trusting_the_ca_round_trips_over_tls(tls_broker: Broker, cert_dir: Path) -> None:
    assert tls_broker.tls_url is not None
    assert BrokerAddress.parse(tls_broker.tls_url).tls
    client = Client(tls_broker.tls_url, cert_dir / certs.CA_CERT)
    client.connect()
    try:
        wait_until(lambda: client.connack is not None, TIMEOUT, "CONNACK over TLS")
        assert client.connack == 0
        assert isinstance(client.paho.socket(), ssl.SSLSocket)
        client.paho.subscribe("tls/test", qos=1)
        assert client.subscribed.wait(TIMEOUT)
        info = client.paho.publish("tls/test", b"over tls", qos=1)
        info.wait_for_publish(TIMEOUT)
        wait_until(lambda: bool(client.messages), TIMEOUT, "our own message back")
        assert client.messages == [("tls/test", b"over tls")]
    finally:
        client.close()


def test_plain_mqtt_on_the_tls_port_gets_no_session(tls_broker: Broker) -> None:
    """A client that forgot TLS: its CONNECT is not a TLS handshake, the broker hangs up."""
    assert tls_broker.tls_port is not None
    client = Client(f"mqtt://127.0.0.1:{tls_broker.tls_port}")
    client.connect()
    try:
        assert client.disconnected.wait(TIMEOUT), "the broker closed the connection"
        assert client.connack is None
    finally:
        client.close()


def test_a_client_trusting_another_ca_refuses_the_broker(
    tmp_path: Path, tls_broker: Broker
) -> None:
    """A broker with a certificate from a CA the client does not trust (an impostor, as far
    as the client can tell) gets no CONNECT, no password."""
    other = certs.make_certs(tmp_path / "other-ca")
    assert tls_broker.tls_url is not None
    client = Client(tls_broker.tls_url, other.ca_cert)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        client.connect()
    assert client.connack is None
    # Without a CA file the system's trust store decides, and it does not know ours either.
    client = Client(tls_broker.tls_url)
    with pytest.raises(ssl.SSLCertVerificationError):
        client.connect()


def test_the_ingest_consumer_refuses_a_broker_it_does_not_trust(
    tmp_path: Path, tls_broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """The mqtt5 consumer wraps its own socket (runtime/mqtt_tls.client_context): a broker
    whose certificate does not chain to the configured CA gets no CONNECT, attempt after
    attempt."""
    assert tls_broker.tls_url is not None
    other = certs.make_certs(tmp_path / "other-ca")
    metrics = IngestMetrics()
    consumer = Mqtt5Consumer(
        tls_broker.tls_url,
        client_id="ingest-untrusting",
        subscription="firewatch/v1/#",
        handler=lambda _m, _at: None,
        metrics=metrics,
        backoff=Backoff(0.02, 0.05),
        session_expiry_s=0,
        receive_maximum=10,
        ca_file=other.ca_cert,
    )

    def attempts() -> float:
        value = metrics.registry.get_sample_value(
            "firewatch_ingest_reconnects_total", {"target": "mqtt"}
        )
        return value or 0.0

    with consumer:
        wait_until(lambda: attempts() >= 3, TIMEOUT, "three refused attempts")
        assert not consumer.connected.is_set()
    assert "certificate verify failed" in caplog.text


def test_the_host_name_is_verified(tmp_path: Path, cert_dir: Path) -> None:
    """127.0.0.2 is loopback too, but not a name in the certificate: refused, until the
    certificate is made for it (and the CA stays what clients trust)."""
    ca = cert_dir / certs.CA_CERT
    with Broker(tmp_path / "b1", host="127.0.0.2", tls=TlsFiles.in_dir(cert_dir)) as broker:
        assert broker.tls_url is not None
        with pytest.raises(ssl.SSLCertVerificationError, match=r"127\.0\.0\.2"):
            Client(broker.tls_url, ca).connect()
    assert run_certs(cert_dir, "--host", "127.0.0.2") == 0
    with Broker(tmp_path / "b2", host="127.0.0.2", tls=TlsFiles.in_dir(cert_dir)) as broker:
        assert broker.tls_url is not None
        client = Client(broker.tls_url, ca)
        client.connect()
        try:
            wait_until(lambda: client.connack is not None, TIMEOUT, "CONNACK over TLS")
            assert client.connack == 0
        finally:
            client.close()


def test_a_missing_ca_file_fails_where_the_client_is_made(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Client("mqtts://127.0.0.1:8883", tmp_path / "nowhere.crt")
    # For mqtt:// there is no TLS, so no CA file is read.
    Client("mqtt://127.0.0.1:1883", tmp_path / "nowhere.crt")


# --- the URL ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "host", "port", "tls"),
    [
        ("mqtt://broker.test", "broker.test", 1883, False),
        ("mqtt://broker.test:1884", "broker.test", 1884, False),
        ("mqtts://broker.test", "broker.test", 8883, True),
        ("mqtts://u:p%40ss@broker.test:18883", "broker.test", 18883, True),
    ],
)
def test_broker_urls(url: str, host: str, port: int, tls: bool) -> None:
    addr = BrokerAddress.parse(url, ca_file=Path("ca.crt"))
    assert (addr.host, addr.port, addr.tls, addr.ca_file) == (host, port, tls, Path("ca.crt"))


def test_other_schemes_are_refused() -> None:
    for url in ("ssl://broker.test:8883", "wss://broker.test", "broker.test:1883"):
        with pytest.raises(BrokerUrlError, match="mqtts://"):
            BrokerAddress.parse(url)


# --- Firewatch's clients over TLS, end to end ------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("consumer", ["mqtt5", "paho"])
def test_the_simulator_and_ingest_run_over_mqtts(
    settings: Settings, tls_broker: Broker, cert_dir: Path, consumer: str
) -> None:
    """The simulator publishes over TLS, the ingest worker (either consumer) consumes over
    TLS (both with the CA from the settings), and the rows are in the database."""
    assert settings.database_url
    tls_settings = settings.model_copy(
        update={
            "mqtt_url": tls_broker.tls_url,
            "mqtt_ca_file": cert_dir / certs.CA_CERT,
            "ingest_consumer": consumer,
        }
    )
    sc = Scenario(
        name="tls",
        start="auto",
        duration=1200,
        speedup=1200,
        mix=MixSpec(water_points=1, tank_fraction=0, pump_room_fraction=0, shed_fraction=0),
        intervals=IntervalsSpec(water=60, panel_status=300, status=3600),
    )
    start, end = scenario_window(sc, live=True)
    sim = Simulation(sc, start=start, end=end, units=1)
    with psycopg.connect(settings.database_url, autocommit=True) as db:
        load_seed(db, sim.city)
        with ThreadedIngest(tls_settings) as ingest:
            assert tls_settings.mqtt_url
            result = publish_mqtt(
                sim,
                tls_settings.mqtt_url,
                threading.Event(),
                sc.speedup,
                ca_file=tls_settings.mqtt_ca_file,
            )
            assert result.messages > 0
            wait_until(lambda: ingest.service.stats.received >= result.messages, 30, "all")
        stored = scalar(db, "SELECT count(*) FROM telemetry")
        assert stored == result.by_channel["telemetry"]
