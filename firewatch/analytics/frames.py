"""Columnar batches of stored rows: the detectors' input.

A :class:`Batch` holds what one read of the feed (or one slice of an offline replay)
returned: telemetry as numpy columns (:class:`TelemetryFrame`), and the rarer panel
events, device statuses and dead letters as row tuples (``firewatch.core.rows``).
Detectors work on whole columns at once; nothing here loops per value except the
conversion from row tuples, which happens once per row.

Times are Unix seconds (``float64``); a missing reading is ``NaN`` (booleans too: 0.0,
1.0 or NaN). Charging ports are flattened in CSR form: the ports of telemetry row ``i``
are ``port_*[port_offsets[i]:port_offsets[i + 1]]``, ordered by port number.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from firewatch.core.rows import DeadLetter, EventRow, StatusRow, TelemetryRow

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
B = npt.NDArray[np.bool_]

_NAN = float("nan")


def _f(v: float | bool | None) -> float:
    return _NAN if v is None else float(v)


@dataclass(slots=True)
class TelemetryFrame:
    """Telemetry rows as columns (see the module docstring for conventions)."""

    device: list[str]
    seq: I64
    ts: F64
    received: F64
    pressure: F64
    level: F64
    pump: F64
    jockey: F64
    room_temp: F64
    ambient: F64
    smoke: F64
    port_offsets: I64
    port_no: I32
    port_temp: F64
    port_current: F64
    port_charging: B

    def __len__(self) -> int:
        return len(self.device)

    @property
    def port_row(self) -> I64:
        """The telemetry row index of each flattened port value."""
        counts = np.diff(self.port_offsets)
        return np.repeat(np.arange(len(self.device), dtype=np.int64), counts)

    def points(self) -> int:
        """Readings in the frame (each present value counts once): the benchmark's unit."""
        scalar = 7 * len(self.device) - sum(
            int(np.count_nonzero(np.isnan(col)))
            for col in (
                self.pressure,
                self.level,
                self.pump,
                self.jockey,
                self.room_temp,
                self.ambient,
                self.smoke,
            )
        )
        return scalar + 3 * len(self.port_no)

    @classmethod
    def empty(cls) -> TelemetryFrame:
        return cls.from_rows([])

    @classmethod
    def from_rows(cls, rows: Sequence[TelemetryRow]) -> TelemetryFrame:
        """Columns from row tuples in :class:`~firewatch.core.rows.TelemetryRow` order
        (``ts`` and ``received_at`` as aware datetimes or Unix seconds)."""
        n = len(rows)
        device: list[str] = [""] * n
        seq = np.empty(n, np.int64)
        scal = np.empty((9, n), np.float64)
        offsets = np.zeros(n + 1, np.int64)
        pno: list[int] = []
        ptemp: list[float] = []
        pcur: list[float] = []
        pchg: list[bool] = []
        for i, row in enumerate(rows):
            device[i] = row.device_id
            seq[i] = row.seq
            ts, rx = row.ts, row.received_at
            scal[0, i] = ts if isinstance(ts, float | int) else ts.timestamp()
            scal[1, i] = rx if isinstance(rx, float | int) else rx.timestamp()
            scal[2, i] = _f(row.pressure_kpa)
            scal[3, i] = _f(row.level_m)
            scal[4, i] = _f(row.pump_running)
            scal[5, i] = _f(row.jockey_running)
            scal[6, i] = _f(row.room_temp_c)
            scal[7, i] = _f(row.ambient_c)
            scal[8, i] = _f(row.smoke)
            if row.port_no:
                pno.extend(row.port_no)
                ptemp.extend(row.port_temp_c or ())
                pcur.extend(row.port_current_a or ())
                pchg.extend(row.port_charging or ())
            offsets[i + 1] = len(pno)
        smoke = scal[8].copy()
        return cls(
            device=device,
            seq=seq,
            ts=scal[0].copy(),
            received=scal[1].copy(),
            pressure=scal[2].copy(),
            level=scal[3].copy(),
            pump=scal[4].copy(),
            jockey=scal[5].copy(),
            room_temp=scal[6].copy(),
            ambient=scal[7].copy(),
            smoke=smoke,
            port_offsets=offsets,
            port_no=np.asarray(pno, np.int32),
            port_temp=np.asarray(ptemp, np.float64),
            port_current=np.asarray(pcur, np.float64),
            port_charging=np.asarray(pchg, np.bool_),
        )

    def take(self, rows: I64) -> TelemetryFrame:
        """A new frame with the given rows (in the given order), ports included."""
        counts = np.diff(self.port_offsets)[rows]
        starts = self.port_offsets[:-1][rows]
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        # index of every port value of the selected rows, in row order
        pidx = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
        return TelemetryFrame(
            device=[self.device[i] for i in rows.tolist()],
            seq=self.seq[rows],
            ts=self.ts[rows],
            received=self.received[rows],
            pressure=self.pressure[rows],
            level=self.level[rows],
            pump=self.pump[rows],
            jockey=self.jockey[rows],
            room_temp=self.room_temp[rows],
            ambient=self.ambient[rows],
            smoke=self.smoke[rows],
            port_offsets=offsets,
            port_no=self.port_no[pidx],
            port_temp=self.port_temp[pidx],
            port_current=self.port_current[pidx],
            port_charging=self.port_charging[pidx],
        )


@dataclass(slots=True)
class Batch:
    """One unit of work for the detectors: rows committed (or replayed) together.

    ``now`` is the server time the batch is processed at (the injected clock): silence
    is measured against it.
    """

    now: float
    telemetry: TelemetryFrame = field(default_factory=TelemetryFrame.empty)
    events: list[EventRow] = field(default_factory=list)
    statuses: list[StatusRow] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.telemetry) + len(self.events) + len(self.statuses) + len(self.dead_letters)

    def points(self) -> int:
        return self.telemetry.points() + len(self.events) + len(self.statuses)


def concat(frames: Iterable[TelemetryFrame]) -> TelemetryFrame:
    """One frame with the rows of ``frames`` in order."""
    fs = [f for f in frames if len(f)]
    if not fs:
        return TelemetryFrame.empty()
    if len(fs) == 1:
        return fs[0]
    offsets = [np.zeros(1, np.int64)]
    base = 0
    for f in fs:
        offsets.append(f.port_offsets[1:] + base)
        base += int(f.port_offsets[-1])
    return TelemetryFrame(
        device=[d for f in fs for d in f.device],
        seq=np.concatenate([f.seq for f in fs]),
        ts=np.concatenate([f.ts for f in fs]),
        received=np.concatenate([f.received for f in fs]),
        pressure=np.concatenate([f.pressure for f in fs]),
        level=np.concatenate([f.level for f in fs]),
        pump=np.concatenate([f.pump for f in fs]),
        jockey=np.concatenate([f.jockey for f in fs]),
        room_temp=np.concatenate([f.room_temp for f in fs]),
        ambient=np.concatenate([f.ambient for f in fs]),
        smoke=np.concatenate([f.smoke for f in fs]),
        port_offsets=np.concatenate(offsets),
        port_no=np.concatenate([f.port_no for f in fs]),
        port_temp=np.concatenate([f.port_temp for f in fs]),
        port_current=np.concatenate([f.port_current for f in fs]),
        port_charging=np.concatenate([f.port_charging for f in fs]),
    )
