"""The gateway's downlink: setting devices' clocks and checking that someone is on duty
(查岗), docs/gateway.md.

**Clock sync** (type 90, command 1): at the first frame of a registered device on a
connection, every ``gateway_clock_sync_every_s`` while it stays connected, and when one of
its times was too far off to publish (at most once a minute then).

**Duty checks** (type 91, command 1, the answer timeout in whole minutes, at least 1). Every
check is a ``duty_checks`` row, so the record is complete whoever asked:

- the schedule asks (``requested_by = 'schedule'``) every ``gateway_duty_check_every_s`` per
  connected device, the first one after a fraction of the cycle drawn from the device id
  (reproducible, and spreading a fleet that connects at once); the schedule is the
  device's, not the connection's, so a device that reconnects often is still checked;
- a person asks from the console or the API (``storage/gateway.request_duty_check``);
- the poller reads the rows not yet sent every ``gateway_duty_poll_s`` (at once when the
  schedule adds one) and sends each on the device's connection, marking ``sent_at``; a
  device without a connection is marked ``not_connected``.

The answer is a type-24 object with the ``duty_answer`` bit (a key the person presses). It
closes every open check of the device: ``answered`` within the timeout, else ``late``.
A check with no answer by its deadline is ``missed``; an answer that comes later (before
the device's next check, within one cycle) turns it into ``late``. Each outcome is
published as a ``duty_check`` panel event (status bit0 answered, bit1 late; detail
asked_at, answered_at, timeout_s, requested_by, request_id) and recorded on the row.

Times: ``now`` (Unix seconds, injectable) gives the wall-clock times recorded; deadlines
run on the event loop's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from firewatch.core.device_import import Conflict, NotFound
from firewatch.core.gateway_rows import GatewayDevice
from firewatch.core.gbt_objects import InfoObject
from firewatch.gateway.directory import Directory, GatewayStore
from firewatch.gateway.gateway_metrics import GatewayMetrics
from firewatch.gateway.session import ConnectedDevices, Publisher, Session
from firewatch.gateway.translate import device_now, duty_check_event, event_topic

log = logging.getLogger(__name__)

#: A device whose times are off gets its clock set at most this often.
SKEW_SYNC_MIN_S = 60.0
#: Rows the poller takes per round.
POLL_LIMIT = 200
#: How long a control frame's confirm is waited for (only logged when it does not come).
CONFIRM_WAIT_S = 30.0


def default_fraction(device_id: str) -> float:
    """Where in the cycle a device's first scheduled check falls: [0, 1), fixed per device."""
    return random.Random(f"duty:{device_id}").random()


@dataclass
class _Check:
    request_id: int
    device: GatewayDevice
    requested_by: str
    asked_at: datetime
    timeout_s: float
    timer: asyncio.TimerHandle | None = None
    missed_at_loop: float = 0.0  # loop time the deadline passed (late answers count until +cycle)


class DutyManager:
    """Clock syncs and duty checks for the connected devices (the sessions' hooks)."""

    def __init__(
        self,
        *,
        store: GatewayStore,
        directory: Directory,
        registry: ConnectedDevices,
        publisher: Publisher,
        metrics: GatewayMetrics,
        topic_root: str,
        clock_sync_every_s: float,
        duty_check_every_s: float,
        duty_answer_timeout_s: float,
        poll_s: float,
        now: Callable[[], float] = time.time,
        fraction: Callable[[str], float] = default_fraction,
    ) -> None:
        self.store = store
        self.directory = directory
        self.registry = registry
        self.publisher = publisher
        self.metrics = metrics
        self.topic_root = topic_root
        self.clock_sync_every_s = clock_sync_every_s
        self.duty_check_every_s = duty_check_every_s
        self.answer_timeout_s = duty_answer_timeout_s
        self.poll_s = poll_s
        self.now = now
        self.fraction = fraction
        self._schedules: dict[int, asyncio.Task[None]] = {}  # address -> its schedule
        self._next_check: dict[str, float] = {}  # device id -> loop time of its next check
        self._last_sync: dict[int, float] = {}  # address -> loop time of its last clock sync
        self._open: dict[str, list[_Check]] = {}  # sent, waiting for the answer
        self._missed: dict[str, list[_Check]] = {}  # past the deadline, a late answer counts
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._failing = False

    # --- the sessions' hooks ---------------------------------------------------------------
    def device_seen(self, session: Session, address: int, device: GatewayDevice) -> None:
        self._spawn(self.clock_sync(session, address, device))
        old = self._schedules.pop(address, None)
        if old is not None:
            old.cancel()
        self._schedules[address] = asyncio.create_task(
            self._schedule(session, address, device), name=f"gbt-schedule-{device.device_id}"
        )

    def clock_skewed(self, session: Session, address: int, device: GatewayDevice) -> None:
        last = self._last_sync.get(address)
        if last is None or asyncio.get_running_loop().time() - last >= SKEW_SYNC_MIN_S:
            self._spawn(self.clock_sync(session, address, device))

    def session_closed(self, session: Session) -> None:
        for address in session.devices:
            if self.registry.get(address) is None:
                self._last_sync.pop(address, None)
                task = self._schedules.pop(address, None)
                if task is not None:
                    task.cancel()

    def duty_answered(self, device: GatewayDevice, received: datetime) -> None:
        loop_now = asyncio.get_running_loop().time()
        in_time = self._open.pop(device.device_id, [])
        late = [
            c
            for c in self._missed.pop(device.device_id, [])
            if loop_now - c.missed_at_loop <= self.duty_check_every_s
        ]
        if not in_time and not late:
            log.info("%s answered a duty check nobody is waiting for", device.device_id)
        for check in in_time:
            if check.timer is not None:
                check.timer.cancel()
            self._spawn(self._close(check, "answered", received))
        for check in late:
            self._spawn(self._close(check, "late", received))

    # --- running ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Send requested checks until cancelled (polling, woken early by the schedule)."""
        while True:
            try:
                await self.poll_once()
                if self._failing:
                    log.info("duty checks: the database answers again")
                    self._failing = False
            except psycopg.Error as err:
                if not self._failing:
                    log.error("duty checks: cannot read the queue: %s", err)
                    self._failing = True
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Cancel the schedules and timers; let outcomes being recorded finish (bounded).
        Checks still open stay sent and unclosed in the database."""
        for task in self._schedules.values():
            task.cancel()
        for checks in self._open.values():
            for check in checks:
                if check.timer is not None:
                    check.timer.cancel()
        tasks = [*self._schedules.values(), *self._tasks]
        self._schedules.clear()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def poll_once(self) -> int:
        """Send (or close as not_connected) the rows waiting; returns how many were taken."""
        rows = await self.store.pending_duty_checks(POLL_LIMIT)
        for row in rows:
            address = self.directory.address_of(row.device_id)
            session = self.registry.get(address) if address is not None else None
            device = session.devices.get(address) if session and address is not None else None
            if session is None or device is None or address is None:
                await self.store.mark_duty_check(row.id, outcome="not_connected")
                self.metrics.on_duty("not_connected")
                log.info("duty check %d: %s is not connected", row.id, row.device_id)
                continue
            await self._send_check(row.id, row.requested_by, session, address, device)
        return len(rows)

    async def _send_check(
        self,
        request_id: int,
        requested_by: str,
        session: Session,
        address: int,
        device: GatewayDevice,
    ) -> None:
        minutes = max(1, math.ceil(self.answer_timeout_s / 60))
        check = InfoObject(91, "duty_check", detail={"timeout_min": minutes})
        asked_at = datetime.fromtimestamp(self.now(), UTC)
        # Open before the frame leaves: the answer may come back before the write returns.
        # A new check also ends the window in which older missed ones could be answered late.
        self._missed.pop(device.device_id, None)
        entry = _Check(request_id, device, requested_by, asked_at, self.answer_timeout_s)
        self._open.setdefault(device.device_id, []).append(entry)
        entry.timer = asyncio.get_running_loop().call_later(
            self.answer_timeout_s, self._deadline, entry
        )
        try:
            confirm = await session.send_control(address, device, 91, [check])
        except ConnectionError:
            entry.timer.cancel()
            self._forget(entry)
            await self.store.mark_duty_check(request_id, outcome="not_connected")
            self.metrics.on_duty("not_connected")
            return
        self.metrics.on_duty("sent")
        # COALESCE in storage: an outcome recorded first (a quick answer) is kept.
        await self.store.mark_duty_check(request_id, sent_at=asked_at)
        self._spawn(self._await_confirm(confirm, device, "duty check"))
        log.info(
            "duty check %d sent to %s (asked by %s)", request_id, device.device_id, requested_by
        )

    def _forget(self, check: _Check) -> bool:
        """Take ``check`` out of the open ones; False if it was not open."""
        open_checks = self._open.get(check.device.device_id, [])
        if check not in open_checks:
            return False
        open_checks.remove(check)
        if not open_checks:
            self._open.pop(check.device.device_id, None)
        return True

    def _deadline(self, check: _Check) -> None:
        if not self._forget(check):
            return
        check.missed_at_loop = asyncio.get_running_loop().time()
        self._missed.setdefault(check.device.device_id, []).append(check)
        self._spawn(self._close(check, "missed", None))

    async def _close(self, check: _Check, outcome: str, answered_at: datetime | None) -> None:
        """Publish the ``duty_check`` event of ``outcome`` and record it on the row."""
        decided = answered_at or datetime.fromtimestamp(self.now(), UTC)
        status = {"answered": 1, "late": 3, "missed": 0}[outcome]
        device = check.device
        payload = duty_check_event(
            request_id=check.request_id,
            decided_at=decided,
            status=status,
            asked_at=check.asked_at,
            answered_at=answered_at,
            timeout_s=check.timeout_s,
            requested_by=check.requested_by,
        )
        topic = event_topic(self.topic_root, device.unit_id, device.device_id)
        try:
            await self.publisher.publish(topic, payload)
        except Exception as err:  # refused or closing: the row still says what happened
            log.error("duty check %d (%s): event not published: %s", check.request_id, outcome, err)
        await self.store.mark_duty_check(check.request_id, outcome=outcome, answered_at=answered_at)
        self.metrics.on_duty(outcome)
        log.info("duty check %d of %s: %s", check.request_id, device.device_id, outcome)

    # --- clock and schedule -------------------------------------------------------------------
    async def clock_sync(self, session: Session, address: int, device: GatewayDevice) -> None:
        """Set the device's clock to now in its zone (type 90)."""
        self._last_sync[address] = asyncio.get_running_loop().time()
        profile = session.ctx.profile_of(device)
        obj = InfoObject(90, "clock_sync", time=device_now(profile, self.now()))
        try:
            confirm = await session.send_control(address, device, 90, [obj])
        except ConnectionError:
            return
        self.metrics.on_clock_sync()
        await self._await_confirm(confirm, device, "clock sync")

    async def _schedule(self, session: Session, address: int, device: GatewayDevice) -> None:
        loop = asyncio.get_running_loop()
        every = self.duty_check_every_s
        start = loop.time()
        next_sync = start + self.clock_sync_every_s
        due = self._next_check.get(device.device_id)
        if due is None:
            due = start + self.fraction(device.device_id) * every
        while True:
            wait = min(next_sync, due) - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # the schedule's own timer
            now = loop.time()
            if now >= next_sync:
                next_sync = now + self.clock_sync_every_s
                await self.clock_sync(session, address, device)
            if now >= due:
                due = now + every
                self._next_check[device.device_id] = due
                await self._request(device)

    async def _request(self, device: GatewayDevice) -> None:
        try:
            await self.store.request_duty_check(device.device_id, "schedule")
        except (NotFound, Conflict) as err:
            log.info("no scheduled duty check for %s: %s", device.device_id, err)
            return
        except psycopg.Error as err:
            log.error("scheduled duty check of %s not recorded: %s", device.device_id, err)
            return
        self._wake.set()

    async def _await_confirm(
        self, confirm: asyncio.Future[bool], device: GatewayDevice, what: str
    ) -> None:
        try:
            ok = await asyncio.wait_for(confirm, CONFIRM_WAIT_S)
        except TimeoutError:
            log.info("%s: no confirm of the %s", device.device_id, what)
            return
        if not ok:
            log.info("%s: the %s was denied or its connection ended", device.device_id, what)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("gateway downlink task failed", exc_info=task.exception())
