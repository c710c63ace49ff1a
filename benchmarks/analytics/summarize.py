"""Markdown tables of the committed evaluation reports: python benchmarks/analytics/summarize.py DIR"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def secs(x: float | None) -> str:
    return "–" if x is None else f"{x / 60:.1f}"


def main(folder: Path) -> None:
    docs = sorted(folder.glob("*.json"))
    print("| report | labels | detected | P | R | F1 | false alerts | per 1,000 dev-h |"
          " delay median / p95 (min) | P, F1 counting device reports |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    faults: dict[str, list[int]] = {}
    for p in docs:
        d = json.loads(p.read_text("utf-8"))
        strict = d.get("reported_counted_as_false", {})
        dd = d["detection_delay_s"]
        print(f"| {p.stem} | {d['labels']} | {d['detected']} | {pct(d['precision'])} | "
              f"{pct(d['recall'])} | {pct(d['f1'])} | {d['false_alerts']} | "
              f"{d['false_alerts_per_1000_device_hours']:.2f} | "
              f"{secs(dd['median'])} / {secs(dd['p95'])} | "
              f"{pct(strict.get('precision'))}, {pct(strict.get('f1'))} |")
        if "no-models" in p.stem:
            continue
        for f, v in d["per_fault"].items():
            acc = faults.setdefault(f, [0, 0, 0])
            acc[0] += v["labels"]
            acc[1] += v["detected"]
            acc[2] += v["false_alerts"]
    print()
    print("| fault type | labels | detected | false alerts attributed |")
    print("|---|---:|---:|---:|")
    for f, (n, det, fa) in sorted(faults.items()):
        if n:
            print(f"| {f} | {n} | {det} | {fa} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
