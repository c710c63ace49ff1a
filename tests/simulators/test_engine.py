"""The simulation engine and its sinks: determinism, contract conformance, labels,
offline streams, and live MQTT with gateways and real last wills."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firewatch.core.broker import BrokerAddress
from firewatch.ingest.codec import DeadLetter, DeviceInfo, Limits, Reason, decode
from firewatch.simulators.city import generate_city, units_for_devices
from firewatch.simulators.engine import Simulation, live_start, scenario_window
from firewatch.simulators.model import Action
from firewatch.simulators.scenario import FaultSpec, MixSpec, Scenario, load_scenario
from firewatch.simulators.sinks import publish_mqtt, read_stream, write_labels, write_stream
from tests.helpers import wait_until

STANDARD = "builtin:standard"


def _small(hours: float = 6, seed: int = 7, units: int = 6) -> Simulation:
    sc = load_scenario(STANDARD)
    start, _ = scenario_window(sc, live=False)

    def end(f: FaultSpec) -> float:  # a duration may be a [low, high] range: its upper end
        span = f.duration or 0.0
        return (f.at or 0.0) + (span if isinstance(span, float | int) else max(span))

    faults = [f for f in sc.faults if end(f) <= hours * 3600]
    sc = sc.model_copy(update={"faults": faults})
    return Simulation(sc, start=start, end=start + hours * 3600, seed=seed, units=units)


def test_same_seed_same_stream_and_another_seed_differs() -> None:
    a = [(m.t, m.topic, m.payload) for m in _small(seed=11).messages()]
    b = [(m.t, m.topic, m.payload) for m in _small(seed=11).messages()]
    c = [(m.t, m.topic, m.payload) for m in _small(seed=12).messages()]
    assert len(a) > 1000
    assert a == b
    assert a != c


def test_stream_is_time_ordered_with_increasing_seq_per_device() -> None:
    sim = _small()
    last_t = sim.start
    last_seq: dict[str, int] = {}
    for m in sim.messages():
        assert sim.start <= m.t < sim.start + 6 * 3600
        assert m.t >= last_t
        last_t = m.t
        if m.action is Action.DROP:
            continue
        try:
            seq = orjson.loads(m.payload)["seq"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue  # deliberately malformed
        assert seq > last_seq.get(m.device.id, 0)
        last_seq[m.device.id] = seq


def test_every_message_passes_ingest_validation_except_labelled_faults(tmp_path: Path) -> None:
    sc = load_scenario(STANDARD)
    start, end = scenario_window(sc, live=False)
    sim = Simulation(sc, start=start, end=end, units=12)
    registry = {d.id: DeviceInfo(d.unit_id, d.kind) for d in sim.devices}
    limits = Limits(65_536, timedelta(seconds=300), timedelta(days=7), timedelta(days=400))
    labelled = {(lb.device_id, lb.fault): (lb.start, lb.end) for lb in sim.labels}
    reasons: Counter[str] = Counter()
    total = 0
    for m in sim.messages():
        total += 1
        # Validate as if received at the simulated time (live mode keeps ts <= wall clock).
        received = datetime.fromtimestamp(m.t, UTC)
        out = decode(
            m.topic, m.payload, received, root="firewatch/v1", lookup=registry.get, limits=limits
        )
        if isinstance(out, DeadLetter):
            reasons[out.reason.value] += 1
            window = [
                w
                for (dev, fault), w in labelled.items()
                if dev == m.device.id and fault in ("malformed_payload", "clock_skew")
            ]
            assert any(s <= m.t < e for s, e in window), (m.topic, m.payload, out.detail)
    assert total > 10_000
    assert reasons, "the malformed-payload fault must produce dead letters"
    assert set(reasons) <= {r.value for r in Reason}


def test_labels_cover_every_fault_of_the_standard_scenario(tmp_path: Path) -> None:
    sc = load_scenario(STANDARD)
    start, end = scenario_window(sc, live=False)
    assert end is not None
    sim = Simulation(sc, start=start, end=end)
    expected: Counter[str] = Counter()
    for f in sc.faults:
        expected[f.type] += f.count
    got = Counter(lb.fault for lb in sim.labels)
    assert got == expected
    path = tmp_path / "labels.jsonl"
    assert write_labels(sim.labels, path) == len(sim.labels)
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    kinds = {d.id: d.kind.value for d in sim.devices}
    for row in rows:
        assert set(row) >= {"device_id", "fault", "start", "end", "severity"}
        assert kinds[row["device_id"]] == row["kind"]
        s, e = datetime.fromisoformat(row["start"]), datetime.fromisoformat(row["end"])
        assert start <= s.timestamp() < e.timestamp() <= end


def test_offline_stream_round_trips_through_a_file(tmp_path: Path) -> None:
    sim = _small(hours=2)
    out = tmp_path / "stream.jsonl"
    result = write_stream(sim, out)
    back = list(read_stream(out))
    assert len(back) == result.messages > 0
    assert [p for _, _, p in back] == [m.payload for m in _small(hours=2).messages()]


def test_generated_city_is_deterministic_and_sized_by_devices() -> None:
    mix = MixSpec()
    a, b = generate_city(50, 3, mix, 5), generate_city(50, 3, mix, 5)
    assert a == b
    assert len({u.street for u in a.units}) > 6
    assert {u.building_class for u in a.units} <= {
        "class1_highrise",
        "class1_highrise_over_100m",
        "class2_highrise",
        "multistorey",
    }
    sc = Scenario()
    units = units_for_devices(sc, 2000)
    sim = Simulation(sc, start=0.0, end=60.0, units=units)
    assert 2000 <= len(sim.devices) < 2200


def test_live_start_keeps_simulated_time_behind_the_wall_clock() -> None:
    now = 1_800_000_000.0
    start = live_start(86_400, 1440, now)
    # The run starts at wall time `now`; at wall time w it is start + (w - now) * speedup.
    for frac in (0.0, 0.3, 0.99, 1.0):
        w = now + frac * 86_400 / 1440
        assert start + (w - now) * 1440 <= w + 1e-6
    assert start + 86_400 == pytest.approx(now + 86_400 / 1440)  # meets the clock at the end


def test_offline_run_without_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a duration"):
        scenario_window(Scenario(), live=False)


def _subscribe_all(url: str) -> tuple[mqtt.Client, list[tuple[str, bytes]]]:
    addr = BrokerAddress.parse(url)
    got: list[tuple[str, bytes]] = []
    ready = threading.Event()
    sub = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"obs-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
    )
    sub.on_message = lambda _c, _u, msg: got.append((msg.topic, bytes(msg.payload)))
    sub.on_subscribe = lambda *_a: ready.set()
    sub.on_connect = lambda c, *_a: c.subscribe("firewatch/v1/#", qos=1)
    sub.connect(addr.host, addr.port)
    sub.loop_start()
    assert ready.wait(10)
    return sub, got


def test_live_run_over_gateways_with_a_real_last_will(mqtt_url: str) -> None:
    sc = Scenario(
        name="will",
        start="auto",
        duration=1800,
        speedup=900,
        mix=MixSpec(water_points=1, shed_fraction=1.0, ports_per_shed=4),
        faults=[FaultSpec(type="offline_with_will", device="random:panel", at=600, duration=600)],
    )
    sc.connections.devices_per_gateway = 5
    start, end = scenario_window(sc, live=True)
    sim = Simulation(sc, start=start, end=end, units=6)
    panel = sim.labels[0].device_id
    expected = [m for m in Simulation(sc, start=start, end=end, units=6).messages()]
    sub, got = _subscribe_all(mqtt_url)
    try:
        result = publish_mqtt(sim, mqtt_url, threading.Event(), sc.speedup)
        wait_until(lambda: len(got) >= len(expected), 20, "every message at the subscriber")
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert result.connections >= 6 + 2  # own panel connections plus shared gateways
    assert result.wills == 1
    status = f"firewatch/v1/{sim.labels[0].unit_id}/{panel}/status"
    wills = [orjson.loads(p) for t, p in got if t == status and b'"will"' in p]
    assert len(wills) == 1, "the broker published the dropped panel's last will"
    assert wills[0]["state"] == "offline"
    assert wills[0]["seq"] == 0
    published = Counter(m.topic for m in expected if m.action is not Action.DROP)
    seen = Counter(t for t, p in got if b'"will"' not in p)
    assert seen == published
