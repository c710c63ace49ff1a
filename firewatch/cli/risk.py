"""Risk commands of the ``firewatch`` CLI (docs/risk.md): ``firewatch risk [run]`` (the
worker), ``firewatch risk score`` (score now, or as at a time, and keep it), ``firewatch
risk show`` (a unit's current score and why), and ``firewatch bench risk-quality``.

``firewatch/cli/__init__.py`` calls :func:`add_commands` with its top-level subparsers, and
``firewatch/cli/bench.py`` calls :func:`add_bench_commands` with its ``bench`` subparsers.
Nothing here is imported from either (they import this module); the services, the lab and the
simulator are imported inside the handlers only, so ``firewatch --help`` stays quick.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from firewatch.cli.output import write_json
from firewatch.cli.signals import stop_on_signals
from firewatch.core.settings import Settings


def _seeds(text: str) -> list[int]:
    from firewatch.lab.risk_quality import parse_seeds

    try:
        return parse_seeds(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _units(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 10:
        raise argparse.ArgumentTypeError("at least 10 units (the top decile needs one)")
    return n


def cmd_bench_risk_quality(settings: Settings, args: argparse.Namespace) -> int:
    """Score simulated units at the cut-off and measure the ranking against the following
    quarter's incidents; print the table, write the JSON if asked."""
    from firewatch.core.risk_config import RiskConfigError, load_risk_config
    from firewatch.lab.risk_quality import format_report, run_risk_quality

    try:
        config = load_risk_config(args.model or settings.risk_model)
    except RiskConfigError as err:
        print(f"firewatch: {err}", file=sys.stderr)
        return 2
    result = run_risk_quality(args.units, args.seeds, config)
    print(format_report(result))
    write_json(args.json, result, ensure_ascii=False)
    return 0


def add_bench_commands(bench_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``risk-quality`` under ``firewatch bench``."""
    rq = bench_sub.add_parser(
        "risk-quality",
        help="how well the risk score ranks the units with incidents in the following quarter "
        "(simulated unit history)",
    )
    rq.add_argument("--units", type=_units, default=1000, help="units per seed (default 1000)")
    rq.add_argument(
        "--seeds",
        type=_seeds,
        default=list(range(1, 21)),
        help="e.g. 101-110 or 1,2,5-7 (default 1-20, the tuning seeds; the report uses the "
        "held-out 101-110)",
    )
    rq.add_argument(
        "--model",
        type=Path,
        help="risk model file (default: FIREWATCH_RISK_MODEL, the shipped one)",
    )
    rq.add_argument("--json", type=Path, help="write the result document here")
    rq.set_defaults(func=cmd_bench_risk_quality)


def _when(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a time zone (e.g. +08:00 or Z)")
    return at


def cmd_risk_run(settings: Settings, _args: argparse.Namespace) -> int:
    """The risk worker until SIGINT/SIGTERM (firewatch/risk/service.py)."""
    from firewatch.risk.service import RiskService
    from firewatch.runtime.postgres import resolve_database_url

    service = RiskService(settings, resolve_database_url(settings))  # loads the model first
    service.run(stop_on_signals())
    return 0


def cmd_risk_score(settings: Settings, args: argparse.Namespace) -> int:
    """Score the given units (default: all) now or as at ``--at``, keep every score (trigger
    ``manual``), print one line per unit (or JSON)."""
    import psycopg

    from firewatch.core.risk import explain
    from firewatch.core.risk_config import load_risk_config
    from firewatch.risk.scoring import Keep, score_units
    from firewatch.runtime.postgres import resolve_database_url

    config = load_risk_config(args.model or settings.risk_model)
    at = args.at or datetime.now(UTC)
    with psycopg.connect(resolve_database_url(settings), autocommit=True) as conn:
        outcomes = score_units(
            conn, config, args.unit or None, at, trigger="manual", keep=Keep(always=True)
        )
    missing = sorted(set(args.unit or ()) - {o.assessment.unit_id for o in outcomes})
    if args.json:
        doc = [
            {
                **o.assessment.to_json(),
                "previous_level": o.previous_level,
                "warning_id": o.warning_id,
            }
            for o in outcomes
        ]
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        for o in outcomes:
            rose = f" (was {o.previous_level}; warning {o.warning_id})" if o.warning_id else ""
            print(f"{o.assessment.unit_id}: {explain(o.assessment)}{rose}")
    if missing:
        print(f"firewatch: no unit has id {', '.join(missing)}", file=sys.stderr)
        return 2
    return 0


def cmd_risk_show(settings: Settings, args: argparse.Namespace) -> int:
    """A unit's current stored score with every indicator's part."""
    import psycopg

    from firewatch.runtime.postgres import resolve_database_url
    from firewatch.storage.risk import last_scores

    with psycopg.connect(resolve_database_url(settings), autocommit=True) as conn:
        row = last_scores(conn, [args.unit]).get(args.unit)
    if row is None:
        print(f"firewatch: unit {args.unit!r} does not exist or has no score yet", file=sys.stderr)
        return 2
    forced = f", forced by {', '.join(row.forced_by)}" if row.forced_by else ""
    print(
        f"{row.unit_id}: {row.level} (score {row.score:.2f}, {row.score_level} by score{forced})"
        f" as of {row.as_of.isoformat()}, model {row.config_version}, {row.trigger}"
    )
    for c in row.breakdown:
        print(
            f"  {c['indicator']:<28} {c['points']:>6.2f} / {c['weight']:<5g}"
            f" value {c['value']} {c['unit']} ({c['source']})"
        )
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``firewatch risk`` and its subcommands."""
    risk = sub.add_parser(
        "risk", help="unit fire-risk scores: the worker (default), score now, show one unit"
    )
    risk.set_defaults(func=cmd_risk_run)
    risk_sub = risk.add_subparsers(dest="risk_command", required=False)
    risk_sub.add_parser("run", help="the worker: schedule and events (default)").set_defaults(
        func=cmd_risk_run
    )
    sc = risk_sub.add_parser("score", help="score units now (or as at --at) and keep the scores")
    sc.add_argument("--unit", action="append", help="a unit id (repeat; default: every unit)")
    sc.add_argument("--at", type=_when, help="as at this time (ISO 8601 with a zone)")
    sc.add_argument("--model", type=Path, help="risk model file (default: FIREWATCH_RISK_MODEL)")
    sc.add_argument("--json", action="store_true", help="print JSON")
    sc.set_defaults(func=cmd_risk_score)
    sh = risk_sub.add_parser("show", help="a unit's current score and every indicator's part")
    sh.add_argument("--unit", required=True)
    sh.set_defaults(func=cmd_risk_show)
