"""Response models of the vendor tools (issue 14; ``firewatch/api/routes/vendor_tools.py``):
a device's conformance report and the dead-letter list.

:class:`ConformanceOut` has the shape of ``firewatch.core.conformance_report.Report.to_json()``,
which ``firewatch vendor check --json`` prints too; docs/vendor-check.md explains each field.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from firewatch.core.dead_letter_help import explain, payload_text
from firewatch.storage.conformance import StoredDeadLetter


class CheckedDeviceOut(BaseModel):
    id: str
    unit_id: str
    kind: str
    vendor: str
    decommissioned_at: datetime | None


class IntervalsOut(BaseModel):
    """Seconds between consecutive device timestamps of the channel."""

    count: int = Field(description="Intervals measured (messages − 1).")
    median_s: float
    p95_s: float
    min_s: float
    max_s: float
    cv: float | None = Field(description="Coefficient of variation (stdev / mean).")
    reference_s: float | None = Field(
        description="The reference device's interval for this kind and channel (not a rule)."
    )


class ClockOut(BaseModel):
    """``received_at − ts`` in seconds: positive = the device's clock is behind (or the
    message came late), negative = ahead. ``min_s`` estimates the clock's own offset."""

    median_s: float
    min_s: float
    max_s: float


class SeqGapOut(BaseModel):
    first: int
    last: int
    dead_lettered: int = Field(description="Numbers of the gap that came as dead letters.")


class RestartOut(BaseModel):
    at: datetime
    before: int
    after: int


class SeqReportOut(BaseModel):
    channel: str | None = Field(description="null: the device's one counter (the contract).")
    first: int | None
    last: int | None
    missing: int
    gaps: list[SeqGapOut] = Field(description="The first 20 gaps.")
    repeats: int
    repeated: list[int]
    restarts: list[RestartOut]


class ChannelReportOut(BaseModel):
    channel: str
    used_by_kind: bool
    messages: int
    first_ts: datetime | None
    last_ts: datetime | None
    first_received: datetime | None
    last_received: datetime | None
    intervals: IntervalsOut | None
    clock: ClockOut | None
    seq_first: int | None
    seq_last: int | None
    wills: int
    dead_letters: int
    dead_letter_reasons: dict[str, int]


class ReasonCountOut(BaseModel):
    reason: str
    count: int
    meaning: str
    fix: str
    example: str = Field(description="The detail of the newest dead letter of this reason.")


class FindingOut(BaseModel):
    level: Literal["problem", "warning", "info"]
    code: str = Field(description="Stable name of the finding (the text may change).")
    text: str
    channel: str | None


class ConformanceOut(BaseModel):
    """What the device sent in ``[since, until)`` (receive time) and what of it was refused.
    ``conforms``: no finding of level ``problem``."""

    device: CheckedDeviceOut
    since: datetime
    until: datetime
    window_s: float
    channels: list[ChannelReportOut]
    sequence: list[SeqReportOut]
    clock: ClockOut | None
    dead_letters: int
    dead_letter_reasons: list[ReasonCountOut]
    findings: list[FindingOut]
    truncated: bool
    conforms: bool
    problems: int
    warnings: int


class DeadLetterOut(BaseModel):
    """A refused message with its raw bytes. ``unit_id``, ``device_id`` and ``channel`` are
    the topic's (null when the topic does not have that shape)."""

    id: int
    received_at: datetime
    topic: str
    unit_id: str | None
    device_id: str | None
    channel: str | None
    reason: str
    meaning: str = Field(description="What the reason means (docs/vendor-check.md).")
    detail: str = Field(description="What ingest found: the field and the rule.")
    payload_base64: str = Field(description="The payload's first bytes (payload_bytes).")
    payload_text: str | None = Field(description="The same bytes as text, if UTF-8.")
    payload_size: int = Field(description="Bytes that arrived.")
    payload_truncated: bool = Field(description="The bytes here are not all that arrived.")
    payload_sha256: str = Field(description="Hex SHA-256 of everything that arrived.")

    @classmethod
    def of(cls, d: StoredDeadLetter) -> DeadLetterOut:
        cut = len(d.payload) < d.payload_size
        return cls(
            id=d.id,
            received_at=d.received_at,
            topic=d.topic,
            unit_id=d.unit_id,
            device_id=d.device_id,
            channel=d.channel,
            reason=d.reason,
            meaning=explain(d.reason),
            detail=d.detail,
            payload_base64=base64.b64encode(d.payload).decode("ascii"),
            payload_text=payload_text(d.payload, cut=cut),
            payload_size=d.payload_size,
            payload_truncated=cut,
            payload_sha256=d.payload_sha256,
        )
