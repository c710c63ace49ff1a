"""Vectorised per-series state: stable integer ids for series keys and named numpy arrays.

Detectors keep their state per *series* (one device's metric, or one charging port's)
in columns of a :class:`SeriesTable`, indexed by a small integer id, so that a batch of
points updates thousands of series with a handful of numpy operations. A batch may hold
several points of one series; :func:`rounds` splits it into rounds in which each series
appears at most once, in time order, so each round is one vectorised step.

Tables grow by doubling; their whole state exports to plain numpy arrays and JSON-able
keys (:meth:`SeriesTable.state`), which is what the checkpoint stores.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

try:  # the ufunc np.clip ends in, without its Python-level wrapper (numpy >= 2)
    from numpy._core.umath import clip as _clip  # type: ignore[attr-defined,unused-ignore]
except ImportError:
    try:  # numpy 1.26
        from numpy.core.umath import clip as _clip  # type: ignore[attr-defined,no-redef,unused-ignore]
    except ImportError:  # a numpy that moved it again: the public wrapper, same values
        _clip = np.clip

if TYPE_CHECKING:  # episodes.py imports this module
    from firewatch.analytics.episodes import EpisodeTracker

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

SeriesKey = tuple[str, int]  # (device id, component: port number, 0 for the device itself)
_COMP_SPAN = 1 << 20  # components (port numbers) per device in the integer key


class _Codes(dict[str, int]):
    """Device id -> small integer, assigning the next one to an unknown id (so a whole
    column of ids maps through ``__getitem__`` at C speed)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self._lock = threading.Lock()

    def __missing__(self, device: str) -> int:
        with self._lock:  # engines in two threads must not hand out one code twice
            code = self.get(device)
            if code is None:
                code = self[device] = len(self.names)
                self.names.append(device)
            return code


class DeviceCodes:
    """Process-wide codes of device ids, shared by every :class:`SeriesTable`.

    Every table of a batch maps the same column of device ids (the frame's), so the codes
    of the last two lists asked for are kept: a batch's string lookups are done once,
    not once per table. A list handed to the detectors is not changed afterwards (frames
    are built once); a list of another length is never taken for the cached one.
    """

    def __init__(self) -> None:
        self.index = _Codes()
        self._recent: tuple[tuple[Sequence[str], I64], ...] = ()

    def __len__(self) -> int:
        return len(self.index.names)

    def code(self, device: str) -> int:
        return self.index[device]

    def name(self, code: int) -> str:
        return self.index.names[code]

    def codes(self, devices: Sequence[str]) -> I64:
        """The code of every id in ``devices``, in order."""
        recent = self._recent
        for seen, codes in recent:
            if seen is devices and len(codes) == len(devices):
                return codes
        codes = np.fromiter(map(self.index.__getitem__, devices), np.int64, len(devices))
        self._recent = ((devices, codes), *recent[:1])
        return codes


#: the codes every table uses (see :class:`DeviceCodes`)
DEVICES = DeviceCodes()


class SeriesTable:
    """Named state columns for a growing set of series.

    ``columns`` maps a column name to its initial value (a float; booleans are stored as
    0.0/1.0 and integers as floats, so one dtype serves all). ``wide`` columns are 2-D
    (``name -> (width, initial)``), e.g. 24 hour-of-day buckets.
    """

    def __init__(
        self,
        columns: Mapping[str, float],
        wide: Mapping[str, tuple[int, float]] | None = None,
        capacity: int = 64,
    ) -> None:
        self._init = dict(columns)
        self._wide_init = dict(wide or {})
        self.keys: list[SeriesKey] = []
        self.index: dict[SeriesKey, int] = {}
        # Device codes of this table, in the order the table first saw each device (new
        # series of one call get their ids in that order): ``_rank`` maps a shared code
        # (:data:`DEVICES`) to it, ``_names`` back to the id.
        self._names: list[str] = []
        self._rank = np.full(0, -1, np.int64)
        self._sid0 = np.full(0, -1, np.int64)  # table code -> id of its (device, 0) series
        self._int_keys: list[int] = []
        self._sorted_keys = np.zeros(0, np.int64)
        self._sorted_sids = np.zeros(0, np.int64)
        self._cap = max(1, capacity)
        self.cols: dict[str, F64] = {k: np.full(self._cap, v) for k, v in self._init.items()}
        self.wide: dict[str, F64] = {
            k: np.full((self._cap, w), v) for k, (w, v) in self._wide_init.items()
        }

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, name: str) -> F64:
        return self.cols[name] if name in self.cols else self.wide[name]

    def ids(
        self,
        devices: Sequence[str],
        components: Sequence[int] | I64 | None = None,
        rows: I64 | None = None,
        *,
        only_rows: bool = False,
    ) -> I64:
        """Series ids for points, creating new series as needed.

        Point ``i`` belongs to device ``devices[rows[i]]`` (``rows`` None: ``devices[i]``)
        and component ``components[i]`` (None: 0). The table learns every device of
        ``devices`` (``only_rows``: only those of ``rows``) in order; new series of one call
        get ids in that order. Costs the device list's string lookups once per batch (they
        are shared, :class:`DeviceCodes`) and a few vectorised steps; only new series go
        through Python.
        """
        return self.ids_of(DEVICES.codes(devices), components, rows, only_rows=only_rows)

    def ids_of(
        self,
        shared: I64,
        components: Sequence[int] | I64 | None = None,
        rows: I64 | None = None,
        *,
        only_rows: bool = False,
    ) -> I64:
        """:meth:`ids` for devices given by their shared codes (:data:`DEVICES`)."""
        if rows is None:
            codes = self._codes(shared)
        elif only_rows:
            codes = self._codes(shared[rows])
        else:
            codes = self._codes(shared)[rows]
        if components is None:
            found = self._sid0[codes]
            keys = None
        else:
            keys = codes * _COMP_SPAN + np.asarray(components, np.int64)
            found = self._lookup(keys)
        if len(found) and found.min() < 0:
            if keys is None:
                keys = codes * _COMP_SPAN
            for key in np.unique(keys[found < 0]).tolist():
                self._add((self._names[key // _COMP_SPAN], key % _COMP_SPAN))
            self._reindex()
            found = self._sid0[codes] if components is None else self._lookup(keys)
        return found

    def _codes(self, shared: I64) -> I64:
        """This table's codes for shared codes, learning new devices in order."""
        if len(self._rank) < len(DEVICES):
            self._rank = _extend(self._rank, 2 * len(DEVICES), -1)
        codes = self._rank[shared]
        if len(codes) and codes.min() < 0:
            for code in shared[codes < 0].tolist():
                if self._rank[code] < 0:
                    self._learn(code)
            codes = self._rank[shared]
        return codes

    def _learn(self, shared: int) -> int:
        code = len(self._names)
        self._rank[shared] = code
        self._names.append(DEVICES.name(shared))
        if len(self._sid0) <= code:
            self._sid0 = _extend(self._sid0, 2 * code + 16, -1)
        return code

    def _code(self, device: str) -> int:
        shared = DEVICES.code(device)
        if len(self._rank) <= shared:
            self._rank = _extend(self._rank, 2 * len(DEVICES), -1)
        code = int(self._rank[shared])
        return code if code >= 0 else self._learn(shared)

    def _lookup(self, keys: I64) -> I64:
        """Series id per key, -1 where unknown (binary search in the sorted keys)."""
        sk = self._sorted_keys
        if len(sk) == 0:
            return np.full(len(keys), -1, np.int64)
        i = np.searchsorted(sk, keys)
        np.minimum(i, len(sk) - 1, out=i)
        return np.where(sk[i] == keys, self._sorted_sids[i], -1)

    def _reindex(self) -> None:
        keys = np.asarray(self._int_keys, np.int64)
        order = np.argsort(keys, kind="stable")
        self._sorted_keys, self._sorted_sids = keys[order], order.astype(np.int64)

    def _add(self, key: SeriesKey) -> int:
        sid = len(self.keys)
        if sid >= self._cap:
            self._grow(2 * self._cap)
        self.keys.append(key)
        self.index[key] = sid
        code = self._code(key[0])
        self._int_keys.append(code * _COMP_SPAN + key[1])
        if key[1] == 0:
            self._sid0[code] = sid
        return sid

    def _grow(self, cap: int) -> None:
        for k, v in self._init.items():
            col = np.full(cap, v)
            col[: self._cap] = self.cols[k]
            self.cols[k] = col
        for k, (w, v) in self._wide_init.items():
            arr = np.full((cap, w), v)
            arr[: self._cap] = self.wide[k]
            self.wide[k] = arr
        self._cap = cap

    def state(self) -> dict[str, Any]:
        """Arrays (trimmed to the used rows) and keys; see :meth:`restore`."""
        n = len(self.keys)
        return {
            "keys": [[d, c] for d, c in self.keys],
            "cols": {k: v[:n].copy() for k, v in self.cols.items()},
            "wide": {k: v[:n].copy() for k, v in self.wide.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Replace the contents with an exported :meth:`state`. Columns this version does
        not know are ignored; columns the state lacks keep their initial values (so a
        checkpoint from an older release still loads)."""
        keys = [(str(d), int(c)) for d, c in state["keys"]]
        self.keys, self.index, self._int_keys = [], {}, []
        self._sid0[:] = -1
        self._cap = max(64, len(keys))
        self.cols = {k: np.full(self._cap, v) for k, v in self._init.items()}
        self.wide = {k: np.full((self._cap, w), v) for k, (w, v) in self._wide_init.items()}
        for key in keys:
            self._add(key)
        self._reindex()
        n = len(keys)
        for k, v in state.get("cols", {}).items():
            if k in self.cols and len(v) == n:
                self.cols[k][:n] = v
        for k, v in state.get("wide", {}).items():
            if k in self.wide and v.shape == (n, self.wide[k].shape[1]):
                self.wide[k][:n] = v


def _extend(a: I64, size: int, fill: int) -> I64:
    out = np.full(size, fill, np.int64)
    out[: len(a)] = a
    return out


class Checkpointable(Protocol):
    """Anything whose state goes into the checkpoint."""

    def state(self) -> Any: ...

    def restore(self, state: Any) -> None: ...


class Composite:
    """State of a detector family = the states of its named parts (see :meth:`parts`)."""

    def parts(self) -> Mapping[str, Checkpointable]:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {name: part.state() for name, part in self.parts().items()}

    def restore(self, state: Mapping[str, Any]) -> None:
        for name, part in self.parts().items():
            part.restore(state[name])


class TrackedTable:
    """State of a detector with one series table and one episode tracker."""

    table: SeriesTable
    tracker: EpisodeTracker

    def state(self) -> dict[str, Any]:
        return {"table": self.table.state(), "open": self.tracker.state()}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.table.restore(state["table"])
        self.tracker.restore(state["open"])


def rounds(sids: I64, t: F64) -> Iterator[I64]:
    """Positions of the points, round by round: in each round every series appears at
    most once, and a series' points come in time order across rounds (stable for ties)."""
    if len(sids) == 0:
        return
    order = np.lexsort((t, sids))
    s = sids[order]
    if len(s) == 1 or (s[1:] != s[:-1]).all():  # the common case: one point per series
        yield order
        return
    starts = run_starts(s)
    run = np.repeat(starts, np.diff(np.append(starts, len(s))))
    rank = np.arange(len(s)) - run
    top = int(rank.max())
    if top == 0:
        yield order
        return
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(top + 2))
    for r in range(top + 1):
        yield order[by_rank[bounds[r] : bounds[r + 1]]]


def clip(x: F64, lo: float | F64, hi: float | F64) -> F64:
    """``np.clip(x, lo, hi)`` of a float array: the same ufunc, so the same values, without
    the Python-level wrapper (which costs more than the clipping on a round's few points)."""
    out: F64 = _clip(x, lo, hi)
    return out


def nz(x: F64, value: float) -> F64:
    """``x`` with NaN replaced by ``value`` (``np.nan_to_num`` is several times slower on
    the small arrays of one round)."""
    out: F64 = np.where(np.isnan(x), value, x)
    return out


def run_starts(sorted_ids: npt.NDArray[Any]) -> I64:
    """Start positions of the runs of equal values in a sorted array."""
    if len(sorted_ids) == 0:
        return np.zeros(0, np.int64)
    change = np.empty(len(sorted_ids), np.bool_)
    change[0] = True
    np.not_equal(sorted_ids[1:], sorted_ids[:-1], out=change[1:])
    return change.nonzero()[0]


def ewma(old: F64, new: F64, alpha: F64 | float) -> F64:
    """``old + alpha * (new - old)``; where ``old`` is NaN the result is ``new``."""
    out: F64 = np.where(np.isnan(old), new, old + alpha * (new - old))
    return out


def hour_weights(local_hours: F64, buckets: int = 24) -> tuple[I64, I64, F64]:
    """Linear interpolation between hour-of-day bucket centres: (lower bucket, upper
    bucket, weight of the upper) for each point's local hour in [0, 24)."""
    pos = local_hours * (buckets / 24.0) - 0.5
    lo = np.floor(pos)
    w = pos - lo
    lo_i = (lo.astype(np.int64)) % buckets
    return lo_i, (lo_i + 1) % buckets, w
