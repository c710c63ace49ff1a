"""``firewatch bench draws``: is the draw fair, and does it never break a tie?

A synthetic city of ``units`` candidates (levels red/orange/yellow/blue in shares of
10/20/30/40 %, a third of the red units on the focus list, 5 % watched and 3 % blacklisted)
and ``inspectors`` inspectors, each unit declaring ties to 0-3 of them, is drawn ``draws``
times with the configured rates (the settings' defaults), each time with a fresh seed
(SHA-256 of the bench seed and the draw's number, so a run can be repeated exactly).
Only the seed changes between draws: each unit's inclusion is then a Bernoulli trial with
the exact probability the specification gives it (``core/draw.py``).

Measured, per class of units with one configured probability p (focus units due, the
credit statuses, each level): the empirical inclusion rate r over n units x draws trials,
its standard error sqrt(p(1-p)/(n*draws)) and z = (r - p) / SE; the largest |z| over the
classes and over single units (with the 95 % bound of the largest of that many standard
normals, for comparison); conflicts (a tied inspector, an inspector twice on a unit, the
wrong number of inspectors, a load above the bound: must be 0); inspector loads; draws/s.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psutil

from firewatch.core.draw import (
    LEVELS,
    PPM,
    Candidate,
    DrawInputs,
    inclusion_probability_ppm,
    run_draw,
    violations,
)
from firewatch.core.settings import Settings
from firewatch.supervision.draws import draw_config


@dataclass(frozen=True)
class BenchConfig:
    draws: int = 10_000
    units: int = 200
    inspectors: int = 20
    seed: int = 1


def synthetic_inputs(cfg: BenchConfig, settings: Settings | None = None) -> DrawInputs:
    """The synthetic city's draw inputs (see the module docstring)."""
    rng = random.Random(cfg.seed)
    shares = {"red": 0.1, "orange": 0.2, "yellow": 0.3, "blue": 0.4}
    units = []
    for i in range(cfg.units):
        level = rng.choices(LEVELS, [shares[lv] for lv in LEVELS])[0]
        roll = rng.random()
        credit = "blacklisted" if roll < 0.03 else "watch" if roll < 0.08 else "good"
        focus = level == "red" and rng.random() < 1 / 3
        units.append(Candidate(f"U-{i:05d}", level, focus, credit, None))
    codes = [f"I-{j:03d}" for j in range(cfg.inspectors)]
    exclusions = frozenset(
        (code, u.unit_id) for u in units for code in rng.sample(codes, rng.randint(0, 3))
    )
    config = draw_config(settings or Settings())
    return DrawInputs("bench", tuple(units), tuple(codes), exclusions, config)


def _group(c: Candidate, inputs: DrawInputs) -> str:
    if inclusion_probability_ppm(c, inputs.config) == PPM and c.focus and c.level == "red":
        return "focus (red, on the focus list)"
    if (
        c.credit != "good"
        and inputs.config.rate_ppm(c.level, c.credit) > (inputs.config.level_rates_ppm[c.level])
    ):
        return f"credit {c.credit}"
    return f"level {c.level}"


def _z(hits: int, trials: int, p: float) -> tuple[float, float | None]:
    se = math.sqrt(p * (1 - p) / trials)
    rate = hits / trials
    return se, ((rate - p) / se if se > 0 else None)


def max_normal_bound(k: int, level: float = 0.95) -> float:
    """The ``level`` quantile of the largest |Z| of ``k`` independent standard normals."""
    if k < 1:
        return 0.0
    tail = (1 - level ** (1 / k)) / 2
    return statistics.NormalDist().inv_cdf(1 - tail)


def run_draw_bench(cfg: BenchConfig) -> dict[str, Any]:
    inputs = synthetic_inputs(cfg)
    h = inputs.digest()
    counts: Counter[str] = Counter()
    loads: Counter[str] = Counter()
    conflicts: list[str] = []
    drawn_sizes: list[int] = []
    max_load = 0
    started = time.perf_counter()
    for i in range(cfg.draws):
        seed = hashlib.sha256(f"firewatch-bench-draws:{cfg.seed}:{i}".encode()).digest()
        result = run_draw(inputs, seed, inputs_hash=h)
        drawn_sizes.append(len(result.units))
        for u in result.units:
            counts[u.unit_id] += 1
            for code in u.inspectors:
                loads[code] += 1
        per_draw = Counter(code for u in result.units for code in u.inspectors)
        max_load = max(max_load, *per_draw.values(), 0)
        problems = violations(inputs, result)
        if problems and len(conflicts) < 20:
            conflicts += [f"draw {i}: {p}" for p in problems]
        elif problems:
            conflicts.append(f"draw {i}: ...")
    elapsed = time.perf_counter() - started
    groups: dict[str, list[Candidate]] = {}
    for c in inputs.units:
        groups.setdefault(_group(c, inputs), []).append(c)
    rows: list[dict[str, Any]] = []
    for name in sorted(groups):
        members = groups[name]
        ps = [inclusion_probability_ppm(c, inputs.config) / PPM for c in members]
        trials = len(members) * cfg.draws
        hits = sum(counts[c.unit_id] for c in members)
        p = statistics.fmean(ps)  # one value per class by construction; the mean if not
        se = math.sqrt(sum(q * (1 - q) for q in ps) * cfg.draws) / trials
        rows.append(
            {
                "class": name,
                "units": len(members),
                "configured": p,
                "empirical": hits / trials,
                "se": se,
                "z": (hits / trials - p) / se if se > 0 else None,
            }
        )
    unit_z = [
        abs(z)
        for c in inputs.units
        if (
            z := _z(
                counts[c.unit_id], cfg.draws, inclusion_probability_ppm(c, inputs.config) / PPM
            )[1]
        )
        is not None
    ]
    exact = all(r["z"] is not None or r["empirical"] == r["configured"] for r in rows)
    share = [loads[code] / max(1, sum(loads.values())) for code in inputs.inspectors]
    expected_n = sum(inclusion_probability_ppm(c, inputs.config) / PPM for c in inputs.units)
    z_classes = [abs(float(r["z"])) for r in rows if r["z"] is not None]
    return {
        "bench": "draws",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
        },
        "config": {
            "draws": cfg.draws,
            "units": cfg.units,
            "inspectors": cfg.inspectors,
            "seed": cfg.seed,
            "exclusions": len(inputs.exclusions),
            "draw_config": inputs.config.to_json(),
            "inputs_hash": h,
        },
        "classes": rows,
        "max_abs_z_classes": max(z_classes, default=0.0),
        "max_abs_z_classes_95": max_normal_bound(len(z_classes)),
        "max_abs_z_units": max(unit_z, default=0.0),
        "max_abs_z_units_95": max_normal_bound(len(unit_z)),
        "units_with_random_inclusion": len(unit_z),
        "deterministic_classes_exact": exact,
        "conflicts": sum(1 for c in conflicts if c),
        "conflict_examples": conflicts[:20],
        "drawn_per_draw": {
            "expected": expected_n,
            "mean": statistics.fmean(drawn_sizes),
            "min": min(drawn_sizes),
            "max": max(drawn_sizes),
        },
        "inspector_share": {"min": min(share), "max": max(share), "fair": 1 / len(share)},
        "max_inspector_load_in_a_draw": max_load,
        "seconds": elapsed,
        "draws_per_s": cfg.draws / elapsed if elapsed > 0 else None,
    }


def format_result(r: dict[str, Any]) -> str:
    c = r["config"]
    lines = [
        f"bench draws: {c['draws']} draws of {c['units']} units, {c['inspectors']} inspectors, "
        f"{c['exclusions']} declared ties ({r['machine']['cores']} cores)",
        f"{'class':<32} {'units':>5} {'configured':>10} {'empirical':>10} {'SE':>9} {'z':>7}",
    ]
    for row in r["classes"]:
        z = "exact" if row["z"] is None else f"{row['z']:+.2f}"
        lines.append(
            f"{row['class']:<32} {row['units']:>5} {row['configured']:>10.4f} "
            f"{row['empirical']:>10.4f} {row['se']:>9.6f} {z:>7}"
        )
    d = r["drawn_per_draw"]
    share = r["inspector_share"]
    lines += [
        f"max |z|: classes {r['max_abs_z_classes']:.2f} "
        f"(95 % bound {r['max_abs_z_classes_95']:.2f}), units {r['max_abs_z_units']:.2f} "
        f"over {r['units_with_random_inclusion']} units "
        f"(95 % bound {r['max_abs_z_units_95']:.2f})",
        f"conflicts: {r['conflicts']}",
        f"units drawn per draw: mean {d['mean']:.2f} (expected {d['expected']:.2f}), "
        f"min {d['min']}, max {d['max']}",
        f"inspector share of assignments: {share['min']:.4f}..{share['max']:.4f} "
        f"(fair {share['fair']:.4f}); largest load in one draw {r['max_inspector_load_in_a_draw']}",
        f"{r['draws_per_s']:.0f} draws/s ({r['seconds']:.1f} s)",
    ]
    return "\n".join(lines)
