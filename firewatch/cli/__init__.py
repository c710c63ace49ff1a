"""The ``firewatch`` command. Each subcommand builds Settings once and passes it down.

Without ``FIREWATCH_DATA_DIR`` the data directory is the nearest ``.firewatch/`` in the current
directory or its parents (``runtime/postgres.py``). Only ``firewatch up`` and
``firewatch db upgrade`` may create an embedded database; other commands that need one and
find none stop with exit code 2.

Expected failures (bad settings, no or an unmigrated database, an unreachable database, a
missing file, a broker or API that cannot start, an insecure webhook secret) print one line
``firewatch: ...`` to stderr and exit non-zero (2: configuration, 1: environment), without a
traceback unless ``-v``. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from pydantic import ValidationError
from pydantic_settings import SettingsError

from firewatch.cli import analysis as tiers
from firewatch.cli import (
    bench,
    broker,
    gateway,
    people,
    registry,
    risk,
    roster,
    scoring,
    supervise,
    vendor,
)
from firewatch.cli.arguments import duration
from firewatch.cli.output import write_json
from firewatch.cli.signals import stop_on_signals
from firewatch.core.settings import Settings
from firewatch.runtime.postgres import (
    DatabaseNotFoundError,
    EmbeddedDatabaseError,
    locate_data_dir,
    resolve_database_url,
)

log = logging.getLogger("firewatch")


class SchemaMissingError(Exception):
    """The database exists but has no Firewatch schema (``firewatch db upgrade`` never ran)."""


def _connect(
    settings: Settings, *, create: bool = False, schema: bool = True
) -> psycopg.Connection[Any]:
    """An autocommit connection to the configured database. ``create``: the embedded
    database may be initialised if there is none (``db upgrade`` only; see
    :func:`resolve_database_url`). ``schema``: raise :class:`SchemaMissingError` unless the
    migrations have run there."""
    from firewatch.storage.migrate import is_migrated

    conn = psycopg.connect(resolve_database_url(settings, create=create), autocommit=True)
    try:
        if schema and not is_migrated(conn):
            raise SchemaMissingError(
                f"the database {conn.info.dbname!r} has no Firewatch schema; run "
                "`firewatch db upgrade` with the same settings first"
            )
    except BaseException:
        conn.close()
        raise
    return conn


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from firewatch.storage.maintenance import maintain
    from firewatch.storage.migrate import current_flavour, upgrade

    with _connect(settings, create=True, schema=False) as conn:
        applied = upgrade(conn, settings.storage_flavour)
        maintain(conn, settings)
        flavour = current_flavour(conn)
    print(
        f"applied {len(applied)} migration(s): {', '.join(applied)} [{flavour}]"
        if applied
        else f"database is up to date [{flavour}]"
    )
    return 0


def cmd_db_maintain(settings: Settings, _args: argparse.Namespace) -> int:
    from firewatch.storage.maintenance import maintain

    with _connect(settings) as conn:
        r = maintain(conn, settings)
    print(r.summary())
    return 0


def cmd_db_seed(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.core.gateway_rows import known_profiles, profiles_file_of
    from firewatch.storage.seed import load_seed, read_seed

    city = read_seed(args.file)
    # The gateway's profiles: the built-in ones and the operator's file, as it reads them.
    profiles = known_profiles(profiles_file_of(settings))
    with _connect(settings) as conn:
        counts = load_seed(conn, city, profiles=profiles)
    print("seeded " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def cmd_db_stats(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.storage.table_counts import collect

    with _connect(settings) as conn:
        stats = collect(conn)
    if args.json:
        print(json.dumps(stats, indent=2, ensure_ascii=False))
    else:
        for table, info in stats.items():
            extra = (
                f"  newest {info['newest_received_at']}" if info.get("newest_received_at") else ""
            )
            print(f"{table:<14} {info['rows']:>12}{extra}")
    return 0


def cmd_db_anomalies(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.storage.anomalies import recent_anomalies

    with _connect(settings) as conn:
        rows = recent_anomalies(conn, limit=args.limit, open_only=args.open)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for r in rows:
        state = "open" if r["ended_at"] is None else "ended"
        where = f"{r['device_id']}" + (f" {r['component']}" if r["component"] else "")
        print(
            f"{r['detected_at'][:19]}  {r['severity']:<8} {r['kind']:<24} {where:<28} "
            f"{state:<5} {r['explanation']}"
        )
    if not rows:
        print("no anomalies" + (" open" if args.open else ""))
    return 0


def cmd_ingest(settings: Settings, _args: argparse.Namespace) -> int:
    from firewatch.ingest.service import IngestService

    if not settings.mqtt_url:
        print(
            "firewatch: FIREWATCH_MQTT_URL is not set (firewatch up starts a broker)",
            file=sys.stderr,
        )
        return 2
    stop = stop_on_signals()
    service = IngestService(settings, resolve_database_url(settings), settings.mqtt_url)
    service.run(stop)
    return 0


def cmd_ingest_retire(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.ingest.service import IngestService

    if not settings.mqtt_url:
        print("firewatch: FIREWATCH_MQTT_URL is not set", file=sys.stderr)
        return 2
    mqtt_url = settings.mqtt_url
    if args.client_id:
        settings = settings.model_copy(update={"ingest_client_id": args.client_id})
    stop = stop_on_signals()
    service = IngestService(
        settings, resolve_database_url(settings), mqtt_url, retire=True, quiet_s=args.quiet
    )
    stats = service.run(stop)
    if stop.is_set():
        print(
            f"retire of {settings.ingest_client_id} interrupted after {stats.received} "
            "messages; its session is kept: run it again",
            file=sys.stderr,
        )
        return 1
    print(
        f"retired {settings.ingest_client_id}: stored what was queued for it "
        f"({stats.received} messages) and removed its session from the broker"
    )
    return 0


def cmd_alerting(settings: Settings, _args: argparse.Namespace) -> int:
    from firewatch.alerting.dispatcher import OutboxDispatcher, check_webhook_secret
    from firewatch.alerting.service import AlertingService
    from firewatch.runtime.supervise import run_together

    check_webhook_secret(settings)  # before the database starts: refusing must be quick
    stop = stop_on_signals()
    url = resolve_database_url(settings)
    with OutboxDispatcher(settings, url) as dispatcher:
        return run_together(stop, [AlertingService(settings, url), dispatcher])


def cmd_api(settings: Settings, _args: argparse.Namespace) -> int:
    from firewatch.api.server import serve

    stop = stop_on_signals()  # before serve(): uvicorn re-raises a captured signal on exit
    serve(
        settings,
        resolve_database_url(settings),
        stop,
        ready=lambda url: print(
            f"API on {url} (alerts: {url}/alerts, live stream: {url}/alerts/stream)", flush=True
        ),
    )
    return 0


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.simulators.city import units_for_devices
    from firewatch.simulators.engine import Simulation, scenario_window
    from firewatch.simulators.scenario import load_scenario
    from firewatch.simulators.sinks import (
        publish_mqtt,
        write_labels,
        write_stream,
    )

    scenario = load_scenario(args.scenario)
    if args.speedup:
        scenario = scenario.model_copy(update={"speedup": args.speedup})
    if args.start:
        start_value = "auto" if args.start == "auto" else datetime.fromisoformat(args.start)
        scenario = scenario.model_copy(update={"start": start_value})
    live = args.out is None
    if live and not settings.mqtt_url:
        print("FIREWATCH_MQTT_URL is not set (or use --out FILE for offline mode)", file=sys.stderr)
        return 2
    try:
        start, end = scenario_window(scenario, live=live, duration=args.duration)
    except ValueError as err:
        print(f"simulate: {err}", file=sys.stderr)
        return 2
    units = args.units or (units_for_devices(scenario, args.devices) if args.devices else None)
    sim = Simulation(
        scenario, start=start, end=end, seed=args.seed, units=units, root=settings.topic_root
    )
    if args.register:
        from firewatch.simulators.gbt_sink import gbt_city
        from firewatch.storage.seed import load_seed

        with _connect(settings) as conn:
            counts = load_seed(conn, gbt_city(sim))  # with the scenario's GB/T addresses
        print("registered " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if args.labels_out:
        n = write_labels(sim.labels, args.labels_out)
        print(f"wrote {n} fault labels to {args.labels_out}")
    if args.out:
        result = write_stream(sim, args.out)
    else:
        assert settings.mqtt_url
        try:
            from firewatch.core.credentials import read_credentials
            from firewatch.simulators.gbt_sink import gbt_divert

            creds = read_credentials(args.credentials) if args.credentials else None
            with gbt_divert(settings, sim, args.gbt) as divert:  # GB/T panels over TCP
                result = publish_mqtt(
                    sim,
                    settings.mqtt_url,
                    stop_on_signals(),
                    scenario.speedup,
                    creds,
                    ca_file=settings.mqtt_ca_file,
                    divert=divert,
                )
        except (OSError, ValueError) as err:
            print(f"simulate: {err}", file=sys.stderr)
            return 1
    print(result.summary())
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.up import run_up

    return run_up(settings, stop=stop_on_signals(), simulate=not args.no_simulate)


def cmd_analytics_run(settings: Settings, _args: argparse.Namespace) -> int:
    from firewatch.analytics.service import AnalyticsService

    stop = stop_on_signals()
    AnalyticsService(settings, resolve_database_url(settings)).run(stop)
    return 0


def cmd_analytics_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.lab.detector_eval import evaluate_scenario

    try:
        run = evaluate_scenario(
            args.scenario,
            seed=args.seed,
            settings=settings,
            warmup_s=args.warmup,
            batch_s=args.batch,
            use_models=not args.no_models,
        )
    except (ValueError, OSError) as err:
        print(f"analytics evaluate: {err}", file=sys.stderr)
        return 2
    print(run.format_text())
    if args.json:
        write_json(args.json, run.to_json(), ensure_ascii=False)
        print(f"wrote {args.json}")
    return 0


def cmd_analytics_train(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, timedelta

    from firewatch.analytics.learned_models import train_from_database
    from firewatch.analytics.profiles import load_profiles

    end = datetime.fromisoformat(args.to) if args.to else datetime.now(UTC)
    start = datetime.fromisoformat(args.since) if args.since else end - timedelta(days=args.days)
    with _connect(settings) as conn:
        profiles = load_profiles(conn, settings)
        models = train_from_database(conn, profiles, start=start, end=end, seed=args.seed)
    if not models:
        print(
            f"analytics train: not enough history between {start.isoformat()} and "
            f"{end.isoformat()} to train any model",
            file=sys.stderr,
        )
        return 1
    for m in models:
        print(
            f"trained {m.kind.value} model v{m.version} on {m.metrics.get('n_train')} windows "
            f"({start.isoformat()} .. {end.isoformat()}), threshold {m.threshold:.4f}, "
            f"held-out outlier fraction {m.metrics.get('holdout_outlier_fraction')}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="firewatch", description="Urban IoT fire remote monitoring (see README.md)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="schema, seed data and statistics").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("upgrade", help="apply pending migrations (idempotent)").set_defaults(
        func=cmd_db_upgrade
    )
    db.add_parser("maintain", help="make/drop time partitions, expire dead letters").set_defaults(
        func=cmd_db_maintain
    )
    seed = db.add_parser("seed", help="load regions, units and devices from a TOML file")
    seed.add_argument("file", nargs="?", type=Path, help="default: the bundled Xuchang city")
    seed.set_defaults(func=cmd_db_seed)
    stats = db.add_parser("stats", help="row counts and newest timestamps")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(func=cmd_db_stats)
    anom = db.add_parser("anomalies", help="the newest anomaly episodes (what detectors found)")
    anom.add_argument("--open", action="store_true", help="only episodes still open")
    anom.add_argument("--limit", type=int, default=20)
    anom.add_argument("--json", action="store_true", help="machine-readable output")
    anom.set_defaults(func=cmd_db_anomalies)

    ing = sub.add_parser("ingest", help="the MQTT -> database consumer (default), retire")
    ing.set_defaults(func=cmd_ingest)
    ingest_sub = ing.add_subparsers(dest="ingest_command", required=False)
    ingest_sub.add_parser(
        "run", help="run the MQTT -> database consumer until SIGTERM"
    ).set_defaults(func=cmd_ingest)
    ret = ingest_sub.add_parser(
        "retire",
        help="retire a worker identity for good: store what the broker queued for its "
        "session, then delete the session (docs/reliability.md)",
    )
    ret.add_argument(
        "--client-id", help="the identity to retire (default: FIREWATCH_INGEST_CLIENT_ID)"
    )
    ret.add_argument(
        "--quiet",
        type=float,
        default=2.0,
        help="seconds without a message that mean the queue is empty",
    )
    ret.set_defaults(func=cmd_ingest_retire)

    sub.add_parser(
        "alerting",
        help="alerts from anomalies (dedup, correlation, escalation, offline) and the "
        "notification dispatcher, until SIGTERM",
    ).set_defaults(func=cmd_alerting)

    sub.add_parser(
        "api", help="the HTTP API: alerts, operator actions, live stream, health"
    ).set_defaults(func=cmd_api)

    sim = sub.add_parser(
        "simulate", help="simulated city with labelled faults: live over MQTT, or to a file"
    )
    sim.add_argument(
        "--scenario", default="builtin:demo", help="TOML file or builtin:NAME (demo, standard)"
    )
    sim.add_argument("--seed", type=int, help="overrides the scenario's seed")
    sim.add_argument("--labels-out", type=Path, help="write ground-truth fault labels (JSONL)")
    size = sim.add_mutually_exclusive_group()
    size.add_argument("--units", type=int, help="generate a city of this many units")
    size.add_argument("--devices", type=int, help="generate a city with at least N devices")
    sim.add_argument("--duration", type=duration, help="simulated span, e.g. 6h, 2d")
    sim.add_argument("--speedup", type=float, help="simulated seconds per real second")
    sim.add_argument(
        "--start", help="'auto' (live: end at now) or an ISO time with offset; default: scenario"
    )
    sim.add_argument("--out", type=Path, help="offline: write the stream here, no broker")
    sim.add_argument("--register", action="store_true", help="load the city into the database")
    sim.add_argument(
        "--credentials",
        type=Path,
        metavar="FILE",
        help="DEVICE<TAB>PASSWORD lines: those devices log in as themselves, one connection each",
    )
    sim.add_argument(
        "--gbt",
        metavar="HOST:PORT",
        help="live: panels with a GB/T address (scenario gbt_panels, else the registry) "
        "connect to this GB/T gateway over TCP instead of MQTT",
    )
    sim.set_defaults(func=cmd_simulate)

    bench.add_commands(sub)  # firewatch bench ...

    ana = sub.add_parser(
        "analytics", help="anomaly detection: the service (default), evaluate, train, score"
    )
    ana.set_defaults(func=cmd_analytics_run)
    analytics = ana.add_subparsers(dest="analytics_command", required=False)
    analytics.add_parser(
        "run", help="the detector service: feed -> detectors -> anomalies, until SIGTERM"
    ).set_defaults(func=cmd_analytics_run)
    ev = analytics.add_parser(
        "evaluate", help="a simulator scenario through the detectors offline, vs its labels"
    )
    ev.add_argument("--scenario", default="builtin:standard", help="TOML file or builtin:NAME")
    ev.add_argument("--seed", type=int, help="overrides the scenario's seed")
    ev.add_argument("--json", type=Path, help="write the report here")
    ev.add_argument(
        "--warmup",
        type=duration,
        default=2 * 86_400.0,
        help="fault-free history before the scored span (default 2d)",
    )
    ev.add_argument("--batch", type=duration, default=60.0, help="simulated seconds per batch")
    ev.add_argument("--no-models", action="store_true", help="without the learned models")
    ev.set_defaults(func=cmd_analytics_evaluate)
    tr = analytics.add_parser("train", help="train IsolationForest models from stored telemetry")
    tr.add_argument("--days", type=float, default=7.0, help="history to train on (default 7)")
    tr.add_argument("--since", help="start (ISO time with offset); overrides --days")
    tr.add_argument("--to", help="end (ISO time with offset); default now")
    tr.add_argument("--seed", type=int, default=0)
    tr.set_defaults(func=cmd_analytics_train)
    scoring.add_commands(analytics)  # firewatch analytics score, score-eval

    up = sub.add_parser("up", help="everything together on embedded defaults")
    up.add_argument("--no-simulate", action="store_true", help="do not start the simulator")
    up.set_defaults(func=cmd_up)
    # each area's commands live in a module of their own (firewatch/cli/*.py)
    supervise.add_commands(sub)  # firewatch supervise ...
    tiers.add_commands(sub)  # firewatch analysis
    vendor.add_commands(sub)  # firewatch vendor check ...
    registry.add_commands(sub)  # firewatch registry ..., firewatch vendor add|install|uninstall
    broker.add_commands(sub)  # firewatch broker certs, ...
    risk.add_commands(sub)  # firewatch risk ...
    people.add_commands(sub)  # firewatch user ...
    roster.add_commands(sub)  # firewatch roster ..., firewatch user contact
    gateway.add_commands(sub)  # firewatch gateway
    return parser


def _settings_errors(err: ValidationError | SettingsError) -> list[str]:
    """One line per bad ``FIREWATCH_`` variable (its value is not echoed: it may be secret)."""
    if isinstance(err, SettingsError):
        # pydantic-settings names the field only in its message; the parse error is the cause
        field = re.search(r'field "(\w+)"', str(err))
        name = f"FIREWATCH_{field[1].upper()}" if field else "a FIREWATCH_ variable"
        cause = f": {err.__cause__}" if err.__cause__ is not None else ""
        return [f"{name}: cannot parse the value{cause}"]
    problems: defaultdict[str, list[str]] = defaultdict(list)
    for e in err.errors(include_url=False):
        loc = e["loc"]
        name = f"FIREWATCH_{str(loc[0]).upper()}" if loc else "settings"
        where = "".join(f"[{part}] " for part in loc[1:])  # a key of a JSON value
        problems[name].append(where + e["msg"].removeprefix("Value error, "))
    return [f"{name}: {'; '.join(msgs)}" for name, msgs in problems.items()]


def _expected_error(err: Exception) -> tuple[int, str] | None:
    """Exit code and one-line message for a failure the user can fix (2: configuration, 1:
    the environment), or None for anything else (a bug: it keeps its traceback)."""
    # Imported here, on the error path only: every command would otherwise pay for the API's
    # imports. A module that raised its error is imported already anyway.
    from firewatch.alerting.dispatcher import InsecureWebhookSecretError
    from firewatch.api.server import ApiStartupError
    from firewatch.runtime.mosquitto import BrokerStartError
    from firewatch.storage.migrate import MigrationError
    from firewatch.up import WebhookSecretFileError

    one_line = " ".join(str(err).split())
    if isinstance(
        err,
        DatabaseNotFoundError
        | SchemaMissingError
        | InsecureWebhookSecretError
        | WebhookSecretFileError,
    ):
        return 2, one_line
    undefined = (
        psycopg.errors.UndefinedTable,
        psycopg.errors.UndefinedColumn,
        psycopg.errors.UndefinedFunction,
    )
    if isinstance(err, undefined):
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        return 2, (
            f"the database schema is missing or older than this version ({first}); "
            "run `firewatch db upgrade` with the same settings"
        )
    if isinstance(err, psycopg.OperationalError):
        return 1, f"cannot use the database: {one_line}"
    if isinstance(
        err, EmbeddedDatabaseError | MigrationError | BrokerStartError | ApiStartupError | OSError
    ):
        return 1, one_line
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code (see the module docstring for errors)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pgserver").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        settings = locate_data_dir(Settings())
    except (ValidationError, SettingsError) as err:
        if args.verbose:
            traceback.print_exc()
        for line in _settings_errors(err):
            print(f"firewatch: {line}", file=sys.stderr)
        return 2
    func: Callable[[Settings, argparse.Namespace], int] = args.func
    try:
        return func(settings, args)
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        expected = _expected_error(err)
        if expected is None:
            raise
        code, message = expected
        if args.verbose:
            traceback.print_exc()
        print(f"firewatch: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
