"""Connectivity and data-quality detectors (firewatch/analytics/link.py): last wills,
dropouts judged on the injected clock, clock skew (and a store-and-forward backlog that is
not one), and malformed payloads."""

from __future__ import annotations

from firewatch.analytics.link import LinkDetectors
from firewatch.core.anomalies import Anomaly, Origin
from firewatch.core.domain import Severity
from firewatch.core.rows import Reason
from tests.builders.detection import batch, of, profile, profiles, unit_of
from tests.builders.rows import MIN, T0, dead, status, water_row

W = "W1"


def link() -> LinkDetectors:
    ps = profiles(profile(W))
    return LinkDetectors(ps, unit_of(ps))


def regular(d: LinkDetectors, n: int, start: float = T0, seq: int = 1) -> list[Anomaly]:
    """``n`` readings every 60 s, each received 1 s after its device time, one batch each."""
    out: list[Anomaly] = []
    for i in range(n):
        t = start + i * MIN
        out += d.process(batch(t + 2, [water_row(W, t, 350.0, seq=seq + i, rx=t + 1)]))
    return out


# -- offline ----------------------------------------------------------------------------


def test_will_opens_offline_and_data_received_after_it_closes_it() -> None:
    d = link()
    before = water_row(W, T0 + 100, 350.0, seq=7)  # received before the will
    out = d.process(batch(T0 + 120, [before], statuses=[status(W, T0 + 110, "offline", seq=0)]))
    (a,) = out
    assert a.detector == "link.offline"
    assert a.kind == "device_offline"
    assert a.origin is Origin.REPORTED
    assert a.severity is Severity.MEDIUM
    assert a.started_at == a.detected_at == T0 + 110
    assert "last will" in a.explanation
    assert a.ended_at is None
    assert d.process(batch(T0 + 150)) == []
    (closed,) = d.process(batch(T0 + 200, [water_row(W, T0 + 190, 350.0, seq=8)]))
    assert closed.key == a.key
    assert closed.ended_at == T0 + 190
    assert closed.explanation.endswith("; data again")


def test_online_status_closes_offline() -> None:
    d = link()
    (a,) = d.process(batch(T0 + 10, statuses=[status(W, T0, "offline", seq=0)]))
    (closed,) = d.process(batch(T0 + 70, statuses=[status(W, T0 + 60, "online", seq=1)]))
    assert closed.key == a.key
    assert closed.ended_at == T0 + 60
    assert closed.explanation.endswith("; online again")


# -- dropout ------------------------------------------------------------------------------


def test_dropout_opens_after_the_silence_limit_and_data_closes_it() -> None:
    d = link()
    assert regular(d, 10) == []
    last = T0 + 9 * MIN + 1  # the last arrival
    # limit max(4 × 60 s, 600 s) = 600 s
    assert d.tick(last + 600) == []
    (a,) = d.tick(last + 601)
    assert a.detector == "link.dropout"
    assert a.kind == "device_silent"
    assert a.origin is Origin.INFERRED
    assert a.started_at == last
    assert a.detected_at == last + 601
    assert a.explanation == "no data for 10 min (usually every 60 s)"
    assert d.tick(last + 900) == []  # already open
    (closed,) = d.process(batch(last + 1000, [water_row(W, last + 950, 350.0, rx=last + 960)]))
    assert closed.key == a.key
    assert closed.ended_at == last + 960


def test_dropout_needs_history() -> None:
    d = link()
    regular(d, 3)
    assert d.tick(T0 + 7200) == []


# -- clock skew -----------------------------------------------------------------------------


def test_clock_ahead_by_150_s() -> None:
    d = link()
    out = []
    for i in range(5):
        rx = T0 + i * MIN
        out += d.process(batch(rx + 1, [water_row(W, rx + 150, 350.0, seq=i + 1, rx=rx)]))
    (a,) = out
    assert a.detector == "link.clock_skew"
    assert a.kind == "clock_skew"
    assert a.severity is Severity.LOW
    assert a.started_at == T0
    assert a.detected_at == T0 + 2 * MIN  # the third message
    assert a.explanation == "device clock ahead of the server by 150 s"
    assert a.evidence == {"offset_s": 150.0}


def test_clock_behind_by_150_s_with_regular_arrivals() -> None:
    d = link()
    out = []
    for i in range(5):
        rx = T0 + i * MIN
        out += d.process(batch(rx + 1, [water_row(W, rx - 150, 350.0, seq=i + 1, rx=rx)]))
    (a,) = out
    assert a.detector == "link.clock_skew"
    assert (a.started_at, a.detected_at) == (T0, T0 + 2 * MIN)
    assert a.explanation == "device clock behind the server by 150 s"


def test_clock_within_the_limit_is_fine() -> None:
    d = link()
    out = []
    for i in range(10):
        rx = T0 + i * MIN
        out += d.process(batch(rx + 1, [water_row(W, rx + 100, 350.0, seq=i + 1, rx=rx)]))
    assert out == []


def test_store_and_forward_backlog_is_not_clock_skew() -> None:
    d = link()
    assert regular(d, 10) == []
    # 40 minutes without a connection, then the stored readings arrive within 4 s,
    # oldest first; the newest is current
    now = T0 + 9 * MIN + 40 * MIN
    backlog = [
        water_row(W, now - 40 * MIN + (k + 1) * MIN, 350.0, seq=20 + k, rx=now + 0.1 * k)
        for k in range(40)
    ]
    out = d.process(batch(now + 5, backlog))
    out += regular(d, 10, start=now + MIN, seq=100)
    assert of(out, "link.clock_skew") == []


def test_refused_future_messages_are_clock_skew() -> None:
    d = link()
    out = []
    for i in range(4):
        rx = T0 + i * MIN
        out += d.process(batch(rx + 1, dead_letters=[dead(W, rx, Reason.TS_IN_FUTURE)]))
    (a,) = out
    assert a.detector == "link.clock_skew"
    assert a.started_at == T0
    assert a.detected_at == T0 + 2 * MIN
    assert "its messages are being refused" in a.explanation


# -- malformed --------------------------------------------------------------------------


def test_two_malformed_messages_within_an_hour() -> None:
    d = link()
    assert d.process(batch(T0 + 1, dead_letters=[dead(W, T0, Reason.NOT_JSON)])) == []
    (a,) = d.process(batch(T0 + 1801, dead_letters=[dead(W, T0 + 1800, Reason.MISSING_FIELD)]))
    assert a.detector == "link.malformed"
    assert a.kind == "malformed_payloads"
    assert a.severity is Severity.LOW
    assert a.started_at == T0
    assert a.detected_at == T0 + 1800
    assert a.explanation.startswith("2 malformed messages in the last hour (latest: missing_field")
    assert d.tick(T0 + 1800 + 3599) == []
    (closed,) = d.tick(T0 + 1800 + 3600)
    assert closed.key == a.key
    assert closed.ended_at == T0 + 5400


def test_malformed_messages_more_than_an_hour_apart() -> None:
    d = link()
    out = d.process(batch(T0 + 1, dead_letters=[dead(W, T0, Reason.NOT_JSON)]))
    out += d.process(batch(T0 + 3602, dead_letters=[dead(W, T0 + 3601, Reason.NOT_JSON)]))
    assert out == []


def test_unrelated_dead_letters_raise_nothing() -> None:
    d = link()
    out = []
    for i in range(5):
        t = T0 + i * MIN
        letters = [
            dead(W, t, Reason.UNKNOWN_DEVICE),
            dead("W9", t, Reason.NOT_JSON),
            dead(W, t, Reason.TS_TOO_OLD),
        ]
        out += d.process(batch(t + 1, dead_letters=letters))
    assert out == []
