"""The world the messages are aimed at (registry, server time, limits) and the message
itself, with the outcome its construction implies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from firewatch.core.domain import DeviceKind
from firewatch.core.settings import Settings
from firewatch.ingest.codec import Decoder, DeviceInfo, Limits

#: ``Message.expect`` when the message must decode to a row.
ROW = "row"
#: The outcome a construction implies: ``ROW``, a :class:`Reason` value, or None when
#: it is not certain.
Expect = str | None


class World:
    """The registry, server time and limits one set of messages is generated for and
    checked against. ``received_at`` is the server time every message is decoded at."""

    def __init__(
        self,
        devices: Mapping[str, DeviceInfo],
        received_at: datetime,
        limits: Limits,
        root: str = "firewatch/v1",
    ) -> None:
        if not devices:
            raise ValueError("a world needs registered devices")
        self.devices = dict(devices)
        self.received_at = received_at
        self.limits = limits
        self.root = root
        self.by_kind: dict[DeviceKind, tuple[str, ...]] = {
            kind: tuple(sorted(d for d, info in self.devices.items() if info.kind is kind))
            for kind in DeviceKind
        }
        self.kinds = tuple(k for k in DeviceKind if self.by_kind[k])
        self.units = tuple(sorted({info.unit_id for info in self.devices.values()}))

    def lookup(self, device_id: str) -> DeviceInfo | None:
        return self.devices.get(device_id)

    def decoder(self) -> Decoder:
        """A :class:`Decoder` over this world's registry (one snapshot)."""
        snap = object()
        return Decoder(
            root=self.root, lookup=self.lookup, snapshot=lambda: snap, limits=self.limits
        )


def default_limits() -> Limits:
    """The acceptance limits of default Settings (the environment is not read)."""
    return Limits.from_settings(Settings.model_construct())


def demo_devices() -> dict[str, DeviceInfo]:
    """The demo city's devices (``storage/seeds/xuchang.toml``), as the registry has them."""
    from firewatch.storage.seed import read_seed

    return {d.id: DeviceInfo(u.id, d.kind) for u in read_seed().units for d in u.devices}


#: The server time of reproducible runs (the benchmark, property A).
REFERENCE_TIME = datetime(2026, 12, 6, 12, 0, 0, 250_000, tzinfo=UTC)


def demo_world(received_at: datetime = REFERENCE_TIME, limits: Limits | None = None) -> World:
    return World(demo_devices(), received_at, limits or default_limits())


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message. ``case``: how it was made (``topic-mode/payload-mode``);
    ``expect``: ``"row"``, a :class:`Reason` value, or None when any outcome is allowed."""

    topic: str
    payload: bytes
    case: str
    expect: str | None
