"""A device's conformance report (issue 14): what one device sent in a window, per channel,
what of it was refused and why, and what that means in plain words.

:func:`check` takes the device's stored messages in the window (channel, ``seq``, ``ts``,
``received_at``: the columns every stream table has) and its dead letters, and computes per
channel the count, first and last, the interval statistics and the clock offset; over the
whole device the sequence (gaps, repeats, restarts); the dead letters by reason; and the
findings, each with a level:

* ``problem``: messages are being lost or the center will treat the device as broken (dead
  letters, silence beyond the offline limit, a clock that analytics flags or ingest refuses);
  the CLI exits 1 on any;
* ``warning``: the device works but does not behave as the contract asks (seq gaps and
  repeats, a clock off by more than :data:`CLOCK_WARN_S`, irregular intervals);
* ``info``: worth knowing, nothing to fix (restarts, late deliveries, a reference interval).

:data:`DEAD_LETTER_REASONS` explains every dead-letter reason in one line with its usual
fix; docs/vendor-check.md and the vendor guide say the same.

Pure: no SQL, no HTTP, no clock (the window is given).
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from firewatch.core.domain import CHANNELS_BY_KIND, Channel, DeviceKind
from firewatch.core.rows import DeadLetter
from firewatch.core.settings import Settings

# -- dead-letter reasons --------------------------------------------------------------------


@dataclass(frozen=True)
class ReasonHelp:
    """What a dead-letter reason means and what usually fixes it (one line each)."""

    meaning: str
    fix: str


#: Every dead-letter reason (the ``reason`` column, firewatch/core/rows.py ``Reason``), keyed
#: by its text so that a reason this version does not know yet still reads.
DEAD_LETTER_REASONS: dict[str, ReasonHelp] = {
    "oversized": ReasonHelp(
        "the payload is larger than the limit (FIREWATCH_MAX_PAYLOAD_BYTES, 64 KiB)",
        "send less per message: at most 256 shed ports, no padding, no embedded blobs",
    ),
    "bad_topic": ReasonHelp(
        "the topic is not {root}/{unit_id}/{device_id}/{channel} with ids of "
        "[A-Za-z0-9_.-]{1,64} and a channel telemetry, event or status",
        "publish on firewatch/v1/<unit id>/<device id>/<channel>, ids exactly as registered",
    ),
    "not_json": ReasonHelp(
        "the payload is not UTF-8 JSON text (binary, truncated, another encoding, or a "
        "lone surrogate escape such as \\ud800)",
        "send one UTF-8 encoded JSON object per message; check the serializer and the "
        "character encoding of free text",
    ),
    "wrong_type": ReasonHelp(
        'a field has the wrong JSON type ("300" for a number, 1 for a boolean, an array '
        "where an object belongs)",
        "send numbers as JSON numbers, booleans as true/false, the payload as an object",
    ),
    "missing_field": ReasonHelp(
        "a required field is missing (seq, ts, or the channel's own, e.g. pressure_kpa)",
        "send every required field of the channel (docs/contract.md)",
    ),
    "not_finite": ReasonHelp(
        "a reading is NaN or Infinity, which is not a measurement",
        "leave a reading out (or null where allowed) when the sensor has no value",
    ),
    "out_of_range": ReasonHelp(
        "a value is outside its physical range, or a text or list is too long (more than "
        "256 ports; docs/contract.md)",
        "check the units (kPa, m, °C, A) and the sensor; a reading outside the range is a "
        "fault, not data",
    ),
    "invalid": ReasonHelp(
        "a value breaks a rule of the contract: a ts without UTC offset, an unknown event "
        "type or state, NUL in text, duplicate port numbers",
        "send ts as RFC 3339 with an offset (or Unix seconds/ms) and only the values the "
        "contract lists; the detail names the field",
    ),
    "unknown_device": ReasonHelp(
        "the topic's device is not registered, or it was decommissioned",
        "register the device before it publishes, or stop a decommissioned one",
    ),
    "topic_mismatch": ReasonHelp(
        "the topic does not fit the registered device: another unit, a channel its kind "
        "does not use, or a payload device_id that differs from the topic's",
        "publish on the device's own unit and channels (water and sheds: telemetry, "
        "status; panels: event, status)",
    ),
    "ts_in_future": ReasonHelp(
        "ts is ahead of the server's time by more than FIREWATCH_MAX_CLOCK_SKEW_FUTURE_S (300 s)",
        "synchronise the device's clock (NTP) and send ts in UTC or with its offset",
    ),
    "ts_too_old": ReasonHelp(
        "ts is older than FIREWATCH_MAX_BACKLOG_AGE_S (7 days; a last will: the record retention)",
        "drop buffered messages older than the backlog limit; check the clock after a reboot",
    ),
    "db_rejected": ReasonHelp(
        "valid by the contract but refused by the database (a constraint, a device deleted "
        "meanwhile); the detail is the database's error",
        "nothing on the device as a rule: tell the monitoring center, with the detail",
    ),
    "rate_limited": ReasonHelp(
        "the device sent faster than its rate limit (FIREWATCH_INGEST_DEVICE_RATE_PER_S, "
        "20/s sustained, bursts of 200); the excess was refused",
        "look for a publish loop; pace a buffered backlog's upload below the rate (last "
        "wills and alarm events are never limited)",
    ),
}


def explain(reason: str) -> str:
    """The one-line meaning of dead-letter ``reason`` (any text: an unknown one says so)."""
    known = DEAD_LETTER_REASONS.get(reason)
    return known.meaning if known else f"reason {reason!r} is not known to this version"


def payload_text(payload: bytes, *, cut: bool = False) -> str | None:
    """``payload`` as text if it is UTF-8, else None. ``cut``: the bytes are a prefix of
    what arrived, so a character split at the end is dropped rather than making the whole
    payload "not text"."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as err:
        # A UTF-8 character is at most 4 bytes: only an incomplete one at the very end.
        if cut and err.start >= len(payload) - 3 and err.reason == "unexpected end of data":
            return payload[: err.start].decode("utf-8", "strict")
        return None


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


# -- the check ------------------------------------------------------------------------------


def check(
    device: Device,
    messages: Iterable[Message],
    dead_letters: Iterable[DeadLetter],
    since: datetime,
    until: datetime,
    limits: Limits,
    *,
    truncated: bool = False,
) -> Report:
    """The report on ``device``'s ``messages`` and ``dead_letters`` received in ``[since,
    until)``. Messages may come in any order; ``truncated``: the caller stopped reading at
    its cap, so counts are lower bounds (said in a finding)."""
    if until <= since:
        raise ValueError("the window must end after it starts")
    by_channel: dict[str, list[Message]] = {}
    for m in messages:
        by_channel.setdefault(m.channel, []).append(m)
    for ms in by_channel.values():
        ms.sort(key=lambda m: (m.ts, m.seq))
    dead = sorted(dead_letters, key=lambda d: d.received_at)
    dead_by_channel: dict[str, list[DeadLetter]] = {}
    for d in dead:
        dead_by_channel.setdefault(_channel_of_topic(d.topic), []).append(d)

    used = _channels_of(device.kind)
    names: list[str] = [
        c.value for c in Channel if c in used or c in by_channel or c in dead_by_channel
    ]
    names += sorted(c for c in set(by_channel) | set(dead_by_channel) if c not in names)
    channels = [
        _channel_report(device.kind, c, c in used, by_channel.get(c, []), dead_by_channel)
        for c in names
    ]
    clock = _clock([m for ms in by_channel.values() for m in ms if not _is_will(m)])
    dead_seqs = _dead_letter_seqs(dead)
    sequence = _sequences(by_channel, dead_seqs)
    reasons = _reason_counts(dead)

    findings: list[Finding] = []
    window_s = (until - since).total_seconds()
    findings += _decommission_findings(device)
    findings += _silence_findings(device, by_channel, since, until, limits)
    findings += _dead_letter_findings(reasons, dead, limits)
    for ch in channels:
        findings += _interval_findings(device.kind, ch)
    findings += _clock_findings(clock, limits)
    findings += _sequence_findings(sequence, by_channel)
    if truncated:
        findings.append(
            Finding(
                Level.INFO,
                "truncated",
                f"more messages than the check reads arrived in {_span(window_s)}: counts are "
                "of the first ones only; check a shorter window",
            )
        )
    order = {Level.PROBLEM: 0, Level.WARNING: 1, Level.INFO: 2}
    findings.sort(key=lambda f: order[f.level])  # stable: within a level, as found
    return Report(
        device=device,
        since=since,
        until=until,
        channels=channels,
        sequence=sequence,
        clock=clock,
        dead_letters=len(dead),
        dead_letter_reasons=reasons,
        findings=findings,
        truncated=truncated,
    )


def _channels_of(kind: str) -> frozenset[str]:
    try:
        return frozenset(c.value for c in CHANNELS_BY_KIND[DeviceKind(kind)])
    except ValueError:  # a kind this version does not know: every channel is possible
        return frozenset(c.value for c in Channel)


def _is_will(m: Message) -> bool:
    """A last will: seq 0 on the status channel, stamped with its connection's start (so
    neither its interval nor its clock offset says anything)."""
    return m.seq == 0 and m.channel == Channel.STATUS


def _channel_of_topic(topic: str) -> str:
    """The last topic level (the channel), whatever the root: dead letters of the device
    were selected by its topic already."""
    return topic.rsplit("/", 1)[-1] if "/" in topic else ""


def _channel_report(
    kind: str,
    channel: str,
    used: bool,
    ms: Sequence[Message],
    dead_by_channel: Mapping[str, Sequence[DeadLetter]],
) -> ChannelReport:
    data = [m for m in ms if not _is_will(m)]
    wills = len(ms) - len(data)
    received = sorted(m.received_at for m in ms)
    dead = dead_by_channel.get(channel, [])
    seqs = [m.seq for m in data]
    return ChannelReport(
        channel=channel,
        used_by_kind=used,
        messages=len(ms),
        first_ts=ms[0].ts if ms else None,
        last_ts=ms[-1].ts if ms else None,
        first_received=received[0] if received else None,
        last_received=received[-1] if received else None,
        intervals=_intervals([m.ts for m in data], REFERENCE_INTERVAL_S.get((kind, channel))),
        clock=_clock(data),
        seq_first=seqs[0] if seqs else None,
        seq_last=seqs[-1] if seqs else None,
        wills=wills,
        dead_letters=len(dead),
        dead_letter_reasons=dict(Counter(d.reason for d in dead).most_common()),
    )


def _quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` (linear between the nearest ranks)."""
    pos = (len(values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def _intervals(times: Sequence[datetime], reference_s: float | None) -> Intervals | None:
    if len(times) < 2:
        return None
    gaps = sorted((b - a).total_seconds() for a, b in itertools.pairwise(times))
    mean = statistics.fmean(gaps)
    cv = statistics.pstdev(gaps) / mean if mean > 0 else None
    return Intervals(
        count=len(gaps),
        median_s=_r(statistics.median(gaps)),
        p95_s=_r(_quantile(gaps, 0.95)),
        min_s=_r(gaps[0]),
        max_s=_r(gaps[-1]),
        cv=None if cv is None else round(cv, 3),
        reference_s=reference_s,
    )


def _clock(ms: Sequence[Message]) -> Clock | None:
    if not ms:
        return None
    offsets = [(m.received_at - m.ts).total_seconds() for m in ms]
    return Clock(
        median_s=_r(statistics.median(offsets)), min_s=_r(min(offsets)), max_s=_r(max(offsets))
    )


def _r(seconds: float) -> float:
    return round(seconds, 3)


def _dead_letter_seqs(dead: Sequence[DeadLetter]) -> set[int]:
    """The ``seq`` of every dead letter whose payload still names one (a JSON object with
    an integer seq ≥ 1): a gap's numbers that were refused were not lost in transit."""
    out: set[int] = set()
    for d in dead:
        try:
            doc = json.loads(d.payload)
        except (ValueError, UnicodeDecodeError):
            continue
        seq = doc.get("seq") if isinstance(doc, dict) else None
        if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1:
            out.add(seq)
    return out


def _sequence(channel: str | None, ms: Sequence[Message], dead_seqs: set[int]) -> SeqReport:
    """The numbers of ``ms`` (seq ≥ 1, in (ts, seq) order), split into runs at restarts: a
    number below every number of the current run, or back to 1 (the contract counts from
    1), starts a new run (a rebooted device counts again). Within a run, a number that came
    before is a repeat and the numbers between its distinct ones are missing, so a message
    that arrives out of order fills its gap rather than making one."""
    restarts: list[Restart] = []
    runs: list[list[int]] = []
    prev: int | None = None
    for m in ms:
        s = m.seq
        if prev is None or (s < prev and (s < min(runs[-1]) or s == 1)):
            if prev is not None and len(restarts) < LIST_CAP:
                restarts.append(Restart(m.ts, prev, s))
            runs.append([])
        runs[-1].append(s)
        prev = s
    gaps: list[SeqGap] = []
    repeated: list[int] = []
    missing = repeats = 0
    for run in runs:
        counts = Counter(run)
        repeats += len(run) - len(counts)
        repeated += [n for n, c in counts.items() if c > 1 and len(repeated) < LIST_CAP]
        distinct = sorted(counts)
        for a, b in itertools.pairwise(distinct):
            if b > a + 1:
                missing += b - a - 1
                if len(gaps) < LIST_CAP:
                    gaps.append(SeqGap(a + 1, b - 1, _count_between(dead_seqs, a + 1, b - 1)))
    return SeqReport(
        channel=channel,
        first=ms[0].seq if ms else None,
        last=ms[-1].seq if ms else None,
        missing=missing,
        gaps=gaps,
        repeats=repeats,
        repeated=repeated[:LIST_CAP],
        restarts=restarts,
    )


def _count_between(values: set[int], first: int, last: int) -> int:
    if last - first + 1 <= len(values):
        return sum(1 for v in range(first, last + 1) if v in values)
    return sum(1 for v in values if first <= v <= last)


def _sequences(by_channel: Mapping[str, Sequence[Message]], dead_seqs: set[int]) -> list[SeqReport]:
    """One report for the device; one per channel instead when the device evidently counts
    per channel (merged, the numbers repeat or restart; no channel's own do)."""
    numbered = {c: [m for m in ms if m.seq != 0] for c, ms in by_channel.items()}
    numbered = {c: ms for c, ms in numbered.items() if ms}
    merged = sorted((m for ms in numbered.values() for m in ms), key=lambda m: (m.ts, m.seq))
    device = _sequence(None, merged, dead_seqs)
    if len(numbered) < 2 or not (device.restarts or device.repeats):
        return [device]
    per = [_sequence(c, ms, dead_seqs) for c, ms in sorted(numbered.items())]
    if any(r.restarts or r.repeats for r in per):
        return [device]
    return per


def _reason_counts(dead: Sequence[DeadLetter]) -> list[ReasonCount]:
    counts = Counter(str(d.reason) for d in dead)
    newest = {str(d.reason): d.detail for d in dead}  # sorted by receive time: the last wins
    out = []
    for reason, n in counts.most_common():
        help_ = DEAD_LETTER_REASONS.get(reason)
        out.append(
            ReasonCount(
                reason=reason,
                count=n,
                meaning=explain(reason),
                fix=help_.fix if help_ else "ask the monitoring center",
                example=newest[reason],
            )
        )
    return out


# -- findings -------------------------------------------------------------------------------


def _decommission_findings(device: Device) -> list[Finding]:
    if device.decommissioned_at is None:
        return []
    return [
        Finding(
            Level.WARNING,
            "decommissioned",
            f"decommissioned since {_at(device.decommissioned_at)}: ingest refuses what it "
            "sends (unknown_device)",
        )
    ]


def _silence_findings(
    device: Device,
    by_channel: Mapping[str, Sequence[Message]],
    since: datetime,
    until: datetime,
    limits: Limits,
) -> list[Finding]:
    window_s = (until - since).total_seconds()
    offline_s = limits.offline_after_s.get(device.kind)
    long_enough = offline_s is not None and window_s >= offline_s
    limit_words = f"; the center marks a {device.kind} device offline after {_span(offline_s)}"
    hint = (
        f" (shorter than the {_span(offline_s)} offline limit: watch longer to judge)"
        if offline_s is not None and not long_enough
        else ""
    )
    received = sorted(m.received_at for ms in by_channel.values() for m in ms)
    if not received:
        return [
            Finding(
                Level.PROBLEM if long_enough else Level.WARNING,
                "no_messages",
                f"no messages in {_span(window_s)}{hint}",
            )
        ]
    out: list[Finding] = []
    data = DATA_CHANNEL.get(device.kind)
    if data is not None and not by_channel.get(data):
        out.append(
            Finding(
                Level.PROBLEM if long_enough else Level.WARNING,
                "no_data",
                f"no {data} in {_span(window_s)}{hint}",
                data,
            )
        )
    if offline_s is not None:
        # The offline check counts any message as contact, the window's edges included.
        edges = [since, *received, until]
        start, end = max(itertools.pairwise(edges), key=lambda p: p[1] - p[0])
        silent_s = (end - start).total_seconds()
        if silent_s > offline_s:
            out.append(
                Finding(
                    Level.PROBLEM,
                    "silent",
                    f"silent for {_span(silent_s)} ({_between(start, end)}){limit_words}",
                )
            )
    return out


def _dead_letter_findings(
    reasons: Sequence[ReasonCount], dead: Sequence[DeadLetter], limits: Limits
) -> list[Finding]:
    out = [
        Finding(
            Level.PROBLEM,
            "dead_letters",
            f"{r.count} dead letter{'s' if r.count != 1 else ''}: {r.reason} ×{r.count} — "
            f"{r.meaning} (latest: {_clip(r.example)})",
        )
        for r in reasons
    ]
    if _quota_reached(dead, limits):
        out.append(
            Finding(
                Level.INFO,
                "dead_letter_quota",
                f"ingest keeps at most {limits.dead_letter_quota} dead letters per device per "
                f"{_span(limits.dead_letter_window_s)} (per worker): more were refused than "
                "these counts show",
            )
        )
    return out


def _quota_reached(dead: Sequence[DeadLetter], limits: Limits) -> bool:
    quota = limits.dead_letter_quota
    if quota <= 0 or len(dead) < quota:
        return False
    window = timedelta(seconds=limits.dead_letter_window_s)
    times = [d.received_at for d in dead]  # sorted
    return any(times[i + quota - 1] - times[i] < window for i in range(len(times) - quota + 1))


def _interval_findings(kind: str, ch: ChannelReport) -> list[Finding]:
    iv = ch.intervals
    if iv is None or ch.channel == Channel.STATUS:
        return []  # status comes on connect and now and then: no schedule to judge
    out: list[Finding] = []
    name = ch.channel
    if iv.median_s < 1.0:
        out.append(
            Finding(
                Level.WARNING,
                "too_often",
                f"{name} every {_span(iv.median_s)} (median): more than once a second loads "
                "the city's ingest for no reading's worth",
                name,
            )
        )
    if (
        DATA_CHANNEL.get(kind) == Channel.TELEMETRY
        and iv.count >= MIN_INTERVALS
        and iv.cv is not None
        and iv.cv > IRREGULAR_CV
    ):
        out.append(
            Finding(
                Level.WARNING,
                "irregular",
                f"{name} intervals are irregular (coefficient of variation {iv.cv:.2f}; "
                f"median {_span(iv.median_s)}, p95 {_span(iv.p95_s)}, max {_span(iv.max_s)}): "
                "report on a fixed schedule",
                name,
            )
        )
    ref = iv.reference_s
    if ref is not None and iv.median_s >= 1.0 and not 0.5 * ref <= iv.median_s <= 1.5 * ref:
        out.append(
            Finding(
                Level.INFO,
                "interval",
                f"{name} every {_span(iv.median_s)} (median); the reference device reports "
                f"every {_span(ref)}",
                name,
            )
        )
    return out


def _clock_findings(clock: Clock | None, limits: Limits) -> list[Finding]:
    if clock is None:
        return []
    out: list[Finding] = []
    offset = clock.min_s  # delivery only adds: the least delayed message is the clock
    if offset < -CLOCK_WARN_S:
        ahead = -offset
        if ahead > limits.skew_limit_s:
            level, tail = (
                Level.PROBLEM,
                (
                    f"the center flags a clock off by {_span(limits.skew_limit_s)}, and ingest "
                    f"refuses messages over {_span(limits.max_ahead_s)} ahead (ts_in_future)"
                ),
            )
        else:
            level, tail = Level.WARNING, "synchronise it (NTP)"
        out.append(Finding(level, "clock_ahead", f"clock {_span(ahead)} ahead: {tail}"))
    elif offset > CLOCK_WARN_S:
        level = Level.PROBLEM if offset > limits.skew_limit_s else Level.WARNING
        tail = (
            f"the center flags a clock off by {_span(limits.skew_limit_s)}"
            if level is Level.PROBLEM
            else "synchronise it (NTP)"
        )
        out.append(
            Finding(
                level,
                "clock_behind",
                f"clock {_span(offset)} behind (every message arrived at least that long "
                f"after its ts): {tail}",
            )
        )
    if clock.max_s - clock.min_s > LATE_SPREAD_S:
        out.append(
            Finding(
                Level.INFO,
                "late",
                f"some messages arrived up to {_span(clock.max_s - clock.min_s)} later than "
                "others (a buffered backlog or a slow link)",
            )
        )
    return out


def _sequence_findings(
    sequence: Sequence[SeqReport], by_channel: Mapping[str, Sequence[Message]]
) -> list[Finding]:
    out: list[Finding] = []
    if len(sequence) > 1:
        out.append(
            Finding(
                Level.WARNING,
                "seq_per_channel",
                "seq counts per channel: the contract asks for one counter per device "
                "across its channels (gaps below are per channel)",
            )
        )
    for s in sequence:
        where = f"{s.channel} " if s.channel else ""
        if s.missing:
            ranges = ", ".join(_range(g) for g in s.gaps[:5])
            more = ", …" if len(s.gaps) > 5 or sum(g.size for g in s.gaps) < s.missing else ""
            refused = sum(g.dead_lettered for g in s.gaps)
            why = (
                f"; {refused} of them came as dead letters"
                if refused
                else "; none came as a dead letter (lost, or never sent)"
            )
            out.append(
                Finding(
                    Level.WARNING,
                    "seq_gaps",
                    f"{where}seq: {s.missing} missing in {len(s.gaps)}"
                    f"{'+' if len(s.gaps) >= LIST_CAP else ''} gap"
                    f"{'s' if len(s.gaps) != 1 else ''} ({ranges}{more}){why}",
                    s.channel,
                )
            )
        if s.repeats:
            nums = ", ".join(str(n) for n in s.repeated[:5]) + (
                ", …" if len(s.repeated) > 5 else ""
            )
            out.append(
                Finding(
                    Level.WARNING,
                    "seq_repeats",
                    f"{where}seq: {s.repeats} message{'s' if s.repeats != 1 else ''} reused a "
                    f"number with another ts ({nums}): a retry must resend the same ts and "
                    "seq, or it is stored twice",
                    s.channel,
                )
            )
        if s.restarts:
            first = s.restarts[0]
            n = len(s.restarts)
            out.append(
                Finding(
                    Level.WARNING if n > MAX_QUIET_RESTARTS else Level.INFO,
                    "seq_restarts",
                    f"{where}seq restarted {n}{'+' if n >= LIST_CAP else ''} time"
                    f"{'s' if n != 1 else ''} (first {first.before} → {first.after} at "
                    f"{_at(first.at)}): a reboot or a reset counter",
                    s.channel,
                )
            )
    zero = {c: sum(1 for m in ms if m.seq == 0) for c, ms in by_channel.items()}
    for channel, n in sorted(zero.items()):
        if n and channel != Channel.STATUS:
            out.append(
                Finding(
                    Level.WARNING,
                    "seq_zero",
                    f"{n} {channel} message{'s' if n != 1 else ''} with seq 0, which is "
                    "reserved for the last will: count from 1",
                    channel,
                )
            )
    wills = len([m for m in by_channel.get(Channel.STATUS, ()) if m.seq == 0])
    if wills:
        out.append(
            Finding(
                Level.WARNING,
                "wills",
                f"{wills} last will{'s' if wills != 1 else ''}: the broker published the "
                "device's will, so its connection dropped without a clean disconnect",
                Channel.STATUS,
            )
        )
    return out


# -- words ----------------------------------------------------------------------------------


def _span(seconds: float | None) -> str:
    """``0.25 s``, ``42 s``, ``90 s``, ``5 min``, ``7 min 30 s``, ``2 h 5 min``."""
    if seconds is None:
        return "?"
    if seconds < 10:
        return f"{seconds:.3g} s"
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    if s < 3600:
        m, rest = divmod(s, 60)
        return f"{m} min" + (f" {rest} s" if rest else "")
    h, rest = divmod(s, 3600)
    return f"{h} h" + (f" {rest // 60} min" if rest // 60 else "")


def _at(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _between(start: datetime, end: datetime) -> str:
    """``2026-12-07 08:02:10Z – 08:10:00Z`` (the end's date only if it differs)."""
    a, b = _at(start), _at(end)
    return f"{a} – {b[11:] if a[:10] == b[:10] else b}"


def _range(g: SeqGap) -> str:
    return str(g.first) if g.first == g.last else f"{g.first}–{g.last}"


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
