"""Draws as supervisors make them (firewatch/supervision/draws.py) on the seeded demo city:
the inputs are the database's state (risk levels, focus list, credit, ties, the previous
draw), commit -> reveal -> publish, a cancellation that hides nothing, and verification of
the stored draw from its public document."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from firewatch.core.credit import CreditStatus
from firewatch.core.draw import DrawInputs
from firewatch.core.settings import Settings
from firewatch.core.supervision import Conflict, DrawStatus, SupervisionError
from firewatch.storage.credit import change_credit
from firewatch.storage.inspectors import add_focus, add_tie, set_active
from firewatch.supervision import draws
from tests.supervision.builders import T0, inspectors, set_level, unit_ids


def inputs_of(draw_inputs: str) -> DrawInputs:
    return DrawInputs.from_json(json.loads(draw_inputs))


def test_commit_reveal_publish_and_verify(db: psycopg.Connection[Any], settings: Settings) -> None:
    codes = inspectors(db)
    for unit in unit_ids(db):
        set_level(db, unit, "red")
    draw = draws.commit_draw(db, settings, "2026-Q1", actor="supervisor", at=T0)
    assert draw.status is DrawStatus.COMMITTED
    assert draw.seed is None
    assert draw.result is None
    a = inputs_of(draw.inputs)
    assert a.digest() == draw.inputs_hash
    assert {c.level for c in a.units} == {"red"}
    assert list(a.inspectors) == codes
    public = draws.draw_document(draw, public=True)
    assert public["seed"] is None
    assert public["inputs_hash"] == draw.inputs_hash
    assert draws.verify_stored(db, draw.id).complete is False

    revealed = draws.reveal_draw(db, draw.id, actor="supervisor", at=T0)
    assert revealed.status is DrawStatus.REVEALED
    assert revealed.seed is not None
    assert draws.draw_document(revealed, public=True)["seed"] is None  # not public yet
    assert draws.draw_document(revealed, public=False)["seed"] == revealed.seed
    with pytest.raises(Conflict, match="only a committed draw is revealed"):
        draws.reveal_draw(db, draw.id, actor="supervisor", at=T0)

    published = draws.publish_draw(db, draw.id, actor="supervisor", at=T0)
    doc = draws.draw_document(published, public=True)
    assert doc["seed"] == revealed.seed
    assert doc["result"] == json.loads(revealed.result or "")
    report = draws.verify_stored(db, draw.id)
    assert report.ok
    assert report.complete
    with pytest.raises(Conflict, match="only a revealed draw is published"):
        draws.publish_draw(db, draw.id, actor="supervisor", at=T0)


def test_the_next_draw_respects_the_previous_one(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    inspectors(db, 8)
    for unit in unit_ids(db):
        set_level(db, unit, "red")
    first = draws.reveal_draw(
        db, draws.commit_draw(db, settings, "2026-Q1", actor="s", at=T0).id, actor="s", at=T0
    )
    drawn = {u["id"]: u["inspectors"] for u in json.loads(first.result or "")["units"]}
    assert drawn
    second = inputs_of(draws.commit_draw(db, settings, "2026-Q2", actor="s", at=T0).inputs)
    # inspected_last_period: nobody inspects the same unit two periods running
    for unit, codes in drawn.items():
        for code in codes:
            assert (code, unit) in second.exclusions
    since = {c.unit_id: c.draws_since_drawn for c in second.units}
    assert all(since[u] == 0 for u in drawn)
    assert all(since[u] is None for u in since if u not in drawn)


def test_ties_focus_and_credit_enter_the_inputs(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    inspectors(db)
    add_tie(db, code="I-01", unit_id="U-WD-001", kind="relative", actor="s")
    add_tie(db, code="I-02", unit_id="U-WD-001", kind="former_employer", actor="s")
    set_active(db, "I-06", False)
    set_level(db, "U-WD-001", "red")
    add_focus(db, unit_id="U-WD-001", reason="repeated complaints", actor="s")
    change_credit(
        db, "U-JA-001", CreditStatus.BLACKLISTED, rule="manual", reason="test", actor="s", at=T0
    )
    draw = draws.commit_draw(db, settings, "2026-Q1", actor="s", at=T0)
    a = inputs_of(draw.inputs)
    assert {("I-01", "U-WD-001"), ("I-02", "U-WD-001")} <= a.exclusions
    assert "I-06" not in a.inspectors
    units = {c.unit_id: c for c in a.units}
    assert units["U-WD-001"].focus
    assert units["U-WD-001"].level == "red"
    assert units["U-JA-001"].credit == "blacklisted"
    assert units["U-WD-002"].level == "blue"
    result = json.loads(draws.reveal_draw(db, draw.id, actor="s", at=T0).result or "")
    got = {u["id"]: u for u in result["units"]}
    assert got["U-WD-001"]["reason"] == "focus"  # always, at focus_every = 1
    assert {"I-01", "I-02"}.isdisjoint(got["U-WD-001"]["inspectors"])
    assert got["U-JA-001"]["rate_ppm"] == 1_000_000  # blacklisted: every draw


def test_a_draw_that_could_not_be_made_is_refused_before_commit(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    with pytest.raises(SupervisionError, match="0 active inspectors"):
        draws.commit_draw(db, settings, "2026-Q1", actor="s", at=T0)
    inspectors(db, 3)
    for code in ("I-01", "I-02"):
        add_tie(db, code=code, unit_id="U-YZ-001", kind="maintenance_company", actor="s")
    with pytest.raises(SupervisionError, match="units U-YZ-001 have fewer than 2 inspectors"):
        draws.commit_draw(db, settings, "2026-Q1", actor="s", at=T0)
    assert db.execute("SELECT count(*) FROM draws").fetchone() == (0,)


def test_cancelling_a_committed_draw_reveals_it(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    inspectors(db)
    draw = draws.commit_draw(db, settings, "2026-Q1", actor="s", at=T0)
    with pytest.raises(SupervisionError, match="needs a reason"):
        draws.cancel_draw(db, draw.id, reason=" ", actor="s", at=T0)
    cancelled = draws.cancel_draw(db, draw.id, reason="wrong period", actor="s", at=T0)
    assert cancelled.status is DrawStatus.CANCELLED
    assert cancelled.seed is not None
    doc = draws.draw_document(cancelled, public=True)
    assert doc["seed"] == cancelled.seed
    assert doc["cancel_reason"] == "wrong period"
    assert draws.verify_stored(db, draw.id).ok
    with pytest.raises(Conflict, match="cancelled already"):
        draws.cancel_draw(db, draw.id, reason="again", actor="s", at=T0)
    # the period is free again, and the next draw does not count the cancelled one
    again = draws.commit_draw(db, settings, "2026-Q1", actor="s", at=T0)
    assert all(c.draws_since_drawn is None for c in inputs_of(again.inputs).units)


def test_expected_size(db: psycopg.Connection[Any], settings: Settings) -> None:
    inspectors(db)
    a = inputs_of(draws.commit_draw(db, settings, "2026-Q1", actor="s", at=T0).inputs)
    mean, sd = draws.expected_size(a)
    assert mean == pytest.approx(8 * 0.05)
    assert sd == pytest.approx((8 * 0.05 * 0.95) ** 0.5)


def test_a_draw_the_load_bound_makes_impossible_fails_at_reveal_by_name(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    """Every unit may only get I-01 and I-02 (I-03 is tied to all): 8 units need 8 visits
    from each, above the bound ceil(16 / 3) = 6. Reveal names the unit and changes nothing;
    the cancellation publishes the reason, and that verifies too."""
    inspectors(db, 3)
    for unit in unit_ids(db):
        add_tie(db, code="I-03", unit_id=unit, kind="testing_company", actor="s")
    s = settings.model_copy(
        update={
            "supervision_level_rates": dict.fromkeys(("red", "orange", "yellow", "blue"), 1.0),
            "supervision_load_slack": 0,
        }
    )
    draw = draws.commit_draw(db, s, "2026-Q1", actor="s", at=T0)
    with pytest.raises(SupervisionError, match=r"cannot be completed: no conflict-free .* unit U-"):
        draws.reveal_draw(db, draw.id, actor="s", at=T0)
    assert db.execute("SELECT status FROM draws").fetchone() == ("committed",)
    cancelled = draws.cancel_draw(db, draw.id, reason="not enough inspectors", actor="s", at=T0)
    assert "error" in json.loads(cancelled.result or "")
    assert draws.verify_stored(db, draw.id).ok
