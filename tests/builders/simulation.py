"""Simulated devices (one of each behaviour, in unit ``U-1``) and their emissions over a
stretch of simulated time, driven directly: no engine, no broker."""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from firewatch.core.contract import MODELS
from firewatch.core.domain import Channel, DeviceKind
from firewatch.simulators.behaviour import make_behaviour
from firewatch.simulators.model import Emission, Fault, Intervals, SimDevice, iso

#: 2026-11-20 00:00 local time (UTC+8): the standard scenario's start.
START = datetime(2026, 11, 20, tzinfo=timezone(timedelta(hours=8))).timestamp()
H = 3600.0
STATIC = 400.0

WATER = SimDevice("D-1-W1", "U-1", DeviceKind.WATER, {"role": "pressure", "static_kpa": STATIC})
TANK = SimDevice(
    "D-1-T1", "U-1", DeviceKind.WATER, {"role": "tank", "static_kpa": 300.0, "tank_capacity_m": 5.0}
)
ROOM = SimDevice("D-1-R1", "U-1", DeviceKind.WATER, {"role": "pump_room"})
SHED = SimDevice("D-1-E1", "U-1", DeviceKind.EBIKE_SHED, {"ports": 12, "port_rating_a": 3.0})
PANEL = SimDevice("D-1-P1", "U-1", DeviceKind.PANEL, {}, own_connection=True)
DEVICES = [WATER, TANK, ROOM, SHED, PANEL]


def run(
    device: SimDevice,
    faults: list[Fault] | None = None,
    *,
    hours: float = 48.0,
    seed: int = 1,
    intervals: Intervals | None = None,
) -> list[Emission]:
    """Every emission of ``device`` over ``[START, START + hours)``."""
    rng = random.Random(f"{seed}:{device.id}")
    b = make_behaviour(device, rng, faults or [], intervals or Intervals(), START)
    out: list[Emission] = []
    last = START
    while b.next_time() < START + hours * H:
        t = b.next_time()
        assert t >= last, "next_time never goes back"
        got = b.step()
        assert all(em.t == t for em in got)
        out += got
        last = t
    return out


def check_body(device: SimDevice, em: Emission, seq: int = 1) -> Any:
    """Validate a body with seq/ts added against the contract, as ingest parses JSON."""
    assert em.body is not None
    assert em.raw is None
    assert "seq" not in em.body
    assert "ts" not in em.body
    model = MODELS[(device.kind, em.channel)]
    payload = orjson.dumps({"seq": seq, "ts": iso(em.t + em.ts_offset_s), **em.body})
    return model.model_validate_json(payload)


def telemetry(ems: list[Emission], lo: float = 0.0, hi: float = float("inf")) -> list[Emission]:
    return [e for e in ems if e.channel is Channel.TELEMETRY and e.body and lo <= e.t < hi]


def events(ems: list[Emission], lo: float = 0.0, hi: float = float("inf")) -> list[Emission]:
    return [e for e in ems if e.channel is Channel.EVENT and e.body and lo <= e.t < hi]


def jockey_starts(ems: list[Emission]) -> int:
    running = [bool(e.body and e.body["jockey_running"]) for e in telemetry(ems)]
    return sum(1 for a, b in itertools.pairwise(running) if b and not a)
