"""``firewatch roster ...`` and ``firewatch user contact`` in-process against this test's
database (firewatch/cli/roster.py): shifts added in the city's local time, listed as text
and JSON, removed; contact fields set and cleared; every change audited with the OS login
name; refusals as one line with exit 2."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.cli import main
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from firewatch.storage import people
from firewatch.storage.roster import on_duty
from tests.helpers import scalar

ACTOR = "duty-officer"


@pytest.fixture
def cli(settings: Settings, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """``firewatch ARGS...`` against this test's database; the exit code."""
    assert settings.database_url
    monkeypatch.setenv("FIREWATCH_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FIREWATCH_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LOGNAME", ACTOR)  # getpass.getuser() reads it first
    people.add_person(db, username="li.wei", role=Role.OPERATOR, actor="admin1")
    people.add_person(db, username="chen.jie", role=Role.SHIFT_LEADER, actor="admin1")
    people.add_person(db, username="sup", role=Role.SUPERVISOR, actor="admin1")

    def run(*argv: str) -> int:
        try:
            return main(list(argv))
        except SystemExit as exit_:  # argparse refuses bad arguments itself
            return int(exit_.code or 0)

    return run


def test_shifts_are_added_listed_and_removed(
    cli: Any, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # local times (no offset: the city's, +08:00) and one with an explicit offset
    assert (
        cli("roster", "add", "li.wei", "--from", "2026-12-08T08:00", "--to", "2026-12-08T20:00")
        == 0
    )
    out = capsys.readouterr()
    assert out.out.strip() == (
        "added shift 1: li.wei (operator) from 2026-12-08T08:00+08:00 to 2026-12-08T20:00+08:00"
    )
    assert "li.wei has no e-mail and no phone" in out.err
    assert (
        cli("roster", "add", "CHEN.JIE", "--from", "2026-12-08T04:00Z", "--to", "2026-12-08T16:00Z")
        == 0
    )
    capsys.readouterr()
    at = datetime(2026, 12, 8, 5, 0, tzinfo=UTC)  # 13:00 in the city: both on duty
    duty = on_duty(db, at)
    assert [c.key for c in duty[Role.OPERATOR]] == ["li.wei"]
    assert [c.key for c in duty[Role.SHIFT_LEADER]] == ["chen.jie"]

    assert cli("roster", "list", "--at", "2026-12-08T13:00", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(s["id"], s["username"], s["role"], s["on_duty"]) for s in listed] == [
        (1, "li.wei", "operator", True),
        (2, "chen.jie", "shift_leader", True),
    ]
    assert listed[0]["starts_at"] == "2026-12-08T00:00:00+00:00"
    assert cli("roster", "list", "--at", "2026-12-09T01:00") == 0
    assert capsys.readouterr().out.strip() == "no shifts at 2026-12-09T01:00+08:00"
    assert cli("roster", "list", "--at", "2026-12-08T10:00") == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert line.split() == [
        "1",
        "li.wei",
        "operator",
        "2026-12-08T08:00+08:00",
        "..",
        "2026-12-08T20:00+08:00",
        "-",
        "on",
        "duty",
    ]

    assert cli("roster", "remove", "1") == 0
    assert capsys.readouterr().out.strip() == (
        "removed shift 1: li.wei from 2026-12-08T08:00+08:00 to 2026-12-08T20:00+08:00"
    )
    assert on_duty(db, at)[Role.OPERATOR] == []
    audited = db.execute(
        "SELECT username, event, actor FROM auth_events WHERE event LIKE 'shift%' ORDER BY id"
    ).fetchall()
    assert audited == [
        ("li.wei", "shift_added", ACTOR),
        ("chen.jie", "shift_added", ACTOR),
        ("li.wei", "shift_removed", ACTOR),
    ]


def test_without_at_the_list_shows_current_and_coming_shifts(
    cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    past = (now - timedelta(hours=10), now - timedelta(hours=2))
    current = (now - timedelta(hours=1), now + timedelta(hours=7))
    for who, (a, b) in (("li.wei", past), ("chen.jie", current)):
        assert cli("roster", "add", who, "--from", a.isoformat(), "--to", b.isoformat()) == 0
    assert (
        cli(
            "roster",
            "add",
            "li.wei",
            "--from",
            (now + timedelta(hours=8)).isoformat(),
            "--to",
            (now + timedelta(hours=16)).isoformat(),
        )
        == 0
    )
    capsys.readouterr()
    assert cli("roster", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(s["username"], s["on_duty"]) for s in listed] == [
        ("chen.jie", True),
        ("li.wei", False),
    ]


def test_contact_fields_are_set_and_cleared(
    cli: Any, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli(
            "user", "contact", "li.wei", "--email", "li@example.org", "--phone", "+86 138-0000-0011"
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == (
        "li.wei: e-mail li@example.org, phone +8613800000011"
    )
    assert cli("user", "contact", "li.wei", "--phone", "") == 0
    assert capsys.readouterr().out.strip() == "li.wei: e-mail li@example.org, phone (none)"
    assert scalar(db, "SELECT email FROM people WHERE username = 'li.wei'") == "li@example.org"
    assert scalar(db, "SELECT phone FROM people WHERE username = 'li.wei'") is None
    events = db.execute(
        "SELECT detail, actor FROM auth_events WHERE event = 'contact_set' ORDER BY id"
    ).fetchall()
    assert events == [({"fields": ["email", "phone"]}, ACTOR), ({"fields": ["phone"]}, ACTOR)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["roster", "add", "sup", "--from", "2026-12-08T08:00", "--to", "2026-12-08T20:00"],
         "sup is a supervisor; only operators and shift leaders hold shifts"),
        (["roster", "add", "nobody", "--from", "2026-12-08T08:00", "--to", "2026-12-08T20:00"],
         "no user 'nobody'"),
        (["roster", "add", "li.wei", "--from", "2026-12-08T20:00", "--to", "2026-12-08T08:00"],
         "a shift must end after it starts"),
        (["roster", "add", "li.wei", "--from", "tomorrow", "--to", "2026-12-08T08:00"],
         "--from: 'tomorrow' is not an ISO 8601 time"),
        (["roster", "add", "li.wei", "--from", "2026-12-08T08:00", "--to", "2027-12-08T08:00"],
         "a shift lasts at most 7 days"),
        (["roster", "remove", "77"], "no shift 77"),
        (["roster", "list", "--at", "noon"], "--at: 'noon' is not an ISO 8601 time"),
        (["user", "contact", "li.wei"], "give --email, --phone or both"),
        (["user", "contact", "li.wei", "--email", "li.wei"], "'li.wei' is not an e-mail address"),
        (["user", "contact", "li.wei", "--phone", "call me"], "'call me' is not a phone number"),
        (["user", "contact", "nobody", "--phone", "139"], "no user 'nobody'"),
    ],
)  # fmt: skip
def test_refusals_are_one_line_and_exit_2(
    cli: Any,
    db: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert cli(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"firewatch: {message}" or (err.startswith("firewatch: ") and message in err)
    assert "\n" not in err
    assert scalar(db, "SELECT count(*) FROM shifts") == 0


def test_overlapping_shifts_are_refused(cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli("roster", "add", "li.wei", "--from", "2026-12-08T08:00", "--to", "2026-12-08T20:00")
        == 0
    )
    assert (
        cli("roster", "add", "li.wei", "--from", "2026-12-08T19:00", "--to", "2026-12-09T07:00")
        == 2
    )
    assert "li.wei already has shift 1 from" in capsys.readouterr().err
