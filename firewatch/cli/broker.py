"""Broker commands of the ``firewatch`` CLI: ``firewatch broker certs`` (the development CA
and the TLS listener's certificate, docs/deployment.md "TLS").

``firewatch/cli/__init__.py`` calls :func:`add_commands` with its top-level subparsers.
:func:`broker_group` creates the ``broker`` group and returns its subparsers, so that more
``firewatch broker ...`` commands are added next to ``certs`` in :func:`add_commands`.
Heavy imports (``cryptography``) happen inside the handlers, so ``firewatch --help`` stays
quick.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from firewatch.cli import broker_accounts
from firewatch.core.settings import Settings


def cmd_certs(_settings: Settings, args: argparse.Namespace) -> int:
    """Make or reuse the CA in ``--out`` and issue the broker's certificate; print where
    the files are and the CA's fingerprint (what devices pin or compare). Exit 2 with one
    line when the directory holds an unusable CA or the arguments are bad."""
    from firewatch.runtime.certs import CertError, make_certs

    days = {} if args.days is None else {"days": args.days}
    try:
        result = make_certs(args.out, args.host, force=args.force, **days)
    except CertError as err:
        print(f"firewatch: {err}", file=sys.stderr)
        return 2
    action = "made a new CA" if result.ca_created else "kept the existing CA"
    print(f"{action}: {result.ca_cert} (SHA-256 {result.ca_fingerprint})")
    print(f"  its key: {result.ca_key} (mode 0600; keep it off devices and backups you share)")
    print(
        f"broker certificate: {result.server_cert} + {result.server_key}, for "
        f"{', '.join(result.hosts)}, valid until {result.not_after:%Y-%m-%d}"
    )
    if result.ca_created:
        print("give every device and Firewatch service ca.crt (FIREWATCH_MQTT_CA_FILE)")
    print("restart the broker to load the new certificate", file=sys.stderr)
    if result.key_group_warning:
        print(f"firewatch: warning: {result.key_group_warning}", file=sys.stderr)
    return 0


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if days < 1:
        raise argparse.ArgumentTypeError("at least 1 day")
    return days


def broker_group(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Create ``firewatch broker`` under the top-level subparsers; return its subparsers."""
    group = sub.add_parser(
        "broker", help="the MQTT broker: TLS certificates, accounts from the registry"
    )
    return group.add_subparsers(dest="broker_command", required=True)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``firewatch broker ...`` under the top-level subparsers."""
    broker = broker_group(sub)
    broker_accounts.add_commands(broker)  # sync, config: accounts from the registry
    certs = broker.add_parser(
        "certs",
        help="make a local CA (kept if it exists) and the broker's TLS certificate signed by it",
        description="Writes ca.crt, ca.key (0600), server.crt and server.key (0640, group "
        "1883: the broker's in the eclipse-mosquitto image) into --out. An existing CA is "
        "reused so devices keep trusting it; the broker certificate is issued anew for "
        "localhost, 127.0.0.1 and every --host. Restart the broker afterwards.",
    )
    certs.add_argument("--out", type=Path, required=True, help="directory for the four files")
    certs.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME",
        help="a DNS name or IP address clients use to reach the broker (repeatable), e.g. "
        "--host mosquitto (compose services) --host mqtt.example.org (devices)",
    )
    certs.add_argument(
        "--days",
        type=_days,
        # None: make_certs' default (825 days), without importing cryptography for --help
        default=None,
        help="validity of the broker certificate in days (default 825)",
    )
    certs.add_argument(
        "--force",
        action="store_true",
        help="make a new CA even if one exists (every device must get the new ca.crt)",
    )
    certs.set_defaults(func=cmd_certs)
