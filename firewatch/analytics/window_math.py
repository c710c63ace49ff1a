"""The arithmetic of window features (:mod:`.features`): the features of each kind,
accumulator columns, per-row regression sums, and the feature matrices of closed windows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from firewatch.core.domain import DeviceKind

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Feature names per kind, in the order of :attr:`FeatureWindow.features`.
FEATURES: dict[DeviceKind, tuple[str, ...]] = {
    DeviceKind.WATER: (
        "pressure_mean_rel",  # mean / reference
        "pressure_std_rel",  # std / reference
        "pressure_range_rel",  # (max − min) / reference
        "pressure_slope_rel_per_h",  # least-squares slope per hour / reference
        "jockey_duty",  # fraction of points with the jockey pump running
        "jockey_starts_per_h",  # off → on transitions per hour
        "pump_duty",  # fraction of points with the main pump running
        "level_slope_m_per_h",  # tank level slope (0 without a tank)
        "room_temp_dev_c",  # pump-room temperature − its reference (0 without)
        "coverage",  # points / points expected at the device's median interval
    ),
    DeviceKind.EBIKE_SHED: (
        "port_over_ambient_max_c",  # max over ports and points of port temp − ambient
        "port_temp_slope_max_c_per_min",  # max over ports of the temperature slope
        "current_max_rel",  # max port current / port rating
        "charging_fraction",  # mean fraction of ports charging
        "port_over_median_max_c",  # max of port temp − the shed's median port temp
        "smoke_fraction",  # fraction of points with smoke
        "ambient_slope_c_per_h",  # ambient temperature slope
        "coverage",
    ),
}
KINDS: tuple[DeviceKind, ...] = (DeviceKind.WATER, DeviceKind.EBIKE_SHED)

MIN_POINTS = 3  # a window with fewer points is not emitted
P_REF_FLOOR_KPA = 10.0  # references below this (an empty main) would blow ratios up
FEATURE_LIMIT = 1e6  # features are clipped to ±this (no inf reaches the model)

# Accumulator columns: summed, min-reduced, max-reduced (per device and open window).
SUMMED = (
    "n", "p_n", "p_t", "p_tt", "p_y", "p_ty", "p_yy", "j_n", "j_y", "j_starts", "u_n", "u_y",
    "l_n", "l_t", "l_tt", "l_y", "l_ty", "r_n", "r_y", "a_n", "a_t", "a_tt", "a_y", "a_ty",
    "s_n", "s_y", "c_n", "c_y",
)  # fmt: skip
MINNED = ("t_min", "p_min")
MAXED = ("t_max", "p_max", "d_amb", "i_max", "d_med")
SUM_AT = {name: i for i, name in enumerate(SUMMED)}
MIN_AT = {name: i for i, name in enumerate(MINNED)}
MAX_AT = {name: i for i, name in enumerate(MAXED)}


@dataclass(slots=True)
class Segments:
    """Statistics of (device, window) segments: rows of parallel arrays."""

    dev: I64
    w: I64
    sums: F64  # (m, len(SUMMED))
    mins: F64  # (m, len(MINNED))
    maxs: F64  # (m, len(MAXED))
    ports: F64  # (m, P, 5): n, Σt, Σt², Σy, Σty of each port's temperature


def regression(t: F64, y: F64) -> list[F64]:
    """Columns n, Σt, Σt², Σy, Σty of the valid (non-NaN) points, per row."""
    ok = ~np.isnan(y)
    tz = np.where(ok, t, 0.0)
    yz = np.where(ok, y, 0.0)
    return [ok.astype(np.float64), tz, tz * tz, yz, tz * yz]


def mean_cols(y: F64) -> list[F64]:
    """Columns n, Σy of the valid (non-NaN) points, per row."""
    ok = ~np.isnan(y)
    return [ok.astype(np.float64), np.where(ok, y, 0.0)]


def slope(n: F64, st: F64, stt: F64, sy: F64, sty: F64) -> F64:
    """Least-squares slope per second (NaN with fewer than two distinct times)."""
    den = n * stt - st * st
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (n * sty - st * sy) / den
    return np.where((n >= 2) & (den > 1e-9 * np.maximum(n * stt, 1.0)), out, np.nan)


def ratio(a: F64, b: F64) -> F64:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / b, np.nan)


def columns(cols: Sequence[npt.NDArray[Any]]) -> F64:
    """``np.column_stack`` of 1-D float columns, without its per-column reshaping."""
    out = np.empty((len(cols[0]), len(cols)))
    for i, c in enumerate(cols):
        out[:, i] = c
    return out


def grow(a: npt.NDArray[Any], rows: int, fill: Any) -> npt.NDArray[Any]:
    out = np.full((rows, *a.shape[1:]), fill, dtype=a.dtype)
    out[: len(a)] = a
    return out


def feature_matrices(
    c: Segments,
    sel: I64,
    p_mean: F64,
    r_mean: F64,
    p_ref: F64,
    r_ref: F64,
    iv: F64,
    window_s: float,
    rating: F64,
) -> dict[DeviceKind, F64]:
    """Feature matrices of the selected closed windows (rows as in ``sel``), per kind
    (each matrix has a row per selected window; callers take the rows of their kind)."""
    S, MN, MX, P = c.sums[sel], c.mins[sel], c.maxs[sel], c.ports[sel]
    hours = window_s / 3600.0

    def s(name: str) -> F64:
        return S[:, SUM_AT[name]]

    def slope_of(prefix: str) -> F64:
        return slope(*(s(prefix + x) for x in ("_n", "_t", "_tt", "_y", "_ty")))

    ref = np.maximum(np.nan_to_num(p_ref, nan=P_REF_FLOOR_KPA), P_REF_FLOOR_KPA)
    var = np.maximum(ratio(s("p_yy"), s("p_n")) - p_mean**2, 0.0)
    coverage = s("n") * iv / window_s
    water = np.column_stack(
        [
            np.nan_to_num(p_mean / ref, nan=1.0),
            np.sqrt(var) / ref,
            (MX[:, MAX_AT["p_max"]] - MN[:, MIN_AT["p_min"]]) / ref,
            slope_of("p") * 3600.0 / ref,
            ratio(s("j_y"), s("j_n")),
            s("j_starts") / hours,
            ratio(s("u_y"), s("u_n")),
            slope_of("l") * 3600.0,
            r_mean - r_ref,
            coverage,
        ]
    )
    pslope = slope(P[..., 0], P[..., 1], P[..., 2], P[..., 3], P[..., 4]) * 60.0
    pslope = np.where((P[..., 0] >= MIN_POINTS) & ~np.isnan(pslope), pslope, -np.inf)
    pmax = pslope.max(axis=1) if P.shape[1] else np.full(len(sel), -np.inf)
    shed = np.column_stack(
        [
            MX[:, MAX_AT["d_amb"]],
            np.where(np.isfinite(pmax), pmax, np.nan),
            MX[:, MAX_AT["i_max"]] / rating,
            ratio(s("c_y"), s("c_n")),
            MX[:, MAX_AT["d_med"]],
            ratio(s("s_y"), s("s_n")),
            slope_of("a") * 3600.0,
            coverage,
        ]
    )
    return {
        kind: np.clip(np.nan_to_num(x, nan=0.0), -FEATURE_LIMIT, FEATURE_LIMIT)
        for kind, x in ((DeviceKind.WATER, water), (DeviceKind.EBIKE_SHED, shed))
    }
