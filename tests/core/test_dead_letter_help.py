"""What each dead-letter reason means (firewatch/core/dead_letter_help.py): every reason the
ingest refuses with has a meaning and a fix, the vendor reference lists them all, and a
refused payload reads as text only when it is UTF-8."""

from __future__ import annotations

from pathlib import Path

from firewatch.core.dead_letter_help import DEAD_LETTER_REASONS, explain, payload_text
from firewatch.core.rows import Reason


def test_every_reason_has_a_meaning_and_a_fix() -> None:
    for reason in [*Reason, "rate_limited"]:
        help_ = DEAD_LETTER_REASONS[str(reason)]
        assert help_.meaning
        assert help_.fix
        assert explain(str(reason)) == help_.meaning
    assert "not known" in explain("from_the_future")


def test_the_vendor_reference_lists_every_reason() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "vendor-check.md").read_text("utf-8")
    for reason in DEAD_LETTER_REASONS:
        assert f"| `{reason}` |" in doc, reason


def test_a_payload_is_text_only_if_it_is_utf8() -> None:
    assert payload_text("café".encode()) == "café"
    assert payload_text(b"\xff\xfe") is None
    cut = "café".encode()[:4]  # the é split by the cap
    assert payload_text(cut) is None
    assert payload_text(cut, cut=True) == "caf"
