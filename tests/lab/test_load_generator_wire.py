"""The load generator's MQTT 5 traffic (:mod:`firewatch.lab.load_generator`), read by the
``mqtt5`` codec: against a scripted local broker for what the generator must get right on
the wire (the exact PUBLISH bytes, the Receive Maximum window, packet ids, PUBACK reason
codes arriving cut across its reads, what ends a run), and against the real Mosquitto."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import mqtt5
import pytest

from firewatch.core.contract import topic_for
from firewatch.core.domain import Channel
from firewatch.lab.load_generator import BENCH_UNIT, device_ids, run_load

ROOT = "firewatch/v1"
#: The PUBACK reason code the scripted broker answers a packet id with.
Reason = Callable[[int], mqtt5.PubAckReasonCode]


def _success(_mid: int) -> mqtt5.PubAckReasonCode:
    return mqtt5.PubAckReasonCode.SUCCESS


@dataclass
class Seen:
    """What the scripted broker received, and the most PUBLISHes it held unacknowledged."""

    stream: bytearray = field(default_factory=bytearray, repr=False)
    packets: list[mqtt5.Packet] = field(default_factory=list, repr=False)
    most_unacked: int = 0
    errors: list[str] = field(default_factory=list)


@contextmanager
def scripted_broker(
    *,
    receive_max: int = 65535,
    reason: Reason = _success,
    connack: mqtt5.ConnAckPacket | None = None,
    after_first_publish: bytes = b"",
    late: tuple[int, int] | None = None,
    split_acks: bool = True,
) -> Iterator[tuple[str, Seen]]:
    """A broker for one connection: CONNACK (``connack``, or success announcing
    ``receive_max``), then PUBACKs for the PUBLISHes of each read, written after holding
    them back 5 ms (so the generator's window fills) and, with ``split_acks``, in random
    pieces of 1-7 bytes (so they reach the generator cut across its reads).
    ``after_first_publish`` goes out once, with the first PUBACK. ``late=(mid, n)``: the
    first PUBACK for packet id ``mid`` waits for ``n`` more PUBLISHes. Yields the
    ``mqtt://`` URL (with a login) and what the broker saw."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    seen = Seen()
    rng = random.Random(0)

    def serve() -> None:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(10)
        unacked: set[int] = set()  # PUBLISHes whose PUBACK has not been written yet
        waiting = late  # the late PUBACK, not yet begun
        held: list[int] = []  # [packet id, PUBLISHes still to wait for] while held
        extra = after_first_publish
        pending = b""
        with conn:
            while True:
                data = conn.recv(1 << 18)
                if not data:
                    return
                seen.stream += data
                buf = pending + data
                pos = 0
                out = bytearray()
                written: list[int] = []
                done = False
                while pos < len(buf):
                    try:
                        packet, used = mqtt5.read(memoryview(buf)[pos:])
                    except IndexError:  # the rest comes with a later read
                        break
                    pos += used
                    seen.packets.append(packet)
                    if isinstance(packet, mqtt5.ConnectPacket):
                        ack = connack or mqtt5.ConnAckPacket(receive_max=receive_max)
                        conn.sendall(ack.write())
                    elif isinstance(packet, mqtt5.PublishPacket):
                        mid = packet.packet_id
                        assert mid is not None
                        if mid in unacked:
                            seen.errors.append(f"packet id {mid} reused while unacknowledged")
                        unacked.add(mid)
                        seen.most_unacked = max(seen.most_unacked, len(unacked))
                        out += extra
                        extra = b""
                        if held:
                            held[1] -= 1
                            if held[1] <= 0:
                                out += mqtt5.PubAckPacket(held[0]).write()
                                written.append(held[0])
                                held = []
                        if waiting is not None and mid == waiting[0]:
                            held, waiting = list(waiting), None
                            continue
                        out += mqtt5.PubAckPacket(mid, reason_code=reason(mid)).write()
                        written.append(mid)
                    elif isinstance(packet, mqtt5.DisconnectPacket):
                        done = True
                pending = buf[pos:]
                if done:
                    return
                time.sleep(0.005)  # 2.5 pacing ticks
                while out:
                    cut = rng.randint(1, 7) if split_acks else len(out)
                    conn.sendall(out[:cut])
                    del out[:cut]
                    if split_acks and rng.random() < 0.2:
                        time.sleep(0.003)
                unacked.difference_update(written)

    def run() -> None:
        try:
            serve()
        except (OSError, AssertionError) as err:
            seen.errors.append(repr(err))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"mqtt://bench:s3cret@127.0.0.1:{server.getsockname()[1]}", seen
    finally:
        thread.join(10)
        server.close()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _read_in_pieces(stream: bytes, rng: random.Random) -> list[mqtt5.Packet]:
    """Decode ``stream`` fed a few bytes at a time, as a socket might deliver it."""
    got: list[mqtt5.Packet] = []
    buf, pos = b"", 0
    while pos < len(stream):
        step = rng.choice([1, 2, 3, 50, 4096])
        buf += stream[pos : pos + step]
        pos += step
        while buf:
            try:
                packet, used = mqtt5.read(memoryview(buf))
            except IndexError:
                break
            got.append(packet)
            buf = buf[used:]
    assert buf == b""
    return got


def _summary(p: mqtt5.Packet) -> tuple[str, object, object]:
    return type(p).__name__, getattr(p, "packet_id", None), getattr(p, "payload", None)


def test_what_the_generator_sends_and_how_it_counts_acks() -> None:
    devices = device_ids(7)
    refused = {5, 6, 40}

    def reason(mid: int) -> mqtt5.PubAckReasonCode:
        if mid in refused:
            return mqtt5.PubAckReasonCode.NOT_AUTHORIZED  # 0x87
        if mid % 2:
            return mqtt5.PubAckReasonCode.NO_MATCHING_SUBSCRIBERS  # 0x10: accepted
        return mqtt5.PubAckReasonCode.SUCCESS

    with scripted_broker(receive_max=4, reason=reason) as (url, seen):
        result = run_load(url, ROOT, devices, rate=1000, duration=0.1, client_id="gen-1")
    assert not seen.errors
    assert (result.published, result.acked, result.refused) == (100, 97, 3)
    # The broker's Receive Maximum bounds what is in flight, and all of it is used.
    assert seen.most_unacked == 4

    connect, *publishes, disconnect = seen.packets
    assert isinstance(connect, mqtt5.ConnectPacket)
    assert (connect.client_id, connect.username, connect.password) == ("gen-1", "bench", b"s3cret")
    assert connect.clean_start
    assert connect.keep_alive == 60
    assert isinstance(disconnect, mqtt5.DisconnectPacket)
    assert disconnect.reason_code.value == 0

    # Round-robin over the devices, QoS 1, packet ids from 1, payloads as devices send.
    assert len(publishes) == 100
    for i, p in enumerate(publishes):
        assert isinstance(p, mqtt5.PublishPacket)
        assert p.topic == topic_for(ROOT, BENCH_UNIT, devices[i % 7], Channel.TELEMETRY)
        assert p.qos.value == 1
        assert not p.retain
        assert not p.duplicate
        assert p.packet_id == i + 1
        body = json.loads(p.payload)
        assert body["seq"] == i // 7 + 1
        assert body["pressure_kpa"] == 300 + i % 97
        assert body["level_m"] == 3.5
        assert body["ts"].endswith("+00:00")

    # Byte for byte what the benchmarks have always sent: fixed header 0x32, topic,
    # packet id, an empty property block, the payload exactly as formatted.
    p = publishes[12]
    assert isinstance(p, mqtt5.PublishPacket)
    ts = json.loads(p.payload)["ts"].encode()
    payload = b'{"seq":2,"ts":"%s","pressure_kpa":312.0,"level_m":3.5}' % ts
    assert p.payload == payload
    topic = p.topic.encode()
    body = len(topic).to_bytes(2, "big") + topic + (13).to_bytes(2, "big") + b"\x00" + payload
    assert b"\x32" + _varint(len(body)) + body in seen.stream

    # The stream reads the same however the reads cut it.
    rng = random.Random(1)
    expected = [_summary(p) for p in seen.packets]
    for _ in range(10):
        assert [_summary(p) for p in _read_in_pieces(bytes(seen.stream), rng)] == expected


def test_packet_ids_wrap_and_skip_one_still_in_flight() -> None:
    """Ids run 1..65535, then wrap; id 2, whose PUBACK the broker holds back past the
    wrap, is skipped."""
    total = 65_600
    with scripted_broker(late=(2, 65_540), split_acks=False) as (url, seen):
        result = run_load(url, ROOT, device_ids(3), rate=total, duration=1.0, client_id="w")
    assert not seen.errors
    assert result.published == result.acked == total
    ids = [p.packet_id for p in seen.packets if isinstance(p, mqtt5.PublishPacket)]
    assert ids[:65_535] == list(range(1, 65_536))
    assert ids[65_535:] == [1, *range(3, 3 + total - 65_536)]


@pytest.mark.parametrize(
    ("connack", "after", "message"),
    [
        (
            mqtt5.ConnAckPacket(reason_code=mqtt5.ConnAckReasonCode.NOT_AUTHORIZED),
            b"",
            "refused the connection .NOT_AUTHORIZED",
        ),
        (
            None,
            mqtt5.DisconnectPacket(reason_code=mqtt5.DisconnectReasonCode.SERVER_BUSY).write(),
            "disconnected the load generator .SERVER_BUSY",
        ),
        (None, mqtt5.PublishPacket("x/y", b"{}").write(), "sent a PUBLISH"),
    ],
    ids=["connack-refused", "broker-disconnects", "broker-publishes"],
)
def test_what_ends_a_run(connack: mqtt5.ConnAckPacket | None, after: bytes, message: str) -> None:
    # The broker may find the connection reset under its last PUBACKs: not checked.
    with (
        scripted_broker(connack=connack, after_first_publish=after) as (url, _seen),
        pytest.raises(ConnectionError, match=message),
    ):
        run_load(url, ROOT, device_ids(3), rate=500, duration=0.5, client_id="end")


def test_against_mosquitto(mqtt_url: str) -> None:
    """Mosquitto answers a PUBLISH nobody subscribed to with reason 0x10 (no matching
    subscribers): acknowledged, not refused."""
    result = run_load(mqtt_url, ROOT, device_ids(20), rate=2000, duration=0.5, client_id="m")
    assert (result.published, result.acked, result.refused) == (1000, 1000, 0)
