"""``firewatch analytics score`` (the offline scorer on one ``timestamp,value`` CSV,
``docs/analytics-score.md``) and ``firewatch analytics score-eval`` (the offline scorers
against labelled series, ``firewatch/lab/score_eval.py``; definitions in
``docs/analytics-score-evaluation.md``).

Expected failures (an unknown split, scorer or family, pip or the package registry
unreachable, a cached public file whose SHA-256 differs from the catalogue) print one line
``analytics score-eval: ...`` to stderr and exit 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from firewatch.cli.output import write_json
from firewatch.core.settings import Settings

__all__ = ["add_commands", "cmd_analytics_score", "cmd_analytics_score_eval"]


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def cmd_analytics_score(_settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.scoring.scorer import SeriesFileError, score_csv

    if not 0.0 < args.threshold <= 1.0:
        print("analytics score: --threshold must be in (0, 1]", file=sys.stderr)
        return 2
    try:
        print(score_csv(args.input, args.output, threshold=args.threshold))
    except SeriesFileError as err:
        print(f"analytics score: {err}", file=sys.stderr)
        return 2
    return 0


def cmd_analytics_score_eval(_settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.lab.public_series import PublicDataError, default_cache_dir
    from firewatch.lab.score_eval import EvalError, run_score_eval

    try:
        report = run_score_eval(
            args.split,
            scorers=_names(args.scorer),
            families=_names(args.family) if args.family else None,
            threshold=args.threshold,
            data_dir=args.data_dir or default_cache_dir(),
            seeds=args.seeds,
        )
    except (EvalError, PublicDataError) as err:
        print(f"analytics score-eval: {err}", file=sys.stderr)
        return 2
    print(report.format_text())
    if args.json:
        write_json(args.json, report.to_json())
        print(f"wrote {args.json}")
    return 0


def add_commands(analytics: Any) -> None:
    """Add ``score`` and ``score-eval`` to the ``analytics`` subcommands (an argparse
    subparsers action)."""
    asc: argparse.ArgumentParser = analytics.add_parser(
        "score", help="streaming anomaly scores for a timestamp,value CSV (no look-ahead)"
    )
    asc.add_argument("--input", type=Path, required=True, help="CSV with timestamp,value")
    asc.add_argument("--output", type=Path, required=True, help="CSV with scores and flags")
    asc.add_argument("--threshold", type=float, default=0.5, help="alert level on the score")
    asc.set_defaults(func=cmd_analytics_score)
    p: argparse.ArgumentParser = analytics.add_parser(
        "score-eval",
        help="the offline scorers against named public and recorded-like labelled series",
    )
    p.add_argument(
        "--split",
        required=True,
        help="tune (look and tune freely), held-out (the final report only) or all",
    )
    p.add_argument(
        "--scorer", default="firewatch,gaussian", help="comma-separated: firewatch, gaussian"
    )
    p.add_argument(
        "--family",
        help="comma-separated families (ecg, ucr135, daphnet, nile, tcpd, server, irregular, "
        "drifting, short, traffic, machine, textbook) or sources (public, recorded-like)",
    )
    p.add_argument("--seeds", type=int, help="only the first N seeds of each generated family")
    p.add_argument("--json", type=Path, help="write every figure, per series too, here")
    p.add_argument(
        "--data-dir",
        type=Path,
        help="cache of the public series' wheels and files "
        "(default $XDG_CACHE_HOME/firewatch/public-series)",
    )
    p.add_argument("--threshold", type=float, default=0.5, help="alert level on the score")
    p.set_defaults(func=cmd_analytics_score_eval)
