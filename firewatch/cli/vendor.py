"""``firewatch vendor ...``: the tools that bring a vendor's devices onto the contract
(issue 14; docs/vendor-check.md).

``firewatch vendor check --device D [--watch SECONDS | --minutes N] [--json]`` reports on one
device's traffic: per channel what arrived, interval regularity and clock offset; the
sequence's gaps, repeats and restarts; the dead letters by reason with what each means; and
the findings in plain words. ``--minutes N`` (default 15) looks back over what is stored;
``--watch S`` waits S seconds, printing progress (Ctrl-C ends the watch early), and reports
on exactly what was received during the watch. The command reads the database directly
(the API's ``GET /devices/{id}/conformance`` gives the same report to a vendor's token).

Exit codes: **0** no finding of level ``problem`` (warnings and information may remain),
**1** at least one problem, **2** the device is not registered (or bad arguments); the
CLI's own for a missing or unreachable database (``firewatch/cli/__init__.py``).

Registered by ``firewatch/cli/__init__.py`` through :func:`add_commands`; other ``vendor``
subcommands join the same group through :func:`vendor_group`. Handlers take ``(settings,
args)`` and return the exit code.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO, TypeAlias

import psycopg

from firewatch.cli.signals import stop_on_signals
from firewatch.core.settings import Settings

if TYPE_CHECKING:
    from firewatch.core.conformance_report import ChannelReport, Report, SeqReport

#: The longest look back of ``--minutes`` (a day), as the API's.
MAX_MINUTES = 1440
#: Seconds between two progress lines while watching.
PROGRESS_S = 10.0
#: After the watch, ingest's last flush (≤ 50 ms) and commit get this long to land, so that
#: what the broker delivered by the end of the watch is counted.
GRACE_S = 1.0

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


@contextmanager
def _connect(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    from firewatch.runtime.postgres import resolve_database_url

    with psycopg.connect(resolve_database_url(settings), autocommit=True) as conn:
        yield conn


# -- vendor check ---------------------------------------------------------------------------


def cmd_vendor_check(settings: Settings, args: argparse.Namespace) -> int:
    from firewatch.core.conformance import check
    from firewatch.core.conformance_report import Limits
    from firewatch.storage import conformance as store

    backlog = timedelta(seconds=settings.max_backlog_age_s)
    ahead = timedelta(seconds=settings.max_clock_skew_future_s)
    with _connect(settings) as conn:
        device = store.device(conn, args.device)
        if device is None:
            print(f"firewatch: no device {args.device!r} is registered", file=sys.stderr)
            return 2
        if args.watch is not None:
            since, until = _watch(conn, settings, args, backlog, ahead)
        else:
            until = datetime.now(UTC)
            since = until - timedelta(minutes=args.minutes)
        seen = store.traffic(
            conn,
            device.id,
            since,
            until,
            topic_root=settings.topic_root,
            max_backlog=backlog,
            max_ahead=ahead,
        )
    report = check(
        device,
        seen.messages,
        seen.dead_letters,
        since,
        until,
        Limits.of(settings),
        truncated=seen.truncated,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print_report(report, sys.stdout)
    return 0 if report.conforms else 1


def _watch(
    conn: psycopg.Connection[Any],
    settings: Settings,
    args: argparse.Namespace,
    backlog: timedelta,
    ahead: timedelta,
) -> tuple[datetime, datetime]:
    """Wait ``args.watch`` seconds (or until Ctrl-C / SIGTERM), a progress line every
    :data:`PROGRESS_S`; the window watched. Progress goes to stderr with ``--json``."""
    from firewatch.storage import conformance as store

    out = sys.stderr if args.json else sys.stdout
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stop = stop_on_signals()
    try:
        since = datetime.now(UTC)
        start = time.monotonic()
        print(
            f"watching {args.device} for {_secs(args.watch)} from {_hms(since)} "
            "(Ctrl-C ends the watch early and reports on what arrived)",
            file=out,
            flush=True,
        )
        while True:
            left = args.watch - (time.monotonic() - start)
            if left <= 0 or stop.wait(min(left, PROGRESS_S)):
                break
            stored, dead = store.traffic_counts(
                conn,
                args.device,
                since,
                datetime.now(UTC),
                topic_root=settings.topic_root,
                max_backlog=backlog,
                max_ahead=ahead,
            )
            print(
                f"  {_secs(time.monotonic() - start)}: {stored} message"
                f"{'s' if stored != 1 else ''}, {dead} dead letter{'s' if dead != 1 else ''}",
                file=out,
                flush=True,
            )
        until = datetime.now(UTC)
        if stop.is_set():
            print(f"  stopped after {_secs(time.monotonic() - start)}", file=out, flush=True)
        else:
            stop.wait(GRACE_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return since, until


# -- the human-readable report --------------------------------------------------------------


def print_report(report: Report, out: TextIO) -> None:
    """The report as a header, a table per channel, the sequence, the dead letters by
    reason, the findings and the verdict."""
    d = report.device
    w = out.write
    w(f"{d.id}  {d.kind}  unit {d.unit_id}  vendor {d.vendor or '-'}")
    w(f"  decommissioned {_at(d.decommissioned_at)}\n" if d.decommissioned_at else "\n")
    span = (report.until - report.since).total_seconds()
    w(f"window  {_at(report.since)} – {_at(report.until)} ({_secs(span)} of receive time)\n")
    for ch in report.channels:
        w("\n")
        _print_channel(ch, out)
    w("\n")
    for seq in report.sequence:
        _print_sequence(seq, out)
    if report.dead_letter_reasons:
        w(f"\ndead letters  {report.dead_letters}\n")
        for r in report.dead_letter_reasons:
            w(f"  {r.reason} ×{r.count}: {r.meaning}\n")
            w(f"    fix: {r.fix}\n")
            w(f"    latest: {' '.join(r.example.split())[:200]}\n")
    w("\nfindings\n")
    if not report.findings:
        w("  none: the device conforms on everything this window shows\n")
    for f in report.findings:
        w(f"  {f.level.value.upper() if f.level == 'problem' else f.level.value:<8} {f.text}\n")
    problems = len(report.problems)
    warnings = sum(1 for f in report.findings if f.level == "warning")
    verdict = "conforms" if report.conforms else "does not conform"
    w(
        f"\nverdict: {verdict} ({problems} problem{'s' if problems != 1 else ''}, "
        f"{warnings} warning{'s' if warnings != 1 else ''}; exit {0 if report.conforms else 1})\n"
    )


def _row(out: TextIO, name: str, value: str) -> None:
    out.write(f"  {name:<14}{value}\n")


def _print_channel(ch: ChannelReport, out: TextIO) -> None:
    unused = "" if ch.used_by_kind else "  (not a channel of this kind: refused)"
    out.write(f"{ch.channel}{unused}\n")
    seqs = f" (seq {ch.seq_first} … {ch.seq_last})" if ch.seq_first is not None else ""
    wills = f", {ch.wills} last will{'s' if ch.wills != 1 else ''}" if ch.wills else ""
    _row(out, "messages", f"{ch.messages}{seqs}{wills}")
    if ch.first_ts is not None and ch.last_ts is not None:
        _row(out, "device time", f"{_at(ch.first_ts)} – {_at(ch.last_ts)}")
    iv = ch.intervals
    if iv is not None:
        cv = f"{iv.cv:.2f}" if iv.cv is not None else "-"
        ref = f"  (reference {_secs(iv.reference_s)})" if iv.reference_s else ""
        _row(
            out,
            "interval",
            f"median {_secs(iv.median_s)}  p95 {_secs(iv.p95_s)}  min {_secs(iv.min_s)}  "
            f"max {_secs(iv.max_s)}  cv {cv}{ref}",
        )
    if ch.clock is not None:
        c = ch.clock
        _row(
            out,
            "clock offset",
            f"median {_secs(c.median_s)}  min {_secs(c.min_s)}  max {_secs(c.max_s)}  "
            "(received − ts; + = device behind)",
        )
    reasons = ", ".join(f"{r} ×{n}" for r, n in ch.dead_letter_reasons.items())
    _row(out, "dead letters", f"{ch.dead_letters}" + (f": {reasons}" if reasons else ""))


def _print_sequence(s: SeqReport, out: TextIO) -> None:
    whose = f"{s.channel} (counted per channel)" if s.channel else "one counter for the device"
    out.write(f"sequence: {whose}\n")
    if s.first is None:
        _row(out, "seq", "no numbered messages")
        return
    _row(
        out,
        "seq",
        f"{s.first} … {s.last}: {s.missing} missing, {s.repeats} repeated, "
        f"{len(s.restarts)} restart{'s' if len(s.restarts) != 1 else ''}",
    )
    if s.gaps:
        gaps = ", ".join(
            (str(g.first) if g.first == g.last else f"{g.first}–{g.last}")
            + (f" ({g.dead_lettered} dead-lettered)" if g.dead_lettered else "")
            for g in s.gaps[:10]
        )
        _row(out, "gaps", gaps + (", …" if len(s.gaps) > 10 else ""))
    if s.repeated:
        _row(out, "repeated", ", ".join(str(n) for n in s.repeated[:10]))
    for r in s.restarts[:5]:
        _row(out, "restart", f"{r.before} → {r.after} at {_at(r.at)}")


def _at(t: datetime | None) -> str:
    return "-" if t is None else t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _hms(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%H:%M:%SZ")


def _secs(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if abs(seconds) < 120:
        return f"{seconds:.3g} s" if abs(seconds) < 10 else f"{seconds:.0f} s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


# -- registration ---------------------------------------------------------------------------


def _minutes(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minutes") from None
    if not 1 <= n <= MAX_MINUTES:
        raise argparse.ArgumentTypeError(f"minutes must be 1…{MAX_MINUTES}, not {n}")
    return n


def _seconds(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < s <= MAX_MINUTES * 60:
        raise argparse.ArgumentTypeError(f"seconds must be above 0 and at most a day, not {s:g}")
    return s


def vendor_group(sub: Subparsers) -> Subparsers:
    """The subparsers of the ``firewatch vendor`` group, made on the first call and the same
    ones on every later call (each vendor subcommand adds itself there)."""
    parser = sub.choices.get("vendor")
    if parser is None:
        parser = sub.add_parser(
            "vendor", help="vendor tools: a device's conformance check (docs/vendor-check.md)"
        )
        return parser.add_subparsers(dest="vendor_command", required=True)
    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return found[0]


def add_commands(sub: Subparsers) -> None:
    """Register ``firewatch vendor check``."""
    group = vendor_group(sub)
    chk = group.add_parser(
        "check",
        help="a device's conformance report: channels, intervals, seq, clock, dead letters",
        description="Report on one device's traffic: per channel what arrived, intervals "
        "and clock offset; seq gaps, repeats and restarts; dead letters by reason; findings. "
        "Exit 0: no problem; 1: at least one problem; 2: unknown device.",
    )
    chk.add_argument("--device", required=True, help="the device id, as registered")
    when = chk.add_mutually_exclusive_group()
    when.add_argument(
        "--watch",
        type=_seconds,
        metavar="SECONDS",
        help="wait this long, then report on what arrived meanwhile (Ctrl-C ends it early)",
    )
    when.add_argument(
        "--minutes",
        type=_minutes,
        default=15,
        metavar="N",
        help=f"report on the past N minutes of stored traffic (default 15, at most {MAX_MINUTES})",
    )
    chk.add_argument("--json", action="store_true", help="the report as JSON")
    chk.set_defaults(func=cmd_vendor_check)
