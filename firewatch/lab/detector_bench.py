"""``firewatch bench analytics``: detector throughput on a simulated city, per batch size.

A fault-free generated city (``builtin:city-20k``'s device mix, ``units`` units) is
simulated offline for ``duration_s`` and decoded once by ingest's codec (not timed).
For each batch size the stream is cut into batches of that many simulated seconds and
run through a fresh :class:`~firewatch.analytics.engine.DetectorEngine` on one thread;
the first half of the batches warms the engine up (new series are created there) and
only the second half is timed. A *point* is one reading (a pressure, a port's
temperature, current or charging flag, an event …), the unit of the issue's target of
200,000 points per second per core. The machine (cores, RAM) and versions go into the
result, since these machines are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import os
import platform
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psutil

from firewatch.analytics.engine import DetectorEngine
from firewatch.analytics.frames import Batch, concat
from firewatch.analytics.profiles import profiles_from_city
from firewatch.core.settings import Settings
from firewatch.lab.detector_eval import batches
from firewatch.simulators.engine import Simulation
from firewatch.simulators.scenario import load_scenario

TARGET_POINTS_PER_S = 200_000
_START = datetime(2026, 11, 20, tzinfo=UTC).timestamp()


def _rebatch(items: list[Batch], batch_s: float, base: float) -> list[Batch]:
    """Merge fine batches into batches of ``batch_s`` (the fine ones are 1 s)."""
    out: list[Batch] = []
    group: list[Batch] = []
    edge = base + batch_s
    for b in items:
        if b.now > edge + 1e-9 and group:
            out.append(_merge(group, edge))
            group = []
            while b.now > edge + 1e-9:
                edge += batch_s
        group.append(b)
    if group:
        out.append(_merge(group, edge))
    return out


def _merge(group: list[Batch], now: float) -> Batch:
    return Batch(
        now,
        concat([g.telemetry for g in group]),
        [e for g in group for e in g.events],
        [s for g in group for s in g.statuses],
        [d for g in group for d in g.dead_letters],
    )


def run_analytics_bench(
    settings: Settings,
    *,
    units: int = 2000,
    duration_s: float = 1800.0,
    batch_s: list[float] | None = None,
) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); the result document."""
    sizes = batch_s or [1.0, 10.0, 60.0]
    scenario = load_scenario("builtin:city-20k").model_copy(update={"faults": []})
    sim = Simulation(
        scenario, start=_START, end=_START + duration_s, units=units, root=settings.topic_root
    )
    t0 = time.perf_counter()
    fine = list(batches(sim, settings, 1.0))
    decode_s = time.perf_counter() - t0
    profiles = profiles_from_city(sim.city, settings)
    runs = []
    for size in sizes:
        bs = _rebatch(fine, size, sim.start) if size != 1.0 else fine
        engine = DetectorEngine(settings, profiles)
        half = len(bs) // 2
        for b in bs[:half]:
            engine.process(b)
        timed = bs[half:]
        points = sum(b.points() for b in timed)
        rows = sum(len(b) for b in timed)
        t = time.perf_counter()
        for b in timed:
            engine.process(b)
        took = time.perf_counter() - t
        per_batch = np.array([len(b) for b in timed])
        runs.append(
            {
                "batch_s": size,
                "batches": len(timed),
                "rows_per_batch_median": float(np.median(per_batch)) if len(per_batch) else 0.0,
                "rows": rows,
                "points": points,
                "seconds": round(took, 3),
                "points_per_s": round(points / took),
                "rows_per_s": round(rows / took),
                "meets_target": points / took >= TARGET_POINTS_PER_S,
            }
        )
    vm = psutil.virtual_memory()
    return {
        "benchmark": "analytics",
        "command": f"firewatch bench analytics --units {units} --duration {duration_s:g} "
        + " ".join(f"--batch {s:g}" for s in sizes),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "ram_gib": round(vm.total / 2**30, 1),
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "city": {"units": units, "devices": len(sim.devices), "simulated_s": duration_s},
        "decode_seconds": round(decode_s, 2),
        "target_points_per_s_per_core": TARGET_POINTS_PER_S,
        "threads": 1,
        "runs": runs,
    }


def format_bench(result: dict[str, Any]) -> str:
    """The result as a short table."""
    m, c = result["machine"], result["city"]
    lines = [
        f"analytics benchmark, {c['devices']} devices ({c['units']} units), "
        f"{c['simulated_s']:g} s simulated; {m['cores']} cores, {m['ram_gib']} GiB, one thread",
        f"{'batch':>8} {'rows/batch':>11} {'points':>10} {'seconds':>8} {'points/s':>11} "
        f"{'rows/s':>9}  target {result['target_points_per_s_per_core']:,}/s",
    ]
    for r in result["runs"]:
        lines.append(
            f"{r['batch_s']:>7g}s {r['rows_per_batch_median']:>11.0f} {r['points']:>10} "
            f"{r['seconds']:>8.2f} {r['points_per_s']:>11,} {r['rows_per_s']:>9,}  "
            + ("met" if r["meets_target"] else "NOT met")
        )
    return "\n".join(lines)
