"""``firewatch user ...``: accounts, passwords and API tokens (docs/people.md).

Registered by ``firewatch/cli/__init__.py`` through :func:`add_commands`; nothing here is
imported from it. Handlers take ``(settings, args)`` and return the exit code. What the
records refuse (a taken or malformed username, a missing scope, a short password, an
unknown user or token) prints one line ``firewatch: ...`` and exits 2. Every change is
audited in ``auth_events`` with the OS login name as its actor: the person at the terminal,
never a value given on the command line.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from firewatch.core.people import PeopleError, Person, parse_role
from firewatch.core.settings import Settings

Handler = Callable[[Settings, argparse.Namespace], int]


def login_name() -> str:
    """The OS login name of whoever runs the command (the audit's actor)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid:{os.getuid()}"


@contextmanager
def connect(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    from firewatch.runtime.postgres import resolve_database_url

    with psycopg.connect(resolve_database_url(settings), autocommit=True) as conn:
        yield conn


def refusals(handler: Handler) -> Handler:
    """One line and exit 2 for what the people records refuse (``PeopleError``, the
    roster's ``RosterError`` included)."""

    def run(settings: Settings, args: argparse.Namespace) -> int:
        try:
            return handler(settings, args)
        except PeopleError as err:
            print(f"firewatch: {' '.join(str(err).split())}", file=sys.stderr)
            return 2

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def _read_password(from_stdin: bool) -> str:
    """The new password: the first line of stdin, or typed twice at a terminal. Checked
    against the policy (:func:`firewatch.core.passwords.check_policy`)."""
    from firewatch.core.passwords import check_policy

    if from_stdin:
        return check_policy(sys.stdin.readline().rstrip("\r\n"))
    if not sys.stdin.isatty():
        raise PeopleError(
            "no terminal to ask for the password: use --password-stdin (or --no-password)"
        )
    first = check_policy(getpass.getpass("New password: "))
    if getpass.getpass("Repeat it: ") != first:
        raise PeopleError("the two passwords differ; nothing changed")
    return first


def _scope(p: Person) -> str:
    return p.unit_id or p.vendor or "-"


@refusals
def cmd_user_add(settings: Settings, args: argparse.Namespace) -> int:
    """Add a person; with a password (stdin or prompted) unless ``--no-password``."""
    from firewatch.core.passwords import hash_password
    from firewatch.core.people import check_scope, normalise_username
    from firewatch.storage.people import add_person

    role = parse_role(args.role)
    normalise_username(args.username)  # refuse a bad name before asking for a password
    check_scope(role, args.unit, args.vendor)
    hashed = None if args.no_password else hash_password(_read_password(args.password_stdin))
    with connect(settings) as conn:
        person = add_person(
            conn,
            username=args.username,
            role=role,
            actor=login_name(),
            display_name=args.name or "",
            unit_id=args.unit,
            vendor=args.vendor,
            password_hash=hashed,
        )
    scope = f" for {_scope(person)}" if person.unit_id or person.vendor else ""
    password = "with a password" if person.has_password else "without a password (tokens only)"
    print(f"added {person.username} ({person.role.value}{scope}), {password}")
    return 0


@refusals
def cmd_user_passwd(settings: Settings, args: argparse.Namespace) -> int:
    """Set a person's password."""
    from firewatch.core.passwords import hash_password
    from firewatch.storage.people import get_person_by_username, set_password

    with connect(settings) as conn:
        if get_person_by_username(conn, args.username) is None:  # before asking
            raise PeopleError(f"no user {args.username!r}")
        hashed = hash_password(_read_password(args.password_stdin))
        person = set_password(conn, args.username, hashed, actor=login_name())
    print(f"password of {person.username} set")
    return 0


@refusals
def cmd_user_token(settings: Settings, args: argparse.Namespace) -> int:
    """Create an API token and print it once, with its prefix and expiry."""
    from firewatch.core.people import token_prefix
    from firewatch.storage.people import create_token

    days = settings.token_default_days if args.days is None else args.days
    if not 0 < days <= settings.token_max_days:
        raise PeopleError(f"--days must be 1 to {settings.token_max_days}")
    now = datetime.now(UTC)
    expires = now + timedelta(days=days)
    with connect(settings) as conn:
        token = create_token(conn, args.username, args.name, expires, actor=login_name(), now=now)
    print(token)
    print(
        f"prefix {token_prefix(token)}, expires {expires.isoformat(timespec='seconds')}. "
        "Store the token now: it is not shown again.",
        file=sys.stderr,
    )
    return 0


@refusals
def cmd_user_revoke_token(settings: Settings, args: argparse.Namespace) -> int:
    """Revoke a token by its prefix (again: nothing changes)."""
    from firewatch.storage.people import revoke_token

    with connect(settings) as conn:
        info = revoke_token(conn, args.prefix, actor=login_name(), now=datetime.now(UTC))
    assert info.revoked_at is not None
    print(
        f"token {info.prefix} ({info.name}) of {info.username} revoked at "
        f"{info.revoked_at.isoformat(timespec='seconds')}"
    )
    return 0


@refusals
def cmd_user_list(settings: Settings, args: argparse.Namespace) -> int:
    """Everyone, with role, scope and state (``--json``: with their tokens, no secrets)."""
    from firewatch.storage.people import list_people, list_tokens

    now = datetime.now(UTC)
    with connect(settings) as conn:
        people = list_people(conn)
        tokens = {p.username: list_tokens(conn, p.username) for p in people}
    if args.json:
        doc = [
            {
                "username": p.username,
                "display_name": p.display_name,
                "role": p.role.value,
                "unit_id": p.unit_id,
                "vendor": p.vendor,
                "active": p.active,
                "has_password": p.has_password,
                "created_at": p.created_at.isoformat(),
                "password_changed_at": (
                    p.password_changed_at.isoformat() if p.password_changed_at else None
                ),
                "tokens": [
                    {
                        "prefix": t.prefix,
                        "name": t.name,
                        "state": t.state(now),
                        "created_at": t.created_at.isoformat(),
                        "expires_at": t.expires_at.isoformat(),
                        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
                        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                    }
                    for t in tokens[p.username]
                ],
            }
            for p in people
        ]
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    for p in people:
        live = sum(t.state(now) == "active" for t in tokens[p.username])
        print(
            f"{p.username:<20} {p.role.value:<13} {_scope(p):<16} "
            f"{'active' if p.active else 'inactive':<9} "
            f"{'password' if p.has_password else 'no-password':<12} {live} token(s)  "
            f"{p.display_name}"
        )
    if not people:
        print("no users")
    return 0


@refusals
def cmd_user_deactivate(settings: Settings, args: argparse.Namespace) -> int:
    """Deactivate a person: their tokens are refused from now on."""
    from firewatch.storage.people import set_active

    with connect(settings) as conn:
        person = set_active(conn, args.username, False, actor=login_name())
    print(f"{person.username} is deactivated; their tokens are refused")
    return 0


def _days(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {text!r}") from None


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``firewatch user`` and its subcommands."""
    user = sub.add_parser("user", help="accounts, passwords and API tokens (docs/people.md)")
    us = user.add_subparsers(dest="user_command", required=True)

    add = us.add_parser("add", help="add a person with a role")
    add.add_argument("username", help="3-64 of a-z 0-9 . _ - (stored lowercase)")
    add.add_argument(
        "--role",
        required=True,
        help="operator, shift_leader, supervisor, inspector, unit, vendor or admin",
    )
    add.add_argument("--unit", help="the unit a 'unit' person manages (required for it)")
    add.add_argument("--vendor", help="the vendor a 'vendor' person stands for (required for it)")
    add.add_argument("--name", help="display name (default: the username)")
    how = add.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    how.add_argument("--no-password", action="store_true", help="a machine account: tokens only")
    add.set_defaults(func=cmd_user_add)

    pw = us.add_parser("passwd", help="set a person's password")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    pw.set_defaults(func=cmd_user_passwd)

    tok = us.add_parser("token", help="create an API token (printed once)")
    tok.add_argument("username")
    tok.add_argument("--name", required=True, help="what uses it, e.g. 'dispatch-gateway'")
    tok.add_argument(
        "--days", type=_days, help="lifetime (default FIREWATCH_TOKEN_DEFAULT_DAYS, 90)"
    )
    tok.set_defaults(func=cmd_user_token)

    rv = us.add_parser("revoke-token", help="revoke a token by its prefix (fw_xxxxx)")
    rv.add_argument("prefix")
    rv.set_defaults(func=cmd_user_revoke_token)

    ls = us.add_parser("list", help="everyone with role, scope, state and live tokens")
    ls.add_argument("--json", action="store_true", help="machine-readable, with the tokens")
    ls.set_defaults(func=cmd_user_list)

    de = us.add_parser("deactivate", help="deactivate a person (their tokens are refused)")
    de.add_argument("username")
    de.set_defaults(func=cmd_user_deactivate)
