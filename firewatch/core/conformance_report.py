"""What a conformance report is made of (issue 14): the device and the messages it judges,
the limits and thresholds it judges them by, and the report with its findings.

:func:`~firewatch.core.conformance.check` measures a :class:`Device`'s messages
(:class:`Message`) and dead letters into a :class:`Report`, judged against :class:`Limits`
(the system's own settings) and this module's thresholds (design assumptions, each said
where it is defined); ``core/conformance_findings.py`` words what it finds. Each
:class:`Finding` has a :class:`Level`:

* ``problem``: messages are being lost or the center will treat the device as broken (dead
  letters, silence beyond the offline limit, a clock that analytics flags or ingest refuses);
  the CLI exits 1 on any;
* ``warning``: the device works but does not behave as the contract asks (seq gaps and
  repeats, a clock off by more than :data:`CLOCK_WARN_S`, irregular intervals);
* ``info``: worth knowing, nothing to fix (restarts, late deliveries, a reference interval).

:meth:`Report.to_json` is the shape of the CLI's ``--json`` and of the API's response.
Data and constants only: no SQL, no HTTP, no clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from firewatch.core.domain import Channel, DeviceKind
from firewatch.core.settings import Settings

# -- what the check compares against --------------------------------------------------------

#: The reference device's report interval per (kind, channel), in seconds: the simulated
#: city's defaults (``IntervalsSpec`` in firewatch/simulators/scenario.py; a panel's periodic
#: ``system_status``). Not a rule of the contract: a device may report at its own pace as
#: long as it is heard within the offline limit (``Settings.alert_offline_after_s``); a
#: median far from it is reported as information only.
REFERENCE_INTERVAL_S: dict[tuple[str, str], float] = {
    (DeviceKind.WATER, Channel.TELEMETRY): 60.0,
    (DeviceKind.EBIKE_SHED, Channel.TELEMETRY): 60.0,
    (DeviceKind.PANEL, Channel.EVENT): 300.0,
    (DeviceKind.WATER, Channel.STATUS): 3600.0,
    (DeviceKind.EBIKE_SHED, Channel.STATUS): 3600.0,
    (DeviceKind.PANEL, Channel.STATUS): 3600.0,
}

#: The channel that carries a kind's data: silence there is a problem whatever else arrives.
DATA_CHANNEL: dict[str, str] = {
    DeviceKind.WATER: Channel.TELEMETRY,
    DeviceKind.EBIKE_SHED: Channel.TELEMETRY,
    DeviceKind.PANEL: Channel.EVENT,
}

#: A clock further off than this is a warning (design assumption). NTP keeps a clock well
#: within a second and a QoS 1 publish on a working link arrives within a second or two, so
#: 10 s is beyond both: the clock is wrong, and left alone it drifts into analytics'
#: clock-skew anomaly (``analytics_skew_limit_s``, 120 s: a problem here) and ingest's
#: refusal (``max_clock_skew_future_s``, 300 s ahead).
CLOCK_WARN_S = 10.0
#: Intervals more irregular than this coefficient of variation are a warning (design
#: assumption): a periodic sender's jitter is a few percent; 0.5 means its schedule is not
#: periodic (bursts and pauses), which makes the center's dropout detection less sharp.
IRREGULAR_CV = 0.5
#: Fewest intervals on which regularity is judged.
MIN_INTERVALS = 5
#: Messages spread in delivery by more than this (max − min of received_at − ts) are
#: reported as late deliveries (information: a buffered backlog or a slow link).
LATE_SPREAD_S = 60.0
#: More restarts than this in one window is a warning (a device rebooting over and over).
MAX_QUIET_RESTARTS = 2
#: How many gap ranges, repeated numbers and restarts a report lists (counts are complete).
LIST_CAP = 20


class Level(StrEnum):
    """How much a finding matters (see the module docstring)."""

    PROBLEM = "problem"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Limits:
    """The system's limits the report judges against (from :class:`Settings`)."""

    offline_after_s: Mapping[str, float]  # alert_offline_after_s: silent this long = offline
    skew_limit_s: float = 120.0  # analytics_skew_limit_s: the clock-skew anomaly
    max_ahead_s: float = 300.0  # max_clock_skew_future_s: ingest refuses beyond
    dead_letter_quota: int = 20  # dead_letter_quota_per_device, per window, per ingest worker
    dead_letter_window_s: float = 600.0

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            offline_after_s=dict(settings.alert_offline_after_s),
            skew_limit_s=settings.analytics_skew_limit_s,
            max_ahead_s=settings.max_clock_skew_future_s,
            dead_letter_quota=settings.dead_letter_quota_per_device,
            dead_letter_window_s=settings.dead_letter_window_s,
        )


# -- input ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """The registered device the report is about."""

    id: str
    unit_id: str
    kind: str
    vendor: str
    decommissioned_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One stored message: its channel and the columns every stream table has."""

    channel: str
    seq: int
    ts: datetime
    received_at: datetime


# -- output ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Intervals:
    """Seconds between consecutive device timestamps (``ts``) of a channel: how regular
    the device's own schedule is (receive times would add the network's jitter)."""

    count: int  # intervals measured (messages − 1)
    median_s: float
    p95_s: float
    min_s: float
    max_s: float
    cv: float | None  # standard deviation / mean; None when the mean is 0
    reference_s: float | None  # REFERENCE_INTERVAL_S for the kind and channel


@dataclass(frozen=True)
class Clock:
    """``received_at − ts`` in seconds: positive when the device's clock is behind the
    server's (or its message was delivered late), negative when it is ahead. Delivery
    only ever adds, so ``min_s`` is the best estimate of the clock's own offset."""

    median_s: float
    min_s: float
    max_s: float


@dataclass(frozen=True)
class SeqGap:
    """Numbers missing between two consecutive messages: ``first`` … ``last``, of which
    ``dead_lettered`` came as dead letters (their payload still named the seq)."""

    first: int
    last: int
    dead_lettered: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class Restart:
    """The counter went back (a reboot or a reset): from ``before`` to ``after`` at ``at``
    (device time of the first message after)."""

    at: datetime
    before: int
    after: int


@dataclass(frozen=True)
class SeqReport:
    """The ``seq`` numbers of the device (``channel`` None: one counter for the device, as
    the contract asks) or of one channel (when the device counts per channel), in device
    time order. Last wills (seq 0) are left out."""

    channel: str | None
    first: int | None
    last: int | None
    missing: int  # numbers skipped inside the window, in all gaps
    gaps: list[SeqGap]  # at most LIST_CAP, the first ones
    repeats: int  # messages whose number came before (since the last restart)
    repeated: list[int]  # at most LIST_CAP numbers
    restarts: list[Restart]  # at most LIST_CAP


@dataclass(frozen=True)
class ChannelReport:
    """One channel's traffic in the window."""

    channel: str
    used_by_kind: bool  # whether the device's kind publishes on it (the others are refused)
    messages: int
    first_ts: datetime | None
    last_ts: datetime | None
    first_received: datetime | None
    last_received: datetime | None
    intervals: Intervals | None  # None below two messages
    clock: Clock | None
    seq_first: int | None
    seq_last: int | None
    wills: int  # last wills (status, seq 0)
    dead_letters: int
    dead_letter_reasons: dict[str, int]


@dataclass(frozen=True)
class ReasonCount:
    """Dead letters of one reason, with what it means, its usual fix and an example."""

    reason: str
    count: int
    meaning: str
    fix: str
    example: str  # the detail of the newest one


@dataclass(frozen=True)
class Finding:
    """One thing the report says, in plain words (``code`` is stable, ``text`` is not)."""

    level: Level
    code: str
    text: str
    channel: str | None = None


@dataclass(frozen=True)
class Report:
    """The conformance report of one device over ``[since, until)`` (receive time)."""

    device: Device
    since: datetime
    until: datetime
    channels: list[ChannelReport]
    sequence: list[SeqReport]  # one (the device) or, counting per channel, one per channel
    clock: Clock | None  # over every channel
    dead_letters: int
    dead_letter_reasons: list[ReasonCount]  # most frequent first
    findings: list[Finding]
    truncated: bool = False

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.level is Level.PROBLEM]

    @property
    def conforms(self) -> bool:
        """No finding of level ``problem``."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-able values (times as ISO 8601 text): the CLI's ``--json``
        and the API's response (firewatch/api/vendor_schemas.py) have this shape."""
        doc = asdict(self)
        doc["window_s"] = (self.until - self.since).total_seconds()
        doc["conforms"] = self.conforms
        doc["problems"] = len(self.problems)
        doc["warnings"] = sum(1 for f in self.findings if f.level is Level.WARNING)
        return json.loads(json.dumps(doc, default=_json_default))  # type: ignore[no-any-return]


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON-able: {type(value).__name__}")
