"""The inspection draw ("double random, one public"), pure and specified: the same inputs and
seed give the same draw in any language. docs/supervision.md ("The draw, exactly") is the
specification a citizen implements; this module is its reference implementation and
follows it step by step.

**Inputs** (:class:`DrawInputs`): the period, the candidate units (risk level, focus flag,
credit status, draws since the unit was last drawn), the inspectors' public codes, the
excluded (inspector, unit) pairs (declared ties and last period's inspections; their kinds
are not published) and the configuration (:class:`DrawConfig`; probabilities in parts per
million, integers, so that no floating point enters the inputs). They are serialised
canonically (:func:`canonical_json`: UTF-8 JSON, sorted keys, no whitespace, lists sorted
by id) and hashed with SHA-256 (:meth:`DrawInputs.digest`).

**Randomness** (:func:`uniform64`): HMAC-SHA256 keyed by the 32-byte seed over the inputs
hash (64 lowercase hex digits) followed by the canonical JSON of a label such as
``["include","U-WD-001"]``; the first 8 bytes of the MAC, big-endian, are a uniform
integer in [0, 2^64). Every random choice has its own label, so a unit's inclusion does
not depend on the order of the lists or on any other unit.

**Units** (Poisson sampling): a red unit on the focus list is included deterministically
when ``draws_since_drawn`` is null or at least ``focus_every - 1``; any other unit is
included independently with probability ``p = max(level rate, credit rate)`` parts per
million: included iff ``uniform64(["include", id]) * 1_000_000 < p * 2^64`` (exact integer
arithmetic). Inclusion probabilities are therefore known exactly in advance.

**Inspectors** (:func:`assign_inspectors`): ``k`` distinct inspectors per drawn unit
(``inspectors_per_unit``, 2), none excluded for the unit, no inspector on more than
``L = ceil(k*n/m) + load_slack`` units (n drawn units, m inspectors). Units are taken in
random order; each slot takes one of the least-loaded eligible inspectors at random;
when every eligible inspector is full, an augmenting path (breadth-first, in the inspectors'
random order) moves assignments to make room. That search is complete: it fails only when
no assignment within the bound exists, and then the draw fails with an error naming the
unit (:class:`NoAssignment`); nothing is relaxed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _encode_str
from typing import Any

from firewatch.core.draw_matching import augment

ALGORITHM = "firewatch-draw/1"
"""The version of the specification: part of the inputs, so a changed rule is a new name."""

PPM = 1_000_000
TWO_64 = 1 << 64
LEVELS = ("red", "orange", "yellow", "blue")
"""Risk levels, worst first (``risk_current.level``; a unit without a level is ``blue``)."""
CREDIT_STATUSES = ("good", "watch", "blacklisted")
TIE_KINDS = (
    "former_employer",
    "relative",
    "maintenance_company",
    "testing_company",
    "inspected_last_period",
)
"""Why an inspector may not inspect a unit; the last one is derived from the previous draw."""
DECLARED_TIE_KINDS = TIE_KINDS[:-1]
SEED_BYTES = 32
_PERIOD = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,31}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class DrawInputError(ValueError):
    """The inputs (or a result or seed given for verification) are not well formed."""


class NoAssignment(ValueError):
    """No conflict-free assignment of inspectors exists within the load bound; the message
    names the unit that could not be served."""

    def __init__(self, unit_id: str, message: str) -> None:
        super().__init__(message)
        self.unit_id = unit_id


def canonical_json(obj: Any) -> bytes:
    """UTF-8 JSON with sorted keys and no whitespace; non-ASCII characters as themselves."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def commitment(seed: bytes) -> str:
    """The seed's commitment: SHA-256 of its 32 bytes, lowercase hex."""
    return sha256_hex(seed)


def uniform64(seed: bytes, inputs_hash: str, label: Sequence[str | int]) -> int:
    """A uniform integer in [0, 2^64): the first 8 bytes (big-endian) of
    HMAC-SHA256(key=seed, message=inputs_hash + canonical_json(label))."""
    return Uniform(seed, inputs_hash)(label)


class Uniform:
    """:func:`uniform64` for one seed and inputs hash, fast: the keyed MAC over the hash is
    computed once and copied for each label (the bytes are the same)."""

    def __init__(self, seed: bytes, inputs_hash: str) -> None:
        self._base = hmac.new(seed, inputs_hash.encode(), hashlib.sha256)

    def __call__(self, label: Sequence[str | int]) -> int:
        mac = self._base.copy()
        mac.update(_label_json(label))
        return int.from_bytes(mac.digest()[:8], "big")


def _label_json(label: Sequence[str | int]) -> bytes:
    """``canonical_json(list(label))`` for a list of strings and integers, without the
    general encoder (the same bytes: json's own string encoder, no spaces)."""
    parts = [_encode_str(x) if isinstance(x, str) else str(int(x)) for x in label]
    return ("[" + ",".join(parts) + "]").encode()


def ppm(rate: float) -> int:
    """A probability as whole parts per million (what the inputs carry)."""
    if not 0.0 <= rate <= 1.0:
        raise DrawInputError(f"a probability must be between 0 and 1, not {rate}")
    return round(rate * PPM)


@dataclass(frozen=True)
class DrawConfig:
    """How units and inspectors are drawn. Rates are inclusion probabilities per draw, in
    parts per million: per risk level, and per credit status (a unit gets the higher of its
    level's and its status's rate)."""

    level_rates_ppm: Mapping[str, int]
    credit_rates_ppm: Mapping[str, int] = field(default_factory=dict)
    focus_every: int = 1
    inspectors_per_unit: int = 2
    load_slack: int = 1

    def __post_init__(self) -> None:
        if set(self.level_rates_ppm) != set(LEVELS):
            raise DrawInputError(f"level rates must be given for exactly {', '.join(LEVELS)}")
        if not set(self.credit_rates_ppm) <= set(CREDIT_STATUSES):
            raise DrawInputError(f"credit rates are for {', '.join(CREDIT_STATUSES)} only")
        for name, r in {**self.level_rates_ppm, **self.credit_rates_ppm}.items():
            if not isinstance(r, int) or isinstance(r, bool) or not 0 <= r <= PPM:
                raise DrawInputError(f"rate of {name} must be an integer 0..{PPM}, not {r!r}")
        if self.focus_every < 1:
            raise DrawInputError("focus_every must be at least 1 (every draw)")
        if self.inspectors_per_unit < 1:
            raise DrawInputError("inspectors_per_unit must be at least 1")
        if self.load_slack < 0:
            raise DrawInputError("load_slack must not be negative")

    def rate_ppm(self, level: str, credit: str) -> int:
        return max(self.level_rates_ppm[level], self.credit_rates_ppm.get(credit, 0))

    def to_json(self) -> dict[str, Any]:
        return {
            "level_rates_ppm": dict(self.level_rates_ppm),
            "credit_rates_ppm": dict(self.credit_rates_ppm),
            "focus_every": self.focus_every,
            "inspectors_per_unit": self.inspectors_per_unit,
            "load_slack": self.load_slack,
        }


@dataclass(frozen=True)
class Candidate:
    """A unit that may be drawn. ``draws_since_drawn``: how many draws have passed since
    the last draw that included it (0: the previous draw did), None if never drawn."""

    unit_id: str
    level: str = "blue"
    focus: bool = False
    credit: str = "good"
    draws_since_drawn: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.unit_id,
            "level": self.level,
            "focus": self.focus,
            "credit": self.credit,
            "draws_since_drawn": self.draws_since_drawn,
        }


@dataclass(frozen=True)
class DrawInputs:
    """Everything a draw depends on besides the seed (see the module docstring)."""

    period: str
    units: tuple[Candidate, ...]
    inspectors: tuple[str, ...]
    exclusions: frozenset[tuple[str, str]]
    config: DrawConfig

    def __post_init__(self) -> None:
        if not _PERIOD.fullmatch(self.period):
            raise DrawInputError(
                f"period {self.period!r}: 1-32 letters, digits, '.', '_' or '-' (e.g. 2026-Q1)"
            )
        ids = [c.unit_id for c in self.units]
        if len(set(ids)) != len(ids):
            raise DrawInputError("a unit appears twice among the candidates")
        if len(set(self.inspectors)) != len(self.inspectors):
            raise DrawInputError("an inspector code appears twice")
        for c in self.units:
            if c.level not in LEVELS:
                raise DrawInputError(f"unit {c.unit_id}: unknown level {c.level!r}")
            if c.credit not in CREDIT_STATUSES:
                raise DrawInputError(f"unit {c.unit_id}: unknown credit status {c.credit!r}")
            if c.draws_since_drawn is not None and c.draws_since_drawn < 0:
                raise DrawInputError(f"unit {c.unit_id}: draws_since_drawn must be >= 0")

    def to_json(self) -> dict[str, Any]:
        """The published inputs: what :func:`canonical_json` serialises and hashes."""
        return {
            "algorithm": ALGORITHM,
            "period": self.period,
            "config": self.config.to_json(),
            "units": [c.to_json() for c in sorted(self.units, key=lambda c: c.unit_id)],
            "inspectors": sorted(self.inspectors),
            "exclusions": [list(pair) for pair in sorted(self.exclusions)],
        }

    def canonical(self) -> bytes:
        return canonical_json(self.to_json())

    def digest(self) -> str:
        """SHA-256 of the canonical inputs, lowercase hex: the published inputs hash."""
        return sha256_hex(self.canonical())

    @classmethod
    def from_json(cls, obj: Any) -> DrawInputs:
        """The inputs as published (:meth:`to_json`); raises :class:`DrawInputError`
        naming what is wrong."""
        try:
            if obj.get("algorithm") != ALGORITHM:
                raise DrawInputError(
                    f"algorithm {obj.get('algorithm')!r} is not {ALGORITHM!r}: this verifier "
                    "implements only that one"
                )
            cfg = obj["config"]
            config = DrawConfig(
                level_rates_ppm=dict(cfg["level_rates_ppm"]),
                credit_rates_ppm=dict(cfg["credit_rates_ppm"]),
                focus_every=_int(cfg["focus_every"], "focus_every"),
                inspectors_per_unit=_int(cfg["inspectors_per_unit"], "inspectors_per_unit"),
                load_slack=_int(cfg["load_slack"], "load_slack"),
            )
            units = tuple(
                Candidate(
                    unit_id=_str(u["id"], "unit id"),
                    level=_str(u["level"], "level"),
                    focus=_bool(u["focus"], "focus"),
                    credit=_str(u["credit"], "credit"),
                    draws_since_drawn=(
                        None
                        if u["draws_since_drawn"] is None
                        else _int(u["draws_since_drawn"], "draws_since_drawn")
                    ),
                )
                for u in obj["units"]
            )
            inspectors = tuple(_str(code, "inspector code") for code in obj["inspectors"])
            exclusions = frozenset(
                (_str(code, "inspector code"), _str(unit, "unit id"))
                for code, unit in obj["exclusions"]
            )
            return cls(_str(obj["period"], "period"), units, inspectors, exclusions, config)
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            if isinstance(err, DrawInputError):
                raise
            raise DrawInputError(f"the inputs are not a draw's inputs: {err!r}") from err


def _int(v: Any, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise DrawInputError(f"{what} must be an integer, not {v!r}")
    return v


def _str(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise DrawInputError(f"{what} must be a string, not {v!r}")
    return v


def _bool(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise DrawInputError(f"{what} must be true or false, not {v!r}")
    return v


# -- the draw ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DrawnUnit:
    unit_id: str
    reason: str  # "focus" (deterministic) or "sampled"
    rate_ppm: int  # the inclusion probability it had (PPM for focus)
    inspectors: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.unit_id,
            "reason": self.reason,
            "rate_ppm": self.rate_ppm,
            "inspectors": list(self.inspectors),
        }


@dataclass(frozen=True)
class DrawResult:
    inputs_hash: str
    seed_hex: str
    load_bound: int
    units: tuple[DrawnUnit, ...]

    def to_json(self) -> dict[str, Any]:
        """The published result, units sorted by id (inspectors in slot order)."""
        return {
            "algorithm": ALGORITHM,
            "inputs_hash": self.inputs_hash,
            "seed": self.seed_hex,
            "load_bound": self.load_bound,
            "units": [u.to_json() for u in sorted(self.units, key=lambda u: u.unit_id)],
        }

    def assignment(self) -> dict[str, tuple[str, ...]]:
        return {u.unit_id: u.inspectors for u in self.units}


def inclusion_probability_ppm(c: Candidate, config: DrawConfig) -> int:
    """The exact probability (ppm) that the draw includes ``c``: PPM when it is a focus unit
    due this draw, else its rate."""
    return PPM if focus_due(c, config) else config.rate_ppm(c.level, c.credit)


def focus_due(c: Candidate, config: DrawConfig) -> bool:
    """A red unit on the focus list is included when ``focus_every - 1`` draws have passed
    without it (every draw when ``focus_every`` is 1), or if it was never drawn."""
    if not (c.focus and c.level == "red"):
        return False
    return c.draws_since_drawn is None or c.draws_since_drawn >= config.focus_every - 1


def sample_units(inputs: DrawInputs, rng: Uniform) -> list[tuple[str, str, int]]:
    """The drawn units as ``(unit_id, reason, rate_ppm)``, sorted by unit id."""
    out: list[tuple[str, str, int]] = []
    for c in sorted(inputs.units, key=lambda c: c.unit_id):
        if focus_due(c, inputs.config):
            out.append((c.unit_id, "focus", PPM))
            continue
        rate = inputs.config.rate_ppm(c.level, c.credit)
        if rng(["include", c.unit_id]) * PPM < rate * TWO_64:
            out.append((c.unit_id, "sampled", rate))
    return out


def load_bound(n_units: int, n_inspectors: int, per_unit: int, slack: int) -> int:
    """``ceil(per_unit * n_units / n_inspectors) + slack`` (0 when nothing is drawn)."""
    if n_units == 0:
        return 0
    return -(-per_unit * n_units // n_inspectors) + slack


def assign_inspectors(
    units: Sequence[str], inputs: DrawInputs, rng: Uniform
) -> tuple[dict[str, list[str]], int]:
    """Inspectors for the drawn ``units`` (see the module docstring): unit -> codes in slot
    order, and the load bound. Raises :class:`NoAssignment` naming the first unit (in the
    random order) that cannot be served."""
    k = inputs.config.inspectors_per_unit
    codes = list(inputs.inspectors)
    bound = load_bound(len(units), len(codes), k, inputs.config.load_slack) if codes else 0
    if not units:
        return {}, bound
    if len(codes) < k:
        raise NoAssignment(
            min(units), f"{len(codes)} inspectors cannot make inspections of {k} inspectors each"
        )
    order = sorted(units, key=lambda u: (rng(["order", u]), u))
    ranked = sorted(codes, key=lambda j: (rng(["rank", j]), j))
    excluded = inputs.exclusions
    assigned: dict[str, list[str]] = {u: [] for u in units}
    holders: dict[str, list[str]] = {j: [] for j in codes}  # inspector -> units, assign order
    processed: list[str] = []

    def eligible(u: str, j: str) -> bool:
        return (j, u) not in excluded and j not in assigned[u]

    for u in order:
        processed.append(u)
        allowed = [j for j in ranked if (j, u) not in excluded]
        if len(allowed) < k:
            raise NoAssignment(
                u,
                f"unit {u} has {len(allowed)} inspectors without a tie "
                f"({', '.join(allowed) or 'none'}) and needs {k}",
            )
        for slot in range(1, k + 1):
            free = [j for j in ranked if eligible(u, j) and len(holders[j]) < bound]
            if free:
                least = min(len(holders[j]) for j in free)
                tied = [j for j in free if len(holders[j]) == least]  # in rank order
                j = tied[rng(["slot", u, slot]) % len(tied)]
                assigned[u].append(j)
                holders[j].append(u)
                continue
            if not augment(u, ranked, processed, assigned, holders, eligible, bound):
                raise NoAssignment(
                    u,
                    f"no conflict-free assignment: unit {u} cannot get {k} inspectors without "
                    f"a tie while no inspector has more than {bound} units (its inspectors "
                    f"without a tie: {', '.join(allowed)})",
                )
    return assigned, bound


def run_draw(inputs: DrawInputs, seed: bytes, *, inputs_hash: str | None = None) -> DrawResult:
    """The draw: sampled units and their inspectors. Raises :class:`NoAssignment`.
    ``inputs_hash``: ``inputs.digest()`` when the caller has it already (the bench)."""
    if len(seed) != SEED_BYTES:
        raise DrawInputError(f"the seed must be {SEED_BYTES} bytes, not {len(seed)}")
    h = inputs.digest() if inputs_hash is None else inputs_hash
    rng = Uniform(seed, h)
    sampled = sample_units(inputs, rng)
    assigned, bound = assign_inspectors([u for u, _, _ in sampled], inputs, rng)
    units = tuple(DrawnUnit(u, reason, rate, tuple(assigned[u])) for u, reason, rate in sampled)
    return DrawResult(h, seed.hex(), bound, units)


def violations(inputs: DrawInputs, result: DrawResult) -> list[str]:
    """What in ``result`` breaks the rules for ``inputs`` (empty when nothing): an
    inspector twice on a unit, the wrong number, an excluded pair, an unknown inspector or
    unit, a load above the bound. Used by the tests and the fairness bench."""
    problems: list[str] = []
    known_units = {c.unit_id for c in inputs.units}
    known = set(inputs.inspectors)
    k = inputs.config.inspectors_per_unit
    load: dict[str, int] = {}
    for u in result.units:
        if u.unit_id not in known_units:
            problems.append(f"{u.unit_id} is not a candidate")
        if len(u.inspectors) != k or len(set(u.inspectors)) != len(u.inspectors):
            problems.append(f"{u.unit_id} has inspectors {list(u.inspectors)}, not {k} distinct")
        for j in u.inspectors:
            load[j] = load.get(j, 0) + 1
            if j not in known:
                problems.append(f"{u.unit_id}: {j} is not an inspector")
            if (j, u.unit_id) in inputs.exclusions:
                problems.append(f"{u.unit_id}: {j} has a tie to it")
    for j, n in sorted(load.items()):
        if n > result.load_bound:
            problems.append(f"{j} has {n} units, above the bound {result.load_bound}")
    return problems


def parse_seed(text: Any) -> bytes:
    """A published seed (64 hex digits) as bytes; :class:`DrawInputError` otherwise."""
    if not isinstance(text, str) or not _HEX64.fullmatch(text):
        raise DrawInputError(f"a seed is 64 lowercase hex digits, not {text!r}")
    return bytes.fromhex(text)
