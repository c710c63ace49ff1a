"""GB/T 26875.3 frames: byte-exact decoding of hand-built frames, encoding, and stream delimiting.

The frames here are assembled byte by byte from the layout in docs/gateway.md, with the
checksum summed in the test, so the codec is checked against the standard and not only against
itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firewatch.core.domain import PanelEventType, decode_status
from firewatch.core.gbt_frame import (
    FRAME_OVERHEAD,
    MAX_ADU,
    Command,
    Frame,
    FrameError,
    FrameReader,
    Rejected,
    answer,
    decode_frame,
    decode_time,
    encode_frame,
    encode_time,
    format_address,
    parse_address,
    peek,
)
from firewatch.core.gbt_objects import decode_adu
from firewatch.core.gbt_profiles import STANDARD, load_profiles

PROFILES = load_profiles()
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,  # nothing written to .hypothesis/
    suppress_health_check=[HealthCheck.too_slow],
)

T = datetime(2024, 5, 1, 12, 30, 45)
T_BYTES = bytes([45, 30, 12, 1, 5, 24])  # second, minute, hour, day, month, year-2000
DEVICE = 0x112233445566
DEVICE_LE = bytes([0x66, 0x55, 0x44, 0x33, 0x22, 0x11])


def build(
    serial: int,
    command: int,
    adu: bytes,
    *,
    time6: bytes = T_BYTES,
    source: bytes = DEVICE_LE,
    destination: bytes = bytes(6),
    version: bytes = b"\x01\x00",
    checksum: str = "sum",
) -> bytes:
    """A frame assembled field by field from the standard's layout (not via our encoder)."""
    control = (
        bytes([serial & 0xFF, serial >> 8])
        + version
        + time6
        + source
        + destination
        + bytes([len(adu) & 0xFF, len(adu) >> 8])
        + bytes([command])
    )
    assert len(control) == 25
    if checksum == "sum":
        check = sum(control + adu) % 256
    else:
        check = 0
        for b in control + adu:
            check ^= b
    return b"@@" + control + adu + bytes([check]) + b"##"


# ---------------------------------------------------------------- decoding hand-built frames


def test_system_status_fire_frame_written_out_byte_by_byte() -> None:
    control = [
        0x02, 0x01,                          # serial 0x0102, little-endian
        0x01, 0x00,                          # version 1.0
        45, 30, 12, 1, 5, 24,                # 2024-05-01 12:30:45
        0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  # source 0x112233445566
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  # destination: the center
        12, 0,                               # ADU length 12
        2,                                   # command: send data
    ]  # fmt: skip
    adu = [
        1, 1,                    # type 1 (system status), one object
        1, 0,                    # system type 1 (fire alarm system), address 0
        0b0000_0011, 0x00,       # status word: bit0 normal, bit1 fire
        50, 29, 12, 1, 5, 24,    # object time 2024-05-01 12:29:50
    ]  # fmt: skip
    raw = bytes([0x40, 0x40, *control, *adu, sum(control + adu) & 0xFF, 0x23, 0x23])

    frame = decode_frame(raw)

    assert frame.serial == 0x0102
    assert frame.version == (1, 0)
    assert frame.time == T
    assert frame.source == DEVICE
    assert frame.destination == 0
    assert frame.command is Command.SEND
    assert frame.adu == bytes(adu)
    assert peek(raw) == (0x0102, DEVICE)
    [obj] = decode_adu(frame.adu)
    assert (obj.kind, obj.system_type, obj.system_addr, obj.status) == ("system_status", 1, 0, 3)
    assert obj.time == datetime(2024, 5, 1, 12, 29, 50)
    assert decode_status(PanelEventType.SYSTEM_STATUS, obj.status) == ["fire"]
    assert encode_frame(frame) == raw


def test_confirm_frame_for_serial_0x1234_is_byte_exact() -> None:
    raw = answer(0x1234, source=0, destination=DEVICE, command=Command.CONFIRM, now=T)

    control = [0x34, 0x12, 1, 0, *T_BYTES, 0, 0, 0, 0, 0, 0, *DEVICE_LE, 0, 0, 3]
    assert raw == bytes([0x40, 0x40, *control, sum(control) & 0xFF, 0x23, 0x23])
    assert len(raw) == FRAME_OVERHEAD
    frame = decode_frame(raw)
    assert (frame.serial, frame.command, frame.adu) == (0x1234, Command.CONFIRM, b"")
    assert (frame.source, frame.destination) == (0, DEVICE)


def test_deny_frame_carries_command_6() -> None:
    raw = answer(7, source=0, destination=DEVICE, command=Command.DENY, now=T)
    assert raw[2 + 24] == 6
    assert decode_frame(raw).command is Command.DENY


def test_the_adu_may_contain_markers_and_version_is_accepted_as_sent() -> None:
    adu = b"\x01\x01@@##\x00\x00" + T_BYTES[:2]  # '@@' and '##' inside the ADU
    raw = build(5, 2, adu, version=b"\x02\x07")
    frame = decode_frame(raw)
    assert frame.adu == adu
    assert frame.version == (2, 7)


def test_an_unknown_command_byte_is_kept_as_an_int() -> None:
    frame = decode_frame(build(1, 9, b""))
    assert frame.command == 9
    assert not isinstance(frame.command, Command)
    assert encode_frame(frame) == build(1, 9, b"")


@pytest.mark.parametrize(
    "time6",
    [
        bytes(6),
        bytes([0, 0, 0, 31, 2, 24]),
        bytes([60, 0, 0, 1, 1, 24]),
        bytes([0, 0, 0, 1, 13, 0]),
    ],
)
def test_a_time_tag_that_is_not_a_date_decodes_to_none(time6: bytes) -> None:
    assert decode_frame(build(1, 2, b"", time6=time6)).time is None


# ---------------------------------------------------------------- frame errors


def test_a_wrong_checksum_is_detected() -> None:
    raw = bytearray(build(0x1234, 2, bytes([1, 1, 1, 0, 3, 0, *T_BYTES])))
    raw[-3] = (raw[-3] + 1) & 0xFF
    with pytest.raises(FrameError) as err:
        decode_frame(bytes(raw))
    assert err.value.reason == "checksum"
    assert peek(bytes(raw)) == (0x1234, DEVICE)  # the gateway can still deny with the serial


def test_a_corrupted_adu_byte_fails_the_checksum() -> None:
    raw = bytearray(build(3, 2, bytes([1, 1, 1, 0, 3, 0, *T_BYTES])))
    raw[2 + 25 + 4] ^= 0x02  # the fire bit
    with pytest.raises(FrameError, match="checksum") as err:
        decode_frame(bytes(raw))
    assert err.value.reason == "checksum"


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda r: r[:29], "short"),
        (lambda r: b"@#" + r[2:], "start_marker"),
        (lambda r: r[:-2] + b"#!", "end_marker"),
        (lambda r: r[:-3] + b"\x00" + r[-3:], "length"),  # one byte more than declared
        (lambda r: r[:25] + b"\x04" + r[26:], "length"),  # declared 12 + 1024
    ],
)
def test_malformed_frames_raise_with_a_reason(
    mangle: Callable[[bytes], bytes], reason: str
) -> None:
    raw = build(1, 2, b"\x01\x01\x01\x00\x03\x00" + T_BYTES)
    with pytest.raises(FrameError) as err:
        decode_frame(mangle(raw))
    assert err.value.reason == reason


def test_encode_refuses_an_adu_over_1024_and_fields_out_of_range() -> None:
    with pytest.raises(FrameError) as err:
        encode_frame(Frame(1, (1, 0), T, 1, 0, 2, bytes(MAX_ADU + 1)))
    assert err.value.reason == "length"
    with pytest.raises(ValueError, match="48 bits"):
        encode_frame(Frame(1, (1, 0), T, 1 << 48, 0, 2, b""))
    with pytest.raises(ValueError, match="out of range"):
        encode_frame(Frame(1 << 16, (1, 0), T, 1, 0, 2, b""))
    assert len(encode_frame(Frame(1, (1, 0), None, 1, 0, 2, bytes(MAX_ADU)))) == 1054


# ---------------------------------------------------------------- profiles


def test_xor_profile_checks_the_xor_and_the_standard_refuses_it() -> None:
    adu = bytes([1, 1, 1, 0, 3, 0, *T_BYTES])
    raw = build(0x4321, 2, adu, checksum="xor")
    assert raw[-3] != build(0x4321, 2, adu)[-3]  # the two checksums differ for this frame
    frame = decode_frame(raw, PROFILES["xor-checksum"])
    assert frame.serial == 0x4321
    assert encode_frame(frame, PROFILES["xor-checksum"]) == raw
    with pytest.raises(FrameError, match="checksum"):
        decode_frame(raw)


def test_year_first_profile_reads_the_time_tag_year_first() -> None:
    year_first = bytes([24, 5, 1, 12, 30, 45])
    raw = build(1, 2, b"", time6=year_first)
    assert decode_frame(raw, PROFILES["year-first"]).time == T
    assert decode_frame(raw).time is None  # second 24, minute 5, hour 1, day 12, month 30
    assert encode_frame(decode_frame(raw, PROFILES["year-first"]), PROFILES["year-first"]) == raw


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_round_trips_a_frame(name: str) -> None:
    profile = PROFILES[name]
    frame = Frame(0xBEEF, (1, 0), T, DEVICE, 0xA1, Command.SEND, b"\x15\x01\x01" + T_BYTES)
    assert decode_frame(encode_frame(frame, profile), profile) == frame


# ---------------------------------------------------------------- time and addresses


def test_time_encoding_follows_the_order() -> None:
    assert encode_time(T) == T_BYTES
    assert encode_time(T, "YMDhms") == bytes([24, 5, 1, 12, 30, 45])
    assert decode_time(bytes([24, 5, 1, 12, 30, 45]), "YMDhms") == T
    assert decode_time(b"\x00\x00") is None
    with pytest.raises(ValueError, match="order"):
        encode_time(T, "smhDMM")
    with pytest.raises(ValueError, match="2000"):
        encode_time(datetime(1999, 12, 31))


@SETTINGS
@given(
    t=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2255, 12, 31, 23, 59, 59)),
    order=st.permutations("smhDMY").map("".join),
)
def test_time_round_trips_in_any_order(t: datetime, order: str) -> None:
    assert decode_time(encode_time(t, order), order) == t.replace(microsecond=0)


@pytest.mark.parametrize(
    ("addr", "text"),
    [
        (0, "000000000000"),
        (DEVICE, "112233445566"),
        ((1 << 48) - 1, "ffffffffffff"),
        (0xAB, "0000000000ab"),
    ],
)
def test_addresses_format_as_12_lowercase_hex_digits(addr: int, text: str) -> None:
    assert format_address(addr) == text
    assert parse_address(text) == addr
    assert parse_address(text.upper()) == addr


def test_short_addresses_parse_and_bad_ones_do_not() -> None:
    assert parse_address("1a") == 0x1A
    for bad in ["", "1234567890abc", "0x12", "12 ", " 12", "1_2", "g1", "12\n"]:
        with pytest.raises(ValueError, match="hex digits"):
            parse_address(bad)
    with pytest.raises(ValueError, match="48 bits"):
        format_address(1 << 48)
    with pytest.raises(ValueError, match="48 bits"):
        format_address(-1)


# ---------------------------------------------------------------- FrameReader


FRAME_A = build(1, 2, bytes([1, 1, 1, 0, 3, 0, *T_BYTES]))
FRAME_B = build(2, 2, b"")
FRAME_C = build(3, 3, b"\x40\x40\x23\x23\x40")  # markers inside the ADU


def test_a_stream_cut_at_every_byte_boundary_gives_the_same_frames() -> None:
    stream = FRAME_A + FRAME_B + FRAME_C
    for cut in range(len(stream) + 1):
        for cut2 in range(cut, len(stream) + 1, 7):
            reader = FrameReader()
            out = reader.feed(stream[:cut]) + reader.feed(stream[cut:cut2])
            out += reader.feed(stream[cut2:])
            assert out == [FRAME_A, FRAME_B, FRAME_C], (cut, cut2)
            assert reader.garbage_bytes == 0
            assert not reader.pending


def test_byte_at_a_time() -> None:
    reader = FrameReader()
    out: list[bytes | Rejected] = []
    for i, b in enumerate(FRAME_A):
        out += reader.feed(bytes([b]))
        assert reader.pending == (1 <= i < len(FRAME_A) - 1)
    assert out == [FRAME_A]


def test_garbage_before_a_frame_is_skipped_and_counted() -> None:
    reader = FrameReader()
    assert reader.feed(b"\x00junk#") == []
    assert reader.garbage_bytes == 6
    assert reader.feed(b"@") == []  # may be half a marker: held, not counted yet
    assert reader.buffered == 1
    assert not reader.pending
    assert reader.feed(b"x" + FRAME_B + b"zz" + FRAME_A) == [FRAME_B, FRAME_A]
    assert reader.garbage_bytes == 6 + 2 + 2


def test_a_stray_at_sign_before_a_frame_does_not_hide_it() -> None:
    reader = FrameReader()
    out = reader.feed(b"@" + FRAME_A + FRAME_B)
    assert [x for x in out if isinstance(x, bytes)] == [FRAME_A, FRAME_B]
    assert reader.garbage_bytes >= 1


def test_a_checksum_byte_equal_to_at_sign_is_delimited_by_length() -> None:
    base = bytes([1, 1, 1, 0, 3, 0, *T_BYTES, 0])
    fix = (0x40 - sum(build(9, 2, base)[2:-3])) % 256  # make the checksum 0x40
    raw = build(9, 2, base[:-1] + bytes([fix]))
    assert raw[-3] == 0x40
    assert FrameReader().feed(raw + FRAME_B) == [raw, FRAME_B]


def test_a_declared_length_over_1024_is_rejected_at_once_and_the_reader_resyncs() -> None:
    bad_header = build(1, 2, b"")[:24] + bytes([0x01, 0x04])  # declares 1025
    reader = FrameReader()
    out = reader.feed(bad_header)  # only 26 bytes: no waiting for a kilobyte
    assert out == [Rejected("length", bad_header)]
    assert reader.feed(b"tail" + FRAME_A) == [FRAME_A]
    assert reader.garbage_bytes == len(bad_header) + 4
    assert reader.buffered == 0


def test_a_missing_end_marker_is_rejected_and_the_next_frame_is_found() -> None:
    broken = FRAME_A[:-2] + b"!!"
    reader = FrameReader()
    out = reader.feed(broken + FRAME_B)
    assert out == [Rejected("end_marker", broken), FRAME_B]
    assert reader.garbage_bytes == len(broken)


def test_a_truncated_frame_is_rejected_when_the_next_one_lands_on_its_end() -> None:
    # A frame cut short by a reconnect: the next frame's bytes fill the declared length, its
    # end is not '##', and scanning restarts inside it, finding the next real frame.
    reader = FrameReader()
    out = reader.feed(FRAME_A[:40] + FRAME_A + FRAME_B)
    assert out[0] == Rejected("end_marker", (FRAME_A[:40] + FRAME_A)[: len(FRAME_A)])
    assert out[1:] == [FRAME_A, FRAME_B]


def test_the_buffer_never_exceeds_one_maximal_frame() -> None:
    reader = FrameReader()
    big_header = build(1, 2, b"")[:24] + bytes([0x00, 0x04])  # declares 1024: waits for it
    assert reader.feed(big_header) == []
    assert reader.pending
    out: list[bytes | Rejected] = []
    for _ in range(100):
        out += reader.feed(b"\x00" * 37)
        assert reader.buffered <= FRAME_OVERHEAD + MAX_ADU
    # 26 + 3700 bytes without '##' at 1054: rejected once, then the zeros are garbage.
    assert [r.reason for r in out if isinstance(r, Rejected)] == ["end_marker"]
    assert not reader.pending
    assert reader.garbage_bytes == 26 + 3700


@SETTINGS
@given(
    adus=st.lists(st.binary(max_size=60), min_size=1, max_size=8),
    gaps=st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"@", b"")), min_size=9),
    seed=st.integers(0, 2**32 - 1),
)
def test_frames_with_garbage_between_survive_any_split(
    adus: list[bytes], gaps: list[bytes], seed: int
) -> None:
    frames = [build(i, 2, adu) for i, adu in enumerate(adus)]
    stream = b"".join(gap + frame for gap, frame in zip(gaps, frames, strict=False))
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(len(stream) + 1), min(6, len(stream) + 1)))
    reader = FrameReader()
    out: list[bytes | Rejected] = []
    for lo, hi in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += reader.feed(stream[lo:hi])
        assert reader.buffered <= FRAME_OVERHEAD + MAX_ADU
    assert out == frames
    assert reader.garbage_bytes == sum(len(g) for g in gaps[: len(frames)])


@SETTINGS
@given(chunks=st.lists(st.binary(max_size=80) | st.sampled_from([b"@@", FRAME_A, FRAME_C])))
def test_any_input_is_accounted_for_byte_by_byte(chunks: list[bytes]) -> None:
    reader = FrameReader()
    frame_bytes = 0
    for chunk in chunks:
        for item in reader.feed(chunk):
            if isinstance(item, bytes):
                assert item[:2] == b"@@"
                assert item[-2:] == b"##"
                frame_bytes += len(item)
            else:
                assert item.reason in {"length", "end_marker"}
        assert reader.buffered <= FRAME_OVERHEAD + MAX_ADU
    assert frame_bytes + reader.garbage_bytes + reader.buffered == sum(map(len, chunks))


@SETTINGS
@given(
    serial=st.integers(0, 0xFFFF),
    version=st.tuples(st.integers(0, 255), st.integers(0, 255)),
    t=st.none() | st.datetimes(datetime(2000, 1, 1), datetime(2255, 12, 31, 23, 59, 59)),
    source=st.integers(0, (1 << 48) - 1),
    destination=st.integers(0, (1 << 48) - 1),
    command=st.sampled_from(list(Command)),
    adu=st.binary(max_size=MAX_ADU),
    profile=st.sampled_from(sorted(PROFILES)),
)
def test_encode_decode_round_trip(
    serial: int,
    version: tuple[int, int],
    t: datetime | None,
    source: int,
    destination: int,
    command: Command,
    adu: bytes,
    profile: str,
) -> None:
    t = None if t is None else t.replace(microsecond=0)
    frame = Frame(serial, version, t, source, destination, command, adu)
    raw = encode_frame(frame, PROFILES[profile])
    assert len(raw) == FRAME_OVERHEAD + len(adu)
    assert decode_frame(raw, PROFILES[profile]) == frame
    assert peek(raw) == (serial, source)
    assert FrameReader().feed(raw) == [raw]


def test_standard_profile_is_the_default() -> None:
    frame = Frame(1, (1, 0), T, DEVICE, 0, Command.SEND, b"")
    assert encode_frame(frame) == encode_frame(frame, STANDARD) == build(1, 2, b"")
