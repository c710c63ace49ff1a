"""``firewatch user ...`` in-process against this test's database: add with a password from
stdin, a token printed once that the API's lookup accepts, list, revoke, deactivate, each
change audited with the OS login name; refusals as one line with exit 2."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from firewatch.cli import main
from firewatch.core.passwords import verify_password
from firewatch.core.people import looks_like_token, token_prefix
from firewatch.core.settings import Settings
from firewatch.storage.people import token_owner
from tests.builders import city
from tests.helpers import scalar

PASSWORD = "a long enough passphrase"
ACTOR = "duty-officer"


@pytest.fixture
def user(settings: Settings, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """``firewatch user ARGS...`` with ``stdin`` as its standard input (not a terminal)."""
    assert settings.database_url
    monkeypatch.setenv("FIREWATCH_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FIREWATCH_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LOGNAME", ACTOR)  # getpass.getuser() reads it first

    def run(*argv: str, stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        try:
            return main(["user", *argv])
        except SystemExit as exit_:  # argparse refuses bad arguments itself
            return int(exit_.code or 0)

    return run


def audit(db: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    rows = db.execute("SELECT username, event, actor FROM auth_events ORDER BY id").fetchall()
    return [(str(u), str(e), str(a)) for u, e, a in rows]


def test_add_token_list_revoke_deactivate_end_to_end(
    user: Any, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        user(
            "add",
            "Li.Wei",
            "--role",
            "operator",
            "--name",
            "Li Wei",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        == 0
    )
    assert "added li.wei (operator), with a password" in capsys.readouterr().out
    stored = scalar(db, "SELECT password_hash FROM people WHERE username = 'li.wei'")
    assert stored != PASSWORD
    assert verify_password(PASSWORD, stored) == (True, None)

    assert user("add", "wd-manager", "--role", "unit", "--unit", city.UNIT, "--no-password") == 0
    assert user("add", "acme-bot", "--role", "vendor", "--vendor", "acme", "--no-password") == 0
    capsys.readouterr()

    assert user("token", "acme-bot", "--name", "device-sync", "--days", "30") == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert looks_like_token(token)
    assert f"prefix {token_prefix(token)}" in out.err
    assert "not shown again" in out.err
    now = datetime.now(UTC)
    owner = token_owner(db, token, now)
    assert owner is not None
    assert owner.username == "acme-bot"
    days = scalar(db, "SELECT expires_at - created_at FROM api_tokens")
    assert days.days == 30

    assert user("list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["acme-bot", "li.wei", "wd-manager"]
    assert "acme" in lines[0]
    assert "1 token(s)" in lines[0]
    assert city.UNIT in lines[2]
    assert "no-password" in lines[2]
    assert user("list", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert token not in json.dumps(doc)
    (tok,) = doc[0]["tokens"]
    assert (tok["prefix"], tok["name"], tok["state"]) == (
        token_prefix(token),
        "device-sync",
        "active",
    )
    assert doc[1]["has_password"]
    assert not doc[2]["has_password"]

    assert user("revoke-token", token_prefix(token)) == 0
    assert f"token {token_prefix(token)} (device-sync) of acme-bot revoked" in (
        capsys.readouterr().out
    )
    assert token_owner(db, token, datetime.now(UTC)) is None

    assert user("token", "li.wei", "--name", "laptop") == 0
    second = capsys.readouterr().out.strip()
    assert (
        scalar(
            db,
            "SELECT (expires_at - created_at) FROM api_tokens WHERE prefix = %s",
            token_prefix(second),
        ).days
        == 90
    )
    assert user("deactivate", "li.wei") == 0
    assert token_owner(db, second, datetime.now(UTC)) is None

    changes = [(u, e, a) for u, e, a in audit(db) if a != "api"]
    assert changes == [
        ("li.wei", "user_added", ACTOR),
        ("li.wei", "password_set", ACTOR),
        ("wd-manager", "user_added", ACTOR),
        ("acme-bot", "user_added", ACTOR),
        ("acme-bot", "token_created", ACTOR),
        ("acme-bot", "token_revoked", ACTOR),
        ("li.wei", "token_created", ACTOR),
        ("li.wei", "deactivated", ACTOR),
    ]


def test_passwd_replaces_the_password(
    user: Any, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert user("add", "zhao", "--role", "supervisor", "--no-password") == 0
    assert user("passwd", "zhao", "--password-stdin", stdin="another long password\n") == 0
    assert "password of zhao set" in capsys.readouterr().out
    stored = scalar(db, "SELECT password_hash FROM people WHERE username = 'zhao'")
    assert verify_password("another long password", stored)[0]
    assert audit(db)[-1] == ("zhao", "password_set", ACTOR)


@pytest.mark.parametrize(
    ("argv", "stdin", "words"),
    [
        (("add", "li", "--role", "operator", "--password-stdin"), "x" * 20, "3-64 characters"),
        (("add", "li.wei", "--role", "root", "--no-password"), "", "unknown role 'root'"),
        (("add", "li.wei", "--role", "unit", "--no-password"), "", "needs the unit"),
        (
            ("add", "li.wei", "--role", "unit", "--unit", "U-NOPE", "--no-password"),
            "",
            "no unit 'U-NOPE'",
        ),
        (("add", "li.wei", "--role", "operator", "--password-stdin"), "short\n", "too short"),
        (("add", "li.wei", "--role", "operator"), "", "no terminal"),
        (("add", "taken", "--role", "operator", "--no-password"), "", "'taken' is taken"),
        (("passwd", "nobody", "--password-stdin"), PASSWORD, "no user 'nobody'"),
        (("passwd", "taken", "--password-stdin"), "short", "too short"),
        (("token", "nobody", "--name", "x"), "", "no user 'nobody'"),
        (("token", "taken", "--name", "x", "--days", "0"), "", "--days must be 1 to 366"),
        (("token", "taken", "--name", "x", "--days", "9999"), "", "--days must be 1 to 366"),
        (("token", "taken", "--name", "x", "--days", "soon"), "", "not a whole number"),
        (("revoke-token", "fw_nope0"), "", "no token with prefix"),
        (("deactivate", "nobody"), "", "no user 'nobody'"),
    ],
)
def test_refusals_are_one_line_with_exit_2(
    user: Any,
    db: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    stdin: str,
    words: str,
) -> None:
    assert user("add", "taken", "--role", "operator", "--no-password") == 0
    capsys.readouterr()
    before = audit(db)
    assert user(*argv, stdin=stdin) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert words in err[-1]
    if not err[-1].startswith("usage:") and "error:" not in err[-1]:
        assert len(err) == 1
        assert err[0].startswith("firewatch: ")
    assert audit(db) == before  # nothing changed, nothing audited
    assert scalar(db, "SELECT count(*) FROM people") == 1
