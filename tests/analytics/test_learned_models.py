"""Learned models (issue 4): window features by hand, streaming and checkpointing, the
IsolationForest per kind with its threshold, episodes, and the model registry against a
real PostgreSQL."""

from __future__ import annotations

import io
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np
import psycopg
import pytest

from firewatch.analytics.features import FEATURES, FeatureWindow, WindowFeaturizer
from firewatch.analytics.learned_models import (
    DETECTOR,
    ModelIntegrityError,
    ModelScorer,
    TrainedModel,
    latest_versions,
    load_latest,
    save_model,
    train_from_database,
    train_kind,
)
from firewatch.analytics.profiles import DeviceProfile, load_profiles, profiles_from_city
from firewatch.core.anomalies import Origin
from firewatch.core.domain import DeviceKind, Severity
from firewatch.core.rows import TelemetryRow
from firewatch.core.settings import Settings
from firewatch.ingest.codec import DeviceInfo, Limits, decode
from firewatch.simulators.engine import Simulation
from firewatch.simulators.scenario import load_scenario
from firewatch.storage.seed import read_seed
from tests.builders.detection import frame
from tests.conftest import Connect

BASE = 1_800_000_000.0  # a multiple of 900 s
WATER = "D-WD-001-W1"
SHED = "D-JA-001-E1"  # 3 A ports in the seed
WATER_NAMES = FEATURES[DeviceKind.WATER]
SHED_NAMES = FEATURES[DeviceKind.EBIKE_SHED]


@cache
def _profiles() -> dict[str, DeviceProfile]:
    return profiles_from_city(read_seed(), Settings())


def _row(device: str, ts: float, **f: Any) -> TelemetryRow:
    ports = f.pop("ports", None)  # [(no, temp, current, charging), ...]
    return TelemetryRow(
        device,
        int(ts),
        datetime.fromtimestamp(ts, UTC),
        datetime.fromtimestamp(ts + 1, UTC),
        f.get("pressure"),
        f.get("level"),
        f.get("pump"),
        f.get("jockey"),
        f.get("room"),
        f.get("ambient"),
        f.get("smoke"),
        [p[0] for p in ports] if ports else None,
        [p[1] for p in ports] if ports else None,
        [p[2] for p in ports] if ports else None,
        [p[3] for p in ports] if ports else None,
    )


@cache
def _sim_rows(hours: float, seed: int, start: float = BASE) -> tuple[TelemetryRow, ...]:
    """Telemetry of the Xuchang demo city (the seeded devices) at 60 s intervals."""
    sc = load_scenario("builtin:demo")
    iv = sc.intervals.model_copy(update={"water": 60.0, "shed": 60.0, "panel_status": 300.0})
    sc = sc.model_copy(update={"faults": []})  # normal days: the demo's own faults removed
    sim = Simulation(
        sc.model_copy(update={"intervals": iv}), start=start, end=start + hours * 3600, seed=seed
    )
    registry = {d.id: DeviceInfo(d.unit_id, d.kind) for d in sim.devices}
    limits = Limits(65_536, timedelta(seconds=300), timedelta(days=3650), timedelta(days=3650))
    out = []
    for m in sim.messages():
        row = decode(
            m.topic,
            m.payload,
            datetime.fromtimestamp(m.t + 0.5, UTC),
            root="firewatch/v1",
            lookup=registry.get,
            limits=limits,
        )
        if isinstance(row, TelemetryRow):
            out.append(row)
    return tuple(out)


def _featurize(rows: tuple[TelemetryRow, ...], chunk: int = 2000) -> list[FeatureWindow]:
    fz = WindowFeaturizer(_profiles())
    out: list[FeatureWindow] = []
    for i in range(0, len(rows), chunk):
        out += fz.update(frame(list(rows[i : i + chunk])))
    return out


# -- features --------------------------------------------------------------------------

JOCKEY = [0, 1, 1, 0, 1, 0, 0, 1, 1, 1]  # 3 off→on starts, duty 0.6


def _water_rows() -> list[TelemetryRow]:
    warm = [
        _row(WATER, BASE + 90 * k, pressure=300.0, jockey=False, pump=False, room=15.0)
        for k in range(10)
    ]
    second = [
        _row(
            WATER,
            BASE + 900 + 90 * k,
            pressure=300.0 + 0.9 * k,
            jockey=bool(JOCKEY[k]),
            pump=False,
            room=17.0,
        )
        for k in range(10)
    ]
    return warm + second


def test_water_window_statistics_are_the_hand_computed_ones() -> None:
    fz = WindowFeaturizer(_profiles())
    # the first window only sets the references; the second stays open: nothing yet
    assert fz.update(frame(_water_rows())) == []
    assert fz.update(frame([_row("D-WD-002-W1", BASE + 2000, pressure=1.0)])) == []
    (w,) = fz.update(frame([_row(WATER, BASE + 1800, pressure=300.0, jockey=False)]))
    assert (w.device_id, w.kind, w.start, w.end, w.n_points) == (
        WATER,
        DeviceKind.WATER,
        BASE + 900,
        BASE + 1800,
        10,
    )
    f = dict(zip(WATER_NAMES, w.features, strict=True))
    p = 300.0 + 0.9 * np.arange(10)
    assert f["pressure_mean_rel"] == pytest.approx(p.mean() / 300.0)  # 304.05 / 300
    assert f["pressure_std_rel"] == pytest.approx(p.std() / 300.0)
    assert f["pressure_range_rel"] == pytest.approx(8.1 / 300.0)
    assert f["pressure_slope_rel_per_h"] == pytest.approx(0.01 * 3600 / 300.0)  # 36 kPa/h
    assert f["jockey_duty"] == pytest.approx(0.6)
    assert f["jockey_starts_per_h"] == pytest.approx(12.0)  # 3 starts in a quarter hour
    assert f["pump_duty"] == 0.0
    assert f["level_slope_m_per_h"] == 0.0  # no tank: neutral
    assert f["room_temp_dev_c"] == pytest.approx(2.0)
    assert f["coverage"] == pytest.approx(1.0)  # 10 points at the usual 90 s
    assert w.context["pressure_ref_kpa"] == pytest.approx(300.0)


def test_windows_are_the_same_whatever_the_batching_and_late_points_are_dropped() -> None:
    rows = _water_rows()
    closing = _row(WATER, BASE + 1800, pressure=300.0, jockey=False)
    whole = WindowFeaturizer(_profiles())
    whole.update(frame(rows))
    (ref,) = whole.update(frame([closing]))
    one_by_one = WindowFeaturizer(_profiles())
    out: list[FeatureWindow] = []
    for r in rows[:14]:
        out += one_by_one.update(frame([r]))
    # a late point of the already closed first window changes nothing
    out += one_by_one.update(frame([_row(WATER, BASE + 10, pressure=900.0, jockey=True)]))
    out += one_by_one.update(frame(rows[14:][::-1]))  # out of order within a batch
    out += one_by_one.update(frame([closing]))
    assert len(out) == 1
    np.testing.assert_allclose(out[0].features, ref.features, rtol=1e-12, atol=1e-12)
    assert out[0].n_points == ref.n_points


def test_shed_window_statistics_are_the_hand_computed_ones() -> None:
    def ports(t: float) -> list[tuple[int, float, float, bool]]:
        return [(1, 20.0 + 0.5 * t / 60, 2.4, True), (2, 22.0, 0.0, False), (3, 21.0, 1.5, True)]

    warm = [_row(SHED, BASE + 200 * k, ambient=20.0, smoke=False, ports=ports(0)) for k in range(3)]
    smoke = [False, False, True, False]
    second = [
        _row(SHED, BASE + 900 + 200 * k, ambient=20.0, smoke=smoke[k], ports=ports(200 * k))
        for k in range(4)
    ]
    fz = WindowFeaturizer(_profiles())
    assert fz.update(frame(warm + second)) == []
    (w,) = fz.update(frame([_row(SHED, BASE + 1800, ambient=20.0, ports=ports(0))]))
    f = dict(zip(SHED_NAMES, w.features, strict=True))
    assert f["port_over_ambient_max_c"] == pytest.approx(5.0)  # port 1 at 25 °C
    assert f["port_temp_slope_max_c_per_min"] == pytest.approx(0.5)
    assert f["current_max_rel"] == pytest.approx(2.4 / 3.0)
    assert f["charging_fraction"] == pytest.approx(2 / 3)
    assert f["port_over_median_max_c"] == pytest.approx(3.0)  # 25 vs median 22
    assert f["smoke_fraction"] == pytest.approx(0.25)
    assert f["ambient_slope_c_per_h"] == pytest.approx(0.0)
    assert f["coverage"] == pytest.approx(4 / 4.5)  # 4 points, 4.5 expected at 200 s


def test_panels_and_unknown_devices_make_no_windows() -> None:
    fz = WindowFeaturizer(_profiles())
    rows = [
        _row(d, BASE + 60 * k, pressure=300.0) for d in ("D-WD-001-P1", "nope") for k in range(60)
    ]
    assert fz.update(frame(rows)) == []
    assert fz.state()["devices"] == []


def test_a_device_registered_later_is_featurized_from_then_on() -> None:
    known = {k: v for k, v in _profiles().items() if k != WATER}
    scorer = ModelScorer(known, {})
    rows = _water_rows()
    assert scorer.update(frame(rows[:10])) == []
    assert scorer.featurizer.state()["devices"] == []
    scorer.profiles = _profiles()
    scorer.featurizer.update(frame(rows))
    (w,) = scorer.featurizer.update(frame([_row(WATER, BASE + 1800, pressure=300.0)]))
    assert w.device_id == WATER


def _checkpoint_round_trip(state: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint does: arrays through np.save (no pickle), the rest through JSON."""
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    out: dict[str, Any] = json.loads(
        json.dumps({k: v for k, v in state.items() if k not in arrays})
    )
    for k, v in arrays.items():
        buf = io.BytesIO()
        np.save(buf, v, allow_pickle=False)
        buf.seek(0)
        out[k] = np.load(buf, allow_pickle=False)
    return out


def test_state_round_trip_mid_stream_gives_the_same_windows() -> None:
    rows = _sim_rows(6, seed=1)
    frames = [frame(list(rows[i : i + 700])) for i in range(0, len(rows), 700)]
    through = WindowFeaturizer(_profiles())
    a: list[FeatureWindow] = []
    b: list[FeatureWindow] = []
    restored: WindowFeaturizer | None = None
    cut = 0
    for i, f in enumerate(frames):
        if i == len(frames) // 2:
            restored = WindowFeaturizer(_profiles())
            restored.restore(_checkpoint_round_trip(through.state()))
            cut = len(a)
        a += through.update(f)
        if restored is not None:
            b += restored.update(f)
    tail = a[cut:]
    assert len(b) > 50
    assert [(w.device_id, w.start) for w in tail] == [(w.device_id, w.start) for w in b]
    for x, y in zip(tail, b, strict=True):
        np.testing.assert_array_equal(x.features, y.features)


# -- training and scoring ----------------------------------------------------------------


def _synthetic_water(n_dev: int, per_dev: int, seed: int) -> list[FeatureWindow]:
    """Normal water windows: pressure near its reference, ~4 jockey starts an hour."""
    rng = np.random.default_rng(seed)
    out = []
    for d in range(n_dev):
        for k in range(per_dev):
            starts = rng.poisson(4.0) / 1.0
            duty = min(1.0, max(0.0, rng.normal(0.2, 0.05)))
            x = [
                rng.normal(1.0, 0.02),
                abs(rng.normal(0.018, 0.003)),
                abs(rng.normal(0.06, 0.01)),
                rng.normal(0.0, 0.1),
                duty,
                starts,
                0.0,
                0.0,
                rng.normal(0.0, 1.5),
                1.0,
            ]
            start = BASE + 900.0 * k
            out.append(
                FeatureWindow(
                    f"D-SYN-{d}",
                    DeviceKind.WATER,
                    start,
                    start + 900.0,
                    np.asarray(x),
                    15,
                    {"pressure_ref_kpa": 350.0},
                )
            )
    return out


@pytest.fixture(scope="module")
def water_model() -> TrainedModel:
    return train_kind(
        _synthetic_water(20, 150, seed=1),
        DeviceKind.WATER,
        trained_from=BASE,
        trained_to=BASE + 150 * 900.0,
    )


def _abnormal(device: str, start: float) -> FeatureWindow:
    x = [0.8, 0.05, 0.2, -0.3, 0.9, 40.0, 0.0, 0.0, 0.0, 1.0]  # a leak: low, falling, busy
    return FeatureWindow(
        device,
        DeviceKind.WATER,
        start,
        start + 900.0,
        np.asarray(x),
        15,
        {"pressure_ref_kpa": 350.0},
    )


def test_training_metrics_threshold_and_normal_false_alarms(water_model: TrainedModel) -> None:
    m = water_model
    assert (m.kind, m.algorithm, m.version, m.window_s) == (
        DeviceKind.WATER,
        "isolation_forest",
        None,
        900.0,
    )
    assert m.features == WATER_NAMES
    assert (m.metrics["n_train"], m.metrics["n_holdout"]) == (2400, 600)
    assert m.threshold < m.metrics["holdout_quantiles"]["0.001"]
    assert m.metrics["holdout_outlier_fraction"] <= 0.005
    assert (m.params["n_estimators"], m.params["contamination"]) == (200, "auto")
    fresh = _synthetic_water(10, 200, seed=2)  # unseen normal windows
    _, _, margin = m.assess(np.vstack([w.features for w in fresh]))
    assert np.mean(margin > 0) <= 0.005
    _, _, bad = m.assess(_abnormal("x", BASE).features[None, :])
    assert bad[0] > 0


def test_abnormal_window_becomes_an_explained_anomaly(water_model: TrainedModel) -> None:
    scorer = ModelScorer(_profiles(), {DeviceKind.WATER: replace(water_model, version=7)})
    normal = _synthetic_water(1, 3, seed=3)
    for w in normal:
        w.device_id = WATER
    assert scorer.score_windows(normal) == []
    # one outlier window is pending; the second in a row raises the episode
    assert scorer.score_windows([_abnormal(WATER, BASE + 3 * 900)]) == []
    (a,) = scorer.score_windows([_abnormal(WATER, BASE + 4 * 900)])
    assert (a.device_id, a.unit_id, a.detector, a.kind, a.metric, a.component) == (
        WATER,
        "U-WD-001",
        DETECTOR,
        "unusual_behaviour",
        "window",
        "",
    )
    assert (a.origin, a.severity, a.model_version) == (Origin.INFERRED, Severity.MEDIUM, 7)
    assert 0.5 < a.score <= 1.0
    assert (a.started_at, a.last_at, a.detected_at, a.ended_at, a.revision) == (
        BASE + 2700,
        BASE + 4500,
        BASE + 4500,
        None,
        1,
    )
    assert a.explanation.startswith("unusual 15-min window: ")
    assert "jockey starts 40/h (typical 4/h)" in a.explanation
    assert a.evidence["features"]["jockey_starts_per_h"] == 40.0
    assert a.evidence["score_samples"] == pytest.approx(
        float(water_model.score_samples(_abnormal("x", 0).features[None, :])[0])
    )


def test_consecutive_outlier_windows_extend_one_episode(water_model: TrainedModel) -> None:
    scorer = ModelScorer(_profiles(), {DeviceKind.WATER: water_model})
    t = BASE + 10 * 900
    assert scorer.score_windows([_abnormal(WATER, t)]) == []  # pending
    (opened,) = scorer.score_windows([_abnormal(WATER, t + 900)])
    assert (opened.started_at, opened.revision, opened.evidence["windows"]) == (t, 1, 2)
    # checkpoint mid-episode: a restored scorer continues the same episode
    again = ModelScorer(_profiles(), {DeviceKind.WATER: water_model})
    again.restore(json.loads(json.dumps(scorer.state(), default=lambda a: a.tolist())))
    for s in (scorer, again):
        (ext,) = s.score_windows([_abnormal(WATER, t + 1800)])
        assert (ext.key, ext.revision, ext.last_at, ext.ended_at) == (opened.key, 2, t + 2700, None)
        assert ext.evidence["windows"] == 3
        normal = _synthetic_water(1, 1, seed=4)[0]
        normal.device_id, normal.start, normal.end = WATER, t + 2700, t + 3600
        (closed,) = s.score_windows([normal])
        assert (closed.key, closed.revision, closed.ended_at) == (opened.key, 3, t + 2700)
        assert s.episodes == {}
    assert (opened.ended_at, opened.revision) == (None, 1)  # returned copies do not change
    # a gap of more than one window closes the episode at its last outlier window
    scorer.score_windows([_abnormal(WATER, t + 5 * 900)])
    (raised,) = scorer.score_windows([_abnormal(WATER, t + 6 * 900)])
    (old_closed,) = scorer.score_windows([_abnormal(WATER, t + 9 * 900)])  # new one pending
    assert (old_closed.key, old_closed.ended_at) == (raised.key, t + 7 * 900)
    (new,) = scorer.score_windows([_abnormal(WATER, t + 10 * 900)])
    assert new.started_at == t + 9 * 900


def test_a_single_outlier_window_raises_nothing(water_model: TrainedModel) -> None:
    scorer = ModelScorer(_profiles(), {DeviceKind.WATER: water_model})
    t = BASE + 20 * 900
    assert scorer.score_windows([_abnormal(WATER, t)]) == []
    normal = _synthetic_water(1, 1, seed=4)[0]
    normal.device_id, normal.start, normal.end = WATER, t + 900, t + 1800
    assert scorer.score_windows([normal]) == []
    assert scorer.episodes == {}


def test_too_few_windows_to_train_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 50"):
        train_kind(
            _synthetic_water(1, 49, seed=1),
            DeviceKind.WATER,
            trained_from=BASE,
            trained_to=BASE + 1,
        )
    with pytest.raises(ValueError, match="ebike_shed: 0 feature windows"):
        train_kind(
            _synthetic_water(1, 60, seed=1),
            DeviceKind.EBIKE_SHED,
            trained_from=BASE,
            trained_to=BASE + 1,
        )


def test_scorer_refuses_a_model_of_another_window_length(water_model: TrainedModel) -> None:
    with pytest.raises(ValueError, match="900 s windows"):
        ModelScorer(_profiles(), {DeviceKind.WATER: water_model}, window_s=600)


def test_models_flag_the_simulated_leak_but_not_normal_days() -> None:
    windows = _featurize(_sim_rows(24, seed=5))
    model = train_kind(windows, DeviceKind.WATER, trained_from=BASE, trained_to=BASE + 86400)
    assert model.metrics["holdout_outlier_fraction"] == 0.0
    later = _featurize(_sim_rows(12, seed=6, start=BASE + 86400))
    water = [w for w in later if w.kind is DeviceKind.WATER]
    scorer = ModelScorer(_profiles(), {DeviceKind.WATER: model})
    assert scorer.score_windows(water) == []  # 7 devices × 12 h of normal data
    leak = [w for w in water if w.device_id == WATER][-8:]
    for k, w in enumerate(leak):  # pressure falls 30 kPa/h, the jockey runs 4× as often
        ref = w.context["pressure_ref_kpa"]
        w.features[0] -= 30.0 * (k + 1) * 0.25 / ref
        w.features[3] -= 30.0 / ref
        w.features[4] = min(1.0, 3 * w.features[4])
    found = scorer.score_windows(leak)
    assert found
    assert {a.device_id for a in found} == {WATER}


# -- registry (real PostgreSQL) -------------------------------------------------------------


def test_save_and_load_round_trip_scores_identically(
    connect: Connect, water_model: TrainedModel
) -> None:
    conn = connect()
    water_model = replace(water_model)
    assert load_latest(conn) == {}
    assert latest_versions(conn) == {}
    v1 = save_model(conn, water_model)
    v2 = save_model(conn, water_model)
    assert v2 > v1
    assert water_model.version == v2
    assert latest_versions(conn) == {DeviceKind.WATER: v2}
    loaded = load_latest(conn)[DeviceKind.WATER]
    assert loaded.version == v2
    assert (loaded.trained_from, loaded.trained_to) == (
        water_model.trained_from,
        water_model.trained_to,
    )
    assert (loaded.features, loaded.window_s) == (water_model.features, 900.0)
    assert loaded.metrics == json.loads(json.dumps(water_model.metrics))
    x = np.vstack([w.features for w in _synthetic_water(2, 50, seed=9)])
    np.testing.assert_array_equal(loaded.score_samples(x), water_model.score_samples(x))


def test_corrupted_model_bytes_raise_integrity_error(
    connect: Connect, water_model: TrainedModel
) -> None:
    conn = connect()
    version = save_model(conn, replace(water_model))
    conn.execute(
        "UPDATE analytics_models SET model = overlay(model placing '\\xff'::bytea"
        " from 200 for 1) WHERE version = %s",
        (version,),
    )
    with pytest.raises(ModelIntegrityError, match=f"version {version}"):
        load_latest(conn)


def test_train_from_database_stores_versioned_models(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    start = (time.time() // 86_400 - 1) * 86_400  # yesterday 00:00 UTC: partitions exist
    rows = _sim_rows(16, seed=3, start=start)
    cols = ", ".join(TelemetryRow._fields)
    marks = ", ".join(["%s"] * len(TelemetryRow._fields))
    with db.cursor() as cur:
        cur.executemany(f"INSERT INTO telemetry ({cols}) VALUES ({marks})", rows)
    end = start + 16 * 3600
    models = train_from_database(db, load_profiles(db, settings), start=start, end=end)
    assert sorted(m.kind for m in models) == [DeviceKind.EBIKE_SHED, DeviceKind.WATER]
    stored = db.execute(
        "SELECT version, kind, algorithm, trained_from, trained_to, window_s, features,"
        " metrics FROM analytics_models ORDER BY version"
    ).fetchall()
    assert [r[0] for r in stored] == [m.version for m in models]
    for m, (_, kind, algo, t0, t1, window_s, feats, metrics) in zip(models, stored, strict=True):
        assert (kind, algo, window_s, tuple(feats)) == (
            m.kind.value,
            "isolation_forest",
            900,
            FEATURES[m.kind],
        )
        assert (t0.timestamp(), t1.timestamp()) == (start, end)
        assert metrics["n_windows"] >= 50
        assert metrics["n_devices"] in (5, 7)
        assert metrics["holdout_outlier_fraction"] <= 0.02
        assert set(metrics["feature_medians"]) == set(FEATURES[m.kind])
    loaded = load_latest(db)
    windows = _featurize(rows)
    for m in models:
        x = np.vstack([w.features for w in windows if w.kind is m.kind])
        np.testing.assert_array_equal(loaded[m.kind].score_samples(x), m.score_samples(x))


def test_train_command_trains_and_reports(
    db: psycopg.Connection[Any],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from firewatch.cli import main

    assert settings.database_url
    start = (time.time() // 86_400 - 1) * 86_400
    rows = _sim_rows(16, seed=3, start=start)
    cols = ", ".join(TelemetryRow._fields)
    marks = ", ".join(["%s"] * len(TelemetryRow._fields))
    with db.cursor() as cur:
        cur.executemany(f"INSERT INTO telemetry ({cols}) VALUES ({marks})", rows)
    monkeypatch.setenv("FIREWATCH_DATABASE_URL", settings.database_url)
    since = datetime.fromtimestamp(start, UTC).isoformat()
    to = datetime.fromtimestamp(start + 16 * 3600, UTC).isoformat()
    assert main(["analytics", "train", "--since", since, "--to", to]) == 0
    out = capsys.readouterr().out
    assert "trained water model v" in out
    assert "trained ebike_shed model v" in out
    assert db.execute("SELECT count(*) FROM analytics_models").fetchone() == (2,)
    # nothing to learn from: a clear message and exit code 1, no model stored
    assert (
        main(
            [
                "analytics",
                "train",
                "--since",
                "2020-01-01T00:00:00+00:00",
                "--to",
                "2020-01-02T00:00:00+00:00",
            ]
        )
        == 1
    )
    assert "not enough history" in capsys.readouterr().err
    assert db.execute("SELECT count(*) FROM analytics_models").fetchone() == (2,)
