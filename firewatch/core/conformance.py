"""A device's conformance report (issue 14): what one device sent in a window, per channel,
what of it was refused and why, and what that means in plain words.

:func:`check` takes the device's stored messages in the window (channel, ``seq``, ``ts``,
``received_at``: the columns every stream table has) and its dead letters, and measures per
channel the count, first and last, the interval statistics and the clock offset; over the
whole device the sequence (gaps, repeats, restarts); the dead letters by reason; then it
adds the findings, most serious first. The report's shape, the limits and the thresholds
are in ``core/conformance_report.py``, the findings' words in
``core/conformance_findings.py``, and what each dead-letter reason means in
``core/dead_letter_help.py``.

Pure: no SQL, no HTTP, no clock (the window is given).
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from firewatch.core.conformance_findings import (
    clock_findings,
    dead_letter_findings,
    decommission_findings,
    interval_findings,
    sequence_findings,
    silence_findings,
    truncated_findings,
)
from firewatch.core.conformance_report import (
    LIST_CAP,
    REFERENCE_INTERVAL_S,
    ChannelReport,
    Clock,
    Device,
    Finding,
    Intervals,
    Level,
    Limits,
    Message,
    ReasonCount,
    Report,
    Restart,
    SeqGap,
    SeqReport,
)
from firewatch.core.dead_letter_help import DEAD_LETTER_REASONS, explain
from firewatch.core.domain import CHANNELS_BY_KIND, Channel, DeviceKind
from firewatch.core.rows import DeadLetter


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
    findings += decommission_findings(device)
    findings += silence_findings(device, by_channel, since, until, limits)
    findings += dead_letter_findings(reasons, dead, limits)
    for ch in channels:
        findings += interval_findings(device.kind, ch)
    findings += clock_findings(clock, limits)
    findings += sequence_findings(sequence, by_channel)
    findings += truncated_findings(truncated, since, until)
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
