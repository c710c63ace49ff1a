"""Charging-shed detectors (firewatch/analytics/shed.py) on crafted sheds: the rules
(overheat, over-current, charging hours, smoke), excess heat and hotter-than-peers long
before 65 °C, thermal runaway, quiet normal charging sessions, and ``group_median``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from firewatch.analytics import checkpoint
from firewatch.analytics.shed import ShedDetectors, group_median, median3
from firewatch.core.anomalies import Anomaly, Origin
from firewatch.core.domain import DeviceKind, Severity
from firewatch.core.rows import TelemetryRow
from tests.builders.detection import detectors, frame, of, profile, profiles, unit_of
from tests.builders.rows import HOUR, MIN, T0, shed_row

S = "S1"
NOON = T0 + 12 * HOUR  # local time (UTC+8), inside the allowed 06-23 h
HEAT = {"stat.port_excess", "stat.port_peers", "stat.temp_rise", "rule.port_overheat"}


def run(rows: Sequence[TelemetryRow], chunk: int = 30) -> list[Anomaly]:
    ps = profiles(profile(S, DeviceKind.EBIKE_SHED))
    det = ShedDetectors(ps, unit_of(ps))
    out: list[Anomaly] = []
    for i in range(0, len(rows), chunk):
        out += det.process(frame(rows[i : i + chunk]))
    return out


def sessions(
    minutes: int,
    ports: int = 6,
    seed: int = 0,
    start: float = T0 + 7 * HOUR,
    fault: tuple[int, int, float] | None = None,
) -> list[TelemetryRow]:
    """A shed whose ports charge normally: two sessions per port, each a constant 2-2.8 A
    (a step up at plug-in), an exponential taper, a ~0 A trickle, then unplugged; the port
    temperature follows ambient + k·I² through a first-order lag (τ 10-20 min), k 0.8-1.2.
    ``fault`` = (port index, minute, °C/min): that port heats up linearly from then on."""
    rng = np.random.default_rng(seed)
    k = rng.uniform(0.8, 1.2, ports)
    tau = rng.uniform(600.0, 1200.0, ports)
    plan = []  # per port: (start, current, end of constant current, end of taper, unplug)
    for _ in range(ports):
        p = []
        begin = int(rng.uniform(0, 90))
        for _ in range(2):
            dur = int(rng.uniform(120, 240))
            cc = int(dur * rng.uniform(0.6, 0.8))
            p.append(
                (
                    begin,
                    rng.uniform(2.0, 2.8),
                    begin + cc,
                    begin + dur,
                    begin + dur + int(rng.uniform(5, 25)),
                )
            )
            begin = p[-1][4] + int(rng.uniform(10, 60))
        plan.append(p)
    temp = np.full(ports, 18.0)
    rows = []
    for m in range(minutes):
        amb = 18.0 + 3.0 * math.sin(2 * math.pi * m / 1440) + rng.normal(0.0, 0.1)
        cur = np.zeros(ports)
        for i, p in enumerate(plan):
            for b, i_cc, cc, end, leave in p:
                if b <= m < cc:
                    cur[i] = i_cc
                elif cc <= m < end:
                    cur[i] = i_cc * math.exp(-4 * (m - cc) / (end - cc))
                elif end <= m < leave:
                    cur[i] = 0.02
            if cur[i] > 0:
                cur[i] = max(0.01, cur[i] + 0.03 * rng.normal() * min(cur[i], 1.0))
        temp += (amb + k * cur**2 - temp) * (1 - np.exp(-MIN / tau))
        meas = temp + 0.05 * rng.normal(size=ports)
        if fault is not None and m >= fault[1]:
            meas[fault[0]] += fault[2] * (m - fault[1])
        rows.append(
            shed_row(
                S,
                start + m * MIN,
                np.round(meas, 1).tolist(),
                np.round(cur, 2).tolist(),
                round(amb, 1),
                seq=m + 1,
            )
        )
    return rows


# -- rules ------------------------------------------------------------------------------


def test_port_at_the_alarm_temperature_is_critical() -> None:
    temps = [25.0, 25.0, 65.0, 64.0, 64.0, 64.0, 25.0]
    rows = [shed_row(S, NOON + i * MIN, [25.0, x], [0.0, 0.0]) for i, x in enumerate(temps)]
    out = run(rows)
    hot = of(out, "rule.port_overheat")
    assert [a.revision for a in hot] == [1, 2]
    a = hot[0]
    assert a.kind == "port_overheat"
    assert a.severity is Severity.CRITICAL
    assert a.component == "port 2"
    assert a.metric == "port_temp_c"
    assert a.started_at == a.detected_at == NOON + 2 * MIN  # one point is enough
    assert "65.0 °C, at or above the 65 °C alarm level" in a.explanation
    assert hot[1].ended_at == NOON + 5 * MIN
    assert detectors(out) == {"rule.port_overheat"}


def test_over_current_needs_two_points() -> None:
    amps = [2.0, 2.0, 4.0, 2.0, 4.0, 4.1, 4.0, 2.0, 2.0, 2.0]
    rows = [shed_row(S, NOON + i * MIN, [25.0, 25.0], [0.0, c]) for i, c in enumerate(amps)]
    out = run(rows)
    over = of(out, "rule.over_current")
    assert [a.revision for a in over] == [1, 2]
    a = over[0]
    assert a.kind == "over_current"
    assert a.severity is Severity.HIGH
    assert a.component == "port 2"
    assert (a.started_at, a.detected_at) == (NOON + 4 * MIN, NOON + 5 * MIN)
    assert "above the port's 3.6 A limit" in a.explanation
    assert over[1].ended_at == NOON + 9 * MIN
    assert detectors(out) == {"rule.over_current"}


def test_charging_at_night_but_not_at_noon() -> None:
    night = T0 + 2 * HOUR
    rows = [shed_row(S, night + i * MIN, [25.0, 25.0], [0.0, 2.0]) for i in range(4)]
    out = run(rows)
    hours = of(out, "rule.charging_hours")
    assert len(hours) == 1
    a = hours[0]
    assert a.kind == "charging_outside_hours"
    assert a.severity is Severity.LOW
    assert a.component == "port 2"
    assert (a.started_at, a.detected_at) == (night, night + MIN)
    assert "02.0 h local time, outside the allowed 6-23 h" in a.explanation
    assert detectors(out) == {"rule.charging_hours"}
    rows = [shed_row(S, NOON + i * MIN, [25.0, 25.0], [0.0, 2.0]) for i in range(4)]
    assert run(rows) == []


def test_smoke_is_reported() -> None:
    smoke = [False, False, True, True, False, False]
    rows = [shed_row(S, NOON + i * MIN, [25.0], [0.0], smoke=s) for i, s in enumerate(smoke)]
    out = run(rows)
    sm = of(out, "rule.smoke")
    assert [a.revision for a in sm] == [1, 2]
    a = sm[0]
    assert a.kind == "smoke"
    assert a.origin is Origin.REPORTED
    assert a.severity is Severity.CRITICAL
    assert a.component == ""
    assert a.started_at == NOON + 2 * MIN
    assert sm[1].ended_at == NOON + 5 * MIN
    assert detectors(out) == {"rule.smoke"}


# -- heat ---------------------------------------------------------------------------------


def test_normal_charging_sessions_raise_nothing() -> None:
    for seed in range(3):
        out = run(sessions(10 * 60, seed=seed))
        assert out == [], (seed, [(a.detector, a.component, a.explanation) for a in out])


def test_heating_port_flagged_long_before_65c() -> None:
    onset = 200  # minute
    plain = sessions(8 * 60, seed=1)
    amps = np.array([r.port_current_a or [] for r in plain[onset : onset + 30]])
    port = int(np.argmax(amps.min(axis=0)))  # charging steadily for the next half hour
    assert amps[:, port].min() > 2.0
    assert (amps[0] > 1.0).sum() >= 4  # and others charge alongside it
    rows = sessions(8 * 60, seed=1, fault=(port, onset, 0.4))
    out = run(rows)
    t_onset = rows[onset].ts.timestamp()
    assert [a for a in out if a.started_at < t_onset] == []
    hot_at = next(r.ts.timestamp() for r in rows if (r.port_temp_c or [0.0])[port] >= 65.0)
    heat = [a for a in out if a.detector in ("stat.port_excess", "stat.port_peers")]
    assert {a.detector for a in heat} == {"stat.port_excess", "stat.port_peers"}
    for det in ("stat.port_excess", "stat.port_peers"):
        first = of(heat, det)[0]
        assert first.component == f"port {port + 1}"
        assert first.severity is Severity.HIGH
        assert first.detected_at <= t_onset + 20 * MIN  # about 8 °C of excess at most
        assert first.detected_at < hot_at - HOUR
        assert first.evidence["temp_c"] < 40.0
    assert of(heat, "stat.port_excess")[0].kind == "abnormal_heating"
    assert of(heat, "stat.port_peers")[0].kind == "hotter_than_peers"
    assert "possible battery or contact fault" in of(heat, "stat.port_excess")[0].explanation
    assert {a.component for a in out} == {f"port {port + 1}"}  # the other ports stay quiet


def test_thermal_runaway() -> None:
    rows = sessions(120, seed=2)
    last = rows[-1]
    assert last.port_temp_c is not None
    assert last.port_current_a is not None
    port = int(np.argmax(last.port_current_a))  # a charging port
    t = last.ts.timestamp()
    for i in range(1, 4):
        temps = list(last.port_temp_c)
        temps[port] += 150.0 * i  # 150 °C/min: 2.5 °C/s
        rows.append(shed_row(S, t + i * MIN, temps, last.port_current_a, last.ambient_c))
    out = run(rows)
    assert [a for a in out if a.started_at <= t] == []
    rise = of(out, "stat.temp_rise")
    assert rise
    a = rise[0]
    assert a.kind == "rapid_temperature_rise"
    assert a.severity is Severity.CRITICAL
    assert a.component == f"port {port + 1}"
    assert "thermal runaway" in a.explanation
    # judged on the median of three readings: confirmed by the reading after the first
    # jump, opened one reading later (one report interval of delay, docs/analytics.md)
    assert (a.started_at, a.detected_at) == (t + 2 * MIN, t + 3 * MIN)
    assert a.evidence["rate_c_per_min"] > 60.0
    assert of(out, "rule.port_overheat")


# -- single-reading glitches (issue 16) -------------------------------------------------------


def _glitched(rows: list[TelemetryRow], at: dict[int, tuple[int, float]]) -> list[TelemetryRow]:
    """``rows`` with, at row ``m``, port ``p``'s reading replaced by ``v`` (one reading)."""
    out = list(rows)
    for m, (p, v) in at.items():
        r = out[m]
        temps = list(r.port_temp_c or [])
        temps[p] = v
        out[m] = shed_row(S, r.ts.timestamp(), temps, r.port_current_a or [], r.ambient_c)
    return out


def _idle_and_charging(rows: Sequence[TelemetryRow], m: int) -> tuple[int, int]:
    """The ports drawing the least and the most current at row ``m``."""
    amps = np.array(rows[m].port_current_a or [])
    return int(np.argmin(amps)), int(np.argmax(amps))


def test_single_reading_glitches_open_no_rise() -> None:
    plain = sessions(8 * 60, seed=1)
    assert run(plain) == []
    at: dict[int, tuple[int, float]] = {}
    for m in range(120, 460, 20):  # a glitch every 20 min on an idle and a charging port
        idle, busy = _idle_and_charging(plain, m)
        t0 = (plain[m].port_temp_c or [])[idle]
        at[m] = (idle, 0.0 if m % 40 else round(t0 * 1.6, 1))  # a 0 read, or 60 % up
        t1 = (plain[m + 10].port_temp_c or [])[busy]
        at[m + 10] = (busy, round(t1 * (0.4 if m % 40 else 1.5), 1))
    out = run(_glitched(plain, at))
    assert of(out, "stat.temp_rise") == [], [a.explanation for a in out]
    # glitches on idle (0 A) and on charging ports, 0 reads among them
    amps = [(plain[m].port_current_a or [])[p] for m, (p, _) in at.items()]
    assert min(amps) == 0.0
    assert max(amps) > 1.0
    assert min(v for _, v in at.values()) == 0.0


def test_rise_that_persists_is_flagged_within_three_readings() -> None:
    plain = sessions(8 * 60, seed=1)
    amps = np.array([r.port_current_a or [] for r in plain])
    # a port charging at constant current for 12 minutes before and 5 after minute m
    m, busy = next(
        (m, p) for m in range(200, 400) for p in range(6) if amps[m - 12 : m + 5, p].min() > 1.0
    )
    rows = sessions(8 * 60, seed=1, fault=(busy, m, 4.0))  # 4 °C/min from minute m
    out = run(rows[: m + 10])
    rise = of(out, "stat.temp_rise")
    assert rise
    assert rise[0].component == f"port {busy + 1}"
    t_on = rows[m].ts.timestamp()
    assert t_on < rise[0].detected_at <= t_on + 3 * MIN  # two rates of medians: 3 readings


def test_glitch_pending_across_a_checkpoint_is_the_same() -> None:
    """The median's history (the last two readings, the last median, its rate) is part of
    the checkpoint: a restore between a glitch and the reading after it changes nothing."""
    plain = sessions(6 * 60, seed=2)
    idle, _ = _idle_and_charging(plain, 200)
    rows = _glitched(plain, {200: (idle, 0.0)})
    t = rows[-1].ts.timestamp()
    last = rows[-1]
    assert last.port_current_a is not None
    assert last.port_temp_c is not None
    port = int(np.argmax(last.port_current_a))
    for i in range(1, 4):  # and a runaway at the end, started before the checkpoint
        temps = list(last.port_temp_c)
        temps[port] += 150.0 * i
        rows.append(shed_row(S, t + i * MIN, temps, last.port_current_a, last.ambient_c))
    ps = profiles(profile(S, DeviceKind.EBIKE_SHED))
    whole = ShedDetectors(ps, unit_of(ps)).process(frame(rows))
    for cut in (201, len(rows) - 2):
        first = ShedDetectors(ps, unit_of(ps))
        out = first.process(frame(rows[:cut]))
        again = ShedDetectors(ps, unit_of(ps))
        again.restore(checkpoint.unpack(checkpoint.pack(first.state())))
        out += again.process(frame(rows[cut:]))
        assert out == whole
    assert "stat.temp_rise" in {a.detector for a in whole}
    assert {a.component for a in whole} == {f"port {port + 1}"}  # none for the glitch
    assert min(a.started_at for a in whole) > t


# -- group_median ---------------------------------------------------------------------------


def test_group_median_by_hand() -> None:
    groups = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 3], np.int64)
    x = np.array([3.0, 1.0, 2.0, 10.0, 4.0, 8.0, 6.0, np.nan, 5.0, np.nan])
    med, size = group_median(groups, x)
    # group 0: median of 1, 2, 3; group 1: of 4, 6, 8, 10 (mean of 6 and 8); group 2 has
    # one value; a NaN point and an all-NaN group get NaN and size 0
    expect = [2.0, 2.0, 2.0, 7.0, 7.0, 7.0, 7.0, np.nan, 5.0, np.nan]
    np.testing.assert_array_equal(med, np.array(expect))
    assert size.tolist() == [3, 3, 3, 4, 4, 4, 4, 0, 1, 0]


def test_group_median_empty_and_all_nan() -> None:
    med, size = group_median(np.zeros(2, np.int64), np.array([np.nan, np.nan]))
    assert np.isnan(med).all()
    assert size.tolist() == [0, 0]
    med, size = group_median(np.zeros(0, np.int64), np.zeros(0))
    assert len(med) == 0
    assert len(size) == 0


def test_median3_by_hand() -> None:
    a = np.array([1.0, 5.0, 0.0, 3.0])
    b = np.array([2.0, 1.0, 9.0, 3.0])
    c = np.array([3.0, 3.0, 4.0, -1.0])
    assert median3(a, b, c).tolist() == [2.0, 3.0, 4.0, 3.0]
