"""Value models for simulated devices: plausible, deterministic readings per device kind.

Each model owns a ``random.Random`` seeded from ``(seed, device id)``, so the same seed and
the same sequence of ``tick(now)`` calls give the same values in every process. Models
return payload *bodies* (plain dicts without ``seq`` and ``ts``); the publisher adds those.
Every body, completed with ``seq``/``ts``, validates against the contract model for its
kind and channel (:data:`firewatch.core.contract.MODELS`).

Models are not thread-safe except :meth:`DeviceModel.online_status`, which uses its own
random stream so that a reconnect does not shift the telemetry values.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from firewatch.core.domain import Channel, DeviceKind, PanelEventType
from firewatch.storage.seed import DeviceSeed

Body = dict[str, Any]
#: Local time of the demo city (UTC+8) drives the daily cycles.
LOCAL_UTC_OFFSET_H = 8.0


def _daily(now: datetime, peak_hour_local: float) -> float:
    """A daily cosine in [-1, 1] that is 1 at ``peak_hour_local`` (city time)."""
    hours = now.hour + now.minute / 60 + now.second / 3600 + LOCAL_UTC_OFFSET_H
    return math.cos(2 * math.pi * (hours - peak_hour_local) / 24)


def _hazard(interval_s: float, mean_s: float) -> float:
    """Probability that an event with mean waiting time ``mean_s`` happens within a tick."""
    return 1.0 - math.exp(-interval_s / mean_s)


class DeviceModel(ABC):
    """Base class: one simulated device's state and random streams."""

    kind: DeviceKind

    def __init__(self, device: DeviceSeed, seed: int, interval_s: float) -> None:
        self.device_id = device.id
        self.interval_s = interval_s
        self.rng = random.Random(f"{seed}:{device.id}")
        house = random.Random(f"{seed}:{device.id}:status")
        self.firmware = f"{device.vendor or 'sim'}-{house.randint(1, 3)}.{house.randint(0, 9)}"
        self.battery_pct = round(house.uniform(60.0, 100.0), 1)
        self.rssi_dbm = float(house.randint(-95, -45))

    @abstractmethod
    def tick(self, now: datetime) -> list[tuple[Channel, Body]]:
        """Advance one report interval; return the messages (channel, body) to publish."""

    def online_status(self) -> Body:
        """Body of the ``status`` message sent after every (re)connect."""
        return {
            "state": "online",
            "firmware": self.firmware,
            "battery_pct": self.battery_pct,
            "rssi_dbm": self.rssi_dbm,
        }


class WaterModel(DeviceModel):
    """Fire-water pressure point: pressure with a daily demand dip, tank level, pump room."""

    kind = DeviceKind.WATER

    def __init__(self, device: DeviceSeed, seed: int, interval_s: float) -> None:
        super().__init__(device, seed, interval_s)
        rng = self.rng
        base = rng.uniform(300.0, 600.0)
        design = device.metadata.get("design_kpa")
        if isinstance(design, int | float) and design > 0:
            base = min(base, 0.8 * float(design))  # stay well below the design pressure
        self.base_kpa = base
        self.level_base_m = rng.uniform(3.0, 5.0)
        self.level_m = self.level_base_m
        self.room_base_c = rng.uniform(10.0, 20.0)
        self.jockey_ticks = 0
        self.pump_ticks = 0

    def tick(self, now: datetime) -> list[tuple[Channel, Body]]:
        rng = self.rng
        if self.jockey_ticks > 0:
            self.jockey_ticks -= 1
        elif rng.random() < 0.05:
            self.jockey_ticks = rng.randint(1, 3)
        if self.pump_ticks > 0:
            self.pump_ticks -= 1
        elif rng.random() < 0.001:
            self.pump_ticks = rng.randint(1, 2)
        # Demand peaks around 12:00 city time, when pressure is lowest.
        pressure = self.base_kpa * (1.0 - 0.05 * _daily(now, 12.0)) + rng.gauss(0.0, 2.0)
        if self.jockey_ticks:
            pressure += 15.0
        low, high = self.level_base_m - 0.3, self.level_base_m + 0.3
        self.level_m = min(max(self.level_m + rng.gauss(0.0, 0.005), low), high)
        room = self.room_base_c + 2.0 * _daily(now, 15.0) + rng.gauss(0.0, 0.1)
        return [(Channel.TELEMETRY, {
            "pressure_kpa": round(max(pressure, 0.0), 1),
            "level_m": round(self.level_m, 3),
            "pump_running": self.pump_ticks > 0,
            "jockey_running": self.jockey_ticks > 0,
            "room_temp_c": round(room, 1),
        })]  # fmt: skip


@dataclass(slots=True)
class _Port:
    number: int
    charging: bool
    current_a: float
    temp_rise_c: float  # above ambient


class EbikeShedModel(DeviceModel):
    """Charging shed: ports start and stop charging (mean session 10 min, idle 20 min);
    a charging port draws 2-3 A (never above ``port_rating_a``) and runs a few °C warm."""

    kind = DeviceKind.EBIKE_SHED
    MEAN_CHARGE_S = 600.0
    MEAN_IDLE_S = 1200.0

    def __init__(self, device: DeviceSeed, seed: int, interval_s: float) -> None:
        super().__init__(device, seed, interval_s)
        rng = self.rng
        self.rating_a = float(device.metadata.get("port_rating_a", 3.0))
        count = int(device.metadata.get("ports", 8))
        self.ambient_base_c = rng.uniform(18.0, 26.0)
        self.ports = [_Port(n, False, 0.0, rng.uniform(0.5, 1.5)) for n in range(1, count + 1)]
        for port in self.ports:
            if rng.random() < 1 / 3:
                self._start(port)

    def _start(self, port: _Port) -> None:
        port.charging = True
        port.current_a = self.rng.uniform(2.0, 3.0)

    def tick(self, now: datetime) -> list[tuple[Channel, Body]]:
        rng = self.rng
        p_stop = _hazard(self.interval_s, self.MEAN_CHARGE_S)
        p_start = _hazard(self.interval_s, self.MEAN_IDLE_S)
        ambient = self.ambient_base_c + 4.0 * _daily(now, 15.0) + rng.gauss(0.0, 0.1)
        ports: list[Body] = []
        for port in self.ports:
            if port.charging and rng.random() < p_stop:
                port.charging = False
            elif not port.charging and rng.random() < p_start:
                self._start(port)
            target_rise = rng.uniform(3.0, 6.0) if port.charging else 1.0
            port.temp_rise_c += 0.3 * (target_rise - port.temp_rise_c)
            current = port.current_a + rng.gauss(0.0, 0.05) if port.charging else 0.0
            ports.append({
                "port": port.number,
                "temp_c": round(ambient + port.temp_rise_c, 1),
                "current_a": round(min(max(current, 0.0), self.rating_a), 2),
                "charging": port.charging,
            })  # fmt: skip
        body = {"ambient_c": round(ambient, 1), "smoke": False, "ports": ports}
        return [(Channel.TELEMETRY, body)]


class PanelModel(DeviceModel):
    """Fire alarm panel: a ``system_status`` heartbeat every tick and, with probability
    ``component_event_p`` per tick, a detector fire alarm or fault restored on the next tick.

    Status words follow GB/T 26875.3: bit0 = normal operation, bit1 fire, bit2 fault.
    """

    kind = DeviceKind.PANEL
    NORMAL, FIRE, FAULT = 0b1, 0b10, 0b100
    SMOKE_DETECTOR = 40

    def __init__(
        self, device: DeviceSeed, seed: int, interval_s: float, component_event_p: float = 0.01
    ) -> None:
        super().__init__(device, seed, interval_s)
        self.component_event_p = component_event_p
        self.active: tuple[int, int] | None = None  # (component_addr, status word)

    def _event(self, etype: PanelEventType, status: int, addr: int | None = None) -> Body:
        body: Body = {"type": etype.value, "system_type": 1, "system_addr": 1, "status": status}
        if addr is not None:
            body |= {"component_type": self.SMOKE_DETECTOR, "component_addr": addr}
        return body

    def tick(self, now: datetime) -> list[tuple[Channel, Body]]:
        events: list[Body] = []
        if self.active is not None:
            addr, _ = self.active
            events.append(self._event(PanelEventType.COMPONENT_STATUS, self.NORMAL, addr))
            self.active = None
        elif self.rng.random() < self.component_event_p:
            addr = self.rng.randint(1, 4) * 1000 + self.rng.randint(1, 200)  # loop * 1000 + point
            flag = self.FAULT if self.rng.random() < 0.6 else self.FIRE
            self.active = (addr, self.NORMAL | flag)
            events.append(self._event(PanelEventType.COMPONENT_STATUS, self.NORMAL | flag, addr))
        system = self.NORMAL | (self.active[1] & ~self.NORMAL if self.active else 0)
        events.insert(0, self._event(PanelEventType.SYSTEM_STATUS, system))
        return [(Channel.EVENT, body) for body in events]


MODEL_TYPES: dict[DeviceKind, type[DeviceModel]] = {
    DeviceKind.WATER: WaterModel,
    DeviceKind.EBIKE_SHED: EbikeShedModel,
    DeviceKind.PANEL: PanelModel,
}


def model_for(device: DeviceSeed, seed: int, interval_s: float) -> DeviceModel:
    """The value model for ``device`` (by kind), seeded from ``seed`` and the device id."""
    return MODEL_TYPES[device.kind](device, seed, interval_s)
