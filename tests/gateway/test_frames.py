"""A device's data frames through the real gateway to the real broker: confirmed only once
published, denied when bad or from an unknown address, however the bytes arrive."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import orjson
import psycopg

from firewatch.core.contract import PanelEvent
from tests.builders.city import PANEL, UNIT
from tests.gateway.conftest import (
    ADDRESS,
    CONFIRM,
    CONTROL,
    CST,
    DENY,
    Device,
    GatewayThread,
    Subscriber,
    build_frame,
    device_clock,
    system_status_adu,
    wait_until,
)

TOPIC = f"firewatch/v1/{UNIT}/{PANEL}/event"


def test_a_data_frame_is_published_then_confirmed_with_its_serial(
    gateway: GatewayThread, subscriber: Subscriber
) -> None:
    when = device_clock(-60)
    with Device(gateway.port) as dev:
        dev.send(build_frame(0x1234, system_status_adu(0b110, when), when=when))
        confirm = dev.expect(CONFIRM, 0x1234)
        # The first frame of a registered device has its clock set (type 90, command 1).
        sync = dev.expect(CONTROL)
    assert confirm["adu"] == b""
    assert confirm["destination"] == ADDRESS  # source and destination swapped
    assert sync["adu"][:2] == bytes([90, 1])
    assert sync["destination"] == ADDRESS
    # Confirmed means the broker had acknowledged it: the message is there.
    msgs = subscriber.wait(lambda m: len(m) >= 1)
    topic, payload = msgs[0]
    assert topic == TOPIC
    expected_ts = when.replace(tzinfo=CST).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert payload == {
        "seq": 0x1234 * 256 + 1,
        "ts": expected_ts,
        "type": "system_status",
        "system_type": 1,
        "system_addr": 1,
        "status": 0b110,
    }
    PanelEvent.model_validate_json(orjson.dumps(payload))
    assert gateway.stats.confirmed == 1
    assert gateway.stats.published == 1


def test_a_bad_checksum_is_denied_with_the_same_serial(
    gateway: GatewayThread, subscriber: Subscriber
) -> None:
    with Device(gateway.port) as dev:
        dev.send(build_frame(77, system_status_adu(1), checksum_delta=1))
        deny = dev.expect(DENY, 77)
        assert deny["destination"] == ADDRESS
        assert deny["adu"] == b""
        # The connection stays: the same frame, right this time, is confirmed.
        dev.send(build_frame(77, system_status_adu(1)))
        dev.expect(CONFIRM, 77)
    assert gateway.stats.denies["checksum"] == 1


def test_an_unknown_source_is_denied_and_the_connection_stays(
    gateway: GatewayThread, subscriber: Subscriber
) -> None:
    with Device(gateway.port) as dev:
        for serial in (5, 6):  # denied every time, logged once
            dev.send(build_frame(serial, system_status_adu(1), source=0xFFEEDDCCBBAA))
            assert dev.expect(DENY, serial)["destination"] == 0xFFEEDDCCBBAA
        dev.send(build_frame(7, system_status_adu(1)))
        dev.expect(CONFIRM, 7)
    assert gateway.stats.denies["unknown_source"] == 2
    assert len(subscriber.wait(lambda m: len(m) == 1)) == 1


def test_split_reads_one_byte_at_a_time_are_confirmed(
    gateway: GatewayThread, subscriber: Subscriber
) -> None:
    frame = build_frame(300, system_status_adu(1))
    with Device(gateway.port) as dev:
        for b in frame:
            dev.send(bytes([b]))
        dev.expect(CONFIRM, 300)


def test_three_frames_in_one_write_are_each_confirmed(
    gateway: GatewayThread, subscriber: Subscriber
) -> None:
    frames = b"".join(build_frame(s, system_status_adu(s, system_addr=s)) for s in (1, 2, 3))
    with Device(gateway.port) as dev:
        dev.send(frames)
        serials = [dev.expect(CONFIRM)["serial"] for _ in range(3)]
    assert serials == [1, 2, 3]  # in order: one frame at a time
    msgs = subscriber.wait(lambda m: len(m) == 3)
    assert sorted(p["seq"] for _t, p in msgs) == [257, 513, 769]


def test_a_device_given_an_address_is_served_within_one_refresh(
    gateway: GatewayThread, subscriber: Subscriber, gbt_db: psycopg.Connection[Any]
) -> None:
    new_address = 0x0000000000AA
    server = gateway.server
    assert server is not None
    with Device(gateway.port) as dev:
        dev.send(build_frame(1, system_status_adu(1), source=new_address))
        dev.expect(DENY, 1)
        gbt_db.execute("UPDATE devices SET gbt_address = '0000000000aa' WHERE id = %s", (PANEL,))
        loads = server.directory.loads
        # +2: a reload that had begun before the update may not see it
        wait_until(lambda: server.directory.loads >= loads + 2, 10, "a directory refresh")
        dev.send(build_frame(2, system_status_adu(1), source=new_address))
        dev.expect(CONFIRM, 2)


def test_no_matching_subscribers_is_published_again_until_someone_listens(
    gateway: GatewayThread, mqtt_url: str
) -> None:
    """Mosquitto answers 0x10 while nobody is subscribed (ingest restarting): the frame
    stays unconfirmed and the message is sent again every second until it is taken."""
    with Device(gateway.port) as dev:
        dev.send(build_frame(9, system_status_adu(1)))
        publisher = gateway.publisher
        assert publisher is not None
        wait_until(lambda: publisher.retries_no_subscribers >= 1, 10, "a 0x10 PUBACK")
        assert gateway.stats.confirmed == 0
        assert gateway.stats.publish_retries >= 1
        sub = Subscriber(mqtt_url)
        try:
            dev.expect(CONFIRM, 9, timeout=10)
            assert [p["seq"] for _t, p in sub.wait(lambda m: len(m) >= 1)] == [9 * 256 + 1]
        finally:
            sub.close()
