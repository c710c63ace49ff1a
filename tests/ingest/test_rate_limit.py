"""Limits on what one device can push through ingest (issue 14): the broker's payload cap,
and ingest's per-device message rate. The buckets are checked on a fake clock; the flood
runs over a real Mosquitto into the real database."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from firewatch.core.broker import BrokerAddress
from firewatch.core.domain import PanelEventType
from firewatch.core.settings import Settings
from firewatch.ingest.rate_limit import STATUS_BUCKET, DeviceRateLimiter, bucket_of
from firewatch.runtime.mosquitto import CONF_D
from tests.builders.city import PANEL, WATER, topic
from tests.builders.payloads import now_iso, panel_event, water
from tests.builders.rows import T0, event, status, water_row
from tests.helpers import FakeClock, ThreadedIngest, publish_all, publisher, scalar, wait_until


# --- the token bucket, on a fake clock ---------------------------------------------------------
def _limiter(clock: FakeClock, rate: float = 2.0, burst: int = 5, **kw: Any) -> DeviceRateLimiter:
    return DeviceRateLimiter(rate=rate, burst=burst, clock=clock, **kw)


def _admitted(limiter: DeviceRateLimiter, key: str, n: int) -> int:
    return sum(limiter.admit(key) for _ in range(n))


def test_a_device_gets_its_burst_at_once_then_its_rate() -> None:
    clock = FakeClock(100.0)
    limiter = _limiter(clock, rate=2.0, burst=5)
    assert _admitted(limiter, "D1", 8) == 5
    clock.now += 0.25  # half a token
    assert not limiter.admit("D1")
    clock.now += 0.25  # the other half: one message
    assert limiter.admit("D1")
    assert not limiter.admit("D1")
    clock.now += 10.0  # refills up to the burst, never beyond
    assert _admitted(limiter, "D1", 20) == 5
    assert limiter.limited == 3 + 2 + 15


def test_a_sustained_flood_gets_the_burst_plus_the_rate_and_no_more() -> None:
    clock = FakeClock(0.0)
    limiter = _limiter(clock, rate=20.0, burst=200)
    admitted = 0
    for _ in range(10_000):  # 1,000 messages a second for 10 s
        admitted += limiter.admit("FLOOD")
        clock.now += 0.001
    assert admitted == pytest.approx(200 + 20 * 10, abs=1)


def test_one_device_over_its_rate_costs_no_other_device_anything() -> None:
    clock = FakeClock(0.0)
    limiter = _limiter(clock, rate=1.0, burst=3)
    assert _admitted(limiter, "FLOOD", 1_000) == 3
    assert all(_admitted(limiter, f"D{i}", 3) == 3 for i in range(50))
    assert limiter.limited == 997


def test_a_clock_that_steps_back_refills_nothing() -> None:
    clock = FakeClock(50.0)
    limiter = _limiter(clock, rate=1.0, burst=2)
    assert _admitted(limiter, "D1", 2) == 2
    clock.now = 10.0  # 40 s back: no negative refill, and no refill for the jump either
    assert not limiter.admit("D1")
    clock.now = 11.0  # a second on from there: one token
    assert limiter.admit("D1")
    assert not limiter.admit("D1")


def test_memory_is_bounded_full_buckets_are_forgotten_and_flooders_are_not() -> None:
    clock = FakeClock(0.0)
    limiter = _limiter(clock, rate=1.0, burst=2, max_devices=3)
    for dev in ("A", "B", "C"):
        assert _admitted(limiter, dev, 5) == 2  # three flooders fill the table
    assert len(limiter) == 3
    # A new device while all three still flood: admitted, not tracked (fails open).
    assert _admitted(limiter, "D", 5) == 5
    assert (len(limiter), limiter.untracked) == (3, 5)
    # The flooders keep their (empty) buckets: a full table never resets a flood.
    assert not limiter.admit("A")
    clock.now = 2.0
    assert _admitted(limiter, "A", 5) == 2  # A floods on; B and C have stopped
    clock.now = 3.5  # B and C refilled long ago (the same as no bucket); A has 1.5 tokens
    assert _admitted(limiter, "E", 5) == 2  # room made: E is tracked, burst then limited
    assert (len(limiter), limiter.untracked) == (2, 5)  # A and E
    assert _admitted(limiter, "A", 5) == 1  # A's bucket was kept with what it had


def test_a_full_table_is_swept_at_most_once_a_second() -> None:
    clock = FakeClock(0.0)
    limiter = _limiter(clock, rate=10.0, burst=2, max_devices=2)
    _admitted(limiter, "A", 5)
    _admitted(limiter, "B", 5)
    assert limiter.admit("C")  # swept: nothing was full, so C is not tracked
    clock.now = 0.5  # A and B are full again (0.2 s refills them), but the last sweep was
    assert limiter.admit("D")  # less than a second ago: no sweep, D is not tracked either
    assert (len(limiter), limiter.untracked) == (2, 2)
    clock.now = 1.0
    assert limiter.admit("E")  # a sweep again: A and B are dropped, E gets a bucket
    assert (len(limiter), limiter.untracked) == (1, 2)


def test_bad_parameters_are_refused() -> None:
    for rate, burst, most in ((0.0, 1, 1), (1.0, 0, 1), (1.0, 1, 0)):
        with pytest.raises(ValueError, match="need rate > 0"):
            DeviceRateLimiter(rate=rate, burst=burst, max_devices=most)


def test_which_bucket_a_row_spends_from() -> None:
    assert bucket_of(water_row(WATER, T0, 300.0)) == WATER
    normal = event(PANEL, T0, PanelEventType.COMPONENT_STATUS, 0b1, addr=1, ctype=41)
    assert bucket_of(normal) == PANEL
    assert bucket_of(status(PANEL, T0, "online", seq=9)) == PANEL + STATUS_BUCKET
    # Never limited: a last will, and an event carrying an alarm.
    assert bucket_of(status(PANEL, T0, "offline", seq=0, reason="will")) is None
    fire = event(PANEL, T0, PanelEventType.COMPONENT_STATUS, 0b11, addr=1, ctype=41)
    assert "fire" in fire.flags
    assert bucket_of(fire) is None


# --- the broker's payload cap --------------------------------------------------------------------
def _message_size_limit() -> int:
    """``message_size_limit`` as the project's broker config sets it."""
    conf = (CONF_D / "firewatch.conf").read_text()
    found = re.search(r"^message_size_limit\s+(\d+)\s*$", conf, re.MULTILINE)
    assert found, "message_size_limit is not set in mosquitto/conf.d/firewatch.conf"
    return int(found.group(1))


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["mqtt5", "mqtt311"])
def test_the_broker_refuses_a_payload_above_message_size_limit(
    mqtt_url: str, protocol: MQTTProtocolVersion
) -> None:
    """Mosquitto 2.0 drops the publish and closes the device's connection. An MQTT 5 device
    gets no Success (Mosquitto sends PUBACK 0x95, which paho cannot even parse); an MQTT
    3.1.1 PUBACK has no reason code, so such a device learns only from the closed
    connection. Either way nobody receives the payload."""
    limit = _message_size_limit()
    received: list[tuple[str, int]] = []
    with publisher(mqtt_url) as sub:
        subscribed = threading.Event()
        sub.on_subscribe = lambda *_: subscribed.set()
        sub.on_message = lambda _c, _u, m: received.append((m.topic, len(m.payload)))
        sub.subscribe("test/size/#", qos=1)
        wait_until(subscribed.is_set, 10, "subscribed")
        publish_all(mqtt_url, [("test/size/at", b"x" * limit)])
        wait_until(lambda: len(received) == 1, 10, "the payload at the limit")

        addr = BrokerAddress.parse(mqtt_url)
        device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="big", protocol=protocol)
        closed = threading.Event()
        device.on_disconnect = lambda *_: closed.set()
        device.connect(addr.host, addr.port)
        device.loop_start()
        try:
            info = device.publish("test/size/over", b"x" * (limit + 1), qos=1)
            wait_until(closed.is_set, 10, "the broker closing the connection")
        finally:
            device.loop_stop()  # before paho reconnects and sends it again
        if protocol == mqtt.MQTTv5:
            assert not info.is_published()

        publish_all(mqtt_url, [("test/size/after", b"ok")])  # after the refusal, in order
        wait_until(lambda: len(received) == 2, 10, "the message after it")
    assert received == [("test/size/at", limit), ("test/size/after", 2)]


# --- a flood end to end ---------------------------------------------------------------------------
def test_a_flooding_device_is_limited_while_every_other_device_is_stored(
    mqtt_settings: Settings, db: psycopg.Connection[Any]
) -> None:
    """One water point floods 3,000 messages as fast as the broker takes them while five
    others publish 30 each, spread through the flood. Every message of the five is stored;
    the flooder gets its burst and its rate, the rest are acknowledged ``rate_limited``
    dead letters (the quota's few stored, the rest counted), and nothing comes back."""
    # The shipped defaults (20/s, burst 200), whatever the test settings say.
    rate, burst = (
        Settings.model_fields["ingest_device_rate_per_s"].default,
        Settings.model_fields["ingest_device_burst"].default,
    )
    s = mqtt_settings.model_copy(
        update={"ingest_device_rate_per_s": rate, "ingest_device_burst": burst}
    )
    flood_n, each = 3_000, 30
    devices = db.execute(
        "SELECT id, unit_id FROM devices WHERE kind = 'water' ORDER BY id LIMIT 6"
    ).fetchall()
    assert len(devices) == 6
    (flooder, flooder_unit), others = devices[0], devices[1:]
    flood_topic = topic(flooder, unit=flooder_unit)
    msgs: list[tuple[str, bytes]] = []
    for seq in range(1, flood_n + 1):
        msgs.append((flood_topic, water(seq)))
        if seq % (flood_n // each) == 0:  # every 100th: one message of each other device
            msgs += [(topic(dev, unit=unit), water(seq)) for dev, unit in others]
    assert len(msgs) == flood_n + each * len(others)

    with ThreadedIngest(s) as ingest:
        started = time.monotonic()
        publish_all(s.mqtt_url or "", msgs)
        wait_until(lambda: ingest.service.stats.received == len(msgs), 60, "all received")
        elapsed = time.monotonic() - started
        stats = ingest.stop()

    stored = dict(db.execute("SELECT device_id, count(*) FROM telemetry GROUP BY 1").fetchall())
    assert {dev: stored.get(dev) for dev, _ in others} == {dev: each for dev, _ in others}
    kept = stored[flooder]
    # The bucket starts full and refills at the rate while the flood lasts.
    assert burst <= kept <= burst + rate * elapsed + 1, (kept, elapsed)
    assert kept < flood_n / 2
    limited = flood_n - kept
    assert stats.rate_limited == limited
    reg = ingest.service.metrics.registry
    assert reg.get_sample_value("firewatch_ingest_rate_limited_total") == limited
    by_reason = {"reason": "rate_limited"}
    assert reg.get_sample_value("firewatch_ingest_dead_letters_total", by_reason) == limited
    quota = s.dead_letter_quota_per_device
    dead = db.execute("SELECT topic, reason, count(*) FROM dead_letters GROUP BY 1, 2").fetchall()
    assert dead == [(flood_topic, "rate_limited", quota)]
    assert stats.over_quota == limited - quota
    assert reg.get_sample_value("firewatch_ingest_dead_letters_dropped_total", by_reason) == (
        limited - quota
    )
    # Acknowledged once each, nothing twice.
    assert stats.received == len(msgs)
    assert stats.duplicates == 0
    assert ingest.service.consumer is not None
    assert ingest.service.consumer.acks_sent == len(msgs)
    assert f"rate limited {limited}," in stats.summary(None)

    # Nothing is redelivered to the same session: the next worker gets only what is new.
    with ThreadedIngest(s) as again:
        dev, unit = others[0]
        publish_all(s.mqtt_url or "", [(topic(dev, unit=unit), water(flood_n + 1))])
        wait_until(lambda: again.service.stats.received >= 1, 20, "the new message")
        assert again.stop().received == 1
    assert scalar(db, "SELECT count(*) FROM telemetry") == kept + each * len(others) + 1


def test_a_flooding_panel_still_gets_its_alarm_its_status_and_its_will_stored(
    mqtt_settings: Settings, db: psycopg.Connection[Any]
) -> None:
    """What the limit never takes: an event carrying an alarm, a last will (both exempt),
    and a status (its own bucket, which a flood of events does not spend)."""
    s = mqtt_settings.model_copy(
        update={"ingest_device_rate_per_s": 1.0, "ingest_device_burst": 10}
    )
    iso = now_iso()
    flood = [(topic(PANEL, "event"), panel_event(seq, 0b1, iso)) for seq in range(1, 201)]
    status_topic = topic(PANEL, "status")
    will = orjson.dumps({"seq": 0, "ts": iso, "state": "offline", "reason": "will"})
    online = orjson.dumps({"seq": 202, "ts": iso, "state": "online"})
    msgs = [
        *flood,
        (topic(PANEL, "event"), panel_event(201, 0b11, iso)),  # fire
        (status_topic, online),
        (status_topic, will),
    ]
    with ThreadedIngest(s) as ingest:
        started = time.monotonic()
        publish_all(s.mqtt_url or "", msgs)
        wait_until(lambda: ingest.service.stats.received == len(msgs), 30, "all received")
        elapsed = time.monotonic() - started
        stats = ingest.stop()
    normal = scalar(db, "SELECT count(*) FROM events WHERE seq <= 200")
    assert 10 <= normal <= 10 + elapsed + 1
    assert stats.rate_limited == 200 - normal
    assert scalar(db, "SELECT flags FROM events WHERE seq = 201") == ["fire"]
    assert db.execute("SELECT seq, state FROM device_status ORDER BY seq").fetchall() == [
        (0, "offline"),
        (202, "online"),
    ]
