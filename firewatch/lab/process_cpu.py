"""Where a benchmark's CPU and memory went, from the processes' own accounting: the broker's
and the database server's CPU (every process of that name, ended backends included) and a
process's peak RSS. Used by ``firewatch bench ingest``."""

from __future__ import annotations

from pathlib import Path

import psutil

#: Process names whose CPU the bench reports (the broker and the database server, all of
#: their processes together).
SERVER_PROCESSES = {"mosquitto": "mosquitto", "postgres": "postgres"}


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def server_cpu() -> dict[str, dict[int, float]]:
    """CPU seconds so far of every process named in SERVER_PROCESSES, by pid, including
    their reaped children (PostgreSQL backends that ended)."""
    out: dict[str, dict[int, float]] = {key: {} for key in SERVER_PROCESSES}
    names = {v: k for k, v in SERVER_PROCESSES.items()}
    for proc in psutil.process_iter(["name"]):
        key = names.get(proc.info["name"] or "")
        if key is None:
            continue
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        out[key][proc.pid] = t.user + t.system + t.children_user + t.children_system
    return out


def server_cpu_delta(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float]:
    """CPU seconds per server between two :func:`server_cpu` snapshots (a process that
    started in between counts in full; one that ended is in its parent's children times)."""
    return {
        key: sum(t - before.get(key, {}).get(pid, 0.0) for pid, t in pids.items())
        for key, pids in after.items()
    }
