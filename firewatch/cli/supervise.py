"""``firewatch supervise ...``: draws, verification, inspectors, the focus list, inspections,
hazards, credit, and the supervision worker; ``firewatch bench draws`` (docs/supervision.md).
This module has the draw commands, the worker, the bench and the parser; the commands for
inspectors, the focus list, inspections, hazards and credit, and the helpers they all
share, are in ``firewatch/cli/supervise_records.py``.

Registered by ``firewatch/cli/__init__.py`` through :func:`add_commands`, and in the
``bench`` group by ``firewatch/cli/bench.py`` through :func:`add_bench_commands`. Handlers
take ``(settings, args)`` and return the exit code.
A request the records refuse (a second live draw for a period, a tied inspector, a hazard
in the wrong state, an unknown id) prints one line ``firewatch: ...`` and exits 2; a
verification that fails exits 1; one that could not be completed (no seed published yet)
exits 3. Other expected failures (no database, a missing file) are the CLI's own
(``_expected_error``). Writes record an actor: ``--actor``, by default the login name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import psycopg

from firewatch.cli.output import write_json
from firewatch.cli.signals import stop_on_signals
from firewatch.cli.supervise_records import (
    cmd_credit,
    cmd_focus,
    cmd_hazard,
    cmd_inspect,
    cmd_inspectors,
    connect_db,
    login_name,
    now_utc,
    print_json,
    refusals,
)
from firewatch.core.settings import Settings

# -- draws ---------------------------------------------------------------------------------------


@refusals
def cmd_draw(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.core.draw import DrawInputs
    from firewatch.supervision.draws import commit_draw, expected_size

    with connect_db(settings) as conn:
        draw = commit_draw(conn, settings, args.period, actor=args.actor, at=now_utc())
    inputs = DrawInputs.from_json(json.loads(draw.inputs))
    mean, sd = expected_size(inputs)
    print(
        f"draw {draw.id} for {draw.period} committed at {draw.committed_at.isoformat()}\n"
        f"  inputs hash      {draw.inputs_hash}\n"
        f"  seed commitment  {draw.seed_commitment}\n"
        f"  {len(inputs.units)} units, {len(inputs.inspectors)} inspectors, "
        f"{len(inputs.exclusions)} exclusions; expected {mean:.1f} ± {sd:.1f} units drawn\n"
        f"publish the hash and commitment now; then `firewatch supervise reveal --draw {draw.id}`"
    )
    return 0


def _print_result(conn: psycopg.Connection[Any], result_text: str | None) -> None:
    from firewatch.storage.draws import unit_refs
    from firewatch.storage.inspectors import list_inspectors

    if result_text is None:
        return
    result = json.loads(result_text)
    if "error" in result:
        print(f"  no assignment: {result['error']}")
        return
    units = result["units"]
    names = {i.code: i.name for i in list_inspectors(conn)}
    refs = unit_refs(conn, [u["id"] for u in units])
    print(f"  {len(units)} units drawn (no inspector on more than {result['load_bound']}):")
    for u in units:
        who = ", ".join(f"{c} {names.get(c, '')}".strip() for c in u["inspectors"])
        name = refs.get(u["id"], ("?", ""))[0]
        print(f"  {u['id']:<12} {name:<20} {u['reason']:<8} p={u['rate_ppm'] / 1e6:<6g} {who}")


@refusals
def cmd_reveal(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.supervision.draws import reveal_draw

    with connect_db(settings) as conn:
        draw = reveal_draw(conn, args.draw, actor=args.actor, at=now_utc())
        print(f"draw {draw.id} ({draw.period}) revealed: seed {draw.seed}")
        _print_result(conn, draw.result)
    print(f"after the inspections: `firewatch supervise publish --draw {draw.id}`")
    return 0


@refusals
def cmd_publish(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.supervision.draws import publish_draw

    with connect_db(settings) as conn:
        draw = publish_draw(conn, args.draw, actor=args.actor, at=now_utc())
    print(f"draw {draw.id} ({draw.period}) published: seed and result are public (/public/draws)")
    return 0


@refusals
def cmd_cancel(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.supervision.draws import cancel_draw

    with connect_db(settings) as conn:
        draw = cancel_draw(conn, args.draw, reason=args.reason, actor=args.actor, at=now_utc())
    print(
        f"draw {draw.id} ({draw.period}) cancelled: {draw.cancel_reason}; it stays public with "
        "its seed and result"
    )
    return 0


@refusals
def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.core.draw_verify import verify_document
    from firewatch.supervision.draws import verify_stored

    if args.file is not None:
        try:
            doc = json.loads(args.file.read_text("utf-8"))
        except json.JSONDecodeError as err:
            print(f"firewatch: {args.file}: not JSON: {err}", file=sys.stderr)
            return 2
        if not isinstance(doc, dict):
            print(f"firewatch: {args.file}: not a draw document", file=sys.stderr)
            return 2
        report = verify_document(doc)
    else:
        with connect_db(settings) as conn:
            report = verify_stored(conn, args.draw)
    if args.json:
        print_json(report.to_json())
    else:
        print("\n".join(report.lines()))
    if not report.ok:
        return 1
    return 0 if report.complete else 3


@refusals
def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.storage.draws import get_draw, list_draws
    from firewatch.supervision.draws import draw_document

    with connect_db(settings) as conn:
        if args.draw is None:
            draws = list_draws(conn, period=args.period, limit=args.limit)
            if args.json:
                print_json([draw_document(d, public=not args.internal) for d in draws])
                return 0
            for d in draws:
                print(
                    f"{d.id:>5}  {d.period:<10} {d.status.value:<10} "
                    f"{d.committed_at.isoformat()[:19]}  {d.inputs_hash[:16]}…"
                    + (f"  cancelled: {d.cancel_reason}" if d.cancel_reason else "")
                )
            if not draws:
                print("no draws")
            return 0
        draw = get_draw(conn, args.draw)
        doc = draw_document(draw, public=not args.internal)
        if args.json:
            print_json(doc)
            return 0
        print(
            f"draw {draw.id} for {draw.period}: {draw.status.value}\n"
            f"  committed  {draw.committed_at.isoformat()} by {draw.committed_by}\n"
            f"  inputs hash      {draw.inputs_hash}\n"
            f"  seed commitment  {draw.seed_commitment}\n"
            f"  seed             {doc['seed'] or '(not shown: not public yet; --internal)'}"
            + (f"\n  cancelled: {draw.cancel_reason}" if draw.cancel_reason else "")
        )
        if doc["result"] is not None:
            _print_result(conn, json.dumps(doc["result"]))
    return 0


def cmd_run(settings: Settings, _args: argparse.Namespace) -> int:
    from firewatch.runtime.postgres import resolve_database_url
    from firewatch.supervision.service import SupervisionService

    SupervisionService(settings, resolve_database_url(settings)).run(stop_on_signals())
    return 0


def cmd_bench_draws(_settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.lab.draw_bench import BenchConfig, format_result, run_draw_bench

    if args.draws < 1 or args.units < 1 or args.inspectors < 2:
        print(
            "firewatch: bench draws: need --draws >= 1, --units >= 1, --inspectors >= 2",
            file=sys.stderr,
        )
        return 2
    cfg = BenchConfig(
        draws=args.draws, units=args.units, inspectors=args.inspectors, seed=args.seed
    )
    result = run_draw_bench(cfg)
    print(format_result(result))
    write_json(args.json, result)
    return 0 if result["conflicts"] == 0 else 1


# -- the parser ---------------------------------------------------------------------------------


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``firewatch supervise ...``."""
    sv = sub.add_parser(
        "supervise",
        help="focused supervision: draws, verification, inspectors, inspections, hazards, "
        "credit, the worker",
    ).add_subparsers(dest="supervise_command", required=True)

    def actor(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--actor", default=login_name(), help="who does it (default: login name)")
        return p

    p = actor(sv.add_parser("draw", help="commit a draw for a period (inputs, hash, commitment)"))
    p.add_argument("--period", required=True, help="e.g. 2026-Q1 or 2026-03")
    p.set_defaults(func=cmd_draw)
    p = actor(sv.add_parser("reveal", help="reveal a committed draw's seed and compute it"))
    p.add_argument("--draw", type=int, required=True)
    p.set_defaults(func=cmd_reveal)
    p = actor(sv.add_parser("publish", help="make a revealed draw's seed and result public"))
    p.add_argument("--draw", type=int, required=True)
    p.set_defaults(func=cmd_publish)
    p = actor(sv.add_parser("cancel", help="cancel a draw (stays public, with its seed)"))
    p.add_argument("--draw", type=int, required=True)
    p.add_argument("--reason", required=True)
    p.set_defaults(func=cmd_cancel)
    p = sv.add_parser("verify", help="recompute a draw from its public document")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--draw", type=int, help="a stored draw (its public document)")
    src.add_argument("--file", type=Path, help="a saved /public/draws/{id} JSON (offline)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)
    p = sv.add_parser("show", help="list draws, or show one")
    p.add_argument("--draw", type=int)
    p.add_argument("--period")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true", help="the public document(s)")
    p.add_argument("--internal", action="store_true", help="include a revealed, unpublished seed")
    p.set_defaults(func=cmd_show)

    ins = sv.add_parser("inspectors", help="the inspector list and declared ties")
    ins.set_defaults(func=cmd_inspectors, inspectors_command="list")
    isub = ins.add_subparsers(dest="inspectors_command")
    p = isub.add_parser("add", help="add an inspector")
    p.add_argument("--code", required=True, help="public code, e.g. XC-007")
    p.add_argument("--name", required=True)
    p.add_argument("--phone", default="")
    p.add_argument("--org", default="", help="organisation")
    p = isub.add_parser("import", help="add inspectors from a CSV (code,name,phone,organisation)")
    p.add_argument("--file", type=Path, required=True)
    for name, text in (("retire", "leave future draws"), ("reinstate", "return to the draws")):
        isub.add_parser(name, help=text).add_argument("--code", required=True)
    for name, text in (("tie", "declare a tie to a unit"), ("untie", "withdraw a tie")):
        p = actor(isub.add_parser(name, help=text))
        p.add_argument("--code", required=True)
        p.add_argument("--unit", required=True)
        p.add_argument(
            "--kind",
            required=True,
            choices=["former_employer", "relative", "maintenance_company", "testing_company"],
        )
        p.add_argument("--note", default="")
    isub.add_parser("list", help="inspectors and ties")

    foc = sv.add_parser("focus", help="the focus list (red units on it are always drawn)")
    foc.set_defaults(func=cmd_focus, focus_command="list")
    fsub = foc.add_subparsers(dest="focus_command")
    p = actor(fsub.add_parser("add"))
    p.add_argument("--unit", required=True)
    p.add_argument("--reason", required=True)
    fsub.add_parser("remove").add_argument("--unit", required=True)
    fsub.add_parser("list")

    p = actor(sv.add_parser("inspect", help="record an inspection from a TOML or JSON file"))
    p.add_argument("--file", type=Path, required=True)
    p.set_defaults(func=cmd_inspect)

    hz = sv.add_parser("hazard", help="hazard work orders: list, submit, verify, reject")
    hsub = hz.add_subparsers(dest="hazard_command", required=True)
    p = hsub.add_parser("list")
    p.add_argument("--unit")
    p.add_argument("--state", action="append", choices=["open", "submitted", "verified"])
    p.add_argument("--overdue", action="store_true")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p = actor(hsub.add_parser("submit", help="the unit's rectification evidence"))
    p.add_argument("--id", type=int, required=True)
    p.add_argument("--evidence", required=True, help="what was done, where the photos are")
    p = actor(hsub.add_parser("verify", help="the rectification is verified: closed"))
    p.add_argument("--id", type=int, required=True)
    p.add_argument("--note", default="")
    p = actor(hsub.add_parser("reject", help="the evidence is not enough: back to open"))
    p.add_argument("--id", type=int, required=True)
    p.add_argument("--note", required=True, help="what is missing")
    hz.set_defaults(func=cmd_hazard)

    cr = sv.add_parser("credit", help="unit credit: set, show, list")
    csub = cr.add_subparsers(dest="credit_command", required=True)
    p = actor(csub.add_parser("set", help="a supervisor's decision"))
    p.add_argument("--unit", required=True)
    p.add_argument("--status", required=True, choices=["good", "watch", "blacklisted"])
    p.add_argument("--reason", required=True)
    csub.add_parser("show").add_argument("--unit", required=True)
    csub.add_parser("list", help="the watch list and the blacklist")
    cr.set_defaults(func=cmd_credit)

    sv.add_parser(
        "run", help="the supervision worker: fault work orders, reminders, escalation, credit"
    ).set_defaults(func=cmd_run)


def add_bench_commands(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``firewatch bench draws``."""
    p = bench.add_parser("draws", help="draw fairness: empirical vs configured inclusion rates")
    p.add_argument("--draws", type=int, default=10_000)
    p.add_argument("--units", type=int, default=200, help="candidate units (a synthetic city)")
    p.add_argument("--inspectors", type=int, default=20)
    p.add_argument("--seed", type=int, default=1, help="makes the synthetic city and seeds")
    p.add_argument("--json", type=Path, help="write the result document here")
    p.set_defaults(func=cmd_bench_draws)
