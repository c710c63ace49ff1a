"""What migration 0010 makes the database refuse on its own, whoever writes: a committed
draw's inputs, hash or commitment changed, a revealed seed or result changed, a status
moving backwards, a draw or seed deleted, a hash or seed that does not match, a second live
draw for a period; and ``hazard_summary``, the per-unit record risk scoring reads."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from firewatch.core.credit import CreditStatus
from firewatch.core.settings import Settings
from firewatch.core.supervision import (
    Conflict,
    HazardAction,
    HazardSeverity,
    HazardSource,
    NewHazard,
)
from firewatch.storage import hazards
from firewatch.storage.credit import change_credit
from firewatch.storage.draws import insert_draw
from firewatch.storage.inspections import insert_inspection
from firewatch.supervision import draws
from tests.builders import city
from tests.supervision.builders import DAY, T0, inspectors

D = timedelta(days=1)


def committed(db: psycopg.Connection[Any], settings: Settings, period: str = "2026-Q1") -> int:
    return draws.commit_draw(db, settings, period, actor="t", at=T0).id


@pytest.mark.parametrize(
    "assignment",
    [
        "inputs = inputs || ' '",
        "inputs_hash = repeat('0', 64)",
        "seed_commitment = repeat('0', 64)",
        "period = '2026-Q9'",
        "committed_at = committed_at + interval '1 s'",
        "committed_by = 'someone else'",
    ],
)
def test_what_was_committed_never_changes(
    db: psycopg.Connection[Any], settings: Settings, assignment: str
) -> None:
    inspectors(db)
    draw_id = committed(db, settings)
    with pytest.raises(psycopg.errors.RaiseException, match="can never change"):
        db.execute(f"UPDATE draws SET {assignment} WHERE id = %s", (draw_id,))


def test_a_revealed_seed_and_result_never_change_and_status_only_moves_on(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    inspectors(db)
    draw_id = committed(db, settings)
    draws.reveal_draw(db, draw_id, actor="t", at=T0)
    with pytest.raises(psycopg.errors.RaiseException, match="revealed seed and result"):
        db.execute("UPDATE draws SET result = '{}' WHERE id = %s", (draw_id,))
    with pytest.raises(psycopg.errors.RaiseException, match="cannot go from revealed to committed"):
        db.execute("UPDATE draws SET status = 'committed' WHERE id = %s", (draw_id,))
    draws.cancel_draw(db, draw_id, reason="wrong period", actor="t", at=T0)
    with pytest.raises(psycopg.errors.RaiseException, match="cancelled draw is final"):
        db.execute("UPDATE draws SET cancel_reason = 'another' WHERE id = %s", (draw_id,))


def test_draws_and_seeds_are_never_deleted(db: psycopg.Connection[Any], settings: Settings) -> None:
    inspectors(db)
    draw_id = committed(db, settings)
    with pytest.raises(psycopg.errors.RaiseException, match="never deleted"):
        db.execute("DELETE FROM draws WHERE id = %s", (draw_id,))
    with pytest.raises(psycopg.errors.RaiseException, match="never change or go"):
        db.execute("UPDATE draw_seeds SET seed = %s WHERE draw_id = %s", (bytes(32), draw_id))
    with pytest.raises(psycopg.errors.RaiseException, match="never change or go"):
        db.execute("DELETE FROM draw_seeds WHERE draw_id = %s", (draw_id,))
    with pytest.raises(psycopg.errors.RaiseException, match="never truncated"):
        db.execute("TRUNCATE draws CASCADE")


def test_the_database_checks_the_hash_and_the_commitment(db: psycopg.Connection[Any]) -> None:
    seed = bytes(32)
    with pytest.raises(psycopg.errors.CheckViolation):
        insert_draw(
            db,
            period="P",
            algorithm="a",
            inputs="{}",
            inputs_hash="0" * 64,
            seed_commitment=hashlib.sha256(seed).hexdigest(),
            seed=seed,
            at=T0,
            actor="t",
        )
    draw = insert_draw(
        db,
        period="P",
        algorithm="a",
        inputs="{}",
        inputs_hash=hashlib.sha256(b"{}").hexdigest(),
        seed_commitment=hashlib.sha256(seed).hexdigest(),
        seed=seed,
        at=T0,
        actor="t",
    )
    with pytest.raises(psycopg.errors.CheckViolation):  # a seed that is not the committed one
        db.execute(
            "UPDATE draws SET status = 'revealed', seed = %s, result = '{}', revealed_at = now(),"
            " revealed_by = 't' WHERE id = %s",
            ("11" * 32, draw.id),
        )
    db.execute(
        "UPDATE draws SET status = 'revealed', seed = %s, result = '{}', revealed_at = now(),"
        " revealed_by = 't' WHERE id = %s",
        (seed.hex(), draw.id),
    )


def test_one_live_draw_per_period(db: psycopg.Connection[Any], settings: Settings) -> None:
    inspectors(db)
    first = committed(db, settings)
    with pytest.raises(Conflict, match=f"draw {first} .* is committed but not revealed"):
        committed(db, settings, "2026-Q2")  # the next draw's inputs need its result
    draws.reveal_draw(db, first, actor="t", at=T0)
    with pytest.raises(Conflict, match=f"period 2026-Q1 has a live draw already: draw {first}"):
        committed(db, settings)
    draws.cancel_draw(db, first, reason="inputs were wrong", actor="t", at=T0)
    second = committed(db, settings)
    assert second != first
    rows = db.execute("SELECT status FROM draws WHERE period = '2026-Q1' ORDER BY id").fetchall()
    assert rows == [("cancelled",), ("committed",)]  # the cancelled one stays


def test_cancelling_needs_a_reason_in_the_database_too(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    inspectors(db)
    draw_id = committed(db, settings)
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            "UPDATE draws SET status = 'cancelled', cancelled_at = now(), cancelled_by = 't',"
            " cancel_reason = '  ' WHERE id = %s",
            (draw_id,),
        )


def test_one_hazard_per_fault_alert(db: psycopg.Connection[Any]) -> None:
    from tests.builders.alerts import new_alert

    alert = new_alert(db)
    new = NewHazard("fire_water", HazardSeverity.GENERAL, "pressure low")
    args: dict[str, Any] = dict(
        unit_id=city.UNIT,
        source=HazardSource.DEVICE_FAULT,
        new=new,
        found_at=T0,
        deadline=T0 + D,
        actor="op",
        alert_id=alert.id,
    )
    assert hazards.insert_hazard(db, **args) is not None
    assert hazards.insert_hazard(db, **args) is None
    assert db.execute("SELECT count(*) FROM hazards").fetchone() == (1,)


def test_hazard_summary_is_as_of_its_time(db: psycopg.Connection[Any]) -> None:
    unit = city.UNIT
    inspection = insert_inspection(
        db,
        unit_id=unit,
        draw_id=None,
        inspected_at=T0,
        outcome="hazards_found",
        false_declaration=True,
        reinspection_of=None,
        notes="",
        actor="t",
        inspector_ids=[],
    )

    def add(severity: HazardSeverity, found: float, days: float) -> int:
        h = hazards.insert_hazard(
            db,
            unit_id=unit,
            source=HazardSource.INSPECTION,
            inspection_id=inspection,
            new=NewHazard("fire_exits", severity, "x"),
            found_at=T0 + found * D,
            deadline=T0 + (found + days) * D,
            actor="t",
        )
        assert h is not None
        return h.id

    major = add(HazardSeverity.MAJOR, 0, 30)
    general = add(HazardSeverity.GENERAL, 0, 15)
    add(HazardSeverity.GENERAL, 20, 15)
    hazards.apply_hazard_action(db, general, HazardAction.VERIFY, actor="t", at=T0 + 10 * D)
    change_credit(
        db, unit, CreditStatus.BLACKLISTED, rule="manual", reason="test", actor="t", at=T0 + 31 * D
    )

    got = hazards.hazard_summary(db, [unit, "U-WD-002", unit], T0 + 5 * D)
    assert set(got) == {unit, "U-WD-002"}
    s = got[unit]
    assert (s.open_major, s.open_general, s.overdue) == (1, 1, 0)
    assert s.oldest_open_days == pytest.approx(5.0)
    assert (s.inspections_365d, s.hazards_365d, s.false_declarations_365d) == (1, 2, 1)
    assert s.credit_status == "good"
    later = hazards.hazard_summary(db, [unit], T0 + 40 * D)[unit]
    # the major one (deadline day 30) and the later general one (day 35) are overdue
    assert (later.open_major, later.open_general, later.overdue) == (1, 1, 2)
    assert later.hazards_365d == 3
    assert later.credit_status == "blacklisted"
    empty = got["U-WD-002"]
    assert (empty.open_major, empty.inspections_365d, empty.credit_status) == (0, 0, "good")
    a_year_on = hazards.hazard_summary(db, [unit], T0 + 400 * D)[unit]
    assert (a_year_on.inspections_365d, a_year_on.hazards_365d) == (0, 0)
    assert major
    assert hazards.hazard_summary(db, [], T0) == {}
    assert DAY == 86_400.0
