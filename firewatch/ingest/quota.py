"""How many dead letters one worker stores per device and in all, per time window.

A dead letter keeps a bad message's raw bytes so that its vendor can see what was wrong.
A few per device and reason show that; ten thousand identical mistakes from one
misconfigured (or hostile) device would only fill the table. So each worker stores at most
``per_device`` dead letters per device and ``total`` in all per ``window_s`` seconds; the
rest are acknowledged and counted (``firewatch_ingest_dead_letters_dropped_total{reason}``),
not stored. A device is the device segment of a well-formed topic; every message whose
topic has no such segment shares one bucket, so random topics cannot buy fresh quota.

The counts are per worker process: with ``k`` workers a device may store up to
``k × per_device`` per window. Memory is bounded: at most ``MAX_KEYS`` devices are tracked
per window; beyond that only the total applies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from firewatch.core.rows import DeadLetter

log = logging.getLogger(__name__)

#: The bucket of every topic without a device segment.
NO_DEVICE = "(no device)"


class DeadLetterQuota:
    """Decides, dead letter by dead letter, which are stored (see the module docstring)."""

    MAX_KEYS = 100_000

    def __init__(
        self,
        *,
        root: str,
        per_device: int,
        total: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_device < 0 or total < 0 or window_s <= 0:
            raise ValueError("need per_device >= 0, total >= 0 and window_s > 0")
        self._prefix = root + "/"
        self._levels = root.count("/") + 4  # root + unit/device/channel
        self.per_device = per_device
        self.total = total
        self.window_s = window_s
        self._clock = clock
        self._window_start = clock()
        self._counts: dict[str, int] = {}
        self._stored = 0
        self._warned: set[str] = set()
        self.dropped = 0  # since start, for the summary line

    def device_of(self, topic: str) -> str:
        """The device segment of ``{root}/{unit}/{device}/{channel}``, else :data:`NO_DEVICE`."""
        parts = topic.split("/")
        if len(parts) != self._levels or not topic.startswith(self._prefix) or not parts[-2]:
            return NO_DEVICE
        return parts[-2]

    def admit(self, dead: DeadLetter) -> bool:
        """True if ``dead`` is to be stored; False if it is over quota (then counted)."""
        now = self._clock()
        if now - self._window_start >= self.window_s:
            self._window_start, self._counts, self._stored = now, {}, 0
            self._warned.clear()
        device = self.device_of(dead.topic)
        seen = self._counts.get(device, 0)
        if self._stored < self.total and seen < self.per_device:
            if seen or len(self._counts) < self.MAX_KEYS:
                self._counts[device] = seen + 1
            self._stored += 1
            return True
        self.dropped += 1
        if device not in self._warned and len(self._warned) < 100:
            self._warned.add(device)
            which = (
                f"{self.per_device} per device"
                if seen >= self.per_device
                else f"{self.total} in all"
            )
            log.warning(
                "dead letters from %s over quota (%s per %.0f s): further ones in this window "
                "are counted, not stored (latest reason: %s)",
                device,
                which,
                self.window_s,
                dead.reason.value,
            )
        return False
