"""Connectivity and data-quality detectors, per device, for every kind.

* **offline** — the device (or the broker, publishing its last will) says it is offline;
  open until it says online again or sends data;
* **dropout** — no accepted message for ``factor`` × the device's usual interval (and at
  least ``min_silence_s``): checked on every tick for all devices at once (one numpy
  comparison, not a query per device);
* **clock skew** — the device's clock differs from the server's by more than
  ``skew_limit_s``: judged on the *recent extreme* of ``ts - received_at`` (the most
  recent message of a store-and-forward backlog is current, so a backlog does not look
  like a slow clock), and on messages ingest refused as ``ts_in_future``;
* **malformed payloads** — ``min_malformed`` or more dead letters with a payload reason
  from one device within an hour.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from firewatch.analytics.episodes import (
    EpisodeSpec,
    EpisodeTracker,
    anomaly_from_json,
    anomaly_to_json,
    tracker_columns,
)
from firewatch.analytics.frames import Batch
from firewatch.analytics.profiles import DeviceProfile
from firewatch.analytics.series import DEVICES, F64, I64, SeriesTable, clip, nz, rounds
from firewatch.core.anomalies import Anomaly, Origin
from firewatch.core.domain import Severity
from firewatch.core.rows import Reason

MALFORMED = frozenset(
    {
        Reason.NOT_JSON,
        Reason.WRONG_TYPE,
        Reason.MISSING_FIELD,
        Reason.NOT_FINITE,
        Reason.OUT_OF_RANGE,
        Reason.INVALID,
        Reason.TOPIC_MISMATCH,
    }
)
HOUR_S = 3600.0


def device_of_topic(topic: str, root: str) -> str | None:
    """The device id in ``{root}/{unit}/{device}/{channel}``, or None."""
    if not topic.startswith(root + "/"):
        return None
    parts = topic[len(root) + 1 :].split("/")
    return parts[1] if len(parts) == 3 else None


class LinkDetectors:
    """Offline, dropout, clock skew and malformed payloads (see the module docstring)."""

    def __init__(
        self,
        profiles: Mapping[str, DeviceProfile],
        unit_of: Callable[[str], str],
        *,
        topic_root: str = "firewatch/v1",
        dropout_factor: float = 4.0,
        min_silence_s: float = 600.0,
        skew_limit_s: float = 120.0,
        refused_skew_s: float = 300.0,
        min_malformed: int = 2,
    ) -> None:
        self.profiles = profiles
        self.unit_of = unit_of
        self.root = topic_root
        self.factor, self.min_silence = dropout_factor, min_silence_s
        self.skew_limit, self.refused_skew = skew_limit_s, refused_skew_s
        self.min_malformed = min_malformed
        skew = EpisodeSpec("link.clock_skew", "clock_skew", "ts", min_hits=3, clear_hits=5)
        cols = {
            "last_rx": np.nan,
            "gap": np.nan,
            "n": 0.0,
            "hi": np.nan,
            "lo": np.nan,
            "skew_rx": np.nan,
            **tracker_columns(skew.detector),
        }
        self.table = SeriesTable(cols)
        self.skew = EpisodeTracker(skew, self.table, unit_of)
        self.offline: dict[str, Anomaly] = {}
        self.dropout: dict[str, Anomaly] = {}
        self.malformed: dict[str, deque[float]] = {}
        self.malformed_open: dict[str, Anomaly] = {}
        self._due = np.full(0, np.inf)  # per series, see _set_due
        self._wake = -np.inf  # the earliest of them: tick's next full comparison

    def set_profiles(self, profiles: Mapping[str, DeviceProfile]) -> None:
        self.profiles = profiles
        self._wake = -np.inf  # a device may have gained a profile: the next tick looks

    def process(self, batch: Batch) -> list[Anomaly]:
        """Arrivals, statuses and dead letters of one batch; return changes."""
        out: list[Anomaly] = []
        f = batch.telemetry
        if batch.events or batch.statuses or batch.dead_letters:
            extra = [ev.device_id for ev in batch.events]
            extra += [st.device_id for st in batch.statuses]
            rx = [f.received]
            skew = [f.ts - f.received]
            ev_rx = [e.received_at.timestamp() for e in batch.events]
            ev_sk = [e.ts.timestamp() - r for e, r in zip(batch.events, ev_rx, strict=True)]
            st_rx = [s.received_at.timestamp() for s in batch.statuses]
            # a last will (seq 0) carries its connection's start time: no clock evidence
            st_sk = [
                np.nan if s.seq == 0 else s.ts.timestamp() - r
                for s, r in zip(batch.statuses, st_rx, strict=True)
            ]
            wills = [s.seq == 0 and s.state == "offline" for s in batch.statuses]
            is_will = np.concatenate(
                [np.zeros(len(f) + len(ev_rx), np.bool_), np.array(wills, np.bool_)]
            )
            rx.append(np.asarray(ev_rx, np.float64))
            rx.append(np.asarray(st_rx, np.float64))
            skew.append(np.asarray(ev_sk, np.float64))
            skew.append(np.asarray(st_sk, np.float64))
            refused = self._refused(batch, extra, rx, skew)
            all_rx, all_skew = np.concatenate(rx), np.concatenate(skew)
            is_will = np.concatenate([is_will, np.zeros(refused, np.bool_)])
            shared = np.concatenate([DEVICES.codes(f.device), DEVICES.codes(extra)])
        else:  # telemetry only (the common batch)
            refused = 0
            all_rx, all_skew = f.received, f.ts - f.received
            is_will = np.zeros(len(f), np.bool_)
            shared = DEVICES.codes(f.device)
        # statuses first: a will closes nothing, an online status or data closes offline
        out += self._statuses(batch)
        n = len(shared)
        if n:
            sids = self.table.ids_of(shared)
            accepted = np.arange(n) < n - refused
            # Clock skew is judged once per device and batch, on its newest message with a
            # clock reading, once the batch's extremes are in: the old messages of a
            # store-and-forward backlog must not be judged before its current newest one.
            judge = np.zeros(n, np.bool_)
            clocked = (~np.isnan(all_skew)).nonzero()[0]
            if len(clocked):
                order = clocked[np.lexsort((all_rx[clocked], sids[clocked]))]
                judge[order[np.append(sids[order][1:] != sids[order][:-1], True)]] = True
            for pos in rounds(sids, all_rx):
                out += self._arrivals(
                    sids[pos], all_rx[pos], all_skew[pos], accepted[pos] & ~is_will[pos], judge[pos]
                )
        out += self._malformed(batch)
        return out

    def _refused(self, batch: Batch, devices: list[str], rx: list[F64], skew: list[F64]) -> int:
        """Append ts_in_future dead letters as clock evidence (not as arrivals)."""
        dev: list[str] = []
        r: list[float] = []
        sk: list[float] = []
        for d in batch.dead_letters:
            if d.reason is Reason.TS_IN_FUTURE:
                device = device_of_topic(d.topic, self.root)
                if device is not None and device in self.profiles:
                    dev.append(device)
                    r.append(d.received_at.timestamp())
                    sk.append(self.refused_skew + 1.0)
        devices.extend(dev)
        rx.append(np.asarray(r, np.float64))
        skew.append(np.asarray(sk, np.float64))
        return len(dev)

    def _arrivals(self, s: I64, rx: F64, skew: F64, accepted: Any, judge: Any) -> list[Anomaly]:
        tb = self.table
        out: list[Anomaly] = []
        last = tb["last_rx"][s]
        since = np.where(np.isnan(last), np.nan, rx - last)
        acc = np.asarray(accepted, np.bool_)
        # usual gap between accepted messages; bursts (< 1 s apart) say nothing about it
        g = tb["gap"][s]
        upd = acc & (since >= 1.0)
        gap = np.where(upd, np.where(np.isnan(g), since, g + 0.05 * (since - g)), g)
        last = np.where(acc, np.fmax(last, rx), last)
        n = tb["n"][s] + acc
        tb["gap"][s], tb["last_rx"][s], tb["n"][s] = gap, last, n
        self._set_due(s, gap, last, n)
        # recent extremes of the clock offset, forgetting at 1 s per second
        dt = np.maximum(nz(rx - tb["skew_rx"][s], 0.0), 0.0)
        ok = ~np.isnan(skew)
        hi = np.where(ok, np.fmax(skew, tb["hi"][s] - dt), tb["hi"][s])
        lo = np.where(ok, np.fmin(skew, tb["lo"][s] + dt), tb["lo"][s])
        tb["hi"][s], tb["lo"][s] = hi, lo
        tb["skew_rx"][s] = np.where(ok, rx, tb["skew_rx"][s])
        ahead = lo > self.skew_limit
        behind = hi < -self.skew_limit
        cond = ok & (ahead | behind)
        off = np.where(ahead, lo, np.where(behind, hi, 0.0))
        score = clip(np.abs(off) / (4 * self.skew_limit), 0.3, 1.0)

        def describe(j: int, a: Anomaly | None) -> tuple[str, dict[str, Any], Severity]:
            o = float(off[j])
            if o > self.refused_skew:
                text = (
                    f"device clock ahead of the server by more than {self.refused_skew:g} s: "
                    "its messages are being refused"
                )
            else:
                text = (
                    f"device clock {'ahead of' if o > 0 else 'behind'} the server by {abs(o):.0f} s"
                )
            return text, {"offset_s": round(o, 1)}, Severity.LOW

        jx = judge.nonzero()[0]
        if len(jx):
            off = off[jx]
            out += self.skew.update(s[jx], cond[jx], score[jx], rx[jx], rx[jx], describe)
        if self.dropout or self.offline:  # data closes offline and dropout episodes
            index = tb.index
            held = [
                index[d, 0] for st in (self.dropout, self.offline) for d in st if (d, 0) in index
            ]
            flagged = np.zeros(len(tb), np.bool_)
            flagged[held] = True
            for j in (acc & flagged[s]).nonzero()[0].tolist():
                dev, t = tb.keys[int(s[j])][0], float(rx[j])
                for store in (self.dropout, self.offline):
                    a = store.get(dev)
                    if a is not None and t > a.detected_at:
                        out += self._close(store, dev, t, "data again")
        return out

    def _set_due(self, s: I64, gap: F64, last: F64, n: F64) -> None:
        """When each series of ``s`` could count as silent at the earliest, less a second
        (far more than the rounding of ``now - last``): :meth:`tick` compares every series
        only once ``now`` reaches the earliest of these."""
        limit = np.maximum(self.factor * nz(gap, np.inf), self.min_silence)
        due = np.where((n >= 5) & ~np.isnan(last), last + limit - 1.0, np.inf)
        if len(self._due) < len(self.table):
            grown = np.full(2 * len(self.table), np.inf)
            grown[: len(self._due)] = self._due
            self._due = grown
        self._due[s] = due
        if len(due):
            self._wake = min(self._wake, float(due.min()))

    def _statuses(self, batch: Batch) -> list[Anomaly]:
        out: list[Anomaly] = []
        for st in sorted(batch.statuses, key=lambda s: s.received_at):
            dev, rx = st.device_id, st.received_at.timestamp()
            if dev not in self.profiles:
                continue
            if st.state == "offline" and dev not in self.offline:
                will = st.seq == 0 or st.reason == "will"
                text = (
                    "connection lost: the broker published the device's last will"
                    if will
                    else f"device reported offline ({st.reason or 'no reason given'})"
                )
                a = self._anomaly(
                    dev,
                    "link.offline",
                    "device_offline",
                    Origin.REPORTED,
                    Severity.MEDIUM,
                    rx,
                    rx,
                    text,
                    {"reason": st.reason},
                )
                self.offline[dev] = a
                out.append(dataclasses.replace(a))
                out += self._close(self.dropout, dev, rx, "device said offline")
            elif st.state == "online":
                out += self._close(self.offline, dev, rx, "online again")
        return out

    def _malformed(self, batch: Batch) -> list[Anomaly]:
        out: list[Anomaly] = []
        for d in batch.dead_letters:
            if d.reason not in MALFORMED:
                continue
            dev = device_of_topic(d.topic, self.root)
            if dev is None or dev not in self.profiles:
                continue
            rx = d.received_at.timestamp()
            times = self.malformed.setdefault(dev, deque())
            times.append(rx)
            while times and times[0] <= rx - HOUR_S:
                times.popleft()
            a = self.malformed_open.get(dev)
            if a is None and len(times) >= self.min_malformed:
                a = self._anomaly(
                    dev,
                    "link.malformed",
                    "malformed_payloads",
                    Origin.INFERRED,
                    Severity.LOW,
                    times[0],
                    rx,
                    f"{len(times)} malformed messages in the last hour "
                    f"(latest: {d.reason.value}: {d.detail[:80]})",
                    {"count": len(times), "reason": d.reason.value},
                )
                self.malformed_open[dev] = a
                out.append(dataclasses.replace(a))
            elif a is not None:
                a.last_at, a.revision = rx, a.revision + 1
                a.evidence = {"count": len(times), "reason": d.reason.value}
                out.append(dataclasses.replace(a))
        return out

    def tick(self, now: float) -> list[Anomaly]:
        """Dropouts as of server time ``now``, and malformed episodes that went quiet."""
        out: list[Anomaly] = []
        tb = self.table
        n = len(tb)
        if n and now >= self._wake:  # else no series can be silent yet (see _set_due)
            last, gap = tb["last_rx"][:n], tb["gap"][:n]
            limit = np.maximum(self.factor * nz(gap, np.inf), self.min_silence)
            silent = ((tb["n"][:n] >= 5) & (now - last > limit)).nonzero()[0]
            for sid in silent.tolist():
                dev = tb.keys[sid][0]
                if dev in self.dropout or dev in self.offline or dev not in self.profiles:
                    continue
                start = float(last[sid])
                text = (
                    f"no data for {(now - start) / 60:.0f} min (usually every "
                    f"{float(gap[sid]):.0f} s)"
                )
                a = self._anomaly(
                    dev,
                    "link.dropout",
                    "device_silent",
                    Origin.INFERRED,
                    Severity.MEDIUM,
                    start,
                    now,
                    text,
                    {"usual_interval_s": round(float(gap[sid]), 1)},
                )
                self.dropout[dev] = a
                out.append(dataclasses.replace(a))
            # the silent stay silent (and reported, or skipped) until they send again,
            # which sets their due time anew, or the profiles change
            due = self._due[:n].copy()
            due[silent] = np.inf
            self._wake = float(due.min())
        for dev in list(self.malformed_open):
            times = self.malformed.get(dev, deque())
            while times and times[0] <= now - HOUR_S:
                times.popleft()
            if not times:
                out += self._close(self.malformed_open, dev, now, "no malformed messages for 1 h")
        return out

    def _anomaly(
        self,
        dev: str,
        detector: str,
        kind: str,
        origin: Origin,
        sev: Severity,
        start: float,
        detected: float,
        text: str,
        evidence: dict[str, Any],
    ) -> Anomaly:
        return Anomaly(
            device_id=dev,
            unit_id=self.unit_of(dev),
            detector=detector,
            kind=kind,
            metric="messages",
            component="",
            origin=origin,
            severity=sev,
            score=0.5,
            started_at=start,
            detected_at=detected,
            last_at=detected,
            explanation=text,
            evidence=evidence,
        )

    @staticmethod
    def _close(store: dict[str, Anomaly], dev: str, t: float, why: str) -> list[Anomaly]:
        a = store.pop(dev, None)
        if a is None:
            return []
        a.ended_at, a.last_at, a.revision = t, max(a.last_at, t), a.revision + 1
        a.explanation += f"; {why}"
        return [dataclasses.replace(a)]

    # -- checkpoint ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "table": self.table.state(),
            "skew": self.skew.state(),
            "offline": {d: anomaly_to_json(a) for d, a in self.offline.items()},
            "dropout": {d: anomaly_to_json(a) for d, a in self.dropout.items()},
            "malformed": {d: list(v) for d, v in self.malformed.items()},
            "malformed_open": {d: anomaly_to_json(a) for d, a in self.malformed_open.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.table.restore(state["table"])
        tb, n = self.table, len(self.table)
        self._due, self._wake = np.full(n, np.inf), -np.inf
        self._set_due(np.arange(n), tb["gap"][:n], tb["last_rx"][:n], tb["n"][:n])
        self._wake = -np.inf
        self.skew.restore(state["skew"])
        self.offline = {d: anomaly_from_json(a) for d, a in state["offline"].items()}
        self.dropout = {d: anomaly_from_json(a) for d, a in state["dropout"].items()}
        self.malformed = {d: deque(map(float, v)) for d, v in state["malformed"].items()}
        self.malformed_open = {d: anomaly_from_json(a) for d, a in state["malformed_open"].items()}
