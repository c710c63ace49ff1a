"""The mqtt5 consumer's socket loop against brokers: the real Mosquitto for keepalive, and a
scripted local TCP server for what Mosquitto never does (go silent, send garbage, trickle
packets a byte at a time). Each script answers CONNECT with CONNACK and SUBSCRIBE with
SUBACK through the ``mqtt5`` codec, then does its one odd thing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import mqtt5
import pytest

from firewatch.core.backoff import Backoff
from firewatch.ingest.consumer import Delivery
from firewatch.ingest.ingest_metrics import IngestMetrics
from firewatch.ingest.mqtt5_consumer import Mqtt5Consumer
from tests.helpers import wait_until

TIMEOUT = 15.0
#: What a script does once the consumer is connected and subscribed (its connection number).
Script = Callable[[socket.socket, int], None]


def _consumer(url: str, got: list[Delivery], keepalive: int = 30) -> Mqtt5Consumer:
    def handle(messages: list[Delivery], _at: object) -> None:
        got.extend(messages)

    return Mqtt5Consumer(
        url,
        client_id="wire-test",
        subscription="firewatch/v1/#",
        handler=handle,
        metrics=IngestMetrics(),
        backoff=Backoff(0.02, 0.05),
        session_expiry_s=60,
        receive_maximum=100,
        keepalive=keepalive,
    )


def _read_packet(conn: socket.socket, buf: bytearray) -> mqtt5.Packet:
    """The next packet from the client (``buf``: bytes read and not yet used)."""
    while True:
        try:
            packet, used = mqtt5.read(memoryview(bytes(buf)))
        except IndexError:  # not whole yet
            pass
        else:
            del buf[:used]
            return packet
        data = conn.recv(65536)
        if not data:
            raise ConnectionError("client went away")
        buf += data


@contextmanager
def scripted_broker(script: Script) -> Iterator[str]:
    """A TCP server on a free loopback port running ``script`` for every connection after
    the CONNECT/CONNACK and SUBSCRIBE/SUBACK handshake; yields its ``mqtt://`` URL."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()
    count = 0

    def serve(conn: socket.socket, n: int) -> None:
        with conn:
            try:
                buf = bytearray()
                assert isinstance(_read_packet(conn, buf), mqtt5.ConnectPacket)
                conn.sendall(mqtt5.ConnAckPacket().write())
                sub = _read_packet(conn, buf)
                assert isinstance(sub, mqtt5.SubscribePacket)
                conn.sendall(
                    mqtt5.SubAckPacket(
                        sub.packet_id, [mqtt5.SubAckReasonCode.GRANTED_QOS_AT_LEAST_ONCE]
                    ).write()
                )
                script(conn, n)
            except OSError:
                pass

    def accept() -> None:
        nonlocal count
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn, count), daemon=True).start()
            count += 1

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"mqtt://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        server.close()


def _publish(i: int) -> bytes:
    return mqtt5.PublishPacket(
        f"firewatch/v1/U-1/D-{i}/telemetry", b"{}", qos=mqtt5.QoS.AT_LEAST_ONCE, packet_id=i + 1
    ).write()


def test_keepalive_pings_hold_an_idle_connection_to_mosquitto(mqtt_url: str) -> None:
    """Keepalive 1 s: Mosquitto drops a client silent for 1.5 s. Three answered pings on
    the first connection show the consumer speaks up in time."""
    consumer = _consumer(mqtt_url, [], keepalive=1)
    with consumer:
        wait_until(lambda: consumer.pongs >= 3, TIMEOUT, "three PINGRESPs")
        assert consumer.generation == 0
        assert consumer.connected.is_set()


def test_a_broker_that_stops_answering_pings_is_left_for_a_new_connection() -> None:
    silent = threading.Event()

    def go_silent(conn: socket.socket, n: int) -> None:
        if n == 0:
            silent.wait(TIMEOUT)  # read nothing, answer nothing
        else:
            conn.sendall(_publish(0))
            silent.wait(TIMEOUT)

    got: list[Delivery] = []
    with scripted_broker(go_silent) as url, _consumer(url, got, keepalive=1) as consumer:
        wait_until(lambda: len(got) == 1, TIMEOUT, "the message of the second connection")
        assert consumer.generation == 1
        silent.set()


def test_garbage_from_the_broker_ends_that_connection_not_the_consumer() -> None:
    released = threading.Event()

    def garbage_then_good(conn: socket.socket, n: int) -> None:
        conn.sendall(_publish(0) + (b"\xff\x00" if n == 0 else _publish(1)))
        released.wait(TIMEOUT)

    got: list[Delivery] = []
    with scripted_broker(garbage_then_good) as url, _consumer(url, got) as consumer:
        wait_until(lambda: len(got) == 2, TIMEOUT, "the second connection's two messages")
        # The read that held the garbage is dropped whole, the good message before it too:
        # nothing of it was acknowledged, so the broker sends it again (as this one does).
        assert [t for t, _, _ in got] == [
            "firewatch/v1/U-1/D-0/telemetry",
            "firewatch/v1/U-1/D-1/telemetry",
        ]
        assert consumer.generation == 1
        released.set()


@pytest.mark.parametrize("step", [1, 7])
def test_packets_trickling_in_a_few_bytes_at_a_time_arrive_whole(step: int) -> None:
    released = threading.Event()
    wire = b"".join(_publish(i) for i in range(20))

    def trickle(conn: socket.socket, _n: int) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(wire), step):
            conn.sendall(wire[i : i + step])
        released.wait(TIMEOUT)

    got: list[Delivery] = []
    with scripted_broker(trickle) as url, _consumer(url, got) as consumer:
        wait_until(lambda: len(got) == 20, TIMEOUT, "20 messages")
        assert [t for t, _, _ in got] == [f"firewatch/v1/U-1/D-{i}/telemetry" for i in range(20)]
        assert consumer.generation == 0
        released.set()
