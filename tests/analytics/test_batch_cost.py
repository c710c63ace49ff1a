"""What makes a small batch cheap (issue 15) without changing what the detectors find: the
device codes shared by every table, scores computed only when a condition holds, the
dropout check that compares every series only once one could be due, the featurizer's
cached slots — and one stream cut into 10-second and into 60-second batches finding the
same episodes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from firewatch.analytics.engine import DetectorEngine
from firewatch.analytics.episodes import EpisodeSpec, EpisodeTracker, tracker_columns
from firewatch.analytics.features import WindowFeaturizer
from firewatch.analytics.frames import Batch, concat
from firewatch.analytics.link import LinkDetectors
from firewatch.analytics.profiles import DeviceProfile, profiles_from_city
from firewatch.analytics.series import DEVICES, F64, SeriesTable
from firewatch.core.anomalies import Anomaly
from firewatch.core.domain import Severity
from firewatch.core.settings import Settings
from firewatch.lab.detector_eval import batches
from firewatch.simulators.engine import Simulation, scenario_window
from firewatch.simulators.scenario import load_scenario
from tests.analytics.test_engine import SCENARIO
from tests.builders.detection import batch, final, frame, profile, profiles, unit_of
from tests.builders.rows import MIN, T0, status, water_row

# -- device codes ------------------------------------------------------------------------


def test_new_series_take_ids_in_the_order_their_table_first_saw_the_devices() -> None:
    DEVICES.codes(["bc-z", "bc-y", "bc-x"])  # shared codes given in another order
    tb = SeriesTable({"x": 0.0})
    # the table learns every device of the list, even those without a point here
    assert tb.ids(["bc-x", "bc-y"], rows=np.array([0], np.int64)).tolist() == [0]
    assert tb.ids(["bc-z", "bc-y"]).tolist() == [2, 1]  # y was seen before z: y first
    other = SeriesTable({"x": 0.0})
    rows = np.array([1, 2], np.int64)  # only_rows: the unselected device is not learnt
    assert other.ids(["bc-x", "bc-z", "bc-y"], rows=rows, only_rows=True).tolist() == [0, 1]
    assert other.ids(["bc-x"]).tolist() == [2]


def test_a_cached_device_list_is_recognised_by_identity_and_length_only() -> None:
    devices = ["bc-a", "bc-b"]
    first = DEVICES.codes(devices)
    assert DEVICES.codes(devices) is first
    same_names = DEVICES.codes(list(devices))  # another list: looked up again, same codes
    assert same_names is not first
    assert same_names.tolist() == first.tolist()
    devices.append("bc-c")
    assert DEVICES.codes(devices).tolist() == [*first.tolist(), DEVICES.code("bc-c")]


# -- scores only when a condition holds -----------------------------------------------------


def test_a_score_function_is_called_only_when_the_condition_holds() -> None:
    spec = EpisodeSpec("rule.x", "x", "pressure_kpa", min_hits=1, clear_hits=1)
    table = SeriesTable(tracker_columns(spec.detector))
    tracker = EpisodeTracker(spec, table, lambda d: "U")
    sid = table.ids(["bc-s"])
    calls: list[int] = []

    def score() -> F64:
        calls.append(1)
        return np.array([0.7])

    def describe(j: int, a: Anomaly | None) -> tuple[str, dict[str, Any], Severity]:
        return "x", {}, Severity.LOW

    def step(i: int, cond: bool) -> list[Anomaly]:
        t = np.array([T0 + i * MIN])
        return tracker.update(sid, np.array([cond]), score, t, t, describe)

    assert step(0, False) == []
    assert calls == []
    (opened,) = step(1, True)
    assert calls == [1]
    assert opened.score == 0.7
    (closed,) = step(2, False)  # closing needs no score
    assert calls == [1]
    assert closed.ended_at == T0 + 2 * MIN


# -- the dropout check ---------------------------------------------------------------------


def _scan_always(d: LinkDetectors) -> LinkDetectors:
    """``d`` comparing every series on every tick (the check without its shortcut)."""
    tick = d.tick

    def full(now: float) -> list[Anomaly]:
        d._wake = -np.inf
        return tick(now)

    d.tick = full  # type: ignore[method-assign]
    return d


def test_the_dropout_shortcut_finds_what_comparing_every_series_finds() -> None:
    devs = [f"bc-w{i}" for i in range(6)]
    ps = profiles(*(profile(d) for d in devs))
    fast, full = LinkDetectors(ps, unit_of(ps)), _scan_always(LinkDetectors(ps, unit_of(ps)))
    rng = np.random.default_rng(3)
    every = {d: float(rng.choice([30.0, 60.0, 300.0])) for d in devs}
    quiet_from = {devs[1]: T0 + 3600.0, devs[4]: T0 + 5400.0}  # these two stop sending
    out_fast: list[Anomaly] = []
    out_full: list[Anomaly] = []
    for k in range(2 * 3600 // 30):
        now = T0 + 30.0 * (k + 1)
        rows = []
        for i, d in enumerate(devs):
            t = now - 30.0 + (i * 7.0) % 30.0
            if (t - T0) % every[d] < 30.0 and t < quiet_from.get(d, np.inf):
                rows.append(water_row(d, t, 350.0, seq=k + 1, rx=t + 1))
        statuses = []
        if k == 150:  # one says offline, then comes back: a dropout must be able to follow
            statuses = [status(devs[2], now - 5, "offline", seq=k)]
        if k == 170:
            statuses = [status(devs[2], now - 5, "online", seq=k)]
        for det, out in ((fast, out_fast), (full, out_full)):
            out += det.process(batch(now, rows, statuses=statuses))
            out += det.tick(now)
        if k == 180:  # a restore starts the shortcut from scratch
            fast.restore(fast.state())
    assert out_fast == out_full
    assert {a.device_id for a in out_fast if a.detector == "link.dropout"} >= set(quiet_from)


def test_new_profiles_let_a_silent_device_be_reported() -> None:
    ps = profiles(profile("bc-p"))
    d = LinkDetectors({}, unit_of(ps))  # the device has no profile yet: never reported
    for i in range(6):
        t = T0 + i * MIN
        d.process(batch(t + 2, [water_row("bc-p", t, 350.0, seq=i + 1, rx=t + 1)]))
    assert d.tick(T0 + 3 * 3600) == []
    d.set_profiles(ps)
    (a,) = d.tick(T0 + 3 * 3600 + 60)
    assert a.detector == "link.dropout"


# -- the featurizer's slots ------------------------------------------------------------------


def test_a_device_that_gains_a_profile_is_featurized_from_then_on() -> None:
    fz = WindowFeaturizer({}, window_s=60.0)
    rows = [water_row("bc-f", T0 + i * 10.0, 350.0, seq=i + 1) for i in range(4)]
    fz.update(frame(rows))
    assert fz.state()["devices"] == []
    fz.set_profiles(profiles(profile("bc-f")))
    fz.update(frame([water_row("bc-f", T0 + 100.0, 350.0, seq=9)]))
    assert fz.state()["devices"] == ["bc-f"]


# -- batch size changes when, not what --------------------------------------------------------


Stream = tuple[Settings, dict[str, DeviceProfile], list[Batch]]


@pytest.fixture(scope="module")
def fine(tmp_path_factory: pytest.TempPathFactory) -> Stream:
    path = tmp_path_factory.mktemp("scenario") / "engine.toml"
    path.write_text(SCENARIO, "utf-8")
    scenario = load_scenario(path)
    settings = Settings()
    start, end = scenario_window(scenario, live=False)
    sim = Simulation(scenario, start=start, end=end, root=settings.topic_root)
    return settings, profiles_from_city(sim.city, settings), list(batches(sim, settings, 10))


def _run(settings: Settings, ps: dict[str, DeviceProfile], bs: list[Batch]) -> dict[Any, Anomaly]:
    engine = DetectorEngine(settings, ps)
    out: list[Anomaly] = []
    for b in bs:  # as the service does: process what came, or only tick
        out += engine.process(b) if len(b) else engine.tick(b.now)
    return final(out)


def test_ten_and_sixty_second_batches_find_the_same_episodes(
    fine: Stream,
) -> None:
    settings, ps, ten = fine
    sixty = [
        Batch(
            group[-1].now,
            concat([b.telemetry for b in group]),
            [e for b in group for e in b.events],
            [s for b in group for s in b.statuses],
            [d for b in group for d in b.dead_letters],
        )
        for group in (ten[i : i + 6] for i in range(0, len(ten), 6))
    ]
    small, large = _run(settings, ps, ten), _run(settings, ps, sixty)
    assert small.keys() == large.keys()
    assert len(small) >= 10
    for key, a in small.items():
        b = large[key]
        assert (a.revision, a.severity, a.started_at) == (b.revision, b.severity, b.started_at)
        # what the clock decides (silence, expiry) is judged at the batch's time: within
        # one large batch of each other
        assert abs(a.detected_at - b.detected_at) <= 60.0
        assert (a.ended_at is None) == (b.ended_at is None)
        if a.ended_at is not None and b.ended_at is not None:
            assert abs(a.ended_at - b.ended_at) <= 60.0
