"""``firewatch supervise`` commands for the records a period's supervision keeps:
inspectors and their ties, the focus list, inspections, hazard work orders and credit
(docs/supervision.md); and the helpers every ``supervise`` command shares (the database
connection, the actor, one-line refusals, JSON output). The draw commands, the worker and
the parser are in ``firewatch/cli/supervise.py``.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from firewatch.core.settings import Settings

Handler = Callable[[Settings, argparse.Namespace], int]


def login_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


@contextmanager
def connect_db(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    from firewatch.runtime.postgres import resolve_database_url

    with psycopg.connect(resolve_database_url(settings), autocommit=True) as conn:
        yield conn


def refusals(handler: Handler) -> Handler:
    """One line and exit 2 for what the supervision records refuse."""

    def run(settings: Settings, args: argparse.Namespace) -> int:
        from firewatch.core.draw import DrawInputError, NoAssignment
        from firewatch.core.supervision import SupervisionError

        try:
            return handler(settings, args)
        except (SupervisionError, DrawInputError, NoAssignment) as err:
            print(f"firewatch: {' '.join(str(err).split())}", file=sys.stderr)
            return 2

    run.__name__ = handler.__name__
    return run


def now_utc() -> datetime:
    return datetime.now(UTC)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


# -- inspectors and the focus list ---------------------------------------------------------


@refusals
def cmd_inspectors(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.storage import inspectors as store

    with connect_db(settings) as conn:
        what = args.inspectors_command or "list"
        if what == "add":
            i = store.add_inspector(
                conn, code=args.code, name=args.name, phone=args.phone, organisation=args.org
            )
            print(f"inspector {i.code} added ({i.name})")
        elif what == "import":
            n = _import_inspectors(conn, args.file)
            print(f"{n} inspectors added from {args.file}")
        elif what in ("retire", "reinstate"):
            i = store.set_active(conn, args.code, what == "reinstate")
            print(f"inspector {i.code} {'active' if i.active else 'retired from future draws'}")
        elif what == "tie":
            store.add_tie(
                conn,
                code=args.code,
                unit_id=args.unit,
                kind=args.kind,
                actor=args.actor,
                note=args.note,
            )
            print(f"{args.code} is never drawn for {args.unit} ({args.kind})")
        elif what == "untie":
            gone = store.remove_tie(conn, code=args.code, unit_id=args.unit, kind=args.kind)
            print(
                f"tie {args.code} {args.unit} {args.kind} " + ("withdrawn" if gone else "not found")
            )
        else:
            for i in store.list_inspectors(conn):
                state = "" if i.active else "  (retired)"
                print(f"{i.code:<10} {i.name:<12} {i.organisation}{state}")
            for t in store.ties(conn):
                print(f"  tie {t.inspector_code:<10} {t.unit_id:<12} {t.kind} {t.note}")
    return 0


def _import_inspectors(conn: psycopg.Connection[Any], path: Path) -> int:
    """A CSV with a header: code,name[,phone][,organisation]; all or nothing."""
    from firewatch.core.supervision import SupervisionError
    from firewatch.storage.inspectors import add_inspector

    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with conn.transaction():
        for n, row in enumerate(rows, start=2):
            if not row.get("code") or not row.get("name"):
                raise SupervisionError(f"{path}:{n}: code and name are required")
            add_inspector(
                conn,
                code=row["code"].strip(),
                name=row["name"],
                phone=row.get("phone") or "",
                organisation=row.get("organisation") or "",
            )
    return len(rows)


@refusals
def cmd_focus(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.storage import inspectors as store

    with connect_db(settings) as conn:
        what = args.focus_command or "list"
        if what == "add":
            store.add_focus(conn, unit_id=args.unit, reason=args.reason, actor=args.actor)
            print(f"{args.unit} is on the focus list")
        elif what == "remove":
            gone = store.remove_focus(conn, args.unit)
            print(f"{args.unit} " + ("removed from" if gone else "was not on") + " the focus list")
        else:
            rows = store.focus_list(conn)
            for r in rows:
                print(f"{r['unit_id']:<12} {r['level']:<7} {r['name']:<20} {r['reason']}")
            if not rows:
                print("the focus list is empty")
    return 0


# -- inspections, hazards, credit --------------------------------------------------------------


@refusals
def cmd_inspect(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.supervision.inspections import read_report, record_inspection

    report = read_report(args.file)
    with connect_db(settings) as conn:
        inspection_id, hazards = record_inspection(conn, settings, report, actor=args.actor)
    print(f"inspection {inspection_id} of {report.unit} recorded")
    for h in hazards:
        print(
            f"  hazard {h.id}: {h.severity.value} {h.category}, rectify by "
            f"{h.deadline.isoformat()}: {h.description}"
        )
    return 0


@refusals
def cmd_hazard(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.core.supervision import HazardAction
    from firewatch.storage.hazards import list_hazards
    from firewatch.supervision.inspections import act_on_hazard

    with connect_db(settings) as conn:
        if args.hazard_command == "list":
            now = now_utc()
            rows = list_hazards(
                conn,
                unit_id=args.unit,
                states=args.state,
                overdue_at=now if args.overdue else None,
                limit=args.limit,
            )
            if args.json:
                print_json([h.to_json() for h in rows])
                return 0
            for h in rows:
                late = "  OVERDUE" if h.overdue(now) else ""
                print(
                    f"{h.id:>5}  {h.unit_id:<12} {h.severity.value:<7} {h.category:<16} "
                    f"{h.state.value:<9} by {h.deadline.isoformat()[:10]}{late}  {h.description}"
                )
            if not rows:
                print("no hazards")
            return 0
        action = HazardAction(args.hazard_command)
        hazard = act_on_hazard(
            conn,
            args.id,
            action,
            actor=args.actor,
            note=getattr(args, "note", "") or "",
            evidence=getattr(args, "evidence", None),
        )
    print(f"hazard {hazard.id} of {hazard.unit_id} is {hazard.state.value}")
    return 0


@refusals
def cmd_credit(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.storage import credit as store
    from firewatch.supervision.credit import set_credit

    with connect_db(settings) as conn:
        if args.credit_command == "set":
            c = set_credit(
                conn, args.unit, args.status, reason=args.reason, actor=args.actor, at=now_utc()
            )
            print(f"{c.unit_id} is {c.status.value} ({c.reason})")
        elif args.credit_command == "show":
            c = store.get_credit(conn, args.unit)
            since = c.since.isoformat() if c.since else "always"
            print(f"{c.unit_id}: {c.status.value} since {since} {c.reason}".rstrip())
            for e in store.credit_events(conn, args.unit):
                print(
                    f"  {e['at'].isoformat()[:19]}  {e['from_status']} -> {e['to_status']}"
                    f"  {e['rule']} by {e['actor']}: {e['reason']}"
                )
        else:
            rows = store.list_credit(conn)
            for c in rows:
                since = c.since.isoformat()[:10] if c.since else ""
                print(f"{c.unit_id:<12} {c.status.value:<12} {since}  {c.reason}")
            if not rows:
                print("no unit is on the watch list or the blacklist")
    return 0
