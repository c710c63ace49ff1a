"""The figures of an evaluation report: per fault type (:class:`Figures`) and — the
operators' view of detection quality — per detector (:class:`DetectorFigures`).

Pure functions, no I/O. For each ``Anomaly.detector`` (``rule.pressure_low``,
``stat.shift``, ``model.iforest`` …) among the evaluated anomalies,
:func:`detector_figures` gives what an operator of the monitoring center lives with:

``device_kinds`` and ``device_hours``
    The devices the detector can see — by device kind, from :data:`DETECTOR_KINDS` (the
    first prefix that matches; a detector matching none, e.g. ``link.*``, sees every kind)
    — and their device-hours in the scored window: the false-alert rate's denominator. A
    tank-only rule (``rule.level_low``) is counted over all fire-water devices, a
    port rule over whole sheds (not ports).
``false_alerts_per_1000_device_hours``
    ``false_alerts / device_hours * 1000`` (``None`` when ``device_hours`` is 0). False
    alerts are the report's (unmatched, not device-reported, not in a maintenance window).
``matched_anomalies``, ``labels_detected``, ``first_detections``
    Its anomalies assigned to a label; the labels it matched at least once; the labels it
    was the first (earliest ``detected_at``, ties to the first listed) to match.
``delay_median_s``
    For each label it matched, its own first ``detected_at`` minus the label's start,
    clipped at 0 — the median (``numpy.percentile`` 50, linear interpolation) over those
    labels; ``None`` when it matched none. So a detector that is always second still shows
    how late it is.
``reported_unlabelled``, ``during_maintenance``
    Its anomalies that are neither matches nor false alerts (see ``eval_metrics``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from firewatch.core.anomalies import Anomaly
from firewatch.simulators.model import Label, iso

if TYPE_CHECKING:
    from firewatch.lab.eval_metrics import LabelOutcome

WATER, SHED, PANEL = "water", "ebike_shed", "panel"
TELEMETRY = (WATER, SHED)

#: Detector-name prefix → the device kinds whose data it reads (first match wins).
DETECTOR_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rule.pressure_", (WATER,)),
    ("rule.level_", (WATER,)),
    ("rule.room_", (WATER,)),
    ("stat.jockey_", (WATER,)),
    ("rule.port_", (SHED,)),
    ("rule.over_current", (SHED,)),
    ("rule.charging_", (SHED,)),
    ("rule.smoke", (SHED,)),
    ("stat.port_", (SHED,)),
    ("stat.temp_rise", (SHED,)),
    ("panel.", (PANEL,)),
    ("unit.", (PANEL,)),
    ("stat.", TELEMETRY),
    ("model.", TELEMETRY),
)


def kinds_seen(detector: str, all_kinds: Sequence[str]) -> tuple[str, ...]:
    """The device kinds (among ``all_kinds``) that ``detector`` can see."""
    for prefix, kinds in DETECTOR_KINDS:
        if detector.startswith(prefix):
            return tuple(k for k in kinds if k in all_kinds)
    return tuple(sorted(all_kinds))


@dataclass(frozen=True)
class DetectorFigures:
    """One detector's figures (definitions in the module docstring)."""

    detector: str
    device_kinds: tuple[str, ...]
    device_hours: float
    anomalies: int
    matched_anomalies: int
    labels_detected: int
    first_detections: int
    false_alerts: int
    reported_unlabelled: int
    during_maintenance: int
    false_alerts_per_1000_device_hours: float | None
    delay_median_s: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "device_kinds": list(self.device_kinds),
            "device_hours": round_or_none(self.device_hours, 3),
            "anomalies": self.anomalies,
            "matched_anomalies": self.matched_anomalies,
            "labels_detected": self.labels_detected,
            "first_detections": self.first_detections,
            "false_alerts": self.false_alerts,
            "false_alerts_per_1000_device_hours": round_or_none(
                self.false_alerts_per_1000_device_hours, 4
            ),
            "reported_unlabelled": self.reported_unlabelled,
            "during_maintenance": self.during_maintenance,
            "median_delay_s": round_or_none(self.delay_median_s, 1),
        }


def detector_figures(
    outcomes: Sequence[LabelOutcome],
    false_alerts: Sequence[Anomaly],
    reported_unlabelled: Sequence[Anomaly],
    during_maintenance: Sequence[Anomaly],
    device_hours_by_kind: Mapping[str, float],
) -> dict[str, DetectorFigures]:
    """Per-detector figures, sorted by detector name (module docstring)."""
    names: set[str] = set()
    delays: dict[str, list[float]] = {}
    matched: dict[str, int] = {}
    first: dict[str, int] = {}
    for o in outcomes:
        own: dict[str, float] = {}
        for a in o.matched:
            names.add(a.detector)
            matched[a.detector] = matched.get(a.detector, 0) + 1
            own.setdefault(a.detector, a.detected_at)  # matched is sorted by detected_at
        for det, at in own.items():
            delays.setdefault(det, []).append(max(0.0, at - o.label.start))
        if o.first is not None:
            first[o.first.detector] = first.get(o.first.detector, 0) + 1

    def count(items: Sequence[Anomaly]) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in items:
            names.add(a.detector)
            out[a.detector] = out.get(a.detector, 0) + 1
        return out

    false, reported, maint = (
        count(false_alerts),
        count(reported_unlabelled),
        count(during_maintenance),
    )
    all_kinds = sorted(device_hours_by_kind)
    figures: dict[str, DetectorFigures] = {}
    for det in sorted(names):
        kinds = kinds_seen(det, all_kinds)
        hours = float(sum(device_hours_by_kind[k] for k in kinds))
        fa = false.get(det, 0)
        d = delays.get(det, [])
        figures[det] = DetectorFigures(
            detector=det,
            device_kinds=kinds,
            device_hours=hours,
            anomalies=matched.get(det, 0) + fa + reported.get(det, 0) + maint.get(det, 0),
            matched_anomalies=matched.get(det, 0),
            labels_detected=len(d),
            first_detections=first.get(det, 0),
            false_alerts=fa,
            reported_unlabelled=reported.get(det, 0),
            during_maintenance=maint.get(det, 0),
            false_alerts_per_1000_device_hours=fa / hours * 1000.0 if hours > 0 else None,
            delay_median_s=float(np.percentile(d, 50)) if d else None,
        )
    return figures


def format_detector_table(figures: Mapping[str, DetectorFigures]) -> list[str]:
    """The per-detector figures as text lines (a header, a rule, one line per detector)."""
    if not figures:
        return ["per detector: no anomalies"]
    width = max(len("detector"), *(len(d) for d in figures))
    header = (
        f"{'detector':<{width}} {'kinds':<18} {'dev_h':>8} {'match':>6} {'labels':>6} "
        f"{'first':>6} {'false':>6} {'FA/1kdh':>8} {'maint':>6} {'med_s':>8}"
    )
    lines = ["per detector (false alerts per 1,000 device-hours of the kinds it sees):", header]
    lines.append("-" * len(header))
    for det, f in figures.items():
        lines.append(
            f"{det:<{width}} {','.join(f.device_kinds):<18} {f.device_hours:>8.1f} "
            f"{f.matched_anomalies:>6} {f.labels_detected:>6} {f.first_detections:>6} "
            f"{f.false_alerts:>6} {fmt(f.false_alerts_per_1000_device_hours, 2):>8} "
            f"{f.during_maintenance:>6} {fmt(f.delay_median_s, 1):>8}"
        )
    return lines


@dataclass(frozen=True)
class Figures:
    """The detection figures of one group of labels (all of them, or one fault type)."""

    labels: int
    detected: int
    matched_anomalies: int
    false_alerts: int
    precision: float
    recall: float
    f1: float
    false_alerts_per_1000_device_hours: float | None
    delay_median_s: float | None
    delay_p95_s: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "detected": self.detected,
            "matched_anomalies": self.matched_anomalies,
            "false_alerts": self.false_alerts,
            "precision": round_or_none(self.precision, 4),
            "recall": round_or_none(self.recall, 4),
            "f1": round_or_none(self.f1, 4),
            "false_alerts_per_1000_device_hours": round_or_none(
                self.false_alerts_per_1000_device_hours, 4
            ),
            "detection_delay_s": {
                "median": round_or_none(self.delay_median_s, 1),
                "p95": round_or_none(self.delay_p95_s, 1),
            },
        }


def figures_of(outcomes: Sequence[LabelOutcome], false_alerts: int, device_hours: float) -> Figures:
    """The :class:`Figures` of ``outcomes`` (definitions in ``eval_metrics``)."""
    matched = sum(len(o.matched) for o in outcomes)
    detected = sum(1 for o in outcomes if o.detected)
    precision = matched / (matched + false_alerts) if matched + false_alerts else 1.0
    recall = detected / len(outcomes) if outcomes else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    rate = false_alerts / device_hours * 1000.0 if device_hours > 0 else None
    delays = [o.delay_s for o in outcomes if o.delay_s is not None]
    return Figures(
        labels=len(outcomes),
        detected=detected,
        matched_anomalies=matched,
        false_alerts=false_alerts,
        precision=precision,
        recall=recall,
        f1=f1,
        false_alerts_per_1000_device_hours=rate,
        delay_median_s=float(np.percentile(delays, 50)) if delays else None,
        delay_p95_s=float(np.percentile(delays, 95)) if delays else None,
    )


def in_window(a: Anomaly, windows: Sequence[Label], tolerance_s: float, grace_s: float) -> bool:
    """Whether ``a`` was detected on the device of one of ``windows`` (maintenance
    labels) between ``tolerance_s`` before its start and ``grace_s`` after its end."""
    return any(
        w.device_id == a.device_id and w.start - tolerance_s <= a.detected_at <= w.end + grace_s
        for w in windows
    )


def round_or_none(x: float | None, ndigits: int) -> float | None:
    return None if x is None else round(float(x), ndigits)


def fmt(x: float | None, ndigits: int) -> str:
    return "-" if x is None else f"{x:.{ndigits}f}"


def label_summary(label: Label) -> dict[str, Any]:
    return {
        "device_id": label.device_id,
        "unit_id": label.unit_id,
        "fault": label.fault,
        "severity": label.severity.value,
        "start": iso(label.start),
        "end": iso(label.end),
    }


def anomaly_summary(a: Anomaly) -> dict[str, Any]:
    return {
        "device_id": a.device_id,
        "detector": a.detector,
        "kind": a.kind,
        "origin": a.origin.value,
        "detected_at": iso(a.detected_at),
        "explanation": a.explanation,
    }
