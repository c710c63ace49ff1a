"""The findings of a conformance report (issue 14): what is wrong or worth knowing about a
device's traffic, each in plain words with a :class:`~firewatch.core.conformance_report.Level`
and a stable ``code``.

One function per aspect, each given what :func:`~firewatch.core.conformance.check` measured
(and the messages where it needs them) and returning its findings in the order it finds
them: the device's registration, silence, dead letters, one channel's intervals, the clock,
the sequence numbers, a truncated read. The thresholds are in ``core/conformance_report.py``;
the words for durations, times and ranges are here. docs/vendor-check.md lists every
``code``, and a test checks that the vendor guides name only codes made here.

Pure: no SQL, no HTTP, no clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from firewatch.core.conformance_report import (
    CLOCK_WARN_S,
    DATA_CHANNEL,
    IRREGULAR_CV,
    LATE_SPREAD_S,
    LIST_CAP,
    MAX_QUIET_RESTARTS,
    MIN_INTERVALS,
    ChannelReport,
    Clock,
    Device,
    Finding,
    Level,
    Limits,
    Message,
    ReasonCount,
    SeqGap,
    SeqReport,
)
from firewatch.core.domain import Channel
from firewatch.core.rows import DeadLetter


def decommission_findings(device: Device) -> list[Finding]:
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


def silence_findings(
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


def dead_letter_findings(
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


def interval_findings(kind: str, ch: ChannelReport) -> list[Finding]:
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


def clock_findings(clock: Clock | None, limits: Limits) -> list[Finding]:
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


def sequence_findings(
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


def truncated_findings(truncated: bool, since: datetime, until: datetime) -> list[Finding]:
    """Said when the caller stopped reading at its cap (``truncated``): counts are lower
    bounds."""
    if not truncated:
        return []
    window_s = (until - since).total_seconds()
    return [
        Finding(
            Level.INFO,
            "truncated",
            f"more messages than the check reads arrived in {_span(window_s)}: counts are "
            "of the first ones only; check a shorter window",
        )
    ]


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
