"""Types shared by the simulator's parts: devices, emissions, faults and their labels.

Time is simulated Unix seconds (``float``) throughout; payload timestamps are derived from
it. The engine (``engine.py``) asks each device's behaviour (``behaviour.py``) for its next
emissions in time order and hands them to a sink (a file, or MQTT connections).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from firewatch.core.domain import Channel, DeviceKind, Severity


def iso(t: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-20T08:00:00.250Z``."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class SimDevice:
    """One simulated device, as registered (``metadata`` as in the seed file)."""

    id: str
    unit_id: str
    kind: DeviceKind
    metadata: Mapping[str, Any] = field(default_factory=dict)
    own_connection: bool = False  # its own MQTT connection with a last will


class Action(StrEnum):
    """What an emission asks the sink to do."""

    PUBLISH = "publish"
    DROP = "drop"  # the device's connection dies abruptly: the broker publishes its will
    RECONNECT = "reconnect"  # the device connects again (and says it is online)


@dataclass(slots=True)
class Emission:
    """One thing a device does at simulated time ``t``."""

    t: float
    device_id: str
    channel: Channel = Channel.TELEMETRY
    body: dict[str, Any] | None = None  # JSON body without seq/ts: the engine adds them
    raw: bytes | None = None  # a malformed payload, sent verbatim instead of a body
    ts_offset_s: float = 0.0  # the device clock's error (clock-skew fault)
    action: Action = Action.PUBLISH
    lost: bool = False  # sent, but lost in transit (realism): its seq is used, nothing arrives


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault to inject: on one device, over [start, end) in simulated seconds."""

    type: str
    device_id: str
    start: float
    end: float
    severity: Severity
    params: Mapping[str, Any] = field(default_factory=dict)

    def active(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True, slots=True)
class Label:
    """Ground truth for one injected fault (a line of the labels file)."""

    device_id: str
    unit_id: str
    kind: DeviceKind
    fault: str
    start: float
    end: float
    severity: Severity
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "unit_id": self.unit_id,
            "kind": self.kind.value,
            "fault": self.fault,
            "start": iso(self.start),
            "end": iso(self.end),
            "severity": self.severity.value,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class Intervals:
    """Reporting intervals in simulated seconds."""

    water_s: float = 60.0
    shed_s: float = 60.0
    panel_status_s: float = 300.0
    status_s: float = 3600.0  # housekeeping status (firmware, battery) of every device


class Behaviour(ABC):
    """A device's behaviour over simulated time, faults included. Deterministic: all
    randomness comes from ``rng`` (seeded per device by the engine)."""

    def __init__(
        self,
        device: SimDevice,
        rng: random.Random,
        faults: list[Fault],
        intervals: Intervals,
        start: float,
    ) -> None:
        self.device = device
        self.rng = rng
        self.faults = faults
        self.intervals = intervals
        self.start = start

    @abstractmethod
    def next_time(self) -> float:
        """Simulated time of this device's next step."""

    @abstractmethod
    def step(self) -> list[Emission]:
        """Perform the step at :meth:`next_time`; return its emissions (times ≥ that time,
        non-decreasing) and advance :meth:`next_time`."""
