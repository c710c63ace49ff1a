"""``firewatch bench risk-quality``: is the risk score any good on the simulated unit history?

For each seed, :func:`~firewatch.simulators.unit_history.simulate_unit_history` simulates
``units`` units for a year and the following quarter. Every unit is scored at the cut-off
(the end of the year) by the production model (:func:`firewatch.core.risk.assess`) from its
daily rollups before the cut-off and its state at the cut-off: nothing after the cut-off
goes in. The truth is the following quarter: a unit is *positive* when it has a fire or a
serious (major) hazard arises there (``Outcomes.incident``), which the simulator draws from
hidden propensities only, never from the score.

Rankings compared (higher = riskier):

* ``score``: the model's score (0..100).
* ``level``: the model's level, forced conditions included, ties broken by the score: the
  order a supervisor working down the list by colour would follow.
* ``random``: a seeded random order (expected AUC 0.5, top-decile share 10 %).
* ``supervision_class``: high_risk > key > ordinary, nothing else.
* ``fires_last_year``: confirmed fires in the year before the cut-off, nothing else.
* ``oracle``: the simulator's hidden incident rate. No real score can know it: it is the
  ceiling the noise of a single quarter leaves, not a competitor.

Metrics, per ranking and seed (:func:`ranking_metrics`):

* ``auc``: ROC AUC (``sklearn.metrics.roc_auc_score``; ties count half).
* ``top_decile_share``: the share of the positive units found in the top 10 % of the
  ranking (recall at 10 %); ``top_decile_precision``: the share of the top 10 % that are
  positive; ``lift``: that precision over the base rate. The top decile is the
  ``round(0.1 × n)`` highest; units tied at its edge count fractionally (the expected value
  of breaking the tie at random), which is what coarse rankings such as the supervision
  class deserve.

Plus the base rate, the level distribution with each level's incident rate, and how many
units each forced condition forced. :func:`summarise` gives mean, standard deviation, min
and max over seeds. Seeds 1-20 are for tuning the model; 101-110 for the report.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

from firewatch.core.risk import RiskAssessment, RiskConfig, assess
from firewatch.core.risk_levels import Level
from firewatch.simulators.unit_history import UnitHistory, simulate_unit_history
from firewatch.simulators.unit_history_processes import incident_rates

TUNING_SEEDS = tuple(range(1, 21))
HELD_OUT_SEEDS = tuple(range(101, 111))
TOP_FRACTION = 0.1
RANKINGS = ("score", "level", "random", "supervision_class", "fires_last_year", "oracle")
METRICS = ("auc", "top_decile_share", "top_decile_precision", "lift")
_CLASS_RANK = {"high_risk": 2.0, "key": 1.0}


def roc_auc(
    scores: Sequence[float] | npt.NDArray[Any], positive: Sequence[bool] | Any
) -> float | None:
    """ROC AUC of ``scores`` against ``positive`` (ties count half); None when only one
    class is present."""
    y = np.asarray(positive, dtype=bool)
    if y.all() or not y.any():
        return None
    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64)))


def top_fraction(
    scores: Sequence[float] | npt.NDArray[Any],
    positive: Sequence[bool] | Any,
    fraction: float = TOP_FRACTION,
) -> tuple[float | None, float]:
    """(share of the positives in the top ``fraction``, precision of the top ``fraction``).

    The top is the ``max(1, round(fraction × n))`` highest scores; units tied at its edge
    count fractionally (module docstring). The share is None without positives.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=np.float64)
    if s.size == 0:
        raise ValueError("no units to rank")
    k = max(1, round(fraction * s.size))
    edge = np.sort(s)[::-1][k - 1]
    above, tied = s > edge, s == edge
    caught = y[above].sum() + y[tied].sum() * (k - above.sum()) / tied.sum()
    total = y.sum()
    return (float(caught / total) if total else None), float(caught / k)


def ranking_metrics(
    scores: Sequence[float] | npt.NDArray[Any], positive: Sequence[bool] | Any
) -> dict[str, float | None]:
    """AUC, top-decile share, precision and lift of one ranking (module docstring)."""
    share, precision = top_fraction(scores, positive)
    base = float(np.mean(np.asarray(positive, dtype=np.float64)))
    return {
        "auc": _r(roc_auc(scores, positive)),
        "top_decile_share": _r(share),
        "top_decile_precision": _r(precision),
        "lift": _r(precision / base) if base else None,
    }


def rankings(
    history: UnitHistory, assessments: Sequence[RiskAssessment], fires_last_year: Sequence[float]
) -> dict[str, npt.NDArray[np.float64]]:
    """Every ranking of the module docstring for one simulated history."""
    fire, major = incident_rates(history.propensities)
    rng = np.random.default_rng([history.seed, 0xBA5E])
    return {
        "score": np.array([a.score for a in assessments]),
        "level": np.array([a.level.rank * 1000.0 + a.score for a in assessments]),
        "random": rng.random(len(assessments)),
        "supervision_class": np.array([_CLASS_RANK.get(u.supervision, 0.0) for u in history.units]),
        "fires_last_year": np.asarray(fires_last_year, dtype=np.float64),
        "oracle": np.asarray(fire + major),
    }


def evaluate_seed(units: int, seed: int, config: RiskConfig) -> dict[str, Any]:
    """Simulate one seed, score every unit at the cut-off, measure every ranking."""
    t0 = time.perf_counter()
    history = simulate_unit_history(units, seed)
    t1 = time.perf_counter()
    states = history.states_at()
    assessments, fires = [], []
    rollup_s = 0.0
    for i, unit in enumerate(history.units):
        r0 = time.perf_counter()
        rollups = history.rollups(i)  # days before the cut-off only
        rollup_s += time.perf_counter() - r0
        fires.append(float(sum(r.confirmed_fires for r in rollups)))
        assessments.append(assess(unit.unit_id, history.cutoff, rollups, states[i], config))
    t2 = time.perf_counter()
    outcomes = history.outcomes()
    y = outcomes.incident
    ranked = rankings(history, assessments, fires)
    return {
        "seed": seed,
        "units": units,
        "positives": int(y.sum()),
        "base_rate": _r(float(y.mean())),
        "fires": int((outcomes.fires > 0).sum()),
        "major_hazards": int((outcomes.major_hazards > 0).sum()),
        "metrics": {name: ranking_metrics(s, y) for name, s in ranked.items()},
        "levels": _level_table(assessments, y, lambda a: a.level),
        "score_levels": _level_table(assessments, y, lambda a: a.score_level),
        "forced": dict(Counter(f for a in assessments for f in a.forced_by)),
        "seconds": {
            "simulate": round(t1 - t0, 2),
            "rollups": round(rollup_s, 2),
            "assess": round(t2 - t1 - rollup_s, 2),
        },
    }


def _level_table(
    assessments: Sequence[RiskAssessment], y: Any, pick: Callable[[RiskAssessment], Level]
) -> dict[str, dict[str, int]]:
    out = {lv.value: {"units": 0, "positives": 0} for lv in reversed(Level)}
    for a, pos in zip(assessments, np.asarray(y).tolist(), strict=True):
        row = out[pick(a).value]
        row["units"] += 1
        row["positives"] += int(pos)
    return out


def summarise(per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sd, min, max of every metric over seeds; level tables summed over seeds."""
    metrics: dict[str, dict[str, dict[str, float | None]]] = {}
    for name in RANKINGS:
        metrics[name] = {}
        for m in METRICS:
            vals = [s["metrics"][name][m] for s in per_seed if s["metrics"][name][m] is not None]
            metrics[name][m] = _stats(vals)
    levels: dict[str, dict[str, dict[str, float | None]]] = {}
    for key in ("levels", "score_levels"):
        table: dict[str, dict[str, float | None]] = {}
        for lv in reversed(Level):
            units = sum(s[key][lv.value]["units"] for s in per_seed)
            pos = sum(s[key][lv.value]["positives"] for s in per_seed)
            table[lv.value] = {
                "units": units,
                "share": _r(units / max(1, sum(s["units"] for s in per_seed))),
                "positives": pos,
                "incident_rate": _r(pos / units) if units else None,
            }
        levels[key] = table
    return {
        "base_rate": _stats([s["base_rate"] for s in per_seed]),
        "metrics": metrics,
        **levels,
        "forced": dict(sum((Counter(s["forced"]) for s in per_seed), Counter())),
    }


def run_risk_quality(units: int, seeds: Sequence[int], config: RiskConfig) -> dict[str, Any]:
    """The whole report: every seed, the summary, the machine (module docstring)."""
    if units < 10:
        raise ValueError("risk-quality needs at least 10 units (a top decile of one)")
    if not seeds:
        raise ValueError("risk-quality needs at least one seed")
    per_seed = [evaluate_seed(units, s, config) for s in seeds]
    vm = psutil.virtual_memory()
    held_out = set(seeds) <= set(HELD_OUT_SEEDS)
    return {
        "benchmark": "risk-quality",
        "command": f"firewatch bench risk-quality --units {units} --seeds {_seed_text(seeds)}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "ram_gib": round(vm.total / 2**30, 1),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "model": {"version": config.version, "source": config.source},
        "seeds": list(seeds),
        "seed_set": "held-out" if held_out else "tuning or mixed",
        "outcome": "a fire or a major hazard arising in the 91 days after the cut-off",
        "cutoff_days": 365,
        "top_fraction": TOP_FRACTION,
        "summary": summarise(per_seed),
        "per_seed": per_seed,
    }


def format_report(result: dict[str, Any]) -> str:
    """The summary as a short table."""
    s = result["summary"]
    b = s["base_rate"]
    lines = [
        f"risk quality, model {result['model']['version']}, {result['per_seed'][0]['units']} "
        f"units x {len(result['seeds'])} seeds "
        f"({result['seed_set']}: {_seed_text(result['seeds'])})",
        f"base rate {b['mean']:.3f} (min {b['min']:.3f}, max {b['max']:.3f})",
        f"{'ranking':<18} {'AUC':>13} {'top-10% share':>15} {'top-10% prec.':>15} {'lift':>6}",
    ]
    for name in RANKINGS:
        m = s["metrics"][name]
        lines.append(
            f"{name:<18} {_ms(m['auc']):>13} {_ms(m['top_decile_share']):>15} "
            f"{_ms(m['top_decile_precision']):>15} {_num(m['lift']['mean']):>6}"
        )
    lines.append("level    units  share  incident rate   (score alone: units, rate)")
    for lv, row in s["levels"].items():
        sl = s["score_levels"][lv]
        lines.append(
            f"{lv:<8} {row['units']:>5} {row['share']:>6.3f} {_num(row['incident_rate']):>14}"
            f"   ({sl['units']}, {_num(sl['incident_rate'])})"
        )
    forced = ", ".join(f"{k} {v}" for k, v in sorted(s["forced"].items())) or "none"
    lines.append(f"forced (units, all seeds): {forced}")
    return "\n".join(lines)


def parse_seeds(text: str) -> list[int]:
    """``"101-110"`` or ``"1,2,5-7"`` as a sorted list of distinct seeds."""
    seeds: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(f"bad seed list {text!r}: use e.g. 101-110 or 1,2,5-7") from None
        if a < 0 or b < a:
            raise ValueError(f"bad seed range {part!r}: need 0 <= first <= last")
        seeds.update(range(a, b + 1))
    return sorted(seeds)


def _seed_text(seeds: Sequence[int]) -> str:
    s = sorted(seeds)
    if s == list(range(s[0], s[-1] + 1)) and len(s) > 1:
        return f"{s[0]}-{s[-1]}"
    return ",".join(map(str, s))


def _stats(vals: Sequence[float]) -> dict[str, float | None]:
    if not vals:
        return {"mean": None, "sd": None, "min": None, "max": None}
    return {
        "mean": _r(statistics.fmean(vals)),
        "sd": _r(statistics.stdev(vals)) if len(vals) > 1 else 0.0,
        "min": _r(min(vals)),
        "max": _r(max(vals)),
    }


def _r(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else round(x, 4)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _ms(st: dict[str, float | None]) -> str:
    if st["mean"] is None:
        return "-"
    return f"{st['mean']:.3f} ± {st['sd'] or 0.0:.3f}"
