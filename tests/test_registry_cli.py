"""``firewatch registry import-devices | decommission`` and ``firewatch vendor add | install
| uninstall`` in-process against this test's database: the report per row, dry run, exit
codes, refusals as one line, and every change audited with the OS login name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from firewatch.cli import main
from tests.builders import city
from tests.helpers import cli_env, scalar

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
ACTOR = "duty-officer"


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path, db: psycopg.Connection[Any]
) -> Any:
    """``firewatch ARGS...`` as ``ACTOR``: its exit code (argparse's own refusals too)."""
    cli_env(monkeypatch, database_url, tmp_path / "data")
    monkeypatch.setenv("LOGNAME", ACTOR)  # getpass.getuser() reads it first

    def go(*argv: str) -> int:
        try:
            return main(list(argv))
        except SystemExit as exit_:
            return int(exit_.code or 0)

    return go


def test_vendors_installations_and_the_example_import(
    run: Any, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    for vendor, name in (("testco", "Test Co"), ("othco", "Oth Co")):
        assert run("vendor", "add", vendor, "--name", name) == 0
        assert run("vendor", "install", vendor, "U-WD-002") == 0
    said = capsys.readouterr().out
    assert "added vendor testco (Test Co)" in said
    assert "testco serves U-WD-002 from" in said
    assert "othco serves U-WD-002 from" in said
    for vendor in ("testco", "acme"):  # acme: the seed's
        assert run("vendor", "add", vendor, "--name", "Again") == 2
        assert capsys.readouterr().err.strip() == (
            f"firewatch: vendor '{vendor}' is already registered"
        )
        assert run("vendor", "install", vendor, "U-WD-002") == 2
        assert f"firewatch: {vendor} already serves U-WD-002" in capsys.readouterr().err
    assert run("vendor", "install", "testco", "U-NOWHERE") == 2
    assert capsys.readouterr().err.strip() == "firewatch: no unit 'U-NOWHERE'"

    # the example's vendors (acme, volt, tanda) are the seed's
    example = str(EXAMPLES / "devices.csv")
    assert run("registry", "import-devices", "--dry-run", example) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "dry run, nothing written: 4 created, 0 updated, 0 unchanged, 0 rejected"
    )
    assert scalar(db, "SELECT count(*) FROM devices WHERE id = 'D-WD-002-T1'") == 0
    assert run("registry", "import-devices", example) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["line", "2", "D-WD-002-W2", "created"]
    assert out[-1] == "4 created, 0 updated, 0 unchanged, 0 rejected"
    assert run("registry", "import-devices", "--json", example) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"] == {"created": 0, "updated": 0, "unchanged": 4, "rejected": 0}
    tank = scalar(db, "SELECT metadata FROM devices WHERE id = 'D-WD-002-T1'")
    assert tank == {"point": "roof tank", "role": "tank", "tank_capacity_m": 6.0}

    assert run("vendor", "uninstall", "othco", "U-WD-002", "--note", "contract over") == 0
    assert "othco no longer serves U-WD-002" in capsys.readouterr().out
    assert run("vendor", "uninstall", "othco", "U-WD-002") == 2
    assert "othco does not serve U-WD-002" in capsys.readouterr().err
    assert run("vendor", "uninstall", "volt", "U-WD-002") == 2  # the seed's volt never did
    actors = db.execute("SELECT DISTINCT actor FROM registry_events").fetchall()
    assert actors == [(ACTOR,)]


def test_an_import_with_bad_rows_reports_each_and_exits_1(
    run: Any, db: psycopg.Connection[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("vendor", "add", "testco", "--name", "Test Co") == 0
    capsys.readouterr()
    bad = tmp_path / "devices.csv"
    bad.write_text(
        "id,unit_id,kind,vendor,design_kpa\n"
        "D-N-1,U-WD-002,water,testco,900\n"
        "D-N-2,U-WD-002,valve,,\n"
        "D-N-3,U-NOWHERE,panel,,\n"
        "D-N-1,U-WD-002,water,,\n"
        "D N,U-WD-002,panel,,\n"
        "D-N-4,U-WD-002,water,,12 bar\n",
        "utf-8",
    )
    assert run("registry", "import-devices", str(bad)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["line", "2", "D-N-1", "created"]
    assert "unknown kind 'valve'" in out[1]
    assert "unknown unit 'U-NOWHERE'" in out[2]
    assert "duplicate id: already on line 2" in out[3]
    assert "id 'D N' is not" in out[4]
    assert "design_kpa is not a number: '12 bar'" in out[5]
    assert out[-1] == "1 created, 0 updated, 0 unchanged, 5 rejected"
    assert scalar(db, "SELECT vendor FROM devices WHERE id = 'D-N-1'") == "testco"

    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("id,unit_id,kind\nD-1,许昌,panel\n".encode("gbk"))
    assert run("registry", "import-devices", str(gbk)) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith(f"firewatch: {gbk}: not UTF-8")
    header = tmp_path / "header.csv"
    header.write_text("id,kind\nD-1,panel\n", "utf-8")
    assert run("registry", "import-devices", str(header)) == 2
    assert "missing column(s): unit_id" in capsys.readouterr().err
    # import-units still answers in the same group
    assert run("registry", "import-units", str(EXAMPLES / "units.csv"), "--dry-run") == 0


def test_decommission_keeps_the_device_and_refuses_twice(
    run: Any, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("registry", "decommission", city.PANEL, "--note", "replaced") == 0
    assert f"decommissioned {city.PANEL} (unit {city.UNIT})" in capsys.readouterr().out
    row = db.execute(
        "SELECT decommissioned_by, decommission_note FROM devices WHERE id = %s", (city.PANEL,)
    ).fetchone()
    assert row == (ACTOR, "replaced")
    assert run("registry", "decommission", city.PANEL) == 2
    assert "decommissioned already" in capsys.readouterr().err
    assert run("registry", "decommission", "D-NOBODY") == 2
    assert capsys.readouterr().err.strip() == "firewatch: no device 'D-NOBODY'"
    event = scalar(
        db,
        "SELECT event FROM registry_events WHERE subject = 'device' AND subject_id = %s",
        city.PANEL,
    )
    assert event == "decommissioned"
