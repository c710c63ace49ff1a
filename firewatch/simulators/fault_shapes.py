"""How faults look over time: the slow-onset ramps and the malformed payloads.

Pure functions of a resolved :class:`~firewatch.simulators.model.Fault` (or a body), shared
by fault resolution (``faults.py``) and the behaviours (``behaviour.py``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import orjson

from firewatch.simulators.model import Fault

#: Fault types that can ramp in (``onset``): their strength grows linearly from 0 at the
#: fault's start to full at ``start + onset_s`` (see :func:`ramp` and :func:`ramped_s`).
RAMPED = frozenset({"pipe_leak", "tank_draining", "sensor_drift", "thermal_runaway_precursor"})


def ramp(f: Fault, t: float) -> float:
    """The fault's strength at ``t`` in [0, 1]: 1 without an onset."""
    onset = float(f.params.get("onset_s", 0.0))
    if onset <= 0:
        return 1.0
    return min(1.0, max(0.0, (t - f.start) / onset))


def ramped_s(f: Fault, t: float) -> float:
    """Seconds at full strength equivalent to the fault's course up to ``t`` (the integral
    of :func:`ramp` from its start): ``t - start`` without an onset."""
    x = max(0.0, t - f.start)
    onset = float(f.params.get("onset_s", 0.0))
    if onset <= 0:
        return x
    return x * x / (2 * onset) if x < onset else x - onset / 2


def draw_span(value: Any, rng: random.Random) -> float | None:
    """A number, or one drawn uniformly from a ``[low, high]`` pair; ``None`` stays."""
    if isinstance(value, list | tuple):
        lo, hi = float(value[0]), float(value[1])
        return rng.uniform(lo, hi)
    return None if value is None else float(value)


def malformed_payload(body: Mapping[str, Any], ts: str, variant: str) -> bytes:
    """A payload that breaks the contract on purpose (it must never validate).

    ``truncated``: cut JSON; ``nan``: a NaN reading (not JSON, not finite);
    ``wrong_type``: numbers sent as strings, the counter included; ``missing_field``: no
    ``seq`` and the first required field dropped. None carries a valid integer ``seq``,
    so a malformed message never disturbs a device's sequence.
    """
    full = {"ts": ts, **body}
    if variant == "truncated":
        raw = orjson.dumps({"seq": 1, **full})
        return raw[: max(1, len(raw) // 2)]
    numbers = [k for k, v in full.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    if variant == "nan":
        sentinel = "\x00nan\x00"
        raw = orjson.dumps({"seq": 1, **full, (numbers or ["value"])[0]: sentinel})
        return raw.replace(orjson.dumps(sentinel), b"NaN")
    if variant == "wrong_type":
        strs = {k: str(full[k]) for k in numbers}
        return orjson.dumps({"seq": "1", **full, **strs})
    first = next(iter(body), "state")  # missing_field
    return orjson.dumps({k: v for k, v in full.items() if k != first})
