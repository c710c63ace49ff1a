"""The detector machinery and the engine: ``rounds`` and ``SeriesTable`` (series.py),
episode hysteresis and revisions (episodes.py), threshold precedence (profiles.py), the
checkpoint format (checkpoint.py) and a whole DetectorEngine over a simulated city that,
snapshotted midway and restored into a new engine, reports exactly what it would have."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firewatch.analytics import checkpoint
from firewatch.analytics.engine import DetectorEngine
from firewatch.analytics.episodes import (
    REFRESH_S,
    EpisodeSpec,
    EpisodeTracker,
    anomaly_from_json,
    anomaly_to_json,
    tracker_columns,
)
from firewatch.analytics.frames import Batch
from firewatch.analytics.profiles import DeviceProfile, profiles_from_city, resolve_thresholds
from firewatch.analytics.series import SeriesTable, rounds
from firewatch.core.anomalies import Anomaly, AnomalyKey
from firewatch.core.domain import DeviceKind, Severity
from firewatch.core.settings import Settings
from firewatch.lab.detector_eval import batches
from firewatch.simulators.engine import Simulation, scenario_window
from firewatch.simulators.scenario import load_scenario
from tests.builders.detection import final
from tests.builders.rows import MIN, T0

# -- rounds / SeriesTable ----------------------------------------------------------------


def test_rounds_split_duplicates_in_time_order() -> None:
    sids = np.array([0, 1, 0, 0, 2, 1], np.int64)
    t = np.array([5.0, 1.0, 2.0, 9.0, 3.0, 0.0])
    got = [sorted(r.tolist()) for r in rounds(sids, t)]
    # series 0: t 2, 5, 9 (positions 2, 0, 3); series 1: t 0, 1 (5, 1); series 2: t 3 (4)
    assert got == [[2, 4, 5], [0, 1], [3]]
    for r in rounds(sids, t):
        assert len(set(sids[r].tolist())) == len(r)  # each series at most once per round


def test_rounds_ties_stay_in_input_order_and_unique_series_make_one_round() -> None:
    sids = np.array([3, 3, 3], np.int64)
    t = np.array([7.0, 7.0, 1.0])
    assert [r.tolist() for r in rounds(sids, t)] == [[2], [0], [1]]
    one = list(rounds(np.array([2, 0, 1], np.int64), np.zeros(3)))
    assert len(one) == 1
    assert sorted(one[0].tolist()) == [0, 1, 2]
    assert list(rounds(np.zeros(0, np.int64), np.zeros(0))) == []


def test_series_ids_are_stable_and_survive_state_and_restore() -> None:
    tb = SeriesTable({"x": np.nan, "n": 0.0}, {"h": (3, 0.0)}, capacity=2)
    assert tb.ids(["a", "b", "a"]).tolist() == [0, 1, 0]
    assert tb.ids(["b", "c"], [3, 0]).tolist() == [2, 3]  # ("b", 3) is a new series
    rows = np.array([1, 0, 1], np.int64)  # point i is of device ["a", "b"][rows[i]]
    assert tb.ids(["a", "b"], np.array([0, 0, 3], np.int64), rows).tolist() == [1, 0, 2]
    assert tb.ids(["c", "b", "a", "b"], [0, 3, 0, 0]).tolist() == [3, 2, 0, 1]
    assert tb.keys == [("a", 0), ("b", 0), ("b", 3), ("c", 0)]
    tb["x"][[0, 2]] = [1.5, 2.5]  # grown past the capacity of 2: values kept
    tb["h"][3] = [1.0, 2.0, 3.0]
    copy = SeriesTable({"x": np.nan, "n": 0.0, "new": 7.0}, {"h": (3, 0.0)})
    copy.restore(tb.state())
    assert copy.keys == tb.keys
    assert copy.ids(["c", "b", "a", "b"], [0, 3, 0, 0]).tolist() == [3, 2, 0, 1]
    assert copy.ids(["d", "a"]).tolist() == [4, 0]
    np.testing.assert_array_equal(copy["x"][:4], [1.5, np.nan, 2.5, np.nan])
    assert copy["h"][3].tolist() == [1.0, 2.0, 3.0]
    assert copy["new"][:5].tolist() == [7.0] * 5  # a column the state lacks: its default


# -- EpisodeTracker ---------------------------------------------------------------------------


class Steps:
    """One series through an EpisodeTracker, a point a minute."""

    def __init__(self, spec: EpisodeSpec) -> None:
        self.table = SeriesTable(tracker_columns(spec.detector))
        self.tracker = EpisodeTracker(spec, self.table, lambda d: "U-9")
        self.sid = self.table.ids(["D"])
        self.i = 0

    def __call__(
        self, cond: bool, score: float = 0.5, sev: Severity = Severity.MEDIUM
    ) -> list[Anomaly]:
        t = np.array([T0 + self.i * MIN])
        self.i += 1

        def describe(j: int, a: Anomaly | None) -> tuple[str, dict[str, Any], Severity]:
            return f"score {score}", {"score": score}, sev

        return self.tracker.update(
            self.sid, np.array([cond]), np.array([score]), t, t + 1, describe
        )


def test_episode_hysteresis_min_hits_duration_and_clear_hits() -> None:
    step = Steps(EpisodeSpec("t.x", "thing", "m", min_hits=2, min_duration_s=120, clear_hits=2))
    assert step(False) == []
    assert step(True) == []  # 1 hit
    assert step(True) == []  # 2 hits, but only 60 s
    (a,) = step(True)  # 3 hits over 120 s: open
    assert (a.detector, a.kind, a.metric, a.unit_id) == ("t.x", "thing", "m", "U-9")
    assert a.started_at == T0 + MIN  # the first point of the run
    assert a.detected_at == T0 + 3 * MIN + 1  # server time of the opening point
    assert a.revision == 1
    assert a.ended_at is None
    assert step(False) == []  # 1 miss
    assert step(True) == []  # still open, misses reset
    assert step(False) == []
    (closed,) = step(False)  # 2 misses in a row: closed at that point
    assert closed.key == a.key
    assert closed.revision == 2
    assert closed.ended_at == T0 + 7 * MIN
    assert step(True) == []
    assert step(False) == []
    assert step.tracker.open == {}


def test_episode_revisions_escalation_score_and_refresh() -> None:
    step = Steps(EpisodeSpec("t.y", "thing", "m", min_hits=1, clear_hits=1))
    (a,) = step(True, 0.5)
    assert a.revision == 1
    assert a.severity is Severity.MEDIUM
    assert step(True, 0.55) == []  # a small change is not a revision
    (b,) = step(True, 0.7)  # the score grew by more than 0.1
    assert (b.key, b.revision, b.score, b.explanation) == (a.key, 2, 0.7, "score 0.7")
    (c,) = step(True, 0.6, Severity.CRITICAL)  # escalation
    assert (c.revision, c.severity, c.score) == (3, Severity.CRITICAL, 0.7)
    assert step(True, 0.6, Severity.HIGH) == []  # severity never falls within an episode
    quiet = [step(True, 0.6) for _ in range(int(REFRESH_S / MIN) - 2)]
    assert quiet == [[]] * len(quiet)
    (d,) = step(True, 0.6)  # REFRESH_S after the last revision: a refresh
    assert d.revision == 4
    assert d.severity is Severity.CRITICAL
    assert d.last_at == T0 + (step.i - 1) * MIN
    (e,) = step(False)
    assert e.revision == 5
    assert e.ended_at == T0 + (step.i - 1) * MIN
    assert anomaly_from_json(anomaly_to_json(e)) == e


def test_episode_tracker_many_series_in_one_round() -> None:
    spec = EpisodeSpec("t.z", "thing", "port_temp_c", min_hits=1)
    tb = SeriesTable(tracker_columns(spec.detector))
    tr = EpisodeTracker(spec, tb, lambda d: "")
    sids = tb.ids(["A", "A", "B"], [1, 2, 1])
    t = np.full(3, T0)
    out = tr.update(
        sids, np.array([True, False, True]), np.ones(3), t, t, lambda j, a: ("x", {}, Severity.LOW)
    )
    assert [(a.device_id, a.component) for a in out] == [("A", "port 1"), ("B", "port 1")]
    assert sorted(tr.open) == [0, 2]


# -- thresholds -----------------------------------------------------------------------------


def test_threshold_precedence() -> None:
    s = Settings(analytics_min_pressure_kpa={"multistorey": 80.0})
    water = DeviceKind.WATER
    # the settings default for an unknown class, then the class (settings override the
    # standard's 70 kPa for multistorey), then the device, then the unit
    assert resolve_thresholds(s, water, "unknown", {}).min_kpa == 100.0
    assert resolve_thresholds(Settings(), water, "multistorey", {}).min_kpa == 70.0
    assert resolve_thresholds(s, water, "multistorey", {}).min_kpa == 80.0
    assert resolve_thresholds(s, water, "class1_highrise_over_100m", {}).min_kpa == 150.0
    meta = {"min_kpa": 120, "port_alarm_c": 70, "tank_capacity_m": 4.0}
    assert resolve_thresholds(s, water, "multistorey", meta).min_kpa == 120.0
    unit = {"min_kpa": 130, "port_alarm_c": 60.0}
    th = resolve_thresholds(s, water, "multistorey", meta, unit)
    assert (th.min_kpa, th.port_alarm_c) == (130.0, 60.0)
    assert th.tank_low_m == pytest.approx(4.0 * s.analytics_tank_low_fraction)
    assert resolve_thresholds(s, water, "", meta, {"tank_low_m": 1.5}).tank_low_m == 1.5
    shed = resolve_thresholds(s, DeviceKind.EBIKE_SHED, "multistorey", meta, unit)
    assert (shed.min_kpa, shed.tank_low_m, shed.port_alarm_c) == (None, None, 60.0)
    assert resolve_thresholds(s, water, "", {"allowed_hours": [7, 22]}).allowed_hours == (7, 22)
    assert resolve_thresholds(s, water, "", {"allowed_hours": "x"}).allowed_hours == (6.0, 23.0)


def test_explicit_zero_thresholds_are_kept() -> None:
    th = resolve_thresholds(Settings(), DeviceKind.WATER, "", {"utc_offset_h": 0, "room_min_c": 0})
    assert (th.utc_offset_h, th.room_min_c) == (0.0, 0.0)


# -- checkpoint -------------------------------------------------------------------------------


def test_checkpoint_round_trip_without_pickle() -> None:
    state = {
        "a": np.arange(4.0),
        "nested": [{"b": np.zeros((2, 3))}, "x", None, 1.5, True],
        "nan": float("nan"),
        "n": np.int64(3),
    }
    data = checkpoint.pack(state)
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    back = checkpoint.unpack(data)
    np.testing.assert_array_equal(back["a"], state["a"])
    np.testing.assert_array_equal(back["nested"][0]["b"], np.zeros((2, 3)))
    assert back["nested"][1:] == ["x", None, 1.5, True]
    assert np.isnan(back["nan"])
    assert back["n"] == 3
    with pytest.raises(TypeError):
        checkpoint.pack({"bad": object()})


def _npz(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _tree(text: bytes) -> bytes:
    return _npz(__tree__=np.frombuffer(text, np.uint8))


def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.arange(3))
    return buf.getvalue()


GOOD = checkpoint.pack({"a": np.arange(100.0)})
GARBAGE = {
    "text": b"garbage",
    "empty": b"",
    "truncated": GOOD[: len(GOOD) // 2],
    "corrupt": GOOD[:60] + bytes([GOOD[60] ^ 0xFF]) + GOOD[61:],
    "no tree": _npz(x=np.arange(3)),
    "bad json": _tree(b"{nope"),
    "not an object": _tree(b"[1, 2]"),
    "other format": _tree(b'{"format": 99, "state": {}}'),
    "bare npy": _npy(),
}


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
def test_unreadable_checkpoints_raise_checkpoint_error(data: bytes) -> None:
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.unpack(data)


# -- the engine, snapshotted midway ---------------------------------------------------------

SCENARIO = """
name = "engine-checkpoint"
seed = 11
start = "2026-11-20T00:00:00+08:00"
duration = "12h"

[city]
units = 6
streets_per_district = 1

[mix]
water_points = 1
tank_fraction = 0.5
pump_room_fraction = 0.3
shed_fraction = 0.7
ports_per_shed = 6

[[faults]]
type = "false_alarm_storm"
device = "random:panel"
at = "1h"
duration = "6h"

[[faults]]
type = "pipe_burst"
device = "random:water"
at = "3h"
duration = "1h"

[[faults]]
type = "thermal_runaway_precursor"
device = "random:ebike_shed"
at = "5h"
duration = "90m"

[[faults]]
type = "stuck_sensor"
device = "random:water"
at = "5h"
duration = "3h"

[[faults]]
type = "offline_with_will"
device = "random:panel"
at = "330m"
duration = "1h"

[[faults]]
type = "clock_skew"
device = "random"
at = "330m"
duration = "2h"

[[faults]]
type = "malformed_payload"
device = "random"
at = "8h"
duration = "1h"
"""


Stream = tuple[Settings, dict[str, DeviceProfile], list[Batch]]


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Stream:
    """Settings, profiles and the one-minute batches of a 6-unit, 12-hour city."""
    path: Path = tmp_path_factory.mktemp("scenario") / "engine.toml"
    path.write_text(SCENARIO, "utf-8")
    scenario = load_scenario(path)
    settings = Settings()
    start, end = scenario_window(scenario, live=False)
    sim = Simulation(scenario, start=start, end=end, root=settings.topic_root)
    return settings, profiles_from_city(sim.city, settings), list(batches(sim, settings, 60))


def test_engine_restored_from_a_midway_snapshot_reports_the_same(
    stream: Stream,
) -> None:
    settings, profiles, bs = stream
    mid = len(bs) // 2
    straight = DetectorEngine(settings, profiles)
    before: list[Anomaly] = []
    after: list[Anomaly] = []
    for i, b in enumerate(bs):
        (before if i <= mid else after).extend(straight.process(b))

    first = DetectorEngine(settings, profiles)
    resumed = [a for b in bs[: mid + 1] for a in first.process(b)]
    assert resumed == before  # the engine is deterministic
    open_at_snapshot = first.open_anomalies()
    snap = first.snapshot()
    with np.load(io.BytesIO(snap), allow_pickle=False) as z:
        assert z.files
        assert all(z[k].dtype != object for k in z.files)

    second = DetectorEngine(settings, profiles)
    second.load(snap)
    assert second.open_anomalies() == open_at_snapshot
    continued = [a for b in bs[mid + 1 :] for a in second.process(b)]
    assert continued == after  # every revision, in order, field by field

    whole, restored = final(before + after), final(resumed + continued)
    assert restored.keys() == whole.keys()
    for key, a in whole.items():
        r = restored[key]
        assert (r.revision, r.explanation, r.ended_at, r.severity) == (
            a.revision,
            a.explanation,
            a.ended_at,
            a.severity,
        )

    # the run is not trivial: several families found something, and episodes were open
    # across the snapshot
    families = {a.detector.split(".")[0] for a in whole.values()}
    assert {"rule", "stat", "panel", "link", "unit"} <= families
    assert len(open_at_snapshot) >= 3
    # ... which the restored engine continued rather than opened again
    same_series: dict[tuple[str, str, str, str], list[AnomalyKey]] = {}
    for key in final(continued):
        same_series.setdefault(key[:4], []).append(key)
    continued_keys = {a.key for a in continued}
    carried = [a for a in open_at_snapshot if a.key in continued_keys]
    assert carried
    for a in open_at_snapshot:
        ended = whole[a.key].ended_at
        for key in same_series.get(a.key[:4], []):
            assert key == a.key or (ended is not None and key.started_at >= ended), key
    for a in carried:
        assert min(x.revision for x in continued if x.key == a.key) > a.revision


def test_loading_garbage_into_an_engine_raises_checkpoint_error(
    stream: Stream,
) -> None:
    settings, profiles, _ = stream
    with pytest.raises(checkpoint.CheckpointError):
        DetectorEngine(settings, profiles).load(b"not a checkpoint")
