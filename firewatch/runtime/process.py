"""Stopping child processes the same way everywhere."""

from __future__ import annotations

import logging
import subprocess
from typing import Any

log = logging.getLogger(__name__)


def stop_process(proc: subprocess.Popen[Any], timeout: float, name: str = "child") -> int:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; return the exit code.

    A process that already exited is only reaped. Never raises for a process that is gone.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.error("%s did not stop in %.0fs; killing it", name, timeout)
            proc.kill()
            proc.wait()
    return int(proc.returncode)
