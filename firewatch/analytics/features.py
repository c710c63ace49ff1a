"""Window features for the learned models: streaming, vectorised, checkpointable.

:class:`WindowFeaturizer` cuts each device's telemetry into tumbling windows aligned to
multiples of ``window_s`` on device time and turns every closed window into a fixed-order
feature vector (:data:`FEATURES`). A window closes when a later point of the same device
arrives past its end, so a window is only ever seen whole; points older than a device's
open window (late arrivals) are dropped.

Statistics are accumulated per device in numpy arrays (one row per device, grown by
doubling): each batch is sorted by (device, time), cut into (device, window) segments and
reduced with ``reduceat`` / ``bincount``; only the bookkeeping per *closed window* (slow
references, the output objects) is a Python loop.

Features are scale-free per device, so one model per kind fits every device of the kind:
pressures are divided by the device's own slow reference (an EWMA of its previous windows'
mean pressure with a one-day time constant, initialised by its first window; each update
is clipped to ±10 % of the reference, so that hours of a closed valve or a burst do not
drag the reference down and make the recovery look unusual), temperatures
are differences (port − ambient, port − the shed's median port, room − its reference),
currents are divided by the port rating, and ``coverage`` compares the points received
with those expected at the device's own median sampling interval (the median over its last
16 windows' mean gaps). A device's first complete-enough window only initialises these
references and is not emitted (it is usually partial: the stream starts mid-window).
Windows with fewer than :data:`MIN_POINTS` points are not emitted either.

Panels are skipped: they send no telemetry, and their events (fire, fault, isolation,
power) are discrete, standard-defined conditions the rules cover exactly; rare-event
counts per window would give a model too little to learn per panel.

Missing inputs get neutral values (a shed without ambient: port − ambient 0; a water point
without a tank: level slope 0), so a device that never reports a field is not "unusual"
for that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from firewatch.analytics.frames import TelemetryFrame
from firewatch.analytics.profiles import DeviceProfile
from firewatch.analytics.series import DEVICES
from firewatch.analytics.window_math import FEATURES as FEATURES
from firewatch.analytics.window_math import KINDS as KINDS
from firewatch.analytics.window_math import MAX_AT as _MX
from firewatch.analytics.window_math import MAXED as _MAX
from firewatch.analytics.window_math import MIN_AT as _MN
from firewatch.analytics.window_math import (
    MIN_POINTS,
    P_REF_FLOOR_KPA,
    Segments,
    columns,
    feature_matrices,
    grow,
    mean_cols,
    ratio,
    regression,
)
from firewatch.analytics.window_math import MINNED as _MIN
from firewatch.analytics.window_math import SUM_AT as _S
from firewatch.analytics.window_math import SUMMED as _SUM
from firewatch.core.domain import DeviceKind

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


REF_TAU_S = 86_400.0  # time constant of the slow pressure / room references
P_REF_CLIP = 0.1  # a window moves the pressure reference by at most α · 10 % of it
ROOM_REF_CLIP_C = 5.0  # and the room reference by at most α · 5 °C
GAP_RING = 16  # windows of mean gaps behind the median sampling interval
_PORT_KEY = 2048  # port numbers are 1..1024 (contract): key = slot * 2048 + port
_NEVER = np.iinfo(np.int64).min  # open-window index of a slot without an open window

_KIND_CODE = {DeviceKind.WATER: 0, DeviceKind.EBIKE_SHED: 1}


@dataclass(slots=True)
class FeatureWindow:
    """One closed window of one device: its features in :data:`FEATURES` order.

    ``context`` holds the references the features were scaled by (``pressure_ref_kpa``,
    ``room_ref_c``, ``interval_s``), for explanations.
    """

    device_id: str
    kind: DeviceKind
    start: float
    end: float
    features: F64
    n_points: int
    context: dict[str, float] = field(default_factory=dict)


class WindowFeaturizer:
    """Streaming window features per device (see the module docstring)."""

    def __init__(self, profiles: Mapping[str, DeviceProfile], window_s: float = 900.0) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.profiles = profiles
        self.window_s = float(window_s)
        self.alpha = 1.0 - float(np.exp(-self.window_s / REF_TAU_S))
        self._index: dict[str, int] = {}
        self._ids: list[str] = []
        self._by_code = np.full(0, -2, np.int64)  # shared device code -> _slot (-2: ask)
        self._init_arrays(0, 1)

    # -- state arrays ------------------------------------------------------------------

    def _init_arrays(self, cap: int, nport: int) -> None:
        cap = max(cap, 16)
        self._kind = np.full(cap, -1, np.int64)  # 0 water, 1 shed, -1 not featurized
        self._rating = np.full(cap, np.nan)
        self._open_w = np.full(cap, _NEVER, np.int64)
        self._sums = np.zeros((cap, len(_SUM)))
        self._mins = np.full((cap, len(_MIN)), np.nan)
        self._maxs = np.full((cap, len(_MAX)), np.nan)
        self._ports = np.zeros((cap, nport, 5))
        self._last_j = np.full(cap, np.nan)
        self._p_ref = np.full(cap, np.nan)
        self._r_ref = np.full(cap, np.nan)
        self._warm = np.zeros(cap, np.bool_)
        self._gaps = np.full((cap, GAP_RING), np.nan)
        self._gap_n = np.zeros(cap, np.int64)
        self._pkeys = np.zeros(0, np.int64)  # sorted slot * _PORT_KEY + port
        self._ppos = np.zeros(0, np.int64)  # position of that port in its slot
        self._nports = np.zeros(cap, np.int64)

    def _ensure(self, cap: int, nport: int) -> None:
        if cap > len(self._kind):
            new = max(cap, 2 * len(self._kind))
            self._kind = grow(self._kind, new, -1)
            self._rating = grow(self._rating, new, np.nan)
            self._open_w = grow(self._open_w, new, _NEVER)
            self._sums = grow(self._sums, new, 0.0)
            self._mins = grow(self._mins, new, np.nan)
            self._maxs = grow(self._maxs, new, np.nan)
            self._ports = grow(self._ports, new, 0.0)
            self._last_j = grow(self._last_j, new, np.nan)
            self._p_ref = grow(self._p_ref, new, np.nan)
            self._r_ref = grow(self._r_ref, new, np.nan)
            self._warm = grow(self._warm, new, False)
            self._gaps = grow(self._gaps, new, np.nan)
            self._gap_n = grow(self._gap_n, new, 0)
            self._nports = grow(self._nports, new, 0)
        if nport > self._ports.shape[1]:
            new_p = max(nport, 2 * self._ports.shape[1])
            ports = np.zeros((len(self._ports), new_p, 5))
            ports[:, : self._ports.shape[1]] = self._ports
            self._ports = ports

    def _slots(self, devices: list[str]) -> I64:
        """Slot per row (-1: not featurized), through the shared device codes (kept until
        the profiles change); devices new to it are looked up in order of appearance."""
        codes = DEVICES.codes(devices)
        if len(self._by_code) < len(DEVICES):
            self._by_code = grow(self._by_code, 2 * len(DEVICES), -2)
        slots = self._by_code[codes]
        if len(slots) and slots.min() == -2:
            for c in codes[slots == -2].tolist():
                if self._by_code[c] == -2:
                    self._by_code[c] = self._slot(DEVICES.name(c))
            slots = self._by_code[codes]
        return slots

    def _slot(self, device_id: str) -> int:
        slot = self._index.get(device_id)
        if slot is not None:
            return slot if self._kind[slot] >= 0 else -1
        prof = self.profiles.get(device_id)
        if prof is None or prof.kind not in _KIND_CODE:
            return -1
        slot = len(self._ids)
        self._ensure(slot + 1, 1)
        self._index[device_id] = slot
        self._ids.append(device_id)
        self._kind[slot] = _KIND_CODE[prof.kind]
        self._rating[slot] = prof.thresholds.port_rating_a
        return slot

    def _port_positions(self, slot_of_port: I64, port_no: npt.NDArray[np.int32]) -> I64:
        """Position of each port value within its device's port accumulators."""
        keys = slot_of_port * _PORT_KEY + port_no.astype(np.int64)
        idx = np.searchsorted(self._pkeys, keys)
        found = idx < len(self._pkeys)
        found[found] = self._pkeys[idx[found]] == keys[found]
        if not found.all():  # ports seen for the first time: a loop per new port only
            new = np.unique(keys[~found])
            pos = np.empty(len(new), np.int64)
            for i, key in enumerate(new.tolist()):
                slot = key // _PORT_KEY
                pos[i] = self._nports[slot]
                self._nports[slot] += 1
            allk = np.concatenate([self._pkeys, new])
            allp = np.concatenate([self._ppos, pos])
            order = np.argsort(allk, kind="stable")
            self._pkeys, self._ppos = allk[order], allp[order]
            self._ensure(len(self._kind), int(self._nports.max()))
            idx = np.searchsorted(self._pkeys, keys)
        return self._ppos[idx]

    # -- streaming ---------------------------------------------------------------------

    def update(self, frame: TelemetryFrame) -> list[FeatureWindow]:
        """Add a batch; return the windows it closed, ordered by (start, device)."""
        if not len(frame):
            return []
        ws = self.window_s
        slots = self._slots(frame.device)
        ok = slots >= 0
        ok &= np.isfinite(frame.ts)
        w = np.zeros(len(frame), np.int64)
        w[ok] = np.floor(frame.ts[ok] / ws).astype(np.int64)
        ok &= w >= self._open_w[np.maximum(slots, 0)]  # late points are dropped
        rows = ok.nonzero()[0]
        if not len(rows):
            return []
        order = rows[np.lexsort((frame.ts[rows], slots[rows]))]
        seg = self._segment(frame, order, slots[order], w[order])
        return self._close(seg)

    def _segment(self, f: TelemetryFrame, order: I64, dev: I64, w: I64) -> Segments:
        """Merge a sorted batch into the open windows; return the windows it closed."""
        n = len(order)
        ts = f.ts[order]
        t = ts - w.astype(np.float64) * self.window_s  # time within the window
        pressure, jockey = f.pressure[order], f.jockey[order]
        ambient = f.ambient[order]

        # jockey starts: off → on against the previous valid value of the same device
        first_of_dev = np.ones(n, np.bool_)
        first_of_dev[1:] = dev[1:] != dev[:-1]
        dev_start = np.maximum.accumulate(np.where(first_of_dev, np.arange(n), 0))
        valid_j = ~np.isnan(jockey)
        last_valid = np.maximum.accumulate(np.where(valid_j, np.arange(n), -1))
        prev_idx = np.concatenate([[-1], last_valid[:-1]])
        in_dev = prev_idx >= dev_start
        prev = np.where(in_dev, jockey[np.maximum(prev_idx, 0)], self._last_j[dev])
        starts = (valid_j & (jockey == 1.0) & (prev == 0.0)).astype(np.float64)
        last_of_dev = np.ones(n, np.bool_)
        last_of_dev[:-1] = dev[1:] != dev[:-1]
        ends = last_of_dev.nonzero()[0]
        has_j = last_valid[ends] >= dev_start[ends]
        self._last_j[dev[ends[has_j]]] = jockey[last_valid[ends[has_j]]]

        # ports of the sorted rows, in CSR order (as TelemetryFrame.take does)
        po = f.port_offsets
        counts = (po[1:] - po[:-1])[order]
        offs = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=offs[1:])
        pidx = np.repeat(f.port_offsets[:-1][order] - offs[:-1], counts) + np.arange(offs[-1])
        prow = np.repeat(np.arange(n), counts)
        ptemp, pcur = f.port_temp[pidx], f.port_current[pidx]
        has = counts > 0
        d_amb = np.full(n, np.nan)
        i_max = np.full(n, np.nan)
        d_med = np.full(n, np.nan)
        c_frac = np.full(n, np.nan)
        if len(pidx):
            at = offs[:-1][has]
            d_amb[has] = np.fmax.reduceat(ptemp - ambient[prow], at)
            i_max[has] = np.fmax.reduceat(pcur, at)
            c_frac[has] = np.add.reduceat(f.port_charging[pidx].astype(np.float64), at)
            c_frac[has] /= counts[has]
            st = ptemp[np.lexsort((ptemp, prow))]  # ports sorted by temperature in each row
            lo, hi = at + (counts[has] - 1) // 2, at + counts[has] // 2
            med = np.full(n, np.nan)
            med[has] = 0.5 * (st[lo] + st[hi])
            d_med[has] = np.fmax.reduceat(ptemp - med[prow], at)

        level, room, pump = f.level[order], f.room_temp[order], f.pump[order]
        smoke = f.smoke[order]
        p_ok = ~np.isnan(pressure)
        cols = [np.ones(n), *regression(t, pressure), np.where(p_ok, pressure**2, 0.0)]
        cols += [valid_j.astype(np.float64), np.where(valid_j, jockey, 0.0), starts]
        cols += [*mean_cols(pump), *regression(t, level), *mean_cols(room)]
        cols += [*regression(t, ambient), *mean_cols(smoke), *mean_cols(c_frac)]
        vsum = columns(cols)
        vmin = columns([ts, pressure])
        vmax = columns([ts, pressure, d_amb, i_max, d_med])

        # (device, window) segments of the sorted rows
        cut = np.ones(n, np.bool_)
        cut[1:] = (dev[1:] != dev[:-1]) | (w[1:] != w[:-1])
        at = cut.nonzero()[0]
        seg_of_row = np.cumsum(cut) - 1
        m = len(at)
        sdev, sw = dev[at], w[at]
        if m == n:  # a row per segment (small batches): the reductions are the rows
            sums, mins, maxs = vsum, vmin, vmax
        else:
            sums = np.add.reduceat(vsum, at, axis=0)
            mins = np.fmin.reduceat(vmin, at, axis=0)
            maxs = np.fmax.reduceat(vmax, at, axis=0)
        nport = self._ports.shape[1]
        if len(pidx):
            ppos = self._port_positions(dev[prow], f.port_no[pidx])
            nport = self._ports.shape[1]
            flat = seg_of_row[prow] * nport + ppos
            pcols = regression(t[prow], ptemp)
            binned = [np.bincount(flat, weights=c, minlength=m * nport) for c in pcols]
            ports = columns(binned).reshape(m, nport, 5)
        else:
            ports = np.zeros((m, nport, 5))

        # merge first segments into the open windows they continue; close the others
        first = np.ones(m, np.bool_)
        first[1:] = sdev[1:] != sdev[:-1]
        fi = first.nonzero()[0]
        fdev = sdev[fi]
        cont = sw[fi] == self._open_w[fdev]
        j, d = fi[cont], fdev[cont]
        sums[j] += self._sums[d]
        mins[j] = np.fmin(mins[j], self._mins[d])
        maxs[j] = np.fmax(maxs[j], self._maxs[d])
        ports[j] += self._ports[d]
        old = fdev[~cont & (self._open_w[fdev] != _NEVER)]  # open windows closed as a whole
        last = np.ones(m, np.bool_)
        last[:-1] = sdev[1:] != sdev[:-1]
        li = last.nonzero()[0]
        closed = Segments(
            dev=np.concatenate([old, sdev[~last]]),
            w=np.concatenate([self._open_w[old], sw[~last]]),
            sums=np.concatenate([self._sums[old], sums[~last]]),
            mins=np.concatenate([self._mins[old], mins[~last]]),
            maxs=np.concatenate([self._maxs[old], maxs[~last]]),
            ports=np.concatenate([self._ports[old], ports[~last]]),
        )
        ld = sdev[li]
        self._open_w[ld] = sw[li]
        self._sums[ld], self._mins[ld], self._maxs[ld] = sums[li], mins[li], maxs[li]
        self._ports[ld] = ports[li]
        return closed

    def _close(self, c: Segments) -> list[FeatureWindow]:
        """Features of closed windows; advance the slow references (a loop per window)."""
        m = len(c.dev)
        if not m:
            return []
        o = np.lexsort((c.w, c.dev))
        c = Segments(c.dev[o], c.w[o], c.sums[o], c.mins[o], c.maxs[o], c.ports[o])
        S, MN, MX = c.sums, c.mins, c.maxs
        p_mean = ratio(S[:, _S["p_y"]], S[:, _S["p_n"]])
        r_mean = ratio(S[:, _S["r_y"]], S[:, _S["r_n"]])
        npts = S[:, _S["n"]]
        gap = ratio(MX[:, _MX["t_max"]] - MN[:, _MN["t_min"]], npts - 1)
        p_ref, r_ref, iv = np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan)
        emit = np.zeros(m, np.bool_)
        a = self.alpha
        for i in range(m):
            d = int(c.dev[i])
            if npts[i] < MIN_POINTS:
                continue
            pm, rm, g = float(p_mean[i]), float(r_mean[i]), float(gap[i])
            if self._warm[d]:
                emit[i] = True
                p_ref[i], r_ref[i] = self._p_ref[d], self._r_ref[d]
                k = min(int(self._gap_n[d]), GAP_RING)
                gaps = sorted(self._gaps[d, :k].tolist())  # ≤ 16 values: faster than numpy
                iv[i] = 0.5 * (gaps[(k - 1) // 2] + gaps[k // 2]) if k else g
            self._warm[d] = True
            if pm == pm:  # not NaN; the update is clipped to ±10 % of the reference
                ref = float(self._p_ref[d])
                if ref != ref:
                    self._p_ref[d] = pm
                else:
                    lim = P_REF_CLIP * max(ref, P_REF_FLOOR_KPA)
                    self._p_ref[d] = ref + a * min(max(pm - ref, -lim), lim)
            if rm == rm:  # ±5 °C
                ref = float(self._r_ref[d])
                self._r_ref[d] = (
                    rm
                    if ref != ref
                    else ref + a * min(max(rm - ref, -ROOM_REF_CLIP_C), ROOM_REF_CLIP_C)
                )
            if g == g and g > 0:
                self._gaps[d, int(self._gap_n[d]) % GAP_RING] = g
                self._gap_n[d] += 1
        if not emit.any():
            return []
        sel = emit.nonzero()[0]
        X = feature_matrices(
            c,
            sel,
            p_mean[sel],
            r_mean[sel],
            p_ref[sel],
            r_ref[sel],
            iv[sel],
            self.window_s,
            self._rating[c.dev[sel]],
        )
        out: list[FeatureWindow] = []
        ws = self.window_s
        for row, i in enumerate(sel.tolist()):
            d = int(c.dev[i])
            kind = KINDS[int(self._kind[d])]
            ctx = {"interval_s": float(iv[i])}
            if kind is DeviceKind.WATER:
                ctx |= {"pressure_ref_kpa": float(max(p_ref[i], P_REF_FLOOR_KPA))}
                if r_ref[i] == r_ref[i]:
                    ctx["room_ref_c"] = float(r_ref[i])
            start = float(c.w[i]) * ws
            feats = X[kind][row]
            out.append(
                FeatureWindow(self._ids[d], kind, start, start + ws, feats, int(npts[i]), ctx)
            )
        out.sort(key=lambda fw: (fw.start, fw.device_id))
        return out

    # -- checkpoint ----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """A copy of the state: numpy arrays and JSON-able values only (no pickle)."""
        n = len(self._ids)
        arrays = {
            "kind": self._kind,
            "rating": self._rating,
            "open_w": self._open_w,
            "sums": self._sums,
            "mins": self._mins,
            "maxs": self._maxs,
            "ports": self._ports,
            "last_jockey": self._last_j,
            "p_ref": self._p_ref,
            "r_ref": self._r_ref,
            "warm": self._warm,
            "gaps": self._gaps,
            "gap_n": self._gap_n,
            "n_ports": self._nports,
        }
        out: dict[str, Any] = {name: a[:n].copy() for name, a in arrays.items()}
        out |= {"port_keys": self._pkeys.copy(), "port_pos": self._ppos.copy()}
        out |= {"version": 1, "window_s": self.window_s, "devices": list(self._ids)}
        return out

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state` (of a featurizer with the same ``window_s``)."""
        if int(state["version"]) != 1 or float(state["window_s"]) != self.window_s:
            raise ValueError("featurizer state of another version or window length")
        ids: Sequence[str] = list(state["devices"])
        ports = np.asarray(state["ports"], np.float64)
        if ports.ndim != 3:  # no devices (a JSON round trip loses the empty shape)
            ports = np.zeros((len(ids), 1, 5))
        self._init_arrays(len(ids), max(1, ports.shape[1]))
        n = len(ids)
        for name, attr in (
            ("kind", "_kind"),
            ("rating", "_rating"),
            ("open_w", "_open_w"),
            ("sums", "_sums"),
            ("mins", "_mins"),
            ("maxs", "_maxs"),
            ("last_jockey", "_last_j"),
            ("p_ref", "_p_ref"),
            ("r_ref", "_r_ref"),
            ("warm", "_warm"),
            ("gaps", "_gaps"),
            ("gap_n", "_gap_n"),
            ("n_ports", "_nports"),
        ):
            arr = getattr(self, attr)
            arr[:n] = np.asarray(state[name], arr.dtype).reshape(arr[:n].shape)
        self._ports[:n, : ports.shape[1]] = ports
        self._pkeys = np.asarray(state["port_keys"], np.int64).copy()
        self._ppos = np.asarray(state["port_pos"], np.int64).copy()
        self._ids = list(ids)
        self._index = {d: i for i, d in enumerate(ids)}
        self._refresh()

    def set_profiles(self, profiles: Mapping[str, DeviceProfile]) -> None:
        """A new registry snapshot: kinds and port ratings follow it from now on."""
        self.profiles = profiles
        self._refresh()

    def _refresh(self) -> None:
        self._by_code[:] = -2
        for i, d in enumerate(self._ids):  # current profiles decide kind and rating
            prof = self.profiles.get(d)
            if prof is None or prof.kind not in _KIND_CODE:
                self._kind[i] = -1
            else:
                self._kind[i] = _KIND_CODE[prof.kind]
                self._rating[i] = prof.thresholds.port_rating_a
