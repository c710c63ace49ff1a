"""Parsing a devices CSV file and checking one device: every row valid or rejected with its
reason, files that cannot be read refused whole (core/device_import.py; no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from firewatch.core.csv_import import ImportFileError, decode
from firewatch.core.device_import import (
    MAX_ROWS,
    RegistryError,
    check_metadata,
    device_row,
    meta_value,
    parse_devices_csv,
)
from firewatch.core.domain import DeviceKind

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
HEADER = "id,unit_id,kind,vendor,model,point,design_kpa,ports,port_rating_a"


def one(line: str, header: str = HEADER) -> str:
    """The reason the one data row was rejected ('' when it was not)."""
    parsed = parse_devices_csv(f"{header}\n{line}\n")
    assert len(parsed.rows) + len(parsed.rejected) == 1
    return parsed.rejected[0].reason if parsed.rejected else ""


def test_the_example_file_is_valid() -> None:
    parsed = parse_devices_csv(decode((EXAMPLES / "devices.csv").read_bytes()))
    assert parsed.rejected == []
    kinds = {r.kind for r in parsed.rows}
    assert kinds == {DeviceKind.PANEL, DeviceKind.WATER, DeviceKind.EBIKE_SHED}
    shed = next(r for r in parsed.rows if r.kind is DeviceKind.EBIKE_SHED)
    assert shed.meta == {"ports": 12, "port_rating_a": 3.0}
    assert "design_kpa" in parsed.columns


def test_a_valid_row_with_metadata_of_its_kind() -> None:
    parsed = parse_devices_csv(f"{HEADER}\nD-1,U-1,Water,acme,PT-100,roof tank,1200,,\n")
    (row,) = parsed.rows
    assert (row.id, row.unit_id, row.kind, row.vendor, row.model) == (
        "D-1",
        "U-1",
        DeviceKind.WATER,
        "acme",
        "PT-100",
    )
    assert row.meta == {"point": "roof tank", "design_kpa": 1200.0}
    assert row.clear == frozenset()  # the shed's empty cells are not a water device's


def test_an_empty_cell_of_a_managed_column_clears_that_value() -> None:
    (row,) = parse_devices_csv(f"{HEADER}\nD-1,U-1,water,,,,,,\n").rows
    assert row.clear == {"point", "design_kpa"}
    assert (row.vendor, row.model) == ("", "")
    (row,) = parse_devices_csv("id,unit_id,kind\nD-1,U-1,water\n").rows
    assert (row.vendor, row.model, row.clear) == (None, None, frozenset())


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("D-1,U-1,sprinkler,,,,,,", "unknown kind 'sprinkler' (panel, water, ebike_shed)"),
        ("D 1,U-1,water,,,,,,", "id 'D 1' is not [A-Za-z0-9_.-]{1,64}"),
        ("D/1,U-1,water,,,,,,", "id 'D/1' is not [A-Za-z0-9_.-]{1,64}"),
        ("health,U-1,panel,,,,,,", "id 'health' is reserved"),
        ("D-1,U 1,water,,,,,,", "unit_id 'U 1' is not"),
        (",U-1,water,,,,,,", "missing id"),
        ("D-1,,,,,,,,", "missing unit_id, kind"),
        ("D-1,U-1,water,ac me,,,,,", "vendor 'ac me' is not"),
        ("D-1,U-1,water,,,,12 bar,,", "design_kpa is not a number: '12 bar'"),
        ("D-1,U-1,water,,,,-5,,", "design_kpa -5 is out of range (above 0, at most 10000)"),
        ("D-1,U-1,water,,,,nan,,", "design_kpa must be finite"),
        ("D-1,U-1,water,,,,,12,", "ports is for ebike_shed devices, not water"),
        ("D-1,U-1,ebike_shed,,,,,12.5,", "ports is not a whole number: '12.5'"),
        ("D-1,U-1,ebike_shed,,,,,0,", "ports 0 is out of range (at least 1, at most 500)"),
        ("D-1,U-1,ebike_shed,,,pump,,,", "point is for water devices, not ebike_shed"),
        ("D-1,U-1,water,,x,", "6 fields, the header has 9"),
    ],
)
def test_a_bad_row_is_rejected_with_its_reason(line: str, reason: str) -> None:
    assert reason in one(line)


def test_a_duplicate_id_keeps_the_first_row_and_names_its_line() -> None:
    text = f"{HEADER}\nD-1,U-1,panel,,,,,,\n\nD-1,U-2,panel,,,,,,\nD-2,U-1,panel,,,,,,\n"
    parsed = parse_devices_csv(text)
    assert [(r.id, r.line) for r in parsed.rows] == [("D-1", 2), ("D-2", 5)]
    (dup,) = parsed.rejected
    assert (dup.line, dup.id, dup.reason) == (4, "D-1", "duplicate id: already on line 2")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "the file is empty"),
        ("id,unit_id\nD-1,U-1\n", "missing column(s): kind"),
        ("id,unit_id,kind,colour\n", "unknown column(s) 'colour'"),
        ("id,unit_id,kind,ID\n", "column 'id' appears twice"),
        ('{"id": "D-1"}\n', "unknown column(s)"),
        ("id,unit_id,kind\nD-1,U-1,pa\x00nel\n", "NUL characters"),
    ],
)
def test_a_file_that_is_not_a_devices_csv_is_refused_whole(text: str, error: str) -> None:
    with pytest.raises(ImportFileError) as raised:
        parse_devices_csv(text)
    assert error in str(raised.value)


def test_not_utf8_and_too_many_rows_are_refused_whole() -> None:
    with pytest.raises(ImportFileError, match="not UTF-8"):
        decode("id,unit_id,kind\nD-1,许昌,panel\n".encode("gbk"))
    assert decode("\ufeffid,unit_id,kind\n".encode()) == "id,unit_id,kind\n"
    rows = "".join(f"D-{i},U-1,panel\n" for i in range(MAX_ROWS + 1))
    with pytest.raises(ImportFileError, match="split the file"):
        parse_devices_csv("id,unit_id,kind\n" + rows)


def test_metadata_from_json_is_typed_and_bounded() -> None:
    water, shed = DeviceKind.WATER, DeviceKind.EBIKE_SHED
    assert meta_value("design_kpa", 1200, water) == 1200
    assert meta_value("ports", 8.0, shed) == 8
    assert meta_value("role", "tank", water) == "tank"
    for key, value, kind, reason in [
        ("ports", True, shed, "must be a number"),
        ("design_kpa", 10**400, water, "is not a number"),
        ("role", "boiler", water, "is not one of pressure, tank, pump_room"),
        ("point", 5, water, "must be text"),
        ("point", "x" * 201, water, "longer than 200"),
        ("colour", "red", water, "unknown metadata key 'colour'"),
    ]:
        with pytest.raises(RegistryError) as raised:
            meta_value(key, value, kind)
        assert reason in str(raised.value), key


def test_metadata_values_must_agree_with_each_other() -> None:
    with pytest.raises(RegistryError, match="min_kpa 300 is not below design_kpa 200"):
        check_metadata(DeviceKind.WATER, {"min_kpa": 300, "design_kpa": 200})
    with pytest.raises(RegistryError, match="tank_low_m 5 is above tank_capacity_m 4"):
        device_row(
            line=1,
            device_id="D-1",
            unit_id="U-1",
            kind="water",
            meta={"tank_low_m": 5, "tank_capacity_m": 4},
        )
    check_metadata(DeviceKind.WATER, {"min_kpa": "?", "design_kpa": 200, "static_kpa": 1})
