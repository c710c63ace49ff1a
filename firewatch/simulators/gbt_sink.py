"""Simulated panels that are legacy GB/T 26875.3 devices: their messages go over TCP to the
GB/T gateway (``firewatch gateway``) instead of MQTT.

``firewatch simulate --gbt HOST:PORT``: every panel with a GB/T address connects to the
gateway as a UITD (:class:`~firewatch.simulators.gbt_device.GbtDevice`); everything else
is published over MQTT as before (:func:`~firewatch.simulators.sinks.publish_mqtt` hands
these panels' messages to a :class:`GbtFleet`, in the stream's order and pace). Which
panels, with which address and profile (:func:`gbt_panels`): the scenario's
``[connections] gbt_panels`` share, addressed by :func:`demo_gbt_address`; without it, the
registry's (``devices.gbt_address``, ``gbt_profile``).

A connection drop (``offline_with_will``) closes the device's TCP connection abruptly and
the reconnect opens it again; its online status becomes a type-21 UITD status.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from firewatch.core.domain import DeviceKind
from firewatch.core.gbt_frame import parse_address
from firewatch.core.gbt_profiles import STANDARD, Profile, load_profiles
from firewatch.core.settings import Settings
from firewatch.simulators.engine import SimulatedMessage, Simulation
from firewatch.simulators.gbt_device import (
    DeviceStats,
    GbtDevice,
    demo_gbt_address,
    is_demo_gbt_panel,
    objects_of,
)
from firewatch.simulators.model import Action
from firewatch.storage.seed import CitySeed, DeviceSeed

_OFFLINE, _ONLINE = "offline", "online"


@dataclass(frozen=True, slots=True)
class GbtPanel:
    """A panel's GB/T identity: its address and its vendor profile."""

    address: int
    profile: Profile = STANDARD


@dataclass
class FleetResult:
    """What the GB/T devices did, summed over the fleet."""

    devices: int = 0
    messages: int = 0  # simulator messages handed to the fleet
    delivered: int = 0  # of them, sent and confirmed
    skipped: int = 0  # of them, with no GB/T object (a drop, unparseable, nothing to send)
    undelivered: int = 0  # denied, or still queued or unconfirmed when the fleet closed
    stats: DeviceStats = field(default_factory=DeviceStats)

    def summary(self) -> str:
        s = self.stats
        return (
            f"gb/t: {self.devices} devices, {self.messages} messages ({self.skipped} without "
            f"a GB/T object, {self.undelivered} undelivered): {s.frames_sent} frames "
            f"({s.resends} resent), {s.confirmed} confirmed, {s.denied} denied; "
            f"{s.connections} connections; {s.clock_syncs} clock syncs, {s.duty_checks} duty "
            f"checks, {s.duty_answers} answered"
        )


def parse_target(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too); ``ValueError`` otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--gbt {text!r}: use HOST:PORT")
    return host.strip("[]"), int(port)


def gbt_panels(sim: Simulation, settings: Settings) -> dict[str, GbtPanel]:
    """device id -> GB/T identity of the simulation's panels that are GB/T devices.

    With ``[connections] gbt_panels`` > 0 in the scenario: that share of the panels
    (:func:`is_demo_gbt_panel`), addressed by :func:`demo_gbt_address`, with the profile
    ``gbt_profile``; the registry must have the same addresses for the gateway to accept
    them. Otherwise the registry's panels with an address (the database of ``settings``).
    Raises ``ValueError`` for an unknown profile name in the scenario.
    """
    profiles = load_profiles(settings.gateway_profiles_file)
    spec = sim.scenario.connections
    panels = [d for d in sim.devices if d.kind is DeviceKind.PANEL]
    if spec.gbt_panels > 0:
        if spec.gbt_profile not in profiles:
            raise ValueError(f"gbt_profile {spec.gbt_profile!r}: not one of {sorted(profiles)}")
        profile = profiles[spec.gbt_profile]
        return {
            d.id: GbtPanel(parse_address(demo_gbt_address(d.id)), profile)
            for d in panels
            if is_demo_gbt_panel(d.id, spec.gbt_panels)
        }
    import psycopg

    from firewatch.runtime.postgres import resolve_database_url
    from firewatch.storage.gateway import gateway_directory

    with psycopg.connect(resolve_database_url(settings), autocommit=True) as conn:
        directory = gateway_directory(conn)
    ids = {d.id for d in panels}
    return {
        entry.device_id: GbtPanel(address, profiles.get(entry.profile, STANDARD))
        for address, entry in directory.items()
        if entry.device_id in ids and not entry.decommissioned
    }


def gbt_city(sim: Simulation) -> CitySeed:
    """The simulation's city with the GB/T addresses of the scenario's ``gbt_panels``
    share (:func:`gbt_panels`'s first case) on its panels, for ``simulate --register``:
    registered like this, the gateway knows them. Unchanged without ``gbt_panels``."""
    spec = sim.scenario.connections
    if spec.gbt_panels <= 0:
        return sim.city

    def device(d: DeviceSeed) -> DeviceSeed:
        if d.kind is not DeviceKind.PANEL or not is_demo_gbt_panel(d.id, spec.gbt_panels):
            return d
        return d.model_copy(
            update={"gbt_address": demo_gbt_address(d.id), "gbt_profile": spec.gbt_profile}
        )

    units = [
        u.model_copy(update={"devices": [device(d) for d in u.devices]}) for u in sim.city.units
    ]
    return sim.city.model_copy(update={"units": units})


class GbtFleet:
    """The GB/T devices of a simulation, on an asyncio loop of their own (a thread).

    A :class:`~firewatch.simulators.sinks.Diverter`: :meth:`takes` names its devices and
    :meth:`send` queues a message for its device (thread-safe, never blocks); each device
    sends its messages in order, each once confirmed. ``device_options`` go to every
    :class:`GbtDevice` (e.g. ``duty_answer_probability``)."""

    def __init__(
        self,
        host: str,
        port: int,
        panels: Mapping[str, GbtPanel],
        *,
        seed: int = 1,
        **device_options: Any,
    ) -> None:
        self.host, self.port = host, port
        self.panels = dict(panels)
        self.seed = seed
        self.device_options = device_options
        self.devices: dict[str, GbtDevice] = {}
        self.result = FleetResult(devices=len(self.panels))
        self._queues: dict[str, asyncio.Queue[SimulatedMessage]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="gbt-fleet", daemon=True)

    def takes(self, device_id: str) -> bool:
        return device_id in self.panels

    def start(self, connect_timeout: float = 30.0) -> GbtFleet:
        """Start the devices; returns once all are connected or ``connect_timeout`` passed
        (those not connected keep trying)."""
        self._thread.start()
        self._ready.wait()
        future = asyncio.run_coroutine_threadsafe(self._connected(connect_timeout), self._loop)
        future.result()
        return self

    def send(self, m: SimulatedMessage) -> None:
        self.result.messages += 1
        self._loop.call_soon_threadsafe(self._queues[m.device.id].put_nowait, m)

    def close(self, timeout: float = 10.0) -> FleetResult:
        """Wait up to ``timeout`` s for what is queued to be confirmed, then close."""
        if not self._thread.is_alive():
            return self.result
        future = asyncio.run_coroutine_threadsafe(self._shutdown(timeout), self._loop)
        future.result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        return self.result

    def __enter__(self) -> GbtFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._begin)
        self._loop.run_forever()

    def _begin(self) -> None:
        for i, (device_id, panel) in enumerate(sorted(self.panels.items())):
            device = GbtDevice(
                panel.address,
                panel.profile,
                self.host,
                self.port,
                seed=f"{self.seed}:{device_id}",
                **self.device_options,
            )
            self.devices[device_id] = device
            self._queues[device_id] = asyncio.Queue()
            device.start()
            self._workers.append(asyncio.create_task(self._work(device_id), name=f"gbt-{i}"))
        self._ready.set()

    async def _connected(self, within_s: float) -> None:
        await asyncio.gather(*(d.wait_connected(within_s) for d in self.devices.values()))

    async def _work(self, device_id: str) -> None:
        device, queue = self.devices[device_id], self._queues[device_id]
        while True:
            m = await queue.get()
            try:
                await self._deliver(device, m)
            finally:
                queue.task_done()

    async def _deliver(self, device: GbtDevice, m: SimulatedMessage) -> None:
        if m.action is Action.DROP:
            device.go_offline()
            self.result.skipped += 1  # the connection dies; the gateway sees it
            return
        if m.action is Action.RECONNECT:
            device.go_online()
        try:
            body = orjson.loads(m.payload)
        except orjson.JSONDecodeError:
            body = None
        channel = m.topic.rsplit("/", 1)[-1]
        objects = objects_of(channel, body, device.profile) if isinstance(body, dict) else []
        if not objects:
            self.result.skipped += 1
            return
        if await device.send(objects):
            self.result.delivered += 1

    async def _shutdown(self, grace_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(q.join() for q in self._queues.values())), grace_s
            )
        for task in self._workers:
            task.cancel()
        r = self.result
        r.undelivered = r.messages - r.delivered - r.skipped
        for device in self.devices.values():
            await device.close()
        total = DeviceStats()
        for device in self.devices.values():
            for name, value in vars(device.stats).items():
                setattr(total, name, getattr(total, name) + value)
        self.result.stats = total


@contextlib.contextmanager
def gbt_divert(
    settings: Settings, sim: Simulation, target: str | None, **device_options: Any
) -> Iterator[GbtFleet | None]:
    """For ``firewatch simulate --gbt HOST:PORT``: the running fleet of the simulation's
    GB/T panels (``None`` without a target); prints its summary when done. Raises
    ``ValueError`` for a bad target or when no panel has a GB/T address."""
    if target is None:
        yield None
        return
    host, port = parse_target(target)
    panels = gbt_panels(sim, settings)
    if not panels:
        raise ValueError(
            "--gbt: no simulated panel has a GB/T address (set [connections] gbt_panels in "
            "the scenario, or give panels an address in the registry)"
        )
    fleet = GbtFleet(host, port, panels, seed=sim.seed, **device_options).start()
    try:
        yield fleet
    finally:
        print(fleet.close().summary())
