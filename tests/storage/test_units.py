"""The units of the registry (storage/units.py). The CSV import: a report per row, created /
updated / unchanged / rejected; a bad row never stops the good ones; re-importing the same
file changes nothing; a dry run writes nothing; what the file does not manage is kept. One
unit written over the API is written like a row of the file, and audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from firewatch.core.csv_import import RowResult, decode, summarize
from firewatch.core.device_import import Conflict
from firewatch.core.unit_import import REQUIRED, UnitRow, parse_row, parse_units_csv
from firewatch.storage.units import (
    import_units,
    street_ids,
    unit_cells,
    write_unit,
)
from tests.builders import city
from tests.helpers import registry_events

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def run(db: psycopg.Connection[Any], text: str, *, dry_run: bool = False) -> list[RowResult]:
    parsed = parse_units_csv(text, street_ids(db))
    return import_units(db, parsed.rows, parsed.columns, rejected=parsed.rejected, dry_run=dry_run)


def unit(db: psycopg.Connection[Any], unit_id: str) -> dict[str, Any] | None:
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM units WHERE id = %s", (unit_id,)).fetchone()


def sample(name: str = "units.csv") -> str:
    return decode((EXAMPLES / name).read_bytes())


def test_the_sample_creates_and_updates_then_changes_nothing(db: psycopg.Connection[Any]) -> None:
    db.execute(
        "UPDATE units SET contacts = jsonb_set(contacts, '{responsible,email}',"
        " '\"zw@example.cn\"') WHERE id = 'U-WD-001'"
    )
    first = run(db, sample())
    assert [(r.line, r.id, r.outcome) for r in first] == [
        (2, "U-WD-101", "created"),
        (3, "U-WD-102", "created"),
        (4, "U-JA-101", "created"),
        (5, "U-WD-001", "updated"),
    ]
    assert first[3].changed == ["latitude", "longitude"]
    clinic = unit(db, "U-JA-101")
    assert clinic is not None
    assert (clinic["supervision"], clinic["category"], clinic["region_id"]) == (
        "general",
        "clinic",
        "jianan-yuzhuang",
    )
    assert clinic["contacts"] == {"responsible": {"name": "吴敏", "phone": "13900001103"}}
    wanda = unit(db, "U-WD-001")
    assert wanda is not None
    assert (wanda["latitude"], wanda["longitude"]) == (34.0423, 113.8124)
    # what the file does not manage stays: the maintenance contact, the responsible's e-mail
    assert wanda["contacts"]["maintenance"] == {"name": "李强", "phone": "13800000002"}
    assert wanda["contacts"]["responsible"]["email"] == "zw@example.cn"

    again = run(db, sample())
    assert summarize(again) == {"created": 0, "updated": 0, "unchanged": 4, "rejected": 0}


def test_bad_rows_are_reported_and_the_good_ones_written(db: psycopg.Connection[Any]) -> None:
    results = run(db, sample("units-with-errors.csv"))
    assert summarize(results) == {"created": 2, "updated": 0, "unchanged": 0, "rejected": 6}
    assert [r.line for r in results] == list(range(2, 10))
    by_line = {r.line: r for r in results}
    assert by_line[3].reason == "unknown street 'xiangcheng-nowhere'"
    assert by_line[6].reason == "duplicate id: already on line 2"
    assert by_line[6].to_json() == {
        "line": 6,
        "id": "U-XC-101",
        "outcome": "rejected",
        "reason": "duplicate id: already on line 2",
    }
    hospital = unit(db, "U-XC-101")
    assert hospital is not None
    assert hospital["name"] == "襄城县人民医院"  # the first row of the id, not the duplicate
    assert unit(db, "U-XC-107") is not None
    assert unit(db, "U-XC-102") is None


def test_a_row_the_database_refuses_is_rejected_alone(db: psycopg.Connection[Any]) -> None:
    good = UnitRow(2, "U-T-1", "ok", "weidu-nanguan", "key", "hotel", "multistorey")
    gone = UnitRow(3, "U-T-2", "street deleted meanwhile", "nowhere", "key", "hotel", "multistorey")
    also = UnitRow(4, "U-T-3", "ok too", "weidu-nanguan", "key", "hotel", "multistorey")
    results = import_units(db, [good, gone, also], {"id", "name", "street"})
    assert [r.outcome for r in results] == ["created", "rejected", "created"]
    assert results[1].reason.startswith("database: ")
    assert unit(db, "U-T-1") is not None
    assert unit(db, "U-T-2") is None
    assert unit(db, "U-T-3") is not None


def test_a_dry_run_reports_everything_and_writes_nothing(db: psycopg.Connection[Any]) -> None:
    before = db.execute("SELECT count(*), max(latitude) FROM units").fetchone()
    results = run(db, sample(), dry_run=True)
    assert summarize(results) == {"created": 3, "updated": 1, "unchanged": 0, "rejected": 0}
    assert db.execute("SELECT count(*), max(latitude) FROM units").fetchone() == before


def test_columns_decide_what_the_import_manages(db: psycopg.Connection[Any]) -> None:
    header = "id,name,street,category,type,building_class"
    base = "U-WD-002,许昌市中心医院,weidu-nanguan,key,hospital,class1_highrise"
    before = unit(db, "U-WD-002")
    assert before is not None
    (same,) = run(db, f"{header}\n{base}\n")
    assert same.outcome == "unchanged"  # no address column: the stored address stays
    (cleared,) = run(
        db,
        f"{header},address,responsible_name,responsible_phone,maintenance_name,maintenance_phone\n"
        f"{base},,,,赵磊,13800000004\n",
    )
    assert cleared.outcome == "updated"
    assert cleared.changed == ["address", "contacts"]
    after = unit(db, "U-WD-002")
    assert after is not None
    assert after["address"] == ""
    assert after["contacts"] == {"maintenance": {"name": "赵磊", "phone": "13800000004"}}
    (moved,) = run(
        db, f"{header}\nU-WD-002,许昌市中心医院,weidu-ximajie,ordinary,hospital,multistorey\n"
    )
    assert moved.changed == ["region_id", "supervision", "building_class"]


def test_one_unit_is_written_like_a_row_of_the_units_file(db: psycopg.Connection[Any]) -> None:
    cells = unit_cells(db, city.UNIT)
    assert cells is not None
    assert (cells["category"], cells["type"], cells["responsible_phone"]) == (
        "high_risk",
        "commercial_complex",
        "13800000001",
    )
    row = parse_row(1, {**cells, "name": "万达广场"}, street_ids(db))
    result = write_unit(db, row, set(REQUIRED), actor="root", create=False)
    assert (result.outcome, result.changed) == ("updated", ["name"])
    unchanged = write_unit(db, row, set(REQUIRED), actor="root", create=False)
    assert unchanged.outcome == "unchanged"
    with pytest.raises(Conflict, match="exists already"):
        write_unit(db, row, set(REQUIRED), actor="root", create=True)
    assert registry_events(db, city.UNIT) == [("unit", "updated", "root")]
