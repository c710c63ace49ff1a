"""Checking a published draw from its published document alone (``GET /public/draws/{id}``,
or the same JSON in a file): no database, no secret, nothing but ``core/draw.py``.

Three checks, each a line of the report:

1. **inputs hash**: SHA-256 of the canonical JSON of the published ``inputs`` equals the
   published ``inputs_hash`` (what was published when the draw was committed);
2. **seed commitment**: SHA-256 of the revealed ``seed`` equals ``seed_commitment`` (the
   seed is the one committed to before anyone could see the result);
3. **result**: the draw recomputed from the inputs and the seed equals the published
   ``result``, unit by unit and inspector by inspector.

A draw not revealed yet has no seed: only the first check can run, and the report says the
verification is incomplete.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from firewatch.core.draw import (
    DrawInputError,
    DrawInputs,
    NoAssignment,
    canonical_json,
    commitment,
    parse_seed,
    run_draw,
    sha256_hex,
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class VerifyReport:
    """Every check that could run; ``complete`` when the seed was published (all three)."""

    draw: str
    checks: list[Check] = field(default_factory=list)
    complete: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        out = [f"draw {self.draw}:"]
        out += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]
        if self.ok and self.complete:
            out.append("  verified: the published result is the draw of the published inputs")
        elif self.ok:
            out.append("  incomplete: the seed is not published yet; run again once it is")
        else:
            out.append("  NOT verified")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "draw": self.draw,
            "ok": self.ok,
            "complete": self.complete,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }


def verify_document(doc: Mapping[str, Any]) -> VerifyReport:
    """Verify a published draw document (see the module docstring). Never raises for a
    malformed document: what is wrong is a failed check."""
    report = VerifyReport(draw=f"{doc.get('id', '?')} ({doc.get('period', '?')})")
    raw_inputs = doc.get("inputs")
    published_hash = doc.get("inputs_hash")
    try:
        inputs = DrawInputs.from_json(raw_inputs)
    except DrawInputError as err:
        report.checks.append(Check("inputs hash", False, f"the inputs cannot be read: {err}"))
        return report
    recomputed = sha256_hex(canonical_json(raw_inputs))
    if recomputed != inputs.digest():
        # the document's inputs hold something the specification does not (an extra key)
        report.checks.append(
            Check("inputs hash", False, "the inputs carry fields the specification does not")
        )
        return report
    same = recomputed == published_hash
    report.checks.append(
        Check(
            "inputs hash",
            same,
            f"sha256(inputs) = {recomputed}" + ("" if same else f", published {published_hash!r}"),
        )
    )
    if not same:
        return report
    seed_text = doc.get("seed")
    if seed_text is None:
        return report
    try:
        seed = parse_seed(seed_text)
    except DrawInputError as err:
        report.checks.append(Check("seed commitment", False, str(err)))
        return report
    published_commitment = doc.get("seed_commitment")
    got = commitment(seed)
    committed = got == published_commitment
    report.checks.append(
        Check(
            "seed commitment",
            committed,
            f"sha256(seed) = {got}"
            + ("" if committed else f", published commitment {published_commitment!r}"),
        )
    )
    report.complete = True
    if not committed:
        return report
    report.checks.append(_check_result(inputs, seed, doc.get("result")))
    return report


def _check_result(inputs: DrawInputs, seed: bytes, published: Any) -> Check:
    if not isinstance(published, Mapping):
        return Check("result", False, "no result is published")
    try:
        expected = run_draw(inputs, seed).to_json()
    except NoAssignment as err:
        # A draw cancelled before its reveal may have inputs that admit no assignment:
        # it publishes the reason instead of a result, and that is checked the same way.
        if published.get("error") == str(err) and published.get("seed") == seed.hex():
            return Check("result", True, f"recomputed: no assignment exists ({err})")
        return Check("result", False, f"the inputs admit no draw: {err}")
    if canonical_json(expected) == canonical_json(published):
        n = len(expected["units"])
        return Check("result", True, f"recomputed: the same {n} units and inspectors")
    return Check("result", False, "; ".join(_differences(expected, published)))


def _differences(expected: Mapping[str, Any], published: Mapping[str, Any]) -> list[str]:
    """What differs, in a few words (the first differences only)."""
    out: list[str] = []
    for key in ("algorithm", "inputs_hash", "seed", "load_bound"):
        if expected.get(key) != published.get(key):
            out.append(f"{key}: published {published.get(key)!r}, recomputed {expected[key]!r}")
    mine = {u["id"]: u for u in expected["units"]}
    units = published.get("units")
    theirs = (
        {u.get("id"): u for u in units if isinstance(u, Mapping)} if isinstance(units, list) else {}
    )
    for uid in sorted(mine.keys() - theirs.keys())[:5]:
        out.append(f"unit {uid} is drawn but not published")
    for uid in sorted(theirs.keys() - mine.keys(), key=str)[:5]:
        out.append(f"unit {uid} is published but not drawn")
    for uid in sorted(mine.keys() & theirs.keys()):
        if canonical_json(mine[uid]) != canonical_json(theirs[uid]):
            out.append(f"unit {uid}: published {theirs[uid]}, recomputed {mine[uid]}")
        if len(out) >= 8:
            break
    return out or ["the published result differs from the recomputed one"]
