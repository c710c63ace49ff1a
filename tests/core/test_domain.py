"""GB/T 26875.3 status words decode into the right named flags."""

from __future__ import annotations

import pytest

from firewatch.core.domain import PanelEventType, decode_status

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
