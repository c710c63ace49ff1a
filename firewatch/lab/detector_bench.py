"""``firewatch bench analytics``: detector throughput on simulated cities, per batch size.

A fault-free generated city (``builtin:city-20k``'s device mix, ``units`` units; several
cities with ``units`` a list) is simulated offline for ``duration_s`` and decoded once by
ingest's codec (not timed). For each batch size the stream is cut into batches of that many
simulated seconds and run through a fresh
:class:`~firewatch.analytics.engine.DetectorEngine` on one thread, as the service runs it
(``process`` a batch with rows, ``tick`` an empty one); the first half of the batches warms
the engine up (new series are created there) and only the second half is timed, ``repeat``
times from a snapshot of the warm engine, the fastest kept (these machines are shared).

The service's batches are whatever was committed since its last read: under load they grow
by themselves, at low load they are one ingest flush (``ingest_flush_interval_ms``, 50 ms)
of a small city — the default sizes cover both, from one flush to a minute. (Woken by
ingest's NOTIFY, the service reads an empty batch only when its poll time passes, so
batches shorter than ``analytics_poll_s`` are run without the empty ones.)

A *point* is one reading (a pressure, a port's temperature, current or charging flag, an
event …), the unit of the issue's target of 500,000 points per second per core. Time is
measured as process CPU time (one thread: per core) and wall time; the CPU time of a
batch of one flush is what a batch costs whatever it holds. The machine (cores, RAM, load)
and versions go into the result: compare the ratios within one run.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psutil

from firewatch.analytics.engine import DetectorEngine
from firewatch.analytics.frames import Batch, concat
from firewatch.analytics.profiles import DeviceProfile, profiles_from_city
from firewatch.core.settings import Settings
from firewatch.lab.detector_eval import batches
from firewatch.simulators.engine import Simulation
from firewatch.simulators.scenario import load_scenario

TARGET_POINTS_PER_S = 500_000
_START = datetime(2026, 11, 20, tzinfo=UTC).timestamp()


def _rebatch(items: list[Batch], batch_s: float, base: float, fine_s: float = 1.0) -> list[Batch]:
    """Merge fine batches (of ``fine_s``) into batches of ``batch_s``, a multiple of it."""
    out: list[Batch] = []
    group: list[Batch] = []
    edge = base + batch_s
    tol = fine_s / 2  # the fine batches' times are sums of fine_s: a little off
    for b in items:
        if b.now > edge + tol and group:
            out.append(_merge(group, edge))
            group = []
            while b.now > edge + tol:
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


def default_batch_sizes(settings: Settings) -> list[float]:
    """One ingest flush (the service's smallest batch), 1 s, 10 s and 60 s."""
    return [settings.ingest_flush_interval_ms / 1000.0, 1.0, 10.0, 60.0]


def _step(engine: DetectorEngine, b: Batch) -> None:
    """What the service does with one read (``AnalyticsService.step``)."""
    if len(b):
        engine.process(b)
    else:
        engine.tick(b.now)


def _timed(
    settings: Settings,
    profiles: Mapping[str, DeviceProfile],
    bs: list[Batch],
    repeat: int,
) -> tuple[list[Batch], float, float]:
    """Warm an engine on the first half of ``bs``; (timed half, CPU s, wall s) of the
    fastest of ``repeat`` runs of the second half from the warm engine's snapshot."""
    engine = DetectorEngine(settings, profiles)
    half = len(bs) // 2
    for b in bs[:half]:
        _step(engine, b)
    timed = bs[half:]
    snap = engine.snapshot() if repeat > 1 else b""
    best = (float("inf"), float("inf"))
    for i in range(repeat):
        if i:
            engine = DetectorEngine(settings, profiles)
            engine.load(snap)
        c, w = time.process_time(), time.perf_counter()
        for b in timed:
            _step(engine, b)
        best = min(best, (time.process_time() - c, time.perf_counter() - w))
    return timed, best[0], best[1]


def run_analytics_bench(
    settings: Settings,
    *,
    units: int | Sequence[int] = 2000,
    duration_s: float = 1800.0,
    batch_s: list[float] | None = None,
    repeat: int = 1,
) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); the result document."""
    sizes = sorted(batch_s or default_batch_sizes(settings))
    cities = [units] if isinstance(units, int) else list(units)
    scenario = load_scenario("builtin:city-20k").model_copy(update={"faults": []})
    runs: list[dict[str, Any]] = []
    city_docs: list[dict[str, Any]] = []
    for n_units in cities:
        sim = Simulation(
            scenario, start=_START, end=_START + duration_s, units=n_units, root=settings.topic_root
        )
        t0 = time.perf_counter()
        fine = list(batches(sim, settings, sizes[0]))
        decode_s = time.perf_counter() - t0
        profiles = profiles_from_city(sim.city, settings)
        city_runs: list[dict[str, Any]] = []
        for size in sizes:
            bs = _rebatch(fine, size, sim.start, sizes[0]) if size != sizes[0] else fine
            if size < settings.analytics_poll_s:  # woken by commits: no empty reads
                bs = [b for b in bs if len(b)]
            timed, cpu, wall = _timed(settings, profiles, bs, max(1, repeat))
            full = [b for b in timed if len(b)]
            points = sum(b.points() for b in timed)
            rows = sum(len(b) for b in timed)
            per_batch = np.array([len(b) for b in full])
            per_core = points / cpu if cpu > 0 else 0.0
            city_runs.append(
                {
                    "units": n_units,
                    "devices": len(sim.devices),
                    "batch_s": size,
                    "batches": len(full),
                    "empty_batches": len(timed) - len(full),
                    "rows_per_batch_median": float(np.median(per_batch)) if len(full) else 0.0,
                    "points_per_batch_mean": round(points / max(len(full), 1), 1),
                    "rows": rows,
                    "points": points,
                    "seconds": round(wall, 3),
                    "cpu_seconds": round(cpu, 3),
                    "cpu_us_per_batch": round(1e6 * cpu / max(len(full), 1), 1),
                    "points_per_s": round(points / wall) if wall > 0 else 0,
                    "points_per_s_per_core": round(per_core),
                    "rows_per_s": round(rows / wall) if wall > 0 else 0,
                    "meets_target": per_core >= TARGET_POINTS_PER_S,
                }
            )
        runs += city_runs
        city_docs.append(
            {
                "units": n_units,
                "devices": len(sim.devices),
                "simulated_s": duration_s,
                "decode_seconds": round(decode_s, 2),
            }
        )
    vm = psutil.virtual_memory()
    command = (
        "firewatch bench analytics "
        + " ".join(f"--units {u}" for u in cities)
        + f" --duration {duration_s:g} "
        + " ".join(f"--batch {s:g}" for s in sizes)
        + (f" --repeat {repeat}" if repeat > 1 else "")
    )
    return {
        "benchmark": "analytics",
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "ram_gib": round(vm.total / 2**30, 1),
            "cpu": platform.processor() or platform.machine(),
            "load_1min": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "city": city_docs[0],
        "cities": city_docs,
        "decode_seconds": city_docs[0]["decode_seconds"],
        "target_points_per_s_per_core": TARGET_POINTS_PER_S,
        "threads": 1,
        "repeat": max(1, repeat),
        "runs": runs,
    }


def format_bench(result: dict[str, Any]) -> str:
    """The result as a short table per city."""
    m = result["machine"]
    lines = [
        f"analytics benchmark, one thread; {m['cores']} cores, {m['ram_gib']} GiB "
        f"(load {m.get('load_1min', '?')}); target "
        f"{result['target_points_per_s_per_core']:,} points/s per core",
    ]
    for c in result["cities"]:
        lines.append(
            f"{c['devices']} devices ({c['units']} units), {c['simulated_s']:g} s simulated"
        )
        lines.append(
            f"{'batch':>8} {'rows/batch':>11} {'points/batch':>13} {'µs/batch':>9} "
            f"{'points/s/core':>14} {'points/s':>11}  target"
        )
        for r in result["runs"]:
            if r["units"] != c["units"]:
                continue
            lines.append(
                f"{r['batch_s']:>7g}s {r['rows_per_batch_median']:>11.0f} "
                f"{r['points_per_batch_mean']:>13,.0f} {r['cpu_us_per_batch']:>9,.0f} "
                f"{r['points_per_s_per_core']:>14,} {r['points_per_s']:>11,}  "
                + ("met" if r["meets_target"] else "NOT met")
            )
    return "\n".join(lines)
