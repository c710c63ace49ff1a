"""In-memory view of the device registry for validation (device -> unit, kind).

Read on the MQTT thread without locks: :meth:`lookup` reads one dict reference and
:meth:`reload` swaps in a new dict, both atomic under the GIL.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg

from firewatch.core.domain import DeviceKind
from firewatch.ingest.codec import DeviceInfo
from firewatch.storage.seed import device_routes

log = logging.getLogger(__name__)


class DeviceRegistry:
    """Snapshot of ``devices``, refreshed by the writer thread that owns a connection."""

    def __init__(self, devices: dict[str, DeviceInfo] | None = None) -> None:
        self._devices: dict[str, DeviceInfo] = devices or {}
        self.loaded_at = time.monotonic() if devices else 0.0

    def lookup(self, device_id: str) -> DeviceInfo | None:
        return self._devices.get(device_id)

    def snapshot(self) -> object:
        """The current snapshot's identity: a new object after every change (the dict is
        replaced, never mutated), so caches keyed on it know when to start over."""
        return self._devices

    def __len__(self) -> int:
        return len(self._devices)

    def age(self) -> float:
        """Seconds since the last reload."""
        return time.monotonic() - self.loaded_at

    def refresh_ids(self, conn: psycopg.Connection[Any], ids: set[str]) -> int:
        """Look up ``ids`` the snapshot does not know (registered since the last reload);
        add those found. One indexed query; returns how many were added."""
        found = _known(device_routes(conn, ids))
        if found:
            self._devices = {**self._devices, **found}
        return len(found)

    def reload(self, conn: psycopg.Connection[Any]) -> None:
        """Replace the snapshot with the database's devices. Raises psycopg errors."""
        self._devices = _known(device_routes(conn))
        self.loaded_at = time.monotonic()

    def touch(self) -> None:
        """Count the snapshot as fresh (a failed reload is not retried at once)."""
        self.loaded_at = time.monotonic()


def _known(rows: list[tuple[str, str, str]]) -> dict[str, DeviceInfo]:
    """Registry rows ingest can route; a device whose kind this version does not know is
    left out (its messages become ``unknown_device`` dead letters) and logged, rather
    than stopping ingest."""
    out: dict[str, DeviceInfo] = {}
    for device_id, unit_id, kind in rows:
        try:
            out[device_id] = DeviceInfo(unit_id, DeviceKind(kind))
        except ValueError:
            log.error("device %r has an unknown kind %r: not routed", device_id, kind)
    return out
