"""``firewatch registry import-units``, ``firewatch analysis [run | refresh]`` and
``firewatch bench rollups``: the tiered fire-analysis database (docs/analysis.md).

Registered by ``firewatch/cli/__init__.py`` through :func:`add_commands`, in the ``bench``
group by ``cli/bench.py`` through :func:`add_bench_commands`; ``import-units`` by
``cli/registry.py`` (which makes the ``registry`` group) through
:func:`add_registry_commands`. Handlers take ``(settings, args)`` and return the exit code.
What these commands refuse (a file that is not a units CSV, settings the rollups cannot
work with, a database without the schema) prints one line ``firewatch: ...`` and exits 2;
an import that rejected some rows prints its report and exits 1 (the other rows are
written). Other expected failures (no database, a missing file) are the CLI's own
(``_expected_error``).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from firewatch.cli.migrated import Refused, migrated_db
from firewatch.cli.output import print_import_report, write_json
from firewatch.cli.signals import stop_on_signals
from firewatch.core.settings import Settings


def _fail(message: str) -> int:
    print(f"firewatch: {' '.join(message.split())}", file=sys.stderr)
    return 2


# -- registry import-units ----------------------------------------------------------------


def cmd_import_units(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.core.csv_import import ImportFileError, decode
    from firewatch.core.unit_import import parse_units_csv
    from firewatch.storage.units import import_units, street_ids

    path: Path = args.file
    try:
        text = decode(path.read_bytes())
        with migrated_db(settings) as conn:
            parsed = parse_units_csv(text, street_ids(conn))
            results = import_units(
                conn, parsed.rows, parsed.columns, rejected=parsed.rejected, dry_run=args.dry_run
            )
    except ImportFileError as err:
        return _fail(f"{path}: {err}")
    except Refused as err:
        return _fail(str(err))
    return print_import_report(path, results, dry_run=args.dry_run, as_json=args.json)


# -- analysis -----------------------------------------------------------------------------


def cmd_analysis_run(settings: Settings, _args: argparse.Namespace) -> int:
    from firewatch.analysis.service import AnalysisService
    from firewatch.runtime.postgres import resolve_database_url

    try:
        service = AnalysisService(settings, resolve_database_url(settings))
    except ValueError as err:
        return _fail(str(err))
    stop = stop_on_signals()
    service.run(stop)
    return 0


def _since(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or time (2026-11-05, 2026-11-05T08:00+08:00)"
        ) from None
    if when.tzinfo is None and len(text) > 10:
        raise argparse.ArgumentTypeError(f"{text!r}: a time needs its UTC offset (Z, +08:00)")
    return when


def cmd_analysis_refresh(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.analysis.refresh import Rollups
    from firewatch.analysis.service import check_settings

    try:
        check_settings(settings)
        rollups = Rollups(settings)
    except ValueError as err:
        return _fail(str(err))
    since: datetime | None = args.since
    if since is None:  # the span late data can still touch
        since = datetime.now(UTC) - timedelta(seconds=settings.max_backlog_age_s)
    elif since.tzinfo is None:  # a date: its local day
        since = since.replace(tzinfo=UTC) - timedelta(hours=rollups.offset_h)

    def progress(day: datetime, buckets: int) -> None:
        if not args.quiet:
            print(f"{day.isoformat()}: {buckets} device-hours", flush=True)

    try:
        with migrated_db(settings) as conn:
            rollups.load_limits(conn)
            done = rollups.refresh_since(conn, since, progress=progress)
    except Refused as err:
        return _fail(str(err))
    print(
        f"recomputed {done} device-hour buckets since {since.isoformat()} "
        f"({rollups.stats.rows} rollup rows written)"
    )
    return 0


# -- bench rollups ------------------------------------------------------------------------


def cmd_bench_rollups(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.lab.rollup_bench import BenchConfig, format_result, run_rollup_bench

    cfg = BenchConfig(
        units=args.units,
        days=args.days,
        hours=args.hours,
        queries=args.queries,
        refresh_devices=args.refresh_devices,
        seed=args.seed,
    )
    try:
        cfg.check()
    except ValueError as err:
        return _fail(f"bench rollups: {err}")
    result = run_rollup_bench(settings, cfg)
    print(format_result(result))
    write_json(args.json, result)
    return 0


# -- registration -------------------------------------------------------------------------


def add_registry_commands(registry: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``import-units`` in the ``registry`` group (made by ``cli/registry.py``)."""
    imp = registry.add_parser(
        "import-units",
        help="create or update units from a CSV file, with a report per row (docs/analysis.md)",
    )
    imp.add_argument("file", type=Path, help="CSV, UTF-8, with a header row")
    imp.add_argument("--dry-run", action="store_true", help="check every row, write nothing")
    imp.add_argument("--json", action="store_true", help="the report as JSON")
    imp.set_defaults(func=cmd_import_units)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``analysis [run | refresh]``."""
    ana = sub.add_parser(
        "analysis", help="the rollup service (default): device, unit and region rollups"
    )
    ana.set_defaults(func=cmd_analysis_run)
    analysis = ana.add_subparsers(dest="analysis_command", required=False)
    analysis.add_parser("run", help="keep the rollups current, until SIGTERM").set_defaults(
        func=cmd_analysis_run
    )
    ref = analysis.add_parser(
        "refresh", help="recompute every rollup touched since a time (a backfill), once"
    )
    ref.add_argument(
        "--since",
        type=_since,
        help="a date (its local day) or an ISO time with offset; default: the backlog limit "
        "(FIREWATCH_MAX_BACKLOG_AGE_S) ago",
    )
    ref.add_argument("--quiet", action="store_true", help="no line per day")
    ref.set_defaults(func=cmd_analysis_refresh)


def add_bench_commands(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``bench rollups``."""
    br = bench.add_parser(
        "rollups", help="rollup reads (p50/p95) over a year of rollups, and refresh cost"
    )
    br.add_argument("--units", type=int, default=1000, help="units in the generated city")
    br.add_argument("--days", type=int, default=365, help="days of daily rollups per unit")
    br.add_argument(
        "--hours", type=int, default=0, help="days of hourly unit rollups too (default none)"
    )
    br.add_argument("--queries", type=int, default=200, help="timed reads per query kind")
    br.add_argument(
        "--refresh-devices", type=int, default=200, help="devices with one hour of new data"
    )
    br.add_argument("--seed", type=int, default=1, help="the generator's seed")
    br.add_argument("--json", type=Path, help="write the result document here")
    br.set_defaults(func=cmd_bench_rollups)
