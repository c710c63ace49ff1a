"""The mqtt5 consumer's own parts, without a broker: packets split at any read boundary,
bytes the codec refuses, acknowledgements bound to their connection, Receive Maximum
enforced. Its behaviour against a real Mosquitto is in the tests this directory runs on both
consumers (conftest.py); against a broker that misbehaves, in test_mqtt5_wire.py."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import mqtt5
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firewatch.core.backoff import Backoff
from firewatch.ingest.consumer import Delivery, ack_token
from firewatch.ingest.ingest_metrics import IngestMetrics
from firewatch.ingest.mqtt5_consumer import Mqtt5Consumer, ProtocolError, decode


def _publish(i: int, qos: int = 1) -> bytes:
    return mqtt5.PublishPacket(
        f"firewatch/v1/U-{i % 7}/D-{i}/telemetry",
        b'{"seq": %d, "ts": "2026-12-07T10:00:00+00:00"}' % i,
        qos=mqtt5.QoS(qos),
        packet_id=(i % 65535) + 1 if qos else None,
    ).write()


def _consumer(got: list[Delivery], receive_maximum: int = 100) -> Mqtt5Consumer:
    return Mqtt5Consumer(
        "mqtt://127.0.0.1:1",
        client_id="t",
        subscription="s/#",
        handler=lambda messages, _at: got.extend(messages),
        metrics=IngestMetrics(),
        backoff=Backoff(0.1, 1),
        session_expiry_s=60,
        receive_maximum=receive_maximum,
    )


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=40),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_packets_cut_at_any_read_boundary_come_out_whole_and_in_order(
    n: int, cuts: list[int]
) -> None:
    wire = b"".join(_publish(i, qos=i % 2) for i in range(n)) + mqtt5.PingRespPacket().write()
    bounds = sorted({c % len(wire) for c in cuts} | {0, len(wire)})
    got: list[Delivery] = []
    consumer = _consumer(got)
    consumer.connected.set()
    pongs = 0
    for start, end in itertools.pairwise(bounds):
        pongs += consumer._dispatch(consumer._feed(wire[start:end]), datetime.now(UTC))
    assert [topic for topic, _, _ in got] == [
        f"firewatch/v1/U-{i % 7}/D-{i}/telemetry" for i in range(n)
    ]
    assert [t for _, _, t in got] == [
        ack_token(0, (i % 65535) + 1) if i % 2 else None for i in range(n)
    ]
    assert pongs == 1
    assert consumer._pending == b""


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\x00",  # reserved packet type
        b"\x30\x03\x00\x01a",  # PUBLISH without its property length
        # A topic that is not UTF-8: mqtt5 0.8.0 panics (PanicException, a BaseException)
        # and also reports the UnicodeDecodeError behind it as "unraisable" (ADR 0013).
        pytest.param(
            b"\x30\x05\x00\x01\xff\x00\x00",
            marks=pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
        ),
    ],
    ids=["reserved-type", "no-properties", "non-utf8-topic"],
)
def test_bytes_the_codec_refuses_are_a_protocol_error_not_a_crash(raw: bytes) -> None:
    with pytest.raises(ProtocolError, match="malformed packet at byte 0"):
        decode(raw)
    # Whole packets before the bad one still come out of a read on their own.
    packets, used = decode(_publish(1))
    assert len(packets) == 1
    assert used == len(_publish(1))


def test_packets_a_subscriber_must_not_get_are_a_protocol_error() -> None:
    consumer = _consumer([])
    consumer.connected.set()
    packets = consumer._feed(mqtt5.PubRelPacket(3).write())
    with pytest.raises(ProtocolError, match="PubRelPacket"):
        consumer._dispatch(packets, datetime.now(UTC))


def test_acks_of_an_earlier_connection_are_dropped_not_sent() -> None:
    consumer = _consumer([])
    metrics = consumer._metrics
    metrics.inflight.inc(4)
    consumer.generation = 3
    consumer.connected.set()
    consumer.ack([ack_token(2, 5), None, ack_token(3, 6), ack_token(3, 65535), ack_token(2, 6)])
    consumer._take_acks()
    sent, used = decode(bytes(consumer._out))
    assert used == len(consumer._out)
    assert [(type(p), p.packet_id) for p in sent] == [  # type: ignore[union-attr]
        (mqtt5.PubAckPacket, 6),
        (mqtt5.PubAckPacket, 65535),
    ]
    assert (consumer.acks_sent, consumer.acks_dropped) == (2, 2)
    assert metrics.registry.get_sample_value("firewatch_ingest_inflight") == 0
    # Not connected: nothing is sent, everything is dropped.
    consumer._out.clear()
    consumer.connected.clear()
    consumer.ack([ack_token(3, 7)])
    consumer._take_acks()
    assert consumer._out == bytearray()
    assert consumer.acks_dropped == 3


def test_more_unacknowledged_messages_than_receive_maximum_are_taken_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got: list[Delivery] = []
    consumer = _consumer(got, receive_maximum=5)
    consumer.connected.set()
    consumer._dispatch(consumer._feed(b"".join(_publish(i) for i in range(5))), datetime.now(UTC))
    consumer.ack([t for _, _, t in got[:2]])
    consumer._take_acks()  # two acknowledged: room for two more
    consumer._dispatch(consumer._feed(_publish(5) + _publish(6)), datetime.now(UTC))
    assert not caplog.records
    # One over: taken (the inbox bounds memory) and said once for the connection.
    consumer._dispatch(consumer._feed(_publish(7) + _publish(8)), datetime.now(UTC))
    consumer._dispatch(consumer._feed(_publish(9)), datetime.now(UTC))
    assert len(got) == 10
    assert [r.getMessage() for r in caplog.records] == [
        "the broker sent 7 unacknowledged messages, over our Receive Maximum 5"
    ]


def test_a_partial_packet_larger_than_our_maximum_packet_size_is_refused() -> None:
    consumer = _consumer([])
    big = mqtt5.PublishPacket("t", b"x" * (1 << 21), qos=mqtt5.QoS.AT_LEAST_ONCE, packet_id=1)
    wire = big.write()
    consumer._feed(wire[: 1 << 19])
    with pytest.raises(ProtocolError, match="Maximum Packet Size"):
        consumer._feed(wire[1 << 19 : (1 << 20) + 10])
