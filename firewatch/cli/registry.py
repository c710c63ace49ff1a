"""``firewatch registry ...`` (the group: ``import-units`` from ``cli/analysis.py``,
``import-devices`` and ``decommission`` here) and the vendor registry's commands
``vendor add | install | uninstall`` (issue 14; docs/registry.md).

Registered by ``firewatch/cli/__init__.py`` through :func:`add_commands`, which makes the
``registry`` group and adds :func:`add_vendor_commands` to the ``vendor`` group
(``cli/vendor.py``'s ``vendor_group``: the same group whoever makes it first). Handlers take
``(settings, args)`` and return the exit code. The person at the terminal acts as an admin
(they hold the database); every change is audited in ``registry_events`` with the OS login
name as its actor. What the registry refuses (an unknown device or unit, a taken id, a
device decommissioned already) and a file that is not a devices CSV print one line
``firewatch: ...`` and exit 2; an import that rejected some rows prints its report and
exits 1 (the other rows are written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from firewatch.cli import analysis as tiers
from firewatch.cli.migrated import Refused, migrated_db
from firewatch.cli.output import print_import_report
from firewatch.cli.people import login_name
from firewatch.cli.vendor import vendor_group
from firewatch.core.csv_import import ImportFileError
from firewatch.core.device_import import RegistryError
from firewatch.core.settings import Settings

Handler = Callable[[Settings, argparse.Namespace], int]


def _refusals(handler: Handler) -> Handler:
    """One line ``firewatch: ...`` and exit 2 for what the registry refuses."""

    def run(settings: Settings, args: argparse.Namespace) -> int:
        try:
            return handler(settings, args)
        except (RegistryError, Refused) as err:
            print(f"firewatch: {' '.join(str(err).split())}", file=sys.stderr)
            return 2

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


# -- registry import-devices, decommission -------------------------------------------------


@_refusals
def cmd_import_devices(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.core.csv_import import decode
    from firewatch.core.device_import import parse_devices_csv
    from firewatch.core.gateway_rows import known_profiles, profiles_file_of
    from firewatch.storage.devices import import_devices

    path: Path = args.file
    try:
        profiles = known_profiles(profiles_file_of(settings))
    except ValueError as err:  # the gateway's profiles file (ProfileError)
        raise Refused(str(err)) from None
    try:
        parsed = parse_devices_csv(decode(path.read_bytes()), profiles=profiles)
    except ImportFileError as err:
        raise Refused(f"{path}: {err}") from None
    with migrated_db(settings) as conn:
        results = import_devices(
            conn,
            parsed.rows,
            rejected=parsed.rejected,
            actor=login_name(),
            as_vendor=None,
            dry_run=args.dry_run,
        )
    return print_import_report(path, results, dry_run=args.dry_run, as_json=args.json)


@_refusals
def cmd_decommission(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.storage.devices import decommission_device

    with migrated_db(settings) as conn:
        device = decommission_device(
            conn, args.device, actor=login_name(), as_vendor=None, note=args.note
        )
    print(
        f"decommissioned {device['id']} (unit {device['unit_id']}) at"
        f" {device['decommissioned_at']:%Y-%m-%d %H:%M:%S %Z}; its readings and history stay,"
        " its broker login is revoked"
    )
    return 0


# -- vendor add, install, uninstall ---------------------------------------------------------


@_refusals
def cmd_vendor_add(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.storage.vendors import add_vendor

    with migrated_db(settings) as conn:
        v = add_vendor(conn, args.id, args.name, actor=login_name())
    print(f"added vendor {v['id']} ({v['name']}); give it units with `firewatch vendor install`")
    return 0


@_refusals
def cmd_vendor_install(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.storage.vendors import install

    with migrated_db(settings) as conn:
        row = install(conn, args.vendor, args.unit, actor=login_name(), note=args.note)
    print(
        f"{row['vendor_id']} serves {row['unit_id']} from {row['since']:%Y-%m-%d %H:%M}"
        f" (installation {row['id']})"
    )
    return 0


@_refusals
def cmd_vendor_uninstall(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.storage.vendors import uninstall

    with migrated_db(settings) as conn:
        row = uninstall(conn, args.vendor, args.unit, actor=login_name(), note=args.note)
    print(
        f"{row['vendor_id']} no longer serves {row['unit_id']} (installation {row['id']} ended;"
        " its devices there stay registered)"
    )
    return 0


# -- registration ---------------------------------------------------------------------------


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``registry`` group: ``import-units`` (``cli/analysis.py``), ``import-devices``,
    ``decommission``; and ``vendor add | install | uninstall``."""
    add_vendor_commands(vendor_group(sub))
    registry = sub.add_parser(
        "registry", help="the registry: units and devices, bulk import, decommissioning"
    ).add_subparsers(dest="registry_command", required=True)
    tiers.add_registry_commands(registry)

    imp = registry.add_parser(
        "import-devices",
        help="create or update devices from a CSV file, with a report per row (docs/registry.md)",
    )
    imp.add_argument("file", type=Path, help="CSV, UTF-8, with a header row")
    imp.add_argument("--dry-run", action="store_true", help="check every row, write nothing")
    imp.add_argument("--json", action="store_true", help="the report as JSON")
    imp.set_defaults(func=cmd_import_devices)

    dec = registry.add_parser(
        "decommission",
        help="take a device out of service for good (its history stays, its login is revoked)",
    )
    dec.add_argument("device", help="the device id")
    dec.add_argument("--note", default="", help="why (kept in the audit)")
    dec.set_defaults(func=cmd_decommission)


def add_vendor_commands(vendors: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``add``, ``install``, ``uninstall`` in the ``vendor`` group ``vendors``."""
    add = vendors.add_parser("add", help="register a device vendor")
    add.add_argument("id", help="the vendor id, [A-Za-z0-9_.-]{1,64} (people's --vendor)")
    add.add_argument("--name", required=True, help="its name")
    add.set_defaults(func=cmd_vendor_add)

    for name, func, what in (
        ("install", cmd_vendor_install, "the vendor serves the unit from now"),
        ("uninstall", cmd_vendor_uninstall, "end the vendor's installation in the unit"),
    ):
        p = vendors.add_parser(name, help=what)
        p.add_argument("vendor", help="the vendor id")
        p.add_argument("unit", help="the unit id")
        p.add_argument("--note", default="", help="kept in the audit")
        p.set_defaults(func=func)
