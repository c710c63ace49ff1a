"""The simulation engine: every device's behaviour merged into one time-ordered stream.

Deterministic: the same scenario, seed and start give byte-identical messages. The engine
assigns each device's ``seq`` (1, 2, …; 0 is the last will), stamps ``ts`` (simulated time
plus any clock-skew fault), encodes the JSON and turns connection drops into the will the
broker would publish. Sinks (``sinks.py``) decide where the stream goes.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from firewatch.core.contract import topic_for
from firewatch.core.domain import Channel
from firewatch.simulators.behaviour import make_behaviour
from firewatch.simulators.city import city_for, sim_devices
from firewatch.simulators.faults import labels_for, resolve_faults
from firewatch.simulators.model import Action, Emission, Fault, Intervals, Label, SimDevice, iso
from firewatch.simulators.realism import DeviceRealism, plan_maintenance
from firewatch.simulators.scenario import Scenario
from firewatch.storage.seed import CitySeed


@dataclass(frozen=True, slots=True)
class SimulatedMessage:
    """One message on the wire at simulated time ``t``.

    ``PUBLISH``: the device publishes ``payload`` on ``topic``. ``DROP``: the device's
    connection dies; ``payload`` is its last will, which the broker publishes on ``topic``.
    ``RECONNECT``: the device connects again with last will ``will`` and publishes
    ``payload`` (its online status).
    """

    t: float
    device: SimDevice
    topic: str
    payload: bytes
    action: Action = Action.PUBLISH
    will: bytes | None = None


def live_start(span_s: float, speedup: float, now: float) -> float:
    """Start time for a live run: simulated time never runs ahead of the wall clock and
    reaches it exactly at the end, so ingest's future-timestamp check never trips."""
    return now - span_s * (1 - 1 / speedup)


class Simulation:
    """A scenario made concrete: city, devices, resolved faults, labels and the stream."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        start: float,
        end: float | None,
        seed: int | None = None,
        units: int | None = None,
        root: str = "firewatch/v1",
    ) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.start = start
        self.end = end
        self.root = root
        self.city: CitySeed = city_for(scenario, units)
        self.devices: list[SimDevice] = sim_devices(self.city, scenario.connections)
        iv = scenario.intervals
        self.intervals = Intervals(iv.water, iv.shed, iv.panel_status, iv.status)
        horizon = end if end is not None else start + 7 * 86_400
        self.faults: list[Fault] = resolve_faults(
            scenario.faults, self.devices, random.Random(f"faults:{self.seed}"), start, horizon
        )
        self.labels: list[Label] = labels_for(self.faults, self.devices)
        #: planned maintenance windows (realism), labelled apart from the faults
        self.maintenance: list[Label] = []
        if scenario.realism is not None:
            self.maintenance = plan_maintenance(
                scenario.realism.maintenance,
                self.devices,
                random.Random(f"maintenance:{self.seed}"),
                start,
                horizon,
                [(f.device_id, f.start, f.end) for f in self.faults],
            )
        self._connected_at = {d.id: start for d in self.devices if d.own_connection}

    def will(self, device: SimDevice, connected_at: float) -> bytes:
        """The last-will payload a device sets when it connects (seq 0, connect time)."""
        return orjson.dumps(
            {"seq": 0, "ts": iso(connected_at), "state": "offline", "reason": "will"}
        )

    def initial_wills(self) -> dict[str, bytes]:
        """Will payloads of the own-connection devices as they first connect."""
        return {d.id: self.will(d, self.start) for d in self.devices if d.own_connection}

    def messages(self) -> Iterator[SimulatedMessage]:
        """The whole stream in time order (ties in a fixed order); ends at ``end``."""
        by_id = {d.id: d for d in self.devices}
        faults: dict[str, list[Fault]] = {}
        for f in self.faults:
            faults.setdefault(f.device_id, []).append(f)
        behaviours = [
            make_behaviour(
                d,
                random.Random(f"{self.seed}:{d.id}"),
                faults.get(d.id, []),
                self.intervals,
                self.start,
                realism=self._realism(d),
            )
            for d in self.devices
        ]
        steps = [(b.next_time(), i) for i, b in enumerate(behaviours)]
        heapq.heapify(steps)
        pending: list[tuple[float, int, Emission]] = []
        seqs = {d.id: 0 for d in self.devices}
        counter = 0
        end = self.end if self.end is not None else float("inf")
        while steps or pending:
            horizon = steps[0][0] if steps else float("inf")
            while pending and pending[0][0] <= horizon:
                _, _, em = heapq.heappop(pending)
                if em.t < end and em.lost:
                    seqs[em.device_id] += 1  # sent, so its number is used; nothing arrives
                elif em.t < end:
                    yield self._encode(em, by_id[em.device_id], seqs)
            if not steps:
                continue
            t, i = heapq.heappop(steps)
            if t >= end:
                continue  # this device is done; others may still have earlier steps
            for em in behaviours[i].step():
                counter += 1
                heapq.heappush(pending, (em.t, counter, em))
            heapq.heappush(steps, (behaviours[i].next_time(), i))

    def _realism(self, device: SimDevice) -> DeviceRealism | None:
        spec = self.scenario.realism
        if spec is None:
            return None  # no extra draws at all: the stream stays what it always was
        mine = [m for m in self.maintenance if m.device_id == device.id]
        return DeviceRealism(spec, device, random.Random(f"realism:{self.seed}:{device.id}"), mine)

    def _encode(self, em: Emission, device: SimDevice, seqs: dict[str, int]) -> SimulatedMessage:
        if em.action is Action.DROP:
            connected = self._connected_at.get(device.id, self.start)
            topic = topic_for(self.root, device.unit_id, device.id, Channel.STATUS)
            return SimulatedMessage(em.t, device, topic, self.will(device, connected), Action.DROP)
        if em.action is Action.RECONNECT:
            self._connected_at[device.id] = em.t
            seqs[device.id] += 1
            topic = topic_for(self.root, device.unit_id, device.id, Channel.STATUS)
            online = orjson.dumps(
                {"seq": seqs[device.id], "ts": iso(em.t + em.ts_offset_s), "state": "online"}
            )
            return SimulatedMessage(
                em.t, device, topic, online, Action.RECONNECT, self.will(device, em.t)
            )
        topic = topic_for(self.root, device.unit_id, device.id, em.channel)
        if em.raw is not None:
            return SimulatedMessage(em.t, device, topic, em.raw)
        seqs[device.id] += 1
        body = {"seq": seqs[device.id], "ts": iso(em.t + em.ts_offset_s), **(em.body or {})}
        return SimulatedMessage(em.t, device, topic, orjson.dumps(body))


def scenario_window(
    scenario: Scenario, *, live: bool, duration: float | None = None, now: float | None = None
) -> tuple[float, float | None]:
    """(start, end) in simulated Unix seconds for a run.

    Offline runs need a fixed start (or use ``now``) and a duration. Live runs with
    ``start = "auto"`` end at the wall clock's now (see :func:`live_start`).
    """
    span = duration if duration is not None else scenario.duration
    wall = now if now is not None else datetime.now(UTC).timestamp()
    if isinstance(scenario.start, datetime):
        start = scenario.start.timestamp()
    elif live and span is not None:
        start = live_start(span, scenario.speedup, wall)
    else:
        start = wall
    if not live and span is None:
        raise ValueError("an offline run needs a duration (scenario `duration` or --duration)")
    return start, (start + span if span is not None else None)
