"""``firewatch simulate --gbt``: the GB/T panels of a simulation go to a (test-local) center
over TCP, the other devices to a real broker as before; which panels, from the scenario's
share or from the registry."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from firewatch.core.domain import DeviceKind
from firewatch.core.gbt_frame import parse_address
from firewatch.core.settings import Settings
from firewatch.simulators.engine import Simulation
from firewatch.simulators.gbt_device import demo_gbt_address, is_demo_gbt_panel
from firewatch.simulators.gbt_sink import FleetResult, GbtFleet, gbt_city, gbt_panels
from firewatch.simulators.scenario import (
    ConnectionSpec,
    FaultSpec,
    IntervalsSpec,
    MixSpec,
    Scenario,
)
from firewatch.simulators.sinks import SinkResult, publish_mqtt
from firewatch.storage.gateway import gateway_directory
from firewatch.storage.seed import load_seed
from tests.helpers import publisher
from tests.simulators.gbt_center import Center

pytestmark = pytest.mark.anyio
START = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def scenario(share: float, **extra: Any) -> Scenario:
    return Scenario(
        name="gbt",
        start=START,
        duration=3600,
        speedup=36_000,  # 0.1 s of wall time
        mix=MixSpec(water_points=1, tank_fraction=0, pump_room_fraction=0, shed_fraction=0),
        intervals=IntervalsSpec(water=60, panel_status=300, status=1800),
        connections=ConnectionSpec(gbt_panels=share),
        **extra,
    )


def simulation(sc: Scenario, units: int = 3) -> Simulation:
    return Simulation(sc, start=START.timestamp(), end=START.timestamp() + 3600, units=units)


async def test_gbt_panels_go_to_the_gateway_the_rest_to_the_broker(
    mqtt_url: str, tmp_path: Path
) -> None:
    sc = scenario(
        1.0,
        faults=[FaultSpec(type="offline_with_will", device="random:panel", at=1200, duration=600)],
    )
    panels = {d.id for d in simulation(sc).devices if d.kind is DeviceKind.PANEL}
    twin = list(simulation(sc).messages())
    panel_messages = sum(m.device.id in panels for m in twin)
    sim = simulation(sc)
    mapping = gbt_panels(sim, Settings(data_dir=tmp_path, database_url=None, mqtt_url=None))
    assert set(mapping) == panels

    topics: list[str] = []
    subscribed = threading.Event()
    async with Center() as center, _subscriber(mqtt_url, topics, subscribed):
        assert await asyncio.to_thread(subscribed.wait, 10)

        def run() -> tuple[SinkResult, FleetResult]:
            fleet = GbtFleet("127.0.0.1", center.port, mapping, backoff_s=(0.05, 0.2)).start()
            try:
                return publish_mqtt(sim, mqtt_url, threading.Event(), sc.speedup, divert=fleet), (
                    fleet.close(30)
                )
            except BaseException:
                fleet.close(0)
                raise

        result, fleet = await asyncio.to_thread(run)
        frames = [center.frames.get_nowait() for _ in range(center.frames.qsize())]

    assert result.messages == len(twin)
    assert result.acknowledged == len(twin) - panel_messages  # the water points, over MQTT
    assert not any(t.split("/")[3] in panels for t in topics)
    assert fleet.messages == panel_messages
    assert (fleet.undelivered, fleet.stats.denied) == (0, 0)
    assert fleet.delivered == fleet.stats.confirmed == len(frames) > 0
    assert result.reconnects == 1
    assert fleet.skipped == 1  # the drop: the connection dies, nothing is sent
    assert fleet.stats.connections == len(panels) + 1  # the dropped one came back
    addresses = {parse_address(demo_gbt_address(p)) for p in panels}
    assert {f.source for f in frames} == addresses
    assert {f.adu[0] for f in frames} == {1, 21}  # system status, UITD status (no alarms)


@contextlib.asynccontextmanager
async def _subscriber(
    url: str, topics: list[str], subscribed: threading.Event
) -> AsyncIterator[None]:
    """Something subscribed to every device topic: the broker routes (and acknowledges) the
    simulator's publishes only when someone listens."""
    with publisher(url) as client:
        client.on_message = lambda _c, _u, msg: topics.append(msg.topic)
        client.on_subscribe = lambda *_a: subscribed.set()
        client.subscribe("firewatch/v1/#", qos=1)
        yield


def test_the_scenario_share_is_registered_and_read_back_from_the_registry(
    settings: Settings,
) -> None:
    sim = simulation(scenario(0.5), units=40)
    chosen = gbt_panels(sim, settings)
    all_panels = [d.id for d in sim.devices if d.kind is DeviceKind.PANEL]
    assert set(chosen) == {p for p in all_panels if is_demo_gbt_panel(p, 0.5)}
    assert 0 < len(chosen) < len(all_panels)
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        load_seed(conn, gbt_city(sim))
        directory = gateway_directory(conn)
    assert {e.device_id: a for a, e in directory.items()} == {
        d: p.address for d, p in chosen.items()
    }
    # No share in the scenario: the registry says which panels are GB/T devices.
    from_registry = gbt_panels(simulation(scenario(0.0), units=40), settings)
    assert from_registry == chosen
    assert gbt_city(simulation(scenario(0.0), units=40)) == simulation(scenario(0.0), 40).city
