"""Event-level detection metrics: detector anomalies scored against the simulator's labels.

Pure functions, no I/O. :func:`evaluate_detections` compares the anomaly episodes the
detectors produced (:class:`~firewatch.core.anomalies.Anomaly`) with the ground-truth fault
labels the simulator wrote (:class:`~firewatch.simulators.model.Label`). Times are Unix
seconds. The definitions, exactly as implemented:

Evaluation window
    Only anomalies whose ``detected_at`` lies in the half-open window
    ``[window_start, window_end)`` are evaluated. The others (detector warm-up, or after the
    run) are ignored entirely: they are neither matches nor false alerts, and are only
    counted as ``ignored_anomalies``. Labels are not filtered: the caller passes the labels
    of the evaluated run, which all lie within the window.

Matching
    An anomaly *can match* a label when both have the same ``device_id`` and the anomaly's
    ``detected_at`` lies in the closed interval
    ``[label.start - tolerance_s, label.end + grace_s]`` (:class:`MatchConfig`; defaults
    60 s and 900 s). An anomaly is assigned to at most one label. If it can match several,
    labels that started at or before ``detected_at`` are preferred, and among them the one
    whose start is closest before ``detected_at`` (the latest start); if none had started
    yet (detection within the tolerance before the start), the earliest start wins. Labels
    with equal starts are split by preferring one whose fault type's ``expected_kinds``
    contain the anomaly's ``kind``, then by the order in which labels were given. A label
    may be matched by any number of anomalies.

Detection and delay
    A label is *detected* if at least one anomaly is assigned to it. Its detection delay is
    ``min(detected_at of its anomalies) - label.start``, clipped at 0 (a detection within
    the tolerance before the start has delay 0).

False alerts and reported conditions
    An evaluated anomaly assigned to no label is a *false alert*, except when its
    ``origin`` is ``reported``: such an anomaly is a condition the device itself reported
    (e.g. a panel's natural false fire alarm, which the simulator does not label) and is
    counted as ``reported_unlabelled`` instead; it is neither a match nor a false alert.
    With ``MatchConfig.count_reported_as_false`` it is a false alert like any other (the
    strict figure) and ``reported_unlabelled`` is 0. Reported anomalies that are assigned to
    a label count as matches like any other.

Maintenance
    An evaluated anomaly assigned to no label whose device is in a planned maintenance
    window (``maintenance`` labels, same tolerance and grace as a fault) is counted as
    ``during_maintenance``: neither a match nor a false alert — an operator expects it
    suppressed or explained, and the report shows how many there were. Checked before the
    ``reported`` rule.

Overall figures
    ``anomalies`` = evaluated anomalies = ``matched_anomalies + false_alerts +
    reported_unlabelled + during_maintenance``.
    ``precision = matched_anomalies / (matched_anomalies + false_alerts)``, 1.0 when that
    denominator is 0 (no anomaly claimed anything). ``recall = detected / labels``, 1.0 when
    there are no labels (nothing could be missed). ``f1 = 2PR / (P + R)``, 0.0 when
    ``P + R == 0``. ``false_alerts_per_1000_device_hours = false_alerts / device_hours *
    1000``, ``None`` (JSON ``null``) when ``device_hours`` is 0. Precision is event-level
    over anomalies (episodes), recall over labels: several anomalies for one fault all count
    as matched anomalies.

Per fault type ``f``
    The fault types are those of the labels plus the keys of ``expected_kinds``. ``labels``
    and ``detected`` count the labels of type ``f``; ``matched_anomalies`` counts the
    anomalies assigned to labels of type ``f``; ``false_alerts`` counts the false alerts
    whose ``kind`` is in ``expected_kinds[f]``. A false alert is thus attributed to every
    fault type whose expected kinds contain its kind, and to none if no mapping contains it
    (it still counts overall), so per-fault false alerts need not add up to the overall
    figure. ``precision``, ``recall``, ``f1``, the false-alert rate and the delays follow
    the overall definitions restricted to these counts (rate over the same
    ``device_hours``).

Delay summary
    Median and 95th percentile of the delays of the detected labels, in seconds, by
    ``numpy.percentile`` with its default linear interpolation (the 95th percentile of
    ``[0, 120]`` is 114); ``None`` when no label was detected.

Per detector and per kind
    For each ``Anomaly.detector`` and each ``Anomaly.kind`` among the evaluated anomalies,
    the numbers of matched anomalies, false alerts, reported-unlabelled anomalies and
    anomalies during maintenance. With ``device_hours_by_kind``, also the operators' figures
    per detector (``detectors``: false alerts per 1,000 device-hours of the kinds it sees,
    labels detected, median delay), defined in :mod:`firewatch.lab.eval_detectors`.

JSON (:meth:`EvaluationReport.to_json`) rounds ratios and rates to 4 decimals, seconds to
1 decimal and device-hours to 3, and writes times as ISO 8601 UTC.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from firewatch.core.anomalies import Anomaly, Origin
from firewatch.lab.eval_detectors import (
    DetectorFigures,
    Figures,
    anomaly_summary,
    detector_figures,
    figures_of,
    fmt,
    format_detector_table,
    in_window,
    label_summary,
    round_or_none,
)
from firewatch.simulators.model import Label, iso

__all__ = [
    "MAX_FALSE_ALERT_EXAMPLES",
    "AnomalyCounts",
    "EvaluationReport",
    "Figures",
    "LabelOutcome",
    "MatchConfig",
    "evaluate_detections",
    "match_anomaly",
]

#: How many false alerts :meth:`EvaluationReport.to_json` lists as examples (earliest first).
MAX_FALSE_ALERT_EXAMPLES = 20


@dataclass(frozen=True)
class MatchConfig:
    """How anomalies are matched to labels (see the module docstring).

    ``tolerance_s`` is how long before a label's start a detection still counts,
    ``grace_s`` how long after its end; ``count_reported_as_false`` makes unmatched
    device-reported anomalies false alerts instead of ``reported_unlabelled``.
    """

    tolerance_s: float = 60.0
    grace_s: float = 900.0
    count_reported_as_false: bool = False

    def __post_init__(self) -> None:
        for name in ("tolerance_s", "grace_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")


@dataclass
class LabelOutcome:
    """What became of one label: ``matched`` holds its anomalies sorted by ``detected_at``
    (ties in input order), ``first`` is ``matched[0]`` and ``delay_s`` its clipped delay;
    ``first`` and ``delay_s`` are ``None`` and ``detected`` is false when nothing matched."""

    label: Label
    detected: bool
    delay_s: float | None
    first: Anomaly | None
    matched: list[Anomaly]


@dataclass(frozen=True)
class AnomalyCounts:
    """How the evaluated anomalies of one detector or one kind were classified."""

    matched: int = 0
    false_alerts: int = 0
    reported_unlabelled: int = 0
    during_maintenance: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "matched": self.matched,
            "false_alerts": self.false_alerts,
            "reported_unlabelled": self.reported_unlabelled,
            "during_maintenance": self.during_maintenance,
        }


@dataclass
class EvaluationReport:
    """The result of :func:`evaluate_detections`.

    ``outcomes`` follow the order of the labels given; ``false_alerts`` and
    ``reported_unlabelled`` are sorted by ``detected_at`` (ties in input order);
    ``anomalies`` counts the evaluated (in-window) anomalies, ``ignored_anomalies`` the
    others; ``per_fault``, ``per_detector`` and ``per_kind`` are sorted by key.
    """

    config: MatchConfig
    window: tuple[float, float]
    device_hours: float
    outcomes: list[LabelOutcome]
    anomalies: int
    ignored_anomalies: int
    false_alerts: list[Anomaly]
    reported_unlabelled: list[Anomaly]
    overall: Figures
    per_fault: dict[str, Figures]
    per_detector: dict[str, AnomalyCounts] = field(default_factory=dict)
    per_kind: dict[str, AnomalyCounts] = field(default_factory=dict)
    during_maintenance: list[Anomaly] = field(default_factory=list)
    maintenance_windows: int = 0
    detectors: dict[str, DetectorFigures] = field(default_factory=dict)

    @property
    def precision(self) -> float:
        return self.overall.precision

    @property
    def recall(self) -> float:
        return self.overall.recall

    @property
    def f1(self) -> float:
        return self.overall.f1

    @property
    def missed(self) -> list[Label]:
        """The labels no anomaly matched, sorted by start (ties in input order)."""
        return sorted((o.label for o in self.outcomes if not o.detected), key=lambda x: x.start)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable summary (see the module docstring for the figures)."""
        o = self.overall
        return {
            "window": {"start": iso(self.window[0]), "end": iso(self.window[1])},
            "config": {
                "tolerance_s": self.config.tolerance_s,
                "grace_s": self.config.grace_s,
                "count_reported_as_false": self.config.count_reported_as_false,
            },
            "device_hours": round_or_none(self.device_hours, 3),
            "labels": o.labels,
            "detected": o.detected,
            "anomalies": self.anomalies,
            "matched_anomalies": o.matched_anomalies,
            "false_alerts": o.false_alerts,
            "reported_unlabelled": len(self.reported_unlabelled),
            "maintenance_windows": self.maintenance_windows,
            "during_maintenance": len(self.during_maintenance),
            "ignored_anomalies": self.ignored_anomalies,
            "precision": round_or_none(o.precision, 4),
            "recall": round_or_none(o.recall, 4),
            "f1": round_or_none(o.f1, 4),
            "false_alerts_per_1000_device_hours": round_or_none(
                o.false_alerts_per_1000_device_hours, 4
            ),
            "detection_delay_s": {
                "median": round_or_none(o.delay_median_s, 1),
                "p95": round_or_none(o.delay_p95_s, 1),
            },
            "per_fault": {f: figs.to_json() for f, figs in self.per_fault.items()},
            "per_detector": {d: c.to_json() for d, c in self.per_detector.items()},
            "per_kind": {k: c.to_json() for k, c in self.per_kind.items()},
            "detectors": {d: f.to_json() for d, f in self.detectors.items()},
            "missed": [label_summary(label) for label in self.missed],
            "false_alert_examples": [
                anomaly_summary(a) for a in self.false_alerts[:MAX_FALSE_ALERT_EXAMPLES]
            ],
            "maintenance_alert_examples": [
                anomaly_summary(a) for a in self.during_maintenance[:MAX_FALSE_ALERT_EXAMPLES]
            ],
        }

    def format_text(self) -> str:
        """A compact human-readable table: the overall figures, one line per fault type,
        then the missed labels and up to :data:`MAX_FALSE_ALERT_EXAMPLES` false alerts."""
        cfg = self.config
        strict = ""
        if cfg.count_reported_as_false:
            strict = "; unlabelled reported anomalies count as false"
        lines = [
            f"window {iso(self.window[0])} – {iso(self.window[1])}, "
            f"{self.device_hours:.1f} device-hours; tolerance {cfg.tolerance_s:g} s, "
            f"grace {cfg.grace_s:g} s{strict}",
            f"anomalies {self.anomalies} evaluated: {self.overall.matched_anomalies} matched, "
            f"{self.overall.false_alerts} false alerts, "
            f"{len(self.reported_unlabelled)} reported unlabelled "
            f"({self.ignored_anomalies} outside the window ignored)",
        ]
        if self.maintenance_windows:
            lines.append(
                f"maintenance: {self.maintenance_windows} planned windows, "
                f"{len(self.during_maintenance)} anomalies in them (neither matched nor false)"
            )
        lines.append("")
        rows = [("overall", self.overall), *self.per_fault.items()]
        width = max(len("fault"), *(len(name) for name, _ in rows))
        header = (
            f"{'fault':<{width}} {'labels':>6} {'det':>5} {'match':>6} {'false':>6} "
            f"{'P':>6} {'R':>6} {'F1':>6} {'FA/1kdh':>8} {'med_s':>8} {'p95_s':>8}"
        )
        lines += [header, "-" * len(header)]
        for name, f in rows:
            lines.append(
                f"{name:<{width}} {f.labels:>6} {f.detected:>5} {f.matched_anomalies:>6} "
                f"{f.false_alerts:>6} {f.precision:>6.3f} {f.recall:>6.3f} {f.f1:>6.3f} "
                f"{fmt(f.false_alerts_per_1000_device_hours, 2):>8} "
                f"{fmt(f.delay_median_s, 1):>8} {fmt(f.delay_p95_s, 1):>8}"
            )
        if self.detectors:
            lines += ["", *format_detector_table(self.detectors)]
        missed = self.missed
        lines += ["", f"missed labels: {len(missed)}"]
        lines += [
            f"  {label.device_id} {label.fault} {iso(label.start)} – {iso(label.end)}"
            for label in missed
        ]
        shown = self.false_alerts[:MAX_FALSE_ALERT_EXAMPLES]
        lines += ["", f"false alerts: {len(self.false_alerts)} (first {len(shown)} shown)"]
        lines += [
            f"  {iso(a.detected_at)} {a.device_id} {a.detector} {a.kind}: {a.explanation}"
            for a in shown
        ]
        if self.during_maintenance:
            lines += ["", f"alerts during maintenance: {len(self.during_maintenance)}"]
            lines += [
                f"  {iso(a.detected_at)} {a.device_id} {a.detector} {a.kind}: {a.explanation}"
                for a in self.during_maintenance[:MAX_FALSE_ALERT_EXAMPLES]
            ]
        return "\n".join(lines)


def match_anomaly(
    anomaly: Anomaly,
    labels: Sequence[Label],
    config: MatchConfig = MatchConfig(),
    expected_kinds: Mapping[str, Collection[str]] | None = None,
) -> int | None:
    """The index in ``labels`` of the label ``anomaly`` is assigned to, or ``None``.

    Implements the matching rule of the module docstring (the evaluation window is not
    applied here).
    """
    kinds = expected_kinds or {}
    t = anomaly.detected_at
    best: tuple[bool, float, bool, int] | None = None
    for i, label in enumerate(labels):
        if label.device_id != anomaly.device_id:
            continue
        if not label.start - config.tolerance_s <= t <= label.end + config.grace_s:
            continue
        expected = anomaly.kind in kinds.get(label.fault, ())
        # started-later labels last; then the closest start; then the expected kind; order
        key = (label.start > t, abs(t - label.start), not expected, i)
        if best is None or key < best:
            best = key
    return None if best is None else best[3]


def evaluate_detections(
    labels: Sequence[Label],
    anomalies: Sequence[Anomaly],
    *,
    device_hours: float,
    window: tuple[float, float],
    expected_kinds: Mapping[str, Collection[str]],
    config: MatchConfig = MatchConfig(),
    maintenance: Sequence[Label] = (),
    device_hours_by_kind: Mapping[str, float] | None = None,
) -> EvaluationReport:
    """Score ``anomalies`` against ``labels`` by the definitions of the module docstring.

    ``maintenance``: planned maintenance windows (labels that are not faults);
    ``device_hours_by_kind``: device-hours of each device kind in the window, which turns
    on the per-detector figures (``EvaluationReport.detectors``).

    ``device_hours`` is the number of device-hours the window covers (the false-alert rate's
    denominator), ``window`` is ``(window_start, window_end)``, ``expected_kinds`` maps
    each fault type to the anomaly kinds that are expected for it (used to attribute false
    alerts to fault types). Raises ``ValueError`` if ``device_hours`` is negative or not
    finite, or the window ends before it starts.
    """
    if not math.isfinite(device_hours) or device_hours < 0:
        raise ValueError(f"device_hours must be a finite number ≥ 0, got {device_hours!r}")
    window_start, window_end = window
    if not window_start <= window_end:
        raise ValueError(f"window ends before it starts: {window!r}")

    by_device: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_device.setdefault(label.device_id, []).append(i)

    evaluated = [
        a
        for a in sorted(anomalies, key=lambda a: a.detected_at)
        if window_start <= a.detected_at < window_end
    ]
    ignored = len(anomalies) - len(evaluated)

    matches: list[list[Anomaly]] = [[] for _ in labels]
    false_alerts: list[Anomaly] = []
    reported: list[Anomaly] = []
    in_maintenance: list[Anomaly] = []
    per_detector: dict[str, Counter[str]] = {}
    per_kind: dict[str, Counter[str]] = {}
    for a in evaluated:
        indices = by_device.get(a.device_id, [])
        j = match_anomaly(a, [labels[i] for i in indices], config, expected_kinds)
        if j is not None:
            matches[indices[j]].append(a)
            outcome = "matched"
        elif in_window(a, maintenance, config.tolerance_s, config.grace_s):
            in_maintenance.append(a)
            outcome = "during_maintenance"
        elif a.origin == Origin.REPORTED and not config.count_reported_as_false:
            reported.append(a)
            outcome = "reported_unlabelled"
        else:
            false_alerts.append(a)
            outcome = "false_alerts"
        per_detector.setdefault(a.detector, Counter())[outcome] += 1
        per_kind.setdefault(a.kind, Counter())[outcome] += 1

    outcomes = [
        LabelOutcome(
            label=label,
            detected=bool(found),
            delay_s=max(0.0, found[0].detected_at - label.start) if found else None,
            first=found[0] if found else None,
            matched=found,
        )
        for label, found in zip(labels, matches, strict=True)
    ]

    overall = figures_of(outcomes, len(false_alerts), device_hours)
    faults = sorted({label.fault for label in labels} | set(expected_kinds))
    per_fault = {
        f: figures_of(
            [o for o in outcomes if o.label.fault == f],
            sum(1 for a in false_alerts if a.kind in expected_kinds.get(f, ())),
            device_hours,
        )
        for f in faults
    }
    return EvaluationReport(
        config=config,
        window=(window_start, window_end),
        device_hours=device_hours,
        outcomes=outcomes,
        anomalies=len(evaluated),
        ignored_anomalies=ignored,
        false_alerts=false_alerts,
        reported_unlabelled=reported,
        overall=overall,
        per_fault=per_fault,
        per_detector={k: _counts(c) for k, c in sorted(per_detector.items())},
        per_kind={k: _counts(c) for k, c in sorted(per_kind.items())},
        during_maintenance=in_maintenance,
        maintenance_windows=len(maintenance),
        detectors=detector_figures(
            outcomes, false_alerts, reported, in_maintenance, device_hours_by_kind
        )
        if device_hours_by_kind is not None
        else {},
    )


def _counts(c: Counter[str]) -> AnomalyCounts:
    return AnomalyCounts(
        matched=c["matched"],
        false_alerts=c["false_alerts"],
        reported_unlabelled=c["reported_unlabelled"],
        during_maintenance=c["during_maintenance"],
    )
