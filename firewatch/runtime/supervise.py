"""Run sibling services of one process on threads, and stop them all together.

A service is anything with ``run(stop: threading.Event) -> stats``. If one of them fails (or
returns while it should still be running), the shared ``stop`` is set so the others shut
down in their own orderly way, and the process exits non-zero — ``firewatch up`` and
container restart policies then restart it as a whole.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Service(Protocol):
    def run(self, stop: threading.Event) -> Any: ...


def run_together(stop: threading.Event, services: Sequence[Service]) -> int:
    """Run ``services`` until ``stop`` is set or one of them fails; 0 if all ended cleanly
    after ``stop``, 1 otherwise."""
    failed = threading.Event()

    def runner(svc: Service) -> None:
        try:
            svc.run(stop)
            if not stop.is_set():
                log.error("%s returned unexpectedly", type(svc).__name__)
                failed.set()
        except Exception:
            log.exception("%s failed", type(svc).__name__)
            failed.set()
        finally:
            stop.set()

    threads = [threading.Thread(target=runner, args=(s,), name=type(s).__name__) for s in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 1 if failed.is_set() else 0
