"""Fit indicator weights on the tuning seeds (1-20) only; print them and how they rank.

Reproduces the tuning step behind firewatch/core/risk_model_v1.toml (benchmarks/risk/README.md,
"How the model was tuned"). For each tuning seed it simulates the unit history, scores every
unit at the cut-off with the given model, and keeps each indicator's normalised value (0..1).
A logistic regression with non-negative coefficients on those values, against the following
quarter's incidents, gives relative weights; they are scaled to 100 (at least 1 each). Each
half of the seeds is scored with weights fitted on the other half (two-fold by seed), next to
the model's own weights and their average ("blend"); the score quantiles suggest cut-offs.
Never run it on the held-out seeds 101-110.

    .venv/bin/python benchmarks/risk/tune_weights.py [MODEL.toml] [--units 1000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from sklearn.metrics import roc_auc_score

from firewatch.core.risk import assess, load_risk_config
from firewatch.lab.risk_quality import HELD_OUT_SEEDS, TUNING_SEEDS
from firewatch.simulators.unit_history import simulate_unit_history


def features(model: Path | None, units: int) -> tuple[list[str], dict[int, tuple]]:
    config = load_risk_config(model)
    out = {}
    names: list[str] = []
    for seed in TUNING_SEEDS:
        assert seed not in HELD_OUT_SEEDS
        h = simulate_unit_history(units, seed)
        states = h.states_at()
        rows, scores = [], []
        for i, u in enumerate(h.units):
            a = assess(u.unit_id, h.cutoff, h.rollups(i), states[i], config)
            names = [c.indicator for c in a.breakdown]
            rows.append([c.normalised for c in a.breakdown])
            scores.append(a.score)
        out[seed] = (np.array(rows), h.outcomes().incident, np.array(scores))
    return names, out


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> np.ndarray:
    """Non-negative logistic regression; returns the coefficients (no intercept)."""
    k = x.shape[1]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:k], theta[k]
        z = x @ w + b
        p = 1 / (1 + np.exp(-z))
        eps = 1e-12
        nll = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)) + l2 * w @ w
        g = p - y
        grad = np.concatenate([x.T @ g / len(y) + 2 * l2 * w, [g.mean()]])
        return float(nll), grad

    res = minimize(
        loss, np.zeros(k + 1), jac=True, method="L-BFGS-B", bounds=[(0, None)] * k + [(None, None)]
    )
    return res.x[:k]


def to_points(coef: np.ndarray) -> np.ndarray:
    w = np.maximum(coef / coef.sum() * 100, 1.0)
    w = np.round(w / w.sum() * 100)
    w[np.argmax(w)] += 100 - w.sum()
    return w


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", type=Path)
    ap.add_argument("--units", type=int, default=1000)
    args = ap.parse_args()
    names, data = features(args.model, args.units)
    seeds = sorted(data)
    halves = (seeds[: len(seeds) // 2], seeds[len(seeds) // 2 :])
    cat = lambda ss, j: np.concatenate([data[s][j] for s in ss])  # noqa: E731
    current = {n: 0.0 for n in names}
    config = load_risk_config(args.model)
    for ind in config.indicators:
        current[ind.name] = ind.weight
    cur = np.array([current[n] for n in names])
    for a, b in (halves, halves[::-1]):
        w = to_points(fit(cat(a, 0), cat(a, 1).astype(float)))
        blend = to_points((w + cur) / 2)
        auc = {
            name: np.mean([roc_auc_score(data[s][1], data[s][0] @ v) for s in b])
            for name, v in (("fitted", w), ("blend", blend), ("model's", cur))
        }
        print(
            f"fit on {a[0]}-{a[-1]}, scored on {b[0]}-{b[-1]}: AUC "
            + ", ".join(f"{k} {v:.4f}" for k, v in auc.items())
        )
    w = to_points(fit(cat(seeds, 0), cat(seeds, 1).astype(float)))
    blend = to_points((w + cur) / 2)
    print(f"{'indicator':<22} {'model':>6} {'fitted':>7} {'blend':>6}")
    for n, c, f, m in zip(names, cur, w, blend, strict=True):
        print(f"{n:<22} {c:>6g} {f:>7g} {m:>6g}")
    scores = cat(seeds, 2)
    q = np.quantile(scores, [0.63, 0.88, 0.97])
    print("score quantiles 63 / 88 / 97 %:", " / ".join(f"{v:.1f}" for v in q))


if __name__ == "__main__":
    main()
