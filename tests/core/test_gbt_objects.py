"""GB/T 26875.3 information objects: hand-built ADUs decode to the right values; encode inverts.

ADUs are written byte by byte from the object table in docs/gateway.md, not produced by
``encode_adu``, so a layout mistake in the codec cannot cancel out in a round trip.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firewatch.core.domain import (
    TRANSMISSION_OPERATION_BITS,
    TRANSMISSION_STATUS_BITS,
    PanelEventType,
    decode_status,
)
from firewatch.core.gbt_frame import decode_frame
from firewatch.core.gbt_objects import (
    ANALOG_TYPES,
    TYPE_NAMES,
    InfoObject,
    decode_adu,
    decode_transmission_operation,
    decode_transmission_status,
    encode_adu,
    encode_text31,
)
from firewatch.core.gbt_profiles import load_profiles

PROFILES = load_profiles()
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

T = datetime(2024, 5, 1, 12, 30, 45)
T6 = [45, 30, 12, 1, 5, 24]  # second, minute, hour, day, month, year-2000
DESCRIPTION = "3层东走廊感烟探测器"
# GB18030 (GB2312 range) codes of the description, from the code table: 3 层 东 走 廊 感 烟 探 测 器
DESCRIPTION_GB = bytes.fromhex("33 b2e3 b6ab d7df c0c8 b8d0 d1cc ccbd b2e2 c6f7")


def frame_of(adu: bytes) -> bytes:
    """A send-data frame around ``adu``, assembled field by field with a summed checksum."""
    control = bytes([0x01, 0x00, 1, 0, *T6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    control += bytes([len(adu) & 0xFF, len(adu) >> 8, 2])
    return b"@@" + control + adu + bytes([sum(control + adu) & 0xFF]) + b"##"


def test_description_bytes_are_gb18030() -> None:
    assert DESCRIPTION.encode("gb18030") == DESCRIPTION_GB
    assert encode_text31(DESCRIPTION) == DESCRIPTION_GB + bytes(31 - len(DESCRIPTION_GB))


def test_component_status_with_a_chinese_description_in_a_frame() -> None:
    adu = bytes(
        [
            2, 1,                    # type 2 (component status), one object
            1, 3,                    # system type 1, system address 3
            41,                      # component type 41 (point smoke detector)
            0x04, 0x03, 0x02, 0x01,  # component address 0x01020304
            0b0000_0011, 0x01,       # status: normal, fire, bit 8 power fault
            *DESCRIPTION_GB, *bytes(31 - len(DESCRIPTION_GB)),
            *T6,
        ]
    )  # fmt: skip
    assert len(adu) == 2 + 46

    [obj] = decode_adu(decode_frame(frame_of(adu)).adu)

    assert obj == InfoObject(
        2,
        "component_status",
        system_type=1,
        system_addr=3,
        component_type=41,
        component_addr=0x01020304,
        status=0x0103,
        description=DESCRIPTION,
        time=T,
    )
    flags = decode_status(PanelEventType.COMPONENT_STATUS, obj.status)
    assert flags == ["fire", "power_fault"]
    assert encode_adu(2, [obj]) == adu


def test_analog_pressure_value_is_scaled() -> None:
    adu = bytes([3, 1, 11, 1, 99, 0x10, 0, 0, 0, 5, 0x36, 0x01, *T6])  # 0x0136 = 310
    [obj] = decode_adu(adu)
    assert (obj.kind, obj.system_type, obj.component_type, obj.component_addr) == (
        "analog",
        11,
        99,
        0x10,
    )
    assert obj.detail == {
        "analog_type": 5,
        "quantity": "pressure",
        "value": 31.0,
        "unit": "kPa",
        "raw": 310,
    }
    assert obj.time == T
    assert encode_adu(3, [obj]) == adu


def test_analog_values_are_signed_and_unknown_types_unscaled() -> None:
    adu = bytes([3, 2, 1, 0, 30, 1, 0, 0, 0, 3, 0xFB, 0xFF, *T6])  # temperature raw -5
    adu += bytes([1, 0, 30, 2, 0, 0, 0, 77, 0x03, 0x00, *T6])  # analog type 77 unknown, raw 3
    temp, odd = decode_adu(adu)
    assert (temp.detail["value"], temp.detail["unit"], temp.detail["raw"]) == (-0.5, "°C", -5)
    assert odd.detail == {
        "analog_type": 77,
        "quantity": "unknown",
        "value": 3.0,
        "unit": "",
        "raw": 3,
    }
    assert encode_adu(3, [temp, odd]) == adu


def test_analog_encodes_from_the_scaled_value_when_raw_is_absent() -> None:
    obj = InfoObject(3, "analog", detail={"analog_type": 2, "value": 12.34})  # height 0.01 m
    adu = encode_adu(3, [obj])
    assert adu[10:12] == (1234).to_bytes(2, "little")
    assert decode_adu(adu)[0].detail["value"] == 12.34


def test_transmission_operation_with_the_duty_answer_bit() -> None:
    adu = bytes([24, 1, 0b0010_0000, 7, *T6])
    [obj] = decode_adu(adu)
    assert (obj.kind, obj.status, obj.operator, obj.time) == ("transmission_operation", 0x20, 7, T)
    assert decode_transmission_operation(obj.status) == ["duty_answer"]
    assert encode_adu(24, [obj]) == adu


def test_transmission_status_flags() -> None:
    adu = bytes([21, 2, 0b0000_0011, *T6, 0b0110_0100, *T6])
    normal_fire, test_faults = decode_adu(adu)
    assert normal_fire.kind == "transmission_status"
    assert decode_transmission_status(normal_fire.status) == ["fire"]
    assert decode_transmission_status(test_faults.status) == [
        "test",
        "fault",
        "link_fault",
        "line_fault",
    ]
    assert decode_transmission_status(0b0001_1001) == ["mains_power_fault", "backup_power_fault"]


def test_multi_object_adu_keeps_order() -> None:
    adu = bytes([1, 3])
    for addr, word in [(1, 0x0001), (2, 0x0003), (3, 0x0005)]:
        adu += bytes([1, addr, word & 0xFF, word >> 8, *T6])
    objs = decode_adu(adu)
    assert [(o.system_addr, o.status) for o in objs] == [(1, 1), (2, 3), (3, 5)]
    assert [decode_status(PanelEventType.SYSTEM_STATUS, o.status) for o in objs] == [
        [],
        ["fire"],
        ["fault"],
    ]
    assert encode_adu(1, objs) == adu


def test_operation_record() -> None:
    adu = bytes([4, 1, 1, 0, 0b0000_0110, 12, *T6])
    [obj] = decode_adu(adu)
    assert (obj.kind, obj.status, obj.operator) == ("operation", 6, 12)
    assert decode_status(PanelEventType.OPERATION, obj.status) == ["silence", "manual_alarm"]
    assert encode_adu(4, [obj]) == adu


def test_versions_configs_and_clocks() -> None:
    cases: list[tuple[bytes, str, dict[str, object], str | None]] = [
        (bytes([5, 1, 1, 2, 3, 14]), "software_version", {"version": "3.14"}, None),
        (bytes([25, 1, 2, 0]), "transmission_version", {"version": "2.0"}, None),
        (bytes([8, 1, 1, 2, *T6]), "system_time", {"clock": "2024-05-01T12:30:45"}, None),
        (bytes([28, 1, *T6]), "transmission_time", {"clock": "2024-05-01T12:30:45"}, None),
        (bytes([90, 1, *T6]), "clock_sync", {"clock": "2024-05-01T12:30:45"}, None),
        (bytes([91, 1, 10]), "duty_check", {"timeout_min": 10}, None),
        (bytes([6, 1, 1, 2, 4, *b"abc "]), "system_config", {}, "abc"),
        (bytes([26, 1, 6, *"东走廊".encode("gb18030")]), "transmission_config", {}, "东走廊"),
        (
            bytes([7, 1, 1, 2, 41, 1, 0, 0, 0, *DESCRIPTION_GB, *bytes(12)]),
            "component_config", {}, DESCRIPTION,
        ),
    ]  # fmt: skip
    for adu, kind, detail, description in cases:
        [obj] = decode_adu(adu)
        assert (obj.kind, obj.detail, obj.description) == (kind, detail, description), adu
        assert TYPE_NAMES[adu[0]] == kind
        if kind == "system_config":
            assert encode_adu(adu[0], [obj]) == bytes([6, 1, 1, 2, 3, *b"abc"])  # space stripped
        else:
            assert encode_adu(adu[0], [obj]) == adu, kind


def test_several_variable_length_objects() -> None:
    adu = bytes([26, 3, 2, *b"ab", 0, 1, *b"c"])
    assert [o.description for o in decode_adu(adu)] == ["ab", "", "c"]
    assert encode_adu(26, decode_adu(adu)) == adu


def test_year_first_profile_reads_object_times_year_first() -> None:
    adu = bytes([21, 1, 1, 24, 5, 1, 12, 30, 45])
    assert decode_adu(adu, PROFILES["year-first"])[0].time == T
    assert decode_adu(adu)[0].time is None
    assert encode_adu(21, decode_adu(adu, PROFILES["year-first"]), PROFILES["year-first"]) == adu


def test_invalid_object_times_are_none_not_errors() -> None:
    [obj] = decode_adu(bytes([8, 1, 1, 0, 0, 0, 25, 30, 2, 24]))  # hour 25, 30 February
    assert obj.time is None
    assert obj.detail == {"clock": None}
    assert encode_adu(8, [obj]) == bytes([8, 1, 1, 0, *bytes(6)])


def test_text_is_cut_at_nul_stripped_and_bad_bytes_replaced() -> None:
    text = b" A1\xff\x00junk".ljust(31, b"\x00")
    adu = bytes([7, 1, 1, 0, 1, 0, 0, 0, 0, *text])
    assert decode_adu(adu)[0].description == "A1\ufffd"
    spaced = b"smoke   ".ljust(31, b" ")
    assert decode_adu(bytes([7, 1, 1, 0, 1, 0, 0, 0, 0, *spaced]))[0].description == "smoke"


def test_text31_truncates_on_a_character_boundary() -> None:
    raw = encode_text31("东" * 16)  # 32 bytes of text: one character does not fit
    assert raw == "东".encode("gb18030") * 15 + b"\x00"
    assert encode_text31("a" * 40) == b"a" * 31
    assert encode_text31("") == bytes(31)


@pytest.mark.parametrize(
    "adu",
    [
        bytes([99, 1, 1, 2, 3]),  # unknown type flag
        bytes([22, 1, 0]),  # reserved
        bytes([61, 1, 0]),  # a center's read request: not decoded here
        bytes([1, 2, 1, 0, 1, 0, *T6]),  # count 2, one object
        bytes([1, 1, 1, 0, 1, 0, *T6, 0]),  # one byte too many
        bytes([1, 0]),  # no objects
        bytes([2]),  # no count
        bytes([6, 1, 1, 0, 5, *b"abc"]),  # text longer than the ADU
        bytes([6, 2, 1, 0, 1, *b"a"]),  # second object missing
        bytes([26, 1, 1, *b"ab"]),  # bytes after the last object
        bytes([26, 2, 1, *b"a"]),  # length byte of the second object missing
    ],
)
def test_anything_unreadable_becomes_one_raw_object(adu: bytes) -> None:
    assert decode_adu(adu) == [
        InfoObject(adu[0], "raw", detail={"type_flag": adu[0], "hex": adu.hex()})
    ]
    assert encode_adu(adu[0], decode_adu(adu)) == adu


def test_an_empty_adu_has_no_objects() -> None:
    assert decode_adu(b"") == []


def test_encode_refuses_what_the_layout_cannot_carry() -> None:
    status = InfoObject(1, "system_status", 1, 0, status=1, time=T)
    with pytest.raises(ValueError, match="no known layout"):
        encode_adu(22, [InfoObject(22, "x")])
    with pytest.raises(ValueError, match="object of type 1"):
        encode_adu(21, [status])
    with pytest.raises(ValueError, match=r"1\.\.255"):
        encode_adu(1, [])
    with pytest.raises(ValueError, match=r"1\.\.255"):
        encode_adu(1, [status] * 256)
    with pytest.raises(ValueError, match="over 1024"):
        encode_adu(2, [InfoObject(2, "component_status")] * 23)  # 2 + 23 x 46 = 1060
    assert len(encode_adu(2, [InfoObject(2, "component_status")] * 22)) == 2 + 22 * 46
    with pytest.raises(ValueError, match="out of range"):
        encode_adu(1, [InfoObject(1, "system_status", status=0x10000)])
    with pytest.raises(ValueError, match="2000"):
        encode_adu(1, [InfoObject(1, "system_status", time=datetime(1999, 1, 1))])


def test_flag_tables() -> None:
    assert set(TRANSMISSION_OPERATION_BITS.values()) >= {"duty_answer", "manual_alarm", "reset"}
    assert TRANSMISSION_STATUS_BITS[1] == "fire"
    assert ANALOG_TYPES[5] == ("pressure", 0.1, "kPa")
    with pytest.raises(ValueError, match="8 bits"):
        decode_transmission_status(256)
    with pytest.raises(ValueError, match="8 bits"):
        decode_transmission_operation(-1)


# ---------------------------------------------------------------- round trips

TIMES = st.none() | st.datetimes(datetime(2000, 1, 1), datetime(2255, 12, 31, 23, 59, 59)).map(
    lambda t: t.replace(microsecond=0)
)
U8 = st.integers(0, 255)
U32 = st.integers(0, 2**32 - 1)
# Text that survives GB18030 + stripping unchanged: no NULs, no edge whitespace, no surrogates.
TEXT = st.text(
    st.characters(codec="gb18030", blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"))
    | st.sampled_from("层东走廊感烟探测器 "),
    max_size=20,
).map(str.strip)
TEXT31 = TEXT.filter(lambda s: len(s.encode("gb18030")) <= 31)


def _clock(t: datetime | None) -> dict[str, str | int | float | bool | None]:
    return {"clock": None if t is None else t.isoformat()}


def objects(flag: int) -> st.SearchStrategy[InfoObject]:
    """Objects of ``flag`` exactly as decode_adu produces them."""
    kind = TYPE_NAMES[flag]
    if flag == 1:
        return st.builds(
            InfoObject, st.just(1), st.just(kind), U8, U8, status=st.integers(0, 0xFFFF), time=TIMES
        )
    if flag == 2:
        return st.builds(
            InfoObject,
            st.just(2),
            st.just(kind),
            U8,
            U8,
            component_type=U8,
            component_addr=U32,
            status=st.integers(0, 0xFFFF),
            description=TEXT31,
            time=TIMES,
        )
    if flag == 3:

        def analog(t: int, raw: int) -> dict[str, str | int | float | bool | None]:
            quantity, scale, unit = ANALOG_TYPES.get(t, ("unknown", 1.0, ""))
            return {
                "analog_type": t,
                "quantity": quantity,
                "value": raw / round(1 / scale),
                "unit": unit,
                "raw": raw,
            }

        return st.builds(
            InfoObject,
            st.just(3),
            st.just(kind),
            U8,
            U8,
            component_type=U8,
            component_addr=U32,
            time=TIMES,
            detail=st.builds(analog, U8, st.integers(-32768, 32767)),
        )
    if flag == 4:
        return st.builds(
            InfoObject, st.just(4), st.just(kind), U8, U8, status=U8, operator=U8, time=TIMES
        )
    if flag in (5, 25):
        version = st.builds(lambda a, b: {"version": f"{a}.{b}"}, U8, U8)
        if flag == 5:
            return st.builds(InfoObject, st.just(5), st.just(kind), U8, U8, detail=version)
        return st.builds(InfoObject, st.just(25), st.just(kind), detail=version)
    if flag == 6:
        return st.builds(InfoObject, st.just(6), st.just(kind), U8, U8, description=TEXT)
    if flag == 26:
        return st.builds(InfoObject, st.just(26), st.just(kind), description=TEXT)
    if flag == 7:
        return st.builds(
            InfoObject,
            st.just(7),
            st.just(kind),
            U8,
            U8,
            component_type=U8,
            component_addr=U32,
            description=TEXT31,
        )
    if flag == 8:
        return TIMES.flatmap(
            lambda t: st.builds(
                InfoObject,
                st.just(8),
                st.just(kind),
                U8,
                U8,
                time=st.just(t),
                detail=st.just(_clock(t)),
            )
        )
    if flag == 21:
        return st.builds(InfoObject, st.just(21), st.just(kind), status=U8, time=TIMES)
    if flag == 24:
        return st.builds(InfoObject, st.just(24), st.just(kind), status=U8, operator=U8, time=TIMES)
    if flag in (28, 90):
        return TIMES.map(lambda t: InfoObject(flag, kind, time=t, detail=_clock(t)))
    return U8.map(lambda m: InfoObject(91, kind, detail={"timeout_min": m}))


@SETTINGS
@given(
    data=st.data(),
    flag=st.sampled_from(sorted(TYPE_NAMES)),
    profile=st.sampled_from(sorted(PROFILES)),
)
def test_encode_then_decode_gives_the_objects_back(
    data: st.DataObject, flag: int, profile: str
) -> None:
    objs = data.draw(st.lists(objects(flag), min_size=1, max_size=20))
    try:
        adu = encode_adu(flag, objs, PROFILES[profile])
    except ValueError as err:
        assert "over 1024" in str(err)  # noqa: PT017 - only a too-long list may be refused
        return
    assert adu[:2] == bytes([flag, len(objs)])
    assert decode_adu(adu, PROFILES[profile]) == objs


@SETTINGS
@given(adu=st.binary(max_size=300) | st.sampled_from(sorted(TYPE_NAMES)).flatmap(
    lambda f: st.binary(max_size=100).map(lambda b: bytes([f, 1]) + b)
))  # fmt: skip
def test_decode_never_raises_and_raw_objects_keep_the_bytes(adu: bytes) -> None:
    objs = decode_adu(adu)
    assert all(o.kind in set(TYPE_NAMES.values()) | {"raw"} for o in objs)
    if objs and objs[0].kind == "raw":
        assert len(objs) == 1
        assert objs[0].detail == {"type_flag": adu[0], "hex": adu.hex()}
        assert encode_adu(adu[0], objs) == adu
    else:
        assert len(objs) == (adu[1] if adu else 0)
