"""Offline evaluation: a simulator scenario through the detectors, scored against its labels.

``firewatch analytics evaluate --scenario FILE --seed S [--json OUT]`` runs, with no
broker and no database:

1. the scenario's city and faults for its span, preceded by a fault-free **warm-up**
   (default two days) of the same city in one continuous simulation, so the detectors
   start the scored span with history — as a running service would — and the stream
   never jumps between the two parts;
2. every message through ingest's own :func:`~firewatch.ingest.codec.decode` (the same
   validation, rows and dead letters the service stores), in slices of ``batch_s``
   simulated seconds, each slice one :class:`~firewatch.analytics.frames.Batch` whose
   clock is the slice's end;
3. at the end of the warm-up, one IsolationForest per device kind trained on the
   warm-up's feature windows (as ``firewatch analytics train`` does from stored history);
4. the final revision of every anomaly episode detected in the scored span, matched with
   the labels by :func:`~firewatch.lab.eval_metrics.evaluate_detections` — alerts in a
   planned maintenance window (scenarios with ``[realism]``) counted apart, and figures
   per detector over the device-hours of the kinds each can see — plus the
   two domain targets: thermal-runaway precursors flagged before the port reaches 65 °C,
   leaks flagged before pressure falls below the building's minimum.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from firewatch.analytics.engine import DetectorEngine
from firewatch.analytics.features import WindowFeaturizer
from firewatch.analytics.frames import Batch, TelemetryFrame
from firewatch.analytics.learned_models import TrainedModel, train_kind
from firewatch.analytics.profiles import DeviceProfile, profiles_from_city
from firewatch.core.anomalies import Anomaly, AnomalyKey
from firewatch.core.domain import DeviceKind
from firewatch.core.rows import DeadLetter, EventRow, StatusRow, TelemetryRow
from firewatch.core.settings import Settings
from firewatch.ingest.codec import DeviceInfo, Limits, decode
from firewatch.lab.eval_metrics import EvaluationReport, MatchConfig, evaluate_detections
from firewatch.simulators.engine import Simulation, scenario_window
from firewatch.simulators.model import Label, iso
from firewatch.simulators.scenario import load_scenario

#: Anomaly kinds each fault type is meant to raise: used only to attribute false alerts
#: to fault types in the per-fault figures (matching itself is by device and time).
EXPECTED_KINDS: dict[str, frozenset[str]] = {
    "pipe_leak": frozenset({"pressure_deviation", "jockey_short_cycling", "low_pressure",
                            "unusual_behaviour"}),
    "pipe_burst": frozenset({"sudden_drop", "low_pressure", "pressure_deviation"}),
    "pump_failure": frozenset({"pressure_deviation", "low_pressure", "unusual_behaviour"}),
    "closed_valve": frozenset({"low_pressure", "sudden_drop", "pressure_deviation"}),
    "tank_draining": frozenset({"low_tank_level", "unusual_behaviour"}),
    "stuck_sensor": frozenset({"stuck_sensor"}),
    "sensor_drift": frozenset({"pressure_deviation", "temperature_deviation", "stuck_sensor",
                               "abnormal_heating", "hotter_than_peers", "unusual_behaviour"}),
    "dropout": frozenset({"device_silent"}),
    "thermal_runaway_precursor": frozenset({"abnormal_heating", "hotter_than_peers",
                                            "rapid_temperature_rise", "port_overheat"}),
    "over_current": frozenset({"over_current"}),
    "charging_outside_hours": frozenset({"charging_outside_hours"}),
    "shed_smoke": frozenset({"smoke"}),
    "real_fire_cascade": frozenset({"fire_alarm"}),
    "false_alarm_storm": frozenset({"false_alarm_storm"}),
    "offline_with_will": frozenset({"device_offline"}),
    "offline_without_will": frozenset({"device_silent"}),
    "clock_skew": frozenset({"clock_skew"}),
    "malformed_payload": frozenset({"malformed_payloads"}),
}  # fmt: skip


@dataclass
class EvaluationRun:
    """Everything one evaluation produced."""

    report: EvaluationReport
    anomalies: list[Anomaly]
    labels: list[Label]
    targets: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    strict: EvaluationReport | None = None  # device-reported conditions counted as false

    def to_json(self) -> dict[str, Any]:
        out = {**self.report.to_json(), "targets": self.targets, "run": self.info}
        if self.strict is not None:
            keys = (
                "precision",
                "recall",
                "f1",
                "false_alerts",
                "false_alerts_per_1000_device_hours",
            )
            strict = self.strict.to_json()
            out["reported_counted_as_false"] = {k: strict[k] for k in keys}
        return out

    def format_text(self) -> str:
        t = self.targets
        lines = [self.report.format_text(), ""]
        for name, v in t.items():
            lines.append(f"target {name}: {v['met']}/{v['labels']} " + v["description"])
        if self.strict is not None:
            st = self.strict
            lines.append(
                f"counting the {len(self.report.reported_unlabelled)} device-reported, unlabelled "
                f"conditions as false alerts too: precision {st.precision:.3f}, F1 {st.f1:.3f}"
            )
        i = self.info
        lines.append(
            f"{i['messages']} messages ({i['points']} points) through the detectors in "
            f"{i['detector_seconds']:.1f} s: {i['points_per_s']:,.0f} points/s"
        )
        return "\n".join(lines)


def _rows(
    sim: Simulation, settings: Settings
) -> Iterator[tuple[float, TelemetryRow | EventRow | StatusRow | DeadLetter]]:
    lookup = {d.id: DeviceInfo(d.unit_id, d.kind) for d in sim.devices}.get
    limits = Limits.from_settings(settings)
    for m in sim.messages():
        rx = datetime.fromtimestamp(m.t, UTC)
        yield m.t, decode(m.topic, m.payload, rx, root=sim.root, lookup=lookup, limits=limits)


def batches(sim: Simulation, settings: Settings, batch_s: float) -> Iterator[Batch]:
    """The simulation's stream as decoded batches of ``batch_s`` simulated seconds."""
    tele: list[TelemetryRow] = []
    events: list[EventRow] = []
    statuses: list[StatusRow] = []
    dead: list[DeadLetter] = []
    edge = sim.start + batch_s

    def flush(now: float) -> Batch:
        b = Batch(now, TelemetryFrame.from_rows(tele), list(events), list(statuses), list(dead))
        for rows in (tele, events, statuses, dead):
            rows.clear()
        return b

    for t, item in _rows(sim, settings):
        while t >= edge:
            yield flush(edge)
            edge += batch_s
        if isinstance(item, TelemetryRow):
            tele.append(item)
        elif isinstance(item, EventRow):
            events.append(item)
        elif isinstance(item, StatusRow):
            statuses.append(item)
        else:
            dead.append(item)
    yield flush(edge)


class _Targets:
    """Watches the stream for the two domain targets' reference times."""

    def __init__(self, labels: list[Label], profiles: Mapping[str, DeviceProfile]) -> None:
        self.thermal = [lb for lb in labels if lb.fault == "thermal_runaway_precursor"]
        self.leaks = [lb for lb in labels if lb.fault == "pipe_leak"]
        self.hot_at: dict[int, float] = {}  # label index -> first time port >= 65 °C
        self.low_at: dict[int, float] = {}  # label index -> first time pressure < minimum
        self.profiles = profiles

    def watch(self, f: TelemetryFrame) -> None:
        if not len(f):
            return
        devices = np.array(f.device)
        for i, lb in enumerate(self.thermal):
            if i in self.hot_at:
                continue
            alarm = self.profiles[lb.device_id].thresholds.port_alarm_c
            port = int(lb.details.get("port", 0))
            for r in np.flatnonzero(devices == lb.device_id).tolist():
                a, b = int(f.port_offsets[r]), int(f.port_offsets[r + 1])
                hit = (f.port_no[a:b] == port) & (f.port_temp[a:b] >= alarm)
                if hit.any() and lb.start <= f.ts[r] <= lb.end:
                    self.hot_at[i] = float(f.received[r])
                    break
        for i, lb in enumerate(self.leaks):
            if i in self.low_at:
                continue
            minimum = self.profiles[lb.device_id].thresholds.min_kpa or 0.0
            for r in np.flatnonzero(devices == lb.device_id).tolist():
                if f.pressure[r] < minimum and lb.start <= f.ts[r] <= lb.end:
                    self.low_at[i] = float(f.received[r])
                    break

    def report(self, report: EvaluationReport) -> dict[str, Any]:
        first = {id(o.label): o.first for o in report.outcomes}

        def judge(labels: list[Label], ref: dict[int, float]) -> dict[str, Any]:
            rows = []
            for i, lb in enumerate(labels):
                a = first.get(id(lb))
                at = ref.get(i)
                met = a is not None and (at is None or a.detected_at < at)
                rows.append(
                    {
                        "device_id": lb.device_id,
                        "start": iso(lb.start),
                        "detected_at": iso(a.detected_at) if a else None,
                        "threshold_crossed_at": iso(at) if at is not None else None,
                        "met": met,
                    }
                )
            return {"labels": len(labels), "met": sum(r["met"] for r in rows), "cases": rows}

        return {
            "precursor_before_65c": {
                **judge(self.thermal, self.hot_at),
                "description": "thermal-runaway precursors flagged before the port reached "
                "its alarm temperature (65 °C)",
            },
            "leak_before_minimum": {
                **judge(self.leaks, self.low_at),
                "description": "leaks flagged before pressure fell below the building's minimum",
            },
        }


def _train(
    windows: list[Any], start: float, end: float, seed: int
) -> dict[DeviceKind, TrainedModel]:
    models: dict[DeviceKind, TrainedModel] = {}
    for kind in (DeviceKind.WATER, DeviceKind.EBIKE_SHED):
        try:
            models[kind] = train_kind(windows, kind, trained_from=start, trained_to=end, seed=seed)
        except ValueError:
            continue  # too little history of this kind: its model stays off
    return models


def evaluate_scenario(
    scenario_ref: str | Path,
    *,
    seed: int | None = None,
    settings: Settings | None = None,
    warmup_s: float = 2 * 86_400.0,
    batch_s: float = 60.0,
    use_models: bool = True,
    config: MatchConfig | None = None,
) -> EvaluationRun:
    """Run the evaluation described in the module docstring. Raises ``ValueError`` for a
    scenario without a fixed start and duration (an offline run needs both)."""
    settings = settings or Settings()
    scenario = load_scenario(str(scenario_ref))
    start, end = scenario_window(scenario, live=False)
    assert end is not None
    scored = Simulation(scenario, start=start, end=end, seed=seed, root=settings.topic_root)
    sim = scored
    if warmup_s > 0:
        sim = Simulation(
            scenario, start=start - warmup_s, end=end, seed=seed, root=settings.topic_root
        )
        sim.faults, sim.labels = scored.faults, scored.labels  # same faults, same times
        sim.maintenance = scored.maintenance  # planned work only in the scored span
    profiles = profiles_from_city(sim.city, settings)
    engine = DetectorEngine(settings, profiles)
    targets = _Targets(scored.labels, profiles)
    featurizer = WindowFeaturizer(profiles) if use_models and warmup_s > 0 else None
    windows: list[Any] = []
    final: dict[AnomalyKey, Anomaly] = {}
    messages = points = 0
    trained = warmup_s <= 0 or not use_models
    models: dict[DeviceKind, TrainedModel] = {}
    started = time.perf_counter()
    for batch in batches(sim, settings, batch_s):
        if not trained and batch.now > start:
            models = _train(windows, sim.start, start, seed or 0)
            engine.set_models(models)
            trained = True
        if featurizer is not None and not trained:
            windows += featurizer.update(batch.telemetry)
        if batch.now > start:
            targets.watch(batch.telemetry)
        for a in engine.process(batch):
            final[a.key] = a
        messages += len(batch)
        points += batch.points()
    wall = time.perf_counter() - started
    anomalies = sorted(final.values(), key=lambda a: (a.detected_at, a.device_id))
    kinds = {d.kind for d in sim.devices}
    n_devices = len(sim.devices)
    hours = (end - start) / 3600.0
    by_kind = {k.value: hours * sum(d.kind is k for d in sim.devices) for k in kinds}
    config = config or MatchConfig()

    def score(cfg: MatchConfig) -> EvaluationReport:
        return evaluate_detections(
            scored.labels,
            anomalies,
            device_hours=n_devices * (end - start) / 3600.0,
            window=(start, end),
            expected_kinds=EXPECTED_KINDS,
            config=cfg,
            maintenance=scored.maintenance,
            device_hours_by_kind=by_kind,
        )

    report = score(config)
    strict = score(dataclasses.replace(config, count_reported_as_false=True))
    info = {
        "scenario": str(scenario_ref),
        "seed": scored.seed,
        "start": iso(start),
        "end": iso(end),
        "warmup_s": warmup_s,
        "batch_s": batch_s,
        "devices": n_devices,
        "device_kinds": sorted(k.value for k in kinds),
        "device_hours_by_kind": {k: round(v, 3) for k, v in sorted(by_kind.items())},
        "realism": scenario.realism is not None,
        "maintenance": [m.to_json() for m in scored.maintenance],
        "messages": messages,
        "points": points,
        "wall_seconds": round(wall, 2),
        "detector_seconds": round(engine.stats.seconds, 2),
        "points_per_s": round(points / max(engine.stats.seconds, 1e-9)),
        "models": {
            k.value: {"windows": m.metrics.get("n_train"), "threshold": m.threshold}
            for k, m in models.items()
        },
    }
    return EvaluationRun(report, anomalies, scored.labels, targets.report(report), info, strict)
