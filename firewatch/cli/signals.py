"""How every long-running command learns that it should stop."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

log = logging.getLogger("firewatch")


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM: the service's cue to run its shutdown sequence
    (stop taking work, flush, acknowledge, close, one summary line)."""
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
