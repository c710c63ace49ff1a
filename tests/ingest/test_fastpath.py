"""Unit tests of ingest's fast paths: the cached decoder (which must give exactly
:func:`decode`'s answers), the bulk histogram and the connection-bound acks. The end-to-end
behaviour over a real broker is in test_service.py and test_faults.py; the load generator's
MQTT 5 wire format in tests/lab/test_load_generator_wire.py."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry, Histogram

from firewatch.core.backoff import Backoff
from firewatch.core.domain import DeviceKind
from firewatch.ingest.codec import DeadLetter, Decoder, DeviceInfo, Limits, decode
from firewatch.ingest.consumer import ack_token
from firewatch.ingest.ingest_metrics import LAG_BUCKETS, IngestMetrics
from firewatch.ingest.paho_consumer import PahoConsumer
from firewatch.ingest.registry import DeviceRegistry
from firewatch.ingest.service import Inbox
from firewatch.runtime.metrics import BulkHistogram
from tests.builders.payloads import sparse_water


# --- cached decoder == decode ----------------------------------------------------------------
def _messages(now: datetime) -> list[tuple[str, bytes]]:
    w = partial(sparse_water, now.isoformat())

    water = "firewatch/v1/U-1/W-1/telemetry"
    panel = "firewatch/v1/U-1/P-1"
    old = (now - timedelta(days=30)).isoformat()
    will = {"seq": 0, "ts": old, "state": "offline"}
    event = {
        "seq": 3,
        "ts": now.isoformat(),
        "type": "system_status",
        "system_type": 1,
        "system_addr": 1,
        "status": 1,
    }
    return [
        (water, w()),
        (water, w(seq=2, level_m=3.5, pump_running=True)),
        (water, b"{pressure: 3"),
        (water, b"[1, 2]"),
        (water, w(pressure_kpa="300")),
        (water, w(seq=...)),
        (water, b'{"seq": 1, "ts": "%s", "pressure_kpa": NaN}' % now.isoformat().encode()),
        (water, w(pressure_kpa=99_999.0)),
        (water, w(ts=(now + timedelta(hours=2)).isoformat())),
        (water, w(ts=(now - timedelta(days=30)).isoformat())),
        (water, w(ts=now.replace(tzinfo=None).isoformat())),
        (water, w(pad="x" * 70_000)),
        (water, w(device_id="OTHER")),
        ("firewatch/v1/U-1/NOPE/telemetry", w()),
        ("firewatch/v1/U-2/W-1/telemetry", w()),
        ("firewatch/v1/U-1/W-1/event", w()),
        ("firewatch/v1/U-1/W-1/weather", w()),
        ("firewatch/v1/U 1/W-1/telemetry", w()),
        ("firewatch/v1/U-1/W-1", w()),
        ("other/v1/U-1/W-1/telemetry", w()),
        (f"{panel}/status", orjson.dumps(will)),
        (f"{panel}/status", orjson.dumps({**will, "seq": 1})),
        (f"{panel}/event", orjson.dumps(event)),
    ]


def test_cached_decoder_answers_exactly_like_decode_across_registry_changes() -> None:
    now = datetime.now(UTC)
    limits = Limits(65_536, timedelta(seconds=300), timedelta(days=7), timedelta(days=400))
    registry = DeviceRegistry(
        {"W-1": DeviceInfo("U-1", DeviceKind.WATER), "P-1": DeviceInfo("U-1", DeviceKind.PANEL)}
    )
    decoder = Decoder(
        root="firewatch/v1", lookup=registry.lookup, snapshot=registry.snapshot, limits=limits
    )

    def same() -> set[str]:
        outcomes = set()
        for _ in range(2):  # second round: answered from the cache
            for topic, payload in _messages(now):
                expected = decode(
                    topic,
                    payload,
                    now,
                    root="firewatch/v1",
                    lookup=registry.lookup,
                    limits=limits,
                )
                assert decoder(topic, payload, now) == expected, (topic, payload[:60])
                outcomes.add(expected.reason if isinstance(expected, DeadLetter) else "row")
        return outcomes

    assert len(same()) >= 12  # rows and most dead-letter reasons are compared
    # The registry changes under the decoder: a new device, a device moved to another unit.
    registry._devices = {  # what reload()/refresh_ids() do: swap in a new dict
        "W-1": DeviceInfo("U-2", DeviceKind.WATER),
        "P-1": DeviceInfo("U-1", DeviceKind.PANEL),
        "NOPE": DeviceInfo("U-1", DeviceKind.WATER),
    }
    same()


# --- bulk histogram --------------------------------------------------------------------------
def test_bulk_histogram_exposes_what_prometheus_histogram_would() -> None:
    values = [0.0, 0.002, 0.0021, 0.05, 0.25, 0.2500001, 1.0, 299.0, 1e6, -1.0]
    ref_registry, bulk_registry = CollectorRegistry(), CollectorRegistry()
    ref = Histogram("lag_seconds", "x", buckets=LAG_BUCKETS, registry=ref_registry)
    for v in values:
        ref.observe(v)
    bulk = BulkHistogram("lag_seconds", "x", LAG_BUCKETS, bulk_registry)
    bulk.observe_many(values[:4])
    bulk.observe_many(values[4:])
    for le in [*(repr(b) for b in LAG_BUCKETS), "+Inf"]:
        labels = {"le": le}
        assert bulk_registry.get_sample_value("lag_seconds_bucket", labels) == (
            ref_registry.get_sample_value("lag_seconds_bucket", labels)
        ), le
    for sample in ("lag_seconds_count", "lag_seconds_sum"):
        assert bulk_registry.get_sample_value(sample) == pytest.approx(
            ref_registry.get_sample_value(sample)
        )


# --- acks belong to their connection ---------------------------------------------------------
def test_paho_acks_of_an_earlier_connection_are_dropped_not_sent() -> None:
    metrics = IngestMetrics()
    consumer = PahoConsumer(
        "mqtt://127.0.0.1:1",
        client_id="t",
        subscription="s/#",
        handler=lambda m, r: None,
        metrics=metrics,
        backoff=Backoff(0.1, 1),
        session_expiry_s=60,
        receive_maximum=10,
    )
    sent: list[int] = []
    # Record what would go to paho instead of a socket (no broker is involved here).
    consumer._client.ack = lambda mid, qos: sent.append(mid)  # type: ignore[method-assign,assignment,return-value]
    metrics.inflight.inc(4)
    consumer.generation = 3
    consumer.connected.set()
    consumer.ack([ack_token(2, 5), None, ack_token(3, 6), ack_token(3, 65535), ack_token(2, 6)])
    consumer._send_acks()
    assert sent == [6, 65535]
    assert (consumer.acks_sent, consumer.acks_dropped) == (2, 2)
    assert metrics.registry.get_sample_value("firewatch_ingest_inflight") == 0
    # Not connected: nothing is sent, everything is dropped.
    consumer.connected.clear()
    consumer.ack([ack_token(3, 7)])
    consumer._send_acks()
    assert sent == [6, 65535]
    assert consumer.acks_dropped == 3


# --- inbox -----------------------------------------------------------------------------------
def _items(prefix: str, n: int) -> list[Any]:
    return [(f"{prefix}{i}", i) for i in range(n)]


def _names(items: list[Any]) -> list[str]:
    return [name for name, _ in items]


def test_inbox_keeps_order_and_reports_the_oldest_arrival_of_what_it_hands_out() -> None:
    inbox = Inbox(limit=10)
    assert inbox.take(5, 0.0) == ([], 0.0)
    before = time.monotonic()
    inbox.put_many(_items("a", 3))
    middle = time.monotonic()
    inbox.put_many(_items("b", 3))
    items, oldest = inbox.take(2, 0.0)
    assert _names(items) == ["a0", "a1"]
    assert before <= oldest <= middle
    items, oldest = inbox.take(10, 0.0)
    assert _names(items) == ["a2", "b0", "b1", "b2"]
    assert before <= oldest <= middle  # a2 came with the first read
    inbox.put_many(_items("c", 1))
    _, oldest = inbox.take(10, 0.0)
    assert oldest >= middle
    assert len(inbox) == 0


def test_a_full_inbox_blocks_the_producer_until_the_writer_takes() -> None:
    inbox = Inbox(limit=2)
    inbox.put_many(_items("x", 2))
    done = threading.Event()

    def produce() -> None:
        inbox.put_many(_items("z", 1))
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    assert not done.wait(0.2)
    items, _ = inbox.take(1, 0.0)
    assert _names(items) == ["x0"]
    assert done.wait(5)
    assert _names(inbox.take(10, 0.0)[0]) == ["x1", "z0"]


def test_an_alarm_makes_its_batch_urgent_and_telemetry_does_not() -> None:
    from firewatch.core.rows import EventRow, TelemetryRow
    from firewatch.ingest.writer import WriteBatch

    now = datetime.now(UTC)
    tele = TelemetryRow("W", 1, now, now, 300.0, *([None] * 10))
    normal = EventRow("P", 1, now, now, "system_status", 1, 1, None, None, 1, [], None, None)
    fire = EventRow("P", 2, now, now, "component_status", 1, 1, 41, 1004, 3, ["fire"], None, None)
    for add_in_bulk in (False, True):
        batch = WriteBatch()
        items: list[tuple[Any, Any, str | None, bytes | None]] = [
            (tele, 1, None, None),
            (normal, 2, None, None),
        ]
        if add_in_bulk:
            batch.extend(items, time.monotonic())
        else:
            for item, ack, _topic, _payload in items:
                batch.add(item, ack)
        assert not batch.urgent
        if add_in_bulk:
            batch.extend([(fire, 3, None, None)], time.monotonic())
        else:
            batch.add(fire, 3)
        assert batch.urgent
        assert len(batch) == 3
