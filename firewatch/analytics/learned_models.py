"""Learned models: one IsolationForest per device kind on window features.

``firewatch analytics train`` reads stored telemetry (:func:`train_from_database`), cuts
it into windows (:mod:`firewatch.analytics.features`), fits a RobustScaler +
IsolationForest pipeline per kind (:func:`train_kind`) and stores it, versioned with its
training window, parameters and metrics, in ``analytics_models`` (:func:`save_model`).
The running service loads the newest model of each kind (:func:`load_latest`), polls
:func:`latest_versions` to reload, and scores closed windows in batches with
:class:`ModelScorer`, which turns outlier windows into :class:`~firewatch.core.anomalies.
Anomaly` episodes.

**Decision rule.** The pipeline is fit on the oldest 80 % of the windows (by end time) and
scored on the newest 20 %. With ``q`` the held-out 0.1 %-quantile of ``score_samples``
and ``spread`` = held-out median − ``q``, the IsolationForest threshold is
``q − 0.3 · spread``: a window must score clearly below the lowest held-out windows, not
merely among them. An IsolationForest cannot tell a value just past the edge of its
training data from one far beyond it (the path to isolate both is the same), so a gross
deviation (a closed valve's near-zero pressure, a runaway port at +200 °C) scores barely
lower than the most extreme normal window. A window is therefore also an outlier when a
feature lies more than ``RANGE_MARGIN`` = 2 robust units (IQRs of the fit windows) beyond
the range it had in the fit windows. Both criteria give one margin (:func:`_margins`);
outlier: margin > 0. The target is at most one false window per ~1000 device-hours
(1 in 4000 windows of 15 min); on the simulated standard city (30 units, trained on 3 days,
tested on 4 more normal days: ~6,500 device-hours) no normal window was flagged, and 10
of its 14 telemetry faults were (tank draining, charging outside hours, malformed payloads
and a stuck sensor were not: rules and the streaming scorer cover those). Held-out history
that contains real faults only makes the threshold more conservative.

**Score.** With ``m`` the margin (the IsolationForest part ``(threshold − s) / spread``;
the range part ``(excess − RANGE_MARGIN) / RANGE_MARGIN``; the larger counts), an
outlier's score is ``0.5 + 0.5 · (1 − exp(−m))`` in [0.5, 1); severity is LOW, MEDIUM
from ``m ≥ 1``. Features that never varied in training (the main pump never ran, no smoke)
get unit scale and the forest never splits on them, so they barely count: the rules cover
those conditions.
"""

from __future__ import annotations

import hashlib
import logging
import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
import sklearn  # type: ignore[import-untyped]
from sklearn.ensemble import IsolationForest  # type: ignore[import-untyped]
from sklearn.pipeline import Pipeline  # type: ignore[import-untyped]
from sklearn.preprocessing import RobustScaler  # type: ignore[import-untyped]

from firewatch.analytics import iforest
from firewatch.analytics.episodes import anomaly_from_json, anomaly_to_json
from firewatch.analytics.features import FEATURES, KINDS, FeatureWindow, WindowFeaturizer
from firewatch.analytics.frames import TelemetryFrame
from firewatch.analytics.profiles import DeviceProfile
from firewatch.core.anomalies import Anomaly, Origin
from firewatch.core.domain import DeviceKind, Severity
from firewatch.storage import analytics_models as stored_models
from firewatch.storage.streams import telemetry_between

log = logging.getLogger(__name__)
F64 = np.ndarray[Any, np.dtype[np.float64]]

ALGORITHM = "isolation_forest"
DETECTOR = "model.iforest"
ANOMALY_KIND = "unusual_behaviour"
MIN_TRAINING_WINDOWS = 50
HOLDOUT_FRACTION = 0.2
THRESHOLD_QUANTILE = 0.001
THRESHOLD_MARGIN = 0.3  # × spread below the held-out 0.1 %-quantile
RANGE_MARGIN = 2.0  # robust units (IQRs) beyond a feature's training range
#: Outlier windows in a row before an episode is raised: one odd quarter hour (every bike
#: in a shed starting to charge at 06:00) is not worth an operator's attention; a fault
#: that matters lasts longer than that, and the rules and statistics catch the fast ones.
MIN_WINDOWS = 2
QUANTILES = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95)


class ModelIntegrityError(Exception):
    """A stored model's bytes do not match their stored sha256."""


@dataclass(slots=True)
class TrainedModel:
    """A fitted pipeline with what it was trained on; ``version`` is set once saved."""

    kind: DeviceKind
    trained_from: datetime
    trained_to: datetime
    window_s: float
    features: tuple[str, ...]
    params: dict[str, Any]
    metrics: dict[str, Any]
    pipeline: Any  # sklearn Pipeline: RobustScaler → IsolationForest
    algorithm: str = ALGORITHM
    version: int | None = None

    @property
    def threshold(self) -> float:
        return float(self.metrics["threshold"])

    @property
    def spread(self) -> float:
        return max(float(self.metrics["spread"]), 1e-6)

    def score_samples(self, x: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
        """IsolationForest scores (lower is more unusual) of feature rows ``x``."""
        return iforest.scores(self.pipeline, x)[0]

    def assess(self, x: np.ndarray[Any, Any]) -> tuple[F64, F64, F64]:
        """(IsolationForest scores, robust-scaled features, margins) of feature rows ``x``;
        a row is an outlier when its margin is > 0 (see the module docstring)."""
        s, z = iforest.scores(self.pipeline, x)  # (firewatch/analytics/iforest.py)
        return s, z, _margins(s, z, self.threshold, self.spread, self.metrics)


def _margins(s: F64, z: F64, threshold: float, spread: float, metrics: Mapping[str, Any]) -> F64:
    """How far each row is past the decision rule: the larger of the IsolationForest
    margin ``(threshold − s) / spread`` and the range margin ``(excess − RANGE_MARGIN) /
    RANGE_MARGIN``, where excess is the largest distance (robust units) of a feature
    beyond the range it had in training. Outlier: margin > 0."""
    m_if = (threshold - s) / max(spread, 1e-6)
    lo = np.asarray(metrics.get("z_low", -np.inf * np.ones(z.shape[1])), np.float64)
    hi = np.asarray(metrics.get("z_high", np.inf * np.ones(z.shape[1])), np.float64)
    excess = np.maximum(np.maximum(lo - z, z - hi), 0.0).max(axis=1)
    margin = float(metrics.get("range_margin", RANGE_MARGIN))
    return np.asarray(np.maximum(m_if, (excess - margin) / margin), np.float64)


def _utc(t: datetime | float) -> datetime:
    if isinstance(t, datetime):
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(t), UTC)


def _quantiles(s: np.ndarray[Any, Any]) -> dict[str, float]:
    return {f"{q:g}": float(np.quantile(s, q)) for q in QUANTILES}


def train_kind(
    windows: Sequence[FeatureWindow],
    kind: DeviceKind,
    *,
    trained_from: datetime | float,
    trained_to: datetime | float,
    seed: int = 0,
) -> TrainedModel:
    """Fit the pipeline of ``kind`` on its windows; metrics and threshold from the newest
    20 % held out (see the module docstring). Raises ``ValueError`` with too few windows."""
    ws = sorted((w for w in windows if w.kind is kind), key=lambda w: (w.end, w.device_id))
    if len(ws) < MIN_TRAINING_WINDOWS:
        raise ValueError(
            f"{kind.value}: {len(ws)} feature windows, at least {MIN_TRAINING_WINDOWS} "
            "are needed to train a model (train over a longer history)"
        )
    lengths = {round(w.end - w.start, 6) for w in ws}
    if len(lengths) != 1:
        raise ValueError(f"{kind.value}: windows of different lengths {sorted(lengths)}")
    x = np.vstack([w.features for w in ws]).astype(np.float64)
    n_hold = max(1, math.ceil(HOLDOUT_FRACTION * len(ws)))
    cut = len(ws) - n_hold
    params: dict[str, Any] = {
        "scaler": "robust",
        "n_estimators": 200,
        "contamination": "auto",
        "max_samples": "auto",
        "random_state": seed,
        "holdout_fraction": HOLDOUT_FRACTION,
        "threshold_quantile": THRESHOLD_QUANTILE,
        "threshold_margin": THRESHOLD_MARGIN,
        "sklearn_version": sklearn.__version__,
    }
    pipeline = Pipeline(
        [
            ("scale", RobustScaler()),
            ("iforest", IsolationForest(n_estimators=200, contamination="auto", random_state=seed)),
        ]
    )
    pipeline.fit(x[:cut])
    s_train = np.asarray(pipeline.score_samples(x[:cut]), np.float64)
    s_hold = np.asarray(pipeline.score_samples(x[cut:]), np.float64)
    q = float(np.quantile(s_hold, THRESHOLD_QUANTILE))
    median = float(np.median(s_hold))
    spread = max(median - q, 1e-3)
    threshold = q - THRESHOLD_MARGIN * spread
    scaler = pipeline.named_steps["scale"]
    names = FEATURES[kind]
    z_train = np.asarray(scaler.transform(x[:cut]), np.float64)
    z_low, z_high = z_train.min(axis=0), z_train.max(axis=0)
    rule = {
        "threshold": threshold,
        "spread": spread,
        "z_low": z_low.tolist(),
        "z_high": z_high.tolist(),
        "range_margin": RANGE_MARGIN,
    }
    hold_m = _margins(
        s_hold, np.asarray(scaler.transform(x[cut:]), np.float64), threshold, spread, rule
    )
    train_m = _margins(s_train, z_train, threshold, spread, rule)
    metrics: dict[str, Any] = {
        "n_windows": len(ws),
        "n_train": cut,
        "n_holdout": n_hold,
        "n_devices": len({w.device_id for w in ws}),
        "first_window": _utc(ws[0].start).isoformat(),
        "last_window": _utc(ws[-1].end).isoformat(),
        "holdout_from": _utc(ws[cut].start).isoformat() if cut < len(ws) else None,
        "train_quantiles": _quantiles(s_train),
        "holdout_quantiles": _quantiles(s_hold),
        "holdout_median": median,
        **rule,
        "threshold_rule": f"score_samples < holdout q{THRESHOLD_QUANTILE:g} - "
        f"{THRESHOLD_MARGIN:g} * (holdout median - holdout q0.001), or a "
        f"feature > {RANGE_MARGIN:g} IQR beyond its training range",
        "train_outlier_fraction": float(np.mean(train_m > 0)),
        "holdout_outlier_fraction": float(np.mean(hold_m > 0)),
        "holdout_iforest_outlier_fraction": float(np.mean(s_hold < threshold)),
        "feature_medians": dict(zip(names, map(float, scaler.center_), strict=True)),
        "feature_scales": dict(zip(names, map(float, scaler.scale_), strict=True)),
    }
    return TrainedModel(
        kind,
        _utc(trained_from),
        _utc(trained_to),
        float(lengths.pop()),
        names,
        params,
        metrics,
        pipeline,
    )


# -- registry ----------------------------------------------------------------------------


def save_model(conn: psycopg.Connection[Any], model: TrainedModel) -> int:
    """Store ``model`` as a new version (also set on ``model``); return the version.

    The pipeline is pickled: models only ever come from our own database, written by this
    function. The sha256 guards against corruption, not against a hostile writer with
    access to the database (who could run code in any service that loads models).
    """
    blob = pickle.dumps(model.pipeline, protocol=pickle.HIGHEST_PROTOCOL)
    model.version = stored_models.insert_model(
        conn,
        kind=model.kind.value,
        algorithm=model.algorithm,
        trained_from=model.trained_from,
        trained_to=model.trained_to,
        window_s=round(model.window_s),
        features=list(model.features),
        params=model.params,
        metrics=model.metrics,
        model=blob,
        sha256=hashlib.sha256(blob).digest(),
    )
    return model.version


def load_latest(conn: psycopg.Connection[Any]) -> dict[DeviceKind, TrainedModel]:
    """The newest stored model of each kind; :class:`ModelIntegrityError` if its bytes
    do not match their sha256 (checked before unpickling)."""
    out: dict[DeviceKind, TrainedModel] = {}
    for row in stored_models.latest_models(conn):
        data = row.model
        if hashlib.sha256(data).digest() != row.sha256:
            raise ModelIntegrityError(
                f"analytics model version {row.version} ({row.kind}): stored bytes do not "
                "match their sha256; retrain or delete the row"
            )
        pipeline = pickle.loads(data)  # our own, verified bytes (see save_model)
        k = DeviceKind(row.kind)
        out[k] = TrainedModel(
            k,
            row.trained_from,
            row.trained_to,
            float(row.window_s),
            tuple(row.features),
            dict(row.params),
            dict(row.metrics),
            pipeline,
            row.algorithm,
            row.version,
        )
    return out


def latest_versions(conn: psycopg.Connection[Any]) -> dict[DeviceKind, int]:
    """The newest version number of each kind (cheap: for polling)."""
    return {DeviceKind(kind): v for kind, v in stored_models.latest_versions(conn).items()}


def train_from_database(
    conn: psycopg.Connection[Any],
    profiles: Mapping[str, DeviceProfile],
    *,
    start: datetime | float,
    end: datetime | float,
    window_s: float = 900,
    seed: int = 0,
    chunk_rows: int = 50_000,
) -> list[TrainedModel]:
    """Train and save a model per kind with enough windows in telemetry ``start <= ts <
    end``; return the saved models (kinds with too few windows are skipped and logged)."""
    t0, t1 = _utc(start), _utc(end)
    featurizer = WindowFeaturizer(profiles, window_s)
    windows: list[FeatureWindow] = []
    for rows in telemetry_between(conn, t0, t1, chunk_rows):
        windows += featurizer.update(TelemetryFrame.from_rows(rows))
    models: list[TrainedModel] = []
    for kind in KINDS:
        n = sum(1 for w in windows if w.kind is kind)
        if n < MIN_TRAINING_WINDOWS:
            log.info("%s: %d windows, too few to train (need %d)", kind, n, MIN_TRAINING_WINDOWS)
            continue
        models.append(train_kind(windows, kind, trained_from=t0, trained_to=t1, seed=seed))
    with conn.transaction():
        for m in models:
            save_model(conn, m)
    return models


# -- scoring -----------------------------------------------------------------------------

#: How explanations show each feature: label, unit, and whether it is relative to the
#: device's pressure reference (then shown in kPa).
_DISPLAY: dict[str, tuple[str, str, bool]] = {
    "pressure_mean_rel": ("pressure", "kPa", True),
    "pressure_std_rel": ("pressure std", "kPa", True),
    "pressure_range_rel": ("pressure range", "kPa", True),
    "pressure_slope_rel_per_h": ("pressure slope", "kPa/h", True),
    "jockey_duty": ("jockey duty", "", False),
    "jockey_starts_per_h": ("jockey starts", "/h", False),
    "pump_duty": ("pump duty", "", False),
    "level_slope_m_per_h": ("tank level slope", " m/h", False),
    "room_temp_dev_c": ("pump-room temperature vs usual", " °C", False),
    "coverage": ("points received vs expected", "", False),
    "port_over_ambient_max_c": ("hottest port above ambient", " °C", False),
    "port_temp_slope_max_c_per_min": ("fastest port warming", " °C/min", False),
    "current_max_rel": ("max current / rating", "", False),
    "charging_fraction": ("ports charging", "", False),
    "port_over_median_max_c": ("hottest port above the shed median", " °C", False),
    "smoke_fraction": ("smoke", "", False),
    "ambient_slope_c_per_h": ("ambient slope", " °C/h", False),
}


def _show(name: str, value: float, ref_kpa: float) -> str:
    _, unit, rel = _DISPLAY.get(name, (name, "", False))
    if rel:
        return f"{value * ref_kpa:.3g} {unit}"
    if not unit and name != "jockey_starts_per_h":
        return f"{value:.2f}"
    return f"{value:.3g}{unit}"


def _explain(
    window: FeatureWindow, z: F64, model: TrainedModel, top: int = 3
) -> tuple[str, list[str]]:
    """The window's most deviating features (robust-scaled units) as text, and their names."""
    medians = model.metrics.get("feature_medians", {})
    lo = np.asarray(model.metrics.get("z_low", np.full(len(z), -np.inf)), np.float64)
    hi = np.asarray(model.metrics.get("z_high", np.full(len(z), np.inf)), np.float64)
    excess = np.maximum(np.maximum(lo - z, z - hi), 0.0)
    rank = np.where(excess > 0, 1e6 + excess, np.abs(z))  # beyond the training range first
    order = np.argsort(-rank, kind="stable")[:top]
    names = [model.features[i] for i in order.tolist() if rank[i] >= 1.0] or [
        model.features[int(order[0])]
    ]
    ref = window.context.get("pressure_ref_kpa", 1.0)
    parts = []
    for name in names:
        i = model.features.index(name)
        label = _DISPLAY.get(name, (name, "", False))[0]
        typical = float(medians.get(name, np.nan))
        parts.append(
            f"{label} {_show(name, float(window.features[i]), ref)}"
            f" (typical {_show(name, typical, ref)})"
        )
    minutes = (window.end - window.start) / 60
    return f"unusual {minutes:g}-min window: " + ", ".join(parts), names


class ModelScorer:
    """Featurize batches and score closed windows with the kind's model; outlier windows
    of a device become one :class:`Anomaly` episode while they follow each other."""

    def __init__(
        self,
        profiles: Mapping[str, DeviceProfile],
        models: Mapping[DeviceKind, TrainedModel],
        window_s: float = 900,
    ) -> None:
        self.featurizer = WindowFeaturizer(profiles, window_s)
        self.models: dict[DeviceKind, TrainedModel] = {}
        self.episodes: dict[str, Anomaly] = {}  # device_id -> open episode
        self.set_models(models)

    @property
    def profiles(self) -> Mapping[str, DeviceProfile]:
        return self.featurizer.profiles

    @profiles.setter
    def profiles(self, profiles: Mapping[str, DeviceProfile]) -> None:
        """A new registry snapshot (the featurizer follows it)."""
        self.featurizer.set_profiles(profiles)

    def set_models(self, models: Mapping[DeviceKind, TrainedModel]) -> None:
        """Swap the models (open episodes continue under the new version)."""
        for kind, m in models.items():
            if m.kind is not kind or tuple(m.features) != FEATURES.get(kind):
                raise ValueError(f"model v{m.version} does not fit kind {kind}'s features")
            if abs(m.window_s - self.featurizer.window_s) > 1e-6:
                raise ValueError(
                    f"model v{m.version} uses {m.window_s:g} s windows, the scorer "
                    f"{self.featurizer.window_s:g} s"
                )
        self.models = dict(models)

    def update(self, frame: TelemetryFrame) -> list[Anomaly]:
        """Featurize a batch; the episodes opened, extended or closed by its windows."""
        return self.score_windows(self.featurizer.update(frame))

    def score_windows(self, windows: Sequence[FeatureWindow]) -> list[Anomaly]:
        """Score windows (one ``score_samples`` call per kind); see :meth:`update`."""
        scored: list[tuple[FeatureWindow, float, float, F64, TrainedModel]] = []
        for kind, model in self.models.items():
            ws = [w for w in windows if w.kind is kind]
            if not ws:
                continue
            s, z, m = model.assess(np.vstack([w.features for w in ws]))
            scored += [(w, float(s[i]), float(m[i]), z[i], model) for i, w in enumerate(ws)]
        scored.sort(key=lambda r: (r[0].start, r[0].device_id))
        out: list[Anomaly] = []
        for w, score, margin, z_row, model in scored:
            out += [
                replace(a, evidence=dict(a.evidence))
                for a in self._observe(w, score, margin, z_row, model)
            ]
        return out

    def _observe(
        self, w: FeatureWindow, s: float, m: float, z: F64, model: TrainedModel
    ) -> list[Anomaly]:
        """The episode changes of one scored window (closed and/or opened / extended)."""
        out: list[Anomaly] = []
        ep = self.episodes.get(w.device_id)
        normal = not m > 0
        if ep is not None and (normal or w.start - ep.last_at > w.end - w.start):
            # a normal window ends the episode at its start; a gap of more than one
            # window (the device was silent) ends it at its last outlier window
            del self.episodes[w.device_id]
            if int(ep.evidence.get("windows", 1)) >= MIN_WINDOWS:  # it was raised: close it
                ep.ended_at = w.start if normal else ep.last_at
                ep.revision += 1
                out.append(ep)
            ep = None
        if normal:
            return out
        score = 0.5 + 0.5 * (1.0 - math.exp(-m))
        severity = Severity.MEDIUM if m >= 1.0 else Severity.LOW
        text, top = _explain(w, z, model)
        medians = model.metrics.get("feature_medians", {})
        evidence = {
            "window_start": w.start,
            "window_end": w.end,
            "n_points": w.n_points,
            "features": dict(zip(model.features, map(float, w.features), strict=True)),
            "typical": {n: medians.get(n) for n in top},
            "robust_z": {n: float(z[model.features.index(n)]) for n in top},
            "score_samples": s,
            "threshold": model.threshold,
            "margin": m,
            "context": dict(w.context),
        }
        if ep is None:
            prof = self.profiles.get(w.device_id)
            ep = Anomaly(
                device_id=w.device_id,
                unit_id=prof.unit_id if prof else "",
                detector=DETECTOR,
                kind=ANOMALY_KIND,
                metric="window",
                component="",
                origin=Origin.INFERRED,
                severity=severity,
                score=score,
                started_at=w.start,
                detected_at=w.end,
                last_at=w.end,
                explanation=text,
                evidence=evidence | {"windows": 1},
                model_version=model.version,
            )
            self.episodes[w.device_id] = ep
            if MIN_WINDOWS > 1:
                return out  # pending until the next window says the same
        else:
            ep.last_at, ep.revision, ep.model_version = w.end, ep.revision + 1, model.version
            count = int(ep.evidence.get("windows", 1)) + 1
            if score > ep.score:  # keep the worst window's explanation and evidence
                ep.score, ep.severity, ep.explanation = score, severity, text
                ep.evidence = evidence
            ep.evidence["windows"] = count
            if count < MIN_WINDOWS:
                return out
            if count == MIN_WINDOWS:  # raised now: this is its first revision
                ep.detected_at, ep.revision = w.end, 1
        out.append(ep)
        return out

    def state(self) -> dict[str, Any]:
        """Featurizer state plus open episodes (numpy arrays and JSON-able values)."""
        eps = [anomaly_to_json(a) for a in self.episodes.values()]
        return {"featurizer": self.featurizer.state(), "episodes": eps}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.featurizer.restore(state["featurizer"])
        self.episodes = {}
        for d in state["episodes"]:
            a = anomaly_from_json(d)
            self.episodes[a.device_id] = a
