"""Device behaviour models without faults: determinism, contract conformance and plausible
physics over two simulated days. Behaviours are driven directly (no engine, no broker)."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter

from firewatch.core.domain import Channel, DeviceKind
from firewatch.simulators.faults import PanelLayout, local_hour
from firewatch.simulators.model import Action, Intervals, SimDevice
from tests.builders.simulation import (
    DEVICES,
    ROOM,
    SHED,
    START,
    STATIC,
    TANK,
    WATER,
    check_body,
    events,
    jockey_starts,
    run,
    telemetry,
)


def test_same_seed_same_stream_other_seed_differs() -> None:
    for device in DEVICES:
        a, b = run(device, hours=12, seed=3), run(device, hours=12, seed=3)
        c = run(device, hours=12, seed=4)
        assert a == b, device.kind
        assert a != c, device.kind


def test_every_body_validates_and_status_is_hourly_from_the_first_tick() -> None:
    iv = Intervals()
    for device in DEVICES:
        ems = run(device)
        for em in ems:
            assert em.action is Action.PUBLISH
            assert em.ts_offset_s == 0.0
            check_body(device, em)
        status = [e for e in ems if e.channel is Channel.STATUS]
        data = [e for e in ems if e.channel is not Channel.STATUS]
        interval = {DeviceKind.WATER: iv.water_s, DeviceKind.EBIKE_SHED: iv.shed_s}.get(
            device.kind, iv.panel_status_s
        )
        first = min(e.t for e in ems if e.channel is Channel.STATUS)
        assert START <= first < START + interval  # a stagger within one interval
        assert status[0].t == min(e.t for e in data if e.body and e.body.get("type") != "x")
        assert status[0].body is not None
        assert status[0].body["state"] == "online"
        assert {"firmware", "battery_pct", "rssi_dbm"} <= set(status[0].body)
        assert len(status) == 48
        gaps = {round(b.t - a.t) for a, b in itertools.pairwise(status)}
        assert gaps == {iv.status_s}


def test_devices_are_staggered() -> None:
    firsts = {run(SimDevice(f"W{i}", "U", DeviceKind.WATER), hours=0.1)[0].t for i in range(20)}
    assert len(firsts) == 20


def test_water_pressure_jockey_sawtooth_and_daily_demand() -> None:
    ems = run(WATER)
    tel = telemetry(ems)
    p = [e.body["pressure_kpa"] for e in tel if e.body]
    assert len(tel) == 48 * 60
    inside = sum(0.8 * STATIC <= x <= 1.2 * STATIC for x in p) / len(p)
    assert inside > 0.99
    assert all(x == round(x, 1) for x in p)
    assert 1.0 <= jockey_starts(ems) / 48 <= 8.0, "a few jockey cycles an hour"
    assert not any(e.body and e.body["pump_running"] for e in tel)
    # pressure lower at the evening demand peak than at night
    by_hour: dict[int, list[float]] = {}
    for e in tel:
        by_hour.setdefault(int(local_hour(e.t)), []).append(e.body["pressure_kpa"] if e.body else 0)
    assert statistics.mean(by_hour[19] + by_hour[20]) < statistics.mean(by_hour[2] + by_hour[3])
    rooms = [e.body["room_temp_c"] for e in tel if e.body]
    assert min(rooms) >= 5.0
    assert max(rooms) <= 22.0
    assert max(rooms) - min(rooms) > 2.0


def test_tank_level_drains_and_refills_between_70_and_95_percent() -> None:
    tel = telemetry(run(TANK, hours=96))
    levels = [e.body["level_m"] for e in tel if e.body]
    assert all(0.68 * 5.0 <= x <= 0.96 * 5.0 for x in levels)
    rises = sum(1 for a, b in itertools.pairwise(levels) if b - a > 0.01)
    assert rises > 10, "the fill valve refills the tank"
    assert all("level_m" not in (e.body or {}) for e in telemetry(run(WATER, hours=1)))
    assert all("level_m" not in (e.body or {}) for e in telemetry(run(ROOM, hours=1)))


def test_shed_sessions_currents_temperatures_and_evening_peak() -> None:
    tel = telemetry(run(SHED))
    charging_at: Counter[int] = Counter()
    samples: Counter[int] = Counter()
    idle_rise: list[float] = []
    for e in tel:
        assert e.body is not None
        assert e.body["smoke"] is False
        ports = e.body["ports"]
        assert [p["port"] for p in ports] == list(range(1, 13))
        h = int(local_hour(e.t))
        samples[h] += 1
        charging_at[h] += sum(p["charging"] for p in ports)
        for p in ports:
            assert 0.0 <= p["current_a"] <= 3.0
            assert p["temp_c"] < 50.0
            if not p["charging"]:
                assert p["current_a"] == 0.0
                idle_rise.append(p["temp_c"] - e.body["ambient_c"])
        if not 6 <= local_hour(e.t) < 23:  # the controller cuts power outside allowed hours
            assert not any(p["charging"] for p in ports)
    assert abs(statistics.median(idle_rise)) < 1.0, "idle ports sit near ambient"
    assert max(idle_rise) < 15.0, "a port that just stopped cools with a lag"
    evening = sum(charging_at[h] for h in (19, 20, 21)) / sum(samples[h] for h in (19, 20, 21))
    assert evening > 3.0
    assert evening > charging_at[4] / samples[4]
    # a session: constant current then a taper towards zero
    currents = [[p["current_a"] for p in e.body["ports"]] for e in tel if e.body]
    port_series = list(zip(*currents, strict=True))
    assert any(max(s) > 2.0 and 0.0 < min(x for x in s if x > 0) < 0.2 for s in port_series)


def test_panel_status_heartbeat_and_rare_natural_events() -> None:
    panels = [SimDevice(f"P{i}", "U", DeviceKind.PANEL, {}) for i in range(10)]
    fire_alarms = 0
    for panel in panels:
        ems = run(panel, hours=48)
        ev = events(ems)
        heartbeat = [e for e in ev if e.body and e.body["type"] == "system_status"]
        assert len(heartbeat) >= 48 * 12
        comps = [e.body for e in ev if e.body and e.body["type"] == "component_status"]
        layout = PanelLayout()
        for body in comps:
            assert body["component_type"] in (40, 41)
            assert body["component_addr"] in layout.detectors()
        fire_alarms += sum(1 for b in comps if b["status"] & 2)
    # ~1.5 natural false alarms per panel-week: 10 panels x 2 days ~ 4
    assert fire_alarms <= 12


def test_natural_false_alarm_is_reset_a_few_minutes_later() -> None:
    week = run(SimDevice("P-nat", "U", DeviceKind.PANEL, {}), hours=24 * 21)
    ev = events(week)
    fires = [
        e for e in ev if e.body and e.body["type"] == "component_status" and e.body["status"] == 3
    ]
    assert fires, "three weeks of a panel show at least one natural false alarm"
    for fire in fires:
        assert fire.body is not None
        addr = fire.body["component_addr"]
        after = [e for e in ev if e.t > fire.t and e.body and e.body.get("component_addr") == addr]
        assert after[0].body is not None
        assert after[0].body["status"] == 1
        assert 60 <= after[0].t - fire.t <= 600
        ops = [e for e in ev if e.body and e.body["type"] == "operation" and e.t == after[0].t]
        assert ops
        assert ops[0].body is not None
        assert ops[0].body["status"] & 1
    assert len({f.body["component_addr"] for f in fires if f.body}) == 1, "one dusty detector"
