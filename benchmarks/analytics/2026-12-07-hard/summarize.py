"""Markdown tables of the reports in this directory (docs/analytics.md#harder-scenarios).

Usage: .venv/bin/python benchmarks/analytics/2026-12-07-hard/summarize.py [DIR]

Groups: the existing scenarios at their own seeds (tune) and at seed 101 (held out); the
hard scenarios at seeds 1-3 (tune) and 101-103 (held out). Per detector and group: false
alerts per 1,000 device-hours = summed false alerts / summed device-hours of the kinds it
sees; matched anomalies and labels detected summed; median delay = the median of the
runs' per-detector medians (the reports hold medians, not every delay).

If ``DIR/before-fix/`` holds the hard-scenario reports from before the glitch fix (issue
16), a third table compares them, per hard group: labels detected, summed false alerts per
1,000 device-hours, and per detector whose figures changed, false alerts per 1,000
device-hours and labels detected, before → after.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

HARD = ("hard-water", "hard-sheds", "hard-city")
EXISTING = ("standard", "detectors-water", "detectors-sheds", "detectors-panels")


def group_of(name: str) -> str | None:
    scenario, _, seed = name.rpartition("-seed")
    held = int(seed) >= 100
    if scenario in HARD:
        return "hard, held out" if held else "hard, tune"
    if scenario in EXISTING:
        return "existing, held out" if held else "existing, tune"
    return None


Runs = dict[str, list[tuple[str, dict[str, Any]]]]
GROUPS = ["existing, tune", "existing, held out", "hard, tune", "hard, held out"]


def load(directory: Path) -> Runs:
    runs: Runs = {g: [] for g in GROUPS}
    for path in sorted(directory.glob("*.json")):
        g = group_of(path.stem)
        if g is not None:
            runs[g].append((path.stem, json.loads(path.read_text("utf-8"))))
    return runs


def totals(runs: list[tuple[str, dict[str, Any]]], det: str | None = None) -> tuple[float, int]:
    """False alerts per 1,000 device-hours (summed) and labels detected (summed), of the
    runs overall (``det`` None) or of one detector."""
    if det is None:
        fa = sum(d["false_alerts"] for _, d in runs)
        hours = sum(d["device_hours"] for _, d in runs)
        return (fa / hours * 1000 if hours else 0.0), sum(d["detected"] for _, d in runs)
    figs = [d["detectors"][det] for _, d in runs if det in d["detectors"]]
    fa = sum(f["false_alerts"] for f in figs)
    hours = sum(f["device_hours"] for f in figs)
    return (fa / hours * 1000 if hours else 0.0), sum(f["labels_detected"] for f in figs)


def precision(runs: list[tuple[str, dict[str, Any]]]) -> float:
    """Matched / (matched + false), summed over the runs (as the reports count it)."""
    matched = sum(d["matched_anomalies"] for _, d in runs)
    return matched / max(1, matched + sum(d["false_alerts"] for _, d in runs))


def compare(before: Runs, after: Runs) -> None:
    """Before → after the glitch fix, per hard group (only runs present in both)."""
    print()
    print("| group | figure | before | after |")
    print("|---|---|---:|---:|")
    for g in ("hard, tune", "hard, held out"):
        names = {n for n, _ in before[g]} & {n for n, _ in after[g]}
        b = [r for r in before[g] if r[0] in names]
        a = [r for r in after[g] if r[0] in names]
        if not names:
            continue
        labels = sum(d["labels"] for _, d in a)
        (fb, lb), (fa, la) = totals(b), totals(a)
        print(f"| {g} ({len(names)} runs) | labels detected of {labels} | {lb} | {la} |")
        print(f"| {g} | precision (summed) | {precision(b):.3f} | {precision(a):.3f} |")
        print(f"| {g} | false alerts / 1,000 device-h | {fb:.1f} | {fa:.1f} |")
        dets = sorted({k for _, d in a + b for k in d["detectors"]})
        for det in dets:
            (fb, lb), (fa, la) = totals(b, det), totals(a, det)
            if (round(fb, 1), lb) != (round(fa, 1), la):
                print(
                    f"| {g} | `{det}`: false alerts / 1,000 device-h (labels) | "
                    f"{fb:.1f} ({lb}) | {fa:.1f} ({la}) |"
                )


def main(directory: Path) -> None:
    groups = GROUPS
    runs = load(directory)
    print(
        "| run | group | labels | detected | precision | false alerts / 1,000 device-h |"
        " alerts in maintenance | median delay (min) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for g in groups:
        for name, d in runs[g]:
            med = d["detection_delay_s"]["median"]
            print(
                f"| {name} | {g} | {d['labels']} | {d['detected']} | {d['precision']:.3f} | "
                f"{d['false_alerts_per_1000_device_hours']:.1f} | {d['during_maintenance']} | "
                f"{'-' if med is None else f'{med / 60:.0f}'} |"
            )
    print()
    detectors = sorted({k for g in groups for _, d in runs[g] for k in d["detectors"]})
    print("| detector | " + " | ".join(groups) + " |")
    print("|---|" + "---:|" * len(groups))
    for det in detectors:
        cells = []
        for g in groups:
            figs = [d["detectors"][det] for _, d in runs[g] if det in d["detectors"]]
            hours = sum(
                d["detectors"][det]["device_hours"] if det in d["detectors"] else 0.0
                for _, d in runs[g]
            )
            if not figs:
                cells.append("–")
                continue
            fa = sum(f["false_alerts"] for f in figs)
            matched = sum(f["matched_anomalies"] for f in figs)
            labels = sum(f["labels_detected"] for f in figs)
            meds = [f["median_delay_s"] for f in figs if f["median_delay_s"] is not None]
            med = f"{statistics.median(meds) / 60:.0f} min" if meds else "–"
            rate = fa / hours * 1000 if hours else 0.0
            cells.append(f"{rate:.1f} / {matched} ({labels}) / {med}")
        print(f"| `{det}` | " + " | ".join(cells) + " |")
    if (directory / "before-fix").is_dir():
        compare(load(directory / "before-fix"), runs)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
