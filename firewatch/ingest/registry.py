"""In-memory view of the device registry for validation (device -> unit, kind).

Read on the MQTT thread without locks: :meth:`lookup` reads one dict reference and
:meth:`reload` swaps in a new dict, both atomic under the GIL.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from firewatch.core.domain import DeviceKind
from firewatch.ingest.codec import DeviceInfo


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
        rows = conn.execute(
            "SELECT id, unit_id, kind FROM devices WHERE id = ANY(%s)", (list(ids),)
        ).fetchall()
        if rows:
            self._devices = {
                **self._devices,
                **{r[0]: DeviceInfo(r[1], DeviceKind(r[2])) for r in rows},
            }
        return len(rows)

    def reload(self, conn: psycopg.Connection[Any]) -> None:
        """Replace the snapshot with the database's devices. Raises psycopg errors."""
        rows = conn.execute("SELECT id, unit_id, kind FROM devices").fetchall()
        self._devices = {r[0]: DeviceInfo(r[1], DeviceKind(r[2])) for r in rows}
        self.loaded_at = time.monotonic()
