"""``firewatch roster ...`` and ``firewatch user contact``: who is on duty when, and how to
reach them (docs/escalation.md, "The roster").

Registered by ``firewatch/cli/__init__.py`` through :func:`add_commands`, after
``firewatch user`` (``cli/people.py``), whose subcommands ``contact`` joins. Handlers take
``(settings, args)`` and return the exit code. What the records refuse (an unknown person
or shift, a role that holds no shifts, overlapping or reversed shifts, a malformed address
or phone number) prints one line ``firewatch: ...`` and exits 2. Every change is audited
in ``auth_events`` with the OS login name as its actor.

Times are ISO 8601; one without a UTC offset is the city's local time
(``FIREWATCH_ANALYTICS_UTC_OFFSET_H``, default +08:00), and times are printed in it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta, timezone

from firewatch.cli.people import connect, login_name, refusals
from firewatch.core.escalation import RosterError
from firewatch.core.settings import Settings


def city_zone(settings: Settings) -> timezone:
    """The city's local time (``analytics_utc_offset_h``)."""
    return timezone(timedelta(hours=settings.analytics_utc_offset_h))


def parse_time(text: str, settings: Settings, option: str) -> datetime:
    """An ISO 8601 time; without an offset, the city's local time."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RosterError(f"{option}: {text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=city_zone(settings))


def _local(t: datetime, settings: Settings) -> str:
    return t.astimezone(city_zone(settings)).isoformat(timespec="minutes")


@refusals
def cmd_roster_add(settings: Settings, args: argparse.Namespace) -> int:
    """Put an operator or a shift leader on duty from ``--from`` to ``--to``."""
    from firewatch.storage.roster import add_shift

    starts = parse_time(args.starts, settings, "--from")
    ends = parse_time(args.ends, settings, "--to")
    with connect(settings) as conn:
        shift = add_shift(conn, args.username, starts, ends, actor=login_name())
    print(
        f"added shift {shift.id}: {shift.username} ({shift.role.value}) from "
        f"{_local(shift.starts_at, settings)} to {_local(shift.ends_at, settings)}"
    )
    missing = [what for what, v in (("e-mail", shift.email), ("phone", shift.phone)) if not v]
    if missing:
        print(
            f"note: {shift.username} has no {' and no '.join(missing)}: escalation levels by "
            f"those cannot reach them (`firewatch user contact {shift.username} ...`)",
            file=sys.stderr,
        )
    return 0


@refusals
def cmd_roster_list(settings: Settings, args: argparse.Namespace) -> int:
    """Shifts covering ``--at``, or, without it, the current and coming ones."""
    from firewatch.storage.roster import list_shifts

    now = datetime.now(UTC)
    at = parse_time(args.at, settings, "--at") if args.at else None
    with connect(settings) as conn:
        shifts = list_shifts(conn, at=at) if at else list_shifts(conn, after=now)
    when = at or now
    if args.json:
        print(json.dumps([s.to_json(when) for s in shifts], indent=2, ensure_ascii=False))
        return 0
    for s in shifts:
        duty = "on duty" if s.active and s.covers(when) else ("inactive" if not s.active else "")
        reach = ",".join(k for k, v in (("email", s.email), ("phone", s.phone)) if v) or "-"
        print(
            f"{s.id:>5}  {s.username:<20} {s.role.value:<13} {_local(s.starts_at, settings)}"
            f" .. {_local(s.ends_at, settings)}  {reach:<11} {duty}".rstrip()
        )
    if not shifts:
        print(f"no shifts at {_local(at, settings)}" if at else "no current or coming shifts")
    return 0


@refusals
def cmd_roster_remove(settings: Settings, args: argparse.Namespace) -> int:
    """Delete a shift by its id."""
    from firewatch.storage.roster import remove_shift

    with connect(settings) as conn:
        shift = remove_shift(conn, args.id, actor=login_name())
    print(
        f"removed shift {shift.id}: {shift.username} from {_local(shift.starts_at, settings)} "
        f"to {_local(shift.ends_at, settings)}"
    )
    return 0


@refusals
def cmd_user_contact(settings: Settings, args: argparse.Namespace) -> int:
    """Set a person's e-mail address and/or phone number (an empty value clears it)."""
    from firewatch.core.escalation import normalise_email, normalise_phone
    from firewatch.storage.roster import set_contact

    if args.email is None and args.phone is None:
        raise RosterError("give --email, --phone or both (an empty value clears it)")
    email = normalise_email(args.email) if args.email is not None else None
    phone = normalise_phone(args.phone) if args.phone is not None else None
    with connect(settings) as conn:
        contact = set_contact(
            conn,
            args.username,
            email=email,
            phone=phone,
            set_email=args.email is not None,
            set_phone=args.phone is not None,
            actor=login_name(),
        )
    print(f"{contact.key}: e-mail {contact.email or '(none)'}, phone {contact.phone or '(none)'}")
    return 0


def _shift_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a shift id: {text!r}") from None


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``firewatch roster`` and ``firewatch user contact`` (after ``firewatch
    user``: ``cli/people.py``'s ``add_commands`` must have run)."""
    roster = sub.add_parser("roster", help="who is on duty when (docs/escalation.md)")
    rs = roster.add_subparsers(dest="roster_command", required=True)

    add = rs.add_parser("add", help="put an operator or shift leader on duty")
    add.add_argument("username")
    add.add_argument("--from", dest="starts", required=True, help="ISO time (local if no offset)")
    add.add_argument("--to", dest="ends", required=True, help="ISO time (local if no offset)")
    add.set_defaults(func=cmd_roster_add)

    ls = rs.add_parser("list", help="shifts covering a time, or the current and coming ones")
    ls.add_argument("--at", help="ISO time (local if no offset)")
    ls.add_argument("--json", action="store_true", help="machine-readable")
    ls.set_defaults(func=cmd_roster_list)

    rm = rs.add_parser("remove", help="delete a shift by its id")
    rm.add_argument("id", type=_shift_id)
    rm.set_defaults(func=cmd_roster_remove)

    # `firewatch user` is cli/people.py's; its subcommands' action is found on its parser.
    user = sub.choices["user"]
    us = next(a for a in user._actions if isinstance(a, argparse._SubParsersAction))
    contact = us.add_parser("contact", help="set a person's e-mail address and phone number")
    contact.add_argument("username")
    contact.add_argument("--email", help="e-mail address ('' clears it)")
    contact.add_argument("--phone", help="phone number, digits with optional +country code")
    contact.set_defaults(func=cmd_user_contact)
