"""GB/T 26875.3 status words decode into the right named flags."""

from __future__ import annotations

import pytest

from firewatch.core.domain import (
    ALARM_FLAGS,
    TRANSMISSION_OPERATION_BITS,
    TRANSMISSION_STATUS_BITS,
    PanelEventType,
    decode_status,
)

SYS = PanelEventType.SYSTEM_STATUS
COMP = PanelEventType.COMPONENT_STATUS
OP = PanelEventType.OPERATION


@pytest.mark.parametrize(
    ("kind", "word", "flags"),
    [
        (SYS, 0b1, []),  # normal operation, nothing to report
        (SYS, 0b0, ["test"]),  # bit 0 clear: test mode
        (SYS, 0b11, ["fire"]),
        (SYS, (1 << 0) | (1 << 2) | (1 << 8), ["fault", "mains_power_fault"]),
        (SYS, (1 << 0) | (1 << 9) | (1 << 10), ["backup_power_fault", "bus_fault"]),
        (SYS, (1 << 0) | (1 << 11), ["manual"]),
        (SYS, (1 << 0) | (1 << 12) | (1 << 13), ["config_changed", "reset"]),
        (COMP, (1 << 0) | (1 << 3), ["isolated"]),
        (COMP, (1 << 0) | (1 << 8), ["power_fault"]),  # bit 8 means power fault here
        (COMP, (1 << 0) | (1 << 11), []),  # bit 11 is not defined for components
        (COMP, 0b11110011, ["fire", "supervisory", "started", "feedback", "delay"]),
        (OP, 0b1, ["reset"]),
        (OP, 0b100110, ["silence", "manual_alarm", "confirm"]),
    ],
)
def test_decode_status(kind: PanelEventType, word: int, flags: list[str]) -> None:
    assert decode_status(kind, word) == flags


@pytest.mark.parametrize(("kind", "word"), [(SYS, 1 << 16), (COMP, -1), (OP, 256)])
def test_words_that_do_not_fit_are_refused(kind: PanelEventType, word: int) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        decode_status(kind, word)


TS = PanelEventType.TRANSMISSION_STATUS
TOP = PanelEventType.TRANSMISSION_OPERATION
DUTY = PanelEventType.DUTY_CHECK


@pytest.mark.parametrize(
    ("kind", "word", "flags"),
    [
        (TS, 0b1, []),  # normal monitoring
        (TS, 0b0, ["test"]),  # bit 0 clear: test, as the system word
        (TS, 0b11, ["fire"]),
        (TS, 0b1 | 1 << 2 | 1 << 3, ["fault", "mains_power_fault"]),
        (TS, 0b1 | 1 << 4, ["backup_power_fault"]),
        (TS, 0b1 | 1 << 5 | 1 << 6, ["link_fault", "line_fault"]),
        (TS, 0b1 | 1 << 7, []),  # bit 7 is not defined
        (TOP, 0b1, ["reset"]),
        (TOP, 0b1110, ["silence", "manual_alarm", "alarm_cleared"]),
        (TOP, 0b1110000, ["self_test", "duty_answer", "test"]),
        (TOP, 0, []),
        (DUTY, 0b01, []),  # answered in time
        (DUTY, 0b00, ["duty_missed"]),
        (DUTY, 0b11, ["duty_late"]),  # answered, late
        (DUTY, 0b10, ["duty_missed", "duty_late"]),
        (DUTY, 0xFFFF, ["duty_late"]),  # the other bits mean nothing
    ],
)
def test_decode_status_of_the_transmission_device_and_duty_checks(
    kind: PanelEventType, word: int, flags: list[str]
) -> None:
    assert decode_status(kind, word) == flags


@pytest.mark.parametrize(
    "kind",
    [
        PanelEventType.ANALOG,
        PanelEventType.SOFTWARE_VERSION,
        PanelEventType.SYSTEM_CONFIG,
        PanelEventType.COMPONENT_CONFIG,
        PanelEventType.SYSTEM_TIME,
        PanelEventType.TRANSMISSION_VERSION,
        PanelEventType.TRANSMISSION_CONFIG,
        PanelEventType.TRANSMISSION_TIME,
        PanelEventType.RAW,
    ],
)
def test_types_without_a_status_word_have_no_flags(kind: PanelEventType) -> None:
    assert decode_status(kind, 0) == []
    assert decode_status(kind, 0xFFFF) == []
    with pytest.raises(ValueError, match="does not fit in 16 bits"):
        decode_status(kind, 1 << 16)


@pytest.mark.parametrize("kind", [TS, TOP])
def test_the_transmission_bytes_have_8_bits(kind: PanelEventType) -> None:
    assert decode_status(kind, 0xFF)  # fits
    with pytest.raises(ValueError, match=f"{kind.value} word 256 does not fit in 8 bits"):
        decode_status(kind, 256)


def test_the_transmission_tables_are_the_specs() -> None:
    assert TRANSMISSION_STATUS_BITS == {
        1: "fire",
        2: "fault",
        3: "mains_power_fault",
        4: "backup_power_fault",
        5: "link_fault",
        6: "line_fault",
    }
    assert list(TRANSMISSION_OPERATION_BITS.values()) == [
        "reset",
        "silence",
        "manual_alarm",
        "alarm_cleared",
        "self_test",
        "duty_answer",
        "test",
    ]
    # the UITD's trouble flags are alarm flags (ingest commits them at once, never limits)
    assert {"line_fault", "link_fault", "duty_missed", "duty_late"} <= ALARM_FLAGS
