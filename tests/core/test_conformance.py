"""The conformance report on hand-built series (firewatch/core/conformance.py): a regular
device has nothing to say, and each way of breaking the contract is found and worded."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import orjson

from firewatch.core.conformance import check
from firewatch.core.conformance_report import (
    REFERENCE_INTERVAL_S,
    Device,
    Finding,
    Level,
    Limits,
    Message,
    Report,
    SeqGap,
)
from firewatch.core.dead_letter_help import DEAD_LETTER_REASONS
from firewatch.core.rows import DeadLetter, Reason
from firewatch.core.settings import Settings

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
WATER = Device("D-W1", "U-1", "water", "acme")
PANEL = Device("D-P1", "U-1", "panel", "gst")
LIMITS = Limits(offline_after_s={"panel": 900.0, "water": 300.0, "ebike_shed": 300.0})
WINDOW = timedelta(minutes=15)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def series(
    channel: str = "telemetry",
    *,
    n: int = 15,
    step: float = 60.0,
    first_seq: int = 1,
    start: float = 10.0,
    delay: float = 0.3,
    skip: Iterable[int] = (),
) -> list[Message]:
    """``n`` messages every ``step`` s from ``start``, numbered from ``first_seq`` (the
    numbers in ``skip`` are left out), each received ``delay`` s after its ts."""
    gone = set(skip)
    return [
        Message(channel, first_seq + i, at(start + i * step), at(start + i * step + delay))
        for i in range(n)
        if first_seq + i not in gone
    ]


def dead(
    reason: Reason | str, s: float, *, seq: int | None = None, channel: str = "telemetry"
) -> DeadLetter:
    payload = b"\xff not json" if seq is None else orjson.dumps({"seq": seq, "ts": 1})
    topic = f"firewatch/v1/U-1/D-W1/{channel}"
    return DeadLetter(at(s), topic, payload, reason, f"detail of {reason}")  # type: ignore[arg-type]


def report(
    messages: Iterable[Message],
    dead_letters: Iterable[DeadLetter] = (),
    *,
    device: Device = WATER,
    window: timedelta = WINDOW,
    limits: Limits = LIMITS,
) -> Report:
    return check(device, messages, dead_letters, T0, T0 + window, limits)


def codes(r: Report) -> dict[str, Finding]:
    return {f.code: f for f in r.findings}


def test_a_regular_device_has_no_findings() -> None:
    status = [Message("status", 16, at(900 - 60), at(900 - 59.7))]
    r = report(series() + status)
    assert r.findings == []
    assert r.conforms
    tel = r.channels[0]
    assert (tel.channel, tel.messages, tel.seq_first, tel.seq_last) == ("telemetry", 15, 1, 15)
    assert tel.intervals is not None
    assert (tel.intervals.median_s, tel.intervals.p95_s, tel.intervals.cv) == (60.0, 60.0, 0.0)
    assert tel.intervals.reference_s == 60.0
    assert tel.clock is not None
    assert tel.clock.median_s == 0.3
    assert [c.channel for c in r.channels] == ["telemetry", "status"]
    assert r.sequence[0].channel is None
    assert r.sequence[0].missing == 0


def test_a_seq_gap_is_reported_with_its_range_and_what_was_dead_lettered() -> None:
    r = report(series(skip=(5, 6, 7, 12)), [dead(Reason.OUT_OF_RANGE, 400, seq=6)])
    seq = r.sequence[0]
    assert seq.missing == 4
    assert seq.gaps == [SeqGap(5, 7, 1), SeqGap(12, 12, 0)]
    gap = codes(r)["seq_gaps"]
    assert gap.level is Level.WARNING
    assert gap.text == "seq: 4 missing in 2 gaps (5–7, 12); 1 of them came as dead letters"
    assert codes(r)["dead_letters"].level is Level.PROBLEM


def test_a_clock_behind_is_flagged_and_far_behind_is_a_problem() -> None:
    r = report(series(delay=60.0))
    (f,) = r.findings
    assert (f.level, f.code) == (Level.WARNING, "clock_behind")
    assert f.text.startswith("clock 60 s behind")
    assert r.clock is not None
    assert (r.clock.median_s, r.clock.min_s) == (60.0, 60.0)
    assert r.conforms  # a warning: the CLI exits 0

    far = report(series(delay=200.0))
    assert codes(far)["clock_behind"].level is Level.PROBLEM
    assert not far.conforms


def test_a_clock_ahead_is_flagged_and_a_backlog_is_not_a_slow_clock() -> None:
    ahead = report(series(delay=-30.0))
    assert codes(ahead)["clock_ahead"].text.startswith("clock 30 s ahead")
    # a buffered backlog: the early readings arrive late together, the recent ones at once
    backlog = [Message(m.channel, m.seq, m.ts, max(m.received_at, at(400))) for m in series()]
    r = report(backlog)
    assert "clock_behind" not in codes(r)
    assert codes(r)["late"].level is Level.INFO


def test_dead_letters_are_summarised_by_reason_with_their_meaning() -> None:
    letters = [dead(Reason.NOT_JSON, 10 + i) for i in range(12)]
    letters += [dead(Reason.OUT_OF_RANGE, 100, seq=3), dead("rate_limited", 120)]
    r = report(series(), letters)
    assert r.dead_letters == 14
    assert [(c.reason, c.count) for c in r.dead_letter_reasons] == [
        ("not_json", 12),
        ("out_of_range", 1),
        ("rate_limited", 1),
    ]
    first = r.findings[0]
    assert first.level is Level.PROBLEM
    assert first.text.startswith(
        "12 dead letters: not_json ×12 — the payload is not UTF-8 JSON text"
    )
    assert r.channels[0].dead_letter_reasons == {
        "not_json": 12,
        "out_of_range": 1,
        "rate_limited": 1,
    }
    assert not r.conforms


def test_a_full_dead_letter_quota_says_more_were_refused() -> None:
    limits = Limits(offline_after_s=LIMITS.offline_after_s, dead_letter_quota=3)
    r = report(series(), [dead(Reason.NOT_JSON, i) for i in range(3)], limits=limits)
    assert codes(r)["dead_letter_quota"].level is Level.INFO


def test_no_telemetry_in_the_window_is_a_problem_once_the_window_is_long_enough() -> None:
    status = [Message("status", 3, at(30), at(30.2))]
    r = report(status, window=timedelta(minutes=5))
    no_data = codes(r)["no_data"]
    assert (no_data.level, no_data.text) == (Level.PROBLEM, "no telemetry in 5 min")
    # a watch shorter than the offline limit cannot tell: a warning that says so
    short = report([], window=timedelta(seconds=30))
    (f,) = short.findings
    assert f.level is Level.WARNING
    assert (
        f.text
        == "no messages in 30 s (shorter than the 5 min offline limit: watch longer to judge)"
    )


def test_silence_beyond_the_offline_limit_is_a_problem() -> None:
    messages = series(n=3) + series(n=3, start=600.0, first_seq=4)
    silent = codes(report(messages))["silent"]
    assert silent.level is Level.PROBLEM
    assert silent.text.startswith("silent for 7 min 50 s (2026-12-07 08:02:10Z – 08:10:00Z)")
    assert silent.text.endswith("the center marks a water device offline after 5 min")


def test_restarts_repeats_and_wills() -> None:
    before = series(n=5, first_seq=100)  # 100..104
    after = series(n=5, first_seq=1, start=400.0)  # a reboot: 1..5
    retry = [Message("telemetry", 3, at(700), at(700.3))]  # seq 3 again, a new ts
    will = [Message("status", 0, at(-86_400), at(350))]  # the will: its connect time
    r = report(before + after + retry + will, window=timedelta(minutes=12))
    seq = r.sequence[0]
    assert [(x.before, x.after) for x in seq.restarts] == [(104, 1)]
    assert (seq.repeats, seq.repeated, seq.missing) == (1, [3], 0)
    found = codes(r)
    assert found["seq_restarts"].level is Level.INFO
    assert found["seq_repeats"].level is Level.WARNING
    assert found["wills"].text.startswith("1 last will:")
    assert "clock_behind" not in found  # the will's old ts is not a clock
    status = next(c for c in r.channels if c.channel == "status")
    assert (status.wills, status.intervals, status.clock) == (1, None, None)


def test_a_late_message_fills_its_gap_rather_than_restarting() -> None:
    messages = series(n=6)
    late = messages.pop(2)  # seq 3 stamped later than seq 4: out of order
    messages.append(Message("telemetry", 3, at(300), at(300.3)))
    r = report(messages)
    assert late.seq == 3
    assert r.sequence[0].restarts == []
    assert r.sequence[0].missing == 0


def test_a_device_counting_per_channel_is_told_so() -> None:
    tel = series(n=15)
    status = [Message("status", i + 1, at(35 + 300 * i), at(35.3 + 300 * i)) for i in range(3)]
    r = report(tel + status)
    assert [s.channel for s in r.sequence] == ["status", "telemetry"]
    assert all(s.missing == 0 and not s.restarts for s in r.sequence)
    assert codes(r)["seq_per_channel"].level is Level.WARNING


def test_irregular_telemetry_is_a_warning_and_a_slow_pace_is_information() -> None:
    times = [10, 20, 30, 150, 160, 170, 290, 300, 310, 430]
    r = report([Message("telemetry", i + 1, at(t), at(t + 0.2)) for i, t in enumerate(times)])
    found = codes(r)
    assert found["irregular"].level is Level.WARNING
    assert found["interval"].text == (
        "telemetry every 10 s (median); the reference device reports every 60 s"
    )


def test_a_panel_is_judged_on_its_events_and_its_own_offline_limit() -> None:
    events = series("event", n=3, step=300.0)
    assert report(events, device=PANEL).findings == []
    r = report(series("status", n=2, step=300.0), device=PANEL, window=timedelta(minutes=20))
    assert codes(r)["no_data"].text == "no event in 20 min"


def test_the_report_is_json() -> None:
    r = report(series(delay=60.0), [dead(Reason.NOT_JSON, 50)])
    doc = json.loads(json.dumps(r.to_json()))
    assert doc["conforms"] is False
    assert (doc["problems"], doc["warnings"]) == (1, 1)
    assert doc["window_s"] == 900.0
    assert doc["since"] == T0.isoformat()
    assert doc["findings"][0]["level"] == "problem"
    assert doc["dead_letter_reasons"][0]["fix"] == DEAD_LETTER_REASONS["not_json"].fix


def test_limits_come_from_the_settings() -> None:
    limits = Limits.of(Settings(_env_file=None))
    assert limits.offline_after_s["water"] == 300.0
    assert (limits.skew_limit_s, limits.max_ahead_s) == (120.0, 300.0)


def test_reference_intervals_are_the_simulated_citys() -> None:
    from firewatch.simulators.scenario import IntervalsSpec

    spec = IntervalsSpec()
    assert REFERENCE_INTERVAL_S[("water", "telemetry")] == spec.water
    assert REFERENCE_INTERVAL_S[("ebike_shed", "telemetry")] == spec.shed
    assert REFERENCE_INTERVAL_S[("panel", "event")] == spec.panel_status
    assert REFERENCE_INTERVAL_S[("panel", "status")] == spec.status
