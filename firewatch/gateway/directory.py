"""The gateway's database: which registered panel each GB/T address is (the directory,
reloaded every ``gateway_directory_refresh_s``), and the duty-check rows.

The SQL is ``firewatch/storage/gateway.py``'s; this module runs it off the event loop, on a
worker thread (``asyncio.to_thread``) with one synchronous psycopg connection used by one
call at a time (an ``asyncio.Lock``), as the project's other services use psycopg. A lost
connection is opened again at the next call; the error reaches the caller, which decides
(the directory keeps its last snapshot, the duty poller tries again next round).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from firewatch.core.gateway_rows import GatewayDevice, PendingDutyCheck
from firewatch.storage import gateway as store

log = logging.getLogger(__name__)

T = TypeVar("T")
CONNECT_TIMEOUT_S = 5


class GatewayStore:
    """The gateway's one database connection (see the module docstring)."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = asyncio.Lock()

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async with self._lock:
            return await asyncio.to_thread(self._run, fn, args, kwargs)

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
        try:
            return fn(self._conn, *args, **kwargs)
        except psycopg.OperationalError:
            self._close()
            raise

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._close)

    async def directory(self) -> dict[int, GatewayDevice]:
        return await self._call(store.gateway_directory)

    async def pending_duty_checks(self, limit: int) -> list[PendingDutyCheck]:
        return await self._call(store.pending_duty_checks, limit)

    async def request_duty_check(self, device_id: str, requested_by: str) -> int:
        return await self._call(store.request_duty_check, device_id, requested_by)

    async def mark_duty_check(
        self,
        check_id: int,
        *,
        sent_at: datetime | None = None,
        outcome: str | None = None,
        answered_at: datetime | None = None,
    ) -> bool:
        return await self._call(
            store.mark_duty_check,
            check_id,
            sent_at=sent_at,
            outcome=outcome,
            answered_at=answered_at,
        )


class Directory:
    """GB/T address -> registered panel, and panel -> address; a snapshot replaced whole
    at every reload (readers never see half of one)."""

    def __init__(self, store: GatewayStore, refresh_s: float) -> None:
        self._store = store
        self.refresh_s = refresh_s
        self._by_address: dict[int, GatewayDevice] = {}
        self._by_device: dict[str, int] = {}
        self.loads = 0
        self._failing = False

    def lookup(self, address: int) -> GatewayDevice | None:
        return self._by_address.get(address)

    def address_of(self, device_id: str) -> int | None:
        """The address of the panel ``device_id`` in service, if it has one."""
        return self._by_device.get(device_id)

    def __len__(self) -> int:
        return len(self._by_address)

    async def load(self) -> None:
        """Replace the snapshot with the database's. Raises psycopg errors."""
        found = await self._store.directory()
        self._by_address = found
        self._by_device = {d.device_id: a for a, d in found.items() if not d.decommissioned}
        self.loads += 1

    async def run(self) -> None:
        """Reload every ``refresh_s`` until cancelled; a failed reload keeps the last
        snapshot (devices go on being served) and is logged once until one succeeds."""
        while True:
            await asyncio.sleep(self.refresh_s)  # the refresh period, not a synchronisation
            try:
                await self.load()
            except psycopg.Error as err:
                if not self._failing:
                    log.error("cannot reload the GB/T directory (keeping the last one): %s", err)
                    self._failing = True
                continue
            if self._failing:
                log.info("GB/T directory reloaded again: %d addresses", len(self))
                self._failing = False
