"""Parsing a units CSV file: every row valid or rejected with its reason, and files that
cannot be read at all refused as a whole (core/unit_import.py; no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from firewatch.core.csv_import import ImportFileError, decode
from firewatch.core.unit_import import (
    BUILDING_CLASSES,
    Contact,
    normalize_phone,
    parse_units_csv,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
STREETS = {
    "weidu-ximajie",
    "weidu-nanguan",
    "jianan-yuzhuang",
    "yuzhou-yingchuan",
    "changge-jiankang",
    "yanling-anling",
    "xiangcheng-chengguan",
}
HEADER = (
    "id,name,street,category,type,building_class,latitude,longitude,"
    "responsible_name,responsible_phone"
)
GOOD = "U-T-1,Test hotel,weidu-nanguan,key,hotel,class2_highrise,34.02,113.83,Li Na,13800001111"


def one(line: str, header: str = HEADER) -> str:
    """The reason the one data row was rejected ('' when it was not)."""
    parsed = parse_units_csv(f"{header}\n{line}\n", STREETS)
    assert len(parsed.rows) + len(parsed.rejected) == 1
    return parsed.rejected[0].reason if parsed.rejected else ""


def test_the_sample_file_is_valid_and_maps_ordinary_to_the_registrys_general() -> None:
    parsed = parse_units_csv(decode((EXAMPLES / "units.csv").read_bytes()), STREETS)
    assert parsed.rejected == []
    assert [r.id for r in parsed.rows] == ["U-WD-101", "U-WD-102", "U-JA-101", "U-WD-001"]
    assert [r.line for r in parsed.rows] == [2, 3, 4, 5]
    clinic = parsed.rows[2]
    assert (clinic.supervision, clinic.category) == ("general", "clinic")
    assert clinic.responsible == Contact("吴敏", "13900001103")
    assert parsed.rows[1].responsible == Contact("周强", "0374-2345678")
    assert (parsed.rows[0].latitude, parsed.rows[0].longitude) == (34.0331, 113.8262)
    assert "address" in parsed.columns


def test_a_valid_row() -> None:
    parsed = parse_units_csv(f"{HEADER}\n{GOOD}\n", STREETS)
    (row,) = parsed.rows
    assert (row.id, row.street, row.supervision, row.category) == (
        "U-T-1",
        "weidu-nanguan",
        "key",
        "hotel",
    )
    assert (row.building_class, row.address, row.maintenance) == ("class2_highrise", "", None)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({2: "nowhere"}, "unknown street 'nowhere'"),
        ({5: "skyscraper"}, "unknown building_class 'skyscraper'"),
        ({5: "sprinkler"}, "unknown building_class 'sprinkler'"),
        ({3: "vip"}, "unknown category 'vip'"),
        ({4: "Hotel Chain"}, "type 'Hotel Chain' is not a lowercase name"),
        ({0: "U 1"}, "id 'U 1' is not"),
        ({1: ""}, "missing name"),
        ({0: "", 2: ""}, "missing id, street"),
        ({6: "north"}, "latitude is not a number: 'north'"),
        ({6: "113.83", 7: "34.02"}, "latitude 113.83 is outside -90..90"),
        ({7: "190"}, "longitude 190 is outside -180..180"),
        ({6: "nan"}, "latitude nan is outside"),
        ({7: ""}, "latitude and longitude must both be given, or neither"),
        ({6: "0", 7: "0"}, "coordinates 0, 0 are a placeholder"),
        ({9: "12345"}, "not a phone number: '12345'"),
        ({9: "1380000111"}, "not a phone number"),
        ({9: ""}, "responsible_name without responsible_phone"),
        ({8: ""}, "responsible_phone without responsible_name"),
        ({1: "x" * 201}, "name is longer than 200 characters"),
        ({1: "bad\x00name"}, "name contains a NUL character"),
    ],
)
def test_each_bad_value_rejects_its_row_with_the_reason(
    change: dict[int, str], reason: str
) -> None:
    cells = GOOD.split(",")
    for i, v in change.items():
        cells[i] = v
    assert reason in one(",".join(cells))


def test_ordinary_general_and_case() -> None:
    for written, stored in (("ordinary", "general"), ("general", "general"), ("KEY", "key")):
        cells = GOOD.split(",")
        cells[3] = written
        parsed = parse_units_csv(f"{HEADER}\n{','.join(cells)}\n", STREETS)
        assert parsed.rows[0].supervision == stored


def test_duplicates_bad_field_counts_and_blank_lines_in_one_file() -> None:
    other = GOOD.replace("U-T-1", "U-T-2")
    text = "\n".join(
        [HEADER, GOOD, "", other, GOOD.replace("Test hotel", "Renamed"), "U-T-3,only,three"]
    )
    parsed = parse_units_csv(text + "\n", STREETS)
    assert [(r.id, r.line) for r in parsed.rows] == [("U-T-1", 2), ("U-T-2", 4)]
    assert [(r.line, r.id, r.reason) for r in parsed.rejected] == [
        (5, "U-T-1", "duplicate id: already on line 2"),
        (6, "U-T-3", "3 fields, the header has 10"),
    ]


def test_the_sample_with_errors_reports_every_row() -> None:
    parsed = parse_units_csv(decode((EXAMPLES / "units-with-errors.csv").read_bytes()), STREETS)
    assert [r.line for r in parsed.rows] == [2, 9]
    reasons = {r.line: r.reason for r in parsed.rejected}
    assert reasons == {
        3: "unknown street 'xiangcheng-nowhere'",
        4: f"unknown building_class 'skyscraper' ({', '.join(BUILDING_CLASSES)})",
        5: "latitude 113.4990 is outside -90..90",
        6: "duplicate id: already on line 2",
        7: "missing name",
        8: "not a phone number: '12345' (a mobile 1xxxxxxxxxx or a landline 0xxx-xxxxxxx)",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("id,name,street,category,type\n", "missing column(s): building_class"),
        (HEADER + ",lattitude\n", "unknown column(s) 'lattitude'"),
        ("id,id,name,street,category,type,building_class\n", "column 'id' appears twice"),
        (
            "id,name,street,category,type,building_class,latitude\n",
            "columns latitude and longitude go together",
        ),
        ('id,name\n"U-1,"unterminated\n', "missing column(s)"),
    ],
)
def test_a_file_without_a_usable_header_is_refused(text: str, message: str) -> None:
    with pytest.raises(ImportFileError) as err:
        parse_units_csv(text, STREETS)
    assert message in str(err.value)


def test_encoding_utf8_with_or_without_bom_and_not_gbk() -> None:
    text = f"{HEADER}\n{GOOD.replace('Test hotel', '测试宾馆')}\n"
    assert decode(text.encode("utf-8")) == text
    assert decode(b"\xef\xbb\xbf" + text.encode("utf-8")) == text
    with pytest.raises(ImportFileError, match="not UTF-8"):
        decode(text.encode("gbk"))


def test_header_names_are_trimmed_and_case_insensitive() -> None:
    header = " ID ,Name,STREET,category,type,building_class"
    parsed = parse_units_csv(f"{header}\nU-1,n,weidu-nanguan,key,hotel,multistorey\n", STREETS)
    assert [r.id for r in parsed.rows] == ["U-1"]


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("13800001111", "13800001111"),
        ("138 0000 1111", "13800001111"),
        ("+86 138-0000-1111", "13800001111"),
        ("008613800001111", "13800001111"),
        ("0374-2345678", "0374-2345678"),
        ("(0374) 2345678", "0374-2345678"),
        ("010-12345678", "010-12345678"),
        ("02112345678", "021-12345678"),
    ],
)
def test_phone_numbers_in_one_form(raw: str, normal: str) -> None:
    assert normalize_phone(raw) == normal


@pytest.mark.parametrize("raw", ["119", "12345678901", "0374-123", "phone", "+1 415 555 0100"])
def test_not_phone_numbers(raw: str) -> None:
    with pytest.raises(ValueError, match="not a phone number"):
        normalize_phone(raw)
