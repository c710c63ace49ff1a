"""A per-device message-rate limit: one token bucket per device, checked on the network thread.

A device (or a vendor's gateway) stuck in a loop can publish thousands of valid messages a
second. Stored, they would fill the tables and the analytics feed with one device's noise;
held back, they would fill ingest's in-flight window and delay every other device. So each
device gets a token bucket of ``burst`` tokens refilled at ``rate`` per second; a decoded
row that finds its bucket empty becomes a ``rate_limited`` dead letter, which passes the
dead-letter quota like any other (a flood keeps a few rows with raw bytes, the rest are
counted) and is acknowledged to the broker, so it is never redelivered. The check is O(1)
and never waits: no other device's message is delayed by it.

What spends from which bucket (:func:`bucket_of`):

* telemetry and panel events spend from the device's bucket (a device publishes on one of
  the two channels, by its kind);
* ``status`` messages spend from a bucket of their own, so that a flood of data never costs
  a device its "online" or "offline" (status messages are a handful per connection);
* a **last will** (status, ``seq`` 0) and a **panel event carrying an alarm flag** (fire,
  fault, isolation …: :data:`firewatch.core.domain.ALARM_FLAGS`, what makes a batch commit at
  once) are never limited and spend nothing: a lost will hides a device that went offline,
  and the limiter must never be the one to choose which alarm of a fire's burst is lost. A
  panel chattering alarms is stored in full; that is the analytics' false-alarm concern.

Only rows are limited: a message that is already a dead letter keeps its own reason (and
passes the quota). Rows decoded again on the writer thread after a registry refresh (a
device registered moments before its first messages) are not checked.

Memory is bounded by ``max_devices`` buckets. A bucket that has refilled to ``burst`` is
the same as no bucket (a device first seen starts full), so when the table is full and a
new device arrives, every full bucket is dropped; that sweep runs at most once per
``SWEEP_EVERY_S``. Only a device that published within the last ``burst / rate`` seconds
holds a bucket that is not full (one message is refilled in ``1 / rate``), so a sweep frees
nearly all of them unless ``max_devices`` devices are that busy at once. If it frees
nothing, the new device is not tracked: its messages are admitted and counted in
:attr:`DeviceRateLimiter.untracked`, with one warning (the limit fails open: it must never
refuse a device because of its own bookkeeping).

The buckets are per worker process: with ``k`` workers in a shared group, a device may get
up to ``k`` times the rate through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from firewatch.core.domain import ALARM_FLAGS
from firewatch.core.rows import EventRow, Row, StatusRow

log = logging.getLogger(__name__)

#: Appended to a device id for its status bucket (``/`` never occurs in a device id).
STATUS_BUCKET = "/status"


def bucket_of(row: Row) -> str | None:
    """The key of the bucket ``row`` spends a token from, or None if it is exempt (a last
    will, or a panel event with an alarm flag; module docstring)."""
    if type(row) is StatusRow:
        return None if row.seq == 0 else row.device_id + STATUS_BUCKET
    if type(row) is EventRow and not ALARM_FLAGS.isdisjoint(row.flags):
        return None
    return row.device_id


class DeviceRateLimiter:
    """Token buckets by key (see the module docstring): ``rate`` tokens per second, at most
    ``burst``; each admitted message spends one. Not thread-safe: one thread calls
    :meth:`admit` (ingest's network thread). ``clock`` is monotonic seconds."""

    #: Least time between two sweeps of full buckets when the table is full.
    SWEEP_EVERY_S = 1.0

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        max_devices: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_devices < 1:
            raise ValueError("need rate > 0, burst >= 1 and max_devices >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_devices = max_devices
        self.clock = clock
        #: the dead letter's detail: the same for every limited message (no formatting
        #: per message during a flood); the topic names the device
        self.detail = f"over the per-device limit of {rate:g} messages/s (burst {burst})"
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, when last updated]
        self._next_sweep = float("-inf")
        self.limited = 0  # since start
        self.untracked = 0  # admitted without a bucket: the table was full of active ones

    def __len__(self) -> int:
        return len(self._buckets)

    def admit(self, key: str, now: float | None = None) -> bool:
        """Spend a token of ``key``'s bucket: True if there was one, False if the message is
        over the rate. ``now``: the clock's time, when the caller has read it already (once
        for all the messages of one socket read)."""
        if now is None:
            now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_devices and not self._make_room(now):
                if not self.untracked:
                    log.warning(
                        "rate limit: %d devices are sending at once, more than the %d tracked; "
                        "others are admitted without a limit until buckets refill",
                        len(self._buckets),
                        self.max_devices,
                    )
                self.untracked += 1
                return True
            self._buckets[key] = [self.burst - 1.0, now]
            return True
        # A clock that steps back (it should not: monotonic) refills nothing.
        tokens = bucket[0] + max(now - bucket[1], 0.0) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
        self.limited += 1
        return False

    def _make_room(self, now: float) -> bool:
        """Drop every bucket that has refilled (the same as no bucket); at most once per
        :attr:`SWEEP_EVERY_S`, so a table full of flooding devices costs one O(n) pass per
        interval, not one per message. True if there is room now."""
        if now < self._next_sweep:
            return False
        self._next_sweep = now + self.SWEEP_EVERY_S
        burst, rate = self.burst, self.rate
        full = [
            key
            for key, (tokens, last) in self._buckets.items()
            if tokens + max(now - last, 0.0) * rate >= burst
        ]
        for key in full:
            del self._buckets[key]
        return len(self._buckets) < self.max_devices
