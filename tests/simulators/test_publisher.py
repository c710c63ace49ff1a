"""The simple simulator against a real Mosquitto: every message it sends passes the server's
validator (:func:`firewatch.ingest.codec.decode`), seqs increase per device, the counts it
reports match what a subscriber saw, and values are deterministic for a seed."""

from __future__ import annotations

import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from firewatch.core.contract import PanelEvent
from firewatch.core.domain import Channel, DeviceKind
from firewatch.core.settings import Settings
from firewatch.ingest.codec import DeadLetter, DeviceInfo, Limits, decode
from firewatch.ingest.consumer import BrokerAddress
from firewatch.runtime.mosquitto import free_port
from firewatch.simulators import publisher
from firewatch.simulators.devices import EbikeShedModel, PanelModel, model_for
from firewatch.simulators.publisher import PublishResult, run_publisher
from firewatch.storage.seed import CitySeed, DeviceSeed, read_seed

SEED = 7
WAIT_S = 30.0  # generous deadline for conditions that normally hold within a second


class Received(NamedTuple):
    topic: str
    payload: bytes
    received_at: datetime


class Subscriber:
    """A separate MQTT 5 client subscribed (QoS 1) to everything under the topic root."""

    def __init__(self, url: str, root: str) -> None:
        addr = BrokerAddress.parse(url)
        self.messages: list[Received] = []
        self.cond = threading.Condition()
        self.subscribed = threading.Event()
        self._filter = f"{root}/#"
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.connect(addr.host, addr.port)
        self._client.loop_start()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.messages), timeout)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
        client.subscribe(self._filter, options=SubscribeOptions(qos=1))

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _m: int, _r: Any, _p: Any) -> None:
        self.subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), datetime.now(UTC)))
            self.cond.notify_all()


class Run:
    """``run_publisher`` in a background thread; ``join`` waits with a deadline."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.stop = threading.Event()
        self.result: PublishResult | None = None
        self.error: BaseException | None = None
        assert settings.mqtt_url
        url = settings.mqtt_url
        self._thread = threading.Thread(
            target=self._main, args=(settings, url, kwargs), name="simulator", daemon=True
        )
        self._thread.start()

    def _main(self, settings: Settings, url: str, kwargs: dict[str, Any]) -> None:
        try:
            self.result = run_publisher(settings, url, stop=self.stop, **kwargs)
        except BaseException as err:
            self.error = err

    def join(self, timeout: float = WAIT_S) -> PublishResult:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "run_publisher did not return in time"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@pytest.fixture
def sim_settings(tmp_path: Path, mqtt_url: str) -> Settings:
    return Settings(
        mqtt_url=mqtt_url, data_dir=tmp_path / "data", simulate_interval_s=0.2, simulate_seed=SEED
    )


@pytest.fixture
def subscriber(sim_settings: Settings) -> Iterator[Subscriber]:
    assert sim_settings.mqtt_url
    sub = Subscriber(sim_settings.mqtt_url, sim_settings.topic_root)
    assert sub.subscribed.wait(WAIT_S), "test subscriber did not subscribe"
    yield sub
    sub.close()


def _devices(city: CitySeed) -> dict[str, tuple[str, DeviceSeed]]:
    return {dev.id: (unit.id, dev) for unit in city.units for dev in unit.devices}


def _decode_all(settings: Settings, city: CitySeed, messages: list[Received]) -> list[Any]:
    devices = _devices(city)

    def lookup(device_id: str) -> DeviceInfo | None:
        found = devices.get(device_id)
        return DeviceInfo(found[0], found[1].kind) if found else None

    limits = Limits(
        max_payload_bytes=settings.max_payload_bytes,
        max_future=timedelta(seconds=settings.max_clock_skew_future_s),
        max_age=timedelta(seconds=settings.max_backlog_age_s),
    )
    rows = []
    for m in messages:
        row = decode(
            m.topic,
            m.payload,
            m.received_at,
            root=settings.topic_root,
            lookup=lookup,
            limits=limits,
        )
        assert not isinstance(row, DeadLetter), (row.reason, row.detail, m.payload)
        rows.append(row)
    return rows


def test_every_device_publishes_valid_ordered_messages(
    sim_settings: Settings, subscriber: Subscriber
) -> None:
    city = read_seed()
    result = Run(sim_settings, interval_s=0.2, duration_s=1.5).join()
    assert subscriber.wait_for(lambda ms: len(ms) >= result.total_published, WAIT_S)
    messages = list(subscriber.messages)
    rows = _decode_all(sim_settings, city, messages)

    devices = _devices(city)
    assert result.devices == len(devices)
    assert len(messages) == result.total_published  # nothing extra: no will was fired
    assert result.total_acknowledged == result.total_published
    seen = Counter(Channel(m.topic.rsplit("/", 1)[1]) for m in messages)
    assert seen == Counter(result.published)
    assert seen[Channel.STATUS] == 2 * len(devices)  # online + shutdown, per device
    assert "simulator published" in result.summary()

    by_device: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for m, row in zip(messages, rows, strict=True):
        body = orjson.loads(m.payload)
        assert body["seq"] == row.seq
        by_device[row.device_id].append((m.topic.rsplit("/", 1)[1], body))
    assert set(by_device) == set(devices)
    for device_id, msgs in by_device.items():
        seqs = [body["seq"] for _, body in msgs]
        assert seqs == list(range(1, len(seqs) + 1)), device_id
        assert msgs[0][1]["state"] == "online"
        assert msgs[0][1]["firmware"]
        assert (msgs[-1][1]["state"], msgs[-1][1]["reason"]) == ("offline", "shutdown")
        data = [body for channel, body in msgs if channel != "status"]
        assert len(data) >= 5, device_id  # ~7 reports in 1.5 s at 0.2 s
        dev = devices[device_id][1]
        if dev.kind is DeviceKind.EBIKE_SHED:
            rating = float(dev.metadata.get("port_rating_a", 3.0))
            for body in data:
                assert len(body["ports"]) == dev.metadata.get("ports", 8)
                assert all(0.0 <= p["current_a"] <= rating for p in body["ports"])
        elif dev.kind is DeviceKind.PANEL:
            assert any(body["type"] == "system_status" for body in data)
        else:
            assert all(250.0 <= body["pressure_kpa"] <= 700.0 for body in data)

    # Determinism: a fresh model with the same seed reproduces the first water report.
    water_id, (_, water) = next((k, v) for k, v in devices.items() if v[1].kind is DeviceKind.WATER)
    first = next(body for channel, body in by_device[water_id] if channel == "telemetry")
    ts = datetime.fromisoformat(first["ts"])
    [(channel, expected)] = model_for(water, SEED, 0.2).tick(ts)
    assert channel is Channel.TELEMETRY
    assert {k: first[k] for k in expected} == expected


def test_stop_event_ends_an_open_ended_run(sim_settings: Settings, subscriber: Subscriber) -> None:
    run = Run(sim_settings, interval_s=0.1, duration_s=None)
    assert subscriber.wait_for(lambda ms: len(ms) >= 40, WAIT_S)
    run.stop.set()
    result = run.join()
    assert subscriber.wait_for(lambda ms: len(ms) >= result.total_published, WAIT_S)
    last: dict[str, dict[str, Any]] = {}
    for m in subscriber.messages:
        last[m.topic.split("/")[-2]] = orjson.loads(m.payload)
    assert len(last) == result.devices
    assert all(body.get("reason") == "shutdown" for body in last.values())


def test_models_are_deterministic_per_seed_and_device() -> None:
    now = datetime(2024, 5, 1, 4, 0, tzinfo=UTC)
    devices = [d for _, d in _devices(read_seed()).values()]

    def first_ticks(seed: int) -> list[Any]:
        return [model_for(d, seed, 5.0).tick(now) for d in devices]

    assert first_ticks(SEED) == first_ticks(SEED)
    assert first_ticks(SEED) != first_ticks(SEED + 1)


def test_panel_alarm_is_followed_by_restore() -> None:
    device = DeviceSeed(id="P-1", kind=DeviceKind.PANEL)
    panel = PanelModel(device, SEED, 1.0, component_event_p=1.0)
    now = datetime.now(UTC)
    alarm, restore = panel.tick(now), panel.tick(now)
    events = [
        PanelEvent.model_validate_json(orjson.dumps({"seq": i, "ts": now.isoformat(), **body}))
        for i, (_, body) in enumerate(alarm + restore, start=1)
    ]
    system, component, system_after, restored = events
    assert component.status & 0b111 in (0b011, 0b101)  # normal + fire, or normal + fault
    assert system.status == component.status  # the panel's word shows the same flag
    assert (restored.component_addr, restored.status) == (component.component_addr, 1)
    assert system_after.status == 1


def test_charging_current_never_exceeds_port_rating() -> None:
    device = DeviceSeed(
        id="E-1", kind=DeviceKind.EBIKE_SHED, metadata={"ports": 4, "port_rating_a": 1.5}
    )
    shed = EbikeShedModel(device, SEED, 60.0)
    now = datetime.now(UTC)
    for _ in range(50):
        [(_, body)] = shed.tick(now)
        assert [p["port"] for p in body["ports"]] == [1, 2, 3, 4]
        assert all(p["current_a"] <= 1.5 for p in body["ports"])
        assert all(p["charging"] or p["current_a"] == 0.0 for p in body["ports"])


def test_unreachable_broker_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(publisher, "CONNECT_TIMEOUT_S", 0.5)
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens here
    settings = Settings(mqtt_url=url, data_dir=tmp_path)
    with pytest.raises(publisher.PublisherError, match="did not connect"):
        run_publisher(settings, url, duration_s=1.0, stop=threading.Event())
