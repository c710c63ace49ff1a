"""``firewatch broker sync`` and ``firewatch broker config``: the broker's accounts from
the registry (docs/adr/0012-device-credentials.md).

``sync`` runs the broker sync service until SIGTERM/SIGINT. ``config`` writes the broker's
dynamic-security file from the registry (every device that may log in, with its stored
hash) plus the service accounts given (admin, ingest workers, gateways, a demo publisher),
for a broker about to start (docker-compose, or a broker whose state was lost). Registered by
``firewatch/cli/broker.py`` under its group.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import psycopg

from firewatch.cli.people import login_name
from firewatch.core.settings import Settings
from firewatch.runtime.brokerconf import device_accounts, octal_mode
from firewatch.runtime.postgres import resolve_database_url


def cmd_sync(settings: Settings, _args: argparse.Namespace) -> int:
    """Run the broker sync until a signal; exit 2 with one line when it cannot start."""
    from firewatch.cli.signals import stop_on_signals
    from firewatch.registry.sync import BrokerSync
    from firewatch.runtime.dynsec_control import ControlError, DynsecControl, admin_address

    if not settings.mqtt_url:
        print("firewatch: FIREWATCH_MQTT_URL is not set", file=sys.stderr)
        return 2
    try:
        addr = admin_address(
            settings.mqtt_url,
            settings.mqtt_admin_username,
            settings.mqtt_admin_password,
            settings.mqtt_ca_file,
        )
    except ControlError as err:
        print(f"firewatch: {err}", file=sys.stderr)
        return 2
    resolved = settings.model_copy(update={"database_url": resolve_database_url(settings)})
    stop = stop_on_signals()
    try:
        control = DynsecControl(addr)
        with control:
            BrokerSync(resolved, control).run(stop)
    except ControlError as err:
        print(f"firewatch: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    """Write the broker's file from the registry; exit 2 with one line on a bad account,
    1 when the file cannot be written. A publisher given as ``NAME:`` (an empty password:
    what an unset ``${VAR:-}`` gives in compose) is left out, with one line saying so."""
    from firewatch.core.credentials import generate_password
    from firewatch.registry.credentials import broker_document
    from firewatch.runtime.brokerconf import (
        Account,
        BrokerConfError,
        Kind,
        check_name,
        parse_spec,
        write_dynsec,
    )

    generated: list[tuple[str, str]] = []
    accounts: list[Account] = []
    skipped: list[str] = []
    kinds = (
        (Kind.ADMIN, args.admin),
        (Kind.INGEST, args.ingest),
        (Kind.GATEWAY, args.gateway),
        (Kind.PUBLISHER, args.publisher),
    )
    try:
        for kind, specs in kinds:
            for spec in specs:
                name, sep, rest = spec.partition(":")
                if kind is Kind.PUBLISHER and sep and not rest:  # optional: a demo account
                    skipped.append(check_name(name))
                    continue
                name, password = parse_spec(spec)
                if password is None:
                    password = generate_password()
                    generated.append((name, password))
                accounts.append(Account(kind, name, password))
        with psycopg.connect(resolve_database_url(settings), autocommit=True) as conn:
            doc = broker_document(
                conn,
                accounts,
                topic_root=settings.topic_root,
                ingest_group=settings.ingest_group,
            )
        write_dynsec(args.out, doc, mode=args.mode)
    except BrokerConfError as err:
        print(f"firewatch: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. a directory the broker's uid may not write (compose)
        print(f"firewatch: cannot write {args.out}: {err.strerror or err}", file=sys.stderr)
        return 1
    for name, password in generated:
        print(f"{name}\t{password}")
    for name in skipped:
        print(
            f"firewatch: publisher account {name} not created: its password is empty "
            f"(give {name}:PASSWORD, or {name} alone to generate one)",
            file=sys.stderr,
        )
    devices = device_accounts(doc)
    print(
        f"firewatch: wrote {args.out}: {devices} devices from the registry, "
        f"{len(accounts)} service accounts; start (or restart) the broker with it",
        file=sys.stderr,
    )
    return 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    """Take the device accounts of an old dynamic-security file into the registry; exit 2
    with one line when the file is unreadable."""
    from firewatch.registry.credentials import import_hashes
    from firewatch.runtime.brokerconf import BrokerConfError, read_dynsec

    try:
        doc = read_dynsec(args.file)
    except BrokerConfError as err:
        print(f"firewatch: {err}", file=sys.stderr)
        return 2
    with psycopg.connect(resolve_database_url(settings), autocommit=True) as conn:
        done = import_hashes(conn, doc, actor=login_name(), dry_run=args.dry_run)
    for name, ids in (("imported", done.imported), ("kept", done.kept), ("unknown", done.unknown)):
        if ids:
            print(f"{name:<8} {len(ids):>5}  {' '.join(ids[:20])}{' ...' if len(ids) > 20 else ''}")
    what = (
        f"{len(done.imported)} imported, {len(done.kept)} already had a credential (kept), "
        f"{len(done.unknown)} not registered devices in service (skipped)"
    )
    print(f"dry run, nothing written: {what}" if args.dry_run else what)
    return 0


def add_commands(broker: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sync`` and ``config`` under ``firewatch broker``."""
    sync = broker.add_parser(
        "sync",
        help="keep the broker's device accounts as the registry says (revocations, moves)",
    )
    sync.set_defaults(func=cmd_sync)
    config = broker.add_parser(
        "config",
        help="write the broker's dynamic-security file from the registry",
        description="Every device that may log in (its stored password hash, pinned to its "
        "unit) plus the service accounts given. NAME without :PASSWORD gets a generated "
        "password, printed once as NAME<TAB>PASSWORD.",
    )
    config.add_argument("--out", type=Path, required=True, help="the file to write")
    config.add_argument(
        "--admin",
        action="append",
        default=[],
        metavar="NAME[:PASSWORD]",
        help="the $CONTROL account (FIREWATCH_MQTT_ADMIN_USERNAME / _PASSWORD)",
    )
    config.add_argument(
        "--ingest",
        action="append",
        default=[],
        metavar="NAME[:PASSWORD]",
        help="an ingest worker's account (its FIREWATCH_INGEST_CLIENT_ID)",
    )
    config.add_argument(
        "--gateway",
        action="append",
        default=[],
        metavar="NAME[:PASSWORD]",
        help="a GB/T 26875.3 gateway's account, publishing for every device over one "
        "connection (FIREWATCH_GATEWAY_MQTT_USERNAME / _PASSWORD; NAME is its client id)",
    )
    config.add_argument(
        "--publisher",
        action="append",
        default=[],
        metavar="NAME[:PASSWORD]",
        help="a simulator or demo account publishing for every device with any client id "
        "(demo and benchmark brokers only); NAME: with an empty password is left out",
    )
    config.add_argument(
        "--mode",
        type=octal_mode,
        default=0o644,
        help="file mode, octal (default 644: a broker container must read it)",
    )
    config.set_defaults(func=cmd_config)
    imp = broker.add_parser(
        "import-accounts",
        help="keep the passwords of devices provisioned before the registry kept credentials",
        description="Reads a dynamic-security file written by mosquitto/passwd.py (e.g. "
        "--from-seed) and stores each registered device's hash in the registry, so the "
        "device keeps its password when the broker starts from the registry (ADR 0012).",
    )
    imp.add_argument("file", type=Path, help="the old dynsec.json")
    imp.add_argument("--dry-run", action="store_true", help="report, write nothing")
    imp.set_defaults(func=cmd_import)
