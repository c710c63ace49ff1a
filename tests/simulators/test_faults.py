"""The fault catalogue: every fault type's signature is in the data inside its window and
absent before it; resolution is deterministic and validated; labels match the faults."""

from __future__ import annotations

import itertools
import random
import statistics
from typing import Any

import pytest
from pydantic import ValidationError

from firewatch.core.contract import MODELS
from firewatch.core.domain import Channel, DeviceKind, Severity
from firewatch.simulators.faults import (
    FAULT_TYPES,
    FaultSpecInput,
    PanelLayout,
    charging_allowed,
    labels_for,
    local_hour,
    resolve_faults,
)
from firewatch.simulators.model import Action, Emission, Fault, SimDevice
from firewatch.simulators.scenario import FaultSpec
from tests.builders.simulation import (
    DEVICES,
    PANEL,
    SHED,
    START,
    STATIC,
    TANK,
    WATER,
    H,
    check_body,
    events,
    jockey_starts,
    run,
    telemetry,
)

END = START + 48 * H


def fault(
    ftype: str, device: SimDevice, at_h: float, dur_h: float | None = None, **params: Any
) -> Fault:
    spec = FaultSpecInput(
        type=ftype,
        device=device.id,
        at_s=at_h * H,
        params=params,
        duration_s=None if dur_h is None else dur_h * H,
    )
    return resolve_faults([spec], DEVICES, random.Random(0), START, END)[0]


def pressures(ems: list[Emission], lo: float = 0.0, hi: float = float("inf")) -> list[float]:
    return [e.body["pressure_kpa"] for e in telemetry(ems, lo, hi) if e.body]


def port_series(ems: list[Emission], port: int, key: str, lo: float, hi: float) -> list[Any]:
    return [e.body["ports"][port - 1][key] for e in telemetry(ems, lo, hi) if e.body]


DEVICE_FOR = {"tank_draining": TANK, "offline_with_will": PANEL}


def _device_for(ftype: str) -> SimDevice:
    kinds = FAULT_TYPES[ftype].kinds
    if ftype in DEVICE_FOR:
        return DEVICE_FOR[ftype]
    return WATER if DeviceKind.WATER in kinds else SHED if DeviceKind.EBIKE_SHED in kinds else PANEL


@pytest.mark.parametrize("ftype", sorted(FAULT_TYPES))
def test_each_fault_changes_only_its_window_onwards(ftype: str) -> None:
    device = _device_for(ftype)
    f = fault(ftype, device, at_h=19.0)  # 19:00 local: charging is allowed, sheds are busy
    horizon = (f.end - START) / H + 1
    base, got = run(device, hours=horizon), run(device, [f], hours=horizon)
    assert [e for e in got if e.t < f.start] == [e for e in base if e.t < f.start]
    assert [e for e in got if f.start <= e.t < f.end] != [e for e in base if f.start <= e.t < f.end]
    for em in got:  # everything not deliberately malformed still meets the contract
        if em.action is Action.PUBLISH and em.raw is None:
            check_body(device, em)


def test_pipe_leak_pressure_falls_and_jockey_cycles_more() -> None:
    f = fault("pipe_leak", WATER, at_h=6, dur_h=5)
    base, got = run(WATER, hours=12), run(WATER, [f], hours=12)
    tb, tg = telemetry(base, f.start, f.end), telemetry(got, f.start, f.end)
    diff = [(g.t - f.start) / H for g in tg]
    delta = [
        g.body["pressure_kpa"] - b.body["pressure_kpa"]
        for g, b in zip(tg, tb, strict=True)
        if g.body and b.body
    ]
    slope = statistics.linear_regression(diff, delta).slope
    assert -40 < slope < -20, "about -30 kPa/h below normal"
    assert jockey_starts(got[len(base) // 2 :]) > 2 * jockey_starts(base[len(base) // 2 :])


def test_pipe_burst_drops_within_one_interval_and_starts_pumps() -> None:
    f = fault("pipe_burst", WATER, at_h=20)
    got = run(WATER, [f], hours=22)
    before = statistics.mean(pressures(got, f.start - H, f.start))
    inside = telemetry(got, f.start, f.end)
    assert inside[0].t - f.start < 60
    assert inside[0].body is not None
    assert inside[0].body["pressure_kpa"] <= 0.5 * before
    assert all(e.body and e.body["pump_running"] and e.body["jockey_running"] for e in inside)
    assert not any(e.body and e.body["pump_running"] for e in telemetry(got, 0, f.start))
    assert 0.6 <= float(f.params["drop_frac"]) <= 0.8


def test_pump_failure_no_pump_runs_and_pressure_sags() -> None:
    f = fault("pump_failure", WATER, at_h=2, dur_h=3)
    got = run(WATER, [f], hours=6)
    inside = telemetry(got, f.start, f.end)
    assert not any(e.body and (e.body["jockey_running"] or e.body["pump_running"]) for e in inside)
    assert max(pressures(got, f.end - 600, f.end)) < 0.9 * STATIC
    assert jockey_starts(telemetry(got, f.end, f.end + H)) >= 1, "pumps work again afterwards"


def test_closed_valve_reads_near_zero_and_flat() -> None:
    f = fault("closed_valve", WATER, at_h=1, dur_h=2)
    got = run(WATER, [f], hours=4)
    p = pressures(got, f.start, f.end)
    assert all(x <= 21.0 for x in p)
    assert max(p) - min(p) <= 1.0
    assert min(pressures(got, 0, f.start)) > 0.8 * STATIC


def test_tank_draining_level_falls_steadily_without_refill() -> None:
    f = fault("tank_draining", TANK, at_h=2, dur_h=6)
    got = run(TANK, [f], hours=9)
    levels = [e.body["level_m"] for e in telemetry(got, f.start, f.end) if e.body]
    assert levels[0] - levels[-1] >= 0.8 * 0.4 * 6
    assert all(b - a <= 0.02 for a, b in itertools.pairwise(levels)), "no refill"


@pytest.mark.parametrize("device", [WATER, SHED], ids=["water", "shed"])
def test_stuck_sensor_repeats_its_last_reading_exactly(device: SimDevice) -> None:
    f = fault("stuck_sensor", device, at_h=19, dur_h=2)
    got = run(device, [f], hours=22)
    port = f.params.get("port")

    def values(lo: float, hi: float) -> list[float]:
        if port is None:
            return pressures(got, lo, hi)
        return [float(x) for x in port_series(got, int(port), "temp_c", lo, hi)]

    inside, before, after = values(f.start, f.end), values(0, f.start), values(f.end, f.end + H)
    assert len(inside) > 100
    assert set(inside) == {before[-1]}
    assert len(set(after)) > 3
    assert len(set(before[-60:])) > 3


def test_sensor_drift_scales_the_reading_linearly() -> None:
    f = fault("sensor_drift", WATER, at_h=3, dur_h=12, pct_per_h=2.0)
    base, got = run(WATER, hours=16), run(WATER, [f], hours=16)
    tb, tg = telemetry(base, f.start, f.end), telemetry(got, f.start, f.end)
    for b, g in zip(tb, tg, strict=True):
        assert b.body is not None
        assert g.body is not None
        expected = b.body["pressure_kpa"] * (1 + 0.02 * (g.t - f.start) / H)
        assert g.body["pressure_kpa"] == pytest.approx(expected, abs=0.11)
    assert tg[-1].body is not None
    assert tb[-1].body is not None
    assert tg[-1].body["pressure_kpa"] > 1.2 * tb[-1].body["pressure_kpa"]


@pytest.mark.parametrize("ftype", ["dropout", "offline_without_will"])
def test_silence_without_will(ftype: str) -> None:
    f = fault(ftype, WATER, at_h=2, dur_h=2)
    got = run(WATER, [f], hours=5)
    assert not [e for e in got if f.start <= e.t < f.end]
    assert [e for e in got if e.t < f.start]
    assert telemetry(got, f.end)
    assert all(e.action is Action.PUBLISH for e in got)


def test_offline_with_will_drops_then_reconnects() -> None:
    f = fault("offline_with_will", PANEL, at_h=2, dur_h=2)
    got = run(PANEL, [f], hours=5)
    inside = [e for e in got if f.start <= e.t < f.end]
    assert [(e.t, e.action, e.channel) for e in inside] == [(f.start, Action.DROP, Channel.STATUS)]
    reconnect = [e for e in got if e.action is Action.RECONNECT]
    assert [(e.t, e.channel, e.body) for e in reconnect] == [(f.end, Channel.STATUS, None)]
    assert events(got, f.end)
    assert events(got, 0, f.start)


def test_thermal_runaway_precursor_slow_then_fast_above_peers() -> None:
    f = fault("thermal_runaway_precursor", SHED, at_h=19, dur_h=1.5)
    port = int(f.params["port"])
    got = run(SHED, [f], hours=21)
    inside = [e for e in telemetry(got, f.start, f.end) if e.body]
    temps = [e.body["ports"][port - 1]["temp_c"] for e in inside if e.body]
    peers = [
        statistics.median(p["temp_c"] for p in e.body["ports"] if p["port"] != port)
        for e in inside
        if e.body
    ]
    first_hot = next(i for i, x in enumerate(temps) if x > 65.0)
    assert any(t - p > 10 and t < 65 for t, p in zip(temps[:first_hot], peers, strict=False))
    assert inside[first_hot].t > f.end - 0.25 * (f.end - f.start), "above 65 °C only late"
    assert temps[len(temps) // 2] > temps[0] + 5
    assert temps[-1] > temps[len(temps) // 2]
    fast = [b - a for a, b in zip(temps[-4:], temps[-3:], strict=False)]
    assert max(fast) > 20.0, "> 20 °C per minute at the end"
    for e in inside:
        assert e.body is not None
        p = e.body["ports"][port - 1]
        assert p["charging"]
        assert p["current_a"] > 1.5
    before = [e.body["ports"][port - 1]["temp_c"] for e in telemetry(got, 0, f.start) if e.body]
    assert max(before) < 50


def test_over_current_port_above_its_rating() -> None:
    f = fault("over_current", SHED, at_h=20, dur_h=1)
    port = int(f.params["port"])
    got = run(SHED, [f], hours=22)
    inside = port_series(got, port, "current_a", f.start, f.end)
    assert all(1.45 * 3.0 <= x <= 2.1 * 3.0 for x in inside)
    assert all(
        p["current_a"] <= 3.0 for e in telemetry(got, 0, f.start) if e.body for p in e.body["ports"]
    )
    assert all(x <= 3.0 for x in port_series(got, port, "current_a", f.end, f.end + H))


def test_charging_outside_hours_only_inside_the_window() -> None:
    f = fault("charging_outside_hours", SHED, at_h=25, dur_h=2)  # 01:00-03:00 local
    port = int(f.params["port"])
    got = run(SHED, [f], hours=30)
    inside = telemetry(got, f.start, f.end)
    assert all(e.body and e.body["ports"][port - 1]["charging"] for e in inside)
    assert all(e.body and e.body["ports"][port - 1]["current_a"] > 1.0 for e in inside)
    for e in telemetry(got):
        if not charging_allowed((6, 23), e.t) and not f.start <= e.t < f.end:
            assert e.body is not None
            assert not any(p["charging"] for p in e.body["ports"])
    # a random start lands in the forbidden hours
    spec = FaultSpecInput(type="charging_outside_hours", device=SHED.id)
    for seed in range(5):
        g = resolve_faults([spec], DEVICES, random.Random(seed), START, END)[0]
        assert not charging_allowed((6, 23), g.start), local_hour(g.start)


def test_shed_smoke_and_rising_ambient() -> None:
    f = fault("shed_smoke", SHED, at_h=10, dur_h=20 / 60)
    base, got = run(SHED, hours=11), run(SHED, [f], hours=11)
    smoke = [(e.t, e.body["smoke"]) for e in telemetry(got) if e.body]
    assert all(s == (f.start <= t < f.end) for t, s in smoke)
    last_b, last_g = telemetry(base, 0, f.end)[-1], telemetry(got, 0, f.end)[-1]
    assert last_b.body is not None
    assert last_g.body is not None
    assert 1.0 < last_g.body["ambient_c"] - last_b.body["ambient_c"] <= 6.1


def test_real_fire_cascade_in_one_zone() -> None:
    f = fault("real_fire_cascade", PANEL, at_h=12, dur_h=0.5)
    got = run(PANEL, [f], hours=14)
    comps = [e for e in events(got, f.start, f.end) if e.body and "component_addr" in e.body]
    fires = [e for e in comps if e.body and e.body["status"] & 2]
    addrs = [e.body["component_addr"] for e in fires if e.body]
    assert len(set(addrs)) >= 3
    assert addrs == list(f.params["detectors"])
    assert len({PanelLayout().zone_of(a) for a in addrs}) == 1
    assert {(f.params["loop"], f.params["zone"])} == {PanelLayout().zone_of(a) for a in addrs}
    assert fires[-1].t - fires[0].t < 10 * 60
    system = [
        e for e in events(got, f.start, f.end) if e.body and e.body["type"] == "system_status"
    ]
    assert system
    assert all(e.body and e.body["status"] & 2 for e in system if e.t >= fires[0].t)
    assert not any(e.body and e.body["status"] & 2 for e in events(got, 0, f.start))
    assert not any(e.body and e.body["status"] & 2 for e in events(got, f.end + 1, float("inf")))


def test_false_alarm_storm_one_detector_again_and_again() -> None:
    f = fault("false_alarm_storm", PANEL, at_h=28, dur_h=6)
    got = run(PANEL, [f], hours=35)
    det = int(f.params["detector"])
    mine = [
        e.body["status"]
        for e in events(got, f.start, f.end)
        if e.body and e.body.get("component_addr") == det
    ]
    assert mine.count(3) > 5
    assert mine.count(1) == mine.count(3)
    assert mine[::2] == [3] * (len(mine) // 2), "alarm, restore, alarm, restore …"
    resets = [e for e in events(got, f.start, f.end) if e.body and e.body["type"] == "operation"]
    assert len(resets) == mine.count(3)
    assert not any(e.body and e.body.get("component_addr") == det for e in events(got, 0, f.start))


def test_clock_skew_only_inside_the_window() -> None:
    f = fault("clock_skew", WATER, at_h=2, dur_h=1, offset_s=600.0)
    got = run(WATER, [f], hours=4)
    for e in got:
        assert e.ts_offset_s == (600.0 if f.start <= e.t < f.end else 0.0)
    spec = FaultSpecInput(type="clock_skew", device=WATER.id)
    (g,) = resolve_faults([spec], DEVICES, random.Random(1), START, END)
    assert g.params["offset_s"] in (600.0, -900.0)


@pytest.mark.parametrize("device", [WATER, SHED, PANEL], ids=["water", "shed", "panel"])
def test_malformed_payloads_only_inside_the_window_and_never_valid(device: SimDevice) -> None:
    f = fault("malformed_payload", device, at_h=2, dur_h=1)
    got = run(device, [f], hours=4)
    raw = [e for e in got if e.raw is not None]
    assert raw
    assert all(f.start <= e.t < f.end and e.body is None for e in raw)
    assert all(e.channel is not Channel.STATUS for e in raw)
    for em in raw:
        with pytest.raises(ValidationError):
            MODELS[(device.kind, em.channel)].model_validate_json(em.raw or b"")


# -- resolution and labels -----------------------------------------------------------------


def test_catalogue_is_complete() -> None:
    assert set(FAULT_TYPES) == {
        "pipe_leak",
        "pipe_burst",
        "pump_failure",
        "closed_valve",
        "tank_draining",
        "stuck_sensor",
        "sensor_drift",
        "dropout",
        "thermal_runaway_precursor",
        "over_current",
        "charging_outside_hours",
        "shed_smoke",
        "real_fire_cascade",
        "false_alarm_storm",
        "offline_with_will",
        "offline_without_will",
        "clock_skew",
        "malformed_payload",
    }
    for name, ft in FAULT_TYPES.items():
        assert ft.name == name
        assert ft.kinds
        assert ft.duration_s > 0
        assert ft.description
        assert isinstance(ft.severity, Severity)


def _city(n: int = 12) -> list[SimDevice]:
    out: list[SimDevice] = []
    for i in range(n):
        u = f"U-{i}"
        out += [
            SimDevice(f"{u}-P", u, DeviceKind.PANEL, {}, own_connection=i < 3),
            SimDevice(f"{u}-W", u, DeviceKind.WATER, {"role": "pressure"}),
            SimDevice(f"{u}-T", u, DeviceKind.WATER, {"role": "tank"}),
            SimDevice(f"{u}-E", u, DeviceKind.EBIKE_SHED, {"ports": 8}),
        ]
    return out


def test_random_resolution_is_deterministic_non_overlapping_and_labelled() -> None:
    city = _city()
    specs = [FaultSpecInput(type=t, count=3) for t in sorted(FAULT_TYPES)]
    specs.append(FaultSpecInput(type="dropout", device="random:panel", count=4, at_s=3600))
    a = resolve_faults(specs, city, random.Random(5), START, END)
    assert a == resolve_faults(specs, city, random.Random(5), START, END)
    assert a != resolve_faults(specs, city, random.Random(6), START, END)
    kinds = {d.id: d for d in city}
    for f in a:
        ft = FAULT_TYPES[f.type]
        d = kinds[f.device_id]
        assert d.kind in ft.kinds
        assert START <= f.start < f.end <= END
        assert f.end - f.start == pytest.approx(ft.duration_s)
        assert f.severity is ft.severity
        if ft.roles:
            assert d.metadata["role"] in ft.roles
        if f.type == "offline_with_will":
            assert d.own_connection
    for d in city:
        mine = sorted((f.start, f.end) for f in a if f.device_id == d.id)
        assert all(e1 <= s2 for (_, e1), (s2, _) in itertools.pairwise(mine))
    labels = labels_for(a, city)
    assert len(labels) == len(a)
    for f, lb in zip(a, labels, strict=True):
        assert (lb.device_id, lb.fault, lb.start, lb.end, lb.severity) == (
            f.device_id,
            f.type,
            f.start,
            f.end,
            f.severity,
        )
        assert lb.unit_id == kinds[f.device_id].unit_id
        assert lb.kind is kinds[f.device_id].kind
        assert all(lb.details[k] == v for k, v in f.params.items())
        row = lb.to_json()
        assert row["severity"] == f.severity.value
        assert row["details"]["description"]


def test_labels_carry_the_chosen_port_detectors_and_zone() -> None:
    f = fault("thermal_runaway_precursor", SHED, at_h=19)
    (lb,) = labels_for([f], DEVICES)
    assert 1 <= lb.details["port"] <= 12
    assert 0.3 <= lb.details["slow_c_per_min"] <= 0.5
    c = fault("real_fire_cascade", PANEL, at_h=1)
    (lc,) = labels_for([c], DEVICES)
    assert len(lc.details["detectors"]) == 4
    assert {"loop", "zone", "offsets_s"} <= set(lc.details)
    s = fault("false_alarm_storm", PANEL, at_h=1)
    (ls,) = labels_for([s], DEVICES)
    assert ls.details["detector"] in PanelLayout().detectors()
    assert len(ls.details["alarms_s"]) == 8


def test_scenario_fault_specs_severity_override_and_clipping() -> None:
    spec = FaultSpec(type="pipe_leak", device=WATER.id, at=3600, duration=7200, severity="high")
    (f,) = resolve_faults([spec], DEVICES, random.Random(0), START, END)
    assert (f.start, f.end, f.severity) == (START + 3600, START + 3 * 3600, Severity.HIGH)
    late = {"type": "dropout", "device": WATER.id, "at": 47 * 3600, "duration": 7200}
    (g,) = resolve_faults([late], DEVICES, random.Random(0), START, END)
    assert g.end == END


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "meteor_strike"}, "unknown fault type"),
        ({"type": "pipe_leak", "device": "nope"}, "unknown device"),
        ({"type": "pipe_leak", "device": SHED.id}, "does not apply"),
        ({"type": "tank_draining", "device": WATER.id}, "role"),
        ({"type": "pipe_leak", "device": "random:toaster"}, "unknown kind"),
        ({"type": "over_current", "device": "random:water"}, "no device matches"),
        ({"type": "pipe_leak", "at_s": 49 * 3600}, "outside the span"),
        ({"type": "pipe_leak", "params": {"speed": 3}}, "unknown params"),
        ({"type": "over_current", "device": SHED.id, "params": {"port": 13}}, "port 13"),
        ({"type": "stuck_sensor", "device": WATER.id, "params": {"field": "x"}}, "field"),
        ({"type": "pipe_leak", "severity": "apocalyptic"}, "severity"),
        (
            {"type": "pipe_burst", "device": "random:water", "count": 9, "at_s": 60},
            "no device free",
        ),
    ],
)
def test_invalid_specs_are_refused_clearly(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_faults([spec], DEVICES, random.Random(0), START, END)
