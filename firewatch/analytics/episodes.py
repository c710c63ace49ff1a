"""From per-point conditions to anomaly episodes, with hysteresis, vectorised per series.

Every detector ends in an :class:`EpisodeTracker`: given, for one round of points, whether
its condition holds and how strongly (a score in 0..1), the tracker counts consecutive
hits and misses per series, opens an episode once the condition has held for
``min_hits`` points and ``min_duration_s`` seconds, and closes it after ``clear_hits``
points without it. Only openings, escalations, closings and periodic refreshes of an
open episode reach Python (via the ``describe`` callback, which writes the explanation),
so the common case — nothing happening — stays a few numpy operations per round.

The counters live in the group's :class:`~firewatch.analytics.series.SeriesTable`
(columns ``<detector>.hits`` …) and the open episodes in :attr:`EpisodeTracker.open`, so
both are part of the checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from firewatch.analytics.series import F64, I64, B, SeriesTable
from firewatch.core.anomalies import SEVERITY_RANK, Anomaly, Origin
from firewatch.core.domain import Severity

#: An open episode is re-emitted (new revision, fresh ``last_at``) at most this often.
REFRESH_S = 300.0

Description = tuple[str, dict[str, Any], Severity]
#: ``describe(j, anomaly_or_None)`` for position ``j`` of the round: explanation, evidence
#: and severity of the condition at that point.
Describe = Callable[[int, Anomaly | None], Description]


@dataclass(frozen=True, slots=True)
class EpisodeSpec:
    """How one detector's condition becomes episodes."""

    detector: str  # e.g. "rule.pressure_low"
    kind: str  # the condition, e.g. "low_pressure"
    metric: str  # e.g. "pressure_kpa"
    origin: Origin = Origin.INFERRED
    min_hits: int = 1
    min_duration_s: float = 0.0
    clear_hits: int = 3


def tracker_columns(detector: str) -> dict[str, float]:
    """The SeriesTable columns an :class:`EpisodeTracker` for ``detector`` needs."""
    return {
        f"{detector}.hits": 0.0,
        f"{detector}.misses": 0.0,
        f"{detector}.first": np.nan,
        f"{detector}.active": 0.0,
        f"{detector}.emitted": -np.inf,
    }


def component_label(metric: str, component: int) -> str:
    """The ``component`` text of an anomaly: ``port 3`` for a charging port, else ''."""
    return f"port {component}" if component and metric.startswith("port_") else ""


class EpisodeTracker:
    """Open/close episodes of one detector over the series of one table."""

    def __init__(
        self, spec: EpisodeSpec, table: SeriesTable, unit_of: Callable[[str], str]
    ) -> None:
        self.spec = spec
        self.table = table
        self.unit_of = unit_of
        self.open: dict[int, Anomaly] = {}  # series id -> its open episode
        d = spec.detector
        self._h, self._m, self._f = f"{d}.hits", f"{d}.misses", f"{d}.first"
        self._a, self._e = f"{d}.active", f"{d}.emitted"

    def update(
        self,
        sids: I64,
        cond: B,
        score: F64 | Callable[[], F64],
        t: F64,
        rx: F64,
        describe: Describe,
    ) -> list[Anomaly]:
        """Advance the episodes of the series ``sids`` (each at most once) by one point;
        return the anomalies that opened, changed or closed (new revisions). ``score``
        may be a function giving the scores: it is called only when ``cond`` holds
        somewhere (mostly it holds nowhere, and no score is needed)."""
        tb = self.table
        hits, misses, first = tb[self._h], tb[self._m], tb[self._f]
        active, emitted = tb[self._a], tb[self._e]
        if not cond.any():  # the common case: only open episodes can change
            hits[sids] = 0.0
            if not self.open:
                return []
            # misses count on; no episode opens or continues, open ones may close
            ms = misses[sids] + 1
            misses[sids] = ms
            closing = (active[sids] > 0) & (ms >= self.spec.clear_hits)
            if not closing.any():
                return []
            return [self._close(int(sids[j]), float(t[j])) for j in closing.nonzero()[0]]
        if callable(score):
            score = score()
        h_old = hits[sids]
        hs = np.where(cond, h_old + 1, 0.0)
        ms = np.where(cond, 0.0, misses[sids] + 1)
        fs = np.where(cond & (h_old == 0), t, first[sids])
        hits[sids], misses[sids], first[sids] = hs, ms, fs
        act = active[sids] > 0
        spec = self.spec
        opening = ~act & cond & (hs >= spec.min_hits) & (t - fs >= spec.min_duration_s)
        closing = act & ~cond & (ms >= spec.clear_hits)
        cont = act & cond
        touched = (opening | closing | cont).nonzero()[0]
        if len(touched) == 0:
            return []
        out: list[Anomaly] = []
        for j in touched.tolist():
            sid = int(sids[j])
            if opening[j]:
                out.append(self._open(sid, j, float(fs[j]), t, rx, score, describe))
                active[sid], emitted[sid] = 1.0, rx[j]
            elif closing[j]:
                out.append(self._close(sid, float(t[j])))
            else:
                a = self.open[sid]
                a.last_at = float(t[j])
                sc = float(score[j])
                text, evidence, sev = describe(j, a)
                escalated = SEVERITY_RANK[sev] > SEVERITY_RANK[a.severity]
                if escalated:
                    a.severity = sev
                if sc > a.score + 0.1 or escalated or rx[j] - emitted[sid] >= REFRESH_S:
                    a.score = max(a.score, sc)
                    a.explanation, a.evidence = text, evidence
                    a.revision += 1
                    emitted[sid] = rx[j]
                    out.append(dataclasses.replace(a))
        return out

    def _close(self, sid: int, t: float) -> Anomaly:
        a = self.open.pop(sid)
        a.ended_at = t
        a.revision += 1
        self.table[self._a][sid] = 0.0
        return dataclasses.replace(a)

    def _open(
        self, sid: int, j: int, start: float, t: F64, rx: F64, score: F64, describe: Describe
    ) -> Anomaly:
        device, comp = self.table.keys[sid]
        text, evidence, sev = describe(j, None)
        spec = self.spec
        a = Anomaly(
            device_id=device,
            unit_id=self.unit_of(device),
            detector=spec.detector,
            kind=spec.kind,
            metric=spec.metric,
            component=component_label(spec.metric, comp),
            origin=spec.origin,
            severity=sev,
            score=float(min(1.0, max(0.0, score[j]))),
            started_at=start,
            detected_at=float(rx[j]),
            last_at=float(t[j]),
            explanation=text,
            evidence=evidence,
        )
        self.open[sid] = a
        return dataclasses.replace(a)

    # -- checkpoint ---------------------------------------------------------------------

    def state(self) -> list[dict[str, Any]]:
        return [{"sid": sid, **anomaly_to_json(a)} for sid, a in self.open.items()]

    def restore(self, items: list[Mapping[str, Any]]) -> None:
        self.open = {int(it["sid"]): anomaly_from_json(it) for it in items}


def anomaly_to_json(a: Anomaly) -> dict[str, Any]:
    """A JSON-able dict of every field (enums as their values)."""
    d = dataclasses.asdict(a)
    d["origin"], d["severity"] = a.origin.value, a.severity.value
    return d


def anomaly_from_json(d: Mapping[str, Any]) -> Anomaly:
    """The inverse of :func:`anomaly_to_json` (extra keys such as ``sid`` are ignored)."""
    names = {f.name for f in dataclasses.fields(Anomaly)}
    kw = {k: v for k, v in d.items() if k in names}
    kw["origin"], kw["severity"] = Origin(kw["origin"]), Severity(kw["severity"])
    return Anomaly(**kw)
