"""The load generator's MQTT 5 wire format (:mod:`firewatch.lab.mqtt_writer`): varints, the
packet reader (split anywhere, QoS 2 and bad UTF-8 refused), PUBACK and CONNECT encoding."""

from __future__ import annotations

import random

import pytest

from firewatch.lab import mqtt_writer as mqtt5


@pytest.mark.parametrize("n", [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 268_435_455])
def test_varint_round_trips(n: int) -> None:
    raw = mqtt5.varint(n)
    assert mqtt5.read_varint(raw, 0) == (n, len(raw))


def _publish(topic: str, payload: bytes, qos: int, mid: int, props: bytes = b"\x00") -> bytes:
    body = mqtt5.utf8(topic) + (mid.to_bytes(2, "big") if qos else b"") + props + payload
    return bytes([0x30 | qos << 1]) + mqtt5.varint(len(body)) + body


def test_reader_reassembles_packets_split_anywhere() -> None:
    big = b"x" * 70_000  # a multi-byte remaining length
    stream = (
        _publish("a/b", b"one", 1, 7)
        + _publish("a/c", b"", 0, 0)
        + _publish("t", big, 1, 65535, props=b"\x05\x01\x01\x02\x00\x00")  # 2 properties
        + b"\xd0\x00"  # PINGRESP
        + mqtt5.publish_packet(b"x/y", b"{}", 9)
    )
    expected = [
        mqtt5.Publish("a/b", b"one", 1, 7, False),
        mqtt5.Publish("a/c", b"", 0, 0, False),
        mqtt5.Publish("t", big, 1, 65535, False),
        mqtt5.Packet(0xD0, b""),
        mqtt5.Publish("x/y", b"{}", 1, 9, False),
    ]
    assert mqtt5.PacketReader().feed(stream) == expected
    rng = random.Random(3)
    for _ in range(20):
        reader, got, pos = mqtt5.PacketReader(), [], 0
        while pos < len(stream):
            step = rng.choice([1, 2, 3, 50, 4096, 100_000])
            got += reader.feed(stream[pos : pos + step])
            pos += step
        assert got == expected
        assert reader.pending() == 0


def test_reader_refuses_qos2_and_bad_utf8_topics() -> None:
    with pytest.raises(mqtt5.ProtocolError):
        mqtt5.PacketReader().feed(_publish("a", b"p", 2, 1))
    body = b"\x00\x02\xff\xfe" + b"\x00\x01\x00"
    with pytest.raises(mqtt5.ProtocolError):
        mqtt5.PacketReader().feed(b"\x32" + mqtt5.varint(len(body)) + body)


def test_pubacks_and_connect_encoding() -> None:
    assert mqtt5.pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"
    pkt = mqtt5.connect_packet(
        "cid",
        keepalive=30,
        clean_start=False,
        session_expiry_s=604_800,
        receive_maximum=10_000,
        username="u",
        password="p",
    )
    (parsed,) = mqtt5.PacketReader().feed(pkt)
    assert isinstance(parsed, mqtt5.Packet)
    assert parsed.kind == mqtt5.CONNECT
    body = parsed.body
    assert body[:7] == b"\x00\x04MQTT\x05"
    assert body[7] == 0xC0  # username + password, clean start off
    props, pos = mqtt5.parse_properties(body, 10)
    assert props == {mqtt5.SESSION_EXPIRY_INTERVAL: 604_800, mqtt5.RECEIVE_MAXIMUM: 10_000}
    assert body[pos:] == mqtt5.utf8("cid") + mqtt5.utf8("u") + mqtt5.utf8("p")
