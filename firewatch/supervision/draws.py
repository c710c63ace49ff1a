"""Commit, reveal, publish, cancel and verify inspection draws: the stored side of
``core/draw.py`` (docs/supervision.md, "Draws").

* :func:`commit_draw` snapshots the inputs from the database (every unit with its current
  risk level, focus flag and credit status, how many draws ago it was last drawn; the
  active inspectors; declared ties and the previous draw's assignments as exclusions),
  generates the seed (``secrets.token_bytes(32)``) and stores the canonical inputs, their
  SHA-256 and the seed's commitment, the seed apart. Nobody, this code included, sees a
  result before the commitment is stored.
* :func:`reveal_draw` computes the result from the stored inputs and seed and stores both
  (status ``revealed``: supervisors plan the inspections; the public sees the commitment).
* :func:`publish_draw` makes the seed and the result public.
* :func:`cancel_draw` needs a reason; a draw cancelled before its reveal is revealed in the
  same step, so a cancellation never hides a result.

Each runs in one transaction on the caller's connection; the database refuses any change
that would re-roll a draw (migration 0010).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from firewatch.core.draw import (
    ALGORITHM,
    LEVELS,
    Candidate,
    DrawConfig,
    DrawInputs,
    NoAssignment,
    canonical_json,
    commitment,
    inclusion_probability_ppm,
    ppm,
    run_draw,
)
from firewatch.core.draw_verify import VerifyReport, verify_document
from firewatch.core.settings import Settings
from firewatch.core.supervision import Conflict, DrawRecord, DrawStatus, SupervisionError
from firewatch.storage import draws as store


def draw_config(settings: Settings) -> DrawConfig:
    """The draw's configuration from the settings (probabilities as whole ppm)."""
    return DrawConfig(
        level_rates_ppm={lv: ppm(settings.supervision_level_rates[lv]) for lv in LEVELS},
        credit_rates_ppm={k: ppm(v) for k, v in settings.supervision_credit_rates.items()},
        focus_every=settings.supervision_focus_every,
        inspectors_per_unit=settings.supervision_inspectors_per_unit,
        load_slack=settings.supervision_load_slack,
    )


def _history(records: Sequence[DrawRecord]) -> list[dict[str, list[str]]]:
    """Each earlier live draw's assignment (unit -> inspector codes), oldest first."""
    out: list[dict[str, list[str]]] = []
    for r in records:
        if r.result is None:
            raise Conflict(
                f"draw {r.id} ({r.period}) is committed but not revealed: reveal it (or cancel "
                "it with a reason) before the next draw, whose inputs depend on its result"
            )
        units = json.loads(r.result).get("units", [])
        out.append({u["id"]: list(u["inspectors"]) for u in units})
    return out


def snapshot_inputs(conn: psycopg.Connection[Any], settings: Settings, period: str) -> DrawInputs:
    """The inputs of a draw for ``period`` as the database stands now (see the module
    docstring). Refuses (:class:`SupervisionError`) inputs that could not be drawn: fewer
    inspectors than one inspection needs, or a unit with too few inspectors without a tie."""
    config = draw_config(settings)
    history = _history(store.live_draws(conn))
    previous = history[-1] if history else {}
    exclusions = store.declared_exclusions(conn)
    exclusions |= {(code, unit) for unit, codes in previous.items() for code in codes}
    inspectors = store.active_inspector_codes(conn)
    units = []
    for snap in store.unit_snapshot(conn):
        since: int | None = None
        for back, assignment in enumerate(reversed(history)):
            if snap.unit_id in assignment:
                since = back
                break
        units.append(Candidate(snap.unit_id, snap.level, snap.focus, snap.credit, since))
    active = set(inspectors)
    exclusions = {(c, u) for c, u in exclusions if c in active}
    inputs = DrawInputs(period, tuple(units), tuple(inspectors), frozenset(exclusions), config)
    k = config.inspectors_per_unit
    if len(inspectors) < k:
        raise SupervisionError(
            f"{len(inspectors)} active inspectors: a draw needs at least {k} "
            "(`firewatch supervise inspectors add`)"
        )
    short = [
        c.unit_id
        for c in units
        if inclusion_probability_ppm(c, config) > 0
        and sum(1 for j in inspectors if (j, c.unit_id) not in exclusions) < k
    ]
    if short:
        raise SupervisionError(
            f"units {', '.join(short[:10])} have fewer than {k} inspectors without a tie; "
            "add inspectors before drawing"
        )
    return inputs


def commit_draw(
    conn: psycopg.Connection[Any], settings: Settings, period: str, *, actor: str, at: datetime
) -> DrawRecord:
    """Snapshot, seed, commit (see the module docstring)."""
    seed = secrets.token_bytes(32)
    with conn.transaction():
        inputs = snapshot_inputs(conn, settings, period)
        text = inputs.canonical().decode()
        return store.insert_draw(
            conn,
            period=period,
            algorithm=ALGORITHM,
            inputs=text,
            inputs_hash=inputs.digest(),
            seed_commitment=commitment(seed),
            seed=seed,
            at=at,
            actor=actor,
        )


def _result_text(draw: DrawRecord, seed: bytes) -> str:
    inputs = DrawInputs.from_json(json.loads(draw.inputs))
    try:
        return canonical_json(run_draw(inputs, seed).to_json()).decode()
    except NoAssignment as err:
        if draw.status is DrawStatus.COMMITTED:  # only a cancellation stores it
            return canonical_json(
                {
                    "algorithm": ALGORITHM,
                    "inputs_hash": draw.inputs_hash,
                    "seed": seed.hex(),
                    "error": str(err),
                }
            ).decode()
        raise


def reveal_draw(
    conn: psycopg.Connection[Any], draw_id: int, *, actor: str, at: datetime
) -> DrawRecord:
    """Compute and store the result (status ``revealed``). Raises :class:`Conflict` when the
    draw is past that, :class:`SupervisionError` when its inputs admit no assignment (then
    cancel it with that reason and draw again after adding inspectors)."""
    with conn.transaction():
        draw = store.get_draw(conn, draw_id, lock=True)
        if draw.status is not DrawStatus.COMMITTED:
            raise Conflict(
                f"draw {draw_id} is {draw.status.value}: only a committed draw is revealed"
            )
        seed = store.committed_seed(conn, draw_id)
        inputs = DrawInputs.from_json(json.loads(draw.inputs))
        try:
            result = run_draw(inputs, seed)
        except NoAssignment as err:
            raise SupervisionError(
                f"draw {draw_id} cannot be completed: {err}; cancel it with that reason"
            ) from None
        text = canonical_json(result.to_json()).decode()
        return store.set_revealed(
            conn, draw_id, seed_hex=seed.hex(), result=text, at=at, actor=actor
        )


def publish_draw(
    conn: psycopg.Connection[Any], draw_id: int, *, actor: str, at: datetime
) -> DrawRecord:
    with conn.transaction():
        draw = store.get_draw(conn, draw_id, lock=True)
        if draw.status is not DrawStatus.REVEALED:
            raise Conflict(
                f"draw {draw_id} is {draw.status.value}: only a revealed draw is published"
            )
        return store.set_published(conn, draw_id, at=at, actor=actor)


def cancel_draw(
    conn: psycopg.Connection[Any], draw_id: int, *, reason: str, actor: str, at: datetime
) -> DrawRecord:
    if not reason.strip():
        raise SupervisionError("cancelling a draw needs a reason")
    with conn.transaction():
        draw = store.get_draw(conn, draw_id, lock=True)
        if draw.status is DrawStatus.CANCELLED:
            raise Conflict(f"draw {draw_id} is cancelled already")
        reveal = None
        if draw.status is DrawStatus.COMMITTED:
            seed = store.committed_seed(conn, draw_id)
            reveal = (seed.hex(), _result_text(draw, seed))
        return store.set_cancelled(
            conn, draw_id, at=at, actor=actor, reason=reason.strip(), reveal=reveal
        )


# -- what is shown, and verified --------------------------------------------------------------


def draw_document(draw: DrawRecord, *, public: bool) -> dict[str, Any]:
    """The draw as JSON: what ``GET /public/draws/{id}`` serves (``public``: the seed and
    result only once they are public), and what :func:`verify_document` checks."""
    show = draw.seed_public or (not public and draw.seed is not None)
    return {
        "id": draw.id,
        "period": draw.period,
        "status": draw.status.value,
        "algorithm": draw.algorithm,
        "inputs_hash": draw.inputs_hash,
        "seed_commitment": draw.seed_commitment,
        "committed_at": draw.committed_at.isoformat(),
        "revealed_at": draw.revealed_at.isoformat() if show and draw.revealed_at else None,
        "published_at": draw.published_at.isoformat() if draw.published_at else None,
        "cancelled_at": draw.cancelled_at.isoformat() if draw.cancelled_at else None,
        "cancel_reason": draw.cancel_reason,
        "inputs": json.loads(draw.inputs),
        "seed": draw.seed if show else None,
        "result": json.loads(draw.result) if show and draw.result else None,
    }


def verify_stored(conn: psycopg.Connection[Any], draw_id: int) -> VerifyReport:
    """Verify a stored draw exactly as anyone would from its public document."""
    return verify_document(draw_document(store.get_draw(conn, draw_id), public=True))


def expected_size(inputs: DrawInputs) -> tuple[float, float]:
    """Expected number of units drawn and its standard deviation (Poisson sampling: a sum
    of independent Bernoulli draws)."""
    ps = [inclusion_probability_ppm(c, inputs.config) / 1e6 for c in inputs.units]
    return sum(ps), sum(p * (1 - p) for p in ps) ** 0.5
